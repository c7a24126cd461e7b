//! Self-contained HTML reports (`check --report`, `dedup --report`): one
//! file, thumbnails embedded as JPEG data: URIs, no external resources, a
//! little inline JS (a verdict filter and a self-test line the browser test
//! reads). Only the first `limit` rows get thumbnails, so a report over
//! 10 000 images stays a few MB; the rest are listed as text rows.

use std::fmt::Write as _;
use std::io::{self, Write};

use rayon::prelude::*;

use super::table::display_path;
use super::thumbs;
use crate::ingest::Limits;
use crate::search::dedup::{DedupReport, Group};
use crate::search::result::{CheckReport, MatchOut, QueryResult};

/// Training matches shown beside each flagged image.
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
    pub limits: Limits,
    /// Decode setting the hashes were computed with, e.g. "fast:512".
    pub decode: String,
    /// Candidates kept per image in the run, shown in the report's settings.
    pub top_k: usize,
}

/// Escapes `s` for HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
:root{--fg:#1d232b;--muted:#5f6b7a;--line:#dde2e8;--bg:#f4f6f9;--card:#fff;--exact:#c62828;--near:#e08a00;--none:#8a94a3}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1f2933;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#c4ccd6;font-size:13px}
main{max-width:1240px;margin:0 auto;padding:20px 32px 48px}
h2{font-size:17px;margin:28px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:150px}
.card .n{font-size:24px;font-weight:650}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.panels{display:flex;flex-wrap:wrap;gap:16px;margin-top:16px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;flex:1 1 420px}
.panel h3{margin:0 0 8px;font-size:13px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
table.kv{border-collapse:collapse;font-size:13px}
table.kv th{text-align:left;font-weight:500;color:var(--muted);padding:2px 14px 2px 0;vertical-align:top;white-space:nowrap}
table.kv td{padding:2px 0;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.b-exact{background:var(--exact)}.b-near-duplicate{background:var(--near)}.b-none{background:var(--none)}.b-info{background:#3b6fb6}
.filter{margin:6px 0 12px;color:var(--muted)}
.filter label{margin-right:14px;cursor:pointer}
.row{display:flex;gap:18px;background:var(--card);border:1px solid var(--line);border-left:5px solid var(--none);border-radius:8px;padding:14px;margin:0 0 14px}
.row.v-exact{border-left-color:var(--exact)}.row.v-near-duplicate{border-left-color:var(--near)}
.gen{width:190px;flex:none}
.matches{display:flex;flex-wrap:wrap;gap:16px;flex:1}
.match{width:330px;border-left:1px solid var(--line);padding-left:14px}
.pair{display:flex;gap:8px}
figure{margin:0}
figcaption{font-size:11px;color:var(--muted);margin-top:2px}
img.t{display:block;max-width:160px;max-height:160px;border-radius:4px;background:#eee;image-rendering:auto}
.noimg{width:160px;height:100px;display:flex;align-items:center;justify-content:center;text-align:center;font-size:11px;color:var(--muted);background:#eceff3;border-radius:4px;padding:6px}
.path{font-size:12px;color:var(--muted);word-break:break-all;margin:4px 0}
.score{font-size:18px;font-weight:650;margin-left:6px}
.hist{width:100%;height:auto}
table.list{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);font-size:13px}
table.list th,table.list td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.list td.p{word-break:break-all}
table.list th{background:#eef1f5;font-weight:600}
.members{display:flex;flex-wrap:wrap;gap:14px}
.member{width:170px}
details{margin-top:18px}
#selftest{display:none}
footer{color:var(--muted);font-size:12px;margin-top:32px}
"#;

/// Filter by verdict, then the self-test line: counts of images, of images
/// the browser decoded, and of rows (read by tests/html_report.rs).
const JS: &str = r#"
(function(){
  var boxes=document.querySelectorAll('input[data-filter]');
  function apply(){
    var on={};boxes.forEach(function(b){on[b.getAttribute('data-filter')]=b.checked;});
    var shown=0,all=document.querySelectorAll('[data-verdict]');
    all.forEach(function(e){var v=e.getAttribute('data-verdict');var vis=!(v in on)||on[v];e.hidden=!vis;if(vis)shown++;});
    var c=document.getElementById('shown');if(c)c.textContent=shown+' of '+all.length+' shown';
  }
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  apply();
  window.addEventListener('load',function(){
    var imgs=document.images,ok=0;
    for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
    document.getElementById('selftest').textContent='images='+imgs.length+' decoded='+ok+
      ' rows='+document.querySelectorAll('.row').length+' textrows='+document.querySelectorAll('tr.textrow').length;
  });
})();
"#;

fn page_start(w: &mut dyn Write, title: &str, subtitle: &str) -> io::Result<()> {
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
<title>{}</title><style>{CSS}</style></head><body>\n<header><h1>{}</h1><p>{}</p></header>\n<main>\n",
        esc(title),
        esc(title),
        esc(subtitle)
    )
}

fn page_end(w: &mut dyn Write) -> io::Result<()> {
    write!(
        w,
        "<footer>lookalike {} · perceptual hashes (PDQ, pHash) · thumbnails are embedded; this file needs no network.</footer>\n\
</main>\n<pre id=\"selftest\"></pre>\n<script>{JS}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
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

fn badge(v: &str) -> String {
    format!("<span class=\"badge b-{v}\">{v}</span>")
}

fn img(uri: &str, alt: &str) -> String {
    format!("<img class=\"t\" src=\"{uri}\" alt=\"{}\">", esc(alt))
}

fn noimg(why: &str) -> String {
    format!("<div class=\"noimg\">cannot show: {}</div>", esc(why))
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// Histogram of best-match scores, 20 bins, as inline SVG; bins at or above
/// the match threshold are drawn in the match colour.
fn histogram(scores: &[f64], threshold: f64) -> String {
    const BINS: usize = 20;
    let mut n = [0usize; BINS];
    for &s in scores {
        n[((s * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    let max = *n.iter().max().unwrap_or(&1).max(&1) as f64;
    let (w, h, left, bottom, top) = (560.0, 170.0, 34.0, 22.0, 16.0);
    let bw = (w - left - 6.0) / BINS as f64;
    let mut s = format!("<svg class=\"hist\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"histogram of best-match scores\" font-size=\"10\" fill=\"#5f6b7a\">");
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#c9d0d8\"/>",
        y = h - bottom,
        x2 = w - 6.0
    );
    for (i, &c) in n.iter().enumerate() {
        let bh = (h - bottom - top) * c as f64 / max;
        let x = left + i as f64 * bw;
        let lo = i as f64 / BINS as f64;
        // Bins reaching past the threshold hold matches.
        let colour = if lo + 1.0 / BINS as f64 > threshold {
            "#e08a00"
        } else {
            "#9aa5b4"
        };
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{:.2}–{:.2}: {c}</title></rect>",
            x + 1.0,
            h - bottom - bh,
            bw - 2.0,
            bh,
            lo,
            lo + 1.0 / BINS as f64
        );
        if c > 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>",
                x + bw / 2.0,
                h - bottom - bh - 3.0
            );
        }
    }
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text>",
            left + t * (w - left - 6.0),
            h - 6.0
        );
    }
    let tx = left + threshold * (w - left - 6.0);
    let _ = write!(
        s,
        "<line x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-dasharray=\"4 3\"/>\
<text x=\"{:.1}\" y=\"11\" text-anchor=\"end\" fill=\"#c62828\">match threshold {threshold:.3}</text>\
<text x=\"2\" y=\"{:.1}\" transform=\"rotate(-90 8 {:.1})\">images</text></svg>",
        h - bottom,
        tx + 4.0 + 60.0,
        h / 2.0,
        h / 2.0
    );
    s
}

/// Thumbnails and text of one flagged image: decoded here, on a worker thread.
fn check_row(q: &QueryResult, limits: &Limits) -> String {
    let v = q.verdict.as_str();
    let mut s = format!("<article class=\"row v-{v}\" data-verdict=\"{v}\">");
    let query = thumbs::load(&q.query, limits);
    let _ = write!(
        s,
        "<div class=\"gen\"><figure>{}<figcaption>generated image</figcaption></figure>",
        match &query {
            Ok(i) => img(&thumbs::data_uri(i), "generated image"),
            Err(e) => noimg(e),
        }
    );
    let _ = write!(
        s,
        "<div class=\"path\" title=\"{}\">{}</div><div>{}<span class=\"score\">{:.3}</span></div><div class=\"path\">PDQ quality {}</div></div><div class=\"matches\">",
        esc(&q.query),
        esc(&display_path(&q.query)),
        badge(v),
        q.best_score,
        q.quality
    );
    let shown: Vec<&MatchOut> = q
        .matches
        .iter()
        .filter(|m| m.verdict.is_match())
        .take(MATCHES_SHOWN)
        .collect();
    for m in &shown {
        let cand = thumbs::load(&m.candidate, limits);
        let (thumb, diff) = match (&cand, &query) {
            (Ok(c), Ok(qi)) => {
                let (d, mean) = thumbs::difference(qi, c, m.orientation);
                (
                    img(&thumbs::data_uri(c), "training image"),
                    format!(
                        "<figure>{}<figcaption>difference, aligned ({} mean)</figcaption></figure>",
                        img(&thumbs::data_uri(&d), "difference"),
                        pct(mean)
                    ),
                )
            }
            (Ok(c), Err(_)) => (img(&thumbs::data_uri(c), "training image"), String::new()),
            (Err(e), _) => (noimg(e), String::new()),
        };
        let mut t = String::new();
        kv(&mut t, "score", &format!("{:.3}", m.score));
        kv(
            &mut t,
            "PDQ / pHash distance",
            &format!("{} / {}", m.pdq_distance, m.phash_distance),
        );
        kv(&mut t, "orientation", m.orientation);
        if let (Some(i), Some(k)) = (m.inliers, m.keypoint_matches) {
            kv(
                &mut t,
                "keypoints",
                &format!("{i} of {k} matches fit one affine map"),
            );
        }
        if let Some(sim) = m.similarity {
            kv(&mut t, "embedding similarity", &format!("{sim:.3}"));
        }
        kv(&mut t, "evidence", &m.evidence);
        kv(
            &mut t,
            "near copies in corpus",
            &m.corpus_copies
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        if m.same_bytes {
            kv(&mut t, "file", "byte-identical");
        }
        let _ = write!(
            s,
            "<div class=\"match\"><div class=\"pair\"><figure>{thumb}<figcaption>training match #{}</figcaption></figure>{diff}</div>\
<div class=\"path\" title=\"{}\">{}</div><div>{}</div><table class=\"kv\">{t}</table></div>",
            m.rank,
            esc(&m.candidate),
            esc(&display_path(&m.candidate)),
            badge(m.verdict.as_str())
        );
    }
    let more = q
        .matches
        .iter()
        .filter(|m| m.verdict.is_match())
        .count()
        .saturating_sub(shown.len());
    if more > 0 {
        let _ = write!(
            s,
            "<div class=\"path\">and {more} more matching training images (see --json)</div>"
        );
    }
    s.push_str("</div></article>\n");
    s
}

fn text_row(q: &QueryResult) -> String {
    let v = q.verdict.as_str();
    let (cand, pdq, orient, copies) = match q.matches.first() {
        Some(m) => (
            display_path(&m.candidate),
            m.pdq_distance.to_string(),
            m.orientation,
            m.corpus_copies.map(|c| c.to_string()).unwrap_or_default(),
        ),
        None => (String::new(), String::new(), "", String::new()),
    };
    format!(
        "<tr class=\"textrow\" data-verdict=\"{v}\"><td>{}</td><td>{:.3}</td><td>{pdq}</td><td>{orient}</td><td>{copies}</td><td class=\"p\">{}</td><td class=\"p\">{}</td></tr>\n",
        badge(v),
        q.best_score,
        esc(&display_path(&q.query)),
        esc(&cand)
    )
}

/// Writes the `check --report` page: flagged images strongest first, each
/// beside its best training matches.
pub fn write_check(w: &mut dyn Write, r: &CheckReport, o: &HtmlOptions) -> io::Result<()> {
    let mut flagged: Vec<&QueryResult> =
        r.results.iter().filter(|q| q.verdict.is_match()).collect();
    // Strongest first: score, then verdict, then name for a stable order.
    flagged.sort_by(|a, b| {
        b.best_score
            .total_cmp(&a.best_score)
            .then(b.verdict.cmp(&a.verdict))
            .then(a.query.cmp(&b.query))
    });
    page_start(
        w,
        "lookalike check report",
        &format!(
            "{} generated images checked against {}",
            r.images_checked, r.index
        ),
    )?;

    let n = r.images_checked.max(1) as f64;
    let mut s = String::from("<section><div class=\"cards\">");
    card(&mut s, &r.images_checked.to_string(), "images checked");
    card(
        &mut s,
        &pct(r.replication_rate),
        &format!("replication rate ({} matched)", r.matched),
    );
    card(
        &mut s,
        &pct(r.exact as f64 / n),
        &format!("exact copies ({})", r.exact),
    );
    card(
        &mut s,
        &pct(r.near_duplicate as f64 / n),
        &format!("near-duplicates ({})", r.near_duplicate),
    );
    card(&mut s, &r.skipped.len().to_string(), "files skipped");
    s.push_str("</div><div class=\"panels\"><div class=\"panel\"><h3>Best-match score per checked image</h3>");
    let scores: Vec<f64> = r.results.iter().map(|q| q.best_score).collect();
    let t = &r.thresholds;
    s.push_str(&histogram(&scores, t.match_score));
    s.push_str("</div><div class=\"panel\"><h3>Settings</h3><table class=\"kv\">");
    kv(&mut s, "index", &r.index);
    kv(&mut s, "indexed images", &r.index_records.to_string());
    kv(&mut s, "decode setting", &o.decode);
    kv(
        &mut s,
        "match",
        &format!(
            "score ≥ {:.3}: PDQ distance ≤ {} (best of 8 orientations) or ≥ {} verified keypoint inliers",
            t.match_score, t.match_pdq_distance, t.match_inliers
        ),
    );
    kv(
        &mut s,
        "exact",
        &format!(
            "same bytes, or PDQ ≤ {} and pHash ≤ {} (upright)",
            t.exact_pdq_distance, t.exact_phash_distance
        ),
    );
    kv(
        &mut s,
        "low-quality hashes",
        &format!("PDQ quality < {} also needs pHash agreement", t.min_quality),
    );
    kv(&mut s, "candidates per image", &o.top_k.to_string());
    kv(&mut s, "JSON schema", r.schema);
    s.push_str("</table></div></div></section>\n");

    let _ = write!(
        s,
        "<h2>Flagged images ({}), strongest first</h2>",
        flagged.len()
    );
    if flagged.is_empty() {
        s.push_str("<p>No generated image matched a training image.</p>\n");
    } else {
        s.push_str(
            "<div class=\"filter\">Show: <label><input type=\"checkbox\" data-filter=\"exact\" checked> exact</label>\
<label><input type=\"checkbox\" data-filter=\"near-duplicate\" checked> near-duplicate</label> <span id=\"shown\"></span>\
<br>The difference view turns the generated image back by the matched orientation and subtracts it from the training image: black is identical.</div>\n",
        );
    }
    w.write_all(s.as_bytes())?;

    let (with_thumbs, as_text) = flagged.split_at(flagged.len().min(o.limit));
    for batch in with_thumbs.chunks(BATCH) {
        let rows: Vec<String> = batch.par_iter().map(|q| check_row(q, &o.limits)).collect();
        for row in rows {
            w.write_all(row.as_bytes())?;
        }
    }
    if !as_text.is_empty() {
        writeln!(
            w,
            "<h2>More flagged images ({}), without thumbnails</h2><p class=\"path\">Only the first {} flagged images get thumbnails (--report-limit).</p>\
<table class=\"list\"><tr><th>verdict</th><th>score</th><th>PDQ</th><th>turned</th><th>copies</th><th>generated image</th><th>training match</th></tr>",
            as_text.len(),
            o.limit
        )?;
        for q in as_text {
            w.write_all(text_row(q).as_bytes())?;
        }
        w.write_all(b"</table>\n")?;
    }
    if !r.skipped.is_empty() {
        write!(w, "<details><summary>{} files skipped</summary><table class=\"list\"><tr><th>file</th><th>reason</th></tr>", r.skipped.len())?;
        for k in &r.skipped {
            write!(
                w,
                "<tr><td class=\"p\">{}</td><td>{}</td></tr>",
                esc(&display_path(&k.path)),
                esc(&k.reason)
            )?;
        }
        w.write_all(b"</table></details>\n")?;
    }
    page_end(w)
}

fn group_row(g: &Group, limits: &Limits) -> String {
    let mut s = format!(
        "<article class=\"row v-near-duplicate\"><div class=\"gen\"><div><span class=\"badge b-info\">group {}</span></div>\
<div class=\"score\" style=\"margin:6px 0 0\">{} images</div><div class=\"path\">max pairwise PDQ distance {}</div></div><div class=\"members\">",
        g.group, g.size, g.max_pairwise_distance
    );
    let thumbs: Vec<String> = g.members[..g.members.len().min(MEMBERS_SHOWN)]
        .par_iter()
        .map(|m| match thumbs::load(&m.path, limits) {
            Ok(i) => img(&thumbs::data_uri(&i), "group member"),
            Err(e) => noimg(&e),
        })
        .collect();
    for (m, t) in g.members.iter().zip(thumbs) {
        let role = if m.representative {
            "representative".to_string()
        } else if m.same_bytes {
            "same bytes".to_string()
        } else {
            format!("PDQ {} · pHash {} from rep.", m.distance, m.phash_distance)
        };
        let _ = write!(
            s,
            "<div class=\"member\"><figure>{t}<figcaption>{}</figcaption></figure><div class=\"path\" title=\"{}\">{}</div></div>",
            esc(&role),
            esc(&m.path),
            esc(&display_path(&m.path))
        );
    }
    if g.members.len() > MEMBERS_SHOWN {
        let _ = write!(
            s,
            "<div class=\"path\">and {} more (see --json)</div>",
            g.members.len() - MEMBERS_SHOWN
        );
    }
    s.push_str("</div></article>\n");
    s
}

/// Writes the `dedup --report` page: duplicate groups, largest first.
pub fn write_dedup(w: &mut dyn Write, r: &DedupReport, o: &HtmlOptions) -> io::Result<()> {
    page_start(
        w,
        "lookalike dedup report",
        &format!("near-duplicates inside {}", r.index),
    )?;
    let mut s = String::from("<section><div class=\"cards\">");
    card(&mut s, &r.index_records.to_string(), "images indexed");
    card(&mut s, &r.group_count.to_string(), "duplicate groups");
    card(&mut s, &r.images_in_groups.to_string(), "images in groups");
    card(
        &mut s,
        &pct(r.redundant_images as f64 / r.index_records.max(1) as f64),
        &format!("redundant ({} images)", r.redundant_images),
    );
    s.push_str(
        "</div><div class=\"panels\"><div class=\"panel\"><h3>Settings</h3><table class=\"kv\">",
    );
    kv(&mut s, "index", &r.index);
    kv(&mut s, "decode setting", &o.decode);
    kv(
        &mut s,
        "pair rule",
        &format!(
            "same bytes, or upright PDQ distance ≤ {} (quality < {}: pHash ≤ {} too)",
            r.thresholds.max_pdq_distance,
            r.thresholds.min_quality,
            r.thresholds.low_quality_phash_distance
        ),
    );
    kv(
        &mut s,
        "grouping",
        "clique: every member is a near copy of every other member (no chaining)",
    );
    kv(
        &mut s,
        "orientations",
        "upright only: rotated or mirrored duplicates are not grouped",
    );
    kv(&mut s, "JSON schema", r.schema);
    s.push_str("</table></div></div></section>\n");
    let _ = write!(s, "<h2>Groups ({}), largest first</h2>", r.group_count);
    if r.groups.is_empty() {
        s.push_str("<p>No near-duplicates found.</p>\n");
    }
    w.write_all(s.as_bytes())?;
    let (with_thumbs, as_text) = r.groups.split_at(r.groups.len().min(o.limit));
    for batch in with_thumbs.chunks(4) {
        let rows: Vec<String> = batch.par_iter().map(|g| group_row(g, &o.limits)).collect();
        for row in rows {
            w.write_all(row.as_bytes())?;
        }
    }
    if !as_text.is_empty() {
        writeln!(w, "<h2>More groups ({}), without thumbnails</h2><table class=\"list\"><tr><th>group</th><th>PDQ to rep.</th><th>image</th></tr>", as_text.len())?;
        for g in as_text {
            for m in &g.members {
                writeln!(
                    w,
                    "<tr class=\"textrow\"><td>{}</td><td>{}</td><td class=\"p\">{}</td></tr>",
                    g.group,
                    m.distance,
                    esc(&display_path(&m.path))
                )?;
            }
        }
        w.write_all(b"</table>\n")?;
    }
    page_end(w)
}

/// Writes a report to `path` through a temporary file, so a failed run never
/// leaves half a report behind.
pub fn save(
    path: &std::path::Path,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
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
    }

    #[test]
    fn histogram_counts_every_score() {
        let svg = histogram(&[0.0, 0.1, 0.99, 1.0, 1.0], 0.758);
        assert_eq!(svg.matches("<rect").count(), 20);
        assert!(svg.contains("0.95–1.00: 3"), "{svg}");
        assert!(svg.contains("0.00–0.05: 1"));
    }
}
