//! Image descriptors, one module each. Every descriptor has this plain CPU
//! reference; the WGSL engine (`crate::gpu`) is held against it by tests.

pub mod embedding;
pub mod hash256;
pub mod keypoints;
pub mod pdq;
pub mod phash;
pub mod regions;
pub mod trim;

pub use embedding::Embedding;
pub use hash256::Hash256;
pub use keypoints::{IndexKeypoints, KeyPoint};

/// Everything the index stores for one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptors {
    /// PDQ hash of the upright image.
    pub pdq: Hash256,
    /// PDQ quality in 0..=100; below 50 the hash is unreliable (Meta's guidance).
    pub quality: u8,
    /// pHash (64 bits, imagehash bit order): the second opinion when PDQ quality
    /// is low.
    pub phash: u64,
    /// PDQ of the image with uniform borders and caption bars trimmed
    /// (`trim`); equal to `pdq` when there was nothing to trim.
    pub pdq_trim: Hash256,
    /// Local features for geometric verification (`search::verify`).
    pub keypoints: IndexKeypoints,
    /// Learned embedding (all zero when the index is hash-only). `describe`
    /// leaves it empty; `index` adds it unless `--hash-only`.
    pub embedding: Embedding,
}

/// The optional descriptors to compute besides the hashes (which always are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extras {
    /// The learned embedding (off: `--hash-only`).
    pub embedding: bool,
    /// Keypoints for geometric verification (off: `index --no-keypoints`,
    /// or queries against an index without keypoints).
    pub keypoints: bool,
    /// Queries only: also describe the regions where a copy may sit inside
    /// the image ([`regions`]; off: `check --no-regions`). Index images
    /// ignore it.
    pub regions: bool,
}

impl Extras {
    /// Hashes and keypoints, no embedding: what `describe` computes.
    pub const HASHES_AND_KEYPOINTS: Extras = Extras {
        embedding: false,
        keypoints: true,
        regions: false,
    };

    /// These extras for the proposed regions of a query: the same, without
    /// regions of regions.
    pub fn for_regions(self) -> Extras {
        Extras {
            regions: false,
            ..self
        }
    }
}

/// Computes every descriptor of a decoded RGB image (CPU reference path).
pub fn describe(img: &image::RgbImage) -> Descriptors {
    describe_with(img, Extras::HASHES_AND_KEYPOINTS)
}

/// The hashes plus the `extras` asked for (keypoints are about half the cost
/// of describing a small image, and 4.6 KB of the index per image).
pub fn describe_with(img: &image::RgbImage, extras: Extras) -> Descriptors {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let luma = pdq::luma_from_rgb(img);
    let p = pdq::pdq_from_luma(&luma, w, h);
    let pdq_trim = trimmed_luma(img, &luma)
        .map(|(l, tw, th)| pdq::pdq_from_luma(&l, tw, th).hash)
        .unwrap_or(p.hash);
    Descriptors {
        pdq: p.hash,
        quality: p.quality,
        phash: phash::phash_from_rgb(img),
        pdq_trim,
        keypoints: if extras.keypoints {
            IndexKeypoints::from_points(&keypoints::extract_from_luma(
                &luma,
                w,
                h,
                keypoints::INDEX_KEYPOINTS,
            ))
        } else {
            IndexKeypoints::default()
        },
        embedding: if extras.embedding {
            Embedding::from_f32(&embedding::embed(img))
        } else {
            Embedding::default()
        },
    }
}

/// The trimmed view's luma, cut from the image's luma (luma is per pixel, so
/// this equals the luma of the cropped image without converting it twice).
fn trimmed_luma(img: &image::RgbImage, luma: &[f32]) -> Option<(Vec<f32>, usize, usize)> {
    let (x, y, tw, th) = trim::content_box(img)?;
    let (x, y, tw, th, w) = (
        x as usize,
        y as usize,
        tw as usize,
        th as usize,
        img.width() as usize,
    );
    let out = (y..y + th)
        .flat_map(|r| &luma[r * w + x..r * w + x + tw])
        .copied()
        .collect();
    Some((out, tw, th))
}

/// What a query needs: all 8 dihedral PDQ variants (from one DCT) plus pHash.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryDescriptors {
    /// [original, rot90, rot180, rot270, flipX, flipY, flipPlus1, flipMinus1]
    pub pdq: [Hash256; 8],
    /// PDQ quality of the upright hash, 0..=100.
    pub quality: u8,
    /// pHash of the upright image (imagehash bit order).
    pub phash: u64,
    /// The 8 variants of the trimmed view, when trimming removed something.
    pub pdq_trim: Option<[Hash256; 8]>,
    /// Local features for geometric verification (up to `QUERY_KEYPOINTS`).
    pub keypoints: Vec<KeyPoint>,
    /// Learned embedding (unit length), when the index has embeddings.
    pub embedding: Option<Vec<f32>>,
    /// The regions where a copy may sit inside the query, each described on
    /// its own (empty unless asked for, and for most images).
    pub regions: Vec<Region>,
}

/// A part of a query image described on its own ([`regions::proposals`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Where it is in the query's pixels.
    pub rect: regions::Rect,
    /// Its descriptors (never with regions of their own).
    pub q: QueryDescriptors,
}

impl QueryDescriptors {
    /// All query hashes to compare: the 8 orientations, then (if trimmed) the
    /// 8 orientations of the trimmed view. Index `v`: orientation `v % 8`,
    /// trimmed view when `v >= 8`.
    pub fn hashes(&self) -> Vec<Hash256> {
        let mut v = self.pdq.to_vec();
        if let Some(t) = &self.pdq_trim {
            v.extend_from_slice(t);
        }
        v
    }
}

/// Query descriptors of a decoded image: hashes and keypoints, no embedding.
pub fn describe_query(img: &image::RgbImage) -> QueryDescriptors {
    describe_query_with(img, Extras::HASHES_AND_KEYPOINTS)
}

/// `describe_query`'s hashes plus the `extras` asked for.
pub fn describe_query_with(img: &image::RgbImage, extras: Extras) -> QueryDescriptors {
    let luma = pdq::luma_from_rgb(img);
    let (pdq, quality) =
        pdq::pdq_dihedral_from_luma(&luma, img.width() as usize, img.height() as usize);
    let pdq_trim =
        trimmed_luma(img, &luma).map(|(l, tw, th)| pdq::pdq_dihedral_from_luma(&l, tw, th).0);
    QueryDescriptors {
        pdq,
        quality,
        phash: phash::phash_from_rgb(img),
        pdq_trim,
        keypoints: if extras.keypoints {
            keypoints::extract_from_luma(
                &luma,
                img.width() as usize,
                img.height() as usize,
                keypoints::QUERY_KEYPOINTS,
            )
        } else {
            vec![]
        },
        embedding: extras.embedding.then(|| embedding::embed(img)),
        regions: if extras.regions {
            regions::proposals(img)
                .into_iter()
                .map(|rect| Region {
                    rect,
                    q: describe_query_with(&regions::crop(img, rect), extras.for_regions()),
                })
                .collect()
        } else {
            vec![]
        },
    }
}
