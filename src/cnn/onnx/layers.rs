//! The trunk layers the importer builds from their nodes: Conv (with a
//! following BatchNormalization folded in), MaxPool, activations fused into
//! their producer, and the Gemm projection; then the trunk DAG laid out as
//! our linear layer list.

use std::rc::Rc;

use super::lower::{attr, ints_or, Importer, Src, Stage, TNode, Val};
use super::schema::{Arr, Node};
use crate::cnn::model::{Act, Conv, Int8Conv, Layer, Padding};

/// `new` applied after `old`.
fn combine(old: Act, new: Act) -> Act {
    match (old, new) {
        (Act::Relu6, _) | (_, Act::Relu6) => Act::Relu6,
        (Act::None, a) => a,
        (a, _) => a,
    }
}

impl Importer {
    /// Applies `act` to `v` (a node's output that nothing has read yet).
    pub(super) fn act(&mut self, n: &Node, v: Val, act: Act) -> Result<(), String> {
        match v {
            Val::Feat(id, v) if v == self.nodes[id].version && !self.nodes[id].read => {
                let t = &mut self.nodes[id];
                t.version += 1;
                match &mut t.layer {
                    Layer::Conv(c) => c.act = combine(c.act, act),
                    Layer::Add { act: a, .. } => *a = combine(*a, act),
                    Layer::MaxPool { .. } => {
                        // relu(max(x)) = max(relu(x)): fine if the input is already ReLU'd.
                        let ok = match t.inputs[0] {
                            Src::Node(p) => match &self.nodes[p].layer {
                                Layer::Conv(c) => {
                                    c.act != Act::None && (act == Act::Relu || c.act == Act::Relu6)
                                }
                                Layer::Add { act: a, .. } => {
                                    *a != Act::None && (act == Act::Relu || *a == Act::Relu6)
                                }
                                _ => false,
                            },
                            Src::Image => false,
                        };
                        if !ok {
                            return Err(
                                "an activation after a max pool of an unactivated input".into()
                            );
                        }
                    }
                }
                self.set(n, Val::Feat(id, v + 1));
            }
            Val::Feat(..) => return Err("activation of a value another node already read".into()),
            Val::Const(a) => {
                let data = a.data.iter().map(|&x| act.apply(x)).collect();
                self.set(
                    n,
                    Val::Const(Rc::new(Arr {
                        data,
                        ..(*a).clone()
                    })),
                );
            }
            _ => return Err("activation of something that is not a feature map".into()),
        }
        Ok(())
    }

    pub(super) fn batch_norm(&mut self, n: &Node) -> Result<(), String> {
        let Val::Feat(id, v) = *self.input(n, 0)? else {
            return Err("batch norm of something that is not a feature map".into());
        };
        let [g, b, m, var] = [1, 2, 3, 4].map(|i| self.need(n, i).map(|a| a.data.clone()));
        let (g, b, m, var) = (g?, b?, m?, var?);
        let eps = attr(n, "epsilon").map_or(1e-5, |a| a.f);
        let t = &mut self.nodes[id];
        let Layer::Conv(c) = &mut t.layer else {
            return Err("batch norm must follow a Conv".into());
        };
        if t.read
            || v != t.version
            || c.act != Act::None
            || [&g, &b, &m, &var].iter().any(|x| x.len() != c.cout)
        {
            return Err("batch norm must directly follow a Conv of the same width".into());
        }
        // Folding changes the weights: the integers no longer describe them.
        c.int8 = None;
        let per = c.weight.len() / c.cout;
        for o in 0..c.cout {
            let s = g[o] / (var[o] + eps).sqrt();
            c.weight[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|w| *w *= s);
            c.bias[o] = (c.bias[o] - m[o]) * s + b[o];
        }
        t.version += 1;
        self.set(n, Val::Feat(id, v + 1));
        Ok(())
    }

    pub(super) fn conv(&mut self, n: &Node) -> Result<(), String> {
        let src = self.src(n, 0)?;
        let w = self.need(n, 1)?;
        let (d, weight) = (w.dims.clone(), w.data.clone());
        let groups = usize::try_from(attr(n, "group").map_or(1, |a| a.i)).unwrap_or(0);
        let cin = d.get(1).and_then(|c| c.checked_mul(groups));
        if d.len() != 4
            || d.contains(&0)
            || groups == 0
            || d[2] != d[3]
            || cin.is_none()
            || d[0] % groups != 0
        {
            return Err(format!(
                "weight shape {d:?} (group {groups}) is not a square 2-D kernel"
            ));
        }
        let (cout, k) = (d[0], d[2]);
        let bias = self
            .konst(n, 2)?
            .map_or(vec![0.0; cout], |b| b.data.clone());
        let strides = ints_or(n, "strides", &[1, 1]);
        let pads = ints_or(n, "pads", &[0, 0, 0, 0]);
        let kernel = ints_or(n, "kernel_shape", &[k as i64, k as i64]);
        let padding = match attr(n, "auto_pad").map_or("NOTSET", |a| a.s.as_str()) {
            "NOTSET" | "" if pads.len() == 4 && pads.iter().all(|&p| p >= 0) => {
                Padding::Explicit(std::array::from_fn(|i| pads[i] as usize))
            }
            "VALID" => Padding::Explicit([0; 4]),
            "SAME_UPPER" => Padding::TfSame,
            p => return Err(format!("padding {p} {pads:?} is not supported")),
        };
        if bias.len() != cout
            || strides.len() != 2
            || strides[0] != strides[1]
            || strides[0] < 1
            || kernel != [k as i64, k as i64]
            || ints_or(n, "dilations", &[1, 1]).iter().any(|&x| x != 1)
        {
            return Err("unsupported bias, stride, kernel or dilation".into());
        }
        // The integer form when both the input and the weights come from
        // dequantised integers (the int8 kernels take ungrouped convolutions).
        let int8 = match (
            n.inputs.first().and_then(|i| self.act_q.get(i)),
            n.inputs.get(1).and_then(|i| self.weight_q.get(i)),
        ) {
            (Some(&(in_scale, in_zero)), Some(w))
                if groups == 1 && w.0.len() == weight.len() && w.1.len() == cout =>
            {
                Some(std::sync::Arc::new(Int8Conv::new(
                    in_scale,
                    in_zero,
                    w.0.clone(),
                    w.1.clone(),
                    cin.unwrap_or(0),
                    k,
                )))
            }
            _ => None,
        };
        let c = Conv {
            name: n.name.clone(),
            cin: cin.unwrap_or(0),
            cout,
            k,
            stride: strides[0] as usize,
            groups,
            padding,
            act: Act::None,
            weight,
            bias,
            from: None,
            int8,
            winograd: Default::default(),
        };
        self.push(n, Layer::Conv(c), vec![src]);
        Ok(())
    }

