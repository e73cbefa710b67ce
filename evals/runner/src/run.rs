//! Running cases through the agent loop, a trace per case, a verdict per case.

use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use glm_agent::engine::{Engine, Recorded, ReplayEngine};
use glm_agent::trace::TraceWriter;
use glm_agent::{Agent, Event, Settings};
use glm_evals::case::{BuiltinScorer, Case, RunResult, Scorer};
use glm_prompts::{Encoder, FunctionSpec, Message, Role, ToolSpec};
use glm_tools::builtins::{BuiltinOptions, builtin_registry};
use glm_tools::{DynamicTool, Observation, ToolError, ToolOutput, ToolRegistry};
use tokio_util::sync::CancellationToken;

use crate::RunnerError;
use crate::report::{CaseReport, report, write_report};
use crate::site::FixtureSite;

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
    /// Tools from elsewhere (MCP servers) offered beside the built-ins of cases that run tools.
    pub sources: &'a [std::sync::Arc<dyn glm_tools::ToolSource>],
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
            sources: &[],
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

/// What a declared function answers when a case collects calls over several turns: the call
/// is recorded, nothing is run.
pub const RECORDED: &str = "The call was recorded.";

/// The function tools of a case: declared to the model, never run. A case that collects calls
/// over several turns gets [`RECORDED`] back for each; any other case an error.
fn declared_functions(case: &Case) -> Result<ToolRegistry, RunnerError> {
    let collects = case.check.call_limit().is_some();
    let mut registry = ToolRegistry::new();
    for f in &case.functions {
        let name = f["name"]
            .as_str()
            .ok_or_else(|| RunnerError::case(&case.id, "a function without a name"))?
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
            read_only: false,
            handler: Box::new(move |_, _| {
                let name = name.clone();
                Box::pin(async move {
                    if collects {
                        return Ok(ToolOutput {
                            observations: vec![Observation::text(RECORDED)],
                        });
                    }
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
                step,
                name,
                arguments,
            } => {
                if *step == 1 {
                    result.first_calls.push((name.clone(), arguments.clone()));
                }
                result.calls.push((name.clone(), arguments.clone()));
            }
            Event::Answer { text, .. } => result.answer = Some(text.clone()),
            _ => {}
        }
    }
    result
}

/// Runs a case's Python check in a fresh notebook whose /mnt/data is the run's folder.
pub(crate) async fn python_check(
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

/// The tools a case offers: its functions (declared, never run) or built-in tools.
fn case_tools(
    case: &Case,
    builtins: &BuiltinOptions,
    sources: &[std::sync::Arc<dyn glm_tools::ToolSource>],
) -> Result<ToolRegistry, RunnerError> {
    if case.builtins.is_empty() {
        declared_functions(case)
    } else if case.functions.is_empty() {
        let names: Vec<&str> = case.builtins.iter().map(String::as_str).collect();
        let mut registry = builtin_registry(builtins, &names)?;
        for source in sources {
            registry.add_source(source.clone());
        }
        Ok(registry)
    } else {
        Err(RunnerError::case(
            &case.id,
            "a case offers functions or built-in tools, not both",
        ))
    }
}

/// The earlier turns a case starts from.
fn case_history(case: &Case) -> Result<Vec<Message>, RunnerError> {
    case.messages
        .iter()
        .map(|t| {
            let role = match t.role.as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    return Err(RunnerError::case(
                        &case.id,
                        format!(
                            "a history turn's role is `{other}`; use system, user or assistant"
                        ),
                    ));
                }
            };
            Ok(Message::new(role, t.content.clone()))
        })
        .collect()
}

/// Runs one case, writing its trace to `out/<id>.jsonl`.
pub async fn run_case(
    case: &Case,
    engine: &EngineChoice<'_>,
    options: &SuiteOptions<'_>,
) -> Result<CaseReport, RunnerError> {
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
    if let Some(why) = glm_evals::case::unsafe_id(&case.id) {
        return Err(RunnerError::case(
            &case.id,
            format!("the case id {why}; ids name the case's trace and work folder"),
        ));
    }
    let tools = case_tools(case, builtins, options.sources)?;
    let history = case_history(case)?;
    let work = out.join("work").join(&case.id);
    glm_agent::trace::private_dir(&work).map_err(RunnerError::io(&work))?;
    let path = out.join(format!("{}.jsonl", case.id));
    let _ = std::fs::remove_file(&path);
    let mut writer = TraceWriter::create(out, &case.id).map_err(RunnerError::io(&path))?;
    let mut settings = settings.clone();
    if let Some(system) = &case.system {
        settings.system_prompt = Some(system.clone());
    }
    if let Some(limit) = case.check.call_limit() {
        settings.max_steps = limit;
    }
    let agent = Agent::new(engine, tools, encoder.clone(), settings, &work);
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
        // The first turn's calls are reported as `call` events for scoring, not run.
        let parsed = agent
            .first_turn(&history, &case.task, &cancel, &mut on_event)
            .await;
        if let Err(end) = parsed {
            on_event(&Event::Error {
                message: format!("{end:?}"),
            });
        }
    } else {
        agent
            .run_after(&history, &case.task, &cancel, &mut on_event)
            .await;
    }
    if let Some(e) = writer.error() {
        return Err(RunnerError::Trace {
            path,
            message: e.to_owned(),
        });
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
) -> Result<Vec<CaseReport>, RunnerError> {
    let (builtins, out) = (options.builtins, options.out);
    glm_agent::trace::private_dir(out).map_err(RunnerError::io(out))?;
    let uses_site = cases
        .iter()
        .any(|c| c.task.contains("{site}") || c.reference.iter().any(|r| r.contains("{site}")));
    let site = if uses_site {
        Some(FixtureSite::start().map_err(RunnerError::io("127.0.0.1 (the fixture site)"))?)
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
        .map_err(RunnerError::io(out.join("cases.jsonl")))?;
    let results: Vec<Result<CaseReport, RunnerError>> = futures::stream::iter(cases)
        .map(|case| run_case(case, engine, options))
        .buffered(options.jobs.max(1))
        .collect()
        .await;
    let reports: Vec<CaseReport> = results.into_iter().collect::<Result<_, _>>()?;
    write_report(out, &reports)?;
    Ok(reports)
}
