//! The README's sample table and JSON example are what the bundled sample
//! gives today: this runs the built binary on it as
//! `scripts/readme_examples.sh` does and compares the README's marked blocks.

#[path = "../examples/common/readme.rs"]
mod readme;

use std::path::Path;

#[test]
fn readme_examples_match_a_fresh_run_of_the_sample() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = readme::render(Path::new(env!("CARGO_BIN_EXE_lookalike")), root)
        .unwrap_or_else(|e| panic!("running the sample: {e}"));
    for (name, want) in &blocks {
        let have = readme::block(&text, name).unwrap_or_else(|e| panic!("{e}"));
        let same = have.lines().count() == want.lines().count()
            && have.lines().zip(want.lines()).all(|(a, b)| same_line(a, b));
        if !same {
            let diff: Vec<String> = have
                .lines()
                .zip(want.lines())
                .filter(|(a, b)| !same_line(a, b))
                .take(5)
                .map(|(a, b)| format!("  README: {a}\n  run:    {b}"))
                .collect();
            panic!(
                "README drift in block {name}: run scripts/readme_examples.sh\n{}\n({} lines in the README, {} from the run)",
                diff.join("\n"),
                have.lines().count(),
                want.lines().count()
            );
        }
    }
}

/// Two lines are the same if they differ at most in the last digits of
/// decimal fractions (|a − b| ≤ 1e-5): the CNN's sums are rounded in
/// another order on CPUs with other kernels (AVX-512 tiles, the `gemm`
/// crate's AVX2 or NEON ones), which moves a similarity's 7th digit, not
/// what the README teaches. Text and whole numbers must match exactly.
fn same_line(a: &str, b: &str) -> bool {
    let (ta, tb) = (tokens(a), tokens(b));
    ta.len() == tb.len()
        && ta.iter().zip(&tb).all(|(x, y)| match (x, y) {
            (Token::Fraction(p), Token::Fraction(q)) => (p - q).abs() <= 1e-5,
            _ => x == y,
        })
}

#[derive(Debug, PartialEq)]
enum Token {
    Text(char),
    Whole(String),
    Fraction(f64),
}

/// `line` as characters, with each run of digits (and one '.' between
/// digits) as one number.
fn tokens(line: &str) -> Vec<Token> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(Token::Text(chars[i]));
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let fraction = i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit();
        if fraction {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
        let number: String = chars[start..i].iter().collect();
        out.push(match fraction {
            true => Token::Fraction(number.parse().expect("digits and one point")),
            false => Token::Whole(number),
        });
    }
    out
}

#[test]
fn only_the_last_digits_of_fractions_may_differ() {
    assert!(same_line(
        r#"  "similarity": 0.9542404,"#,
        r#"  "similarity": 0.9542408,"#
    ));
    assert!(!same_line(
        r#"  "similarity": 0.9542404,"#,
        r#"  "similarity": 0.9543404,"#
    ));
    assert!(!same_line(
        "gen_03.jpg  31 matches",
        "gen_03.jpg  32 matches"
    ));
    assert!(!same_line("verdict: copy", "verdict: near"));
    assert!(same_line("10 of 16 (62.5 %)", "10 of 16 (62.5 %)"));
    assert!(!same_line("0.5", "0.5 extra"));
}

#[test]
fn timings_are_hidden_and_blocks_are_spliced_in_place() {
    assert_eq!(
        readme::hide_times(
            "indexed in 2.5 s (13.9 images/s), 3s, 0.4 ms, 12/s; gen_03.jpg 0.972  31"
        ),
        "indexed in … s (… images/s), …s, … ms, …/s; gen_03.jpg 0.972  31"
    );
    let md = "a\n<!-- BEGIN x (generated) -->\nold\n<!-- END x -->\nb\n";
    let out = readme::splice(md, &[("x", "new\nlines".to_string())]).unwrap();
    assert_eq!(
        out,
        "a\n<!-- BEGIN x (generated) -->\nnew\nlines\n<!-- END x -->\nb\n"
    );
    assert_eq!(readme::block(&out, "x").unwrap(), "new\nlines");
    assert!(readme::block(md, "y").is_err());
    let v = serde_json::json!({"z": 1.5, "a": [{"q": "a\\\"b/c", "n": null}], "e": [], "o": {}});
    let pretty = serde_json::to_string_pretty(&v).unwrap();
    assert_eq!(readme::reformat(&pretty).unwrap(), pretty);
}
