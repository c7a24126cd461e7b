//! Depthwise convolutions eight channels at a time (AVX2 + FMA), the
//! layout ONNX Runtime's MLAS uses for them (NCHWc): each block of eight
//! input planes is transposed into one zero-padded plane of 8-lane pixels,
//! so a tap is one vector multiply-add per output pixel, with no scratch
//! columns and no scalar tail however small the map (EfficientNet's last
//! blocks run 5 × 5 taps on 7 × 7 maps, where per-plane rows of 7 wasted
//! most of each vector). Up to eight outputs of a row are summed in
//! registers across every tap; the sums are transposed back to planes as
//! they are stored, bias and activation applied. The same sums in the same
//! order as the per-plane loops of `grouped::depthwise_planes`, so either gives
//! the same bits.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::Geometry;
use crate::cnn::model::{Act, Conv};

/// Channels in one vector.
const L: usize = 8;

/// Input maps of at most this many pixels run here (64 × 64); larger ones
/// on per-plane rows, whose vectors are then full and which skip the two
/// transposes (one-thread probes on EfficientNet-Lite0's layers: 0.3–0.6×
/// the per-plane time at 7² to 28², 0.7–0.9× at 56², 1.05× at 112²).
const MAX_PIXELS: usize = 64 * 64;

/// Whether `cv` runs here on an input of geometry `g`: a depthwise
/// convolution (channel multiplier 1) of stride 1 or 2 of a map of at most
/// [`MAX_PIXELS`], on a CPU with AVX2 and FMA, unless
/// `LOOKALIKE_CNN_LANES=0` asks for the per-plane loops (to measure one
/// against the other).
pub(super) fn runs(cv: &Conv, g: Geometry) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let on = *ON.get_or_init(|| {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::env::var("LOOKALIKE_CNN_LANES").map_or(true, |v| v != "0")
        });
        on && g.h * g.w <= MAX_PIXELS
            && cv.groups == cv.cin
            && cv.cout == cv.cin
            && matches!(cv.stride, 1 | 2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (cv, g);
        false
    }
}

/// Appends to `out` the output planes of channels `chans` of the
/// depthwise convolution `cv`, whose input planes are the whole of `x`.
///
/// # Panics
/// If [`runs`] is false for `cv`, or `x` is shorter than those planes.
pub(super) fn depthwise(
    cv: &Conv,
    chans: std::ops::Range<usize>,
    x: &[f32],
    g: Geometry,
    out: &mut Vec<f32>,
) {
    assert!(
        runs(cv, g),
        "{}: not a depthwise layer this CPU runs in lanes",
        cv.name
    );
    assert!(
        x.len() >= chans.len() * g.h * g.w,
        "input shorter than its planes"
    );
    assert!(cv.weight.len() >= cv.cout * cv.k * cv.k && cv.bias.len() >= cv.cout);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `runs` checked the CPU's features; the asserts above bound
    // every plane and weight read, `Planes` bounds the rest.
    unsafe {
        depthwise_avx2(cv, chans, x, g, out)
    }
}

