//! 3×3 stride-1 convolutions by Winograd's minimal filtering, F(2×2, 3×3)
//! and F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", CVPR 2016; the transforms `B`, `G`, `A` below are
//! theirs): each m × m block of outputs is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`
//! over an (m + 2)² input tile `d`, so the product over input channels
//! becomes (m + 2)² matrix products, one per tile element `ξ`:
//! `M[ξ] (cout × tiles) = U[ξ] (cout × cin) · V[ξ] (cin × tiles)`. That
//! is 16 / 4 = 4 multiply-adds an output per channel pair for F(2×2),
//! 36 / 16 = 2.25 for F(4×4), against 9 for im2col — most of ResNet-50's
//! 3×3 layers, about 37 % of its work at 288².
//!
//! The products run on the same kernels as im2col's (the AVX-512 tiles or
//! the `gemm` crate). The transforms are additions on vectors of 8 or 16
//! tiles: a band's input rows are split by phase (column mod m, so that a
//! tile's columns lie in contiguous runs), transformed along y, then along
//! x into `V`; `M` back along y, then along x with a fixed-size transpose
//! into output rows. Bias, activation and a residual add follow, in the
//! order the product epilogue applies them. Tiles run in bands of tile
//! rows whose `V` and `M` hold at most 4 MiB.
//!
//! Rounding: F(2×2) stays within about 6e-7 of a map's largest output,
//! F(4×4) within about 5e-6 (its transforms scale by up to 8 and 1/24),
//! against 3e-7 for the direct sums (`tests/resnet_parity.rs` against the
//! WGSL engine); embeddings keep a cosine of 1.0000000 to ONNX Runtime's
//! (`benches/ort_compare.sh`). Measured in benches/README.md ("Winograd").

use std::ops::{Add, Mul, Sub};
use std::sync::OnceLock;

use super::avx512::Product;
use super::gemm::{sgemm, Uninit};
use super::Geometry;
use crate::cnn::model::{Act, Conv};

/// A conv's weights transformed for each scheme (`U`, ξ-major:
/// `(m + 2)² × cout × cin`), made on first use (boxed: a [`Conv`] that
/// never runs here stays small).
#[derive(Default, Clone)]
pub struct WinogradWeights(OnceLock<Box<[OnceLock<Vec<f32>>; 2]>>);

impl std::fmt::Debug for WinogradWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = |i: usize| self.0.get().and_then(|b| b[i].get()).map_or(0, Vec::len);
        write!(f, "WinogradWeights(F2: {}, F4: {})", made(0), made(1))
    }
}

/// One of the two algorithms: `M` outputs a side from `A = M + 2` inputs.
/// The transforms take lines of numbers of any [`Lane`] type: 8 tiles
/// at once in [`Lanes`].
trait Scheme<const M: usize, const A: usize> {
    /// `G` (A × 3), which transforms a kernel's rows and columns.
    const G: [[f64; 3]; A];
    /// `Bᵀ d` for one line of `A` inputs.
    fn input<T: Lane>(d: [T; A]) -> [T; A];
    /// `Aᵀ s` for one line of `A` products.
    fn output<T: Lane>(s: [T; A]) -> [T; M];
}

/// What the transforms compute with.
trait Lane: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}
impl<T: Copy + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>> Lane for T {}

/// F(2×2, 3×3): interpolation points 0, ±1, ∞.
struct F2;

impl Scheme<2, 4> for F2 {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    #[inline(always)]
    fn input<T: Lane>([d0, d1, d2, d3]: [T; 4]) -> [T; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }
    #[inline(always)]
    fn output<T: Lane>([s0, s1, s2, s3]: [T; 4]) -> [T; 2] {
        [s0 + s1 + s2, s1 - s2 - s3]
    }
}

/// F(4×4, 3×3): interpolation points 0, ±1, ±2, ∞.
struct F4;

impl Scheme<4, 6> for F4 {
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    #[inline(always)]
    fn input<T: Lane>([d0, d1, d2, d3, d4, d5]: [T; 6]) -> [T; 6] {
        [
            d0 * 4.0 - d2 * 5.0 + d4,
            d3 + d4 - (d1 + d2) * 4.0,
            d4 - d3 + (d1 - d2) * 4.0,
            d4 - d2 + (d3 - d1) * 2.0,
            d4 - d2 + (d1 - d3) * 2.0,
            d1 * 4.0 - d3 * 5.0 + d5,
        ]
    }
    #[inline(always)]
    fn output<T: Lane>([s0, s1, s2, s3, s4, s5]: [T; 6]) -> [T; 4] {
        let (p12, m12, p34, m34) = (s1 + s2, s1 - s2, s3 + s4, s3 - s4);
        [
            s0 + p12 + p34,
            m12 + m34 * 2.0,
            p12 + p34 * 4.0,
            m12 + m34 * 8.0 + s5,
        ]
    }
}

