//! The agent loop: render, generate, parse, dispatch, observe, repeat.
//!
//! Prompts grow append-only at the token level: each step's prompt is the previous prompt's ids,
//! the ids the model generated (exactly as generated, never re-tokenized), and the newly rendered
//! turn. So the engine's prefix cache always hits, and a recorded run replays exactly.
//!
//! The loop never prints: everything it does is an [`Event`] handed to the caller.

mod events;
pub mod replay;
pub mod trace;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use glm_prompts::{
    DeclaredTools, Encoder, Message, Parsed, Role, Segment, SpecialToken, render_message,
    render_segments,
};
use glm_tools::{Recovery, ToolContext, ToolRegistry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub use events::{Budget, End, Event};

use crate::engine::{Engine, EngineEvent, GenerateRequest, Sampling};

/// Limits and sampling for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The most model turns (default 20).
    pub max_steps: usize,
    /// The most tokens the model may generate over the whole run (default 32,768).
    pub max_generated_tokens: usize,
    /// The most tokens of one model turn (default 4,096).
    pub max_step_tokens: u32,
    /// Wall-clock limit for the run, in seconds (default none).
    pub time_limit_s: Option<u64>,
    /// The most one tool call may take, in seconds (default 60).
    pub tool_timeout_s: u64,
    /// The most characters of one observation the model sees (default 20,000).
    pub max_observation_chars: usize,
    /// The same failing call this many times in a row stops the run (default 3).
    pub repeat_limit: usize,
    /// Sampling.
    pub sampling: Sampling,
    /// An optional system prompt, rendered with the tool descriptions.
    pub system_prompt: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_steps: 20,
            max_generated_tokens: 32_768,
            max_step_tokens: 4_096,
            time_limit_s: None,
            tool_timeout_s: 60,
            max_observation_chars: 20_000,
            repeat_limit: 3,
            sampling: Sampling::default(),
            system_prompt: None,
        }
    }
}

/// How a run ended, with what it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Why it ended.
    pub end: End,
    /// The final answer, when the model gave one.
    pub answer: Option<String>,
    /// Model turns taken.
    pub steps: usize,
    /// Tokens generated over the run.
    pub generated_tokens: usize,
}

/// A conversation in progress: the messages and the exact prompt ids so far. `run` starts one;
/// `chat` continues one turn after turn.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The conversation as messages.
    pub messages: Vec<Message>,
    /// The prompt ids, append-only.
    pub ids: Vec<u32>,
    /// Turns taken over the session's life.
    pub steps: usize,
    /// How many of `ids` earlier model events already account for (prompt plus generated).
    pub recorded: usize,
    /// A running hash of `ids[..hashed]`: each step hashes only what it appended.
    hasher: Sha256,
    hashed: usize,
}

impl Session {
    /// [`prefix_hash`] of `ids`, hashing only the ids added since the last call.
    pub fn prefix_hash(&mut self) -> String {
        if self.hashed > self.ids.len() {
            // The ids were replaced, not extended: start over.
            self.hasher = Sha256::new();
            self.hashed = 0;
        }
        for id in &self.ids[self.hashed..] {
            self.hasher.update(id.to_le_bytes());
        }
        self.hashed = self.ids.len();
        hex::encode(&self.hasher.clone().finalize()[..8])
    }
}

/// An agent: an engine, tools and settings.
pub struct Agent<'a> {
    engine: &'a dyn Engine,
    tools: ToolRegistry,
    encoder: Encoder,
    settings: Settings,
    workdir: PathBuf,
    model: serde_json::Value,
}

/// A short hash of a prompt's ids, recorded in traces to check replays.
pub fn prefix_hash(ids: &[u32]) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_le_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Splits model output into text and control tokens (spelled out in it).
pub fn output_segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = SpecialToken::ALL
            .iter()
            .filter_map(|t| rest.find(t.as_str()).map(|at| (at, *t)))
            .min_by_key(|(at, _)| *at);
        match next {
            Some((at, token)) => {
                if at > 0 {
                    out.push(Segment::Text(rest[..at].to_owned()));
                }
                out.push(Segment::Control(token));
                rest = &rest[at + token.as_str().len()..];
            }
            None => {
                out.push(Segment::Text(rest.to_owned()));
                rest = "";
            }
        }
    }
    out
}

