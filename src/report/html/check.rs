//! The `check --report` page: summary cards, score histogram, settings and
//! how to read a score; then every flagged image beside its matching
//! training images, strongest first; then the near misses (unmatched images
//! scoring just under the threshold).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use rayon::prelude::*;

use super::{
    badge, card, display_path, esc, facts, file_thumb, item_attrs, kv, kv_path, page_end,
    page_start, path_link, pct, thumb_img, thumbs, toolbar, utc_now, wrap_path, HtmlOptions, BATCH,
    MATCHES_SHOWN,
};
use crate::ingest::Limits;
use crate::search::result::{CheckReport, MatchOut, QueryResult, Thresholds};

/// Unmatched images scoring at least the match score minus this are near
/// misses: their evidence is at most 10^2.5 times likelier between unrelated
/// images than at the threshold (scores are −log10 p / 10).
pub const NEAR_MISS_MARGIN: f64 = 0.25;
/// Near misses shown with thumbnails (within `--report-limit`).
const NEAR_MISSES_SHOWN: usize = 50;
/// Near misses listed as text rows after those.
const NEAR_MISS_TEXT_ROWS: usize = 500;

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

/// A thumbnail with a box over each region of the generated image that the
/// `shown` matches were found through (none: the thumbnail as it is).
fn with_regions(thumb: String, shown: &[&MatchOut]) -> String {
    let mut boxes: Vec<crate::descriptors::regions::Rect> = Vec::new();
    for r in shown.iter().filter_map(|m| m.region) {
        if !boxes.contains(&r) {
            boxes.push(r);
        }
    }
    if boxes.is_empty() {
        return thumb;
    }
    let pc = |v: f32| format!("{:.2}%", v * 100.0);
    let spans: String = boxes
        .iter()
        .map(|r| {
            format!(
                "<span class=\"region\" style=\"left:{};top:{};width:{};height:{}\"></span>",
                pc(r.x),
                pc(r.y),
                pc(r.w),
                pc(r.h)
            )
        })
        .collect();
    format!("<div class=\"boxed\">{thumb}{spans}</div>")
}

/// The evidence table of one candidate.
fn evidence(m: &MatchOut) -> String {
    let mut t = String::new();
    kv(&mut t, "score", &format!("{:.3}", m.score));
    if let Some(r) = m.region {
        kv(
            &mut t,
            "found in",
            &format!(
                "a region of the generated image (boxed): {:.0} % × {:.0} % of it, from {:.0} % / {:.0} % (left / top)",
                r.w * 100.0,
                r.h * 100.0,
                r.x * 100.0,
                r.y * 100.0
            ),
        );
    }
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
    t
}

