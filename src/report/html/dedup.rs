//! The `dedup --report` page: duplicate groups inside the training set,
//! largest first, each member with its resolution and file size so a reader
//! can choose which copy to keep.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use rayon::prelude::*;

use super::{
    card, display_path, esc, facts, file_thumb, human_bytes, item_attrs, kv, kv_path, page_end,
    page_start, path_link, pct, thumbs, toolbar, utc_now, HtmlOptions, MEMBERS_SHOWN,
};
use crate::ingest::Limits;
use crate::search::dedup::{DedupReport, Group};

fn group_row(g: &Group, limits: &Limits, base: Option<&Path>) -> String {
    let paths: Vec<String> = g.members.iter().map(|m| display_path(&m.path)).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut s = format!(
        "<article class=\"row item v-near-duplicate\" {}><div class=\"gen\"><div><span class=\"badge b-info\">group {}</span></div>\
<div class=\"score\" style=\"margin:6px 0 0\">{} images</div><div class=\"path\">max pairwise PDQ distance {}</div></div><div class=\"members\">",
        item_attrs(g.size as f64, refs.first().copied().unwrap_or(""), &refs),
        g.group,
        g.size,
        g.max_pairwise_distance
    );
    let shown = &g.members[..g.members.len().min(MEMBERS_SHOWN)];
    let loaded: Vec<_> = shown
        .par_iter()
        .map(|m| thumbs::load(&m.path, limits))
        .collect();
    // The copy most worth keeping by its pixels: most of them, then the larger file.
    let best = loaded
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.as_ref()
                .ok()
                .map(|t| (i, (t.width as u64 * t.height as u64, t.bytes)))
        })
        .max_by_key(|&(i, key)| (key, std::cmp::Reverse(i)))
        .map(|(i, _)| i);
    for (i, (m, t)) in shown.iter().zip(&loaded).enumerate() {
        let role = if m.representative {
            "representative".to_string()
        } else if m.same_bytes {
            "same bytes".to_string()
        } else {
            format!("PDQ {} · pHash {} from rep.", m.distance, m.phash_distance)
        };
        let most = if Some(i) == best && shown.len() > 1 {
            " · <b>most pixels</b>"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<div class=\"member\"><figure>{}<figcaption>{}<br>{}{most}</figcaption></figure><div class=\"path\" title=\"{}\">{}</div></div>",
            file_thumb(t, &m.path, "group member", base),
            esc(&role),
            esc(&facts(t)),
            esc(&m.path),
            path_link(&m.path, base)
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

/// Resolution (from the file's header, before any EXIF turn) and size of a
/// member listed without a thumbnail.
fn header_facts(path: &str) -> String {
    let p = super::names::text_path(path);
    let size = std::fs::metadata(&p).map(|m| human_bytes(m.len())).ok();
    let dims = image::image_dimensions(&p).ok();
    match (dims, size) {
        (Some((w, h)), Some(b)) => format!("{w}×{h} · {b}"),
        (None, Some(b)) => b,
        _ => String::new(),
    }
}

/// Writes the `dedup --report` page: duplicate groups, largest first.
pub fn write_dedup(w: &mut dyn Write, r: &DedupReport, o: &HtmlOptions) -> io::Result<()> {
    let base = o.link_base.as_deref();
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
    kv_path(&mut s, "index", &r.index);
    kv(&mut s, "date", &utc_now());
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
    } else {
        toolbar(&mut s, &[], ("largest group first", "smallest group first"));
        s.push_str("<p class=\"note\">Each copy shows its resolution and file size; \"most pixels\" marks the copy with the most (then the larger file). Click a thumbnail to enlarge it; the link opens the full image.</p>\n");
    }
    w.write_all(s.as_bytes())?;
    let (with_thumbs, as_text) = r.groups.split_at(r.groups.len().min(o.limit));
    w.write_all(b"<div class=\"rows\">")?;
    for batch in with_thumbs.chunks(4) {
        let rows: Vec<String> = batch
            .par_iter()
            .map(|g| group_row(g, &o.limits, base))
            .collect();
        for row in rows {
            w.write_all(row.as_bytes())?;
        }
    }
    w.write_all(b"</div>\n")?;
    if !as_text.is_empty() {
        writeln!(w, "<h2>More groups ({}), without thumbnails</h2><table class=\"list\"><tr><th>group</th><th>PDQ to rep.</th><th>resolution · size</th><th>image</th></tr>", as_text.len())?;
        for g in as_text {
            for m in &g.members {
                writeln!(
                    w,
                    "<tr class=\"textrow\"><td>{}</td><td>{}</td><td>{}</td><td class=\"p\">{}</td></tr>",
                    g.group,
                    m.distance,
                    esc(&header_facts(&m.path)),
                    path_link(&m.path, base)
                )?;
            }
        }
        w.write_all(b"</table>\n")?;
    }
    page_end(w)
}