/// What a model turn leads to.
enum Next {
    /// The run ends: how, the answer, a message for an error event.
    Finish(End, Option<String>, String),
    /// A call that cannot run (malformed, or to a tool that does not exist).
    Reject {
        /// What the model wrote.
        written: glm_prompts::Written,
        /// The name it wrote.
        name: String,
        /// What was wrong, for the event.
        reason: String,
        /// The error the model reads.
        error: glm_tools::ToolError,
    },
    /// Observation turns to append: tool, messages, files, whether an error, tool time, and
    /// the end when the same failure was repeated too often.
    Observe(
        String,
        Vec<Message>,
        Vec<PathBuf>,
        bool,
        Duration,
        Option<End>,
    ),
}

/// What a finished generation gave.
struct Turn {
    ids: Vec<u32>,
    text: String,
}

impl<'a> Agent<'a> {
    /// An agent over `engine` with `tools`; `encoder` is the model's tokenizer; tool files go
    /// under `workdir`.
    pub fn new(
        engine: &'a dyn Engine,
        tools: ToolRegistry,
        encoder: Encoder,
        settings: Settings,
        workdir: impl Into<PathBuf>,
    ) -> Self {
        Agent {
            engine,
            tools,
            encoder,
            settings,
            workdir: workdir.into(),
            model: serde_json::Value::Null,
        }
    }

