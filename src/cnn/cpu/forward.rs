//! The forward pass: a batch split into groups, one group per task on
//! rayon's pool, each group's images run through the layers in two
//! phases. While maps are large, one image at a time runs from layer to
//! layer (its map stays in L2 from one layer to the next); once they are
//! small ([`LOCKSTEP_PIXELS`]), every image of the group runs one layer
//! before any runs the next, so each layer's weights, which then outweigh
//! its maps (EfficientNet-Lite0's last 1×1 layers: 0.9 MB of weights for
//! a 0.2 MB map; ResNet-50's last stage: 60 MB), are read from memory once
//! per group instead of once per image. The layers themselves run as
//! [`super::conv`] and the fusions here (an expansion with its depthwise
//! layer, a product with the residual add after it) make them.

use std::collections::HashMap;
use std::rc::Rc;

use rayon::prelude::*;

use super::apply_act;
use super::{conv, gemm, grouped, int8, max_pool, Geometry};
use crate::cnn::model::{Conv, Layer, Network};
use crate::cnn::Tensor;

/// Images per group at most: enough to share each layer's weights, few
/// enough that a group's maps of one layer stay in L2 (4 and 8 ran level
/// on EfficientNet-Lite0 and ResNet-50, batches of 16 on 2 cores).
const GROUP: usize = 4;

/// Maps of at most this many pixels run in lockstep across a group
/// (28 × 28: from EfficientNet-Lite0's fourth stage and ResNet-50's third
/// at 288² on). Against none, batches of 16 on 2 cores: Lite0 +6 %,
/// ResNet-50 +16 % (medians of 6 and 3 alternating runs); 14 × 14 ran
/// level with it on Lite0, 36 × 36 on ResNet-50.
const LOCKSTEP_PIXELS: usize = 28 * 28;

/// [`LOCKSTEP_PIXELS`], or 0 (every layer image by image) with
/// `LOOKALIKE_CNN_LOCKSTEP=0` (to measure one against the other).
fn lockstep_pixels() -> usize {
    static PIXELS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PIXELS.get_or_init(|| match std::env::var("LOOKALIKE_CNN_LOCKSTEP") {
        Ok(v) if v == "0" => 0,
        _ => LOCKSTEP_PIXELS,
    })
}

/// The pooled layer's feature map for every image of the batch.
pub fn forward(net: &Network, x: &Tensor) -> Tensor {
    // As many groups as threads at least, so no core idles on a small batch.
    let group = x.n.div_ceil(rayon::current_num_threads()).clamp(1, GROUP);
    let starts: Vec<usize> = (0..x.n).step_by(group).collect();
    let outs: Vec<(Vec<Vec<f32>>, usize, usize, usize)> = starts
        .into_par_iter()
        .map(|i0| {
            let inputs = (i0..(i0 + group).min(x.n))
                .map(|i| x.image(i).to_vec())
                .collect();
            forward_group(net, inputs, x.c, x.h, x.w)
        })
        .collect();
    let (_, c, h, w) = outs[0];
    let mut t = Tensor::zeros(x.n, c, h, w);
    let maps = outs.into_iter().flat_map(|(maps, ..)| maps);
    for (dst, o) in t.data.chunks_mut(c * h * w).zip(maps) {
        dst.copy_from_slice(&o);
    }
    t
}

