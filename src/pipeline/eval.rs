//! `lookalike eval`: score a check run against ground truth, with the same
//! definitions as the evaluation corpus's `score.py` (DISC21 micro-AP with
//! threshold-grouped ties, pessimistic tie-breaking for recall@k, recall at
//! ≤ 1 % false alarms on negative queries). Users run it to calibrate
//! thresholds on their own data.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::search::result::CheckReport;

/// One ground-truth row: `expected` empty = negative query (nothing should match).
#[derive(Clone, Debug)]
pub struct Truth {
    /// Basename of the training image it should match; empty for a negative.
    pub expected: String,
    /// Edit applied to make the query (groups the per-transform table).
    pub transform: String,
}

fn base(s: &str) -> String {
    s.trim()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .to_string()
}

/// Parses `query,expected,transform,...` (header required; quoted fields allowed).
pub fn parse_truth(text: &str) -> Result<HashMap<String, Truth>, String> {
    let mut lines = text.lines();
    let header = split_csv(lines.next().ok_or("empty ground-truth file")?);
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let qi = col("query").ok_or("ground truth has no 'query' column")?;
    let ei = col("expected").ok_or("ground truth has no 'expected' column")?;
    let ti = col("transform");
    let mut out = HashMap::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_csv(line);
        let get = |i: usize| f.get(i).cloned().unwrap_or_default();
        if f.len() <= qi.max(ei) {
            return Err(format!("ground truth line {}: too few columns", n + 2));
        }
        let expected = get(ei);
        out.insert(
            base(&get(qi)),
            Truth {
                expected: if expected.trim().is_empty() {
                    String::new()
                } else {
                    base(&expected)
                },
                transform: ti.map(get).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Ranking metrics of one set of queries (all, or one transform).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Metrics {
    /// Queries scored.
    pub queries: usize,
    /// Queries with an expected match.
    pub positives: usize,
    /// Queries that should match nothing.
    pub negatives: usize,
    /// Share of positives whose expected image ranks first (ties count against).
    pub recall_at_1: f64,
    /// Share of positives whose expected image is in the top 10.
    pub recall_at_10: f64,
    /// DISC21 micro average precision over all (query, candidate) pairs.
    pub uap: f64,
    /// Highest recall at which precision is still ≥ 90 %.
    pub recall_at_p90: f64,
    /// Score threshold with the best F1 (None when nothing scored).
    pub best_threshold: Option<f64>,
    /// F1 at `best_threshold`.
    pub best_f1: f64,
    /// Share of negative queries with a candidate scoring ≥ the threshold.
    pub false_alarm: f64,
}

/// Result of `lookalike eval`: how a check run scores against ground truth.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Metrics over every query in the ground truth.
    pub overall: Metrics,
    /// Positive queries found top-1 above the threshold that lets ≤ 1 % of negatives through.
    pub recall_at_fa1: f64,
    /// At the tool's own verdict (any match = a hit): precision over flagged
    /// queries, recall over positives, false-alarm rate over negatives.
    pub verdict_precision: f64,
    /// Share of positive queries flagged as a match with the expected image first.
    pub verdict_recall: f64,
    /// Share of negative queries flagged as a match.
    pub verdict_false_alarm: f64,
    /// Metrics per transform name, false alarms at the overall best threshold.
    pub per_transform: BTreeMap<String, Metrics>,
    /// Checked images that the ground truth does not name.
    pub unknown_queries: usize,
}

/// Candidates per query (by basename): (score, candidate), best score per pair.
pub type ByQuery = HashMap<String, Vec<(f64, String)>>;

/// Predictions from `query,candidate,score` CSV text (the `check --csv` format).
pub fn predictions_from_csv(text: &str) -> Result<ByQuery, String> {
    let mut lines = text.lines();
    let header = split_csv(lines.next().ok_or("empty CSV")?);
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h.trim() == n)
            .ok_or(format!("no '{n}' column"))
    };
    let (qi, ci, si) = (col("query")?, col("candidate")?, col("score")?);
    let mut best: HashMap<(String, String), f64> = HashMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv(line);
        let s: f64 = f
            .get(si)
            .and_then(|x| x.trim().parse().ok())
            .ok_or(format!("bad score in: {line}"))?;
        let e = best
            .entry((base(&f[qi]), base(&f[ci])))
            .or_insert(f64::NEG_INFINITY);
        *e = e.max(s);
    }
    let mut by_q: ByQuery = HashMap::new();
    for ((q, c), s) in best {
        by_q.entry(q).or_default().push((s, c));
    }
    Ok(by_q)
}

