//! PDQ stage 3: the quality score from the 64×64 image (GPU copy: `quality`
//! in shaders/pdq_dct.wgsl).

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