fn forward_group(
    net: &Network,
    inputs: Vec<Vec<f32>>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<Vec<f32>>, usize, usize, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this copy was compiled for.
            return unsafe { forward_group_avx2(net, inputs, c, h, w) };
        }
    }
    forward_group_generic(net, inputs, c, h, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_group_avx2(
    net: &Network,
    inputs: Vec<Vec<f32>>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<Vec<f32>>, usize, usize, usize) {
    forward_group_generic(net, inputs, c, h, w)
}

/// A group's maps between two layers: each image's running map, and the
/// outputs later layers read again (residual sources, shortcut inputs),
/// kept shared, not copied (a residual add copies only a map it would
/// otherwise write into while it is kept).
struct Maps {
    /// One running map per image, all `c × h × w`.
    x: Vec<Rc<Vec<f32>>>,
    c: usize,
    h: usize,
    w: usize,
    /// Kept outputs by layer.
    saved: HashMap<usize, Kept>,
}

/// One kept output: a map per image of the group, and their `c, h, w`.
type Kept = (Vec<Rc<Vec<f32>>>, usize, usize, usize);

#[inline(always)]
fn forward_group_generic(
    net: &Network,
    inputs: Vec<Vec<f32>>,
    c: usize,
    h: usize,
    w: usize,
) -> (Vec<Vec<f32>>, usize, usize, usize) {
    // Each kept output, and the last layer that reads it.
    let mut kept: HashMap<usize, usize> = HashMap::new();
    for (j, l) in net.layers.iter().enumerate() {
        if let Some(src) = l.reads() {
            kept.insert(src, j);
        }
    }
    let lockstep = lockstep_pixels();
    // Phase one, image by image; then the group, merged, layer by layer.
    let mut group = Maps {
        x: Vec::with_capacity(inputs.len()),
        c,
        h,
        w,
        saved: HashMap::new(),
    };
    let mut next = 0;
    for input in inputs {
        let mut one = Maps {
            x: vec![Rc::new(input)],
            c,
            h,
            w,
            saved: HashMap::new(),
        };
        next = run(net, &kept, 0, &mut one, Some(lockstep));
        group.x.append(&mut one.x);
        (group.c, group.h, group.w) = (one.c, one.h, one.w);
        for (i, (mut maps, sc, sh, sw)) in one.saved {
            let e = group
                .saved
                .entry(i)
                .or_insert_with(|| (Vec::new(), sc, sh, sw));
            e.0.append(&mut maps);
        }
    }
    run(net, &kept, next, &mut group, None);
    let Maps { x, c, h, w, saved } = group;
    drop(saved);
    let maps = x
        .into_iter()
        .map(|m| Rc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone()))
        .collect();
    (maps, c, h, w)
}

