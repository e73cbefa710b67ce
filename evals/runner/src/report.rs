//! What a suite run reports: a row per case, the table, `report.json`, and re-scoring stored
//! traces.

use std::path::{Path, PathBuf};

use glm_agent::Event;
use glm_agent::trace::Trace;
use glm_evals::case::{Case, Scorer, Verdict};
use glm_tools::builtins::BuiltinOptions;
use serde::Serialize;

use crate::RunnerError;
use crate::run::{python_check, result_of};

/// One case's outcome, as the report shows it.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct CaseReport {
    /// The case.
    pub id: String,
    /// Its category.
    pub category: String,
    /// The verdict.
    pub pass: bool,
    /// Why it failed.
    pub reason: String,
    /// Model turns.
    pub steps: usize,
    pub generated_tokens: usize,
    /// Prompt tokens over all turns.
    pub prompt_tokens: usize,
    /// Of those, served from the prefix cache (when the engine says).
    pub cached_tokens: usize,
    /// Wall-clock milliseconds (0 when re-scored).
    pub took_ms: u64,
}

pub(crate) fn report(case: &Case, events: &[Event], verdict: Verdict, took_ms: u64) -> CaseReport {
    let (mut steps, mut generated, mut prompt, mut cached) = (0, 0, 0, 0);
    for e in events {
        if let Event::Model {
            generated_tokens,
            prompt_tokens,
            cached_tokens,
            ..
        } = e
        {
            steps += 1;
            generated += generated_tokens;
            prompt += prompt_tokens;
            cached += cached_tokens.unwrap_or(0);
        }
    }
    CaseReport {
        id: case.id.clone(),
        category: case.category.clone(),
        pass: verdict.pass,
        reason: verdict.reason,
        steps,
        generated_tokens: generated,
        prompt_tokens: prompt,
        cached_tokens: cached,
        took_ms,
    }
}

/// Cases passed in one category.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
}

impl Tally {
    /// The share passed, 0 to 1.
    pub fn accuracy(&self) -> f64 {
        self.passed as f64 / self.total.max(1) as f64
    }
}

/// Every category's tally, in name order.
pub fn tallies(reports: &[CaseReport]) -> Vec<(String, Tally)> {
    let mut out: std::collections::BTreeMap<String, Tally> = std::collections::BTreeMap::new();
    for r in reports {
        let t = out.entry(r.category.clone()).or_insert(Tally {
            passed: 0,
            total: 0,
        });
        t.total += 1;
        t.passed += usize::from(r.pass);
    }
    out.into_iter().collect()
}

/// One line of the leaderboard-style summary: a name and its accuracy (0 to 1), `None` when
/// none of its categories ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryLine {
    /// The leaderboard's column.
    pub name: &'static str,
    /// Its accuracy.
    pub accuracy: Option<f64>,
}

/// The summary the Berkeley Function Calling Leaderboard shows, from the BFCL categories among
/// `reports` (none when there are none): non-live columns are unweighted means of their
/// categories, live ones weighted by case count, as the leaderboard computes them; means
/// are over the categories that ran.
pub fn bfcl_summary(reports: &[CaseReport]) -> Vec<SummaryLine> {
    // Categories under their current names (a suite may use v3's `simple`).
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    for (name, t) in self::tallies(reports) {
        let name = glm_evals::bfcl::category_name(&name).to_owned();
        match tallies.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => {
                sum.passed += t.passed;
                sum.total += t.total;
            }
            None => tallies.push((name, t)),
        }
    }
    let get = |c: &str| tallies.iter().find(|(n, _)| n == c).map(|(_, t)| *t);
    if !tallies
        .iter()
        .any(|(c, _)| glm_evals::bfcl::SINGLE_TURN.contains(&c.as_str()))
    {
        return Vec::new();
    }
    let unweighted = |parts: &[Option<f64>]| {
        let present: Vec<f64> = parts.iter().flatten().copied().collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    };
    let acc = |c: &str| get(c).map(|t| t.accuracy());
    let weighted = |cs: &[&str]| {
        let (passed, total) = cs
            .iter()
            .filter_map(|c| get(c))
            .fold((0, 0), |(p, n), t| (p + t.passed, n + t.total));
        (total > 0).then(|| passed as f64 / total as f64)
    };
    let simple = unweighted(&[
        acc("simple_python"),
        acc("simple_java"),
        acc("simple_javascript"),
    ]);
    let non_live = unweighted(&[
        simple,
        acc("multiple"),
        acc("parallel"),
        acc("parallel_multiple"),
    ]);
    let live_ast = [
        "live_simple",
        "live_multiple",
        "live_parallel",
        "live_parallel_multiple",
    ];
    let line = |name, accuracy| SummaryLine { name, accuracy };
    vec![
        line("non-live AST", non_live),
        line("  simple", simple),
        line("  multiple", acc("multiple")),
        line("  parallel", acc("parallel")),
        line("  parallel multiple", acc("parallel_multiple")),
        line("live AST", weighted(&live_ast)),
        line("  live simple", acc("live_simple")),
        line("  live multiple", acc("live_multiple")),
        line("  live parallel", acc("live_parallel")),
        line("  live parallel multiple", acc("live_parallel_multiple")),
        line(
            "irrelevance",
            unweighted(&[acc("irrelevance"), acc("live_irrelevance")]),
        ),
        line("relevance", acc("live_relevance")),
    ]
}

