//! The learned descriptor: EfficientNet-Lite0 (ImageNet, Apache-2.0,
//! `models/efficientnet_lite0/`) run by our CNN engine (`crate::cnn`), its
//! last feature map GeM-pooled and L2-normalised into 1280 numbers. Robust
//! where hashes are weak (crops, pads, overlays, perspective), weak where they
//! are strong (blur, noise); fused with them in `search::fusion`.
//!
//! The weights are compiled into the binary, so it works offline and from
//! any folder. Indexes store embeddings as f16 (2.5 KB per image).
//!
//! A user's model (SSCD, `--model PATH`) replaces it for the whole process
//! through [`select`]. Its vectors (512 numbers) fill the first slots of the
//! same fixed-width column, the rest zero, so dot products are unchanged.
//!
//! GPU: the network's layers are shaders/cnn.wgsl, host code src/gpu/cnn.rs
//! (entered through `GpuEngine::embed_images`); the CPU engine
//! (src/cnn/cpu/) is their reference.

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};
use image::RgbImage;

use crate::cnn::safetensors::{f16_to_f32, f32_to_f16, SafeTensors};
use crate::cnn::{cpu, preprocess, Network};

/// Dimensions of a stored embedding: the built-in EfficientNet-Lite0's 1280.
/// Shorter vectors (SSCD's 512) are stored zero-padded.
pub const EMBED_DIM: usize = 1280;

static LITE0: &[u8] = include_bytes!("../../models/efficientnet_lite0/model.safetensors");

static SELECTED: OnceLock<Network> = OnceLock::new();

/// Use the model in `path` instead of the built-in one for the rest of the
/// process (before any embedding is computed): `.onnx` files through
/// `cnn::onnx`; safetensors with a `lookalike.arch` description as such, else
/// as a torchvision-named ResNet-50 (SSCD).
pub fn select(path: &std::path::Path) -> anyhow::Result<&'static Network> {
    use anyhow::Context;
    let net = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        crate::cnn::onnx::load(path, crate::cnn::resnet::SSCD_INPUT)?
    } else {
        let st = SafeTensors::open(path)?;
        if st.metadata.contains_key("lookalike.arch") {
            Network::from_safetensors(&st)?
        } else {
            crate::cnn::resnet::from_torchvision(&st)?
        }
    };
    // A quantised model runs its convolutions in int8 on the CPU unless
    // the f32 knob asks for the dequantised weights (the GPU's precision).
    let net = match std::env::var("LOOKALIKE_CNN_F32").as_deref() {
        Ok("1") => net.float_only(),
        _ => net,
    };
    let dim = net.embedding_dim();
    if dim == 0 || dim > EMBED_DIM {
        anyhow::bail!(
            "{}: embeddings of {dim} numbers; this build stores 1 to {EMBED_DIM}",
            path.display()
        );
    }
    SELECTED
        .set(net)
        .ok()
        .with_context(|| "a model was already selected for this process".to_string())?;
    Ok(model())
}

/// The network that embeds: the selected one, else the shipped one.
pub fn model() -> &'static Network {
    if let Some(n) = SELECTED.get() {
        return n;
    }
    static NET: OnceLock<Network> = OnceLock::new();
    NET.get_or_init(|| {
        let st = SafeTensors::parse(
            std::path::Path::new("<built-in efficientnet_lite0>"),
            LITE0.to_vec(),
        )
        .expect("the built-in model parses (tests hold it)");
        let net = Network::from_safetensors(&st).expect("the built-in model is consistent");
        assert_eq!(net.embedding_dim(), EMBED_DIM);
        net
    })
}

/// The model chosen with [`select`], if any (the built-in one otherwise).
pub fn selected() -> Option<&'static Network> {
    SELECTED.get()
}

/// What an index records about the model that made its embeddings.
pub fn model_label() -> String {
    let m = model();
    format!("{}@{}", m.name, &m.fingerprint[..16])
}

/// An embedding as stored: f16 bits; all zero = none.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Embedding(pub [u16; EMBED_DIM]);

impl Default for Embedding {
    fn default() -> Self {
        Embedding([0; EMBED_DIM])
    }
}

impl std::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.is_none() {
            true => write!(f, "Embedding(none)"),
            false => write!(f, "Embedding({:.4}, …)", f16_to_f32(self.0[0])),
        }
    }
}

impl Embedding {
    /// Stores `v` as f16, zero-padded or truncated to [`EMBED_DIM`].
    pub fn from_f32(v: &[f32]) -> Embedding {
        let mut e = Embedding::default();
        for (d, &x) in e.0.iter_mut().zip(v) {
            *d = f32_to_f16(x);
        }
        e
    }