/// `N` tiles' numbers, one per lane: 8 (an AVX2 vector; an F(4×4) line of
/// six inputs and six outputs stays in sixteen registers) or 16 (AVX-512,
/// thirty-two registers).
#[derive(Clone, Copy)]
struct Lanes<const N: usize>([f32; N]);

impl<const N: usize> Add for Lanes<N> {
    type Output = Self;
    #[inline(always)]
    fn add(mut self, o: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
        self
    }
}

impl<const N: usize> Sub for Lanes<N> {
    type Output = Self;
    #[inline(always)]
    fn sub(mut self, o: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a -= b;
        }
        self
    }
}

impl<const N: usize> Mul<f32> for Lanes<N> {
    type Output = Self;
    #[inline(always)]
    fn mul(mut self, f: f32) -> Self {
        for a in &mut self.0 {
            *a *= f;
        }
        self
    }
}

impl<const N: usize> Lanes<N> {
    const ZERO: Self = Lanes([0.0; N]);

    /// `s[at..at + N]` (buffers are padded so that a last, partial run
    /// of tiles reads whole vectors).
    #[inline(always)]
    fn load(s: &[f32], at: usize) -> Self {
        Lanes(s[at..at + N].try_into().expect("a whole vector"))
    }

    /// Stores the lanes at `s[at..at + N]`; lanes past the tiles land in
    /// padding or in tiles written later.
    #[inline(always)]
    fn store(self, s: &mut [f32], at: usize) {
        s[at..at + N].copy_from_slice(&self.0);
    }
}

/// Room past a row of `V` or `M` for the widest vector.
const PAD: usize = 16;

