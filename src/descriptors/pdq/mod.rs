//! PDQ: Meta's 256-bit perceptual hash plus its 0..=100 quality score.
//!
//! Written from the algorithm as published in facebook/ThreatExchange
//! (`pdq/README.md`, the PDQ hashing PDF, and the C++ reference
//! `pdq/cpp/hashing/pdqhashing.cpp` + `pdq/cpp/downscaling/downscaling.cpp`).
//! The goal is bit agreement with that reference as packaged by the Python
//! binding `pdqhash` (`pdqhash.compute` on a full-resolution RGB array), so
//! every floating-point step below keeps the reference's type (f32 unless
//! noted) and its operation order. Rust never fuses `a * b + c` into an FMA, so
//! the sums below round exactly as written; a GPU port must do the same
//! (no fused multiply-add, same summation order) to stay bit-exact.
//!
//! Pipeline (each stage is a `pub fn` so the WGSL engine can be checked stage
//! by stage):
//! 1. [`luma_from_rgb`]: Rec.601 luma as f32.
//! 2. [`jarosz_downsample_64`]: two passes of (box along rows, box along
//!    columns), then nearest-centre decimation to 64×64.
//! 3. [`quality_from_64`]: gradient-count quality, integer as in the reference.
//! 4. [`dct16_from_64`]: the 16×16 block of DCT-II frequencies 1..=16 (DC
//!    skipped) as `D·A·Dᵀ` with a 16×64 matrix.
//! 5. [`hash_from_dct16`]: bit `row*16+col` = coefficient > median.
//! 6. [`dihedral_dcts`]: the 8 rotations/flips from the one 16×16 DCT.
//!
//! Large inputs: the Python binding hashes whatever array it is given (no
//! resize), and that is what "exact mode" here reproduces. ThreatExchange's own
//! tools do downsample: the C++ CLI (`pdq/cpp/io/pdqio.cpp`, `DOWNSAMPLE_DIMS =
//! 512`) squashes any image with a side over 512 px to exactly 512×512 with
//! CImg's default resize (aspect ratio not kept), and the pure-Python hasher
//! (`pdq/python/pdqhashing/hasher/pdq_hasher.py`) calls PIL
//! `thumbnail((512, 512))` (aspect kept). Their published test vectors come
//! from the latter. Hashes of the same large image therefore differ by a few
//! bits between those tools and `pdqhash.compute`.

pub mod scaled;

use super::Hash256;
use std::sync::OnceLock;

/// Hash plus quality (0..=100; Meta suggests discarding hashes below 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pdq {
    pub hash: Hash256,
    pub quality: u8,
}

/// Images with a side below this get the all-zero hash and quality 0
/// (reference: `MIN_HASHABLE_DIM = 5`).
pub const MIN_HASHABLE_DIM: usize = 5;

/// Dihedral variant order of the arrays returned here (the reference's order).
/// In image terms (verified by tests against `image::imageops`):
/// rot90 = 90° counter-clockwise (`rotate270`), rot270 = 90° clockwise
/// (`rotate90`), flipX = mirror top/bottom (`flip_vertical`), flipY = mirror
/// left/right (`flip_horizontal`), flipPlus1 = transpose (about the main
/// diagonal), flipMinus1 = transpose about the anti-diagonal.
pub const DIHEDRAL_NAMES: [&str; 8] = [
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flipX",
    "flipY",
    "flipPlus1",
    "flipMinus1",
];

/// Rec.601 luma, row-major, as f32.
///
/// The reference weights are 0.299, 0.587, 0.114. `pdqhash` evaluates them in
/// float64 and casts to f32; that equals the correctly rounded f32 of the exact
/// value (299R + 587G + 114B) / 1000 (a float64 error of ~1e-16 can never
/// straddle an f32 rounding midpoint for these rationals), so we form the exact
/// integer numerator (< 2^24, exact in f32) and do one IEEE f32 division.
/// (ThreatExchange's C++ CLI sums f32 products instead; it can differ by 1 ulp.)
pub fn luma_from_rgb(img: &image::RgbImage) -> Vec<f32> {
    let raw = img.as_raw();
    let mut out = vec![0f32; raw.len() / 3];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the feature this copy is compiled for.
        unsafe { luma_avx2(raw, &mut out) };
        return out;
    }
    luma_into(raw, &mut out);
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn luma_avx2(rgb: &[u8], out: &mut [f32]) {
    luma_into(rgb, out)
}

