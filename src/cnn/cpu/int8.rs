//! Int8 convolutions of quantised (QDQ) models: the input quantised to u8
//! at the model's own scale, products of u8 activations and i8 weights
//! summed exactly in i32, then one f32 epilogue (zero-point correction,
//! scales, bias, activation, and a residual add when one follows) as each
//! tile is stored.
//!
//! Layout: four input channels share one u32 (byte `c % 4`), so a k×k
//! convolution's im2col gathers u32 "quads" exactly as the f32 path gathers
//! floats, and a 1×1 one reads the quantised input as it is. A product tile
//! is 8 output channels × 48 pixels: on AVX-512 VNNI each step loads three
//! vectors of 16 pixels' quads and, per output channel, broadcasts its four
//! weights into `vpdpbusd` (u8 × i8, four products summed per i32 lane):
//! 24 accumulators in registers. Without VNNI a portable loop computes the
//! same integers, so both give bit-identical outputs (the tests hold them
//! to it).

use super::{add_bias_act, Geometry};
use crate::cnn::model::{Act, Conv, Int8Conv};

/// Output channels of one product tile.
const MR: usize = 8;
/// 16-lane vectors of pixels in one product tile.
const NV: usize = 3;
/// Pixels of one product tile.
const NR: usize = 16 * NV;

/// A quantised convolution's weights in the kernels' layout, built once
/// when the model is read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedInt8 {
    /// Quads per output channel: ⌈cin / 4⌉ · k².
    k4: usize,
    /// `[cout / 8 (rounded up)][k4][8]`: each tile's 8 channels' quads
    /// side by side (zero quads past `cout`).
    a: Vec<u32>,
    /// `in_zero · Σ weights` per output channel (the zero-point correction).
    zw: Vec<i32>,
    /// `in_scale · w_scale` per output channel.
    scale: Vec<f32>,
}

impl PackedInt8 {
    /// Packs OIHW i8 `weight` (`cout × cin × k × k`).
    pub fn new(q: &Int8Conv, cout: usize, cin: usize, k: usize) -> PackedInt8 {
        let k4 = cin.div_ceil(4) * k * k;
        let mut a = vec![0u32; cout.next_multiple_of(MR) * k4];
        let mut zw = vec![0i32; cout];
        for (o, row) in q.weight.chunks(cin * k * k).take(cout).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                let (ci, tap) = (i / (k * k), i % (k * k));
                let quad = ci / 4 * k * k + tap;
                a[((o / MR) * k4 + quad) * MR + o % MR] |= (w as u8 as u32) << (8 * (ci % 4));
                zw[o] += q.in_zero as i32 * w as i32;
            }
        }
        let scale = q.w_scale.iter().map(|&s| q.in_scale * s).collect();
        PackedInt8 { k4, a, zw, scale }
    }
}

/// Whether this CPU runs the `vpdpbusd` kernel (else the portable loop,
/// same results).
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// An ungrouped quantised convolution's output (`cout × oh·ow`, f32).
#[inline(always)]
pub(super) fn ungrouped(cv: &Conv, q: &Int8Conv, x: &[f32], g: Geometry) -> Vec<f32> {
    ungrouped_on(cv, q, x, g, has_vnni(), None)
}

/// [`ungrouped`] and the residual add after it in one pass: the output is
/// `act` of the convolution plus `residual` (laid out as the output). The
/// same f32 operations in the same order as the two layers apart, without
/// a pass over three maps (ResNet's largest) between them.
#[inline(always)]
pub(super) fn ungrouped_add(
    cv: &Conv,
    q: &Int8Conv,
    x: &[f32],
    g: Geometry,
    residual: &[f32],
    act: Act,
) -> Vec<f32> {
    ungrouped_on(cv, q, x, g, has_vnni(), Some((residual, act)))
}