/// Which scheme runs `cv` on `g`, if any: ungrouped float 3×3 stride-1
/// convolutions padded by 1 on every side (the output the input's size),
/// with enough channels that the transforms (linear in them) are small
/// beside the products (quadratic). F(4×4) on maps of 24 or more a side;
/// F(2×2) on smaller ones, where F(4×4)'s tiles leave the products few
/// columns (ResNet-50's 18 × 18 at 288²: 25 tiles of 4 × 4, 81 of 2 × 2)
/// and waste more of the map (9 × 9 in 12 × 12): there one-thread probes
/// ran F(2×2) 1.7–1.9× and 1.1× im2col's speed, F(4×4) 1.4–1.8× and 0.75×.
/// `LOOKALIKE_CNN_WINOGRAD` = `0` (im2col), `2` or `4` (that scheme
/// wherever one applies) measures them against each other.
pub(super) fn scheme(cv: &Conv, g: Geometry) -> Option<usize> {
    static FORCED: OnceLock<Option<usize>> = OnceLock::new();
    let forced = *FORCED.get_or_init(|| {
        std::env::var("LOOKALIKE_CNN_WINOGRAD")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    let fits = cv.k == 3
        && cv.stride == 1
        && cv.groups == 1
        && cv.int8.is_none()
        && g.pad == [1; 4]
        && (g.oh, g.ow) == (g.h, g.w)
        && cv.cin >= 16
        && cv.cout >= 16;
    match forced {
        _ if !fits => None,
        Some(0) => None,
        Some(2) => Some(2),
        Some(_) => Some(4),
        None if g.h.min(g.w) >= 24 => Some(4),
        None => Some(2),
    }
}

/// Writes `cv` over `x` to `out` (`cout × h·w`, every element) with
/// scheme `m` (2 or 4, as [`scheme`] picks), bias, activation and the
/// residual add `res` applied; products on the AVX-512 tiles (`tiles`) or
/// the `gemm` crate.
#[inline(always)]
pub(super) fn conv(
    cv: &Conv,
    m: usize,
    x: &[f32],
    g: Geometry,
    out: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    tiles: bool,
) {
    let band = BAND / (cv.cin + cv.cout).max(1);
    if tiles {
        // SAFETY: the tiles run only where the CPU has AVX-512 F.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            conv_avx512(cv, m, x, g, out, res, band)
        }
        return;
    }
    let u = weights_for(cv, m);
    match m {
        2 => run::<2, 4, 8, F2>(cv, u, x, g, out, res, false, band),
        _ => run::<4, 6, 8, F4>(cv, u, x, g, out, res, false, band),
    }
}

/// [`conv`] on the AVX-512 tiles, its transforms 16 tiles a vector.
///
/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_avx512(
    cv: &Conv,
    m: usize,
    x: &[f32],
    g: Geometry,
    out: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    band: usize,
) {
    let u = weights_for(cv, m);
    match m {
        2 => run::<2, 4, 16, F2>(cv, u, x, g, out, res, true, band),
        _ => run::<4, 6, 16, F4>(cv, u, x, g, out, res, true, band),
    }
}

/// `cv`'s transformed weights for scheme `m`, made on first use.
fn weights_for(cv: &Conv, m: usize) -> &[f32] {
    let made = cv.winograd.0.get_or_init(Default::default);
    match m {
        2 => made[0].get_or_init(|| weights::<2, 4, F2>(cv)),
        _ => made[1].get_or_init(|| weights::<4, 6, F4>(cv)),
    }
}

/// Floats of `V` and `M` together in one band of tiles (4 MiB: one band
/// for most of ResNet-50's layers; 2 MiB ran 36 × 36 maps 10 % slower).
const BAND: usize = 1 << 20;

/// `U[ξ][o][i] = (G g Gᵀ)[ξ]` for every kernel `g` (of output channel
/// `o`, input channel `i`), summed in f64.
fn weights<const M: usize, const A: usize, S: Scheme<M, A>>(cv: &Conv) -> Vec<f32> {
    let (cout, cin) = (cv.cout, cv.cin);
    let mut u = vec![0f32; A * A * cout * cin];
    for (oi, g) in cv.weight.chunks_exact(9).enumerate() {
        // G g (A × 3), then (G g) Gᵀ (A × A).
        let gg: [[f64; 3]; A] = std::array::from_fn(|r| {
            std::array::from_fn(|c| (0..3).map(|t| S::G[r][t] * g[t * 3 + c] as f64).sum())
        });
        for r in 0..A {
            for c in 0..A {
                let v: f64 = (0..3).map(|t| gg[r][t] * S::G[c][t]).sum();
                u[(r * A + c) * cout * cin + oi] = v as f32;
            }
        }
    }
    u
}

/// Per-thread buffers of [`run`], reused from call to call (`V` and `M`
/// are megabytes; fresh ones would be page faults every layer).
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    lines: Vec<f32>,
    rows: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// `buf` resized to `len` (its old values kept: every use writes first).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The convolution in bands of about `band` tiles (whole tile rows).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn run<const M: usize, const A: usize, const N: usize, S: Scheme<M, A>>(
    cv: &Conv,
    u: &[f32],
    x: &[f32],
    g: Geometry,
    out: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    tiles: bool,
    band: usize,
) {
    let (h, w, cin, cout) = (g.h, g.w, cv.cin, cv.cout);
    let (th, tw) = (h.div_ceil(M), w.div_ceil(M));
    let rows = (band / (A * A * tw)).clamp(1, th.max(1));
    let zeros = vec![0f32; cout];
    let mut scratch = SCRATCH.with_borrow_mut(std::mem::take);
    for ty0 in (0..th).step_by(rows) {
        let nr = rows.min(th - ty0);
        let n = nr * tw;
        // Rows of V and M (one per channel) run PAD past the band's
        // tiles, room for the last run's whole vectors.
        let ld = n + PAD;
        let v = sized(&mut scratch.v, A * A * cin * ld);
        for ci in 0..cin {
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            input_band::<M, A, N, S>(
                plane,
                w,
                ty0,
                nr,
                tw,
                ci,
                cin,
                ld,
                v,
                &mut scratch.lines,
                &mut scratch.rows,
            );
        }
        let mm = sized(&mut scratch.m, A * A * cout * ld);
        for xi in 0..A * A {
            let a = &u[xi * cout * cin..(xi + 1) * cout * cin];
            let b = &v[xi * cin * ld..(xi + 1) * cin * ld];
            let c = &mut mm[xi * cout * ld..(xi + 1) * cout * ld];
            // SAFETY: MaybeUninit<f32> has f32's layout; every element
            // the products write was already initialised.
            let c = unsafe { &mut *(c as *mut [f32] as *mut [Uninit]) };
            if tiles {
                let p = Product {
                    a,
                    k: cin,
                    b,
                    n,
                    ldb: ld,
                    bias: &zeros,
                    act: Act::None,
                    res: None,
                    ldc: ld,
                };
                p.run(c);
            } else {
                sgemm(cout, cin, n, a, b, ld, c, ld);
            }
        }
        for o in 0..cout {
            output_band::<M, A, N, S>(cv, o, g, ty0, nr, tw, ld, mm, out, res, &mut scratch.rows);
        }
    }
    SCRATCH.set(scratch);
}

