//! Image descriptors, one module each. Every descriptor has this plain CPU
//! reference; the WGSL engine (`crate::gpu`) is held against it by tests.

pub mod hash256;
pub mod pdq;
pub mod phash;

pub use hash256::Hash256;

/// Everything the index stores for one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptors {
    pub pdq: Hash256,
    /// PDQ quality in 0..=100; below 50 the hash is unreliable (Meta's guidance).
    pub quality: u8,
    pub phash: u64,
}

/// Computes every descriptor of a decoded RGB image (CPU reference path).
pub fn describe(img: &image::RgbImage) -> Descriptors {
    let p = pdq::pdq_from_rgb(img);
    Descriptors { pdq: p.hash, quality: p.quality, phash: phash::phash_from_rgb(img) }
}

/// What a query needs: all 8 dihedral PDQ variants (from one DCT) plus pHash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryDescriptors {
    /// [original, rot90, rot180, rot270, flipX, flipY, flipPlus1, flipMinus1]
    pub pdq: [Hash256; 8],
    pub quality: u8,
    pub phash: u64,
}

pub fn describe_query(img: &image::RgbImage) -> QueryDescriptors {
    let (pdq, quality) = pdq::pdq_dihedral_from_rgb(img);
    QueryDescriptors { pdq, quality, phash: phash::phash_from_rgb(img) }
}
