//! The network's input: the whole image (no crop) resized to the input size
//! as Pillow's `Image.resize(size, BILINEAR)` does it — 8-bit fixed-point
//! taps, horizontal pass then vertical, each rounded and clamped to 8 bits
//! (Pillow's `libImaging/Resample.c`, as `descriptors::phash` replicates it
//! for Lanczos) — then (x − mean) / std per channel, CHW.

use image::RgbImage;

use super::{Network, Tensor};
use crate::descriptors::phash::{clip8, pil_taps, PRECISION_BITS};

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow BILINEAR resize of an RGB image (a pass is skipped when that side
/// already has the target size, as Pillow does).
pub fn resize_bilinear(img: &RgbImage, ow: usize, oh: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let half = 1i32 << (PRECISION_BITS - 1);
    let horiz: Vec<u8> = if w != ow {
        let t = pil_taps(w, ow, triangle, 1.0);
        let mut out = vec![0u8; ow * h * 3];
        for y in 0..h {
            let row = &src[y * w * 3..(y + 1) * w * 3];
            for x in 0..ow {
                let (s, ws) = (t.start[x], &t.weights[x]);
                for c in 0..3 {
                    let acc = ws
                        .iter()
                        .enumerate()
                        .fold(half, |a, (k, &wt)| a + wt * row[(s + k) * 3 + c] as i32);
                    out[(y * ow + x) * 3 + c] = clip8(acc);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    let out = if h != oh {
        let t = pil_taps(h, oh, triangle, 1.0);
        let mut out = vec![0u8; ow * oh * 3];
        for y in 0..oh {
            let (s, ws) = (t.start[y], &t.weights[y]);
            for x in 0..ow * 3 {
                let acc = ws.iter().enumerate().fold(half, |a, (k, &wt)| {
                    a + wt * horiz[(s + k) * ow * 3 + x] as i32
                });
                out[y * ow * 3 + x] = clip8(acc);
            }
        }
        out
    } else {
        horiz
    };
    RgbImage::from_raw(ow as u32, oh as u32, out).expect("sized buffer")
}

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
