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
//! by stage), one file per concern:
//! 1. [`luma_from_rgb`] (`luma.rs`): Rec.601 luma as f32.
//! 2. [`jarosz_downsample_64`] (`jarosz.rs`): two passes of (box along rows,
//!    box along columns), then nearest-centre decimation to 64×64.
//! 3. [`quality_from_64`] (`quality.rs`): gradient-count quality, integer as
//!    in the reference.
//! 4. [`dct16_from_64`] (`dct.rs`): the 16×16 block of DCT-II frequencies
//!    1..=16 (DC skipped) as `D·A·Dᵀ` with a 16×64 matrix.
//! 5. [`hash_from_dct16`] (`dct.rs`): bit `row*16+col` = coefficient > median.
//! 6. [`dihedral_dcts`] (`dct.rs`): the 8 rotations/flips from the one 16×16
//!    DCT.
//!
//! This module holds the entry points that chain the stages; [`scaled`] is
//! the filter emulated on a reduced-scale decode (CPU only).
//!
//! GPU: stages 1–2 are shaders/pdq_downsample.wgsl, stages 3–6
//! shaders/pdq_dct.wgsl (the hash bits of all 8 variants); host code
//! src/gpu/describe.rs and src/gpu/pipelines.rs. tests/gpu_parity.rs checks
//! them against these functions bit for bit.
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

mod dct;
mod jarosz;
mod luma;
mod quality;
pub mod scaled;

pub use dct::{dct16_from_64, dct_matrix_16x64, dihedral_dcts, hash_from_dct16, median_dct16};
pub use jarosz::{decimation_index, jarosz_downsample_64, jarosz_window_size};
pub use luma::luma_from_rgb;
pub use quality::quality_from_64;

use super::Hash256;

/// Hash plus quality (0..=100; Meta suggests discarding hashes below 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pdq {
    /// The 256-bit hash.
    pub hash: Hash256,
    /// Quality 0..=100.
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
}
