//! Self-contained HTML reports (`check --report`, `dedup --report`): one
//! file, thumbnails embedded as JPEG data: URIs, no external resources, a
//! little inline JS (filter, search, sort, j/k between rows, a lightbox, and
//! a self-test line the browser test reads). Thumbnails link to the full
//! images by file URL (relative when the image lies inside the report's
//! folder, so the folder can move as a whole). Only the first `limit` rows
//! get thumbnails, so a report over 10 000 images stays a few MB; the rest
//! are listed as text rows.

mod assets;
mod check;
mod dedup;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use check::write_check;
pub use dedup::write_dedup;

use super::names;
use super::table::display_path;
use super::thumbs::{self, Thumb};
use assets::{CSS, JS};

/// Training matches shown with thumbnails beside each flagged image (most
/// copies match one training image; the slots left show the next candidates
/// as text).
pub const MATCHES_SHOWN: usize = 3;
/// Members of one duplicate group shown as thumbnails.
pub const MEMBERS_SHOWN: usize = 12;
/// Rows whose images are decoded at once (rayon spreads them over the cores).
const BATCH: usize = 32;

/// Settings of an HTML report.
pub struct HtmlOptions {
    /// Rows (flagged images, or groups) with thumbnails; the rest are text rows.
    pub limit: usize,
    /// Size and pixel limits for decoding images.
    pub limits: crate::ingest::Limits,
    /// Decode setting the hashes were computed with, e.g. "fast:512".
    pub decode: String,
    /// Candidates kept per image in the run, shown in the report's settings.
    pub top_k: usize,
    /// The folder the report is written to ([`link_base`]): images inside it
    /// are linked by relative URL, others by absolute `file://` URL. `None`:
    /// absolute links only.
    pub link_base: Option<PathBuf>,
}

/// The folder of the report file `report`, resolved, for
/// [`HtmlOptions::link_base`]; `None` when it cannot be resolved.
pub fn link_base(report: &Path) -> Option<PathBuf> {
    let dir = match report.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).ok()
}

/// Escapes `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        esc_char(&mut o, c);
    }
    o
}

fn esc_char(o: &mut String, c: char) {
    match c {
        '&' => o.push_str("&amp;"),
        '<' => o.push_str("&lt;"),
        '>' => o.push_str("&gt;"),
        '"' => o.push_str("&quot;"),
        '\'' => o.push_str("&#39;"),
        _ => o.push(c),
    }
}

/// A path as HTML text that wraps after its separators (`/`, `\`, `_`,
/// `-`, `.`) rather than inside a name.
pub fn wrap_path(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        esc_char(&mut o, c);
        if matches!(c, '/' | '\\' | '_' | '-' | '.') {
            o.push_str("<wbr>");
        }
    }
    o
}

/// The URL of an image file for a link: relative to `base` when the file
/// lies inside it, else absolute `file://`; every byte outside the URL's
/// unreserved set is percent-encoded. `None` when the file does not exist.
pub fn file_href(path: &str, base: Option<&Path>) -> Option<String> {
    let abs = std::fs::canonicalize(names::text_path(path)).ok()?;
    if let Some(rel) = base.and_then(|b| abs.strip_prefix(b).ok()) {
        return Some(percent(&names::path_to_bytes(rel)));
    }
    let bytes = names::path_to_bytes(&abs);
    // Windows paths (C:\…) become file:///C:/…
    let url = percent(&bytes).replace("%5C", "/");
    Some(if url.starts_with('/') {
        format!("file://{url}")
    } else {
        format!("file:///{url}")
    })
}

