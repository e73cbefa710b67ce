//! Re-running a recorded run: the model's outputs come from the trace, the loop, renderer,
//! parser and (optionally) the tools are today's, and every rebuilt prompt is compared with the
//! recorded one. The regression test for changes to any of them.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use futures::stream;
use glm_prompts::{Encoder, ToolSpec};
use glm_tools::{
    BoxFuture, Observation, SourceTool, ToolError, ToolOutput, ToolRegistry, ToolSource,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::engine::{
    Cause, Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage,
};
use crate::trace::Trace;
use crate::{Agent, Event, EventSink, Outcome, Session, Settings, prefix_hash};

/// Where observations come from in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    /// The recorded observations are fed back (no tool runs).
    Recorded,
    /// The tools run again and their observations are compared with the recorded ones.
    Live,
}

/// One difference between the recording and the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// The model step it concerns (1-based).
    pub step: usize,
    /// What differed.
    pub what: String,
    /// A short view of both sides.
    pub diff: String,
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// Model steps recorded.
    pub recorded_steps: usize,
    /// Model steps the replay took.
    pub replayed_steps: usize,
    /// Differences, in step order; empty when the replay matched.
    pub divergences: Vec<Divergence>,
    /// How the replayed run ended.
    pub outcome: Outcome,
}

/// One recorded model step. Every prompt extends the one before it by the ids generated and a
/// delta, so each is a prefix of one shared sequence: memory stays linear in the trace's size.
pub(crate) struct RecordedStep {
    /// Where the prompt starts in the sequence: 0, or where a cut rendered it anew.
    pub(crate) prompt_start: usize,
    pub(crate) prompt_len: usize,
    pub(crate) hash: String,
    pub(crate) ids: std::ops::Range<usize>,
    text: String,
}

/// Why a trace cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trace has no start event (task, tools and settings).
    #[error("the trace has no start event")]
    NoStart,
    /// A recorded part of the start event does not read as what it should be.
    #[error("the trace's {what}: {source}")]
    Start {
        /// Which part: tool declarations or settings.
        what: &'static str,
        /// What was wrong with it.
        source: serde_json::Error,
    },
}

type Divergences = Arc<Mutex<Vec<Divergence>>>;

fn push(divergences: &Divergences, d: Divergence) {
    if let Ok(mut list) = divergences.lock() {
        list.push(d);
    }
}

/// Text around the first difference of two id sequences, decoded.
fn id_diff(encoder: &Encoder, recorded: &[u32], rebuilt: &[u32]) -> (usize, String) {
    let at = recorded
        .iter()
        .zip(rebuilt)
        .take_while(|(a, b)| a == b)
        .count();
    let window = |ids: &[u32]| {
        let from = at.saturating_sub(24);
        let to = (at + 24).min(ids.len());
        let before = encoder
            .decode(&ids[from..at.min(ids.len())])
            .unwrap_or_default();
        let after = encoder
            .decode(&ids[at.min(ids.len())..to])
            .unwrap_or_default();
        format!("{before:?} | {after:?}")
    };
    (
        at,
        format!(
            "at token {at}:\n  recorded: {}\n  rebuilt:  {}",
            window(recorded),
            window(rebuilt)
        ),
    )
}

/// The recorded model outputs, checking each prompt it is given.
struct CheckingEngine {
    /// Every recorded prompt delta and generated id, in order.
    sequence: Vec<u32>,
    steps: Vec<RecordedStep>,
    /// Model turns asked for so far (shared with the recorded tools).
    next: Arc<Mutex<usize>>,
    divergences: Divergences,
    encoder: Encoder,
}