/// Eight pixels at a time so the numerators and the (IEEE, exact) divisions
/// vectorise; the stride-3 reads alone would keep LLVM scalar.
#[inline(always)]
fn luma_into(rgb: &[u8], out: &mut [f32]) {
    let num = |p: &[u8]| (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) as f32;
    let mut o8 = out.chunks_exact_mut(8);
    let mut p8 = rgb.chunks_exact(24);
    for (o, p) in (&mut o8).zip(&mut p8) {
        let mut n = [0f32; 8];
        for (k, v) in n.iter_mut().enumerate() {
            *v = num(&p[3 * k..3 * k + 3]);
        }
        for (d, v) in o.iter_mut().zip(n) {
            *d = v / 1000.0;
        }
    }
    for (d, p) in o8
        .into_remainder()
        .iter_mut()
        .zip(p8.remainder().chunks_exact(3))
    {
        *d = num(p) / 1000.0;
    }
}

/// Box-filter window per pass: ceil(old / (2·new)) (reference
/// `computeJaroszFilterWindowSize`: two passes together span old/new pixels).
pub fn jarosz_window_size(old_dim: usize, new_dim: usize) -> usize {
    old_dim.div_ceil(2 * new_dim)
}

/// One 1-D box filter over `n` samples, exactly as the reference's running sum:
/// the window for output `o` covers inputs `o - (w - half) ..= o + half - 1`
/// with `half = (w + 2) / 2` (so even windows lean left), clipped at both ends
/// and divided by the number of samples actually inside. The running sum is
/// f32 and updated in the reference's order (add the entering sample, then
/// subtract the leaving one), which matters for bit agreement.
///
/// `get(i)` reads input sample `i`, `put(o, v)` writes output sample `o`; this
/// lets the row pass and the column pass share the code.
#[cfg(test)]
fn box_1d(n: usize, w: usize, mut get: impl FnMut(usize) -> f32, mut put: impl FnMut(usize, f32)) {
    let half = (w + 2) / 2;
    let lead = half - 1; // samples summed before the first write
    let grow = w - half + 1; // writes while the window grows
    let full = n - w; // writes with add + subtract
    let shrink = half - 1; // writes while the window shrinks
    let mut sum = 0.0f32;
    let mut count = 0usize;
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    for _ in 0..lead {
        sum += get(ri);
        count += 1;
        ri += 1;
    }
    for _ in 0..grow {
        sum += get(ri);
        count += 1;
        put(oi, sum / count as f32);
        ri += 1;
        oi += 1;
    }
    for _ in 0..full {
        sum += get(ri);
        sum -= get(li);
        put(oi, sum / count as f32);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..shrink {
        sum -= get(li);
        count -= 1;
        put(oi, sum / count as f32);
        li += 1;
        oi += 1;
    }
}

/// Jarosz tent filter (2 × [box along rows, then box along columns]) followed
/// by decimation to 64×64. Always filters, also for a 64×64 input (as the
/// reference's dihedral path does); [`pdq_from_luma`] adds the reference's
/// 64×64 pass-through. Needs `width, height >= 1`.
///
/// Bit-identical to running [`box_1d`] over every row and column as the
/// reference does, but faster in two ways that change no arithmetic:
/// - the row passes run 8 rows at once in vector lanes ([`box_lanes`]), so
///   the running sums no longer wait on each other's latency;
/// - the second pass computes only what decimation keeps: its row filter
///   divides and stores only at the 64 sampled columns (the running sum
///   still walks every pixel), and its column filter runs on those columns.
pub fn jarosz_downsample_64(luma: &[f32], width: usize, height: usize) -> [f32; 4096] {
    assert_eq!(
        luma.len(),
        width * height,
        "luma buffer does not match width*height"
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the feature this copy is compiled for.
        return unsafe { jarosz_avx2(luma, width, height) };
    }
    jarosz_body(luma, width, height)
}

/// The same code compiled for AVX2 (8-lane vectors: one per row block).
/// Only add, sub and div are used, never FMA, so results do not change.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn jarosz_avx2(luma: &[f32], width: usize, height: usize) -> [f32; 4096] {
    jarosz_body(luma, width, height)
}