    pub(super) fn max_pool(&mut self, n: &Node) -> Result<(), String> {
        let src = self.src(n, 0)?;
        let k = ints_or(n, "kernel_shape", &[]);
        let s = ints_or(n, "strides", &[1, 1]);
        let p = ints_or(n, "pads", &[0, 0, 0, 0]);
        let plain = attr(n, "ceil_mode").map_or(0, |a| a.i) == 0
            && attr(n, "auto_pad").is_none_or(|a| a.s == "NOTSET" || a.s.is_empty())
            && ints_or(n, "dilations", &[1, 1]).iter().all(|&x| x == 1)
            && n.outputs.get(1).is_none_or(|o| o.is_empty());
        if !plain
            || k.len() != 2
            || k[0] != k[1]
            || k[0] < 1
            || s.len() != 2
            || s[0] != s[1]
            || s[0] < 1
            || p.len() != 4
            || p.iter().any(|&x| x != p[0] || x < 0)
        {
            return Err(format!("max pool kernel {k:?} strides {s:?} pads {p:?}: only square, symmetric, floor mode"));
        }
        self.push(
            n,
            Layer::MaxPool {
                k: k[0] as usize,
                stride: s[0] as usize,
                pad: p[0] as usize,
            },
            vec![src],
        );
        Ok(())
    }

    pub(super) fn gemm(&mut self, n: &Node) -> Result<(), String> {
        let w = self.need(n, 1)?;
        let f = |name: &str, d: f32| attr(n, name).map_or(d, |a| a.f);
        let trans_b = attr(n, "transB").is_some_and(|a| a.i != 0);
        if w.dims.len() != 2
            || attr(n, "transA").is_some_and(|a| a.i != 0)
            || self.projection.is_some()
        {
            return Err("only one Gemm x·Wᵀ (+ b) after GeM is supported".into());
        }
        let (cout, cin) = if trans_b {
            (w.dims[0], w.dims[1])
        } else {
            (w.dims[1], w.dims[0])
        };
        let weight = (0..cout * cin).map(|i| {
            let (o, c) = (i / cin, i % cin);
            f("alpha", 1.0)
                * if trans_b {
                    w.data[i]
                } else {
                    w.data[c * cout + o]
                }
        });
        let bias = match self.konst(n, 2)? {
            Some(b) if b.data.len() == cout => b.data.iter().map(|&x| x * f("beta", 1.0)).collect(),
            None => vec![0.0; cout],
            Some(_) => return Err("Gemm bias does not match its output width".into()),
        };
        self.projection = Some(Conv {
            name: "projection".into(),
            cin,
            cout,
            k: 1,
            stride: 1,
            groups: 1,
            padding: Padding::Explicit([0; 4]),
            act: Act::None,
            weight: weight.collect(),
            bias,
            from: None,
            int8: None,
            winograd: Default::default(),
        });
        self.set(n, Val::Tail(Stage::Proj));
        Ok(())
    }
}

/// Our layer list from the trunk DAG: post-order from `root`, each node's
/// inputs first in operand order (so a bottleneck's conv1..conv3 precede its
/// downsample conv, which precedes the Add).
pub(super) fn linearise(nodes: &[TNode], root: usize) -> Result<Vec<Layer>, String> {
    let mut index: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut layers: Vec<Layer> = Vec::new();
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if index[id].is_some() {
            continue;
        }
        let t = &nodes[id];
        if !expanded {
            stack.push((id, true));
            for s in t.inputs.iter().rev() {
                if let Src::Node(d) = *s {
                    stack.push((d, false));
                }
            }
            continue;
        }
        let last = layers.len().checked_sub(1);
        let at = |s: Src| match s {
            Src::Image => None,
            Src::Node(d) => index[d],
        };
        let mut layer = t.layer.clone();
        let ok = match &mut layer {
            Layer::Conv(c) => {
                let s = at(t.inputs[0]);
                c.from = if s == last { None } else { s };
                s == last || s.is_some()
            }
            Layer::MaxPool { .. } => at(t.inputs[0]) == last,
            Layer::Add { from, .. } => {
                let (a, b) = (at(t.inputs[0]), at(t.inputs[1]));
                *from = if a == last { b } else { a }.unwrap_or(usize::MAX);
                (a == last || b == last) && *from != usize::MAX
            }
        };
        if !ok {
            let what = match &t.layer {
                Layer::Conv(c) => format!("conv {}", c.name),
                l => format!("{l:?}"),
            };
            return Err(format!("{what} cannot be placed in a linear layer list"));
        }
        index[id] = Some(layers.len());
        layers.push(layer);
    }
    Ok(layers)
}