/// Thumbnails and text of one flagged image (or near miss, `near`):
/// decoded here, on a worker thread. A flagged image shows its matching
/// candidates (up to [`MATCHES_SHOWN`]) with thumbnails; a near miss its best
/// candidate. The slots left list the next candidates by score.
fn check_row(q: &QueryResult, limits: &Limits, base: Option<&Path>, near: bool) -> String {
    let v = q.verdict.as_str();
    let shown_path = display_path(&q.query);
    let shown: Vec<&MatchOut> = if near {
        q.matches.iter().take(1).collect()
    } else {
        q.matches
            .iter()
            .filter(|m| m.verdict.is_match())
            .take(MATCHES_SHOWN)
            .collect()
    };
    let mut names = vec![shown_path.as_str()];
    let cand_names: Vec<String> = shown.iter().map(|m| display_path(&m.candidate)).collect();
    names.extend(cand_names.iter().map(String::as_str));
    let mut s = format!(
        "<article class=\"row item v-{v}{}\" data-verdict=\"{v}\" {}>",
        if near { " nearmiss" } else { "" },
        item_attrs(q.best_score, &shown_path, &names)
    );
    let query = thumbs::load(&q.query, limits);
    let _ = write!(
        s,
        "<div class=\"gen\"><figure>{}<figcaption>generated image{}</figcaption></figure>",
        with_regions(
            file_thumb(&query, &q.query, "generated image", base),
            &shown
        ),
        match facts(&query) {
            f if f.is_empty() => f,
            f => format!(" · {f}"),
        }
    );
    let _ = write!(
        s,
        "<div class=\"path\" title=\"{}\">{}</div><div>{}<span class=\"score\">{:.3}</span></div><div class=\"path\">PDQ quality {}</div></div><div class=\"matches\">",
        esc(&q.query),
        path_link(&q.query, base),
        badge(v),
        q.best_score,
        q.quality
    );
    for m in &shown {
        let cand = thumbs::load(&m.candidate, limits);
        let thumb = file_thumb(&cand, &m.candidate, "training image", base);
        let diff = match (&cand, &query) {
            (Ok(c), Ok(qi)) => {
                // A match found through a region is compared with that region.
                let part = m
                    .region
                    .map(|r| crate::descriptors::regions::crop(&qi.img, r));
                let (d, mean) =
                    thumbs::difference(part.as_ref().unwrap_or(&qi.img), &c.img, m.orientation);
                format!(
                    "<figure>{}<figcaption>difference, aligned ({} mean)</figcaption></figure>",
                    thumb_img(&thumbs::data_uri(&d), "aligned difference", None, None),
                    pct(mean)
                )
            }
            _ => String::new(),
        };
        let label = if near {
            "best candidate"
        } else {
            "training match"
        };
        let _ = write!(
            s,
            "<div class=\"match\"><div class=\"pair\"><figure>{thumb}<figcaption>{label} #{} · {}</figcaption></figure>{diff}</div>\
<div class=\"info\"><div class=\"path\" title=\"{}\">{}</div><div>{}</div><table class=\"kv\">{}</table></div></div>",
            m.rank,
            facts(&cand),
            esc(&m.candidate),
            path_link(&m.candidate, base),
            badge(m.verdict.as_str()),
            evidence(m)
        );
    }
    let more = if near {
        0
    } else {
        let matching = q.matches.iter().filter(|m| m.verdict.is_match()).count();
        matching.saturating_sub(shown.len())
    };
    if more > 0 {
        let _ = write!(
            s,
            "<div class=\"runners\">and {more} more matching training images (see --json)</div>"
        );
    }
    let runners: Vec<&MatchOut> = q
        .matches
        .iter()
        .filter(|m| !shown.iter().any(|k| k.rank == m.rank) && !m.verdict.is_match())
        .take(MATCHES_SHOWN.saturating_sub(shown.len()))
        .collect();
    if !runners.is_empty() {
        s.push_str("<div class=\"runners\">Next candidates, not matches:<ol>");
        for m in runners {
            let _ = write!(
                s,
                "<li value=\"{}\">{} · score {:.3} · PDQ {}{}</li>",
                m.rank,
                path_link(&m.candidate, base),
                m.score,
                m.pdq_distance,
                m.inliers
                    .map(|i| format!(" · {i} inliers"))
                    .unwrap_or_default()
            );
        }
        s.push_str("</ol></div>");
    }
    s.push_str("</div></article>\n");
    s
}

fn text_row(q: &QueryResult, base: Option<&Path>, near: bool) -> String {
    let v = q.verdict.as_str();
    let (cand, pdq, orient, copies) = match q.matches.first() {
        Some(m) => (
            path_link(&m.candidate, base),
            m.pdq_distance.to_string(),
            m.orientation,
            m.corpus_copies.map(|c| c.to_string()).unwrap_or_default(),
        ),
        None => (String::new(), String::new(), "", String::new()),
    };
    let shown = display_path(&q.query);
    let first = q.matches.first().map(|m| display_path(&m.candidate));
    format!(
        "<tr class=\"textrow item{}\" data-verdict=\"{v}\" {}><td>{}</td><td>{:.3}</td><td>{pdq}</td><td>{orient}</td><td>{copies}</td><td class=\"p\">{}</td><td class=\"p\">{cand}</td></tr>\n",
        if near { " nearmiss" } else { "" },
        item_attrs(q.best_score, &shown, &[&shown, first.as_deref().unwrap_or("")]),
        badge(v),
        q.best_score,
        path_link(&q.query, base),
    )
}

const TEXT_HEAD: &str = "<table class=\"list\"><thead><tr><th>verdict</th><th>score</th><th>PDQ</th><th>turned</th><th>copies</th><th>generated image</th><th>best training candidate</th></tr></thead><tbody class=\"rows\">";

