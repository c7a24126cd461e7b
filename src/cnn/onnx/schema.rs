//! The parts of onnx.proto the importer reads, decoded from the wire into
//! plain structs (a model's graph: nodes, attributes, initializer tensors,
//! input and output names); every other field is skipped.

use super::wire::{Field, Pb};
use crate::cnn::safetensors::f16_to_f32;

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
pub(super) struct Arr {
    pub(super) dims: Vec<usize>,
    pub(super) dtype: i64,
    pub(super) data: Vec<f32>,
}

#[derive(Default)]
pub(super) struct Attr {
    pub(super) name: String,
    pub(super) f: f32,
    pub(super) i: i64,
    pub(super) s: String,
    pub(super) t: Option<Arr>,
    pub(super) floats: Vec<f32>,
    pub(super) ints: Vec<i64>,
}

#[derive(Default)]
pub(super) struct Node {
    pub(super) op: String,
    pub(super) name: String,
    pub(super) domain: String,
    pub(super) inputs: Vec<String>,
    pub(super) outputs: Vec<String>,
    pub(super) attrs: Vec<Attr>,
}

#[derive(Default)]
pub(super) struct Graph {
    pub(super) name: String,
    pub(super) nodes: Vec<Node>,
    pub(super) inits: Vec<(String, Arr)>,
    pub(super) inputs: Vec<String>,
    pub(super) outputs: Vec<String>,
}

pub(super) fn decode_model(b: &[u8]) -> Result<Graph, String> {
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