/// The padded plane of 8-lane pixels and a block's weights, per call.
struct Planes {
    /// Rows and columns of the padded input (at least what the taps read
    /// and what the image covers).
    rows: usize,
    cols: usize,
    /// `rows × cols` pixels of `L` lanes, zero outside the image.
    input: Vec<f32>,
    /// `k × k` taps of `L` lanes: a block's weights.
    taps: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2(
    cv: &Conv,
    chans: std::ops::Range<usize>,
    x: &[f32],
    g: Geometry,
    out: &mut Vec<f32>,
) {
    let Geometry { h, w, pad, oh, ow } = g;
    let (k, s) = (cv.k, cv.stride);
    let (hw, ohw) = (h * w, oh * ow);
    let rows = ((oh - 1) * s + k).max(pad[0] + h);
    let cols = ((ow - 1) * s + k).max(pad[1] + w);
    let mut p = Planes {
        rows,
        cols,
        input: vec![0f32; rows * cols * L],
        taps: vec![0f32; k * k * L],
    };
    // A block's outputs: `oh × ow` pixels of `L` lanes.
    let mut sums = vec![0f32; ohw * L];
    // Where each input pixel lies in the padded plane.
    let at: Vec<usize> = (0..hw)
        .map(|i| ((i / w + pad[0]) * cols + i % w + pad[1]) * L)
        .collect();
    out.reserve(chans.len() * ohw);
    for c0 in chans.clone().step_by(L) {
        let n = (chans.end - c0).min(L);
        // Lanes past the last channel repeat it; their sums are dropped.
        let chan = |l: usize| c0 + l.min(n - 1);
        let planes: [&[f32]; L] = std::array::from_fn(|l| {
            let i = chan(l) - chans.start;
            &x[i * hw..(i + 1) * hw]
        });
        gather(&planes, &at, &mut p.input);
        for t in 0..k * k {
            for l in 0..L {
                p.taps[t * L + l] = cv.weight[chan(l) * k * k + t];
            }
        }
        let bias = _mm256_loadu_ps(std::array::from_fn::<f32, L, _>(|l| cv.bias[chan(l)]).as_ptr());
        for oy in 0..oh {
            let start = oy * s * cols;
            match s {
                1 => row::<1>(&p, k, start, &mut sums[oy * ow * L..(oy + 1) * ow * L]),
                _ => row::<2>(&p, k, start, &mut sums[oy * ow * L..(oy + 1) * ow * L]),
            }
        }
        finish(&mut sums, bias, cv.act);
        scatter(&sums, n, ohw, out);
    }
}

/// Sums of one output row (`out`: its pixels × `L` lanes) whose first
/// tap reads padded pixel `start`: blocks of 8 outputs, then the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row<const S: usize>(p: &Planes, k: usize, start: usize, out: &mut [f32]) {
    let ow = out.len() / L;
    let mut x0 = 0;
    while x0 + 8 <= ow {
        block::<8, S>(p, k, start + x0 * S, &mut out[x0 * L..]);
        x0 += 8;
    }
    let (st, o) = (start + x0 * S, &mut out[x0 * L..]);
    match ow - x0 {
        1 => block::<1, S>(p, k, st, o),
        2 => block::<2, S>(p, k, st, o),
        3 => block::<3, S>(p, k, st, o),
        4 => block::<4, S>(p, k, st, o),
        5 => block::<5, S>(p, k, st, o),
        6 => block::<6, S>(p, k, st, o),
        7 => block::<7, S>(p, k, st, o),
        _ => {}
    }
}

/// `B` consecutive outputs of a row at stride `S`, each tap's weights
/// loaded once and multiplied into all `B` sums (independent chains, so the
/// multiply-adds overlap instead of waiting on each other).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const B: usize, const S: usize>(
    p: &Planes,
    k: usize,
    start: usize,
    out: &mut [f32],
) {
    // Every read below lies in these bounds.
    let last_row = start / p.cols + k - 1;
    assert!(last_row < p.rows && start % p.cols + (B - 1) * S + k <= p.cols);
    assert!(out.len() >= B * L && p.taps.len() >= k * k * L);
    let (input, taps) = (p.input.as_ptr(), p.taps.as_ptr());
    let mut a = [_mm256_setzero_ps(); B];
    for ky in 0..k {
        let r = input.add((start + ky * p.cols) * L);
        for kx in 0..k {
            let wv = _mm256_loadu_ps(taps.add((ky * k + kx) * L));
            for (i, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r.add((i * S + kx) * L)), *acc);
            }
        }
    }
    for (i, acc) in a.iter().enumerate() {
        _mm256_storeu_ps(out.as_mut_ptr().add(i * L), *acc);
    }
}

/// `act(sum + bias)` over every pixel of a block's sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn finish(sums: &mut [f32], bias: __m256, act: Act) {
    let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
    for px in sums.chunks_exact_mut(L) {
        let v = _mm256_add_ps(_mm256_loadu_ps(px.as_ptr()), bias);
        let v = match act {
            Act::None => v,
            Act::Relu => _mm256_max_ps(v, zero),
            Act::Relu6 => _mm256_min_ps(_mm256_max_ps(v, zero), six),
        };
        _mm256_storeu_ps(px.as_mut_ptr(), v);
    }
}