/// `Bᵀ d B` of every tile of the tile rows `ty0..ty0 + nr` of one input
/// channel `ci` (its `plane`, `w` wide), into `V[ξ][ci][t]`. Along y
/// first, on the rows' columns split by phase (`x mod M`), so that both
/// passes read and write contiguous runs of tiles, `N` at a time.
/// Rows of `V` are `ld` apart.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input_band<const M: usize, const A: usize, const N: usize, S: Scheme<M, A>>(
    plane: &[f32],
    w: usize,
    ty0: usize,
    nr: usize,
    tw: usize,
    ci: usize,
    cin: usize,
    ld: usize,
    v: &mut [f32],
    lines: &mut Vec<f32>,
    rows: &mut Vec<f32>,
) {
    let h = plane.len() / w.max(1);
    // Tile column tx reads padded columns M·tx .. M·tx + A: phases 0..M
    // at k = tx and tx + 1. A phase's row is kw long, room for the last
    // vector read from k = 1.
    let kw = tw.next_multiple_of(N) + N;
    let lines = sized(lines, (nr * M + 2) * M * kw);
    let rows = sized(rows, A * M * kw);
    for (r, line) in lines.chunks_exact_mut(M * kw).enumerate() {
        // The padded row (a zero each side), then split by phase.
        let padded = &mut rows[..M * kw];
        padded.fill(0.0);
        let iy = (ty0 * M + r) as isize - 1;
        if (0..h as isize).contains(&iy) {
            padded[1..=w].copy_from_slice(&plane[iy as usize * w..][..w]);
        }
        // N tiles' columns at a time: a fixed-size transpose (shuffles).
        for k in (0..kw).step_by(N) {
            let cols: &[[f32; M]; N] = padded[k * M..(k + N) * M]
                .as_chunks::<M>()
                .0
                .try_into()
                .expect("N tiles");
            for (q, at) in (0..M).zip((k..).step_by(kw)) {
                Lanes::<N>(std::array::from_fn(|t| cols[t][q])).store(line, at);
            }
        }
    }
    // Along y: rows[i][q][k] for one tile row at a time.
    for ty in 0..nr {
        let src = &lines[ty * M * M * kw..][..A * M * kw];
        for qk in (0..M * kw).step_by(N) {
            let mut d = [Lanes::<N>::ZERO; A];
            for (i, d) in d.iter_mut().enumerate() {
                *d = Lanes::<N>::load(src, i * M * kw + qk);
            }
            let t = S::input(d);
            for (i, t) in t.into_iter().enumerate() {
                t.store(rows, i * M * kw + qk);
            }
        }
        // Along x: tile tx's column j is phase j mod M at k = tx + j / M.
        for i in 0..A {
            let yrow = &rows[i * M * kw..][..M * kw];
            let at = ((i * A * cin) + ci) * ld + ty * tw;
            for tx in (0..tw).step_by(N) {
                let mut d = [Lanes::<N>::ZERO; A];
                for (j, d) in d.iter_mut().enumerate() {
                    *d = Lanes::<N>::load(yrow, j % M * kw + j / M + tx);
                }
                let t = S::input(d);
                for (j, t) in t.into_iter().enumerate() {
                    t.store(v, at + j * cin * ld + tx);
                }
            }
        }
    }
}

