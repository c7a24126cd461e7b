//! JSON output: serde_json's pretty printing, with the escaped bytes of
//! name text (see [`super::names`]) written as `\udcXX` lone surrogates
//! (Python's "surrogateescape"), so a name that is not UTF-8 comes back
//! exactly with `os.fsencode`. Output without such names is byte-identical
//! to `serde_json::to_writer_pretty`.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::names::escaped_byte;

/// `serde_json::to_writer_pretty`, with name text escaped as above.
pub fn write_pretty<W: Write, T: Serialize + ?Sized>(w: W, value: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, NameFormatter(PrettyFormatter::new()));
    value.serialize(&mut ser)
}

/// Pretty printing, with escaped bytes in strings as `\udcXX`.
struct NameFormatter<'a>(PrettyFormatter<'a>);

impl Formatter for NameFormatter<'_> {
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

    // The rest is PrettyFormatter's layout.
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
    fn escaped_bytes_become_lone_surrogates() {
        let name = super::super::names::bytes_text(b"a\xffb\"");
        let mut out = vec![];
        write_pretty(&mut out, &serde_json::json!({ "path": name })).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(r#""a\udcffb\"""#), "{s}");
    }
}