impl Engine for CheckingEngine {
    fn describe(&self) -> String {
        format!("replay check ({} recorded steps)", self.steps.len())
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        let index = match self.next.lock() {
            Ok(mut n) => {
                *n += 1;
                *n - 1
            }
            Err(_) => 0,
        };
        let Some(step) = self.steps.get(index) else {
            push(
                &self.divergences,
                Divergence {
                    step: index + 1,
                    what: "the replay asked the model for more turns than were recorded".into(),
                    diff: format!("recorded {} model turns", self.steps.len()),
                },
            );
            return Box::pin(stream::iter([Err(EngineError::new(
                Cause::Invalid,
                "the run went past what was recorded",
            ))]));
        };
        let prompt = &self.sequence[step.prompt_start..step.prompt_len];
        let ids = &self.sequence[step.ids.clone()];
        if request.prompt != prompt || prefix_hash(&request.prompt) != step.hash {
            let (_, diff) = id_diff(&self.encoder, prompt, &request.prompt);
            push(
                &self.divergences,
                Divergence {
                    step: index + 1,
                    what: format!(
                        "the prompt differs (recorded {} tokens, rebuilt {})",
                        prompt.len(),
                        request.prompt.len()
                    ),
                    diff,
                },
            );
        }
        let reason = match ids.last() {
            Some(id) if request.stop_ids.contains(id) => FinishReason::Stop,
            _ => FinishReason::Length,
        };
        let usage = Usage {
            prompt_tokens: request.prompt.len(),
            generated_tokens: ids.len(),
            ..Usage::default()
        };
        Box::pin(stream::iter([
            Ok(EngineEvent::Delta {
                ids: ids.to_vec(),
                text: step.text.clone(),
            }),
            Ok(EngineEvent::Finished { reason, usage }),
        ]))
    }
}

/// A recorded tool call and what came back.
#[derive(Debug, Clone)]
struct CallRecord {
    step: usize,
    name: String,
    observations: Vec<Observation>,
}

fn recorded_calls(events: &[Event]) -> Vec<CallRecord> {
    let mut calls: Vec<CallRecord> = Vec::new();
    let mut open = false;
    for event in events {
        match event {
            Event::Call { step, name, .. } => {
                calls.push(CallRecord {
                    step: *step,
                    name: name.clone(),
                    observations: Vec::new(),
                });
                open = true;
            }
            Event::Observation { metadata, text, .. } if open => {
                if let Some(last) = calls.last_mut() {
                    last.observations.push(Observation {
                        metadata: metadata.clone(),
                        text: text.clone(),
                        files: Vec::new(),
                    });
                }
            }
            Event::Model { .. } | Event::Malformed { .. } => open = false,
            _ => {}
        }
    }
    calls
}

/// Tools that answer with the recorded observations, in the recorded order, and whose list
/// changes where the recorded one did (an MCP server's), so the rebuilt prompts match.
struct RecordedTools {
    /// The tools offered now.
    current: RwLock<Vec<ToolSpec>>,
    /// Later lists, each with the model turns taken before it was offered.
    changes: Mutex<VecDeque<(usize, Vec<ToolSpec>)>>,
    /// Model turns the replay has taken (the engine counts them).
    steps: Arc<Mutex<usize>>,
    calls: Mutex<VecDeque<CallRecord>>,
    divergences: Divergences,
}

impl ToolSource for RecordedTools {
    fn tools(&self) -> Vec<SourceTool> {
        let current = self.current.read().map(|c| c.clone()).unwrap_or_default();
        current.into_iter().map(source_tool).collect()
    }

    fn call<'a>(
        &'a self,
        name: &'a str,
        _args: serde_json::Value,
        _ctx: &'a glm_tools::ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        let next = self.calls.lock().ok().and_then(|mut q| q.pop_front());
        let result = match next {
            Some(record) => {
                if record.name != name {
                    push(
                        &self.divergences,
                        Divergence {
                            step: record.step,
                            what: "a different tool was called".into(),
                            diff: format!("recorded `{}`, replayed `{name}`", record.name),
                        },
                    );
                }
                Ok(ToolOutput {
                    observations: record.observations,
                })
            }
            None => Err(ToolError::Failed {
                tool: name.to_owned(),
                message: "no recorded observation is left for this call".into(),
            }),
        };
        Box::pin(std::future::ready(result))
    }

    fn refresh(&self) -> BoxFuture<'_, bool> {
        let taken = self.steps.lock().map(|n| *n).unwrap_or_default();
        let mut changed = false;
        if let Ok(mut changes) = self.changes.lock() {
            while changes.front().is_some_and(|(step, _)| *step <= taken) {
                if let (Some((_, list)), Ok(mut current)) =
                    (changes.pop_front(), self.current.write())
                {
                    *current = list;
                    changed = true;
                }
            }
        }
        Box::pin(std::future::ready(changed))
    }
}

