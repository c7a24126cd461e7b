//! Ungrouped convolutions as matrix products on the `gemm` crate (AVX-512,
//! AVX2/FMA and NEON kernels, picked at run time): a 1×1 stride-1 convolution
//! is `W[cout × cin] · X[cin × hw]` as it lies in memory, a 3×3 stride-1
//! one Winograd's products (`winograd`), any other the same product over
//! im2col bands. Products write their output band (never read
//! it), and bias and activation follow while the band is still in cache.

use std::ops::Range;

use super::avx512::{self, Product};
use super::winograd;
use super::{add_bias_act, inside_columns, Geometry};
use crate::cnn::model::{Act, Conv};

/// An ungrouped convolution's output (`cout × oh·ow`), and, with `res`,
/// the residual add after it in the same pass (`add(y + res)`, the same
/// operations as the two layers apart).
#[inline(always)]
pub(super) fn ungrouped(cv: &Conv, x: &[f32], g: Geometry, res: Option<(&[f32], Act)>) -> Vec<f32> {
    ungrouped_on(cv, x, g, res, tiles_in_use())
}

/// [`ungrouped`] on the AVX-512 tiles (`tiles`) or the `gemm` crate.
#[inline(always)]
fn ungrouped_on(
    cv: &Conv,
    x: &[f32],
    g: Geometry,
    res: Option<(&[f32], Act)>,
    tiles: bool,
) -> Vec<f32> {
    let Geometry { h, w, pad, oh, ow } = g;
    // Every output is written by exactly one product band before anything
    // reads it, so the buffer starts uninitialised (no fill pass over
    // what can be megabytes).
    let len = cv.cout * oh * ow;
    assert!(
        res.is_none_or(|r| r.0.len() == len),
        "residual unlike the output"
    );
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    if cv.k == 1 && cv.stride == 1 && pad == [0; 4] {
        pointwise_into(cv, 0..cv.cout, x, h * w, dst, res, tiles);
    } else if let Some(m) = winograd::scheme(cv, g) {
        winograd::conv(cv, m, x, g, dst, res, tiles);
    } else {
        im2col_gemm(cv, x, g, dst, res, tiles);
    }
    // SAFETY: the bands above cover columns 0..oh·ow of every one of the
    // cout rows, and each band's product wrote all of its elements.
    unsafe { out.set_len(len) };
    out
}

/// The output channels `rows` of a 1×1 stride-1 convolution of `x`
/// (`cin × hw`): `rows.len() × hw`, bias and activation applied.
#[inline(always)]
pub(super) fn pointwise_rows(cv: &Conv, rows: Range<usize>, x: &[f32], hw: usize) -> Vec<f32> {
    let len = rows.len() * hw;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    pointwise_into(
        cv,
        rows,
        x,
        hw,
        &mut out.spare_capacity_mut()[..len],
        None,
        tiles_in_use(),
    );
    // SAFETY: `pointwise_into` wrote every element of its `len` outputs.
    unsafe { out.set_len(len) };
    out
}

/// Writes the output channels `rows` of a 1×1 convolution to `dst`
/// (`rows.len() × hw`, every element), bias and activation applied (and
/// the residual add `res`, if any). On the `gemm` crate, in column bands
/// whose outputs fit in L2, so bias and activation follow while the band
/// is still in cache, not in a pass over memory (a 96 × 112² expansion is
/// 4.8 MB); the AVX-512 tiles apply them as they store.
#[inline(always)]
fn pointwise_into(
    cv: &Conv,
    rows: Range<usize>,
    x: &[f32],
    hw: usize,
    dst: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    tiles: bool,
) {
    let m = rows.len();
    let weight = &cv.weight[rows.start * cv.cin..rows.end * cv.cin];
    let bias = &cv.bias[rows];
    if tiles {
        let p = Product {
            a: weight,
            k: cv.cin,
            b: x,
            n: hw,
            ldb: hw,
            bias,
            act: cv.act,
            res,
            ldc: hw,
        };
        p.run(dst);
        return;
    }
    // (At least 1: a model file may declare 0 channels or a 0-pixel map.)
    let band = (GEMM_BAND / m.max(1))
        .next_multiple_of(16)
        .clamp(1, hw.max(1));
    for c0 in (0..hw).step_by(band) {
        let n = band.min(hw - c0);
        sgemm(m, cv.cin, n, weight, &x[c0..], hw, &mut dst[c0..], hw);
        bias_act_band(bias, cv.act, dst, hw, c0..c0 + n);
        add_band(res, dst, hw, c0..c0 + n);
    }
}