    /// Says which model runs, for the trace (see [`crate::model::fingerprint`]).
    pub fn with_model_info(mut self, model: serde_json::Value) -> Self {
        self.model = model;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The tools.
    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// The event that opens a run: settings, engine and tools with their schemas.
    pub fn start_event(&self, task: &str) -> Event {
        Event::Start {
            task: task.to_owned(),
            engine: self.engine.describe(),
            model: self.model.clone(),
            tools: self
                .tools
                .specs()
                .iter()
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .collect(),
            settings: serde_json::to_value(&self.settings).unwrap_or_default(),
        }
    }

    /// A new session: the system turn with the tools (when there are tools or a system prompt).
    pub fn new_session(&self) -> Session {
        let mut messages = Vec::new();
        let specs = self.tools.specs();
        let system = self.settings.system_prompt.clone().unwrap_or_default();
        if !specs.is_empty() {
            messages.push(Message::system_with_tools(specs, system));
        } else if !system.is_empty() {
            messages.push(Message::new(Role::System, system));
        }
        Session {
            messages,
            ids: Vec::new(),
            ..Session::default()
        }
    }

    /// Runs `task` in a new session to an answer or a budget.
    pub async fn run(
        &self,
        task: &str,
        cancel: &CancellationToken,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Outcome {
        self.run_after(&[], task, cancel, on_event).await
    }

    /// Runs `task` after earlier turns of a conversation (`history`: user, assistant and
    /// observation messages, rendered before the task).
    pub async fn run_after(
        &self,
        history: &[Message],
        task: &str,
        cancel: &CancellationToken,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Outcome {
        on_event(&self.start_event(task));
        let mut session = self.new_session();
        session.messages.extend_from_slice(history);
        self.turn(&mut session, task, cancel, on_event).await
    }

    /// The model's first turn only (after `history`), parsed and not acted on: for judging what
    /// a model calls without running the tools. Reports `start` and `model` events like
    /// [`Agent::run`].
    pub async fn first_turn(
        &self,
        history: &[Message],
        task: &str,
        cancel: &CancellationToken,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Parsed, End> {
        on_event(&self.start_event(task));
        let mut session = self.new_session();
        session.messages.extend_from_slice(history);
        session.messages.push(Message::new(Role::User, task));
        let mut ids = self
            .encoder
            .encode(&render_segments(&session.messages, false).0)
            .map_err(|_| End::BadInput)?;
        self.assistant_prompt(&mut ids);
        let stop_ids = self.encoder.special_ids().stop_ids();
        let turn = self
            .generate(
                1,
                &ids,
                0,
                prefix_hash(&ids),
                self.settings.max_step_tokens,
                &stop_ids,
                cancel,
                on_event,
            )
            .await?;
        Ok(glm_prompts::parse(&turn.text, &self.tools.declared()))
    }

    /// Appends a rendered turn to the prompt ids, skipping its leading control token when the
    /// model already generated it (it stops on `<|observation|>` or `<|user|>`, which also open
    /// the next turn).
    fn append(&self, ids: &mut Vec<u32>, segments: &[Segment]) -> Result<(), String> {
        let mut rest = segments;
        if let (Some(Segment::Control(first)), Some(&last)) = (segments.first(), ids.last())
            && self.encoder.special_ids().id(*first) == last
        {
            rest = &segments[1..];
        }
        let new = self.encoder.encode(rest).map_err(|e| e.to_string())?;
        ids.extend(new);
        Ok(())
    }

    fn assistant_prompt(&self, ids: &mut Vec<u32>) {
        ids.push(self.encoder.special_ids().id(SpecialToken::Assistant));
    }

    /// One user turn in `session`: the model works (calling tools) until it answers or a
    /// budget ends the turn.
    pub async fn turn(
        &self,
        session: &mut Session,
        user: &str,
        cancel: &CancellationToken,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Outcome {
        let started = Instant::now();
        let user_msg = Message::new(Role::User, user);
        let appended = if session.ids.is_empty() {
            session.messages.push(user_msg);
            match self
                .encoder
                .encode(&render_segments(&session.messages, false).0)
            {
                Ok(ids) => {
                    session.ids = ids;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        } else {
            let segments = render_message(&user_msg);
            session.messages.push(user_msg);
            self.append(&mut session.ids, &segments.0)
        };
        if let Err(e) = appended {
            return self.finish(
                End::BadInput,
                None,
                0,
                0,
                started,
                &format!("cannot encode the prompt: {e}"),
                on_event,
            );
        }
        self.assistant_prompt(&mut session.ids);
        let declared: DeclaredTools = self.tools.declared();
        let observation_id = self.encoder.special_ids().id(SpecialToken::Observation);
        let stop_ids = self.encoder.special_ids().stop_ids();
        let mut generated_total = 0usize;
        let mut steps = 0usize;
        let mut last_failure: Option<(String, usize)> = None;
        let mut final_turn: Option<Budget> = None;
        let ctx = ToolContext {
            cancel: cancel.child_token(),
            workdir: self.workdir.clone(),
            timeout: Duration::from_secs(self.settings.tool_timeout_s.max(1)),
            max_observation_chars: self.settings.max_observation_chars,
        };
        loop {
            // Budgets, checked before each model turn.
            if final_turn.is_none() {
                let over = if steps >= self.settings.max_steps {
                    Some(Budget::Steps)
                } else if generated_total >= self.settings.max_generated_tokens {
                    Some(Budget::Tokens)
                } else if self
                    .settings
                    .time_limit_s
                    .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
                {
                    Some(Budget::Time)
                } else {
                    None
                };
                if let Some(budget) = over {
                    on_event(&Event::Budget {
                        budget,
                        detail: budget.describe(&self.settings),
                    });
                    final_turn = Some(budget);
                    // One last turn to answer with what it has.
                    let note = Message::new(
                        Role::User,
                        format!(
                            "{} Answer now with what you have; do not call tools.",
                            budget.describe(&self.settings)
                        ),
                    );
                    let segments = render_message(&note);
                    session.messages.push(note);
                    if let Err(e) = self.append(&mut session.ids, &segments.0) {
                        return self.finish(
                            End::BadInput,
                            None,
                            steps,
                            generated_total,
                            started,
                            &e,
                            on_event,
                        );
                    }
                    self.assistant_prompt(&mut session.ids);
                }
            }
            let step = session.steps + 1;
            let remaining = self
                .settings
                .max_generated_tokens
                .saturating_sub(generated_total)
                .max(if final_turn.is_some() { 512 } else { 1 });
            let max_new = (self.settings.max_step_tokens as usize).min(remaining) as u32;
            let hash = session.prefix_hash();
            let turn = match self
                .generate(
                    step,
                    &session.ids,
                    session.recorded,
                    hash,
                    max_new,
                    &stop_ids,
                    cancel,
                    on_event,
                )
                .await
            {
                Ok(t) => t,
                Err(end) => {
                    let message = match &end {
                        End::Interrupted => "interrupted".to_owned(),
                        End::EngineFailed(m) => m.clone(),
                        other => format!("{other:?}"),
                    };
                    return self.finish(
                        end,
                        None,
                        steps,
                        generated_total,
                        started,
                        &message,
                        on_event,
                    );
                }
            };
            steps += 1;
            session.steps += 1;
            generated_total += turn.ids.len();
            session.ids.extend(&turn.ids);
            session.recorded = session.ids.len();
            let called = turn.ids.last() == Some(&observation_id);
            let next = match glm_prompts::parse(&turn.text, &declared) {
                Parsed::Answer(text) if !called || final_turn.is_some() => {
                    session
                        .messages
                        .push(Message::new(Role::Assistant, text.clone()));
                    on_event(&Event::Answer {
                        step,
                        text: text.clone(),
                    });
                    let end = final_turn.map_or(End::Answered, End::Budget);
                    Next::Finish(end, Some(text), String::new())
                }
                _ if final_turn.is_some() => Next::Finish(
                    End::Budget(final_turn.unwrap_or(Budget::Steps)),
                    None,
                    "the model called a tool instead of answering in its last turn".into(),
                ),
                Parsed::Answer(text) => {
                    // It stopped for an observation, but the name is not a tool.
                    let (header, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                    let name = header.trim().to_owned();
                    let error = glm_tools::ToolError::UnknownTool {
                        name: name.clone(),
                        available: self.tools.names().join(", "),
                    };
                    Next::Reject {
                        written: glm_prompts::Written {
                            header: header.to_owned(),
                            body: body.to_owned(),
                        },
                        name,
                        reason: error.to_string(),
                        error,
                    }
                }
                Parsed::Malformed(bad) => Next::Reject {
                    error: glm_tools::ToolError::BadArguments {
                        tool: bad.name.clone(),
                        reason: bad.reason.clone(),
                    },
                    written: bad.written,
                    name: bad.name,
                    reason: bad.reason,
                },
                Parsed::Call(call) => {
                    session.messages.push(call.written.to_message());
                    let arguments = serde_json::to_value(&call.arguments).unwrap_or_default();
                    on_event(&Event::Call {
                        step,
                        name: call.name.clone(),
                        arguments: arguments.clone(),
                    });
                    let tool_started = Instant::now();
                    let result = self.tools.call(&call, &ctx).await;
                    let took = tool_started.elapsed();
                    match result {
                        Ok(output) => {
                            last_failure = None;
                            let files = output
                                .observations
                                .iter()
                                .flat_map(|o| o.files.clone())
                                .collect();
                            let messages =
                                output.observations.iter().map(|o| o.to_message()).collect();
                            Next::Observe(call.name, messages, files, false, took, None)
                        }
                        Err(_) if cancel.is_cancelled() => {
                            Next::Finish(End::Interrupted, None, "interrupted".into())
                        }
                        Err(error) if error.recovery() == Recovery::Fatal => Next::Finish(
                            End::ToolFailed(error.to_string()),
                            None,
                            error.to_string(),
                        ),
                        Err(error) => {
                            let key = format!("{}\n{arguments}", call.name);
                            let repeated = self.repeated(&mut last_failure, key, &call.name);
                            Next::Observe(
                                call.name,
                                vec![error.to_message()],
                                Vec::new(),
                                true,
                                took,
                                repeated,
                            )
                        }
                    }
                }
            };
            let (name, messages, files, error, took, repeated) = match next {
                Next::Finish(end, answer, message) => {
                    return self.finish(
                        end,
                        answer,
                        steps,
                        generated_total,
                        started,
                        &message,
                        on_event,
                    );
                }
                Next::Reject {
                    written,
                    name,
                    reason,
                    error,
                } => {
                    // The call goes into history as written, the error back as an observation.
                    let key = format!("{}\n{}", written.header, written.body);
                    session.messages.push(written.to_message());
                    on_event(&Event::Malformed {
                        step,
                        name: name.clone(),
                        reason,
                    });
                    let repeated = self.repeated(&mut last_failure, key, &name);
                    let messages = vec![error.to_message()];
                    (name, messages, Vec::new(), true, Duration::ZERO, repeated)
                }
                Next::Observe(name, messages, files, error, took, repeated) => {
                    (name, messages, files, error, took, repeated)
                }
            };
            let observed = self.observe(
                session, step, &name, messages, &files, error, took, on_event,
            );
            let (end, message) = match (observed, repeated) {
                (Err(e), _) => (End::BadInput, e),
                (Ok(()), Some(end)) => (end, String::new()),
                (Ok(()), None) => continue,
            };
            return self.finish(
                end,
                None,
                steps,
                generated_total,
                started,
                &message,
                on_event,
            );
        }
    }

    /// Counts consecutive identical failures; returns the end when the limit is reached.
    fn repeated(&self, last: &mut Option<(String, usize)>, key: String, name: &str) -> Option<End> {
        let count = match last {
            Some((k, n)) if *k == key => *n + 1,
            _ => 1,
        };
        *last = Some((key, count));
        (count >= self.settings.repeat_limit.max(1)).then(|| {
            End::Repeated(format!(
                "the model made the same failing call to `{name}` {count} times in a row"
            ))
        })
    }

    /// Appends observation turns (and the next `<|assistant|>`) and reports them.
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        session: &mut Session,
        step: usize,
        name: &str,
        messages: Vec<Message>,
        files: &[PathBuf],
        error: bool,
        took: Duration,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<(), String> {
        for message in messages {
            let segments = render_message(&message);
            self.append(&mut session.ids, &segments.0)?;
            on_event(&Event::Observation {
                step,
                name: name.to_owned(),
                metadata: message.metadata.clone(),
                text: message.content.clone(),
                files: files.iter().map(|f| f.display().to_string()).collect(),
                error,
                took_ms: millis(took),
            });
            session.messages.push(message);
        }
        self.assistant_prompt(&mut session.ids);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        end: End,
        answer: Option<String>,
        steps: usize,
        generated_tokens: usize,
        started: Instant,
        message: &str,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Outcome {
        if !message.is_empty() && !matches!(end, End::Answered | End::Budget(_)) {
            on_event(&Event::Error {
                message: message.to_owned(),
            });
        }
        on_event(&Event::End {
            end: end.clone(),
            steps,
            generated_tokens,
            took_ms: millis(started.elapsed()),
        });
        Outcome {
            end,
            answer,
            steps,
            generated_tokens,
        }
    }

    /// One model turn, streamed; a dead engine gets one retry.
    #[allow(clippy::too_many_arguments)]
    async fn generate(
        &self,
        step: usize,
        prompt: &[u32],
        recorded: usize,
        hash: String,
        max_new: u32,
        stop_ids: &[u32],
        cancel: &CancellationToken,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Turn, End> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let request = GenerateRequest {
                prompt: prompt.to_vec(),
                sampling: self.settings.sampling.clone(),
                max_new_tokens: max_new.max(1),
                stop_ids: stop_ids.to_vec(),
            };
            let mut stream = self.engine.generate(request);
            let mut ids = Vec::new();
            let mut text = String::new();
            let failure = loop {
                let next = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(End::Interrupted),
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(EngineEvent::Delta { ids: i, text: t })) => {
                        ids.extend(i);
                        if !t.is_empty() {
                            on_event(&Event::Delta {
                                step,
                                text: t.clone(),
                            });
                        }
                        text.push_str(&t);
                    }
                    Some(Ok(EngineEvent::Finished { reason, usage })) => {
                        if ids.is_empty() && !text.is_empty() {
                            // A backend that reports text only: the ids come from the text,
                            // control tokens recognised.
                            ids = self
                                .encoder
                                .encode(&output_segments(&text))
                                .unwrap_or_default();
                        }
                        on_event(&Event::Model {
                            step,
                            prompt_tokens: prompt.len(),
                            prompt_delta: prompt.get(recorded..).unwrap_or(&[]).to_vec(),
                            prefix_hash: hash.clone(),
                            cached_tokens: usage.cached_prompt_tokens,
                            ids: ids.clone(),
                            text: text.clone(),
                            finish: reason,
                            generated_tokens: usage.generated_tokens.max(ids.len()),
                            prefill_ms: millis(usage.prefill),
                            decode_ms: millis(usage.decode),
                        });
                        return Ok(Turn { ids, text });
                    }
                    Some(Err(e)) => break e,
                    None => {
                        break crate::engine::EngineError::transient(
                            "the engine's stream ended early",
                        );
                    }
                }
            };
            if failure.retryable && attempts < 3 {
                on_event(&Event::Error {
                    message: format!("{} (retrying)", failure.message),
                });
                continue;
            }
            return Err(End::EngineFailed(failure.message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_hash_equals_the_whole_hash() {
        let mut session = Session {
            ids: vec![1, 2, 3],
            ..Session::default()
        };
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3]));
        session.ids.extend([4, 5]);
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3, 4, 5]));
        assert_eq!(session.prefix_hash(), prefix_hash(&[1, 2, 3, 4, 5]));
        session.ids = vec![9];
        assert_eq!(session.prefix_hash(), prefix_hash(&[9]));
    }
}