/// A recorded declaration as a source's tool.
fn source_tool(spec: ToolSpec) -> SourceTool {
    let (description, parameters) = match &spec {
        ToolSpec::Function { function } => (
            function
                .object()
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned(),
            function
                .object()
                .get("parameters")
                .cloned()
                .unwrap_or_default(),
        ),
        _ => (String::new(), serde_json::Value::Null),
    };
    SourceTool {
        spec,
        description,
        parameters,
        read_only: false,
    }
}

/// The tool lists a trace records after its start, with the turns taken before each.
fn recorded_changes(events: &[Event]) -> Result<VecDeque<(usize, Vec<ToolSpec>)>, ReplayError> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Tools { step, tools } => Some((*step, tools)),
            _ => None,
        })
        .map(|(step, tools)| Ok((step, declarations(tools)?)))
        .collect()
}

/// Tool declarations as recorded.
fn declarations(tools: &[serde_json::Value]) -> Result<Vec<ToolSpec>, ReplayError> {
    tools
        .iter()
        .map(|t| serde_json::from_value(t.clone()))
        .collect::<Result<_, _>>()
        .map_err(|source| ReplayError::Start {
            what: "tool declarations",
            source,
        })
}

fn first_line_diff(recorded: &str, live: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (recorded.lines().collect(), live.lines().collect());
    let line = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    format!(
        "line {}:\n  recorded: {:?}\n  live:     {:?}",
        line + 1,
        a.get(line).copied().unwrap_or("(end)"),
        b.get(line).copied().unwrap_or("(end)")
    )
}

/// The recorded model steps of `events` after the ids a resumed run started from, over one
/// shared id sequence (replay checks each prompt against it; resume continues from it).
pub(crate) fn recorded_steps(resumed: &[u32], events: &[Event]) -> (Vec<u32>, Vec<RecordedStep>) {
    let mut sequence: Vec<u32> = resumed.to_vec();
    let mut steps = Vec::new();
    let mut prompt_start = 0;
    for event in events {
        if let Event::Cut { .. } | Event::Compact { .. } = event {
            // The next prompt was rendered anew: its delta is all of it.
            prompt_start = sequence.len();
        }
        if let Event::Model {
            prompt_delta,
            prefix_hash,
            ids,
            text,
            ..
        } = event
        {
            sequence.extend(prompt_delta);
            let prompt_len = sequence.len();
            sequence.extend(ids);
            steps.push(RecordedStep {
                prompt_start,
                prompt_len,
                hash: prefix_hash.clone(),
                ids: prompt_len..sequence.len(),
                text: text.clone(),
            });
        }
    }
    (sequence, steps)
}

/// Where the tools that ran again returned something other than what was recorded.
fn live_divergences(recorded: &[CallRecord], replayed: &[Event]) -> Vec<Divergence> {
    let live_calls = recorded_calls(replayed);
    let mut found = Vec::new();
    for (rec, got) in recorded.iter().zip(&live_calls) {
        let (a, b): (Vec<&str>, Vec<&str>) = (
            rec.observations.iter().map(|o| o.text.as_str()).collect(),
            got.observations.iter().map(|o| o.text.as_str()).collect(),
        );
        if a != b {
            found.push(Divergence {
                step: rec.step,
                what: format!("`{}` returned something else", rec.name),
                diff: first_line_diff(&a.join("\n\n"), &b.join("\n\n")),
            });
        }
    }
    found
}

