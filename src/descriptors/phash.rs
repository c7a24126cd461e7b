//! 64-bit DCT perceptual hash, defined as Python `imagehash.phash(img)`
//! (ImageHash 4.3, hash_size = 8, highfreq_factor = 4) so that
//! `format!("{:016x}", phash_from_rgb(img))` equals `str(imagehash.phash(img))`.
//!
//! imagehash does: PIL `convert("L")`, `resize((32, 32), LANCZOS)`,
//! `scipy.fftpack.dct` (type II, unnormalised) along axis 0 then axis 1, keep
//! the top-left 8×8, bit = value > numpy median, bits row-major with the first
//! as the most significant. The two Pillow steps are integer code and are
//! replicated exactly here (from Pillow's `libImaging/Convert.c` and
//! `libImaging/Resample.c`); the DCT is f64.
//!
//! Where it can differ: scipy computes the DCT with an FFT (pocketfft), this
//! file with an even/odd split and f64 sums, so nonzero coefficients differ in
//! the last bits (~1e-13 relative). That flips a bit only if a coefficient is
//! within that of the median. Coefficients that are zero by symmetry (flat
//! fields, checkerboards, 1-D gradients: the median is then often 0) come out
//! as exact zeros in both, which is what keeps those images exact.

use std::sync::OnceLock;

const SIZE: usize = 32;
/// Pillow's fixed-point precision for 8-bit resampling: 32 - 8 - 2 bits.
pub(crate) const PRECISION_BITS: u32 = 22;

/// PIL `convert("L")` for RGB: ITU-R 601-2 weights in 16-bit fixed point
/// (19595, 38470, 7471 sum to 65536), rounded half up (Pillow's `L24` macro).
#[inline]
pub fn pil_luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Pillow's Lanczos kernel (a = 3): sinc(x)·sinc(x/3) on [-3, 3), f64.
fn lanczos(x: f64) -> f64 {
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

/// Resampling taps for one axis, as Pillow's `precompute_coeffs` followed by
/// `normalize_coeffs_8bpc`: per output pixel the first source index and the
/// integer weights (f64 weights normalised to sum 1, then scaled by 2^22 and
/// rounded half away from zero).
pub(crate) struct Taps {
    pub start: Vec<usize>,
    pub weights: Vec<Vec<i32>>,
}

/// Taps for `in_size -> 32`, cached per thread (computing them costs thousands
/// of `sin` calls, more than the resampling itself).
fn taps_to_32(in_size: usize) -> std::rc::Rc<Taps> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<usize, std::rc::Rc<Taps>>> =
            Default::default();
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.entry(in_size)
            .or_insert_with(|| std::rc::Rc::new(taps(in_size, SIZE)))
            .clone()
    })
}

/// Pillow's integer Lanczos taps for `in_size -> 32`: per output pixel the
/// first source index and the weights (the GPU engine uploads these).
pub fn lanczos_taps_32(in_size: usize) -> (Vec<usize>, Vec<Vec<i32>>) {
    let t = taps_to_32(in_size);
    (t.start.clone(), t.weights.clone())
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    pil_taps(in_size, out_size, lanczos, 3.0)
}

/// Pillow's resampling taps for any of its filters (`kernel` on
/// [−`support`, `support`]; bilinear is the triangle 1 − |x| on [−1, 1]).
pub(crate) fn pil_taps(
    in_size: usize,
    out_size: usize,
    kernel: fn(f64) -> f64,
    support: f64,
) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ss = 1.0 / filterscale;
    let mut start = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
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
        start.push(xmin);
        weights.push(ki);
    }
    Taps { start, weights }
}

/// Pillow's `clip8`: drop the fraction (arithmetic shift) and clamp to 0..=255.
/// The accumulator starts at 2^21 so that the shift rounds half up. It is an
/// i32 as in Pillow: |acc| <= 255 · 2^22 · Σ|w| stays below 2^31 because the
/// Lanczos-3 weights have Σ|w| < 1.3.
#[inline]
pub(crate) fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL `Image.resize((32, 32), LANCZOS)` of an 8-bit grey image: horizontal
/// pass first (to 8 bits, clamped), then vertical; a pass is skipped when that
/// side already has the target size (Pillow's `ImagingResampleInner`).
#[inline(always)]
pub fn pil_lanczos_32(gray: &[u8], width: usize, height: usize) -> [u8; SIZE * SIZE] {
    assert_eq!(gray.len(), width * height);
    let mut tmp: Vec<u8>;
    let horiz: &[u8] = if width != SIZE {
        let t = taps_to_32(width);
        tmp = vec![0u8; SIZE * height];
        let mut src = vec![0i32; width]; // widened once per row so the dot products vectorise
        for y in 0..height {
            src.iter_mut()
                .zip(&gray[y * width..(y + 1) * width])
                .for_each(|(d, &p)| *d = p as i32);
            for xx in 0..SIZE {
                let s = t.start[xx];
                let w = &t.weights[xx];
                let acc = src[s..s + w.len()]
                    .iter()
                    .zip(w)
                    .fold(1i32 << (PRECISION_BITS - 1), |a, (&p, &k)| a + p * k);
                tmp[y * SIZE + xx] = clip8(acc);
            }
        }
        &tmp
    } else {
        gray
    };
    let mut out = [0u8; SIZE * SIZE];
    if height != SIZE {
        let t = taps_to_32(height);
        for yy in 0..SIZE {
            let s = t.start[yy];
            let mut acc = [1i32 << (PRECISION_BITS - 1); SIZE];
            for (i, &k) in t.weights[yy].iter().enumerate() {
                let row = &horiz[(s + i) * SIZE..(s + i + 1) * SIZE];
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, &p)| *a += p as i32 * k);
            }
            for x in 0..SIZE {
                out[yy * SIZE + x] = clip8(acc[x]);
            }
        }
    } else {
        out.copy_from_slice(horiz);
    }
    out
}

