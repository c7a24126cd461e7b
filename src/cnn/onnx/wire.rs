//! The protobuf wire format, as far as ONNX files need it: varints,
//! length-delimited fields, fixed 32/64-bit fields, and packed or unpacked
//! repeated numbers. Nothing here knows onnx.proto; malformed input is an
//! error, never a panic.

/// One field's value, by wire type (64-bit fixed values are skipped).
pub(super) enum Field<'a> {
    Int(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A reader over one message's bytes.
pub(super) struct Pb<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Pb<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Pb { b, at: 0 }
    }

    pub(super) fn varint(&mut self) -> Result<u64, String> {
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

    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
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
    pub(super) fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
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
    pub(super) fn int(&self) -> Result<i64, String> {
        match self {
            Field::Int(v) => Ok(*v as i64),
            _ => Err("an integer field has another wire type".into()),
        }
    }
    pub(super) fn bytes(&self) -> Result<&'a [u8], String> {
        match self {
            Field::Bytes(b) => Ok(b),
            _ => Err("a bytes field has another wire type".into()),
        }
    }
    pub(super) fn string(&self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// A repeated varint field, packed or not.
    pub(super) fn ints(&self, out: &mut Vec<i64>) -> Result<(), String> {
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
    pub(super) fn floats(&self, out: &mut Vec<f32>) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