/// How the replay's end differs from the recording's: fewer model turns, another answer.
fn end_divergences(
    trace: &Trace,
    recorded_steps: usize,
    replayed_steps: usize,
    outcome: &Outcome,
) -> Vec<Divergence> {
    let mut found = Vec::new();
    if replayed_steps < recorded_steps {
        found.push(Divergence {
            step: replayed_steps + 1,
            what: "the replay ended before the recording did".into(),
            diff: format!("recorded {recorded_steps} model turns, replayed {replayed_steps}"),
        });
    }
    let recorded_answer = trace.events.iter().find_map(|e| match e {
        Event::Answer { text, .. } => Some(text.clone()),
        _ => None,
    });
    if outcome.answer != recorded_answer {
        found.push(Divergence {
            step: replayed_steps.max(1),
            what: "the final answer differs".into(),
            diff: format!(
                "recorded {recorded_answer:?}, replayed {:?}",
                outcome.answer
            ),
        });
    }
    found
}

/// Replays `trace`. `live` holds the tools to run again (`ToolMode::Live`), or `None` to feed
/// the recorded observations back. Tool files go under `workdir`.
pub async fn replay(
    trace: &Trace,
    encoder: Encoder,
    live: Option<ToolRegistry>,
    workdir: &Path,
) -> Result<ReplayReport, ReplayError> {
    let Some(Event::Start {
        task,
        tools,
        settings,
        resumed,
        ..
    }) = trace
        .events
        .iter()
        .find(|e| matches!(e, Event::Start { .. }))
    else {
        return Err(ReplayError::NoStart);
    };
    let specs = declarations(tools)?;
    let changes = recorded_changes(&trace.events)?;
    let settings: Settings =
        serde_json::from_value(settings.clone()).map_err(|source| ReplayError::Start {
            what: "settings",
            source,
        })?;
    let (sequence, steps) = recorded_steps(resumed, &trace.events);
    let divergences: Divergences = Arc::new(Mutex::new(Vec::new()));
    let calls = recorded_calls(&trace.events);
    let live_mode = live.is_some();
    let taken = Arc::new(Mutex::new(0));
    let registry = match live {
        Some(registry) => registry,
        None => {
            let mut registry = ToolRegistry::new();
            registry.add_source(Arc::new(RecordedTools {
                current: RwLock::new(specs),
                changes: Mutex::new(changes),
                steps: taken.clone(),
                calls: Mutex::new(VecDeque::from(calls.clone())),
                divergences: divergences.clone(),
            }));
            registry
        }
    };
    let recorded_steps = steps.len();
    let engine = CheckingEngine {
        sequence,
        steps,
        next: taken,
        divergences: divergences.clone(),
        encoder: encoder.clone(),
    };
    let decisions = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Approval { decision, .. } => Some(decision.clone()),
            _ => None,
        })
        .collect();
    let agent = Agent::new(&engine, registry, encoder, settings, workdir)
        .with_recorded_decisions(decisions);
    let mut replayed: Vec<Event> = Vec::new();
    let mut sink = |e: &Event| {
        if !matches!(e, Event::Delta { .. }) {
            replayed.push(e.clone());
        }
    };
    let cancel = CancellationToken::new();
    let outcome = if resumed.is_empty() {
        agent.run(task, &cancel, &mut sink).await
    } else {
        // A resumed run: its conversation so far is the recorded ids, its task the new turn.
        let first_step = trace.events.iter().find_map(|e| match e {
            Event::Model { step, .. } => Some(*step),
            _ => None,
        });
        let steps = first_step.unwrap_or(1).saturating_sub(1);
        let mut session = Session::continuing(resumed.clone(), steps);
        sink.event(&agent.start_event(task));
        agent.turn(&mut session, task, &cancel, &mut sink).await
    };
    let replayed_steps = replayed
        .iter()
        .filter(|e| matches!(e, Event::Model { .. }))
        .count();
    let mut divergences = divergences.lock().map(|d| d.clone()).unwrap_or_default();
    if live_mode {
        divergences.extend(live_divergences(&calls, &replayed));
    }
    divergences.extend(end_divergences(
        trace,
        recorded_steps,
        replayed_steps,
        &outcome,
    ));
    divergences.sort_by_key(|d| d.step);
    Ok(ReplayReport {
        recorded_steps,
        replayed_steps,
        divergences,
        outcome,
    })
}