/// [`ungrouped`] on the VNNI kernel or, `vnni` false, the portable one.
#[inline(always)]
fn ungrouped_on(
    cv: &Conv,
    q: &Int8Conv,
    x: &[f32],
    g: Geometry,
    vnni: bool,
    residual: Option<(&[f32], Act)>,
) -> Vec<f32> {
    let Geometry { h, w, pad, oh, ow } = g;
    // The quantised input and im2col bands reuse this thread's buffers
    // (every element is written before it is read): no allocation, page
    // faults or zero fill per layer.
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<u32>, Vec<u32>)> = Default::default();
    }
    let (mut xq, mut col) = SCRATCH.with_borrow_mut(std::mem::take);
    quantise(x, cv.cin, h * w, q.in_scale, q.in_zero, vnni, &mut xq);
    // Every output is stored by exactly one tile before anything reads it:
    // no zero fill of what can be megabytes.
    let len = cv.cout * oh * ow;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    let tile = Tiles {
        p: &q.packed,
        bias: &cv.bias,
        act: cv.act,
        add: residual.map(|r| r.1),
        vnni,
    };
    let res = residual.map(|r| r.0);
    assert!(
        res.is_none_or(|r| r.len() == len),
        "residual unlike the output"
    );
    if cv.k == 1 && cv.stride == 1 && pad == [0; 4] {
        tile.product(&xq, h * w, h * w, dst, res, h * w);
    } else {
        let k4 = q.packed.k4;
        let rows_per_band = (super::gemm::IM2COL_BAND / (k4 * ow).max(1)).clamp(1, oh.max(1));
        grow(&mut col, k4 * rows_per_band * ow);
        let zero = u32::from_ne_bytes([q.in_zero; 4]);
        for oy0 in (0..oh).step_by(rows_per_band) {
            let rows = rows_per_band.min(oh - oy0);
            let n = rows * ow;
            let band = &mut col[..k4 * n];
            super::gemm::im2col(&xq, h, w, cv.k, cv.stride, pad, oy0, rows, ow, zero, band);
            let res = res.map(|r| &r[oy0 * ow..]);
            tile.product(band, n, n, &mut dst[oy0 * ow..], res, oh * ow);
        }
    }
    SCRATCH.set((xq, col));
    // SAFETY: the tiles cover every column of every one of the cout rows
    // (bands of columns, tiles of 8 rows × 32 columns, the last ones
    // partial), and each tile stored all of its elements.
    unsafe { out.set_len(len) };
    out
}

/// An output element before its tile stores it.
type Uninit = std::mem::MaybeUninit<f32>;

/// Makes `v` at least `len` long (new elements zero, old ones kept).
fn grow(v: &mut Vec<u32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0);
    }
}

/// The input quads of columns `cols` of `b` (`k4` rows at stride `ldb`)
/// as [`Tiles::narrow_vnni`] reads them: per column, ⌈k4/2⌉ runs of 16
/// u32, the first 8 all quad 2p, the last 8 all quad 2p + 1 (0 past k4).
fn spread_columns(
    b: &[u32],
    k4: usize,
    ldb: usize,
    cols: std::ops::Range<usize>,
    out: &mut Vec<u32>,
) {
    let half = k4.div_ceil(2);
    out.clear();
    out.resize(cols.len() * half * 16, 0);
    for (q, j) in cols.enumerate() {
        for p in 0..k4 {
            let at = (q * half + p / 2) * 16 + (p % 2) * 8;
            out[at..at + 8].fill(b[p * ldb + j]);
        }
    }
}