thread_local! {
    // Full-size scratch planes, reused: fresh allocations of this size are
    // mapped pages that fault in on every image.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = Default::default();
}

#[inline(always)]
fn jarosz_body(luma: &[f32], width: usize, height: usize) -> [f32; 4096] {
    let win_rows = jarosz_window_size(width, 64); // window along each row
    let win_cols = jarosz_window_size(height, 64); // window along each column
    let cols: [usize; 64] = std::array::from_fn(|j| decimation_index(j, width));
    // Taken out of the thread-local for the call, so this body stays inlined
    // in (and compiled for the features of) its caller.
    let (mut a, mut b) = SCRATCH.take();
    a.resize(luma.len(), 0.0);
    b.resize(luma.len(), 0.0);
    let mut lanes = vec![[0.0f32; LANES]; width];
    let mut filtered = vec![[0.0f32; LANES]; width];
    // Pass 1: the whole image.
    for r in (0..height).step_by(LANES) {
        let rows = LANES.min(height - r);
        gather_rows(luma, width, height, r, &mut lanes);
        box_lanes(width, win_rows, &lanes, &mut filtered);
        for (l, dst) in a[r * width..(r + rows) * width]
            .chunks_exact_mut(width)
            .enumerate()
        {
            dst.iter_mut().zip(&filtered).for_each(|(d, s)| *d = s[l]);
        }
    }
    box_cols(&a, &mut b, width, height, win_cols);
    // Pass 2: rows kept only at the sampled columns (height × 64), then
    // those 64 columns.
    let mut sampled = vec![0.0f32; height * 64];
    for r in (0..height).step_by(LANES) {
        let rows = LANES.min(height - r);
        gather_rows(&b, width, height, r, &mut lanes);
        box_lanes(width, win_rows, &lanes, &mut filtered);
        for (l, dst) in sampled[r * 64..(r + rows) * 64]
            .chunks_exact_mut(64)
            .enumerate()
        {
            dst.iter_mut()
                .zip(cols)
                .for_each(|(d, c)| *d = filtered[c][l]);
        }
    }
    SCRATCH.set((a, b));
    let mut down = vec![0.0f32; height * 64];
    box_cols(&sampled, &mut down, 64, height, win_cols);
    let mut out = [0.0f32; 4096];
    for (i, dst) in out.chunks_exact_mut(64).enumerate() {
        let si = decimation_index(i, height);
        dst.copy_from_slice(&down[si * 64..(si + 1) * 64]);
    }
    out
}

/// Lanes per row block of [`box_rows`].
const LANES: usize = 8;

/// Gathers rows `r..r + LANES` (zeros past the last row) column-major into lanes.
#[inline(always)]
fn gather_rows(src: &[f32], width: usize, height: usize, r: usize, lanes: &mut [[f32; LANES]]) {
    let rows = LANES.min(height - r);
    for (l, row) in src[r * width..(r + rows) * width]
        .chunks_exact(width)
        .enumerate()
    {
        for (dst, &v) in lanes.iter_mut().zip(row) {
            dst[l] = v;
        }
    }
    for lane in lanes.iter_mut() {
        lane[rows..].fill(0.0);
    }
}

