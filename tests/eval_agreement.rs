//! `lookalike eval` computes the same numbers as the evaluation corpus's
//! `score.py`. Fixture: a check run on the sample corpus (tests/data/eval/run.csv)
//! scored against a deliberately scrambled ground truth (so the metrics are not
//! all 1.0); score_py_expected.json is what score.py printed for that pair
//! (`score.py --gt scrambled_truth.csv --results run.csv --json ...`).

use lookalike::pipeline::eval::{parse_truth, predictions_from_csv, score};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/eval");

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().unwrap_or_else(|| panic!("{what}: missing"));
    assert!((a - b).abs() < 1e-12, "{what}: ours {a}, score.py {b}");
}

#[test]
fn metrics_equal_score_py() {
    let gt = parse_truth(&std::fs::read_to_string(format!("{DIR}/scrambled_truth.csv")).unwrap())
        .unwrap();
    let by_q =
        predictions_from_csv(&std::fs::read_to_string(format!("{DIR}/run.csv")).unwrap()).unwrap();
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/score_py_expected.json")).unwrap(),
    )
    .unwrap();
    let (m, r_fa, per_t) = score(&by_q, &gt);
    let o = &want["overall"];
    close(m.recall_at_1, &o["recall_at_1"], "recall@1");
    close(m.recall_at_10, &o["recall_at_10"], "recall@10");
    close(m.uap, &o["uap"], "uAP");
    close(m.recall_at_p90, &o["recall_at_p90"], "R@P90");
    close(
        m.best_threshold.unwrap(),
        &o["best_threshold"],
        "best threshold",
    );
    close(m.best_f1, &o["best_f1"], "best F1");
    close(m.false_alarm, &o["false_alarm_at_best"], "false alarms");
    close(r_fa, &o["recall_at_fa1"], "R@FA<=1%");
    assert!(
        m.uap < 0.99 && m.recall_at_1 < 0.99,
        "fixture too easy to test anything"
    );
    for (t, got) in &per_t {
        let w = &want["per_transform"][t];
        close(got.uap, &w["uap"], &format!("{t} uAP"));
        close(got.recall_at_1, &w["recall_at_1"], &format!("{t} R@1"));
        close(
            got.false_alarm,
            &w["false_alarm_at_global_best"],
            &format!("{t} FA"),
        );
    }
}

#[test]
fn truth_parser_handles_quotes_and_negatives() {
    let gt = parse_truth("query,expected,transform,params\nq1.jpg,db/a.jpg,crop,\"{\"\"x\"\":1,\"\"y\"\":2}\"\nq2.jpg,,resize,{}\n").unwrap();
    assert_eq!(gt["q1.jpg"].expected, "a.jpg");
    assert_eq!(gt["q1.jpg"].transform, "crop");
    assert_eq!(gt["q2.jpg"].expected, "");
    assert!(parse_truth("a,b\n").is_err());
}