/// `x` (`cin × hw` f32) quantised to u8, four channels a u32, into the
/// first `⌈cin/4⌉ × hw` elements of `out` (grown to hold them): q =
/// clamp(round-half-even(x / scale) + zero, 0, 255), ONNX's
/// QuantizeLinear; channels past `cin` hold the zero point.
#[inline(always)]
fn quantise(
    x: &[f32],
    cin: usize,
    hw: usize,
    scale: f32,
    zero: u8,
    avx512: bool,
    out: &mut Vec<u32>,
) {
    let quads = cin.div_ceil(4);
    assert!(x.len() >= cin * hw, "input shorter than cin × hw");
    grow(out, quads * hw);
    let out = &mut out[..quads * hw];
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: AVX-512 F was detected (with VNNI); x holds cin planes of
        // hw and out quads planes of hw (asserted and sliced above).
        unsafe { quantise_avx512(x, cin, hw, scale, zero, out) };
        return;
    }
    let _ = avx512;
    out.fill(0);
    let z = zero as f32;
    for (cq, o) in out.chunks_mut(hw.max(1)).take(quads).enumerate() {
        for t in 0..4 {
            let shift = 8 * t;
            let c = 4 * cq + t;
            if c >= cin {
                o.iter_mut().for_each(|d| *d |= (zero as u32) << shift);
                continue;
            }
            for (d, &v) in o.iter_mut().zip(&x[c * hw..(c + 1) * hw]) {
                let q = ((v / scale).round_ties_even() + z).clamp(0.0, 255.0) as u32;
                *d |= q << shift;
            }
        }
    }
}

/// [`quantise`] 16 pixels at a time, the four channels of a quad packed
/// in registers (the same operations: divide, round half to even, add
/// the zero point, clamp to 0..255).
///
/// # Safety
/// The CPU has AVX-512 F; `x` holds `cin · hw` values, `out` ⌈cin/4⌉ · hw.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantise_avx512(x: &[f32], cin: usize, hw: usize, scale: f32, zero: u8, out: &mut [u32]) {
    use std::arch::x86_64::*;
    let (vs, vz) = (_mm512_set1_ps(scale), _mm512_set1_ps(zero as f32));
    let (lo, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
    for cq in 0..cin.div_ceil(4) {
        let dst = out.as_mut_ptr().add(cq * hw);
        for p in (0..hw).step_by(16) {
            let mask: __mmask16 = if hw - p >= 16 {
                0xffff
            } else {
                (1u16 << (hw - p)) - 1
            };
            let mut quad = _mm512_setzero_si512();
            for t in 0..4 {
                let c = 4 * cq + t;
                let q = if c < cin {
                    let v = _mm512_maskz_loadu_ps(mask, x.as_ptr().add(c * hw + p));
                    let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                        _mm512_div_ps(v, vs),
                    );
                    // max first: a NaN (max returns its second operand) becomes 0,
                    // as the scalar clamp-then-cast gives.
                    _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, vz), lo), hi))
                } else {
                    _mm512_set1_epi32(zero as i32)
                };
                quad = _mm512_or_si512(quad, _mm512_sllv_epi32(q, _mm512_set1_epi32(8 * t as i32)));
            }
            _mm512_mask_storeu_epi32(dst.add(p).cast(), mask, quad);
        }
    }
}

/// One product tile's operands: the weights of output channels `o0..o0 +
/// MR` (`a`, MR quads a row), `k4` rows of input quads at stride `ldb`
/// (`b`), and the `rows × cols` outputs (and residuals) at stride `ldc`.
struct Tile<'a> {
    o0: usize,
    a: &'a [u32],
    b: &'a [u32],
    ldb: usize,
    dst: &'a mut [Uninit],
    res: Option<&'a [f32]>,
    ldc: usize,
    rows: usize,
    cols: usize,
}

/// What every product tile of one convolution shares.
struct Tiles<'a> {
    p: &'a PackedInt8,
    bias: &'a [f32],
    act: Act,
    /// A residual add after the activation, and the activation after it.
    add: Option<Act>,
    vnni: bool,
}

