//! Reading safetensors files (huggingface/safetensors format: 8-byte
//! little-endian header length, a JSON header naming each tensor's dtype,
//! shape and byte range, then the raw little-endian data). Every range and
//! size is checked before any byte is read, so a truncated or foreign file
//! is an error, never a panic. F32 and F16 tensors are read as f32.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a model file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// The file was read but is not a model this crate can run.
    #[error("{path}: not a usable model file: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// A parsed safetensors file held in memory: its tensors are read on demand.
pub struct SafeTensors {
    /// The file it was read from, for error messages.
    pub path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
    /// The header's `__metadata__` strings (the model description).
    pub metadata: HashMap<String, String>,
}

#[derive(Clone, Debug)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

impl SafeTensors {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<SafeTensors, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(path, bytes)
    }

    /// Parses `bytes` (the contents of `path`), checking every range and size.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<SafeTensors, ModelError> {
        let bad = |why: String| ModelError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        if bytes.len() < 8 {
            return Err(bad("shorter than a safetensors header".into()));
        }
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        if n > 100 << 20 || 8 + n as usize > bytes.len() {
            return Err(bad(format!("header length {n} does not fit the file")));
        }
        let data_start = 8 + n as usize;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..data_start])
                .map_err(|e| bad(format!("header is not JSON: {e}")))?;
        let data_len = bytes.len() - data_start;
        let mut tensors = HashMap::new();
        let mut metadata = HashMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                for (k, v) in v.as_object().into_iter().flatten() {
                    if let Some(s) = v.as_str() {
                        metadata.insert(k.clone(), s.to_string());
                    }
                }
                continue;
            }
            let dtype = v["dtype"].as_str().unwrap_or_default().to_string();
            let shape = usize_list(&v["shape"]);
            let offs = usize_list(&v["data_offsets"]);
            let width = match dtype.as_str() {
                "F32" => 4,
                "F16" => 2,
                _ => 0, // other dtypes may be present; reading them is an error
            };
            if offs.len() != 2 || offs[0] > offs[1] || offs[1] > data_len {
                return Err(bad(format!(
                    "tensor {name}: data range {offs:?} outside the file"
                )));
            }
            let count: usize = shape.iter().product();
            if width > 0 && count * width != offs[1] - offs[0] {
                return Err(bad(format!(
                    "tensor {name}: shape {shape:?} of {dtype} needs {} bytes, range has {}",
                    count * width,
                    offs[1] - offs[0]
                )));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape,
                    start: data_start + offs[0],
                    end: data_start + offs[1],
                },
            );
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            bytes,
            data_start,
            tensors,
            metadata,
        })
    }

    /// A tensor as f32 with its shape.
    pub fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let bad = |why: String| ModelError::Invalid {
            path: self.path.clone(),
            why,
        };
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| bad(format!("no tensor named {name}")))?;
        let raw = &self.bytes[t.start..t.end];
        let data = match t.dtype.as_str() {
            "F32" => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            "F16" => raw
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            d => {
                return Err(bad(format!(
                    "tensor {name}: dtype {d} is not supported (F32, F16)"
                )))
            }
        };
        Ok((t.shape.clone(), data))
    }

    /// Whether a tensor of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Byte offset of the tensor data in the file, after the header.
    pub fn data_offset(&self) -> usize {
        self.data_start
    }

    /// xxh3-128 of the whole file, hex: identifies the weights.
    pub fn fingerprint(&self) -> String {
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&self.bytes))
    }
}

/// Writes F32 tensors as a safetensors file (tests and tools; no metadata).
pub fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, &[f32])]) -> std::io::Result<()> {
    write_f32_with_metadata(path, &[], tensors)
}

/// Writes F32 tensors as a safetensors file with `__metadata__` strings
/// (key, value) when `metadata` is not empty (tools, e.g. the ONNX export
/// of `benches/ort_compare.sh`).
pub fn write_f32_with_metadata(
    path: &Path,
    metadata: &[(&str, &str)],
    tensors: &[(&str, Vec<usize>, &[f32])],
) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut off = 0usize;
    for (name, shape, data) in tensors {
        let end = off + data.len() * 4;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [off, end]}),
        );
        off = end;
    }
    let head = serde_json::to_vec(&header)?;
    let mut out = Vec::with_capacity(8 + head.len() + off);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, _, data) in tensors {
        out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(path, out)
}

/// A JSON list of non-negative integers (non-numbers dropped; not a list: empty).
pub(crate) fn usize_list(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// IEEE 754 binary16 → binary32 (exact: every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f · 2^-24; normalise.
            let shift = f.leading_zeros() - 21; // bring the top bit to position 10
            let f = (f << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (f << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// binary32 → binary16, round to nearest even (used to store embeddings).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let frac = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if frac != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = frac | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1 << shift) - 1);
        let mut v = m >> shift;
        if rest > half || (rest == half && v & 1 == 1) {
            v += 1;
        }
        return sign | v as u16;
    }
    let mut v = ((e as u32) << 10) | (frac >> 13);
    let rest = frac & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && v & 1 == 1) {
        v += 1; // may carry into the exponent: still correct
    }
    sign | v as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_trip() {
        for &x in &[
            0.0f32,
            1.0,
            -2.5,
            65504.0,
            6.1035156e-5,
            5.9604645e-8,
            0.33325195,
        ] {
            assert_eq!(f16_to_f32(f32_to_f16(x)), x, "{x}");
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f16_to_f32(0x0001), 5.9604645e-8);
        assert!(f16_to_f32(f32_to_f16(1e6)).is_infinite());
        // Nearest even: 1 + 2^-11 sits halfway between 1 and 1 + 2^-10.
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
    }

    #[test]
    fn rejects_garbage() {
        let p = Path::new("x.safetensors");
        assert!(SafeTensors::parse(p, vec![1, 2, 3]).is_err());
        assert!(SafeTensors::parse(p, vec![255; 64]).is_err());
        let mut b = 20u64.to_le_bytes().to_vec();
        b.extend_from_slice(br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#);
        let mut ok = (b.len() as u64 - 8).to_le_bytes().to_vec();
        ok.extend_from_slice(&b[8..]);
        // Header claims 16 bytes of data that are not there.
        assert!(SafeTensors::parse(p, ok.clone()).is_err());
        ok.extend_from_slice(&[0u8; 16]);
        let st = SafeTensors::parse(p, ok).unwrap();
        assert_eq!(st.get("a").unwrap(), (vec![4], vec![0.0; 4]));
        assert!(st.get("b").is_err());
    }
}