/// `Aᵀ m A` of every tile of the tile rows `ty0..ty0 + nr` of output
/// channel `o` from `M[ξ][o][t]`, then bias, activation and the residual
/// add, into `out` (rows past the map's edge dropped). Rows of `M` are
/// `ld` apart.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_band<const M: usize, const A: usize, const N: usize, S: Scheme<M, A>>(
    cv: &Conv,
    o: usize,
    g: Geometry,
    ty0: usize,
    nr: usize,
    tw: usize,
    ld: usize,
    mm: &[f32],
    out: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    rows: &mut Vec<f32>,
) {
    let (h, w, cout) = (g.h, g.w, cv.cout);
    let (bias, act) = (cv.bias[o], cv.act);
    let kw = tw.next_multiple_of(N);
    // sy[r][j][tx] (along y), then one output row of M·kw (along x).
    let rows = sized(rows, M * A * kw + M * kw);
    let (sy, line) = rows.split_at_mut(M * A * kw);
    for ty in 0..nr {
        for j in 0..A {
            let at = (j * cout + o) * ld + ty * tw;
            for tx in (0..tw).step_by(N) {
                let mut d = [Lanes::<N>::ZERO; A];
                for (i, d) in d.iter_mut().enumerate() {
                    *d = Lanes::<N>::load(mm, at + i * A * cout * ld + tx);
                }
                let t = S::output(d);
                for (r, t) in t.into_iter().enumerate() {
                    t.store(sy, (r * A + j) * kw + tx);
                }
            }
        }
        for r in 0..M {
            let oy = (ty0 + ty) * M + r;
            if oy >= h {
                break;
            }
            for tx in (0..tw).step_by(N) {
                let mut d = [Lanes::<N>::ZERO; A];
                for (j, d) in d.iter_mut().enumerate() {
                    *d = Lanes::<N>::load(sy, (r * A + j) * kw + tx);
                }
                let t = S::output(d);
                // Tile tx + i's outputs are t[0..M] lane i: a fixed-size
                // transpose (shuffles) into the row.
                let px: [[f32; M]; N] = std::array::from_fn(|i| std::array::from_fn(|q| t[q].0[i]));
                line[tx * M..(tx + N) * M].copy_from_slice(px.as_flattened());
            }
            let at = (o * h + oy) * w;
            let dst = &mut out[at..at + w];
            match res {
                Some((res, add)) => {
                    for ((d, &y), &r) in dst.iter_mut().zip(&*line).zip(&res[at..at + w]) {
                        d.write(add.apply(act.apply(y + bias) + r));
                    }
                }
                None => {
                    for (d, &y) in dst.iter_mut().zip(&*line) {
                        d.write(act.apply(y + bias));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive, random_conv, rnd};
    use super::*;
    use crate::cnn::model::Padding;

    /// Both schemes, on both product kernels, with and without a residual,
    /// against the textbook loop: maps that tiles cover exactly and with
    /// ragged edges, non-square, several bands of tiles, one band.
    #[test]
    fn both_schemes_match_the_textbook_loop() {
        // (cin, cout, h, w, band)
        let cases = [
            (16, 16, 8, 8, BAND),
            (17, 24, 9, 9, BAND),
            (24, 19, 13, 6, 200),
            (32, 40, 18, 18, 300),
            (20, 16, 1, 5, BAND),
            (16, 33, 30, 17, 1),
        ];
        let kernels: &[bool] = if super::super::avx512::available() {
            &[false, true]
        } else {
            &[false]
        };
        for (i, &(cin, cout, h, w, band)) in cases.iter().enumerate() {
            let cv = Conv {
                padding: Padding::Explicit([1; 4]),
                act: [Act::Relu, Act::None, Act::Relu6][i % 3],
                ..random_conv(cin, cout, 3, 1, 1, i as u32 + 1)
            };
            let x = rnd(cin * h * w, i as u32 + 60);
            let g = Geometry::of(&cv, h, w);
            assert!(scheme(&cv, g).is_some(), "case {i} runs by Winograd");
            let residual = rnd(cout * h * w, i as u32 + 90);
            let add = [Act::None, Act::Relu][i % 2];
            let (plain, ..) = naive(&cv, &x, h, w);
            let u2 = weights::<2, 4, F2>(&cv);
            let u4 = weights::<4, 6, F4>(&cv);
            for &tiles in kernels {
                for m in [2, 4] {
                    for with_res in [false, true] {
                        let res = with_res.then_some((&residual[..], add));
                        let mut got: Vec<Uninit> = vec![Uninit::uninit(); cout * h * w];
                        match m {
                            2 if tiles => {
                                run::<2, 4, 16, F2>(&cv, &u2, &x, g, &mut got, res, tiles, band)
                            }
                            2 => run::<2, 4, 8, F2>(&cv, &u2, &x, g, &mut got, res, tiles, band),
                            _ if tiles => {
                                run::<4, 6, 16, F4>(&cv, &u4, &x, g, &mut got, res, tiles, band)
                            }
                            _ => run::<4, 6, 8, F4>(&cv, &u4, &x, g, &mut got, res, tiles, band),
                        }
                        for (at, (y, &want)) in got.iter().zip(&plain).enumerate() {
                            // SAFETY: `run` writes every output.
                            let y = unsafe { y.assume_init() };
                            let want = match with_res {
                                true => add.apply(want + residual[at]),
                                false => want,
                            };
                            assert!(
                                (y - want).abs() < 2e-4 * (1.0 + want.abs()),
                                "case {i}, F{m}, tiles {tiles}, residual {with_res}, at {at}: {y} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
