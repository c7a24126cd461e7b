//! Opens an HTML report in headless Chromium and reads back the self-test
//! line its inline script writes (`images=… decoded=… rows=… textrows=…`),
//! plus any console message (errors, blocked resources).
//!
//! Chromium missing: the test is skipped with a notice, unless
//! LOOKALIKE_REQUIRE_BROWSER=1 (set by .ci/run), which makes it fail.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
];

/// The browser binary: $LOOKALIKE_CHROMIUM, else the first of the usual names on PATH.
pub fn find() -> Option<String> {
    if let Ok(p) = std::env::var("LOOKALIKE_CHROMIUM") {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return Some(dir.join(name).display().to_string());
            }
        }
    }
    None
}

/// `Some(browser)`, or `None` after printing why the test is skipped; panics
/// when the browser is required.
pub fn require() -> Option<String> {
    let found = find();
    if found.is_none() {
        if std::env::var("LOOKALIKE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("LOOKALIKE_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium, or set LOOKALIKE_CHROMIUM)");
        }
        eprintln!("NOTICE: Chromium not found; skipping the browser check of the HTML report (apt-get install chromium)");
    }
    found
}

pub struct Loaded {
    pub selftest: HashMap<String, usize>,
    /// Console lines Chromium logged for the page (should be none).
    pub console: Vec<String>,
}

/// Loads a copy of `html` (beside it, so relative links still resolve) with
/// `script` appended to its body: a test's interactions, which add their own
/// `key=number` pairs to the self-test line.
#[allow(dead_code)] // used by some of the test crates that include this file
pub fn load_with(browser: &str, html: &Path, script: &str) -> Loaded {
    let text = std::fs::read_to_string(html).unwrap();
    let at = text.rfind("</body>").expect("no </body> in the report");
    let copy = html.with_extension("test.html");
    let page = format!("{}<script>{script}</script>{}", &text[..at], &text[at..]);
    std::fs::write(&copy, page).unwrap();
    load(browser, &copy)
}

/// Loads `html` headless, lets its scripts run, and returns the self-test counts.
pub fn load(browser: &str, html: &Path) -> Loaded {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let o = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {err}");
    let console = err
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    let start = dom
        .find("<pre id=\"selftest\">")
        .unwrap_or_else(|| panic!("no selftest element in the DOM:\n{dom:.2000}"));
    let line = &dom[start + 19..];
    let line = &line[..line.find("</pre>").unwrap()];
    assert!(
        !line.is_empty(),
        "the page's script did not run (empty self-test); stderr:\n{err}"
    );
    let selftest = line
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    Loaded { selftest, console }
}
