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
//!
//! GPU: the two Pillow steps (luma, Lanczos resize to 32×32, with the taps
//! computed here by [`lanczos_taps_32`]) are shaders/phash_resize.wgsl; host
//! code src/gpu/describe.rs, which finishes with this module's DCT and bits.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::resample::{clip8, lanczos, pil_taps, Taps, LANCZOS_SUPPORT, PRECISION_BITS};

const SIZE: usize = 32;

/// PIL `convert("L")` for RGB: ITU-R 601-2 weights in 16-bit fixed point
/// (19595, 38470, 7471 sum to 65536), rounded half up (Pillow's `L24` macro).
#[inline]
pub fn pil_luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `pil_luma` of the low three bytes of `p` (R, G, B from the low byte up).
#[inline(always)]
fn pil_luma_u32(p: u32) -> u32 {
    ((p & 0xff) * 19595 + (p >> 8 & 0xff) * 38470 + (p >> 16 & 0xff) * 7471 + 0x8000) >> 16
}

/// `taps(in_size, 32)`, plus its weights zero-padded to one length `len`, a
/// multiple of 32 (output xx's in `padded[xx * len..][..len]`): the compiled
/// dot product takes 32 products a step, and a whole number of steps leaves
/// no remainder loops to run (their varying trip counts cost more than the
/// extra zeros). Zero weights add exact zeros.
struct Taps32 {
    taps: Taps,
    len: usize,
    padded: Vec<i32>,
}

/// Taps for `in_size -> 32`, cached for all threads (computing them costs
/// thousands of `sin` calls, more than the resampling itself; a per-thread
/// cache paid that once per thread and size: 2.5 % of indexing db's 300
/// images, 144 sizes, on 2 threads).
fn taps_to_32(in_size: usize) -> Arc<Taps32> {
    type Cache = RwLock<HashMap<usize, Arc<Taps32>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked mid-insert; the
    // map itself is always valid, so keep using it.
    if let Some(t) = cache
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&in_size)
    {
        return t.clone();
    }
    let taps = taps(in_size, SIZE);
    let most = taps.weights.iter().map(Vec::len).max().unwrap_or(0);
    let len = most.max(1).div_ceil(32) * 32;
    let mut padded = vec![0; SIZE * len];
    for (p, w) in padded.chunks_exact_mut(len).zip(&taps.weights) {
        p[..w.len()].copy_from_slice(w);
    }
    let t = Arc::new(Taps32 { taps, len, padded });
    let mut c = cache.write().unwrap_or_else(|e| e.into_inner());
    if c.len() >= 256 {
        c.clear(); // bounded memory whatever the corpus's variety of sizes
    }
    c.entry(in_size).or_insert(t).clone()
}

/// Pillow's integer Lanczos taps for `in_size -> 32`: per output pixel the
/// first source index and the weights (the GPU engine uploads these).
pub fn lanczos_taps_32(in_size: usize) -> (Vec<usize>, Vec<Vec<i32>>) {
    let t = taps_to_32(in_size);
    (t.taps.start.clone(), t.taps.weights.clone())
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    pil_taps(in_size, out_size, lanczos, LANCZOS_SUPPORT)
}

/// PIL `Image.resize((32, 32), LANCZOS)` of an 8-bit grey image: horizontal
/// pass first (to 8 bits, clamped), then vertical; a pass is skipped when that
/// side already has the target size (Pillow's `ImagingResampleInner`).
#[inline(always)]
pub fn pil_lanczos_32(gray: &[u8], width: usize, height: usize) -> [u8; SIZE * SIZE] {
    assert_eq!(gray.len(), width * height);
    resample_32(Src::Gray(gray), width, height)
}

/// What `resample_32` reads: grey pixels, or RGB ones converted as `pil_luma`.
enum Src<'a> {
    Gray(&'a [u8]),
    Rgb(&'a [u8]),
}

impl Src<'_> {
    /// Sets `row` to the grey values of image row y (`row.len()` wide).
    #[inline(always)]
    fn load_row(&self, y: usize, row: &mut [i32]) {
        let w = row.len();
        match *self {
            Src::Gray(gray) => {
                for (d, &p) in row.iter_mut().zip(&gray[y * w..(y + 1) * w]) {
                    *d = p as i32;
                }
            }
            Src::Rgb(raw) => {
                let l = &raw[3 * w * y..3 * w * (y + 1)];
                let Some(last) = w.checked_sub(1) else {
                    return;
                };
                // A pixel's bytes read as one little-endian u32: one load
                // instead of three, which lets the loop vectorise (the fourth
                // byte, the next pixel's, is masked off). The last pixel's
                // would read past the row, and past the buffer on the last row.
                for (x, d) in row[..last].iter_mut().enumerate() {
                    let p = u32::from_le_bytes(l[3 * x..3 * x + 4].try_into().unwrap());
                    *d = pil_luma_u32(p) as i32;
                }
                row[last] = pil_luma(l[3 * last], l[3 * last + 1], l[3 * last + 2]) as i32;
            }
        }
    }
}