/// Writes the `L` planes into the padded plane of lanes, 8 pixels at a
/// time by an 8 × 8 transpose, pixel `i` at `input[at[i]..]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gather(planes: &[&[f32]; L], at: &[usize], input: &mut [f32]) {
    let hw = at.len();
    assert!(planes.iter().all(|p| p.len() == hw));
    assert!(at.iter().all(|&a| a + L <= input.len()));
    let dst = input.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= hw {
        let t = transpose(std::array::from_fn(|l| {
            _mm256_loadu_ps(planes[l].as_ptr().add(i))
        }));
        for (j, v) in t.into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(at[i + j]), v);
        }
        i += 8;
    }
    for i in i..hw {
        for (l, plane) in planes.iter().enumerate() {
            input[at[i] + l] = plane[i];
        }
    }
}

/// Appends the first `n` lanes of `sums` (`ohw` pixels) to `out` as `n`
/// planes, 8 pixels at a time by an 8 × 8 transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter(sums: &[f32], n: usize, ohw: usize, out: &mut Vec<f32>) {
    assert!(sums.len() >= ohw * L && n <= L);
    out.reserve(n * ohw);
    let base = out.len();
    let dst = out.spare_capacity_mut().as_mut_ptr() as *mut f32;
    let mut i = 0;
    while i + 8 <= ohw {
        let t = transpose(std::array::from_fn(|j| {
            _mm256_loadu_ps(sums.as_ptr().add((i + j) * L))
        }));
        for (l, v) in t.into_iter().take(n).enumerate() {
            _mm256_storeu_ps(dst.add(l * ohw + i), v);
        }
        i += 8;
    }
    for i in i..ohw {
        for l in 0..n {
            dst.add(l * ohw + i).write(sums[i * L + l]);
        }
    }
    // SAFETY: the loops wrote all `n × ohw` floats past the old length.
    out.set_len(base + n * ohw);
}

/// The 8 × 8 transpose of eight rows (unpack pairs, shuffle quads, swap
/// 128-bit halves: the textbook AVX sequence).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive, random_conv, rnd};
    use super::*;
    use crate::cnn::model::{Act, Padding};

    #[test]
    fn lanes_give_the_per_plane_bits() {
        // (channels, k, stride, padding, h, w): maps narrower than a block
        // of 8 outputs and wider, odd sides, channels in part of a vector.
        let cases = [
            (16, 5, 1, Padding::TfSame, 7, 7),
            (13, 3, 1, Padding::TfSame, 14, 14),
            (8, 5, 2, Padding::TfSame, 14, 14),
            (5, 3, 2, Padding::TfSame, 9, 12),
            (24, 3, 2, Padding::Explicit([1, 1, 1, 1]), 28, 28),
            (3, 3, 1, Padding::Explicit([0, 2, 1, 0]), 5, 19),
            (9, 5, 1, Padding::TfSame, 1, 1),
        ];
        let mut ran = 0;
        for (i, &(c, k, stride, padding, h, w)) in cases.iter().enumerate() {
            let cv = Conv {
                padding,
                act: [Act::Relu6, Act::None, Act::Relu][i % 3],
                ..random_conv(c, c, k, stride, c, i as u32 + 3)
            };
            let g = Geometry::of(&cv, h, w);
            if !runs(&cv, g) {
                continue;
            }
            ran += 1;
            let x = rnd(c * h * w, i as u32 + 11);
            let (mut a, mut b) = (vec![], vec![]);
            depthwise(&cv, 0..c, &x, g, &mut a);
            super::super::grouped::depthwise_planes(&cv, 0..c, &x, g, &mut b);
            assert_eq!(a, b, "case {i}");
            let (want, ..) = naive(&cv, &x, h, w);
            for (p, q) in a.iter().zip(&want) {
                assert!((p - q).abs() < 1e-4, "case {i}: {p} vs {q}");
            }
        }
        // Where this kernel exists, every case ran on it.
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_eq!(
                ran,
                cases.len(),
                "cases run in lanes (LOOKALIKE_CNN_LANES=0 set?)"
            );
        }
        let _ = ran;
    }
}
