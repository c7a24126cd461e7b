//! `check --report`: the HTML report of the shipped example, opened in
//! headless Chromium (tests/common/browser.rs): every flagged image present,
//! every thumbnail decodable, no console errors, nothing loaded from outside;
//! links to the full images, the lightbox, sorting, search, j/k and the near
//! misses work in the browser.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::*;
use serde_json::Value;

#[test]
fn check_report_shows_every_flagged_image_and_loads_cleanly_in_a_browser() {
    let (t, idx) = index_sample();
    // The generated images sit beside the report (linked relatively); the
    // training images elsewhere (linked by absolute file URL).
    let gen = t.path().join("gen");
    std::fs::create_dir(&gen).unwrap();
    for e in std::fs::read_dir(format!("{SAMPLE}/generated")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), gen.join(e.file_name())).unwrap();
    }
    let html = t.path().join("report.html");
    // The report is an extra output: --json still goes to stdout.
    let o = run(&[
        "check",
        gen.to_str().unwrap(),
        "--index",
        &idx,
        "--json",
        "-q",
        "--report",
        html.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["schema"], "lookalike.check/1");
    let flagged: Vec<&Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["verdict"] != "none")
        .collect();
    assert!(flagged.len() >= 9);

    let text = std::fs::read_to_string(&html).unwrap();
    for q in &flagged {
        let name = q["query"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(text.contains(name), "{name} missing from the report");
        let cand = q["matches"][0]["candidate"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert!(text.contains(cand), "{cand} missing from the report");
    }
    // Unrelated images are not shown as flagged rows.
    assert!(!text.contains("gen_10_novel.jpg"));
    assert_eq!(flagged_rows(&text), flagged.len());
    // Self-contained: no remote resource.
    for bad in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!text.contains(bad), "report references {bad}");
    }
    assert!(
        text.contains("lookalike.check/1") && text.contains("fast:512") && text.contains("<svg")
    );
    // The rotated copy's difference view is aligned: its mean difference is small.
    let rot = &text[text.find("gen_03_rotated.jpg").unwrap()..];
    let mean: f64 = rot[rot.find("difference, aligned (").unwrap() + 21..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        mean < 8.0,
        "rotated copy not aligned: mean difference {mean} %"
    );

    // Links to the full images: relative inside the report's folder, else file://.
    assert!(text.contains("href=\"gen/gen_03_rotated.jpg\""));
    assert!(text.contains("href=\"file:///") && text.contains("/training/train_09.jpg\""));
    // Settings name the model, the device and the date; a score is explained.
    for want in [
        "<th>model</th><td>efficientnet-lite0@",
        "<th>device</th><td>CPU engine",
        "<th>date</th><td>20",
        "How to read a score",
        "id=\"search\"",
        "id=\"sort\"",
        "id=\"lb\"",
    ] {
        assert!(text.contains(want), "{want} missing from the report");
    }
    // Paths wrap at separators, never inside a name.
    assert!(text.contains("gen/<wbr>gen_<wbr>03_<wbr>rotated.<wbr>jpg"));
    assert!(!text.contains("break-all"));
    // Near misses: the unrelated image scoring closest to the threshold
    // (gen_15_novel, 0.470 against 0.702) is shown beside its best candidate.
    let near: Vec<&Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| {
            q["verdict"] == "none"
                && q["best_score"].as_f64().unwrap()
                    >= r["thresholds"]["match_score"].as_f64().unwrap() - 0.25
        })
        .collect();
    assert!(!near.is_empty(), "the sample has no near miss any more");
    let section = &text[text.find("id=\"nearmisses\"").unwrap()..];
    for q in &near {
        let name = q["query"].as_str().unwrap().rsplit('/').next().unwrap();
        let wrapped = name.replace('_', "_<wbr>").replace('.', ".<wbr>");
        assert!(section.contains(&wrapped), "near miss {name} not listed");
    }
    // Each flagged row says how many matches it shows (the sample's copies match one each).
    assert!(text.contains("up to 3; most copies match one"));
    // The resolution and file size of each shown image.
    assert!(text.contains("generated image · 320×258 · "));

    let Some(chromium) = browser::require() else {
        return;
    };
    let page = browser::load_with(&chromium, &html, INTERACT);
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    let s = &page.selftest;
    assert_eq!(s["rows"], flagged.len());
    assert_eq!(s["textrows"], 0);
    assert_eq!(s["nearmisses"], near.len());
    // Sorting by score both ways, the search box, j/k and the lightbox.
    assert_eq!(s["ascending"], 1, "{s:?}");
    assert_eq!(s["descending"], 1, "{s:?}");
    assert_eq!(s["searchhits"], 1, "{s:?}");
    assert_eq!(s["allback"], flagged.len() + near.len(), "{s:?}");
    assert_eq!(
        s["current"], 1,
        "j j k should land on the second row: {s:?}"
    );
    assert_eq!(s["lightbox"], 1, "{s:?}");
    assert_eq!(
        s["fullsrc"], 1,
        "the lightbox did not load the full image: {s:?}"
    );
    // The full image (not the 160 px thumbnail) reached the lightbox.
    assert!(s["fullwidth"] > 160, "{s:?}");
    assert_eq!(s["closed"], 1, "{s:?}");
    // generated + (training + difference) per shown match.
    assert!(s["images"] >= 3 * flagged.len(), "{s:?}");
    assert_eq!(
        s["decoded"], s["images"],
        "some thumbnails did not decode: {s:?}"
    );
}