/// `pil_lanczos_32` of the image `src` reads. The horizontal sums are
/// Pillow's terms in another order (and with zero terms from the padding):
/// integer sums, so the same values, and no partial sum can overflow (see
/// `clip8`).
#[inline(always)]
fn resample_32(src: Src, width: usize, height: usize) -> [u8; SIZE * SIZE] {
    let mut tmp = vec![0u8; SIZE * height];
    if width != SIZE {
        let t = taps_to_32(width);
        let n = t.len;
        // Zeros past the row for the padded taps to read.
        let mut row = vec![0i32; width + n];
        for (y, out) in tmp.chunks_exact_mut(SIZE).enumerate() {
            src.load_row(y, &mut row[..width]);
            // Clamped in a second loop, which vectorises.
            let mut sums = [0i32; SIZE];
            for ((o, &s), k) in sums
                .iter_mut()
                .zip(&t.taps.start)
                .zip(t.padded.chunks_exact(n))
            {
                *o = row[s..][..n].iter().zip(k).map(|(&p, &k)| p * k).sum();
            }
            for (o, &a) in out.iter_mut().zip(&sums) {
                *o = clip8(a + (1 << (PRECISION_BITS - 1)));
            }
        }
    } else {
        let mut row = [0i32; SIZE];
        for (y, out) in tmp.chunks_exact_mut(SIZE).enumerate() {
            src.load_row(y, &mut row);
            out.iter_mut().zip(&row).for_each(|(o, &p)| *o = p as u8);
        }
    }
    let mut out = [0u8; SIZE * SIZE];
    if height != SIZE {
        let t = &taps_to_32(height).taps;
        for yy in 0..SIZE {
            let s = t.start[yy];
            let mut acc = [1i32 << (PRECISION_BITS - 1); SIZE];
            for (i, &k) in t.weights[yy].iter().enumerate() {
                let row = &tmp[(s + i) * SIZE..(s + i + 1) * SIZE];
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, &p)| *a += p as i32 * k);
            }
            for x in 0..SIZE {
                out[yy * SIZE + x] = clip8(acc[x]);
            }
        }
    } else {
        out.copy_from_slice(&tmp);
    }
    out
}

/// cos(π·m/64) for m in 0..128: every angle the size-32 DCT and its halves use.
fn cos_pi_64() -> &'static [f64; 128] {
    static T: OnceLock<[f64; 128]> = OnceLock::new();
    T.get_or_init(|| std::array::from_fn(|m| (std::f64::consts::PI * m as f64 / 64.0).cos()))
}

/// Outputs k < 8 of the unnormalised DCT-II, y[k] = 2 Σ_n x[n] cos(π k (2n+1) / 2N)
/// with N = 32, of L signals at once: lane l of `x[n]` is signal l's sample
/// n, and the arithmetic is lane-wise, so it vectorises without reordering
/// any sum.
///
/// By the even/odd split, applied down to N = 1: with u[n] = x[n] + x[N-1-n]
/// and v[n] = x[n] - x[N-1-n] (n < N/2), the even outputs are the half-size
/// DCT of u and the odd outputs are 2 Σ v[n] cos(π k (2n+1) / 2N), summed in
/// order of n. The adds happen before any multiplication, so a coefficient
/// that vanishes because of a mirror symmetry or a constant signal comes out
/// as exactly 0.0, as it does in scipy's FFT-based DCT (direct sums would
/// leave ±1e-13 noise, and the bit of a coefficient tied with the median
/// would then be random). Each kept output is the same sequence of f64
/// operations as in the full recursive transform; the others are skipped: at
/// depth d (size N = 32 >> d), output k is output k << d of the whole.
#[inline(always)]
fn dct2_head8<const L: usize>(mut x: [[f64; L]; SIZE]) -> [[f64; L]; 8] {
    let c = cos_pi_64();
    let mut out = [[0.0; L]; 8];
    let mut v = [[0.0; L]; SIZE / 2];
    let (mut n, mut d) = (SIZE, 0);
    while n > 1 {
        let h = n / 2;
        for i in 0..h {
            for l in 0..L {
                let (a, b) = (x[i][l], x[n - 1 - i][l]);
                x[i][l] = a + b; // u, in place: x[n-1-i] is not overwritten
                v[i][l] = a - b;
            }
        }
        let mut k = 1;
        while k << d < 8 {
            let mut s = [0.0; L];
            for (i, vi) in v[..h].iter().enumerate() {
                let cf = c[(k * (2 * i + 1) * (SIZE / n)) % 128];
                for l in 0..L {
                    s[l] += vi[l] * cf;
                }
            }
            out[k << d] = s.map(|s| 2.0 * s);
            k += 2;
        }
        (n, d) = (h, d + 1);
    }
    out[0] = x[0].map(|a| 2.0 * a);
    out
}

/// The top-left 8×8 of scipy's unnormalised DCT-II along axis 0 then axis 1
/// (row index = vertical frequency).
pub fn dct8_from_32(px: &[u8; SIZE * SIZE]) -> [f64; 64] {
    dct8_body(px)
}

/// `dct8_from_32`, inlined into the AVX2 copy of `phash_body`.
#[inline(always)]
fn dct8_body(px: &[u8; SIZE * SIZE]) -> [f64; 64] {
    // Axis 0: all 32 columns at once (lanes = x); cols[k][x].
    let cols = dct2_head8::<SIZE>(std::array::from_fn(|y| {
        std::array::from_fn(|x| px[y * SIZE + x] as f64)
    }));
    // Axis 1: the 8 kept rows at once (lanes = k); rows[j][k].
    let rows = dct2_head8::<8>(std::array::from_fn(|x| std::array::from_fn(|k| cols[k][x])));
    std::array::from_fn(|i| rows[i % 8][i / 8])
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
    let px = resample_32(Src::Rgb(img.as_raw()), w, h);
    phash_bits(&dct8_body(&px))
}
