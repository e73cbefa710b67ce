//! Running eval suites: each case through the agent (or, for call checks, the model's first
//! turn only), a trace per case, a verdict per case from `glm-evals`' scorers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use glm_evals::case::{BuiltinScorer, Case, RunResult, Scorer, Verdict};
use glm_prompts::{Encoder, FunctionSpec, Message, Parsed, Role, ToolSpec};
use glm_tools::{DynamicTool, ToolError, ToolRegistry};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::trace::{Trace, TraceWriter};
use crate::agent::{Agent, Event, Settings};
use crate::builtins::{BuiltinOptions, builtin_registry};
use crate::engine::{Engine, Recorded, ReplayEngine};

/// The suites that ship with glm-agent, by name.
pub const BUILTIN_SUITES: &[(&str, &str)] = &[
    (
        "function_calling",
        include_str!("../../evals/suites/function_calling.jsonl"),
    ),
    (
        "tool_use",
        include_str!("../../evals/suites/tool_use.jsonl"),
    ),
];

/// The fixture site's pages, served by [`FixtureSite`].
const SITE: &[(&str, &str)] = &[
    ("/", include_str!("../../evals/sites/index.html")),
    ("/index.html", include_str!("../../evals/sites/index.html")),
    (
        "/cities.html",
        include_str!("../../evals/sites/cities.html"),
    ),
    (
        "/prices.html",
        include_str!("../../evals/sites/prices.html"),
    ),
    (
        "/history.html",
        include_str!("../../evals/sites/history.html"),
    ),
];

/// The tool-use suite's web site, served on 127.0.0.1 while a suite runs; `{site}` in a case's
/// task and reference outputs is its address.
pub struct FixtureSite {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FixtureSite {
    /// Starts serving.
    pub fn start() -> std::io::Result<FixtureSite> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        listener.set_nonblocking(true)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(&stream);
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match SITE.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => ("200 OK", *body),
                    None => ("404 Not Found", "<html><body>Not found</body></html>"),
                };
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(FixtureSite { base, stop })
    }

    /// `text` with `{site}` replaced by the address.
    pub fn fill(&self, text: &str) -> String {
        text.replace("{site}", &self.base)
    }
}

impl Drop for FixtureSite {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

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

/// How a suite runs: the tokenizer, the built-in tools' options, the loop's settings, where
/// traces go, how many cases at once, and who judges.
pub struct SuiteOptions<'a> {
    /// The model's tokenizer.
    pub encoder: &'a Encoder,
    /// Options of the built-in tools.
    pub builtins: &'a BuiltinOptions,
    /// The agent loop's settings.
    pub settings: &'a Settings,
    /// Where traces, `cases.jsonl` and `report.json` go.
    pub out: &'a Path,
    /// Cases run at once.
    pub jobs: usize,
    /// The judge: [`BuiltinScorer`] or one's own.
    pub scorer: &'a (dyn Scorer + Sync),
}

