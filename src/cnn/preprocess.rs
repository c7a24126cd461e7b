//! The network's input: the whole image (no crop) resized to the input size
//! as Pillow's `Image.resize(size, BILINEAR)` does it (see
//! [`crate::resample::resize_bilinear`]: 8-bit fixed-point taps, horizontal
//! pass then vertical, each rounded and clamped to 8 bits), then
//! (x − mean) / std per channel, CHW.

use image::RgbImage;

use super::{Network, Tensor};
use crate::resample::resize_bilinear;

/// Network input for a batch of images: resized, normalised, NCHW.
pub fn input_batch(net: &Network, images: &[&RgbImage]) -> Tensor {
    let (w, h) = net.input;
    let mut t = Tensor::zeros(images.len(), 3, h, w);
    for (i, img) in images.iter().enumerate() {
        let r = resize_bilinear(img, w, h);
        let dst = &mut t.data[i * 3 * h * w..(i + 1) * 3 * h * w];
        for (p, px) in r.pixels().enumerate() {
            for c in 0..3 {
                dst[c * h * w + p] = (px[c] as f32 - net.mean[c]) / net.std[c];
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A 1 × 300 000 image through the whole CPU path: the resize streams
    /// (no 24 × 300 000 intermediate) and the network sees its fixed input.
    #[test]
    fn a_very_tall_image_embeds_on_the_cpu() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_resnet.onnx");
        let net = crate::cnn::onnx::load(&path, (24, 20)).unwrap();
        let tall = RgbImage::from_fn(1, 300_000, |_, y| {
            image::Rgb([(y % 256) as u8, (y / 256 % 256) as u8, 99])
        });
        let x = input_batch(&net, &[&tall]);
        assert_eq!((x.n, x.c, x.h, x.w), (1, 3, 20, 24));
        let e = crate::cnn::cpu::embed(&net, &x);
        assert_eq!(e.len(), 1);
        assert!(e[0].iter().all(|v| v.is_finite()));
        let norm: f32 = e[0].iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "L2-normalised: {norm}");
    }
}
