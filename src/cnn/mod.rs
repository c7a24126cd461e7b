//! A small CNN inference engine for learned image embeddings.
//!
//! A network is data: a list of layers (`Layer`) read from a safetensors
//! file's metadata, with BatchNorm already folded into each convolution.
//! `cpu` is the plain reference (rayon across images); the WGSL engine
//! (`crate::gpu::cnn`) runs the same list and is held against it by tests.
//! A quantised (int8 QDQ) ONNX model keeps its integers beside the
//! dequantised weights ([`Int8Conv`]): the CPU engine runs those in int8,
//! the WGSL engine (and the CPU with [`Network::float_only`]) the floats.
//! `preprocess` turns a decoded image into the network's input.

pub mod cpu;
pub mod model;
pub mod onnx;
pub mod preprocess;
pub mod resnet;
pub mod safetensors;

pub use model::{Act, Int8Conv, Layer, Network};

/// A batch of feature maps, NCHW, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Images in the batch.
    pub n: usize,
    /// Channels per image.
    pub c: usize,
    /// Height of each map.
    pub h: usize,
    /// Width of each map.
    pub w: usize,
    /// The values, `n × c × h × w`, row-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A batch of the given shape filled with zeros.
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Tensor {
        Tensor {
            n,
            c,
            h,
            w,
            data: vec![0.0; n * c * h * w],
        }
    }

    /// One image of the batch (C·H·W values).
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.c * self.h * self.w;
        &self.data[i * s..(i + 1) * s]
    }
}

/// GeM pooling (generalised mean, Radenović et al. 2018) of every channel
/// of each image in `t`.
pub fn gem(t: &Tensor, p: f32, clamp_min: f32) -> Vec<Vec<f32>> {
    let hw = t.h * t.w;
    // An integer p (3 for both shipped models) raises by multiplying: libm's
    // pow was 3 % of a default-mode `index` (62 720 calls an image).
    let int_p = (p.fract() == 0.0 && p.abs() <= 16.0).then_some(p as i32);
    let raise = |x: f64| match int_p {
        Some(n) => x.powi(n),
        None => x.powf(p as f64),
    };
    (0..t.n)
        .map(|i| {
            let img = t.image(i);
            (0..t.c)
                .map(|c| {
                    let s: f64 = img[c * hw..(c + 1) * hw]
                        .iter()
                        .map(|&x| raise(x.max(clamp_min) as f64))
                        .sum();
                    ((s / hw as f64).powf(1.0 / p as f64)) as f32
                })
                .collect()
        })
        .collect()
}

/// GeM then L2 normalisation: the embedding of each image in `t`.
pub fn gem_l2(t: &Tensor, p: f32, clamp_min: f32) -> Vec<Vec<f32>> {
    let mut v = gem(t, p, clamp_min);
    v.iter_mut().for_each(|e| l2_normalize(e));
    v
}

/// Scales `v` to unit length (left as is when it is all zeros).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Cosine similarity of two vectors (computed in f64; 0 if either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    (ab / (aa.sqrt() * bb.sqrt()).max(1e-30)) as f32
}
