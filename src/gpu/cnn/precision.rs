//! How the CNN stores weights and feature maps on the device: f32, or f16
//! where the adapter has SHADER_F16 (the `S` of `shaders/cnn.wgsl`), and the
//! host-side conversions of uploads and readbacks.

use std::borrow::Cow;
use std::fmt;

use crate::cnn::safetensors::{f16_to_f32, f32_to_f16};

/// How the CNN stores weights and feature maps on the device (the `S` of
/// cnn.wgsl). Arithmetic and accumulation are f32 in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE binary32 storage.
    F32,
    /// IEEE binary16 storage (needs SHADER_F16): 11 significant bits per
    /// stored value, finite up to 65 504.
    F16,
}

impl Precision {
    /// f16 where the device has it (`GpuEngine::with_cnn_precision` and
    /// the CLI's `LOOKALIKE_CNN_F32=1` ask for f32).
    pub(crate) fn default_for(f16: bool) -> Precision {
        if f16 {
            Precision::F16
        } else {
            Precision::F32
        }
    }

    /// `x` as this precision stores it (f16: nearest, ties to even).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::F16 => f16_to_f32(f32_to_f16(x)),
        }
    }

    /// Bytes per stored value.
    pub(super) fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// `v` as the device stores it, padded to a multiple of 4 bytes (wgpu's
    /// copy alignment) for odd f16 counts.
    pub(super) fn encode(self, v: &[f32]) -> Cow<'_, [u8]> {
        match self {
            Precision::F32 => Cow::Borrowed(bytemuck::cast_slice(v)),
            Precision::F16 => {
                let mut out = Vec::with_capacity((v.len() * 2).next_multiple_of(4));
                for &x in v {
                    out.extend_from_slice(&f32_to_f16(x).to_ne_bytes());
                }
                out.resize(out.len().next_multiple_of(4), 0);
                Cow::Owned(out)
            }
        }
    }

    /// The first `len` stored values of `bytes`, widened to f32.
    pub(super) fn decode(self, bytes: &[u8], len: usize) -> Vec<f32> {
        match self {
            Precision::F32 => bytemuck::cast_slice::<u8, f32>(bytes)[..len].to_vec(),
            Precision::F16 => bytes[..len * 2]
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_ne_bytes([b[0], b[1]])))
                .collect(),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16 storage, f32 accumulation",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(f32_to_f16(x), h, "{h:#06x} -> {x}");
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        // Between each pair of neighbours (normal, subnormal, across the
        // normal/subnormal edge, to the largest finite): ties go to the even one,
        // anything past the midpoint to the nearer one.
        for h in (0u16..0x7bff).step_by(7).chain([0x3ff, 0x400, 0x7bfe]) {
            let (a, b) = (f16_to_f32(h) as f64, f16_to_f32(h + 1) as f64);
            let mid = ((a + b) / 2.0) as f32; // exact: f32 has the bits
            let even = if h % 2 == 0 { h } else { h + 1 };
            assert_eq!(f32_to_f16(mid), even, "tie after {h:#06x}");
            assert_eq!(f32_to_f16(-mid), even | 0x8000, "-tie after {h:#06x}");
            let up = f32::from_bits(mid.to_bits() + 1);
            let down = f32::from_bits(mid.to_bits() - 1);
            assert_eq!(f32_to_f16(up), h + 1, "above the tie after {h:#06x}");
            assert_eq!(f32_to_f16(down), h, "below the tie after {h:#06x}");
        }
        assert_eq!(f32_to_f16(65520.0), 0x7c00, "past the largest finite: inf");
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(1e-8), 0, "below half the smallest subnormal");
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
    }

    #[test]
    fn f16_buffers_are_padded_to_four_bytes() {
        let v = [1.0f32, -2.0, 0.5];
        let b = Precision::F16.encode(&v);
        assert_eq!(b.len(), 8);
        assert_eq!(Precision::F16.decode(&b, 3), v);
        assert_eq!(Precision::F32.decode(&Precision::F32.encode(&v), 3), v);
    }
}
