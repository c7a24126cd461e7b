//! Seeded CNN test data and the tolerance measure shared by the parity tests.

use lookalike::cnn::Tensor;

/// Seeded values in [-1, 1).
pub fn rnd(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

pub fn tensor(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    Tensor {
        n,
        c,
        h,
        w,
        data: rnd(n * c * h * w, seed),
    }
}

/// Max |a − b| over max(1, max |b|): absolute for values near 1, relative above.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(d.is_finite(), "non-finite difference");
    assert!(
        b.iter().any(|v| v.abs() > 1e-3),
        "reference output is all (near) zero: nothing compared"
    );
    d / scale
}