    /// Whether this is the all-zero "no embedding".
    pub fn is_none(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }

    /// The values as f32 (all [`EMBED_DIM`] of them, padding included).
    pub fn to_f32(&self) -> Vec<f32> {
        self.0.iter().map(|&h| f16_to_f32(h)).collect()
    }
}

/// Embeddings of a batch of images on the CPU engine (rayon over images).
pub fn embed_batch(images: &[&RgbImage]) -> Vec<Vec<f32>> {
    if images.is_empty() {
        return vec![];
    }
    let net = model();
    let x = preprocess::input_batch(net, images);
    cpu::embed(net, &x)
}

/// One image's embedding (CPU engine).
pub fn embed(img: &RgbImage) -> Vec<f32> {
    embed_batch(&[img]).remove(0)
}

/// Dot product of a query (f32, unit length) with a stored embedding.
#[inline]
/// (A shorter query — a 512-d model — reads only its leading slots.)
pub fn similarity(q: &[f32], e: &Embedding) -> f32 {
    q.iter().zip(&e.0).map(|(&a, &b)| a * f16_to_f32(b)).sum()
}

/// Dot product of an f32 vector with f16 bits (the first `min(len)` values):
/// the inner loop of graph search. F16C + FMA where the CPU has them.
pub fn dot_f32_f16(q: &[f32], e: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { simd::dot_f32_f16(q, e) };
    }
    q.iter().zip(e).map(|(&a, &b)| a * f16_to_f32(b)).sum()
}

/// Dot product of two f16 vectors (building the graph).
pub fn dot_f16_f16(a: &[u16], b: &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("fma") {
        // SAFETY: as above.
        return unsafe { simd::dot_f16_f16(a, b) };
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f16_to_f32(x) * f16_to_f32(y))
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use crate::cnn::safetensors::f16_to_f32;

    #[target_feature(enable = "avx,f16c,fma")]
    unsafe fn load_f16(p: &[u16]) -> __m256 {
        // SAFETY: callers pass slices of at least 8 values.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.as_ptr() as *const __m128i) })
    }

    #[target_feature(enable = "avx,f16c,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    #[target_feature(enable = "avx,f16c,fma")]
    pub unsafe fn dot_f32_f16(q: &[f32], e: &[u16]) -> f32 {
        let n = q.len().min(e.len());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 ≤ n ≤ both lengths.
            unsafe {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), load_f16(&e[i..]), a0);
                a1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(i + 8)),
                    load_f16(&e[i + 8..]),
                    a1,
                );
            }
            i += 16;
        }
        let tail: f32 = (i..n).map(|j| q[j] * f16_to_f32(e[j])).sum();
        // SAFETY: same features.
        unsafe { hsum(_mm256_add_ps(a0, a1)) + tail }
    }

    #[target_feature(enable = "avx,f16c,fma")]
    pub unsafe fn dot_f16_f16(a: &[u16], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 ≤ n ≤ both lengths.
            unsafe {
                a0 = _mm256_fmadd_ps(load_f16(&a[i..]), load_f16(&b[i..]), a0);
                a1 = _mm256_fmadd_ps(load_f16(&a[i + 8..]), load_f16(&b[i + 8..]), a1);
            }
            i += 16;
        }
        let tail: f32 = (i..n).map(|j| f16_to_f32(a[j]) * f16_to_f32(b[j])).sum();
        // SAFETY: same features.
        unsafe { hsum(_mm256_add_ps(a0, a1)) + tail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_dots_match_plain_loops() {
        for n in [0usize, 7, 16, 37, 512, 1280] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 80.0)
                .collect();
            let (ha, hb): (Vec<u16>, Vec<u16>) = (
                a.iter().map(|&x| f32_to_f16(x)).collect(),
                b.iter().map(|&x| f32_to_f16(x)).collect(),
            );
            let plain: f32 = a.iter().zip(&hb).map(|(&x, &y)| x * f16_to_f32(y)).sum();
            let plain2: f32 = ha
                .iter()
                .zip(&hb)
                .map(|(&x, &y)| f16_to_f32(x) * f16_to_f32(y))
                .sum();
            let tol = 1e-4 * (1.0 + plain.abs());
            assert!((dot_f32_f16(&a, &hb) - plain).abs() <= tol, "n {n}");
            assert!((dot_f16_f16(&ha, &hb) - plain2).abs() <= tol, "n {n}");
        }
    }
}