/// Runs the layers from `from` on every map of `m`, layer by layer; with
/// `stop`, returns before the first layer whose input has at most `stop`
/// pixels (its index), else after the last (the layer count).
#[inline(always)]
fn run(
    net: &Network,
    kept: &HashMap<usize, usize>,
    from: usize,
    m: &mut Maps,
    stop: Option<usize>,
) -> usize {
    let mut layers = net.layers.iter().enumerate().skip(from).peekable();
    while let Some((i, l)) = layers.next() {
        // Kept outputs that no layer from here on reads are freed now, so
        // the allocator hands their memory to the next layers. Held to the
        // end (every block input of a ResNet-50: tens of MB an image), they
        // made most new maps fresh pages from the kernel: SSCD int8,
        // batches of 8 on 2 cores, 3 400 page faults an image and a fifth
        // of the cycles in the kernel; none per image now
        // (benches/README.md, "Kept maps freed once read").
        m.saved.retain(|src, _| kept[src] >= i);
        if stop.is_some_and(|s| m.h * m.w <= s) {
            return i;
        }
        let (h, w) = (m.h, m.w);
        // An expansion whose only reader is the depthwise layer after it
        // runs fused with it, a block of channels at a time.
        if let (Layer::Conv(e), Some(&(j, Layer::Conv(d)))) = (l, layers.peek()) {
            if !kept.contains_key(&i) && !kept.contains_key(&j) && fusable(e, d, h, w) {
                let mut dims = (h, w);
                for x in &mut m.x {
                    let (y, oh, ow) = expand_depthwise(e, d, x, h, w);
                    (*x, dims) = (Rc::new(y), (oh, ow));
                }
                (m.c, (m.h, m.w)) = (d.cout, dims);
                layers.next();
                continue;
            }
        }
        // An ungrouped convolution and the residual add after it run as one
        // pass (the add in the product's epilogue).
        if let (Layer::Conv(cv), Some(&(j, &Layer::Add { from, act }))) = (l, layers.peek()) {
            if cv.groups == 1 && !kept.contains_key(&i) {
                let (sh, sw) = cv.from.map_or((h, w), |f| (m.saved[&f].2, m.saved[&f].3));
                let g = Geometry::of(cv, sh, sw);
                for (n, x) in m.x.iter_mut().enumerate() {
                    let src = match cv.from {
                        Some(f) => m.saved[&f].0[n].as_slice(),
                        None => x.as_slice(),
                    };
                    let res = m.saved[&from].0[n].as_slice();
                    let y = match &cv.int8 {
                        Some(q) => int8::ungrouped_add(cv, q, src, g, res, act),
                        None => gemm::ungrouped(cv, src, g, Some((res, act))),
                    };
                    *x = Rc::new(y);
                }
                (m.c, m.h, m.w) = (cv.cout, g.oh, g.ow);
                layers.next();
                if kept.contains_key(&j) {
                    m.saved.insert(j, (m.x.clone(), m.c, m.h, m.w));
                }
                continue;
            }
        }
        match l {
            Layer::Conv(cv) => {
                let (sh, sw) = cv.from.map_or((h, w), |f| (m.saved[&f].2, m.saved[&f].3));
                let g = Geometry::of(cv, sh, sw);
                for (n, x) in m.x.iter_mut().enumerate() {
                    let y = match cv.from {
                        Some(f) => conv(cv, &m.saved[&f].0[n], sh, sw).0,
                        None => conv(cv, x, h, w).0,
                    };
                    *x = Rc::new(y);
                }
                (m.c, m.h, m.w) = (cv.cout, g.oh, g.ow);
            }
            Layer::Add { from, act } => {
                let len = m.c * h * w;
                for (n, x) in m.x.iter_mut().enumerate() {
                    let r = &m.saved[from].0[n];
                    let x = Rc::make_mut(x);
                    x.iter_mut().zip(r.iter()).for_each(|(a, b)| *a += b);
                    apply_act(*act, x, len, 0..len);
                }
            }
            &Layer::MaxPool { k, stride, pad } => {
                let mut dims = (h, w);
                for x in &mut m.x {
                    let (y, oh, ow) = max_pool(x, m.c, h, w, k, stride, pad);
                    (*x, dims) = (Rc::new(y), (oh, ow));
                }
                (m.h, m.w) = dims;
            }
        }
        if kept.contains_key(&i) {
            m.saved.insert(i, (m.x.clone(), m.c, m.h, m.w));
        }
    }
    net.layers.len()
}

/// Floats of one block of expanded channels (512 KiB, half an L2).
const FUSE_BLOCK: usize = 1 << 17;

/// Whether `e` then `d` run fused (`expand_depthwise`): `e` a 1×1
/// stride-1 unpadded convolution of the running `h × w` map whose output
/// would not fit in L2, `d` a depthwise convolution of it.
pub(super) fn fusable(e: &Conv, d: &Conv, h: usize, w: usize) -> bool {
    e.groups == 1
        && e.k == 1
        && e.stride == 1
        && e.from.is_none()
        && e.padding.resolve(h, w, 1, 1).0 == [0; 4]
        && d.from.is_none()
        && d.groups > 1
        && d.groups == d.cin
        && d.cin == e.cout
        && e.cout * h * w > 2 * FUSE_BLOCK
}