/// Writes rows with thumbnails (decoded in parallel batches), then text rows.
fn write_rows(
    w: &mut dyn Write,
    with_thumbs: &[&QueryResult],
    o: &HtmlOptions,
    near: bool,
) -> io::Result<()> {
    let base = o.link_base.as_deref();
    w.write_all(b"<div class=\"rows\">")?;
    for batch in with_thumbs.chunks(BATCH) {
        let rows: Vec<String> = batch
            .par_iter()
            .map(|q| check_row(q, &o.limits, base, near))
            .collect();
        for row in rows {
            w.write_all(row.as_bytes())?;
        }
    }
    w.write_all(b"</div>\n")
}

/// One paragraph on what a score means, with this run's numbers.
fn how_to_read(t: &Thresholds, n: usize) -> String {
    let l = 10.0 * t.match_score;
    let per_query = n as f64 * 10f64.powf(-l);
    format!(
        "<div class=\"panel howto\"><h3>How to read a score</h3><p>A score measures how rare the evidence \
would be between unrelated images: score s means a chance of about 10<sup>−10·s</sup> that an unrelated \
training image shows evidence this strong (PDQ distance, verified keypoint inliers, or both), so higher \
is stronger and equal scores mean equal false-alarm rates whatever produced them. The match threshold \
{:.3} is that chance at 10<sup>−{l:.1}</sup>: a PDQ distance ≤ {} or ≥ {} keypoint inliers that fit one \
affine map. On this index of {n} images about {} unrelated images per checked image would reach it by \
chance. Above 0.9 (10<sup>−9</sup>) scores are compressed towards 1 so the strongest still rank. A verdict \
needs one piece of evidence to reach its threshold on its own; embedding similarity ranks candidates but \
never makes a verdict alone. Near misses score within {NEAR_MISS_MARGIN} of the threshold: look at them \
for crops, heavy edits and pasted pictures.</p></div>",
        t.match_score,
        t.match_pdq_distance,
        t.match_inliers,
        esc(&format!("{per_query:.1e}"))
    )
}

/// Writes the `check --report` page: flagged images strongest first, each
/// beside its best training matches, then the near misses.
pub fn write_check(w: &mut dyn Write, r: &CheckReport, o: &HtmlOptions) -> io::Result<()> {
    // Strongest first: score, then verdict, then name for a stable order.
    let by_strength = |a: &&QueryResult, b: &&QueryResult| {
        b.best_score
            .total_cmp(&a.best_score)
            .then(b.verdict.cmp(&a.verdict))
            .then(a.query.cmp(&b.query))
    };
    let mut flagged: Vec<&QueryResult> =
        r.results.iter().filter(|q| q.verdict.is_match()).collect();
    flagged.sort_by(by_strength);
    let t = &r.thresholds;
    let near_from = (t.match_score - NEAR_MISS_MARGIN).max(0.0);
    let mut near: Vec<&QueryResult> = r
        .results
        .iter()
        .filter(|q| !q.verdict.is_match() && !q.matches.is_empty() && q.best_score >= near_from)
        .collect();
    near.sort_by(by_strength);
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
    card(&mut s, &near.len().to_string(), "near misses");
    card(&mut s, &r.skipped.len().to_string(), "files skipped");
    s.push_str("</div><div class=\"panels\"><div class=\"panel\"><h3>Best-match score per checked image</h3>");
    let scores: Vec<f64> = r.results.iter().map(|q| q.best_score).collect();
    s.push_str(&histogram(&scores, t.match_score));
    s.push_str("</div><div class=\"panel\"><h3>Settings</h3><table class=\"kv\">");
    kv_path(&mut s, "index", &r.index);
    kv(&mut s, "indexed images", &r.index_records.to_string());
    kv(
        &mut s,
        "model",
        t.embedding_model
            .as_deref()
            .unwrap_or("none (hash-only: PDQ, pHash and keypoints)"),
    );
    if !r.device.is_empty() {
        kv(&mut s, "device", &r.device);
    }
    kv(&mut s, "date", &utc_now());
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
    kv(
        &mut s,
        "near misses",
        &format!("unmatched, score ≥ {near_from:.3} (within {NEAR_MISS_MARGIN} of the threshold)"),
    );
    kv(&mut s, "candidates per image", &o.top_k.to_string());
    kv(&mut s, "JSON schema", r.schema);
    s.push_str("</table></div>");
    s.push_str(&how_to_read(t, r.index_records));
    s.push_str("</div></section>\n");

    let _ = write!(
        s,
        "<section id=\"flagged\"><h2>Flagged images ({}), strongest first</h2>",
        flagged.len()
    );
    if flagged.is_empty() && near.is_empty() {
        s.push_str("<p>No generated image matched a training image.</p>\n");
    } else {
        toolbar(
            &mut s,
            &["exact", "near-duplicate", "none"][..if near.is_empty() { 2 } else { 3 }],
            ("score, highest first", "score, lowest first"),
        );
        s.push_str(
            "<p class=\"note\">Each flagged image is shown beside its matching training images (up to 3; most copies match one) \
and the next candidates by score. The difference view turns the generated image back by the matched orientation \
and subtracts it from the training image: black is identical. Click a thumbnail to enlarge it; the link opens the full image.</p>\n",
        );
        if flagged.is_empty() {
            s.push_str("<p>No generated image matched a training image.</p>\n");
        }
    }
    w.write_all(s.as_bytes())?;

    let (with_thumbs, as_text) = flagged.split_at(flagged.len().min(o.limit));
    write_rows(w, with_thumbs, o, false)?;
    let base = o.link_base.as_deref();
    if !as_text.is_empty() {
        writeln!(
            w,
            "<h2>More flagged images ({}), without thumbnails</h2><p class=\"path\">Only the first {} flagged images get thumbnails (--report-limit).</p>{TEXT_HEAD}",
            as_text.len(),
            o.limit
        )?;
        for q in as_text {
            w.write_all(text_row(q, base, false).as_bytes())?;
        }
        w.write_all(b"</tbody></table>\n")?;
    }
    w.write_all(b"</section>\n")?;
    write_near_misses(w, &near, near_from, o)?;
    if !r.skipped.is_empty() {
        write!(w, "<details><summary>{} files skipped</summary><table class=\"list\"><tr><th>file</th><th>reason</th></tr>", r.skipped.len())?;
        for k in &r.skipped {
            write!(
                w,
                "<tr><td class=\"p\">{}</td><td>{}</td></tr>",
                wrap_path(&display_path(&k.path)),
                esc(&k.reason)
            )?;
        }
        w.write_all(b"</table></details>\n")?;
    }
    page_end(w)
}

