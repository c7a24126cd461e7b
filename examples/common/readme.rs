//! The README's generated examples: runs the bundled sample through a
//! lookalike binary and renders the blocks between the README's
//! `<!-- BEGIN name -->` / `<!-- END name -->` markers. Shared by
//! `examples/readme_examples.rs` (rewrites README.md, run by
//! `scripts/readme_examples.sh`) and `tests/readme_drift.rs` (fails when the
//! README differs from a fresh run).
//!
//! Deterministic on any machine: the CPU engine (`--device cpu`; both engines
//! give identical results), no colour, the index in a temporary folder,
//! paths shown relative to the repository, and timings (should a command
//! print any) replaced by "…".
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Names of the generated blocks, in README order.
pub const BLOCKS: [&str; 2] = ["sample-table", "sample-json"];

/// The query whose result the JSON example shows.
const JSON_EXAMPLE_QUERY: &str = "gen_03_rotated.jpg";

fn lookalike(bin: &Path, root: &Path, args: &[&str]) -> Result<String, String> {
    let o = Command::new(bin)
        .args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env_remove("LOOKALIKE_INDEX")
        .env_remove("LOOKALIKE_DEVICE")
        .env_remove("LOOKALIKE_MODEL")
        .env_remove("LOOKALIKE_HOME")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !o.status.success() {
        return Err(format!(
            "lookalike {} failed ({}): {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    String::from_utf8(o.stdout).map_err(|e| format!("output not UTF-8: {e}"))
}

/// Runs the sample (index the training images, check the generated ones)
/// and returns each block's content, fences included.
pub fn render(bin: &Path, root: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let idx = tmp.path().join("sample");
    let idx = idx.to_str().ok_or("temporary path not UTF-8")?;
    let gen = "examples/sample/generated";
    lookalike(
        bin,
        root,
        &[
            "index",
            "examples/sample/training",
            "--index",
            idx,
            "--device",
            "cpu",
            "-q",
        ],
    )?;
    let table = lookalike(
        bin,
        root,
        &[
            "check", gen, "--index", idx, "--all", "--device", "cpu", "-q",
        ],
    )?;
    let json = lookalike(
        bin,
        root,
        &[
            "check", gen, "--index", idx, "--json", "--device", "cpu", "-q",
        ],
    )?;
    let table: Vec<String> = table.lines().map(|l| hide_times(l.trim_end())).collect();
    let base = format!(
        "{}/",
        root.canonicalize().map_err(|e| e.to_string())?.display()
    );
    let json = shorten(&json, &base, idx).map_err(|e| format!("check --json: {e}"))?;
    Ok(vec![
        ("sample-table", format!("```\n{}\n```", table.join("\n"))),
        ("sample-json", format!("```json\n{json}\n```")),
    ])
}

/// A JSON value that keeps its keys in the order the program wrote them and
/// its numbers and strings exactly as written (serde_json's `Value` sorts
/// keys unless the crate-wide `preserve_order` feature is on).
#[derive(Debug)]
enum J {
    /// A string (raw, quotes and escapes included), number, bool or null.
    Raw(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn parse(s: &str) -> Result<J, String> {
    let (v, rest) = parse_at(s.trim_start())?;
    if !rest.trim().is_empty() {
        return Err("trailing text after the JSON".into());
    }
    Ok(v)
}

fn parse_at(s: &str) -> Result<(J, &str), String> {
    let s = s.trim_start();
    fn seq(s: &str, close: char) -> Option<&str> {
        s.trim_start().strip_prefix(close)
    }
    match s.chars().next() {
        Some('{') => {
            let mut items = vec![];
            let mut s = &s[1..];
            if let Some(r) = seq(s, '}') {
                return Ok((J::Obj(items), r));
            }
            loop {
                let (k, r) = parse_at(s)?;
                let J::Raw(k) = k else {
                    return Err("object key not a string".into());
                };
                let r = r.trim_start().strip_prefix(':').ok_or("':' expected")?;
                let (v, r) = parse_at(r)?;
                items.push((k, v));
                let r = r.trim_start();
                if let Some(r) = r.strip_prefix(',') {
                    s = r;
                } else {
                    return Ok((J::Obj(items), r.strip_prefix('}').ok_or("'}' expected")?));
                }
            }
        }
        Some('[') => {
            let mut items = vec![];
            let mut s = &s[1..];
            if let Some(r) = seq(s, ']') {
                return Ok((J::Arr(items), r));
            }
            loop {
                let (v, r) = parse_at(s)?;
                items.push(v);
                let r = r.trim_start();
                if let Some(r) = r.strip_prefix(',') {
                    s = r;
                } else {
                    return Ok((J::Arr(items), r.strip_prefix(']').ok_or("']' expected")?));
                }
            }
        }
        Some('"') => {
            let b = s.as_bytes();
            let mut i = 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            if i >= b.len() {
                return Err("unterminated string".into());
            }
            Ok((J::Raw(s[..=i].to_string()), &s[i + 1..]))
        }
        Some(_) => {
            let end = s
                .find(|c: char| c == ',' || c == '}' || c == ']' || c.is_whitespace())
                .unwrap_or(s.len());
            Ok((J::Raw(s[..end].to_string()), &s[end..]))
        }
        None => Err("unexpected end of JSON".into()),
    }
}

/// `json` parsed and printed again: equal to `json` when that came from
/// `serde_json::to_string_pretty` (keys keep their order).
pub fn reformat(json: &str) -> Result<String, String> {
    let mut out = String::new();
    print(&parse(json)?, 0, &mut out);
    Ok(out)
}

/// Pretty-prints as serde_json does: two-space indent, `"key": value`.
fn print(v: &J, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        J::Raw(r) => out.push_str(r),
        J::Arr(a) if a.is_empty() => out.push_str("[]"),
        J::Obj(o) if o.is_empty() => out.push_str("{}"),
        J::Arr(a) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                print(x, indent + 1, out);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        J::Obj(o) => {
            out.push_str("{\n");
            for (i, (k, x)) in o.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(k);
                out.push_str(": ");
                print(x, indent + 1, out);
                out.push_str(if i + 1 < o.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
    }
}

/// The JSON example: every summary field, one result (the rotated copy)
/// with its best candidate only; paths relative to the repository, the
/// index as `-i sample` names it.
fn shorten(json: &str, base: &str, idx: &str) -> Result<String, String> {
    let mut v = parse(json)?;
    if let J::Obj(top) = &mut v {
        for (k, x) in top.iter_mut() {
            let J::Arr(results) = x else { continue };
            if k != "\"results\"" {
                continue;
            }
            let is_example = |r: &J| match r {
                J::Obj(o) => o.iter().any(|(k, q)| {
                    k == "\"query\""
                        && matches!(q, J::Raw(q) if q.ends_with(&format!("{JSON_EXAMPLE_QUERY}\"")))
                }),
                _ => false,
            };
            let at = results.iter().position(is_example).unwrap_or(0);
            let mut one: Vec<J> = results.drain(..).skip(at).take(1).collect();
            if let Some(J::Obj(r)) = one.first_mut() {
                for (k, m) in r.iter_mut() {
                    if let (true, J::Arr(m)) = (k == "\"matches\"", m) {
                        m.truncate(1);
                    }
                }
            }
            *results = one;
        }
    }
    relativise(&mut v, base, idx);
    let mut out = String::new();
    print(&v, 0, &mut out);
    Ok(out)
}

fn relativise(v: &mut J, base: &str, idx: &str) {
    match v {
        J::Raw(s) => {
            if *s == format!("\"{idx}\"") {
                *s = "\"indexes/sample\"".into();
            } else if let Some(rest) = s.strip_prefix(&format!("\"{base}")) {
                *s = format!("\"{rest}");
            }
        }
        J::Arr(a) => a.iter_mut().for_each(|x| relativise(x, base, idx)),
        J::Obj(o) => {
            for (k, x) in o.iter_mut() {
                if ["second", "elapsed", "duration", "time"]
                    .iter()
                    .any(|t| k.contains(t))
                {
                    *x = J::Raw("\"…\"".into());
                } else {
                    relativise(x, base, idx);
                }
            }
        }
    }
}

/// Replaces durations and rates in a line of output ("2.5 s", "3s",
/// "0.4 ms", "120 images/s", "12/s") by "…", so a timing never drifts.
pub fn hide_times(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'));
        if !starts {
            out.push(line[i..].chars().next().unwrap());
            i += line[i..].chars().next().unwrap().len_utf8();
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
            j += 1;
        }
        let rest = &line[j..];
        let unit = ["ms", "s", " ms", " s", "/s", " images/s"]
            .iter()
            .find(|u| {
                rest.starts_with(**u)
                    && !rest[u.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            });
        if unit.is_some() {
            out.push('…');
        } else {
            out.push_str(&line[i..j]);
        }
        i = j;
    }
    out
}

/// The content between `<!-- BEGIN name -->` and `<!-- END name -->` (the
/// marker lines excluded), or an error naming the missing marker.
pub fn block<'a>(readme: &'a str, name: &str) -> Result<&'a str, String> {
    let (begin, end) = (format!("<!-- BEGIN {name}"), format!("<!-- END {name} -->"));
    let b = readme
        .find(&begin)
        .ok_or(format!("README has no {begin} marker"))?;
    let b = b + readme[b..].find('\n').ok_or("marker line without end")? + 1;
    let e = b + readme[b..]
        .find(&end)
        .ok_or(format!("README has no {end} marker"))?;
    Ok(readme[b..e].trim_end_matches('\n'))
}

/// `readme` with each block's content replaced.
pub fn splice(readme: &str, blocks: &[(&str, String)]) -> Result<String, String> {
    let mut s = readme.to_string();
    for (name, content) in blocks {
        let old = block(&s, name)?;
        let at = old.as_ptr() as usize - s.as_ptr() as usize;
        s.replace_range(at..at + old.len(), content);
    }
    Ok(s)
}
