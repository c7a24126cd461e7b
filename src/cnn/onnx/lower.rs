//! Interpreting the graph node by node: what each value is (a constant, the
//! image, a trunk node's output, a quantised value, a stage of the pooling
//! tail), the input normalisation folded into mean/std, QDQ pairs
//! (dequantised weights; a pair at the type minimum read as a ReLU), and the
//! GeM tail; the trunk layers themselves are built in `layers`.

use std::collections::HashMap;
use std::rc::Rc;

use super::layers::linearise;
use super::schema::{Arr, Attr, Graph, Node};
use crate::cnn::model::{Act, Conv, Layer, Network};

/// A weight tensor's int8 integers (less their zero points) and one scale
/// per output channel.
pub(super) type IntWeights = (Vec<i8>, Vec<f32>);

/// What a tensor of the graph is, as far as the import goes.
#[derive(Clone, Debug)]
pub(super) enum Val {
    Const(Rc<Arr>),
    /// The network input, normalised by the importer's mean/std so far.
    Image,
    /// Output of trunk node `.0`, at activation version `.1`.
    Feat(usize, u32),
    /// A QuantizeLinear output; true when its zero point is the type minimum.
    Quant(Box<Val>, bool),
    Tail(Stage),
    Shape,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Stage {
    Flat,
    Clamped,
    Powed,
    Mean,
    Gem,
    Proj,
    Norm,
    Emb,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Src {
    Image,
    Node(usize),
}

pub(super) struct TNode {
    pub(super) layer: Layer,
    pub(super) inputs: Vec<Src>,
    pub(super) version: u32,
    pub(super) read: bool,
}

pub(super) struct Importer {
    pub(super) vals: HashMap<String, Val>,
    pub(super) nodes: Vec<TNode>,
    pub(super) mean: [f32; 3],
    pub(super) std: [f32; 3],
    pub(super) normalised: bool,
    pub(super) cast: bool,
    pub(super) root: Option<usize>,
    pub(super) gem: (f32, f32),
    pub(super) projection: Option<Conv>,
    /// Dequantised activations by value name: their u8 (scale, zero point).
    pub(super) act_q: HashMap<String, (f32, u8)>,
    /// Dequantised i8 weights by value name: the integers and one scale per
    /// output channel (symmetric quantisation only).
    pub(super) weight_q: HashMap<String, Rc<IntWeights>>,
}

pub(super) fn attr<'a>(n: &'a Node, name: &str) -> Option<&'a Attr> {
    n.attrs.iter().find(|a| a.name == name)
}

pub(super) fn ints_or(n: &Node, name: &str, default: &[i64]) -> Vec<i64> {
    attr(n, name)
        .map(|a| a.ints.clone())
        .unwrap_or_else(|| default.to_vec())
}

impl Importer {
    pub(super) fn new(inits: Vec<(String, Arr)>, inputs: &[String]) -> Importer {
        let mut vals: HashMap<String, Val> = inits
            .into_iter()
            .map(|(k, a)| (k, Val::Const(Rc::new(a))))
            .collect();
        for i in inputs {
            vals.entry(i.clone()).or_insert(Val::Image);
        }
        Importer {
            vals,
            nodes: Vec::new(),
            mean: [0.0; 3],
            std: [1.0; 3],
            normalised: false,
            cast: false,
            root: None,
            gem: (0.0, 3.0),
            projection: None,
            act_q: HashMap::new(),
            weight_q: HashMap::new(),
        }
    }

    pub(super) fn val(&self, name: &str) -> Result<&Val, String> {
        self.vals
            .get(name)
            .ok_or_else(|| format!("input {name} is not produced earlier in the graph"))
    }

    pub(super) fn input(&self, n: &Node, i: usize) -> Result<&Val, String> {
        self.val(n.inputs.get(i).map(String::as_str).unwrap_or(""))
    }