/// The near-miss section: unmatched images whose best candidate scores
/// within [`NEAR_MISS_MARGIN`] of the threshold, strongest first.
fn write_near_misses(
    w: &mut dyn Write,
    near: &[&QueryResult],
    from: f64,
    o: &HtmlOptions,
) -> io::Result<()> {
    write!(
        w,
        "<section id=\"nearmisses\"><h2>Near misses ({}): unmatched, scoring {from:.3} or more</h2>",
        near.len()
    )?;
    if near.is_empty() {
        return w.write_all(b"<p>No unmatched image scored near the threshold.</p></section>\n");
    }
    w.write_all(
        "<p class=\"note\">Not copies by the verdict rules, but their best training candidate comes close: \
each is shown beside that candidate, with the evidence it fell short on.</p>\n"
            .as_bytes(),
    )?;
    let cap = o.limit.min(NEAR_MISSES_SHOWN).min(near.len());
    let (with_thumbs, rest) = near.split_at(cap);
    write_rows(w, with_thumbs, o, true)?;
    if !rest.is_empty() {
        let listed = &rest[..rest.len().min(NEAR_MISS_TEXT_ROWS)];
        writeln!(
            w,
            "<p class=\"path\">{} more near misses, without thumbnails{}.</p>{TEXT_HEAD}",
            rest.len(),
            if listed.len() < rest.len() {
                format!(" (the first {} listed; all in --json)", listed.len())
            } else {
                String::new()
            }
        )?;
        for q in listed {
            w.write_all(text_row(q, o.link_base.as_deref(), true).as_bytes())?;
        }
        w.write_all(b"</tbody></table>\n")?;
    }
    w.write_all(b"</section>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_score() {
        let svg = histogram(&[0.0, 0.1, 0.99, 1.0, 1.0], 0.758);
        assert_eq!(svg.matches("<rect").count(), 20);
        assert!(svg.contains("0.95–1.00: 3"), "{svg}");
        assert!(svg.contains("0.00–0.05: 1"));
    }
}