/// cos(π·m/64) for m in 0..128: every angle the size-32 DCT and its halves use.
fn cos_pi_64(m: usize) -> f64 {
    static T: OnceLock<[f64; 128]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|m| (std::f64::consts::PI * m as f64 / 64.0).cos()))[m]
}

/// Unnormalised DCT-II, y[k] = 2 Σ_n x[n] cos(π k (2n+1) / 2N), for N a power
/// of two, by the even/odd split: with u[n] = x[n] + x[N-1-n] and
/// v[n] = x[n] - x[N-1-n] (n < N/2), the even outputs are the half-size DCT of
/// u and the odd outputs are 2 Σ v[n] cos(π k (2n+1) / 2N). The adds happen
/// before any multiplication, so a coefficient that vanishes because of a
/// mirror symmetry or a constant signal comes out as exactly 0.0, as it does
/// in scipy's FFT-based DCT (direct sums would leave ±1e-13 noise, and the
/// bit of a coefficient tied with the median would then be random).
fn dct2(x: &[f64], out: &mut [f64]) {
    let n = x.len();
    if n == 1 {
        out[0] = 2.0 * x[0];
        return;
    }
    let h = n / 2;
    let u: Vec<f64> = (0..h).map(|i| x[i] + x[n - 1 - i]).collect();
    let v: Vec<f64> = (0..h).map(|i| x[i] - x[n - 1 - i]).collect();
    let mut even = vec![0.0; h];
    dct2(&u, &mut even);
    for m in 0..h {
        out[2 * m] = even[m];
        let k = 2 * m + 1;
        let mut s = 0.0;
        for (i, &vi) in v.iter().enumerate() {
            s += vi * cos_pi_64((k * (2 * i + 1) * (SIZE / n)) % 128);
        }
        out[k] = 2.0 * s;
    }
}

/// The top-left 8×8 of scipy's unnormalised DCT-II along axis 0 then axis 1
/// (row index = vertical frequency).
pub fn dct8_from_32(px: &[u8; SIZE * SIZE]) -> [f64; 64] {
    // Axis 0: transform each column.
    let mut cols = [[0.0f64; SIZE]; SIZE]; // cols[x][k]
    let mut col = [0.0f64; SIZE];
    for (x, c) in cols.iter_mut().enumerate() {
        for y in 0..SIZE {
            col[y] = px[y * SIZE + x] as f64;
        }
        dct2(&col, c);
    }
    // Axis 1: transform each of the 8 kept rows.
    let mut out = [0.0f64; 64];
    let mut row = [0.0f64; SIZE];
    let mut res = [0.0f64; SIZE];
    for k in 0..8 {
        for x in 0..SIZE {
            row[x] = cols[x][k];
        }
        dct2(&row, &mut res);
        out[k * 8..k * 8 + 8].copy_from_slice(&res[..8]);
    }
    out
}

/// Bits from the 8×8 block: value > numpy median (mean of the two middle
/// values), row-major, first value in the most significant bit.
pub fn phash_bits(dct: &[f64; 64]) -> u64 {
    let mut s = *dct;
    s.sort_by(|a, b| a.total_cmp(b));
    let med = (s[31] + s[32]) / 2.0;
    dct.iter()
        .fold(0u64, |acc, &v| (acc << 1) | (v > med) as u64)
}

/// `imagehash.phash` of an RGB image, as a u64 (`{:016x}` gives its hex).
pub fn phash_from_rgb(img: &image::RgbImage) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the feature this copy is compiled for.
        return unsafe { phash_avx2(img) };
    }
    phash_body(img)
}

/// The same code compiled for AVX2: the grey conversion and the resampling
/// dot products are integer arithmetic (exact in any order), and baseline
/// x86-64 has no packed 32-bit multiply, so AVX2 vectorises what SSE2 cannot.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn phash_avx2(img: &image::RgbImage) -> u64 {
    phash_body(img)
}

#[inline(always)]
fn phash_body(img: &image::RgbImage) -> u64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // Eight pixels at a time: stride-3 reads alone keep the compiler scalar.
    let mut gray = vec![0u8; w * h];
    let mut g8 = gray.chunks_exact_mut(8);
    let mut p8 = img.as_raw().chunks_exact(24);
    for (g, p) in (&mut g8).zip(&mut p8) {
        for (k, d) in g.iter_mut().enumerate() {
            *d = pil_luma(p[3 * k], p[3 * k + 1], p[3 * k + 2]);
        }
    }
    for (d, p) in g8
        .into_remainder()
        .iter_mut()
        .zip(p8.remainder().chunks_exact(3))
    {
        *d = pil_luma(p[0], p[1], p[2]);
    }
    phash_bits(&dct8_from_32(&pil_lanczos_32(&gray, w, h)))
}
