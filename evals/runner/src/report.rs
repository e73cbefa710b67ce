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
    /// Tokens generated.
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

pub(crate) fn write_report(out: &Path, reports: &[CaseReport]) -> Result<(), RunnerError> {
    let text = serde_json::to_string_pretty(reports).unwrap_or_default();
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
    let mut categories: Vec<&str> = reports.iter().map(|r| r.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    out.push('\n');
    for c in categories {
        let of: Vec<&CaseReport> = reports.iter().filter(|r| r.category == c).collect();
        let passed = of.iter().filter(|r| r.pass).count();
        out.push_str(&format!("{c:<12} {passed}/{} passed\n", of.len()));
    }
    let passed = reports.iter().filter(|r| r.pass).count();
    out.push_str(&format!(
        "total        {passed}/{} passed ({:.1}%)\n",
        reports.len(),
        100.0 * passed as f64 / reports.len().max(1) as f64
    ));
    out
}