impl Tiles<'_> {
    /// `out[o][j] = epilogue(Σ_quad a[o][quad] · b[quad][j])` for `j < n`:
    /// `b` is `k4 × n` quads with row stride `ldb`, `out` has row stride
    /// `ldc`. Columns run in bands whose `b` fits in L2, and within a band
    /// each 8-channel slice of the weights stays in L1 across its tiles.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        b: &[u32],
        n: usize,
        ldb: usize,
        out: &mut [Uninit],
        res: Option<&[f32]>,
        ldc: usize,
    ) {
        let (k4, cout) = (self.p.k4, self.bias.len());
        assert!(
            k4 == 0 || b.len() >= (k4 - 1) * ldb + n,
            "input shorter than the product reads"
        );
        assert!(
            cout == 0 || out.len() >= (cout - 1) * ldc + n,
            "output shorter than written"
        );
        assert!(
            cout == 0 || res.is_none_or(|r| r.len() >= (cout - 1) * ldc + n),
            "residual shorter than read"
        );
        let band = ((256 << 10) / (4 * k4).max(1)).next_multiple_of(NR).max(NR);
        // On VNNI, a last 1–4 columns past a multiple of 16 (a 9 × 9 map's
        // 81st, 18 × 18's last 4) run as dot products along the quads
        // (`narrow_vnni`, the same integers) instead of a 16-lane tile for
        // one lane of work, each 8-channel slice right after its tiles.
        let few = match (self.vnni, n % 16) {
            (true, r @ 1..=4) => r,
            _ => 0,
        };
        let n = n - few;
        thread_local! {
            static COLUMNS: std::cell::RefCell<Vec<u32>> = Default::default();
        }
        let mut pairs = COLUMNS.with_borrow_mut(std::mem::take);
        if few > 0 {
            spread_columns(b, k4, ldb, n..n + few, &mut pairs);
        }
        // (One empty band when every column is one of the few.)
        for j0 in (0..n.max(1)).step_by(band) {
            let j1 = (j0 + band).min(n);
            for o0 in (0..cout).step_by(MR) {
                let a = &self.p.a[o0 * k4..(o0 + MR) * k4];
                let rows = MR.min(cout - o0);
                for j in (j0..j1).step_by(NR) {
                    let cols = NR.min(j1 - j);
                    let t = Tile {
                        o0,
                        a,
                        b: &b[j..],
                        ldb,
                        dst: &mut out[o0 * ldc + j..],
                        res: res.map(|r| &r[o0 * ldc + j..]),
                        ldc,
                        rows,
                        cols,
                    };
                    #[cfg(target_arch = "x86_64")]
                    if self.vnni {
                        // SAFETY: VNNI was detected; the asserts above bound
                        // b's reads (k4 rows of `cols` at stride ldb),
                        // dst's writes and res's reads (`rows` rows of
                        // `cols`), and `a` holds MR·k4 quads.
                        unsafe {
                            match cols.div_ceil(16) {
                                1 => self.tile_vnni::<1>(t),
                                2 => self.tile_vnni::<2>(t),
                                _ => self.tile_vnni::<NV>(t),
                            }
                        }
                        continue;
                    }
                    self.tile_portable(t);
                }
                #[cfg(target_arch = "x86_64")]
                if few > 0 && j1 == n {
                    let t = Tile {
                        o0,
                        a,
                        b: &pairs,
                        ldb: 0,
                        dst: &mut out[o0 * ldc + n..],
                        res: res.map(|r| &r[o0 * ldc + n..]),
                        ldc,
                        rows,
                        cols: few,
                    };
                    // SAFETY: VNNI was detected (few is 0 otherwise); the
                    // asserts above bound the writes and residual reads of
                    // columns n..n + few, `pairs` holds them spread.
                    unsafe {
                        match few {
                            1 => self.narrow_vnni::<1>(t),
                            2 => self.narrow_vnni::<2>(t),
                            3 => self.narrow_vnni::<3>(t),
                            _ => self.narrow_vnni::<4>(t),
                        }
                    }
                }
            }
        }
        COLUMNS.set(pairs);
    }

    /// The columns of `t` (`t.cols` ≤ 4 of them, spread by
    /// [`spread_columns`] into `t.b`) for its `rows` channels, as dot
    /// products along the quads: each `vpdpbusd` takes two quads of all 8
    /// channels (16 lanes of the packed weights, as they lie) against the
    /// column's two input quads, each repeated over 8 lanes; four
    /// accumulators a column keep the adds apart, then lanes 0–7 and 8–15
    /// are added. Integer sums, so exactly the tile's.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `t.a` holds MR·k4 quads,
    /// `t.b` R spread columns, `t.dst` (and `t.res`) `rows` rows of R at
    /// `ldc`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // (index loops unroll to registers)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn narrow_vnni<const R: usize>(&self, t: Tile) {
        use std::arch::x86_64::*;
        let Tile {
            o0,
            a,
            b,
            dst,
            res,
            ldc,
            rows,
            ..
        } = t;
        let k4 = self.p.k4;
        let half = k4.div_ceil(2);
        assert!(a.len() >= MR * k4 && b.len() >= R * half * 16);
        let mut acc = [[_mm512_setzero_si512(); R]; 4];
        let (ap, bp) = (a.as_ptr().cast::<i32>(), b.as_ptr().cast::<i32>());
        for t4 in (0..half).step_by(4) {
            for u in 0..4 {
                let p = t4 + u;
                if p >= half {
                    break;
                }
                // Quads 2p and 2p + 1 of the 8 channels; an odd k4's last
                // pair has one (the spread column holds zeros there).
                let mask: __mmask16 = if 2 * p + 1 < k4 { 0xffff } else { 0x00ff };
                let w = _mm512_maskz_loadu_epi32(mask, ap.add(2 * p * MR));
                for q in 0..R {
                    let x = _mm512_loadu_si512(bp.add((q * half + p) * 16).cast());
                    acc[u][q] = _mm512_dpbusd_epi32(acc[u][q], x, w);
                }
            }
        }
        let mut sums = [[0i32; MR]; R];
        for q in 0..R {
            let v = _mm512_add_epi32(
                _mm512_add_epi32(acc[0][q], acc[1][q]),
                _mm512_add_epi32(acc[2][q], acc[3][q]),
            );
            let v = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
            _mm256_storeu_si256(sums[q].as_mut_ptr().cast(), v);
        }
        for r in 0..rows {
            let row: [i32; R] = std::array::from_fn(|q| sums[q][r]);
            let res = res.map(|res| &res[r * ldc..r * ldc + R]);
            self.finish(o0 + r, &row, &mut dst[r * ldc..r * ldc + R], res);
        }
    }

    /// Stores one row of finished sums: `(acc − zw) · scale + bias`, then
    /// the activation (the same f32 operations as the vector kernel).
    #[inline(always)]
    fn finish(&self, o: usize, acc: &[i32], dst: &mut [Uninit], res: Option<&[f32]>) {
        let (zw, scale) = (self.p.zw[o], self.p.scale[o]);
        for (d, &s) in dst.iter_mut().zip(acc) {
            d.write(s.wrapping_sub(zw) as f32 * scale);
        }
        // SAFETY: every element of `dst` was written just above (acc has
        // as many sums as dst elements), and MaybeUninit<f32> is f32's layout.
        let dst = unsafe { &mut *(dst as *mut [Uninit] as *mut [f32]) };
        add_bias_act(dst, self.bias[o], self.act);
        if let (Some(r), Some(act)) = (res, self.add) {
            dst.iter_mut()
                .zip(r)
                .for_each(|(d, r)| *d = act.apply(*d + r));
        }
    }

    /// The reference tile: plain integer loops.
    #[inline(always)]
    fn tile_portable(&self, t: Tile) {
        let Tile {
            o0,
            a,
            b,
            ldb,
            dst,
            res,
            ldc,
            rows,
            cols,
        } = t;
        let mut acc = [[0i32; NR]; MR];
        for quad in 0..self.p.k4 {
            let bq = &b[quad * ldb..quad * ldb + cols];
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                let w = a[quad * MR + r].to_le_bytes().map(|v| v as i8 as i32);
                for (s, &x) in acc.iter_mut().zip(bq) {
                    let x = x.to_le_bytes();
                    *s += x[0] as i32 * w[0]
                        + x[1] as i32 * w[1]
                        + x[2] as i32 * w[2]
                        + x[3] as i32 * w[3];
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = r * ldc..r * ldc + cols;
            let res = res.map(|res| &res[row.clone()]);
            self.finish(o0 + r, &acc[..cols], &mut dst[row], res);
        }
    }

    /// The AVX-512 VNNI tile: MR × NV i32 accumulators in registers.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `t.b` holds `k4` rows of at
    /// least `cols` quads at stride `ldb`, `t.dst` (and `t.res`, if any)
    /// `rows` rows of `cols` at `ldc`.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // (index loops unroll to registers)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_vnni<const V: usize>(&self, t: Tile) {
        use std::arch::x86_64::*;
        let Tile {
            o0,
            a,
            b,
            ldb,
            dst,
            res,
            ldc,
            rows,
            cols,
        } = t;
        let lanes = |n: usize| -> __mmask16 { (((1u32 << n.min(16)) - 1) & 0xffff) as u16 };
        let masks: [__mmask16; V] = std::array::from_fn(|v| lanes(cols.saturating_sub(16 * v)));
        let mut acc = [[_mm512_setzero_si512(); V]; MR];
        let (bp, ap) = (b.as_ptr(), a.as_ptr());
        for quad in 0..self.p.k4 {
            // SAFETY (all pointer reads): masked loads touch only the
            // first `cols` quads of row `quad`; `a` has MR quads a row.
            let row = bp.add(quad * ldb).cast::<i32>();
            let bv: [__m512i; V] =
                std::array::from_fn(|v| _mm512_maskz_loadu_epi32(masks[v], row.add(16 * v)));
            let w = ap.add(quad * MR).cast::<i32>();
            // Index loops of constant length, unrolled whole, so that the
            // accumulators become registers (iterator loops left them in a
            // stack array, zeroed and spilled every tile).
            for r in 0..MR {
                let wr = _mm512_set1_epi32(*w.add(r));
                for v in 0..V {
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], bv[v], wr);
                }
            }
        }
        // The sums leave the registers in one unrolled pass, so that the
        // epilogue's loop over `rows` never indexes the accumulators (which
        // would make them a stack array, zero-filled every tile).
        let mut sums = [[_mm512_setzero_si512(); V]; MR];
        for r in 0..MR {
            for v in 0..V {
                sums[r][v] = acc[r][v];
            }
        }
        let zero = _mm512_setzero_ps();
        let six = _mm512_set1_ps(6.0);
        for r in 0..MR {
            if r >= rows {
                continue;
            }
            let o = o0 + r;
            let zw = _mm512_set1_epi32(self.p.zw[o]);
            let (scale, bias) = (
                _mm512_set1_ps(self.p.scale[o]),
                _mm512_set1_ps(self.bias[o]),
            );
            for half in 0..V {
                let mask = masks[half];
                if mask == 0 {
                    continue;
                }
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums[r][half], zw));
                let act = |v, a: Act| match a {
                    Act::None => v,
                    Act::Relu => _mm512_max_ps(v, zero),
                    Act::Relu6 => _mm512_min_ps(_mm512_max_ps(v, zero), six),
                };
                let mut v = act(_mm512_add_ps(_mm512_mul_ps(v, scale), bias), self.act);
                if let (Some(res), Some(a)) = (res, self.add) {
                    let r = _mm512_maskz_loadu_ps(mask, res.as_ptr().add(r * ldc + 16 * half));
                    v = act(_mm512_add_ps(v, r), a);
                }
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(r * ldc + 16 * half).cast(), mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests;
