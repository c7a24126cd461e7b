//! Pillow-exact 8-bit resampling (`libImaging/Resample.c`), shared by the
//! pHash (`descriptors::phash`, Lanczos to 32×32) and the CNN input
//! (`cnn::preprocess`, bilinear to the network's size).
//!
//! Pillow resamples 8-bit images in fixed point: per output pixel, a window
//! of source pixels with float kernel weights normalised to sum 1, scaled by
//! 2^22 and rounded to integers; a pass sums weight × pixel in an i32
//! started at 2^21 and keeps the integer part clamped to 0..=255. A resize
//! is a horizontal pass then a vertical one, each skipped when that side
//! already has the target size.

// (Off x86-64 nothing calls into it: `available` is false there.)
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, unused_imports, unused_variables, unused_mut)
)]
mod rows8;

use image::RgbImage;

/// Pillow's fixed-point precision for 8-bit resampling: 32 - 8 - 2 bits.
pub const PRECISION_BITS: u32 = 22;

/// Where a pass's accumulator starts: one half, so that `clip8`'s shift
/// rounds half up.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Support of Pillow's Lanczos filter (a = 3).
pub const LANCZOS_SUPPORT: f64 = 3.0;
/// Support of Pillow's bilinear (triangle) filter.
pub const BILINEAR_SUPPORT: f64 = 1.0;

/// Pillow's Lanczos kernel (a = 3): sinc(x)·sinc(x/3) on [-3, 3), f64.
pub fn lanczos(x: f64) -> f64 {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    }
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Pillow's bilinear kernel: the triangle 1 − |x| on (−1, 1).
pub fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Resampling taps for one axis, as Pillow's `precompute_coeffs` followed by
/// `normalize_coeffs_8bpc`: per output pixel the first source index and the
/// integer weights.
pub struct Taps {
    /// Per output pixel, the first source pixel of its window.
    pub start: Vec<usize>,
    /// Per output pixel, the weights of its window's source pixels (scaled
    /// by 2^[`PRECISION_BITS`]).
    pub weights: Vec<Vec<i32>>,
}

/// Pillow's resampling taps for any of its filters (`kernel` on
/// [−`support`, `support`]; e.g. [`lanczos`] with [`LANCZOS_SUPPORT`],
/// [`triangle`] with [`BILINEAR_SUPPORT`]).
pub fn pil_taps(in_size: usize, out_size: usize, kernel: fn(f64) -> f64, support: f64) -> Taps {
    let (start, weights) = (0..out_size)
        .map(|xx| pil_window(in_size, out_size, kernel, support, xx))
        .unzip();
    Taps { start, weights }
}

/// The taps of output pixel `xx` alone: its first source index and its
/// integer weights (f64 weights normalised to sum 1, then scaled by 2^22 and
/// rounded half away from zero). Each output pixel's window depends on
/// nothing else, so this is [`pil_taps`]'s entry `xx` exactly.
pub fn pil_window(
    in_size: usize,
    out_size: usize,
    kernel: fn(f64) -> f64,
    support: f64,
    xx: usize,
) -> (usize, Vec<i32>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ss = 1.0 / filterscale;
    let center = (xx as f64 + 0.5) * scale;
    // Pillow rounds the window ends with (int)(x + 0.5), i.e. truncation.
    let xmin = ((center - support + 0.5) as i64).max(0) as usize;
    let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
    let n = xmax.saturating_sub(xmin);
    let mut k: Vec<f64> = (0..n)
        .map(|x| kernel(((x + xmin) as f64 - center + 0.5) * ss))
        .collect();
    let ww: f64 = k.iter().sum();
    if ww != 0.0 {
        k.iter_mut().for_each(|w| *w /= ww);
    }
    let one = (1u32 << PRECISION_BITS) as f64;
    let ki = k
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (-0.5 + w * one) as i32
            } else {
                (0.5 + w * one) as i32
            }
        })
        .collect();
    (xmin, ki)
}

