//! Grouped and depthwise convolutions: little arithmetic per byte, so
//! register-blocked loops over padded copies of the input planes instead of
//! matrix products.

use super::{add_bias_act, apply_act, inside_columns, Geometry};
use crate::cnn::model::Conv;

/// A grouped convolution's output (`cout × oh·ow`).
#[inline(always)]
pub(super) fn grouped(cv: &Conv, x: &[f32], g: Geometry) -> Vec<f32> {
    let Geometry { oh, ow, .. } = g;
    let mut out = Vec::with_capacity(cv.cout * oh * ow);
    if cv.cin == cv.groups {
        // Bias and activation applied as it stores its outputs.
        depthwise(cv, 0..cv.cin, x, g, &mut out);
    } else {
        for &b in &cv.bias {
            out.resize(out.len() + oh * ow, b);
        }
        direct(cv, x, g, &mut out);
        apply_act(cv.act, &mut out, oh * ow, 0..oh * ow);
    }
    out
}

/// The output planes of channels `chans` of a depthwise convolution, whose
/// input planes are the whole of `x`, appended to `out`: in lanes
/// (`super::lanes`) where they run, else per plane ([`depthwise_planes`]).
#[inline(always)]
pub(super) fn depthwise(
    cv: &Conv,
    chans: std::ops::Range<usize>,
    x: &[f32],
    g: Geometry,
    out: &mut Vec<f32>,
) {
    match super::lanes::runs(cv, g) {
        true => super::lanes::depthwise(cv, chans, x, g, out),
        false => depthwise_planes(cv, chans, x, g, out),
    }
}

/// A convolution with one input channel per group (depthwise, any channel
/// multiplier). Each input plane is copied once, zero-padded, into `s²`
/// phase planes (rows and columns split by their remainder mod the stride),
/// so that every tap reads one contiguous run of the output laid out at the
/// phase planes' row width (columns past `ow` are scratch), summed in
/// register blocks ([`depthwise_taps`]); each output row is then appended
/// to `out` with bias and activation applied. Only the input channels
/// `chans` are convolved, their planes the whole of `x` (so an expansion can
/// feed it a block of channels at a time).
#[inline(always)]
pub(super) fn depthwise_planes(
    cv: &Conv,
    chans: std::ops::Range<usize>,
    x: &[f32],
    g: Geometry,
    out: &mut Vec<f32>,
) {
    let Geometry { h, w, pad, oh, ow } = g;
    let (k, s) = (cv.k, cv.stride);
    // The padded input the outputs read: rows 0..hp, columns 0..wp.
    let (hp, wp) = ((oh - 1) * s + k, (ow - 1) * s + k);
    let (hq, wq) = (hp.div_ceil(s), wp.div_ceil(s));
    // One spare row: a tap's last garbage columns run past the plane.
    let plane = (hq + 1) * wq;
    // Outputs are summed in whole vectors of 8 (the last one's spare lanes
    // are never stored), so the planes get room for the last tap's reads.
    let acc_len = (oh * wq).next_multiple_of(8);
    let tap_start = |ky: usize, kx: usize| ((ky % s) * s + kx % s) * plane + (ky / s) * wq + kx / s;
    let mut acc = vec![0f32; acc_len];
    // Where each tap (row-major) starts reading, the same for every channel
    // (computed once: the divisions cost more than a 7 × 7 plane's sums).
    let starts: Vec<usize> = (0..k * k).map(|t| tap_start(t / k, t % k)).collect();
    let last_read = starts.iter().max().map_or(0, |m| m + acc_len);
    let mut phases = vec![0f32; (s * s * plane).max(last_read)];
    let mut taps = Vec::with_capacity(k * k);
    let mult = cv.cout / cv.cin;
    // Input rows and columns inside the image, as padded coordinates.
    let rows = pad[0]..(pad[0] + h).min(hp);
    let cols = pad[1]..(pad[1] + w).min(wp);
    // Where each input row's phase rows start (hoisted, as `starts`).
    let row_bases: Vec<usize> = rows
        .clone()
        .map(|py| (py % s) * s * plane + (py / s) * wq)
        .collect();
    for ci in chans.clone() {
        let src = &x[(ci - chans.start) * h * w..(ci - chans.start + 1) * h * w];
        // Positions outside the image stay 0 from the first fill.
        for (py, &base) in rows.clone().zip(&row_bases) {
            let row = &src[(py - pad[0]) * w..(py - pad[0] + 1) * w];
            if s == 1 {
                phases[base + cols.start..base + cols.end]
                    .copy_from_slice(&row[..cols.end - cols.start]);
            } else if s == 2 {
                // Column pairs split between the two column phases: the
                // common stride, as one deinterleaving loop.
                let first = cols.start;
                let r = &row[..cols.end - first];
                {
                    let (even, odd) = phases[base..].split_at_mut(plane);
                    let (da, db) = match first % 2 {
                        0 => (&mut even[first / 2..], &mut odd[first / 2..]),
                        _ => (&mut odd[first / 2..], &mut even[first / 2 + 1..]),
                    };
                    // Indexed over equal lengths: LLVM vectorises this
                    // stride-2 pattern (shuffles), not the zipped chunks.
                    let n = r.len() / 2;
                    let (da, db, r) = (&mut da[..n], &mut db[..n], &r[..2 * n]);
                    for i in 0..n {
                        da[i] = r[2 * i];
                        db[i] = r[2 * i + 1];
                    }
                }
                if r.len() % 2 == 1 {
                    let px = cols.end - 1;
                    phases[base + (px % 2) * plane + px / 2] = r[r.len() - 1];
                }
            } else {
                // Columns of one remainder go to one phase plane, in order.
                for px0 in cols.start..(cols.start + s).min(cols.end) {
                    let dst = base + (px0 % s) * plane + px0 / s;
                    let taken = row[px0 - pad[1]..cols.end - pad[1]].iter().step_by(s);
                    phases[dst..]
                        .iter_mut()
                        .zip(taken)
                        .for_each(|(d, v)| *d = *v);
                }
            }
        }
        for co in ci * mult..(ci + 1) * mult {
            let weights = &cv.weight[co * k * k..(co + 1) * k * k];
            taps.clear();
            taps.extend(weights.iter().copied().zip(starts.iter().copied()));
            depthwise_taps(&taps, &phases, &mut acc);
            // Output channels come in order: append their rows, then bias
            // and activation over the channel while it is in L1.
            let base = out.len();
            for arow in acc.chunks(wq).take(oh) {
                out.extend_from_slice(&arow[..ow]);
            }
            add_bias_act(&mut out[base..], cv.bias[co], cv.act);
        }
    }
}

