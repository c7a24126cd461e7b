//! PDQ stage 2: the Jarosz tent filter (two passes of a box along rows then
//! columns) and nearest-centre decimation to 64×64, in the reference's exact
//! operation order (GPU copy: shaders/pdq_downsample.wgsl, host code
//! src/gpu/describe.rs).

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
/// reference's dihedral path does); [`super::pdq_from_luma`] adds the reference's
/// 64×64 pass-through. Needs `width, height >= 1`.
///
/// Bit-identical to running `box_1d` over every row and column as the
/// reference does, but faster in two ways that change no arithmetic:
/// - the row passes run 8 rows at once in vector lanes (`box_lanes`), so
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