fn predictions(r: &CheckReport) -> ByQuery {
    let mut by_q: ByQuery = HashMap::new();
    for q in &r.results {
        let mut best: HashMap<String, f64> = HashMap::new();
        for m in &q.matches {
            let e = best.entry(base(&m.candidate)).or_insert(f64::NEG_INFINITY);
            *e = e.max(m.score);
        }
        by_q.insert(
            base(&q.query),
            best.into_iter().map(|(c, s)| (s, c)).collect(),
        );
    }
    by_q
}

fn metrics(gt: &HashMap<String, Truth>, by_q: &ByQuery, qs: &[&String]) -> Metrics {
    let pos: Vec<&&String> = qs.iter().filter(|q| !gt[**q].expected.is_empty()).collect();
    let neg = qs.len() - pos.len();
    let (mut r1, mut r10) = (0, 0);
    for q in &pos {
        let exp = &gt[**q].expected;
        let cands = by_q.get(**q).map(|v| v.as_slice()).unwrap_or(&[]);
        let Some(s_exp) = cands
            .iter()
            .filter(|(_, c)| c == exp)
            .map(|(s, _)| *s)
            .reduce(f64::max)
        else {
            continue;
        };
        let better = cands
            .iter()
            .filter(|(s, c)| c != exp && *s >= s_exp)
            .count();
        r1 += (better < 1) as usize;
        r10 += (better < 10) as usize;
    }
    let mut pooled: Vec<(f64, bool)> = vec![];
    for q in qs {
        let exp = &gt[*q].expected;
        for (s, c) in by_q.get(*q).map(|v| v.as_slice()).unwrap_or(&[]) {
            pooled.push((*s, !exp.is_empty() && c == exp));
        }
    }
    pooled.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_gt = pos.len();
    let (mut tp, mut fp, mut ap, mut prev_r, mut r_p90) = (0usize, 0usize, 0.0, 0.0, 0.0f64);
    let (mut best_f1, mut best_thr) = (0.0, None);
    let mut i = 0;
    while i < pooled.len() && n_gt > 0 {
        let s = pooled[i].0;
        while i < pooled.len() && pooled[i].0 == s {
            if pooled[i].1 {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        let p = tp as f64 / (tp + fp) as f64;
        let r = tp as f64 / n_gt as f64;
        ap += p * (r - prev_r);
        prev_r = r;
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        if f1 > best_f1 {
            best_f1 = f1;
            best_thr = Some(s);
        }
        if p >= 0.9 {
            r_p90 = r_p90.max(r);
        }
    }
    let div = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    Metrics {
        queries: qs.len(),
        positives: pos.len(),
        negatives: neg,
        recall_at_1: div(r1, pos.len()),
        recall_at_10: div(r10, pos.len()),
        uap: if n_gt == 0 { f64::NAN } else { ap },
        recall_at_p90: r_p90,
        best_threshold: best_thr,
        best_f1,
        false_alarm: f64::NAN,
    }
}

fn false_alarm(
    gt: &HashMap<String, Truth>,
    by_q: &ByQuery,
    qs: &[&String],
    thr: Option<f64>,
) -> f64 {
    let neg: Vec<&&String> = qs.iter().filter(|q| gt[**q].expected.is_empty()).collect();
    let Some(thr) = thr else { return f64::NAN };
    if neg.is_empty() {
        return f64::NAN;
    }
    let hit = neg
        .iter()
        .filter(|q| {
            by_q.get(***q)
                .is_some_and(|v| v.iter().any(|(s, _)| *s >= thr))
        })
        .count();
    hit as f64 / neg.len() as f64
}

fn recall_at_fa(gt: &HashMap<String, Truth>, by_q: &ByQuery, fa: f64) -> f64 {
    let neg: Vec<&String> = gt.keys().filter(|q| gt[*q].expected.is_empty()).collect();
    let pos: Vec<&String> = gt.keys().filter(|q| !gt[*q].expected.is_empty()).collect();
    if neg.is_empty() || pos.is_empty() {
        return f64::NAN;
    }
    let mut negmax: Vec<f64> = neg
        .iter()
        .filter_map(|q| {
            by_q.get(*q)
                .filter(|v| !v.is_empty())
                .map(|v| v.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max))
        })
        .collect();
    negmax.sort_by(|a, b| b.total_cmp(a));
    let k = (fa * neg.len() as f64) as usize;
    let thr = negmax.get(k).copied().unwrap_or(f64::NEG_INFINITY);
    let ok = pos
        .iter()
        .filter(|q| {
            let Some(c) = by_q.get(**q).filter(|v| !v.is_empty()) else {
                return false;
            };
            let top = c.iter().map(|x| x.0).fold(f64::NEG_INFINITY, f64::max);
            let tops: Vec<&String> = c.iter().filter(|x| x.0 == top).map(|x| &x.1).collect();
            tops.len() == 1 && *tops[0] == gt[**q].expected && top > thr
        })
        .count();
    ok as f64 / pos.len() as f64
}

/// Ranking metrics of predictions alone (what `score.py` computes).
pub fn score(
    by_q: &ByQuery,
    gt: &HashMap<String, Truth>,
) -> (Metrics, f64, BTreeMap<String, Metrics>) {
    let mut all: Vec<&String> = gt.keys().collect();
    all.sort();
    let mut overall = metrics(gt, by_q, &all);
    overall.false_alarm = false_alarm(gt, by_q, &all, overall.best_threshold);
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for q in &all {
        groups.entry(gt[*q].transform.clone()).or_default().push(q);
    }
    let per_transform = groups
        .into_iter()
        .map(|(t, qs)| {
            let mut m = metrics(gt, by_q, &qs);
            m.false_alarm = false_alarm(gt, by_q, &qs, overall.best_threshold);
            (t, m)
        })
        .collect();
    (overall, recall_at_fa(gt, by_q, 0.01), per_transform)
}

/// Scores a check report against ground truth: ranking metrics overall and
/// per transform, plus the verdicts' precision, recall and false alarms.
pub fn evaluate(r: &CheckReport, gt: &HashMap<String, Truth>) -> EvalReport {
    let by_q = predictions(r);
    let unknown_queries = by_q.keys().filter(|q| !gt.contains_key(*q)).count();
    let (overall, recall_at_fa1, per_transform) = score(&by_q, gt);
    // The tool's own decision: a query is flagged when its verdict is a match,
    // and counts as correct when its best match is the expected image.
    let (mut flagged, mut correct, mut neg_flagged) = (0, 0, 0);
    for q in &r.results {
        let Some(t) = gt.get(&base(&q.query)) else {
            continue;
        };
        if !q.verdict.is_match() {
            continue;
        }
        flagged += 1;
        if t.expected.is_empty() {
            neg_flagged += 1;
        } else if q
            .matches
            .first()
            .is_some_and(|m| base(&m.candidate) == t.expected)
        {
            correct += 1;
        }
    }
    let npos = gt.values().filter(|t| !t.expected.is_empty()).count();
    let nneg = gt.len() - npos;
    EvalReport {
        overall,
        recall_at_fa1,
        verdict_precision: if flagged == 0 {
            f64::NAN
        } else {
            correct as f64 / flagged as f64
        },
        verdict_recall: if npos == 0 {
            f64::NAN
        } else {
            correct as f64 / npos as f64
        },
        verdict_false_alarm: if nneg == 0 {
            f64::NAN
        } else {
            neg_flagged as f64 / nneg as f64
        },
        per_transform,
        unknown_queries,
    }
}