/// A 1×1 expansion and the depthwise convolution after it, a block of
/// channels at a time, so the expanded map (4.8 MB a 112² image in Lite0)
/// is never written to memory and read back: each block's expansion stays
/// in L2 for the depthwise taps. The same sums as the two layers apart.
#[inline(always)]
pub(super) fn expand_depthwise(
    e: &Conv,
    d: &Conv,
    x: &[f32],
    h: usize,
    w: usize,
) -> (Vec<f32>, usize, usize) {
    let hw = h * w;
    let g = Geometry::of(d, h, w);
    let (oh, ow) = (g.oh, g.ow);
    let block = (FUSE_BLOCK / hw.max(1)).next_multiple_of(8);
    let mut out = Vec::with_capacity(d.cout * oh * ow);
    for c0 in (0..e.cout).step_by(block) {
        let chans = c0..(c0 + block).min(e.cout);
        let expanded = gemm::pointwise_rows(e, chans.clone(), x, hw);
        grouped::depthwise(d, chans, &expanded, g, &mut out);
    }
    debug_assert_eq!(out.len(), d.cout * oh * ow);
    (out, oh, ow)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{random_conv, rnd};
    use super::*;
    use crate::cnn::model::Act;

    fn layer(name: &str, cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> Conv {
        let seed = name.bytes().map(u32::from).sum::<u32>();
        Conv {
            name: name.into(),
            ..random_conv(cin, cout, k, stride, groups, seed)
        }
    }

    /// A small network with every layer kind and fusion: a strided stem
    /// (a 40 × 40 map, run image by image), max pooling to 20 × 20 (in
    /// lockstep from there: 400 pixels), an expansion fused with its depthwise layer, a
    /// product fused with the residual add after it, a shortcut
    /// convolution reading a kept map, a plain residual add, and a kept map
    /// read twice (freed only after its last reader).
    fn net() -> Network {
        let mut shortcut = layer("shortcut", 24, 24, 1, 1, 1);
        shortcut.from = Some(1);
        let layers = vec![
            Layer::Conv(layer("stem", 3, 24, 3, 2, 1)),
            Layer::MaxPool {
                k: 3,
                stride: 2,
                pad: 1,
            },
            Layer::Conv(layer("expand", 24, 660, 1, 1, 1)),
            Layer::Conv(layer("dw", 660, 660, 5, 1, 660)),
            Layer::Conv(layer("project", 660, 24, 1, 1, 1)),
            Layer::Add {
                from: 1,
                act: Act::None,
            },
            Layer::Conv(shortcut),
            Layer::Add {
                from: 5,
                act: Act::Relu,
            },
            // The pooled map a second time: kept past its first reader.
            Layer::Add {
                from: 1,
                act: Act::None,
            },
        ];
        Network {
            name: "test".into(),
            layers,
            input: (80, 80),
            mean: [0.0; 3],
            std: [1.0; 3],
            gem_p: 3.0,
            gem_clamp: 1e-6,
            classifier: None,
            projection: None,
            fingerprint: String::new(),
        }
    }

    #[test]
    fn a_group_in_lockstep_gives_each_image_its_own_bits() {
        let net = net();
        net.check_channels().unwrap();
        // The expansion runs fused (660 × 20² is past two blocks; the
        // last of three has 4 channels, half a vector of lanes).
        let conv_at = |i: usize| match &net.layers[i] {
            Layer::Conv(c) => c,
            _ => unreachable!(),
        };
        assert!(fusable(conv_at(2), conv_at(3), 20, 20));
        let n = 7;
        let mut x = Tensor::zeros(n, 3, 80, 80);
        x.data = rnd(x.data.len(), 5);
        // One thread: groups of 4 and 3 however many cores run the test.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let all = pool.install(|| forward(&net, &x));
        assert_eq!((all.c, all.h, all.w), (24, 20, 20));
        for i in 0..n {
            let mut one = Tensor::zeros(1, 3, 80, 80);
            one.data.copy_from_slice(x.image(i));
            let alone = forward(&net, &one);
            assert_eq!(alone.data, all.image(i), "image {i}");
        }
        // The images differ, so a mix-up of maps within a group would show.
        assert_ne!(all.image(0), all.image(1));
    }
}
