//! Ungrouped convolutions as matrix products on the `gemm` crate (AVX-512,
//! AVX2/FMA and NEON kernels, picked at run time): a 1×1 stride-1 convolution
//! is `W[cout × cin] · X[cin × hw]` as it lies in memory, any other the same
//! product over im2col bands. Products write their output band (never read
//! it), and bias and activation follow while the band is still in cache.

use std::ops::Range;

use super::{add_bias_act, inside_columns, Geometry};
use crate::cnn::model::{Act, Conv};

/// An ungrouped convolution's output (`cout × oh·ow`).
#[inline(always)]
pub(super) fn ungrouped(cv: &Conv, x: &[f32], g: Geometry) -> Vec<f32> {
    let Geometry { h, w, pad, oh, ow } = g;
    // Every output is written by exactly one product band before anything
    // reads it, so the buffer starts uninitialised (no fill pass over
    // what can be megabytes).
    let len = cv.cout * oh * ow;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    if cv.k == 1 && cv.stride == 1 && pad == [0; 4] {
        pointwise_into(cv, 0..cv.cout, x, h * w, dst);
    } else {
        im2col_gemm(cv, x, g, dst);
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
    pointwise_into(cv, rows, x, hw, &mut out.spare_capacity_mut()[..len]);
    // SAFETY: `pointwise_into` wrote every element of its `len` outputs.
    unsafe { out.set_len(len) };
    out
}

/// Writes the output channels `rows` of a 1×1 convolution to `dst`
/// (`rows.len() × hw`, every element), in column bands whose outputs fit
/// in L2, so bias and activation are applied while the band is still in
/// cache, not in a pass over memory (a 96 × 112² expansion is 4.8 MB).
#[inline(always)]
fn pointwise_into(cv: &Conv, rows: Range<usize>, x: &[f32], hw: usize, dst: &mut [Uninit]) {
    let m = rows.len();
    let weight = &cv.weight[rows.start * cv.cin..rows.end * cv.cin];
    let bias = &cv.bias[rows];
    // (At least 1: a model file may declare 0 channels or a 0-pixel map.)
    let band = (GEMM_BAND / m.max(1))
        .next_multiple_of(16)
        .clamp(1, hw.max(1));
    for c0 in (0..hw).step_by(band) {
        let n = band.min(hw - c0);
        sgemm(m, cv.cin, n, weight, &x[c0..], hw, &mut dst[c0..], hw);
        bias_act_band(bias, cv.act, dst, hw, c0..c0 + n);
    }
}

/// Output floats of one 1×1 product band (256 KiB, a quarter of an L2).
const GEMM_BAND: usize = 1 << 16;

/// An output element before its product writes it.
type Uninit = std::mem::MaybeUninit<f32>;

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
fn sgemm(
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
fn im2col_gemm(cv: &Conv, x: &[f32], g: Geometry, out: &mut [Uninit]) {
    let Geometry { h, w, pad, oh, ow } = g;
    let kk = cv.cin * cv.k * cv.k;
    let rows_per_band = (IM2COL_BAND / (kk * ow)).clamp(1, oh);
    let mut col = vec![0f32; kk * rows_per_band * ow];
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
        sgemm(
            cv.cout,
            kk,
            n,
            &cv.weight,
            &col,
            n,
            &mut out[oy0 * ow..],
            oh * ow,
        );
        bias_act_band(&cv.bias, cv.act, out, oh * ow, oy0 * ow..oy0 * ow + n);
    }
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