/// [`box_1d`]'s running sum on `LANES` independent sequences (lane `l` of
/// `input[i]` is sample `i` of sequence `l`): every lane sees exactly
/// box_1d's operations in box_1d's order, so results are bit-identical; the
/// lanes let the compiler use vector instructions instead of waiting on one
/// running sum's latency.
#[inline(always)]
fn box_lanes(n: usize, w: usize, input: &[[f32; LANES]], out: &mut [[f32; LANES]]) {
    #[inline(always)]
    fn add(s: &mut [f32; LANES], x: &[f32; LANES]) {
        s.iter_mut().zip(x).for_each(|(s, x)| *s += x);
    }
    #[inline(always)]
    fn sub(s: &mut [f32; LANES], x: &[f32; LANES]) {
        s.iter_mut().zip(x).for_each(|(s, x)| *s -= x);
    }
    #[inline(always)]
    fn div(d: &mut [f32; LANES], s: &[f32; LANES], c: f32) {
        d.iter_mut().zip(s).for_each(|(d, s)| *d = s / c);
    }
    let half = (w + 2) / 2;
    let (lead, grow, shrink) = (half - 1, w - half + 1, half - 1);
    let mut sum = [0.0f32; LANES];
    let mut count = 0usize;
    for x in &input[..lead] {
        add(&mut sum, x);
        count += 1;
    }
    // Output o reads input o + lead (entering) and o + lead - w (leaving).
    for o in 0..grow {
        add(&mut sum, &input[o + lead]);
        count += 1;
        div(&mut out[o], &sum, count as f32);
    }
    let c = count as f32;
    for o in grow..n - shrink {
        add(&mut sum, &input[o + lead]);
        sub(&mut sum, &input[o + lead - w]);
        div(&mut out[o], &sum, c);
    }
    for o in n - shrink..n {
        sub(&mut sum, &input[o + lead - w]);
        count -= 1;
        div(&mut out[o], &sum, count as f32);
    }
}

/// The reference's order written plainly: [`box_1d`] over each row, then each
/// column, twice, then decimation (what [`jarosz_downsample_64`] must equal).
#[cfg(test)]
fn jarosz_downsample_64_plain(luma: &[f32], width: usize, height: usize) -> [f32; 4096] {
    let win_rows = jarosz_window_size(width, 64);
    let win_cols = jarosz_window_size(height, 64);
    let mut a = luma.to_vec();
    let mut b = vec![0.0f32; luma.len()];
    for _pass in 0..2 {
        for (src, dst) in a.chunks_exact(width).zip(b.chunks_exact_mut(width)) {
            box_1d(width, win_rows, |i| src[i], |o, v| dst[o] = v);
        }
        for c in 0..width {
            box_1d(
                height,
                win_cols,
                |i| b[i * width + c],
                |o, v| a[o * width + c] = v,
            );
        }
    }
    decimate_64(&a, width, height)
}