pub(crate) fn write_report(out: &Path, reports: &[CaseReport]) -> Result<(), RunnerError> {
    let categories: serde_json::Map<String, serde_json::Value> = tallies(reports)
        .into_iter()
        .map(|(c, t)| {
            let value = serde_json::json!({
                "passed": t.passed,
                "total": t.total,
                "accuracy": t.accuracy(),
            });
            (c, value)
        })
        .collect();
    let value = serde_json::json!({
        "cases": reports,
        "categories": categories,
        "bfcl": bfcl_summary(reports),
    });
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let path = out.join("report.json");
    std::fs::write(&path, text).map_err(RunnerError::io(path))
}

/// Scores the traces in `dir` again with today's scorers (the suite is `dir/cases.jsonl`;
/// Python checks run again over the files the runs left in `dir/work/<case>`).
pub async fn rescore(
    dir: &Path,
    builtins: &BuiltinOptions,
    scorer: &(dyn Scorer + Sync),
) -> Result<Vec<CaseReport>, RunnerError> {
    let suite = dir.join("cases.jsonl");
    let text = std::fs::read_to_string(&suite).map_err(RunnerError::io(&suite))?;
    let cases = glm_evals::case::read_suite(&text).map_err(RunnerError::Suite)?;
    let mut reports = Vec::new();
    for case in &cases {
        let path: PathBuf = dir.join(format!("{}.jsonl", case.id));
        let trace = Trace::read(&path).map_err(|e| RunnerError::Trace {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut result = result_of(&trace.events);
        let work = dir.join("work").join(&case.id);
        result.check_output = python_check(case, result.answer.as_deref(), &work, builtins).await;
        let verdict = scorer.score(case, &result);
        reports.push(report(case, &trace.events, verdict, 0));
    }
    write_report(dir, &reports)?;
    Ok(reports)
}

/// The report as a table plus a summary per category.
pub fn table(reports: &[CaseReport]) -> String {
    let mut out = format!(
        "{:<28} {:<12} {:<5} {:>5} {:>7} {:>7} {:>8}\n",
        "case", "category", "pass", "steps", "tokens", "cached", "time"
    );
    for r in reports {
        let cached = if r.prompt_tokens > 0 {
            format!(
                "{:.0}%",
                100.0 * r.cached_tokens as f64 / r.prompt_tokens as f64
            )
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<28} {:<12} {:<5} {:>5} {:>7} {:>7} {:>7.1}s{}\n",
            r.id,
            r.category,
            if r.pass { "yes" } else { "no" },
            r.steps,
            r.generated_tokens,
            cached,
            r.took_ms as f64 / 1000.0,
            if r.pass {
                String::new()
            } else {
                format!("  {}", r.reason)
            }
        ));
    }
    out.push('\n');
    for (c, t) in tallies(reports) {
        out.push_str(&format!("{c:<12} {}/{} passed\n", t.passed, t.total));
    }
    let passed = reports.iter().filter(|r| r.pass).count();
    out.push_str(&format!(
        "total        {passed}/{} passed ({:.1}%)\n",
        reports.len(),
        100.0 * passed as f64 / reports.len().max(1) as f64
    ));
    let summary = bfcl_summary(reports);
    if !summary.is_empty() {
        out.push_str("\nas the Berkeley Function Calling Leaderboard sums it up:\n");
        for l in summary {
            let shown = l
                .accuracy
                .map_or_else(|| "-".to_owned(), |a| format!("{:.2}%", 100.0 * a));
            out.push_str(&format!("{:<26} {shown:>8}\n", l.name));
        }
    }
    out
}