    /// Optional constant input `i` (absent or named "").
    pub(super) fn konst(&self, n: &Node, i: usize) -> Result<Option<&Arr>, String> {
        match n.inputs.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => match self.val(name)? {
                Val::Const(a) => Ok(Some(a)),
                _ => Err(format!("input {name} must be a constant")),
            },
        }
    }

    pub(super) fn need(&self, n: &Node, i: usize) -> Result<&Arr, String> {
        self.konst(n, i)?
            .ok_or_else(|| format!("constant input {i} missing"))
    }

    pub(super) fn scalar(&self, n: &Node, i: usize) -> Result<Option<f32>, String> {
        match self.konst(n, i)? {
            Some(a) if a.data.len() == 1 => Ok(Some(a.data[0])),
            Some(_) => Err(format!("input {i} must be a scalar")),
            None => Ok(None),
        }
    }

    /// A feature map a layer reads: the network input or a trunk node's output.
    pub(super) fn src(&mut self, n: &Node, i: usize) -> Result<Src, String> {
        match *self.input(n, i)? {
            Val::Image => Ok(Src::Image),
            Val::Feat(id, v) if v == self.nodes[id].version => {
                self.nodes[id].read = true;
                Ok(Src::Node(id))
            }
            Val::Feat(..) => Err("reads a value from before its activation was applied".into()),
            _ => Err(format!("input {} is not a feature map", n.inputs[i])),
        }
    }

    pub(super) fn set(&mut self, n: &Node, v: Val) {
        if let Some(o) = n.outputs.first() {
            self.vals.insert(o.clone(), v);
        }
    }

    pub(super) fn push(&mut self, n: &Node, layer: Layer, inputs: Vec<Src>) {
        self.nodes.push(TNode {
            layer,
            inputs,
            version: 0,
            read: false,
        });
        self.set(n, Val::Feat(self.nodes.len() - 1, 0));
    }

    pub(super) fn node(&mut self, n: &Node) -> Result<(), String> {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!("operator domain {} is not supported", n.domain));
        }
        let first = match n.inputs.first() {
            Some(i) => Some(self.val(i)?.clone()),
            None => None,
        };
        let v0 = || first.clone().ok_or("has no inputs");
        let op = n.op.as_str();
        match first {
            Some(Val::Tail(stage)) => return self.tail(n, stage),
            Some(Val::Image)
                if matches!(op, "Cast" | "Sub" | "Add" | "Mul" | "Div" | "Transpose") =>
            {
                return self.preprocess(n)
            }
            _ => {}
        }
        match op {
            "Constant" => self.constant(n)?,
            "Identity" | "Dropout" => self.set(n, v0()?),
            "Cast" => match v0()? {
                Val::Const(a) => {
                    let dtype = attr(n, "to").map_or(1, |a| a.i);
                    self.set(
                        n,
                        Val::Const(Rc::new(Arr {
                            dtype,
                            ..(*a).clone()
                        })),
                    )
                }
                _ => return Err("only the raw input or a constant can be cast".into()),
            },
            "QuantizeLinear" => {
                let relu = self.zero_point_at_min(n)?;
                self.set(n, Val::Quant(Box::new(v0()?), relu));
            }
            "DequantizeLinear" => match v0()? {
                Val::Const(q) => {
                    let a = self.dequantize(n, &q)?;
                    if let (Some(o), Some(w)) = (n.outputs.first(), self.int8_weights(n, &q)?) {
                        self.weight_q.insert(o.clone(), Rc::new(w));
                    }
                    self.set(n, Val::Const(Rc::new(a)));
                }
                Val::Quant(v, relu) => {
                    if let (Some(o), Some(q)) = (n.outputs.first(), self.u8_params(n)?) {
                        self.act_q.insert(o.clone(), q);
                    }
                    match relu {
                        true => self.act(n, *v, Act::Relu)?,
                        false => self.set(n, *v),
                    }
                }
                _ => return Err("dequantises something that is not quantised".into()),
            },
            "Relu" => self.act(n, v0()?, Act::Relu)?,
            "Clip" => match self.clip_bounds(n)? {
                (Some(0.0), None) => self.act(n, v0()?, Act::Relu)?,
                (Some(0.0), Some(6.0)) => self.act(n, v0()?, Act::Relu6)?,
                b => {
                    return Err(format!(
                        "Clip{b:?} of a feature map: only (0, ∞) and (0, 6) are supported"
                    ))
                }
            },
            "BatchNormalization" => self.batch_norm(n)?,
            "Conv" => self.conv(n)?,
            "MaxPool" => self.max_pool(n)?,
            "Add" => {
                let (a, b) = (self.src(n, 0)?, self.src(n, 1)?);
                if a == Src::Image || b == Src::Image {
                    return Err("a residual add of the network input is not supported".into());
                }
                self.push(
                    n,
                    Layer::Add {
                        from: 0,
                        act: Act::None,
                    },
                    vec![a, b],
                );
            }
            "Reshape" => {
                let shape = &self.need(n, 1)?.data;
                if shape.len() != 3 || shape[2] != -1.0 || self.root.is_some() {
                    return Err("only one Reshape to (N, C, −1) before GeM is supported".into());
                }
                let Src::Node(id) = self.src(n, 0)? else {
                    return Err("reshapes the input".into());
                };
                self.root = Some(id);
                self.set(n, Val::Tail(Stage::Flat));
            }
            "Shape" => self.set(n, Val::Shape),
            op => return Err(format!("operator {op} is not supported here")),
        }
        Ok(())
    }

    /// The pooling tail: GeM (Reshape, Clip, Pow, ReduceMean, Pow), an
    /// optional Gemm projection, an optional L2 normalisation.
    pub(super) fn tail(&mut self, n: &Node, stage: Stage) -> Result<(), String> {
        use Stage::*;
        let next = match (n.op.as_str(), stage) {
            ("Clip", Flat) => {
                let lo = self.clip_bounds(n)?.0.filter(|&c| c >= 0.0);
                self.gem.0 = lo.ok_or("GeM clamp must be ≥ 0")?;
                Clamped
            }
            ("Pow", Flat | Clamped) => {
                let p = self.scalar(n, 1)?.filter(|&p| p > 0.0);
                self.gem.1 = p.ok_or("GeM exponent must be a positive scalar")?;
                Powed
            }
            ("ReduceMean", Powed) => {
                let axes: Vec<i64> = match self.konst(n, 1)? {
                    Some(a) => a.data.iter().map(|&x| x as i64).collect(),
                    None => ints_or(n, "axes", &[]),
                };
                if axes != [2] && axes != [-1] {
                    return Err(format!("GeM mean over axes {axes:?}, expected [2]"));
                }
                Mean
            }
            ("Pow", Mean) => {
                let q = self.scalar(n, 1)?.ok_or("GeM root must be a scalar")?;
                if (q * self.gem.1 - 1.0).abs() > 1e-4 {
                    return Err(format!("GeM root {q} is not 1/{}", self.gem.1));
                }
                Gem
            }
            ("Gemm", Gem) => {
                self.gemm(n)?;
                Proj
            }
            ("ReduceL2", Gem | Proj) | ("Clip" | "Expand", Norm) => Norm,
            ("Div", Gem | Proj) if matches!(self.input(n, 1)?, Val::Tail(Norm)) => Emb,
            ("Shape", _) => {
                self.set(n, Val::Shape);
                return Ok(());
            }
            (op, s) => {
                return Err(format!(
                    "{op} of the {s:?} stage of GeM pooling is not supported"
                ))
            }
        };
        self.set(n, Val::Tail(next));
        Ok(())
    }

    pub(super) fn constant(&mut self, n: &Node) -> Result<(), String> {
        let a = match (
            attr(n, "value"),
            attr(n, "value_float"),
            attr(n, "value_ints"),
        ) {
            (Some(Attr { t: Some(t), .. }), ..) => t.clone(),
            (_, Some(a), _) => Arr {
                dims: vec![],
                dtype: 1,
                data: vec![a.f],
            },
            (.., Some(a)) => {
                let data = a.ints.iter().map(|&i| i as f32).collect();
                Arr {
                    dims: vec![a.ints.len()],
                    dtype: 7,
                    data,
                }
            }
            _ => return Err("only tensor, float and ints constants are supported".into()),
        };
        self.set(n, Val::Const(Rc::new(a)));
        Ok(())
    }

    /// Whether a QuantizeLinear clamps at 0: its zero point is its type's
    /// minimum (absent, it is uint8 0).
    pub(super) fn zero_point_at_min(&self, n: &Node) -> Result<bool, String> {
        let Some(z) = self.konst(n, 2)? else {
            return Ok(true);
        };
        let min = match z.dtype {
            2 | 4 => 0.0,
            3 => -128.0,
            5 => -32768.0,
            d => return Err(format!("zero point type {d} is not supported")),
        };
        let at_min = z.data.iter().filter(|&&v| v == min).count();
        if at_min != 0 && at_min != z.data.len() {
            return Err("zero points partly at the type minimum".into());
        }
        Ok(at_min != 0)
    }

    /// Cast, NHWC → NCHW Transpose, and Sub/Add/Div/Mul of the input by
    /// per-channel constants, composed as y = (x − mean) / std.
    pub(super) fn preprocess(&mut self, n: &Node) -> Result<(), String> {
        match n.op.as_str() {
            "Cast" if !self.normalised => self.cast = true,
            "Transpose" if ints_or(n, "perm", &[]) == [0, 3, 1, 2] => {}
            "Cast" | "Transpose" => {
                return Err(
                    "only a cast of the raw input and an NHWC → NCHW transpose are supported"
                        .into(),
                )
            }
            _ => self.normalise(n)?,
        }
        self.set(n, Val::Image);
        Ok(())
    }

    pub(super) fn normalise(&mut self, n: &Node) -> Result<(), String> {
        let c = self.need(n, 1)?;
        let c: [f32; 3] = match c.data.len() {
            1 => [c.data[0]; 3],
            3 => [c.data[0], c.data[1], c.data[2]],
            k => {
                return Err(format!(
                    "input normalisation by {k} values, expected 1 or 3"
                ))
            }
        };
        for ((m, s), c) in self.mean.iter_mut().zip(&mut self.std).zip(c) {
            match n.op.as_str() {
                "Sub" => *m += c * *s,
                "Add" => *m -= c * *s,
                "Div" => *s *= c,
                _ => *s /= c,
            }
        }
        self.normalised = true;
        Ok(())
    }

    pub(super) fn dequantize(&self, n: &Node, q: &Arr) -> Result<Arr, String> {
        let scale = self.need(n, 1)?;
        let zp = self.konst(n, 2)?;
        let rank = q.dims.len() as i64;
        let axis = attr(n, "axis").map_or(1, |a| a.i);
        let axis = if axis < 0 { axis + rank } else { axis };
        let (groups, inner) = if scale.data.len() == 1 {
            (1, q.data.len().max(1))
        } else if (0..rank).contains(&axis) && q.dims[axis as usize] == scale.data.len() {
            (
                scale.data.len(),
                q.dims[axis as usize + 1..].iter().product::<usize>(),
            )
        } else {
            return Err(format!(
                "scale of {} values does not fit shape {:?} on axis {axis}",
                scale.data.len(),
                q.dims
            ));
        };
        if zp.is_some_and(|z| z.data.len() != groups) {
            return Err("zero point and scale differ in size".into());
        }
        let data = q.data.iter().enumerate().map(|(i, &x)| {
            let c = (i / inner.max(1)) % groups;
            let z = zp.map_or(0.0, |z| z.data[c]);
            ((x as f64 - z as f64) * scale.data[c] as f64) as f32
        });
        Ok(Arr {
            dims: q.dims.clone(),
            dtype: 1,
            data: data.collect(),
        })
    }

    /// A DequantizeLinear of an activation as u8 (scale, zero point): one
    /// scale, a uint8 zero point or an int8 one (shifted by 128, the same
    /// grid); `None` for anything else (that convolution stays float).
    fn u8_params(&self, n: &Node) -> Result<Option<(f32, u8)>, String> {
        let scale = self.need(n, 1)?;
        let zp = self.konst(n, 2)?;
        let [s] = scale.data[..] else {
            return Ok(None);
        };
        let z = match zp {
            None => 0.0,
            Some(z) if z.data.len() == 1 && z.dtype == 2 => z.data[0],
            Some(z) if z.data.len() == 1 && z.dtype == 3 => z.data[0] + 128.0,
            Some(_) => return Ok(None),
        };
        Ok((s.is_finite() && s > 0.0).then_some((s, z as u8)))
    }

    /// The int8 integers of a weight DequantizeLinear, less their zero
    /// points, and one scale per output channel (axis 0, or one scale for
    /// all); `None` when a shifted value leaves i8 (the convolution then
    /// runs in float).
    fn int8_weights(&self, n: &Node, q: &Arr) -> Result<Option<IntWeights>, String> {
        let scale = self.need(n, 1)?;
        let zp = self.konst(n, 2)?;
        let axis = attr(n, "axis").map_or(1, |a| a.i);
        let cout = q.dims.first().copied().unwrap_or(0);
        let per_channel = scale.data.len() == cout && (axis == 0 || axis == -(q.dims.len() as i64));
        if q.dtype != 3
            || q.dims.len() != 4
            || zp.is_some_and(|z| z.data.len() != scale.data.len())
            || !(scale.data.len() == 1 || per_channel)
            || scale.data.iter().any(|s| !s.is_finite())
        {
            return Ok(None);
        }
        let per = q.data.len() / cout.max(1);
        let mut weight = Vec::with_capacity(q.data.len());
        for (i, &v) in q.data.iter().enumerate() {
            let z = zp.map_or(0.0, |z| z.data[if z.data.len() == 1 { 0 } else { i / per }]);
            match i8::try_from((v - z) as i32) {
                Ok(w) => weight.push(w),
                Err(_) => return Ok(None),
            }
        }
        let w_scale = match scale.data.len() {
            1 => vec![scale.data[0]; cout],
            _ => scale.data.clone(),
        };
        Ok(Some((weight, w_scale)))
    }

    /// Clip's (min, max): inputs 1 and 2 from opset 11, attributes before.
    pub(super) fn clip_bounds(&self, n: &Node) -> Result<(Option<f32>, Option<f32>), String> {
        if n.inputs.len() > 1 {
            return Ok((self.scalar(n, 1)?, self.scalar(n, 2)?));
        }
        Ok((attr(n, "min").map(|a| a.f), attr(n, "max").map(|a| a.f)))
    }

    pub(super) fn finish(
        self,
        g: &Graph,
        name: String,
        input: (usize, usize),
        bytes: &[u8],
    ) -> Result<Network, String> {
        let out = g.outputs.first().ok_or("the graph has no output")?;
        if g.outputs.len() != 1
            || !matches!(
                self.val(out)?,
                Val::Tail(Stage::Gem | Stage::Proj | Stage::Emb)
            )
        {
            return Err(format!(
                "the graph output {out} is not a GeM-pooled (projected, normalised) embedding"
            ));
        }
        let layers = linearise(
            &self.nodes,
            self.root.ok_or("no GeM pooling of a feature map")?,
        )?;
        // A float input the graph does not normalise: torchvision's ImageNet convention.
        let (mean, std) = if self.normalised || self.cast {
            (self.mean, self.std)
        } else {
            ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])
        };
        Ok(Network {
            name,
            layers,
            input,
            mean,
            std,
            gem_p: self.gem.1,
            gem_clamp: self.gem.0,
            classifier: None,
            projection: self.projection,
            fingerprint: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)),
        })
    }
}