fn percent(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// A file size for people: "812 B", "24.5 KB", "3.1 MB" (powers of 1000).
pub fn human_bytes(n: u64) -> String {
    match n {
        0..=999 => format!("{n} B"),
        1_000..=999_999 => format!("{:.1} KB", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// The current time as "YYYY-MM-DD HH:MM UTC" (proleptic Gregorian calendar
/// from the Unix day count: Hinnant's civil-from-days).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_date(secs)
}

fn utc_date(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60
    )
}

fn page_start(w: &mut dyn Write, title: &str, subtitle: &str) -> io::Result<()> {
    // img-src file: lets the lightbox show the full image the thumbnail links to.
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
<title>{}</title><style>{CSS}</style></head><body>\n<header><h1>{}</h1><p>{}</p></header>\n<main>\n",
        esc(title),
        esc(title),
        wrap_path(subtitle)
    )
}

fn page_end(w: &mut dyn Write) -> io::Result<()> {
    write!(
        w,
        "<footer>lookalike {} · perceptual hashes (PDQ, pHash), keypoints and embeddings · thumbnails are embedded; this file needs no network. \
Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous row, <kbd>Enter</kbd> enlarge, <kbd>Esc</kbd> close, <kbd>/</kbd> search.</footer>\n\
</main>\n<div id=\"lb\" role=\"dialog\" aria-label=\"enlarged image\"><img class=\"big\" alt=\"enlarged image\"><div class=\"cap\"></div><a target=\"_blank\">open the full image</a></div>\n\
<pre id=\"selftest\"></pre>\n<script>{JS}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The sticky toolbar: optional verdict checkboxes, a search box, a sort
/// menu (`labels`: highest-first, lowest-first) and the count shown.
fn toolbar(out: &mut String, verdicts: &[&str], labels: (&str, &str)) {
    out.push_str("<div class=\"tools\">");
    if !verdicts.is_empty() {
        out.push_str("<span>Show:");
        for v in verdicts {
            let _ = write!(
                out,
                " <label><input type=\"checkbox\" data-filter=\"{v}\" checked> {v}</label>"
            );
        }
        out.push_str("</span>");
    }
    let _ = writeln!(
        out,
        "<input type=\"search\" id=\"search\" placeholder=\"filter by file name (/)\" aria-label=\"filter by file name\">\
<label>Sort: <select id=\"sort\"><option value=\"score-desc\">{}</option><option value=\"score-asc\">{}</option><option value=\"name\">file name</option></select></label>\
<span id=\"shown\"></span><span><kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> or click enlarges</span></div>",
        esc(labels.0),
        esc(labels.1)
    );
}

/// The attributes of a filterable, sortable row (class `item`): its sort
/// score, its name and the lower-cased text the search box matches.
fn item_attrs(score: f64, name: &str, text: &[&str]) -> String {
    let hay: Vec<String> = text.iter().map(|t| t.to_lowercase()).collect();
    format!(
        "data-score=\"{score:.4}\" data-name=\"{}\" data-text=\"{}\"",
        esc(name),
        esc(&hay.join(" "))
    )
}

fn card(out: &mut String, n: &str, label: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        esc(n),
        esc(label)
    );
}

fn kv(out: &mut String, k: &str, v: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
}

/// A key/value row whose value is a path (wraps at separators).
fn kv_path(out: &mut String, k: &str, v: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), wrap_path(v));
}

fn badge(v: &str) -> String {
    format!("<span class=\"badge b-{v}\">{v}</span>")
}

/// A thumbnail that enlarges on click; `path` (an image file) also makes it
/// a link to the full image.
fn thumb_img(uri: &str, alt: &str, path: Option<&str>, base: Option<&Path>) -> String {
    let href = path.and_then(|p| file_href(p, base));
    let shown = path.map(display_path).unwrap_or_else(|| alt.to_string());
    format!(
        "<a class=\"full\"{} data-path=\"{}\"><img class=\"t\" src=\"{uri}\" alt=\"{}\"></a>",
        href.map(|h| format!(" href=\"{}\"", esc(&h)))
            .unwrap_or_default(),
        esc(&shown),
        esc(alt)
    )
}

/// The thumbnail of an image file, or why it cannot be shown.
fn file_thumb(t: &Result<Thumb, String>, path: &str, alt: &str, base: Option<&Path>) -> String {
    match t {
        Ok(t) => thumb_img(&thumbs::data_uri(&t.img), alt, Some(path), base),
        Err(e) => noimg(e),
    }
}

/// "1024×768 · 212.4 KB" for a decoded file; empty when it was not.
fn facts(t: &Result<Thumb, String>) -> String {
    match t {
        Ok(t) => format!("{}×{} · {}", t.width, t.height, human_bytes(t.bytes)),
        Err(_) => String::new(),
    }
}

/// A link to an image file by its shown path (plain text when missing).
fn path_link(path: &str, base: Option<&Path>) -> String {
    let shown = wrap_path(&display_path(path));
    match file_href(path, base) {
        Some(h) => format!("<a href=\"{}\">{shown}</a>", esc(&h)),
        None => shown,
    }
}

fn noimg(why: &str) -> String {
    format!("<div class=\"noimg\">cannot show: {}</div>", esc(why))
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// Writes a report to `path` through a temporary file, so a failed run never
/// leaves half a report behind.
pub fn save(path: &Path, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let tmp = path.with_extension("html.tmp");
    let mut out = io::BufWriter::new(std::fs::File::create(&tmp)?);
    f(&mut out)?;
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_paths() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(wrap_path("a/b<c>_d"), "a/<wbr>b&lt;c&gt;_<wbr>d");
    }

    #[test]
    fn file_links_are_relative_inside_the_base_and_encoded() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("sub dir")).unwrap();
        let f = base.join("sub dir/a#1%.jpg");
        std::fs::write(&f, b"x").unwrap();
        let p = f.to_str().unwrap();
        assert_eq!(file_href(p, Some(&base)).unwrap(), "sub%20dir/a%231%25.jpg");
        let abs = file_href(p, Some(&base.join("sub dir/elsewhere"))).unwrap();
        assert!(abs.starts_with("file:///") && abs.ends_with("/sub%20dir/a%231%25.jpg"));
        assert_eq!(file_href(p, None).unwrap(), abs);
        assert!(file_href(base.join("missing.jpg").to_str().unwrap(), None).is_none());
    }

    #[test]
    fn dates_and_sizes_read_as_people_write_them() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc_date(1_796_515_200), "2026-12-06 00:00 UTC");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(212_400), "212.4 KB");
        assert_eq!(human_bytes(3_100_000), "3.1 MB");
    }
}