/// Column box filter (same arithmetic as `box_1d`, vectorised over columns).
#[inline(always)]
fn box_cols(src: &[f32], dst: &mut [f32], width: usize, height: usize, w: usize) {
    let half = (w + 2) / 2;
    let lead = half - 1;
    let grow = w - half + 1;
    let full = height - w;
    let shrink = half - 1;
    let mut sum = vec![0.0f32; width];
    let row = |r: usize| &src[r * width..(r + 1) * width];
    let mut count = 0usize;
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    for _ in 0..lead {
        sum.iter_mut().zip(row(ri)).for_each(|(s, x)| *s += x);
        count += 1;
        ri += 1;
    }
    for _ in 0..grow {
        sum.iter_mut().zip(row(ri)).for_each(|(s, x)| *s += x);
        count += 1;
        let c = count as f32;
        dst[oi * width..(oi + 1) * width]
            .iter_mut()
            .zip(&sum)
            .for_each(|(d, s)| *d = s / c);
        ri += 1;
        oi += 1;
    }
    for _ in 0..full {
        let (r_in, r_out) = (row(ri), row(li));
        sum.iter_mut()
            .zip(r_in.iter().zip(r_out))
            .for_each(|(s, (x, y))| {
                *s += x;
                *s -= y;
            });
        let c = count as f32;
        dst[oi * width..(oi + 1) * width]
            .iter_mut()
            .zip(&sum)
            .for_each(|(d, s)| *d = s / c);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..shrink {
        sum.iter_mut().zip(row(li)).for_each(|(s, y)| *s -= y);
        count -= 1;
        let c = count as f32;
        dst[oi * width..(oi + 1) * width]
            .iter_mut()
            .zip(&sum)
            .for_each(|(d, s)| *d = s / c);
        li += 1;
        oi += 1;
    }
}

/// Source index for output `i` of 64: the sample under the output pixel's
/// centre, floor((i + 0.5) · n / 64), computed in f64 as the reference does.
pub fn decimation_index(i: usize, n: usize) -> usize {
    (((i as f64 + 0.5) * n as f64) / 64.0) as usize
}

#[cfg(test)]
fn decimate_64(buf: &[f32], width: usize, height: usize) -> [f32; 4096] {
    let mut out = [0.0f32; 4096];
    for i in 0..64 {
        let si = decimation_index(i, height);
        for j in 0..64 {
            out[i * 64 + j] = buf[si * width + decimation_index(j, width)];
        }
    }
    out
}

/// Quality: count of significant gradients in the 64×64 image. Each vertical
/// and horizontal neighbour difference is scaled in f32 as ((u - v) · 100) /
/// 255, truncated to an integer, and its absolute value summed; the sum / 90
/// (integer division) capped at 100 is the quality (reference
/// `pdqImageDomainQualityMetric`; constants hand-tuned by its authors).
pub fn quality_from_64(buf: &[f32; 4096]) -> u8 {
    let step = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut sum: i32 = 0;
    for i in 0..63 {
        for j in 0..64 {
            sum += step(buf[i * 64 + j], buf[(i + 1) * 64 + j]).abs();
        }
    }
    for i in 0..64 {
        for j in 0..63 {
            sum += step(buf[i * 64 + j], buf[i * 64 + j + 1]).abs();
        }
    }
    (sum / 90).min(100) as u8
}

/// The 16×64 DCT-II matrix, row-major: D[i][j] = sqrt(2/64) · cos(π/(2·64) ·
/// (i+1) · (2j+1)). Rows start at frequency 1 because PDQ drops the DC term.
/// As in the reference, the scale is rounded to f32 first, the product is
/// taken in f64, and the result rounded to f32.
pub fn dct_matrix_16x64() -> &'static [f32; 1024] {
    static M: OnceLock<[f32; 1024]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let mut m = [0.0f32; 1024];
        for i in 0..16 {
            for j in 0..64 {
                let angle =
                    (std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                m[i * 64 + j] = (scale as f64 * angle.cos()) as f32;
            }
        }
        m
    })
}

/// B = D · A · Dᵀ (16×16, row-major; row = vertical frequency, column =
/// horizontal frequency), f32. Order as the reference: first T = D·A with
/// T[i][j] = Σ_k D[i][k]·A[k][j] summed k = 0..63 from 0.0, then
/// B[i][j] = Σ_k T[i][k]·D[j][k], k = 0..63 from 0.0.
pub fn dct16_from_64(buf: &[f32; 4096]) -> [f32; 256] {
    let d = dct_matrix_16x64();
    let mut t = [0.0f32; 1024];
    for i in 0..16 {
        let drow = &d[i * 64..(i + 1) * 64];
        let trow = &mut t[i * 64..(i + 1) * 64];
        // Accumulate whole rows of A so each t[i][j] still sums k = 0..63 in order.
        for (k, &dk) in drow.iter().enumerate() {
            let arow = &buf[k * 64..(k + 1) * 64];
            trow.iter_mut().zip(arow).for_each(|(s, &a)| *s += dk * a);
        }
    }
    let mut out = [0.0f32; 256];
    for i in 0..16 {
        let trow = &t[i * 64..(i + 1) * 64];
        for j in 0..16 {
            let drow = &d[j * 64..(j + 1) * 64];
            let mut s = 0.0f32;
            for k in 0..64 {
                s += trow[k] * drow[k];
            }
            out[i * 16 + j] = s;
        }
    }
    out
}

