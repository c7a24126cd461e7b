//! JSON output: serde_json's pretty printing, with the escaped bytes of
//! name text (see [`super::names`]) written as `\udcXX` lone surrogates
//! (Python's "surrogateescape"), so a name that is not UTF-8 comes back
//! exactly with `os.fsencode`. Floating-point numbers are rounded to 6
//! decimals (a score of 0.70178, not 0.7017800000000001: f32 values widened
//! to f64 carry noise digits). Otherwise the output is byte-identical to
//! `serde_json::to_writer_pretty`.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

use super::names::escaped_byte;

/// `serde_json::to_writer_pretty`, with name text escaped as above.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(w: W, value: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, NameFormatter(PrettyFormatter::new()));
    value.serialize(&mut ser)
}

/// `serde_json::to_writer` (one line, no spaces), with name text escaped
/// as above: for JSON Lines.
pub fn write_compact<W: Write, T: Serialize + ?Sized>(w: W, value: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, NameFormatter(CompactFormatter));
    value.serialize(&mut ser)
}

/// Decimals kept of a float: more than any score or rate needs, few
/// enough to drop the noise of an f32 widened to f64.
const FLOAT_DECIMALS: i32 = 6;

/// `x` rounded to [`FLOAT_DECIMALS`] decimals (left alone where that
/// would overflow or lose the value).
fn round_float(x: f64) -> f64 {
    let scale = 10f64.powi(FLOAT_DECIMALS);
    let r = (x * scale).round() / scale;
    if r.is_finite() && (r != 0.0 || x.abs() < 0.5 / scale) {
        r
    } else {
        x
    }
}

/// A formatter (pretty or compact) with escaped bytes in strings as
/// `\udcXX` and floats rounded.
struct NameFormatter<F>(F);

impl<F: Formatter> Formatter for NameFormatter<F> {
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        self.0.write_f64(w, round_float(value))
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            if let Some(b) = escaped_byte(c) {
                w.write_all(&s.as_bytes()[plain..i])?;
                write!(w, "\\udc{b:02x}")?;
                plain = i + c.len_utf8();
            }
        }
        w.write_all(&s.as_bytes()[plain..])
    }

    // The rest is the inner formatter's layout.
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_serde_json_pretty_without_escaped_bytes() {
        let v = serde_json::json!({"a": [1, {"b": "c\"d\n\u{1b}é"}], "e": [], "f": {}, "g": null});
        let mut ours = vec![];
        write_pretty(&mut ours, &v).unwrap();
        assert_eq!(ours, serde_json::to_vec_pretty(&v).unwrap());
    }

    #[test]
    fn floats_are_rounded_to_six_decimals() {
        let v = serde_json::json!({"score": 0.7017800000000001, "big": 1234.5, "tiny": 1e-9});
        let mut ours = vec![];
        write_compact(&mut ours, &v).unwrap();
        let text = String::from_utf8(ours).unwrap();
        assert!(text.contains("\"score\":0.70178"), "{text}");
        assert!(text.contains("\"big\":1234.5"), "{text}");
        assert!(text.contains("\"tiny\":0.0"), "{text}");
    }

    #[test]
    fn escaped_bytes_become_lone_surrogates() {
        let name = super::super::names::bytes_text(b"a\xffb\"");
        let mut out = vec![];
        write_pretty(&mut out, &serde_json::json!({ "path": name })).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""a\udcffb\"""#), "{s}");
    }
}