/// Pillow's `clip8`: drop the fraction (arithmetic shift) and clamp to 0..=255.
/// The accumulator starts at 2^21 so that the shift rounds half up. It is an
/// i32 as in Pillow: |acc| <= 255 · 2^22 · Σ|w| stays below 2^31 because the
/// Lanczos-3 weights have Σ|w| < 1.3 (the bilinear ones are positive, Σ ≈ 1).
#[inline]
pub fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize((ow, oh), BILINEAR)` of an RGB image.
///
/// Pillow runs the horizontal pass over the whole image, to 8 bits, then the
/// vertical pass over that. This streams instead: each source row's
/// horizontal pass (ow × 3 values, clipped to 8 bits as Pillow does) is
/// added, times its weight, into the i32 accumulators of the output rows
/// whose vertical window holds that row; each output row is clipped once its
/// window is done. Integer sums in another order are the same sums, so the
/// result is Pillow's bit for bit, while memory is the output's size plus
/// eight rows (the horizontal pass runs eight rows at a time where the CPU
/// has AVX2, `rows8`) and the live vertical windows — never the ow × h
/// intermediate (67 GB for a 1 × 100 000 000 image resized to 224²).
///
/// As in Pillow, a pass is skipped when that side already has the target
/// size: w == ow copies each row, h == oh writes each row out as it is.
pub fn resize_bilinear(img: &RgbImage, ow: usize, oh: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let row_len = ow * 3;
    let mut out = vec![0u8; row_len * oh];
    if ow == 0 || oh == 0 || w == 0 || h == 0 {
        return rgb(ow, oh, out);
    }
    let horiz = (w != ow).then(|| pil_taps(w, ow, triangle, BILINEAR_SUPPORT));
    let mut vert = (h != oh).then(|| Vertical::new(h, oh, row_len));
    let mut emit = |y: usize, row: &[u8]| match &mut vert {
        Some(v) => v.add_row(y, row, &mut out),
        None => out[y * row_len..(y + 1) * row_len].copy_from_slice(row),
    };
    match &horiz {
        // Eight rows at a time where the CPU has the vectors for it (the
        // last block may be shorter; images of fewer than eight rows go
        // one at a time, so the eight-row buffers never outgrow the image).
        Some(t) if rows8::available() && h >= rows8::ROWS => {
            let mut rows = vec![vec![0u8; row_len]; rows8::ROWS];
            let mut scratch = rows8::Scratch::default();
            for (b, block) in src.chunks(w * 3 * rows8::ROWS).enumerate() {
                let lines: Vec<&[u8]> = block.chunks_exact(w * 3).collect();
                rows8::horizontal_rows(t, &lines, &mut rows, &mut scratch);
                for (i, row) in rows.iter().take(lines.len()).enumerate() {
                    emit(b * rows8::ROWS + i, row);
                }
            }
        }
        Some(t) => {
            let mut row = vec![0u8; row_len];
            for (y, line) in src.chunks_exact(w * 3).enumerate() {
                horizontal_pass(t, line, &mut row);
                emit(y, &row);
            }
        }
        None => {
            for (y, line) in src.chunks_exact(w * 3).enumerate() {
                emit(y, line);
            }
        }
    }
    if let Some(v) = vert {
        v.finish(&mut out);
    }
    rgb(ow, oh, out)
}

/// `acc[i] += wt · row[i]`, the vertical pass's inner loop: compiled for
/// AVX2 where the CPU has it (eight lanes and a 32-bit multiply, where
/// x86-64's baseline SSE2 has four and emulates the multiply).
fn add_weighted(acc: &mut [i32], row: &[u8], wt: i32) {
    #[inline(always)]
    fn plain(acc: &mut [i32], row: &[u8], wt: i32) {
        acc.iter_mut()
            .zip(row)
            .for_each(|(a, &p)| *a += wt * p as i32);
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(acc: &mut [i32], row: &[u8], wt: i32) {
        plain(acc, row, wt)
    }
    #[cfg(target_arch = "x86_64")]
    if rows8::available() {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2(acc, row, wt) };
    }
    plain(acc, row, wt)
}

fn rgb(w: usize, h: usize, data: Vec<u8>) -> RgbImage {
    // Sizes come from a u32-sized image or the caller's target; the buffer
    // was made for exactly them.
    RgbImage::from_raw(w as u32, h as u32, data).expect("buffer sized for the image")
}

/// One RGB row through the horizontal taps `t`, each value clipped to 8 bits.
fn horizontal_pass(t: &Taps, line: &[u8], out: &mut [u8]) {
    for ((px, &s), ws) in out.chunks_exact_mut(3).zip(&t.start).zip(&t.weights) {
        // One slice of the window's pixels, walked in fixed-size chunks:
        // one bounds check a window instead of one a tap.
        let window = &line[s * 3..(s + ws.len()) * 3];
        let [mut r, mut g, mut b] = [HALF; 3];
        for (p, &wt) in window.chunks_exact(3).zip(ws) {
            r += wt * p[0] as i32;
            g += wt * p[1] as i32;
            b += wt * p[2] as i32;
        }
        px.copy_from_slice(&[clip8(r), clip8(g), clip8(b)]);
    }
}

/// The vertical pass, fed one horizontally resampled row at a time. Output
/// rows' windows move down monotonically with the row, so only the windows
/// that hold the current source row are kept (their taps are computed when
/// the first source row reaches them and dropped when they are clipped).
struct Vertical {
    h: usize,
    oh: usize,
    row_len: usize,
    /// The next output row whose window has not been opened yet.
    next: usize,
    /// Its taps, computed ahead to know where its window starts.
    pending: Option<(usize, Vec<i32>)>,
    /// Open windows, oldest first: (output row, first source row, weights,
    /// accumulators of the row).
    open: std::collections::VecDeque<(usize, usize, Vec<i32>, Vec<i32>)>,
}

impl Vertical {
    fn new(h: usize, oh: usize, row_len: usize) -> Vertical {
        let mut v = Vertical {
            h,
            oh,
            row_len,
            next: 0,
            pending: None,
            open: Default::default(),
        };
        v.pending = v.window(0);
        v
    }

    fn window(&self, yy: usize) -> Option<(usize, Vec<i32>)> {
        (yy < self.oh).then(|| pil_window(self.h, self.oh, triangle, BILINEAR_SUPPORT, yy))
    }

    /// Adds source row `y` (after the horizontal pass) to every open window
    /// holding it, then clips the windows that end with it into `out`.
    fn add_row(&mut self, y: usize, row: &[u8], out: &mut [u8]) {
        while let Some((start, _)) = self.pending.as_ref().filter(|p| p.0 <= y) {
            let start = *start;
            let (_, weights) = self.pending.take().expect("checked above");
            let acc = vec![HALF; self.row_len];
            self.open.push_back((self.next, start, weights, acc));
            self.next += 1;
            self.pending = self.window(self.next);
        }
        for (_, start, weights, acc) in &mut self.open {
            if let Some(&wt) = weights.get(y - *start) {
                add_weighted(acc, row, wt);
            }
        }
        while self
            .open
            .front()
            .is_some_and(|(_, start, weights, _)| start + weights.len() <= y + 1)
        {
            let (yy, _, _, acc) = self.open.pop_front().expect("checked above");
            self.clip_row(yy, &acc, out);
        }
    }

    /// Clips what is left: windows still open at the last source row and
    /// rows whose window starts past it (none for Pillow's windows; their
    /// sum would be the starting half alone).
    fn finish(mut self, out: &mut [u8]) {
        while let Some((yy, _, _, acc)) = self.open.pop_front() {
            self.clip_row(yy, &acc, out);
        }
        for yy in self.next..self.oh {
            out[yy * self.row_len..(yy + 1) * self.row_len].fill(clip8(HALF));
        }
    }

    fn clip_row(&self, yy: usize, acc: &[i32], out: &mut [u8]) {
        let dst = &mut out[yy * self.row_len..(yy + 1) * self.row_len];
        dst.iter_mut().zip(acc).for_each(|(o, &a)| *o = clip8(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pillow's two passes as written: the whole horizontal pass into an
    /// ow × h intermediate, then the vertical pass over it.
    fn two_pass_reference(img: &RgbImage, ow: usize, oh: usize) -> RgbImage {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let src = img.as_raw();
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
                            .fold(HALF, |a, (k, &wt)| a + wt * row[(s + k) * 3 + c] as i32);
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
                    let acc = ws.iter().enumerate().fold(HALF, |a, (k, &wt)| {
                        a + wt * horiz[(s + k) * ow * 3 + x] as i32
                    });
                    out[y * ow * 3 + x] = clip8(acc);
                }
            }
            out
        } else {
            horiz
        };
        RgbImage::from_raw(ow as u32, oh as u32, out).unwrap()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    fn noise(rng: &mut Rng, w: usize, h: usize) -> RgbImage {
        let data = (0..w * h * 3).map(|_| rng.next() as u8).collect();
        RgbImage::from_raw(w as u32, h as u32, data).unwrap()
    }

    #[test]
    fn streaming_resize_equals_the_two_pass_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cases: Vec<(usize, usize, usize, usize)> = vec![
            (1, 1, 1, 1),
            (1, 1, 7, 5),
            (1, 500, 24, 20),
            (500, 1, 24, 20),
            (1, 37, 1, 9),
            (37, 1, 9, 1),
            (24, 20, 24, 20),
            (24, 300, 24, 20),
            (300, 20, 24, 20),
            (3, 4, 224, 224),
            (1000, 3, 31, 17),
            (7, 999, 224, 224),
            (225, 223, 224, 224),
        ];
        for _ in 0..150 {
            let side = |r: &mut Rng| match r.below(4) {
                0 => 1 + r.below(4),
                1 => 1 + r.below(40),
                2 => 1 + r.below(300),
                _ => 1 + r.below(1200),
            };
            let (w, h) = (side(&mut rng), side(&mut rng));
            let (ow, oh) = (1 + rng.below(90), 1 + rng.below(90));
            cases.push((w, h, ow, oh));
        }
        for (w, h, ow, oh) in cases {
            let img = noise(&mut rng, w, h);
            assert_eq!(
                resize_bilinear(&img, ow, oh),
                two_pass_reference(&img, ow, oh),
                "{w}x{h} -> {ow}x{oh}"
            );
        }
    }

    #[test]
    fn smooth_images_resize_as_the_reference_too() {
        // Noise rarely lands on clamps; gradients and flat fields test the
        // rounding of near-integer sums.
        for (w, h, ow, oh) in [(13, 401, 24, 20), (640, 480, 224, 224), (2, 2, 225, 31)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 200])
            });
            assert_eq!(
                resize_bilinear(&img, ow, oh),
                two_pass_reference(&img, ow, oh)
            );
        }
    }

    /// A 1 × 2 000 000 image: the two-pass version would hold a
    /// 224 × 2 000 000 × 3 intermediate (1.3 GB); streaming holds a row and
    /// the few open windows.
    #[test]
    fn a_very_tall_image_resizes_in_little_memory() {
        let h = 2_000_000;
        let img = RgbImage::from_fn(1, h, |_, y| image::Rgb([(y % 251) as u8, 7, 255]));
        // The windows' bookkeeping alone, on one-pixel rows.
        let mut v = Vertical::new(h as usize, 224, 3);
        let mut out = vec![0u8; 224 * 3];
        let row = [9u8; 3];
        let mut most_open = 0;
        for y in 0..h as usize {
            v.add_row(y, &row, &mut out);
            most_open = most_open.max(v.open.len());
        }
        let window = v.pending.as_ref().map_or(0, |p| p.1.len());
        v.finish(&mut out);
        assert!(most_open <= 3, "{most_open} windows open at once");
        assert_eq!(window, 0, "every window opened");
        assert!(out.iter().all(|&p| p == 9));
        let r = resize_bilinear(&img, 224, 224);
        assert_eq!((r.width(), r.height()), (224, 224));
        assert!(r.pixels().all(|p| p[1] == 7 && p[2] == 255));
    }
}
