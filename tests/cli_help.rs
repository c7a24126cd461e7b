//! The command line explains itself: examples in every --help, shell
//! completions and a man page generated from the same definitions, and
//! options that mean the same on every command.

mod common;

use common::*;

const COMMANDS: &[&str] = &[
    "index",
    "query",
    "check",
    "hash",
    "info",
    "merge",
    "dedup",
    "eval",
    "completions",
    "man",
];

#[test]
fn every_subcommand_help_ends_with_an_example() {
    for c in COMMANDS {
        let o = run(&[c, "--help"]);
        assert!(o.status.success(), "{c}");
        let text = stdout(&o);
        assert!(text.contains("Example:\n  lookalike "), "{c}: {text}");
    }
    let text = stdout(&run(&["index", "--help"]));
    assert!(
        text.contains("keypoints") && text.contains("embedding"),
        "{text}"
    );
    let text = stdout(&run(&["check", "--help"]));
    for opt in [
        "--min-score",
        "--max-replication-rate",
        "--json-lines",
        "--allow-empty",
        "Exit codes",
    ] {
        assert!(text.contains(opt), "{opt}: {text}");
    }
    for c in ["query", "eval", "check", "index"] {
        assert!(stdout(&run(&[c, "--help"])).contains("--device"), "{c}");
    }
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let o = run(&["completions", "bash"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("lookalike") && text.contains("--max-replication-rate"),
        "{text}"
    );
    for sh in ["zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", sh]);
        assert!(o.status.success() && !o.stdout.is_empty(), "{sh}");
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
    let o = run(&["man"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.starts_with(".ie") || text.contains(".TH"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("lookalike"));
}

#[test]
fn hash_takes_exact_and_fast_like_the_other_commands() {
    let t = tempfile::tempdir().unwrap();
    let imgs = make_corpus(t.path(), 1, 0);
    let p = imgs[0].to_str().unwrap();
    let exact = stdout(&run(&["hash", p]));
    assert_eq!(stdout(&run(&["hash", p, "--exact"])), exact);
    // The later of --exact / --fast wins, so a script's --exact can be switched off.
    let fast = stdout(&run(&["hash", p, "--fast"]));
    assert_eq!(stdout(&run(&["hash", p, "--exact", "--fast"])), fast);
    assert!(run(&["hash", p, "--thumb-side", "128"]).status.success());
    assert_eq!(
        run(&["hash", p, "--exact", "--thumb-side", "128"])
            .status
            .code(),
        Some(2)
    );
}