/// The 128th smallest of the 256 values (index 127 after sorting). The
/// reference uses Torben's selection, which for an even count returns this
/// lower median; sorting gives the same element.
pub fn median_dct16(dct: &[f32; 256]) -> f32 {
    let mut v = *dct;
    let (_, m, _) = v.select_nth_unstable_by(127, |a, b| a.total_cmp(b));
    *m
}

/// Bit `row*16 + col` is set iff that coefficient is strictly greater than the
/// median.
pub fn hash_from_dct16(dct: &[f32; 256]) -> Hash256 {
    let med = median_dct16(dct);
    let mut h = Hash256::default();
    for (k, &v) in dct.iter().enumerate() {
        if v > med {
            h.set_bit(k);
        }
    }
    h
}

/// The 16×16 DCT of each dihedral transform of the image, in
/// [`DIHEDRAL_NAMES`] order, from the one DCT of the original. A mirror along
/// an axis multiplies frequency `f` (here index `f-1`, DC is skipped) by
/// (-1)^f, so even indices change sign; a transpose swaps row and column.
/// Sign changes are exact, so these equal the reference's
/// `dct16OriginalTo*` tables bit for bit.
pub fn dihedral_dcts(dct: &[f32; 256]) -> [[f32; 256]; 8] {
    let a = |i: usize, j: usize| dct[i * 16 + j];
    let neg_even = |x: f32, idx: usize| if idx & 1 == 0 { -x } else { x };
    let neg_odd_sum = |x: f32, i: usize, j: usize| if (i + j) & 1 == 1 { -x } else { x };
    let mut out = [[0.0f32; 256]; 8];
    for i in 0..16 {
        for j in 0..16 {
            let v = a(i, j);
            out[0][i * 16 + j] = v;
            out[1][j * 16 + i] = neg_even(v, j); // rot90 (CCW): transpose, sign by column
            out[2][i * 16 + j] = neg_odd_sum(v, i, j); // rot180
            out[3][j * 16 + i] = neg_even(v, i); // rot270 (CW): transpose, sign by row
            out[4][i * 16 + j] = neg_even(v, i); // flipX: top/bottom mirror
            out[5][i * 16 + j] = neg_even(v, j); // flipY: left/right mirror
            out[6][j * 16 + i] = v; // flipPlus1: transpose
            out[7][j * 16 + i] = neg_odd_sum(v, i, j); // flipMinus1: anti-transpose
        }
    }
    out
}

/// PDQ of a luma image (row-major, `width × height`).
pub fn pdq_from_luma(luma: &[f32], width: usize, height: usize) -> Pdq {
    if width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM {
        return Pdq {
            hash: Hash256::default(),
            quality: 0,
        };
    }
    let buf = if width == 64 && height == 64 {
        // The reference skips filtering when the input is already 64×64
        // (e.g. video frames scaled by ffmpeg). With a window of 1 the box
        // filter is the identity only up to running-sum rounding, so the
        // shortcut is kept for bit agreement.
        let mut b = [0.0f32; 4096];
        b.copy_from_slice(luma);
        b
    } else {
        jarosz_downsample_64(luma, width, height)
    };
    let quality = quality_from_64(&buf);
    Pdq {
        hash: hash_from_dct16(&dct16_from_64(&buf)),
        quality,
    }
}

