//! One image's line of `lookalike hash` (and of the Python `lookalike.hash`).

use image::RgbImage;

use crate::descriptors::{describe_with, Extras};

/// PDQ in ThreatExchange's hex, its quality, and pHash in imagehash's hex.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HashRow {
    /// The image's name as reports print it.
    pub path: String,
    /// PDQ of the image as it is (no other orientation), 64 hex digits.
    pub pdq: String,
    /// PDQ quality, 0..=100.
    pub quality: u8,
    /// pHash, 16 hex digits.
    pub phash: String,
}

impl HashRow {
    /// The hashes of `img`, decoded upright, with no name yet (see
    /// [`HashRow::named`]: workers hash, the caller knows the name). Only
    /// what is printed is computed: no keypoints, no other orientations.
    pub fn of(img: &RgbImage) -> HashRow {
        let d = describe_with(
            img,
            Extras {
                embedding: false,
                keypoints: false,
                regions: false,
            },
        );
        HashRow {
            path: String::new(),
            pdq: d.pdq.to_hex(),
            quality: d.quality,
            phash: format!("{:016x}", d.phash),
        }
    }

    /// This row with its name.
    pub fn named(self, path: String) -> HashRow {
        HashRow { path, ..self }
    }
}
