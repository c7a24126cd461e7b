//! File names as text, without losing a byte.
//!
//! Unix file names are bytes, not necessarily UTF-8, and reports carry them
//! in `String` fields. A name becomes *name text* with [`path_text`]: valid
//! UTF-8 stays as it is, and each byte that is not part of valid UTF-8
//! (always ≥ 0x80) is stored as the private-use character U+10FF00 + byte.
//! Those 128 characters are taken out of ordinary use: a name that really
//! contains one of them stores that character's four UTF-8 bytes the same
//! way, so every name text maps back to exactly its bytes ([`text_bytes`]).
//!
//! The outputs then write the escaped bytes in the form their readers expect:
//! - JSON (`report::json`): `\udcXX`, a lone surrogate, as Python's
//!   "surrogateescape" does: `os.fsencode(json.load(f)["query"])` gives
//!   back the exact bytes;
//! - CSV: the raw bytes of the name;
//! - terminal ([`terminal`]): `\xXX`, with control characters escaped too,
//!   so an escape sequence in a file name never reaches the terminal raw.
//!
//! A name that is valid UTF-8 (and holds none of those 128 characters) is
//! its name text unchanged, so its JSON and CSV output is as before.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Name text of byte `b` (0x80..=0xFF) that is not part of valid UTF-8.
const ESCAPE_BASE: u32 = 0x10FF00;
/// First character used for escaped bytes (byte 0x80).
const ESCAPE_FIRST: u32 = ESCAPE_BASE + 0x80;

/// The escaped byte a name-text character stands for, if it is one.
pub fn escaped_byte(c: char) -> Option<u8> {
    let c = c as u32;
    (c >= ESCAPE_FIRST).then(|| (c - ESCAPE_BASE) as u8)
}

fn escape_byte(b: u8, out: &mut String) {
    debug_assert!(b >= 0x80, "ASCII is always valid UTF-8");
    out.push(char::from_u32(ESCAPE_BASE + b as u32).expect("in the private-use plane"));
}

/// Name text of a byte string (see the module doc).
pub fn bytes_text(bytes: &[u8]) -> String {
    // Fast path: valid UTF-8 without U+10FF80.. (their UTF-8 starts F4 8F BE/BF).
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(|c| escaped_byte(c).is_some()) {
            return s.to_string();
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if escaped_byte(c).is_some() {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    escape_byte(b, &mut out);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            escape_byte(b, &mut out);
        }
    }
    out
}

/// Name text of a path: exact and reversible, unlike `display()`.
pub fn path_text(p: &Path) -> String {
    bytes_text(&path_to_bytes(p))
}

/// The bytes a name text stands for (inverse of [`bytes_text`]).
pub fn text_bytes(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(|c| escaped_byte(c).is_some()) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match escaped_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// The path a name text stands for (inverse of [`path_text`]).
pub fn text_path(s: &str) -> PathBuf {
    bytes_to_path(&text_bytes(s))
}

/// Whether a terminal could act on `c` rather than show it: control
/// characters (C0, DEL, C1), line/paragraph separators, and the bidi
/// overrides that reorder what follows them.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A name text made safe to print: escaped bytes as `\xff`, control
/// characters below U+0080 as `\x1b`, others as `\u{202e}`; everything else
/// (any printable character, backslash included) as it is.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| hidden(c) || escaped_byte(c).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escaped_byte(c) {
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
            None if hidden(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            None if hidden(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path's raw OS bytes (what the index stores).
#[cfg(unix)]
pub fn path_to_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

/// The path whose raw OS bytes are `b`.
#[cfg(unix)]
pub fn bytes_to_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// A path's bytes (UTF-8 off Unix).
#[cfg(not(unix))]
pub fn path_to_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

/// The path of these bytes (UTF-8 off Unix).
#[cfg(not(unix))]
pub fn bytes_to_path(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_is_unchanged() {
        for s in ["plain.jpg", "dir/Éé 日本.png", "a,b\"c.jpg", "tab\there"] {
            assert_eq!(bytes_text(s.as_bytes()), s);
            assert_eq!(&*text_bytes(s), s.as_bytes());
        }
    }

    #[test]
    fn every_byte_string_round_trips() {
        let cases: [&[u8]; 6] = [
            b"\xff.jpg",
            b"caf\xe9.png",
            b"\xf4\x8f\xbf\xbf real U+10FFFF",
            b"\xf4\x8f\xbe\x80\xff mixed",
            b"\xe6\x97",
            b"\x80\x81\xc3",
        ];
        for b in cases {
            let t = bytes_text(b);
            assert_eq!(&*text_bytes(&t), b, "{t:?}");
        }
        // Every single byte and every pair.
        for a in 0..=255u8 {
            for c in [0u8, 0x41, 0x80, 0xbf, 0xc3, 0xff] {
                let b = [a, c];
                assert_eq!(&*text_bytes(&bytes_text(&b)), &b);
            }
        }
    }

    #[test]
    fn terminal_escapes_controls_and_bad_bytes() {
        assert_eq!(terminal(&bytes_text(b"x\x1b[31my\xff")), "x\\x1b[31my\\xff");
        assert_eq!(terminal("a\u{202e}b\u{85}"), "a\\u{202e}b\\u{0085}");
        assert_eq!(terminal("dir/Éé 日本.png"), "dir/Éé 日本.png");
    }
}
