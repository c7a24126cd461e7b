//! PDQ stage 1: Rec.601 luma of the decoded RGB image, as f32 (GPU copy:
//! `luma` in shaders/pdq_downsample.wgsl).

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
}
