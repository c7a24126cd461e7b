//! Progress bars move while the work runs (issue 18, item 5): run under a
//! pseudo-terminal (util-linux `script`), since bars are drawn only on one,
//! and read the positions they drew.

mod common;

use std::process::Command;

/// The `N/TOTAL images` positions a bar drew in `screen`.
fn positions(screen: &str, total: usize) -> Vec<usize> {
    let tail = format!("/{total} images");
    screen
        .match_indices(&tail)
        .filter_map(|(at, _)| {
            let head = &screen[..at];
            let start = head
                .rfind(|c: char| !c.is_ascii_digit())
                .map_or(0, |i| i + 1);
            head[start..].parse().ok()
        })
        .collect()
}

/// Runs lookalike with `args` on a pseudo-terminal; what it drew there.
/// None when `script` is not installed.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_lookalike"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new(script)
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("COLUMNS", "200")
        .env_remove("LOOKALIKE_INDEX")
        .output()
        .expect("run script");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn index_and_check_bars_move_during_the_run() {
    let t = tempfile::tempdir().unwrap();
    let train = t.path().join("train");
    // Enough images that the run outlasts a few of the bar's redraws, all in
    // one segment commit (the old bar moved only at commits).
    common::make_corpus(&train, 40, 500);
    let idx = t.path().join("idx");
    let (train, idx) = (train.to_str().unwrap(), idx.to_str().unwrap());
    let Some(screen) = on_a_terminal(&["index", train, "--index", idx, "--threads", "1"]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "util-linux `script` is missing"
        );
        return;
    };
    let seen = positions(&screen, 40);
    assert!(
        seen.iter().any(|&p| p > 0 && p < 40),
        "the index bar never stood between 0 and 40: {seen:?}\n{screen}"
    );
    // Rates with one decimal ("13.9/s"), not indicatif's "13.9551/s".
    for (at, _) in screen.match_indices("/s") {
        let before = &screen.as_bytes()[..at];
        let digits = before
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let dot = before.len().checked_sub(digits + 1).map(|i| before[i]);
        assert!(
            digits <= 1 || dot != Some(b'.'),
            "a rate with {digits} decimals: {screen}"
        );
    }
    let screen = on_a_terminal(&["check", train, "--index", idx, "--threads", "1"]).unwrap();
    let seen = positions(&screen, 40);
    assert!(
        seen.iter().any(|&p| p > 0 && p < 40),
        "the check bar never stood between 0 and 40: {seen:?}\n{screen}"
    );
}
