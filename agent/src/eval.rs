//! Running eval suites: each case through the agent (or, for call checks, the model's first
//! turn only), a trace per case, a verdict per case from `glm-evals`' scorers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use glm_evals::case::{BuiltinScorer, Case, RunResult, Scorer, Verdict};
use glm_prompts::{Encoder, FunctionSpec, Parsed, ToolSpec};
use glm_tools::{DynamicTool, ToolError, ToolRegistry};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::trace::{Trace, TraceWriter};
use crate::agent::{Agent, Event, Settings};
use crate::builtins::{BuiltinOptions, builtin_registry};
use crate::engine::{Engine, Recorded, ReplayEngine};

/// The suites that ship with glm-agent, by name.
pub const BUILTIN_SUITES: &[(&str, &str)] = &[(
    "function_calling",
    include_str!("../../evals/suites/function_calling.jsonl"),
)];

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

/// Where the model's turns come from.
pub enum EngineChoice<'a> {
    /// One engine for every case.
    Shared(&'a dyn Engine),
    /// Each case's reference outputs, replayed.
    Reference,
}

/// The function tools of a case: declared to the model, never run.
fn declared_functions(case: &Case) -> Result<ToolRegistry, String> {
    let mut registry = ToolRegistry::new();
    for f in &case.functions {
        let name = f["name"]
            .as_str()
            .ok_or_else(|| format!("case {}: a function without a name", case.id))?
            .to_owned();
        let description = f["description"].as_str().unwrap_or_default().to_owned();
        let parameters = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        let spec = ToolSpec::Function {
            function: FunctionSpec::new(name.clone(), description.clone(), parameters.clone()),
        };
        registry.register_dynamic(DynamicTool {
            spec,
            description,
            parameters,
            handler: Box::new(move |_, _| {
                let name = name.clone();
                Box::pin(async move {
                    Err(ToolError::Failed {
                        tool: name,
                        message: "this eval does not run the tools".into(),
                    })
                })
            }),
        });
    }
    Ok(registry)
}

/// What a trace says the run did, for scoring.
pub fn result_of(trace: &Trace) -> RunResult {
    let mut result = RunResult::default();
    let mut first_model = true;
    for event in &trace.events {
        match event {
            Event::Model { .. } if first_model => first_model = false,
            Event::Call {
                step: 1,
                name,
                arguments,
            } => result.first_calls.push((name.clone(), arguments.clone())),
            Event::Answer { text, .. } => result.answer = Some(text.clone()),
            _ => {}
        }
    }
    result
}

fn report(case: &Case, trace: &Trace, verdict: Verdict, took_ms: u64) -> CaseReport {
    let (mut steps, mut generated, mut prompt, mut cached) = (0, 0, 0, 0);
    for e in &trace.events {
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

/// Runs one case, writing its trace to `out/<id>.jsonl`.
pub async fn run_case(
    case: &Case,
    engine: &EngineChoice<'_>,
    encoder: &Encoder,
    builtins: &BuiltinOptions,
    settings: &Settings,
    out: &Path,
) -> Result<CaseReport, String> {
    let started = Instant::now();
    let reference;
    let engine: &dyn Engine = match engine {
        EngineChoice::Shared(e) => *e,
        EngineChoice::Reference => {
            reference = ReplayEngine::new(
                case.reference
                    .iter()
                    .map(|t| Recorded {
                        ids: vec![],
                        text: t.clone(),
                    })
                    .collect(),
            );
            &reference
        }
    };
    let tools = if case.builtins.is_empty() {
        declared_functions(case)?
    } else if case.functions.is_empty() {
        let names: Vec<&str> = case.builtins.iter().map(String::as_str).collect();
        builtin_registry(builtins, &names).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "case {}: a case offers functions or built-in tools, not both",
            case.id
        ));
    };
    let work = out.join("work").join(&case.id);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let path = out.join(format!("{}.jsonl", case.id));
    let _ = std::fs::remove_file(&path);
    let mut writer =
        TraceWriter::create(out, &case.id).map_err(|e| format!("{}: {e}", path.display()))?;
    let agent = Agent::new(engine, tools, encoder.clone(), settings.clone(), &work);
    let cancel = CancellationToken::new();
    let mut on_event = |e: &Event| writer.record(e);
    if case.check.first_turn_only() {
        // Calls of the first turn are recorded as `call` events for scoring, not run.
        let parsed = agent.first_turn(&case.task, &cancel, &mut on_event).await;
        match parsed {
            Ok(Parsed::Call(call)) => on_event(&Event::Call {
                step: 1,
                name: call.name.clone(),
                arguments: serde_json::to_value(&call.arguments).unwrap_or(Value::Null),
            }),
            Ok(Parsed::Malformed(bad)) => on_event(&Event::Malformed {
                step: 1,
                name: bad.name,
                reason: bad.reason,
            }),
            Ok(Parsed::Answer(text)) => on_event(&Event::Answer { step: 1, text }),
            Err(end) => on_event(&Event::Error {
                message: format!("{end:?}"),
            }),
        }
    } else {
        agent.run(&case.task, &cancel, &mut on_event).await;
    }
    if let Some(e) = writer.error() {
        return Err(e.to_owned());
    }
    let trace = Trace::read(&path).map_err(|e| e.to_string())?;
    let verdict = BuiltinScorer.score(case, &result_of(&trace));
    Ok(report(
        case,
        &trace,
        verdict,
        started.elapsed().as_millis() as u64,
    ))
}

/// Runs every case, `jobs` at a time, and writes `cases.jsonl` (the suite) and `report.json`
/// into `out`.
pub async fn run_suite(
    cases: &[Case],
    engine: &EngineChoice<'_>,
    encoder: &Encoder,
    builtins: &BuiltinOptions,
    settings: &Settings,
    out: &Path,
    jobs: usize,
) -> Result<Vec<CaseReport>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let lines: Vec<String> = cases
        .iter()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .collect();
    std::fs::write(out.join("cases.jsonl"), lines.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let results: Vec<Result<CaseReport, String>> = futures::stream::iter(cases)
        .map(|case| run_case(case, engine, encoder, builtins, settings, out))
        .buffered(jobs.max(1))
        .collect()
        .await;
    let reports: Vec<CaseReport> = results.into_iter().collect::<Result<_, _>>()?;
    write_report(out, &reports)?;
    Ok(reports)
}

fn write_report(out: &Path, reports: &[CaseReport]) -> Result<(), String> {
    let text = serde_json::to_string_pretty(reports).unwrap_or_default();
    std::fs::write(out.join("report.json"), text).map_err(|e| format!("{}: {e}", out.display()))
}

/// Scores the traces in `dir` again with today's scorers (the suite is `dir/cases.jsonl`).
pub fn rescore(dir: &Path) -> Result<Vec<CaseReport>, String> {
    let suite = dir.join("cases.jsonl");
    let text = std::fs::read_to_string(&suite).map_err(|e| format!("{}: {e}", suite.display()))?;
    let cases = glm_evals::case::read_suite(&text)?;
    let mut reports = Vec::new();
    for case in &cases {
        let path: PathBuf = dir.join(format!("{}.jsonl", case.id));
        let trace = Trace::read(&path).map_err(|e| e.to_string())?;
        let verdict = BuiltinScorer.score(case, &result_of(&trace));
        reports.push(report(case, &trace, verdict, 0));
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