/// PDQ of an image stored at `full_w × full_h` from its luma decoded at
/// `width × height` by a DCT-domain scaled decode: the reference filter
/// emulated on the small image ([`scaled`]). Unscaled input takes the
/// bit-exact reference path.
pub fn pdq_from_scaled_luma(
    luma: &[f32],
    width: usize,
    height: usize,
    full_w: usize,
    full_h: usize,
) -> Pdq {
    if (width, height) == (full_w, full_h) || width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM
    {
        return pdq_from_luma(luma, width, height);
    }
    let buf = scaled::downsample_64_from_scaled(luma, width, height, full_w, full_h);
    Pdq {
        hash: hash_from_dct16(&dct16_from_64(&buf)),
        quality: quality_from_64(&buf),
    }
}

/// [`pdq_dihedral_from_luma`] for a scaled decode (see [`pdq_from_scaled_luma`]).
pub fn pdq_dihedral_from_scaled_luma(
    luma: &[f32],
    width: usize,
    height: usize,
    full_w: usize,
    full_h: usize,
) -> ([Hash256; 8], u8) {
    if (width, height) == (full_w, full_h) || width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM
    {
        return pdq_dihedral_from_luma(luma, width, height);
    }
    let buf = scaled::downsample_64_from_scaled(luma, width, height, full_w, full_h);
    let dcts = dihedral_dcts(&dct16_from_64(&buf));
    (
        std::array::from_fn(|v| hash_from_dct16(&dcts[v])),
        quality_from_64(&buf),
    )
}

/// PDQ of a decoded RGB image, at the resolution given (no resize).
pub fn pdq_from_rgb(img: &image::RgbImage) -> Pdq {
    pdq_from_luma(
        &luma_from_rgb(img),
        img.width() as usize,
        img.height() as usize,
    )
}

/// The 8 dihedral hashes ([`DIHEDRAL_NAMES`] order) and the quality.
///
/// Like the reference's `pdqDihedralHash256esFromFloatLuma`, this always runs
/// the Jarosz filter (no 64×64 shortcut), so for a 64×64 input `[0]` may differ
/// from [`pdq_from_luma`] by a rounding-level bit. The variants match hashing
/// the transformed image only up to the filter's asymmetries: the even-window
/// box filter and the decimation grid are not mirror-symmetric, so on general
/// sizes some variants differ from a direct hash of the transformed image by a
/// number of bits (the reference has the same property).
pub fn pdq_dihedral_from_luma(luma: &[f32], width: usize, height: usize) -> ([Hash256; 8], u8) {
    if width < MIN_HASHABLE_DIM || height < MIN_HASHABLE_DIM {
        return ([Hash256::default(); 8], 0);
    }
    let buf = jarosz_downsample_64(luma, width, height);
    let quality = quality_from_64(&buf);
    let dcts = dihedral_dcts(&dct16_from_64(&buf));
    (std::array::from_fn(|v| hash_from_dct16(&dcts[v])), quality)
}