/// Whether products run on this crate's AVX-512 tiles ([`Product`]):
/// where the CPU has AVX-512 F, unless `LOOKALIKE_CNN_TILES=0` asks for
/// the `gemm` crate (to measure one against the other).
pub(super) fn tiles_in_use() -> bool {
    static TILES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TILES.get_or_init(|| {
        avx512::available() && std::env::var("LOOKALIKE_CNN_TILES").map_or(true, |v| v != "0")
    })
}

/// Adds the residual map to the columns `cols` of each row (of length
/// `row`) of `out`, then its activation (a no-op without one).
#[inline(always)]
fn add_band(res: Option<(&[f32], Act)>, out: &mut [Uninit], row: usize, cols: Range<usize>) {
    let Some((res, act)) = res else { return };
    for (r, src) in out.chunks_mut(row).zip(res.chunks(row)) {
        let cols = cols.clone();
        for (d, &v) in r[cols.clone()].iter_mut().zip(&src[cols]) {
            // SAFETY: the product and bias pass wrote every element of
            // this band.
            let y = unsafe { d.assume_init() } + v;
            d.write(act.apply(y));
        }
    }
}

/// Output floats of one 1×1 product band (256 KiB, a quarter of an L2).
const GEMM_BAND: usize = 1 << 16;

/// An output element before its product writes it.
pub(super) type Uninit = std::mem::MaybeUninit<f32>;

/// Adds each output channel's bias to the columns `cols` of its row (of
/// length `row`) in `out`, which the product has just written, then
/// applies the activation.
#[inline(always)]
fn bias_act_band(bias: &[f32], act: Act, out: &mut [Uninit], row: usize, cols: Range<usize>) {
    for (r, &b) in out.chunks_mut(row).zip(bias) {
        let band = &mut r[cols.clone()];
        // SAFETY: the product just wrote every element of this band, and
        // MaybeUninit<f32> has f32's layout.
        add_bias_act(
            unsafe { &mut *(band as *mut [Uninit] as *mut [f32]) },
            b,
            act,
        );
    }
}

/// `c[m × n] = a[m × k] · b[k × n]`, all row-major: `a` dense, `b` with row
/// stride `ldb`, `c` with row stride `ldc` (so a product can fill a band of
/// columns of a wider output); `c`'s old values are not read.
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    ldb: usize,
    c: &mut [Uninit],
    ldc: usize,
) {
    assert!(a.len() >= m * k, "weights shorter than cout × cin");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + n,
        "input shorter than the product reads"
    );
    assert!(
        m == 0 || c.len() >= (m - 1) * ldc + n,
        "output shorter than the product writes"
    );
    // SAFETY: the asserts above bound every index the product touches:
    // a[i·k + p], b[p·ldb + j], c[i·ldc + j] for i < m, p < k, j < n; the
    // three slices do not overlap (one is borrowed mutably), and `c` is
    // only written (dst not read: its old, uninitialised, values never
    // matter). The crate's
    // arguments are (m, n, k, dst, its column and row strides, read dst,
    // lhs and rhs likewise, then dst := alpha·dst + beta·lhs·rhs, or
    // beta·lhs·rhs when dst is not read).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().cast::<f32>(),
            1,
            ldc as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            ldb as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Elements an im2col band may hold (4 Mi): bands of output rows are sized
/// to this, so a 7×7 stem at 288² needs 4 MiB of f32, not 12.
pub(super) const IM2COL_BAND: usize = 1 << 20;

/// An ungrouped k×k (or strided) convolution as GEMM over im2col bands:
/// each band holds, for a run of output rows, one row per (input channel,
/// tap) with the input value every output pixel reads (0 in the padding).
#[inline(always)]
fn im2col_gemm(
    cv: &Conv,
    x: &[f32],
    g: Geometry,
    out: &mut [Uninit],
    res: Option<(&[f32], Act)>,
    tiles: bool,
) {
    let Geometry { h, w, pad, oh, ow } = g;
    let kk = cv.cin * cv.k * cv.k;
    let rows_per_band = (IM2COL_BAND / (kk * ow)).clamp(1, oh);
    // The bands reuse this thread's buffer: im2col writes every element
    // it reads, so no zero fill (the stem's band is 1.3 MB an image).
    thread_local! {
        static COL: std::cell::RefCell<Vec<f32>> = Default::default();
    }
    let mut col = COL.with_borrow_mut(std::mem::take);
    if col.len() < kk * rows_per_band * ow {
        col.resize(kk * rows_per_band * ow, 0.0);
    }
    for oy0 in (0..oh).step_by(rows_per_band) {
        let rows = rows_per_band.min(oh - oy0);
        let n = rows * ow;
        im2col(
            x,
            h,
            w,
            cv.k,
            cv.stride,
            pad,
            oy0,
            rows,
            ow,
            0.0,
            &mut col[..kk * n],
        );
        let at = oy0 * ow;
        let res = res.map(|(r, a)| (&r[at..], a));
        if tiles {
            let p = Product {
                a: &cv.weight,
                k: kk,
                b: &col,
                n,
                ldb: n,
                bias: &cv.bias,
                act: cv.act,
                res,
                ldc: oh * ow,
            };
            p.run(&mut out[at..]);
            continue;
        }
        sgemm(cv.cout, kk, n, &cv.weight, &col, n, &mut out[at..], oh * ow);
        bias_act_band(&cv.bias, cv.act, out, oh * ow, at..at + n);
        add_band(res, &mut out[at..], oh * ow, 0..n);
    }
    COL.set(col);
}

