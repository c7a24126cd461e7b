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
        if have != want {
            let diff: Vec<String> = have
                .lines()
                .zip(want.lines())
                .filter(|(a, b)| a != b)
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