impl<'a> SuiteOptions<'a> {
    /// Options with the built-in scorer, one case at a time.
    pub fn new(
        encoder: &'a Encoder,
        builtins: &'a BuiltinOptions,
        settings: &'a Settings,
        out: &'a Path,
    ) -> Self {
        SuiteOptions {
            encoder,
            builtins,
            settings,
            out,
            jobs: 1,
            scorer: &BuiltinScorer,
        }
    }
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
pub fn result_of(events: &[Event]) -> RunResult {
    let mut result = RunResult::default();
    let mut first_model = true;
    for event in events {
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

/// Runs a case's Python check in a fresh notebook whose /mnt/data is the run's folder.
async fn python_check(
    case: &Case,
    answer: Option<&str>,
    work: &Path,
    builtins: &BuiltinOptions,
) -> Option<String> {
    let glm_evals::case::Check::Python { code } = &case.check else {
        return None;
    };
    let registry = match builtin_registry(builtins, &["python"]) {
        Ok(r) => r,
        Err(e) => return Some(format!("python unavailable: {e}")),
    };
    let literal = serde_json::to_string(answer.unwrap_or("")).unwrap_or_else(|_| "\"\"".into());
    let source = format!("answer = {literal}\n{code}");
    let ctx = glm_tools::ToolContext::new(work);
    Some(
        match registry
            .call_json("python", serde_json::json!({ "code": source }), &ctx)
            .await
        {
            Ok(output) => output.text(),
            Err(e) => e.to_string(),
        },
    )
}

fn report(case: &Case, events: &[Event], verdict: Verdict, took_ms: u64) -> CaseReport {
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

/// Runs one case, writing its trace to `out/<id>.jsonl`.
pub async fn run_case(
    case: &Case,
    engine: &EngineChoice<'_>,
    options: &SuiteOptions<'_>,
) -> Result<CaseReport, String> {
    let (encoder, builtins, settings, out) = (
        options.encoder,
        options.builtins,
        options.settings,
        options.out,
    );
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
    let history = case
        .messages
        .iter()
        .map(|t| {
            let role = match t.role.as_str() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(format!(
                        "case {}: a history turn's role is `{other}`; use user or assistant",
                        case.id
                    ));
                }
            };
            Ok(Message::new(role, t.content.clone()))
        })
        .collect::<Result<Vec<Message>, String>>()?;
    let work = out.join("work").join(&case.id);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let path = out.join(format!("{}.jsonl", case.id));
    let _ = std::fs::remove_file(&path);
    let mut writer =
        TraceWriter::create(out, &case.id).map_err(|e| format!("{}: {e}", path.display()))?;
    let agent = Agent::new(engine, tools, encoder.clone(), settings.clone(), &work);
    let cancel = CancellationToken::new();
    // Kept in memory for scoring as they are written.
    let mut events: Vec<Event> = Vec::new();
    let mut on_event = |e: &Event| {
        writer.record(e);
        if !matches!(e, Event::Delta { .. }) {
            events.push(e.clone());
        }
    };
    if case.check.first_turn_only() {
        // Calls of the first turn are recorded as `call` events for scoring, not run.
        let parsed = agent
            .first_turn(&history, &case.task, &cancel, &mut on_event)
            .await;
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
        agent
            .run_after(&history, &case.task, &cancel, &mut on_event)
            .await;
    }
    if let Some(e) = writer.error() {
        return Err(e.to_owned());
    }
    let mut result = result_of(&events);
    result.check_output = python_check(case, result.answer.as_deref(), &work, builtins).await;
    let verdict = options.scorer.score(case, &result);
    Ok(report(
        case,
        &events,
        verdict,
        started.elapsed().as_millis() as u64,
    ))
}

/// Runs every case, `jobs` at a time, and writes `cases.jsonl` (the suite) and `report.json`
/// into `out`.
pub async fn run_suite(
    cases: &[Case],
    engine: &EngineChoice<'_>,
    options: &SuiteOptions<'_>,
) -> Result<Vec<CaseReport>, String> {
    let (builtins, out) = (options.builtins, options.out);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let uses_site = cases
        .iter()
        .any(|c| c.task.contains("{site}") || c.reference.iter().any(|r| r.contains("{site}")));
    let site = if uses_site {
        Some(FixtureSite::start().map_err(|e| format!("starting the fixture site: {e}"))?)
    } else {
        None
    };
    let mut builtins = builtins.clone();
    let filled: Vec<Case>;
    let cases = match &site {
        Some(site) => {
            builtins.allow_hosts.push("127.0.0.1".into());
            filled = cases
                .iter()
                .map(|c| Case {
                    task: site.fill(&c.task),
                    reference: c.reference.iter().map(|r| site.fill(r)).collect(),
                    ..c.clone()
                })
                .collect();
            &filled[..]
        }
        None => cases,
    };
    let options = SuiteOptions {
        builtins: &builtins,
        ..*options
    };
    let options = &options;
    let lines: Vec<String> = cases
        .iter()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .collect();
    std::fs::write(out.join("cases.jsonl"), lines.join("\n") + "\n")
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let results: Vec<Result<CaseReport, String>> = futures::stream::iter(cases)
        .map(|case| run_case(case, engine, options))
        .buffered(options.jobs.max(1))
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

/// Scores the traces in `dir` again with today's scorers (the suite is `dir/cases.jsonl`;
/// Python checks run again over the files the runs left in `dir/work/<case>`).
pub async fn rescore(
    dir: &Path,
    builtins: &BuiltinOptions,
    scorer: &(dyn Scorer + Sync),
) -> Result<Vec<CaseReport>, String> {
    let suite = dir.join("cases.jsonl");
    let text = std::fs::read_to_string(&suite).map_err(|e| format!("{}: {e}", suite.display()))?;
    let cases = glm_evals::case::read_suite(&text)?;
    let mut reports = Vec::new();
    for case in &cases {
        let path: PathBuf = dir.join(format!("{}.jsonl", case.id));
        let trace = Trace::read(&path).map_err(|e| e.to_string())?;
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

/// Filler sentences for the needle-in-a-haystack suite (varied so the model cannot skip them).
const HAY: &[&str] = &[
    "The river bends twice before it reaches the old mill.",
    "Merchants in the square argued about the price of wool.",
    "A light rain fell on the terraces through most of the afternoon.",
    "The library kept its oldest maps in a cedar cabinet.",
    "Children raced paper boats along the gutter by the bakery.",
    "Engineers surveyed the northern slope for a new road.",
    "The choir rehearsed the same hymn until the lamps were lit.",
    "Fishing boats returned early because of the wind.",
];

/// Cases for the long-context suite: for each length (the prompt's size in tokens, as `encoder`
/// counts them, within a sentence) and depth (0 = start, 1 = end), a haystack with one needle
/// and a question about it.
pub fn needle_cases(encoder: &Encoder, lengths: &[usize], depths: &[f64]) -> Vec<Case> {
    let question =
        "What is the secret code of the day mentioned in the text above? Answer with the code.";
    let mut cases = Vec::new();
    for &length in lengths {
        // Sentences until the text is about `length` tokens.
        let mut sentences: Vec<&str> = Vec::new();
        let mut tokens = 0;
        let per: Vec<usize> = HAY
            .iter()
            .map(|s| {
                encoder
                    .encode_text(&format!("{s} "))
                    .map(|t| t.len())
                    .unwrap_or(12)
            })
            .collect();
        // The question, the needle and the chat template take the rest.
        let overhead = encoder
            .encode_text(&format!(
                "{question} The secret code of the day is 0000-00."
            ))
            .map(|t| t.len())
            .unwrap_or(40)
            + 8;
        while tokens + overhead < length {
            let i = sentences.len() % HAY.len();
            sentences.push(HAY[i]);
            tokens += per[i];
        }
        for &depth in depths {
            let code = format!(
                "{}-{}",
                1000 + length % 9000,
                (depth * 100.0).round() as u32 + 17
            );
            let needle = format!("The secret code of the day is {code}.");
            let at = ((sentences.len() as f64) * depth.clamp(0.0, 1.0)).round() as usize;
            let mut text: Vec<&str> = sentences.clone();
            text.insert(at.min(text.len()), &needle);
            cases.push(Case {
                id: format!("needle_{length}_{}", (depth * 100.0).round() as u32),
                category: format!("{length}"),
                messages: Vec::new(),
                task: format!("{}\n\n{question}", text.join(" ")),
                functions: Vec::new(),
                builtins: Vec::new(),
                check: glm_evals::case::Check::Contains { text: code.clone() },
                reference: vec![format!("The code is {code}.<|user|>")],
            });
        }
    }
    cases
}

/// The needle suite's results as a grid: a row per length, a column per depth.
pub fn needle_grid(reports: &[CaseReport], lengths: &[usize], depths: &[f64]) -> String {
    let mut out = format!("{:>10}", "tokens");
    for d in depths {
        out.push_str(&format!(" {:>6}", format!("{:.0}%", d * 100.0)));
    }
    out.push('\n');
    for &l in lengths {
        out.push_str(&format!("{l:>10}"));
        for d in depths {
            let id = format!("needle_{l}_{}", (d * 100.0).round() as u32);
            let cell = match reports.iter().find(|r| r.id == id) {
                Some(r) if r.pass => "pass",
                Some(_) => "FAIL",
                None => "-",
            };
            out.push_str(&format!(" {cell:>6}"));
        }
        out.push('\n');
    }
    out
}
