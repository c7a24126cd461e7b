//! PDQ's downsampling for an image that was decoded at reduced scale.
//!
//! PDQ's tent filter (two box passes of ⌈n/128⌉ px) is defined on the stored
//! resolution, so running it on a ½, ¼ or ⅛ DCT-domain decode gives other bits
//! (only ~36 % of hashes stayed within 8 bits at ¼–⅛ scale). A scaled decode
//! is, to a good approximation, the block mean of the full-size image over
//! each s×s block (exactly so for the ⅛ decode, which keeps only the DC term).
//! The reference filter is linear, so each of its 64 decimated outputs per
//! axis is a weighted sum of full-size pixels; summing those weights over
//! each block gives the weights on the reduced pixels. Applying them
//! separably reproduces the full-size hash from the small decode, at a
//! fraction of the cost (the expensive part, decoding and filtering every
//! full-size pixel, never happens).
//!
//! Not bit-exact (the blocks are only approximately means; sums run in
//! another order): `--exact` keeps the reference path.

use super::{decimation_index, jarosz_window_size};

/// One axis: for each of the 64 outputs, the first reduced pixel it reads and
/// its weights on consecutive reduced pixels.
struct AxisWeights {
    taps: Vec<(usize, Vec<f32>)>,
}

/// Window of the reference box filter around output `o` (inclusive, clipped):
/// `o - (w - half) ..= o + half - 1` with `half = (w + 2) / 2`.
fn window(o: usize, w: usize, n: usize) -> (usize, usize) {
    let half = (w + 2) / 2;
    (o.saturating_sub(w - half), (o + half - 1).min(n - 1))
}

impl AxisWeights {
    /// `full`: stored length; `reduced`: decoded length (⌈full / s⌉ for a
    /// 1/s scaled decode).
    fn new(full: usize, reduced: usize) -> Self {
        let w = jarosz_window_size(full, 64);
        // Block size of the scaled decode; pixel x of the full image lies in
        // reduced pixel x / s.
        let s = ((full as f64 / reduced as f64).round() as usize).max(1) as f64;
        // Reduced pixel k is a sample of the (low-passed) full image at its
        // block centre (k + ½)·s − ½ (what libjpeg's reduced IDCT computes);
        // between centres the full image is reconstructed from the samples
        // with Keys' cubic (a = −½), clamped at the ends.
        let centre = |x: usize| (x as f64 + 0.5) / s - 0.5;
        let cubic = |t: f64| {
            let t = t.abs();
            if t < 1.0 {
                (1.5 * t - 2.5) * t * t + 1.0
            } else if t < 2.0 {
                ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
            } else {
                0.0
            }
        };
        let last = (reduced - 1) as isize;
        let taps = (0..64)
            .map(|i| {
                let p = decimation_index(i, full);
                let (a0, a1) = window(p, w, full);
                // Full-size support of two box passes: the windows of a0 and a1.
                let (lo, hi) = (window(a0, w, full).0, window(a1, w, full).1);
                let k0 = (centre(lo).floor() as isize - 1).clamp(0, last) as usize;
                let k1 = (centre(hi).floor() as isize + 2).clamp(0, last) as usize;
                let mut wt = vec![0f64; k1 - k0 + 1];
                let outer = (a1 - a0 + 1) as f64;
                for j in a0..=a1 {
                    let (b0, b1) = window(j, w, full);
                    let inner = (b1 - b0 + 1) as f64;
                    for x in b0..=b1 {
                        let t = centre(x);
                        let v = 1.0 / (outer * inner);
                        let base = t.floor() as isize;
                        for k in base - 1..=base + 2 {
                            let c = cubic(t - k as f64);
                            let kk = k.clamp(0, last) as usize;
                            wt[kk - k0] += v * c;
                        }
                    }
                }
                (k0, wt.into_iter().map(|v| v as f32).collect())
            })
            .collect();
        AxisWeights { taps }
    }
}

/// PDQ's 64×64 filtered, decimated luma of an image stored at
/// `full_w × full_h` from its luma decoded at `width × height` (a 1/s
/// scaled decode, same orientation).
pub fn downsample_64_from_scaled(
    luma: &[f32],
    width: usize,
    height: usize,
    full_w: usize,
    full_h: usize,
) -> [f32; 4096] {
    assert_eq!(
        luma.len(),
        width * height,
        "luma buffer does not match width*height"
    );
    let cols = AxisWeights::new(full_w, width);
    let rows = AxisWeights::new(full_h, height);
    // Horizontal pass: every reduced row to 64 columns.
    let mut tmp = vec![0f32; height * 64];
    for (src, dst) in luma.chunks_exact(width).zip(tmp.chunks_exact_mut(64)) {
        for (d, (k0, wt)) in dst.iter_mut().zip(&cols.taps) {
            *d = src[*k0..*k0 + wt.len()]
                .iter()
                .zip(wt)
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    // Vertical pass: 64 rows, each a weighted sum of reduced rows.
    let mut out = [0f32; 4096];
    for (dst, (k0, wt)) in out.chunks_exact_mut(64).zip(&rows.taps) {
        for (r, &c) in wt.iter().enumerate() {
            let src = &tmp[(k0 + r) * 64..(k0 + r + 1) * 64];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += c * s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an unscaled image the weights are the reference filter itself.
    #[test]
    fn unscaled_weights_reproduce_the_reference_filter() {
        let (w, h) = (203, 157);
        let luma: Vec<f32> = (0..w * h)
            .map(|i| ((i * 7919) % 251) as f32 + (i % w) as f32 * 0.3)
            .collect();
        let reference = super::super::jarosz_downsample_64(&luma, w, h);
        let ours = downsample_64_from_scaled(&luma, w, h, w, h);
        for (a, b) in reference.iter().zip(&ours) {
            assert!((a - b).abs() < 1e-2, "{a} vs {b}");
        }
    }

    /// Block means of a smooth image, weighted, come close to the full-size
    /// filter (exact only where the image is constant over each block).
    #[test]
    fn block_means_come_close_to_the_full_size_result() {
        let (w, h, s) = (640, 480, 4);
        let f = |x: usize, y: usize| {
            let (x, y) = (x as f32, y as f32);
            128.0 + 60.0 * (x / 37.0).sin() * (y / 23.0).cos() + 0.05 * x
        };
        let full: Vec<f32> = (0..w * h).map(|i| f(i % w, i / w)).collect();
        let (rw, rh) = (w / s, h / s);
        let mut red = vec![0f32; rw * rh];
        for y in 0..h {
            for x in 0..w {
                red[(y / s) * rw + x / s] += full[y * w + x] / (s * s) as f32;
            }
        }
        let reference = super::super::jarosz_downsample_64(&full, w, h);
        let ours = downsample_64_from_scaled(&red, rw, rh, w, h);
        for (a, b) in reference.iter().zip(&ours) {
            assert!((a - b).abs() < 0.5, "{a} vs {b}");
        }
    }
}