#[test]
fn report_limit_lists_the_rest_as_text_and_csv_gains_a_last_column() {
    let (t, idx) = index_sample();
    let html = t.path().join("r.html");
    let o = run(&[
        "check",
        &format!("{SAMPLE}/generated"),
        "--index",
        &idx,
        "--csv",
        "-k",
        "3",
        "-q",
        "--report",
        html.to_str().unwrap(),
        "--report-limit",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("query,candidate,score,rank,verdict,pdq_distance,phash_distance,orientation,query_quality,candidate_quality,"));
    assert!(header.ends_with(",corpus_copies,evidence,keypoint_matches,inliers,similarity,region"));
    let col = |l: &str, name: &str| -> String {
        let at = header.split(',').position(|h| h == name).unwrap();
        l.split(',').nth(at).unwrap().to_string()
    };
    // A matched row carries a count (the sample has no duplicates: 0); a non-match leaves it empty.
    assert!(csv
        .lines()
        .any(|l| col(l, "verdict") == "exact" && col(l, "corpus_copies") == "0"));
    assert!(csv
        .lines()
        .any(|l| col(l, "verdict") == "none" && col(l, "corpus_copies").is_empty()));
    // Verified candidates carry their keypoint evidence.
    assert!(csv
        .lines()
        .skip(1)
        .any(|l| col(l, "inliers").parse::<u32>().is_ok_and(|n| n > 0)));
    let text = std::fs::read_to_string(&html).unwrap();
    assert_eq!(flagged_rows(&text), 2);
    assert!(text.matches("<tr class=\"textrow item\" ").count() >= 7);
}

/// Rows with thumbnails of flagged images (near misses are rows too).
fn flagged_rows(html: &str) -> usize {
    html.matches("<article class=\"row").count() - html.matches(" nearmiss\" data-verdict").count()
}

/// Drives the report as a reader would, after the page's own load handler:
/// sort, search, j/j/k, Enter on the current row, Escape; appends the
/// outcome to the self-test line.
const INTERACT: &str = r#"
window.addEventListener('load',function(){
  var st=document.getElementById('selftest'),out=[];
  var $=function(q){return Array.prototype.slice.call(document.querySelectorAll(q));};
  var scores=function(){return $('#flagged .rows > .item').map(function(e){return +e.getAttribute('data-score');});};
  var mono=function(a,up){for(var i=1;i<a.length;i++){if(up?a[i]<a[i-1]:a[i]>a[i-1])return 0;}return 1;};
  var sort=document.getElementById('sort');
  sort.value='score-asc';sort.dispatchEvent(new Event('change'));out.push('ascending='+mono(scores(),true));
  sort.value='score-desc';sort.dispatchEvent(new Event('change'));out.push('descending='+mono(scores(),false));
  var s=document.getElementById('search');
  s.value='GEN_03';s.dispatchEvent(new Event('input'));
  out.push('searchhits='+$('.item').filter(function(e){return !e.hidden;}).length);
  s.value='';s.dispatchEvent(new Event('input'));
  var vis=$('.item').filter(function(e){return !e.hidden;});out.push('allback='+vis.length);
  var key=function(k){document.dispatchEvent(new KeyboardEvent('keydown',{key:k,bubbles:true}));};
  key('j');key('j');key('j');key('k');
  out.push('current='+vis.indexOf(document.querySelector('.item.cur')));
  var lb=document.getElementById('lb'),big=lb.querySelector('img');
  big.addEventListener('load',function(){
    out.push('fullwidth='+big.naturalWidth);
    key('Escape');out.push('closed='+(lb.classList.contains('open')?0:1));
    st.textContent+=' '+out.join(' ');
  },{once:true});
  key('Enter');
  out.push('lightbox='+(lb.classList.contains('open')?1:0));
  out.push('fullsrc='+(/^data:/.test(big.getAttribute('src')||'data:')?0:1));
});
"#;