/// [`pdq_dihedral_from_luma`] of a decoded RGB image.
pub fn pdq_dihedral_from_rgb(img: &image::RgbImage) -> ([Hash256; 8], u8) {
    pdq_dihedral_from_luma(
        &luma_from_rgb(img),
        img.width() as usize,
        img.height() as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectorised_luma_equals_the_per_pixel_formula() {
        // 13 × 7: not a multiple of 8 pixels, so the tail runs too.
        let img = image::RgbImage::from_fn(13, 7, |x, y| {
            image::Rgb([
                (x * 19 + y * 7) as u8,
                (x * y * 31) as u8,
                255 - (x * 3 + y * 40) as u8,
            ])
        });
        let want: Vec<f32> = img
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(|c| c as u32);
                (299 * r + 587 * g + 114 * b) as f32 / 1000.0
            })
            .collect();
        let got = luma_from_rgb(&img);
        assert_eq!(got.len(), want.len());
        assert!(got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let mut plain = vec![0f32; want.len()];
        luma_into(img.as_raw(), &mut plain);
        assert_eq!(plain, want);
    }

    #[test]
    fn window_size_is_ceil_old_over_2new() {
        assert_eq!(jarosz_window_size(1024, 64), 8); // the reference's worked example
        assert_eq!(jarosz_window_size(128, 64), 1);
        assert_eq!(jarosz_window_size(129, 64), 2);
        assert_eq!(jarosz_window_size(5, 64), 1);
    }

    /// The reference's worked example for windows 7 and 8 over 0..16 (sums
    /// listed in downscaling.cpp's comments) divided by the samples inside.
    #[test]
    fn box_filter_edges_match_reference_example() {
        let input: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let run = |w| {
            let mut out = vec![0.0f32; 16];
            box_1d(16, w, |i| input[i], |o, v| out[o] = v);
            out
        };
        let sums7 = [
            6., 10., 15., 21., 28., 35., 42., 49., 56., 63., 70., 77., 84., 75., 65., 54.,
        ];
        let cnt7 = [
            4., 5., 6., 7., 7., 7., 7., 7., 7., 7., 7., 7., 7., 6., 5., 4.,
        ];
        let sums8 = [
            10., 15., 21., 28., 36., 44., 52., 60., 68., 76., 84., 92., 84., 75., 65., 54.,
        ];
        let cnt8 = [
            5., 6., 7., 8., 8., 8., 8., 8., 8., 8., 8., 8., 7., 6., 5., 4.,
        ];
        let (o7, o8) = (run(7), run(8));
        for i in 0..16 {
            assert_eq!(o7[i], sums7[i] / cnt7[i], "w7 out[{i}]");
            assert_eq!(o8[i], sums8[i] / cnt8[i], "w8 out[{i}]");
        }
    }

    #[test]
    fn column_pass_equals_strided_1d_pass() {
        let (w, h) = (7usize, 300usize);
        let src: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 101) as f32 * 0.37).collect();
        let mut fast = vec![0.0f32; w * h];
        box_cols(&src, &mut fast, w, h, 3);
        for c in 0..w {
            let mut col = vec![0.0f32; h];
            box_1d(h, 3, |i| src[i * w + c], |o, v| col[o] = v);
            for r in 0..h {
                assert_eq!(fast[r * w + c].to_bits(), col[r].to_bits());
            }
        }
    }

    /// The lane-parallel, decimation-aware filter equals the plain reference
    /// order bit for bit: odd and even windows, widths below 64 (repeated
    /// sampled columns), heights not a multiple of the lane count.
    #[test]
    fn fast_filter_equals_plain_reference_order() {
        for (w, h) in [
            (5, 5),
            (13, 7),
            (64, 64),
            (63, 200),
            (129, 131),
            (540, 407),
            (1024, 9),
            (17, 1030),
        ] {
            let mut s = (w * 7919 + h) as u32;
            let luma: Vec<f32> = (0..w * h)
                .map(|i| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    ((s % 25500) as f32 / 100.0) + (i % w) as f32 * 0.01
                })
                .collect();
            let (fast, plain) = (
                jarosz_downsample_64(&luma, w, h),
                jarosz_downsample_64_plain(&luma, w, h),
            );
            for k in 0..4096 {
                assert_eq!(fast[k].to_bits(), plain[k].to_bits(), "{w}x{h} at {k}");
            }
        }
    }

    #[test]
    fn tiny_and_flat_inputs() {
        assert_eq!(
            pdq_from_luma(&[1.0; 16], 4, 4),
            Pdq {
                hash: Hash256::default(),
                quality: 0
            }
        );
        assert_eq!(pdq_from_luma(&[100.0; 100 * 80], 100, 80).quality, 0);
    }

    #[test]
    fn median_is_lower_middle() {
        let v: [f32; 256] = std::array::from_fn(|i| ((i * 97) % 256) as f32);
        assert_eq!(median_dct16(&v), 127.0);
        assert_eq!(
            hash_from_dct16(&v)
                .words
                .iter()
                .map(|w| w.count_ones())
                .sum::<u32>(),
            128
        );
    }
}