/// One im2col band: for the output rows `oy0..oy0 + rows` (each `ow`
/// wide) of a k×k convolution with stride `s` and padding `pad` over the
/// planes of `x` (each `h × w`), `col` gets one row per (plane, tap) of
/// `rows · ow` elements: what each output pixel reads there, `fill` in the
/// padding. Generic over the element: f32 values, or the int8 path's u32
/// quads of four channels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn im2col<T: Copy>(
    x: &[T],
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pad: [usize; 4],
    oy0: usize,
    rows: usize,
    ow: usize,
    fill: T,
    col: &mut [T],
) {
    let n = rows * ow;
    let (pt, pl) = (pad[0] as isize, pad[1] as isize);
    for (r, dst) in col.chunks_mut(n.max(1)).enumerate() {
        let (ci, ky, kx) = (r / (k * k), r / k % k, r % k);
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for (dy, drow) in dst.chunks_mut(ow).enumerate() {
            let iy = ((oy0 + dy) * s + ky) as isize - pt;
            if iy < 0 || iy >= h as isize {
                drow.fill(fill);
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            // Output columns lo..hi read inside the row; the rest read padding.
            let std::ops::Range { start: lo, end: hi } = inside_columns(w, ow, kx as isize - pl, s);
            drow[..lo].fill(fill);
            drow[hi..].fill(fill);
            let first = (lo * s + kx) as isize - pl;
            if hi > lo && s == 1 {
                let first = first as usize;
                drow[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
            } else if hi > lo {
                let taken = src[first as usize..].iter().step_by(s);
                drow[lo..hi]
                    .iter_mut()
                    .zip(taken)
                    .for_each(|(d, v)| *d = *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive, random_conv, rnd};
    use super::*;
    use crate::cnn::model::Padding;

    /// Both product kernels (the crate everywhere, the AVX-512 tiles where
    /// the CPU has them), with and without the fused residual add, against
    /// a textbook loop: 1×1 and k×k, map sizes whose last columns take
    /// the tiles' dot-product path (7 × 7, 14 × 14, 9 × 9), and bands.
    #[test]
    fn both_kernels_with_a_residual_match_the_textbook_loop() {
        // (cin, cout, k, stride, pad, h, w)
        let cases = [
            (19, 12, 1, 1, 0, 7, 7),
            (8, 21, 1, 1, 0, 14, 14),
            (6, 9, 3, 1, 1, 9, 9),
            (5, 16, 3, 2, 1, 13, 11),
            (3, 10, 7, 2, 3, 40, 37),
            (70, 8, 3, 1, 1, 130, 30),
        ];
        let kernels: &[bool] = if avx512::available() {
            &[false, true]
        } else {
            &[false]
        };
        for (i, &(cin, cout, k, stride, pad, h, w)) in cases.iter().enumerate() {
            let cv = Conv {
                padding: Padding::Explicit([pad; 4]),
                act: [Act::Relu, Act::None, Act::Relu6][i % 3],
                ..random_conv(cin, cout, k, stride, 1, i as u32 + 1)
            };
            let x = rnd(cin * h * w, i as u32 + 60);
            let g = super::super::Geometry::of(&cv, h, w);
            let (oh, ow) = (g.oh, g.ow);
            let residual = rnd(cout * oh * ow, i as u32 + 90);
            let add = [Act::None, Act::Relu][i % 2];
            let (plain, ..) = naive(&cv, &x, h, w);
            for &tiles in kernels {
                for with_res in [false, true] {
                    let res = with_res.then_some((&residual[..], add));
                    let got = ungrouped_on(&cv, &x, g, res, tiles);
                    assert_eq!(got.len(), plain.len());
                    for (at, (&y, &want)) in got.iter().zip(&plain).enumerate() {
                        let want = match with_res {
                            true => add.apply(want + residual[at]),
                            false => want,
                        };
                        assert!(
                            (y - want).abs() < 1e-4,
                            "case {i}, tiles {tiles}, residual {with_res}, at {at}: {y} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