/// `acc[j] = Σ w · phases[start + j]` over the taps `(w, start)`, in tap
/// order (the same sums, in the same order, as one pass per tap). Blocks
/// of 64 outputs, then 8 (`acc` is a whole number of 8s: a scalar tail
/// cost as much as the vectors on a 7 × 7 plane), stay in registers across
/// every tap, so a tap costs one load and one multiply-add per output
/// instead of a pass over the whole accumulator.
#[inline(always)]
fn depthwise_taps(taps: &[(f32, usize)], phases: &[f32], acc: &mut [f32]) {
    debug_assert_eq!(acc.len() % 8, 0);
    let j = taps_blocks::<64>(taps, phases, acc, 0);
    taps_blocks::<8>(taps, phases, acc, j);
}

/// `depthwise_taps` over the whole blocks of `B` outputs from `acc[from..]`;
/// returns where the first incomplete block starts.
#[inline(always)]
fn taps_blocks<const B: usize>(
    taps: &[(f32, usize)],
    phases: &[f32],
    acc: &mut [f32],
    from: usize,
) -> usize {
    let blocks = acc[from..].chunks_exact_mut(B);
    let done = from + blocks.len() * B;
    for (bi, block) in blocks.enumerate() {
        let j = from + bi * B;
        let mut a = [0f32; B];
        for &(wv, start) in taps {
            let src: &[f32; B] = phases[start + j..start + j + B]
                .try_into()
                .expect("a block of B floats");
            for t in 0..B {
                a[t] = wv.mul_add(src[t], a[t]);
            }
        }
        block.copy_from_slice(&a);
    }
    done
}

/// Any other convolution (grouped, depthwise, strided, k×k): for each
/// (output channel, input channel of its group, tap), add a weighted
/// input row to the output row, only over the columns inside the image.
#[inline(always)]
fn direct(cv: &Conv, x: &[f32], g: Geometry, out: &mut [f32]) {
    let Geometry { h, w, pad, oh, ow } = g;
    let (k, s) = (cv.k, cv.stride);
    let cpg_in = cv.cin / cv.groups;
    let cpg_out = cv.cout / cv.groups;
    let (pt, pl) = (pad[0] as isize, pad[1] as isize);
    for co in 0..cv.cout {
        let g = co / cpg_out;
        let o = &mut out[co * oh * ow..(co + 1) * oh * ow];
        for cig in 0..cpg_in {
            let ci = g * cpg_in + cig;
            let xc = &x[ci * h * w..(ci + 1) * h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = cv.weight[((co * cpg_in + cig) * k + ky) * k + kx];
                    let off = kx as isize - pl;
                    let std::ops::Range { start: lo, end: hi } = inside_columns(w, ow, off, s);
                    if lo >= hi {
                        continue;
                    }
                    for oy in 0..oh {
                        let iy = (oy * s + ky) as isize - pt;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let row = &xc[iy as usize * w..(iy as usize + 1) * w];
                        let orow = &mut o[oy * ow..(oy + 1) * ow];
                        if s == 1 {
                            let start = (lo as isize + off) as usize;
                            orow[lo..hi]
                                .iter_mut()
                                .zip(&row[start..start + (hi - lo)])
                                .for_each(|(o, v)| *o += wv * v);
                        } else {
                            for (ox, o) in orow.iter_mut().enumerate().take(hi).skip(lo) {
                                *o += wv * row[((ox * s) as isize + off) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
}
