//! The agent: an engine, tools, the model's tokenizer and settings, and the ways to run it.
//!
//! Prompts grow append-only at the token level: each step's prompt is the previous prompt's ids,
//! the ids the model generated (exactly as generated, never re-tokenized), and the newly rendered
//! turn. So the engine's prefix cache always hits, and a recorded run replays exactly. The loop
//! itself is in `turn`.

use std::path::PathBuf;
use std::sync::Arc;

use glm_prompts::{Encoder, Message, Parsed, Role};
use glm_tools::ToolRegistry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::approval::{Approver, Decision, Policy, Recorded};
use crate::engine::{Engine, Sampling};
use crate::events::{End, Event};
use crate::session::Session;
pub use crate::session::prefix_hash;
use crate::sink::EventSink;
use crate::turn::Turn;

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
    /// The same call with the same result this many times in the last 10 calls: the model is
    /// told it repeats itself (default 3; 0 never).
    pub loop_warn: usize,
    /// ... and this many times: the run ends, exit 3 (default 6; 0 never).
    pub loop_stop: usize,
    /// How tokens are drawn: temperature, top-p, seed, greedy.
    pub sampling: Sampling,
    /// An optional system prompt, rendered with the tool descriptions.
    pub system_prompt: Option<String>,
    /// Which calls run without asking (default: every call; the command line asks).
    pub approval: Policy,
    /// The tokens a prompt and its answer may take (default: no limit here; the engine's
    /// own): past it old tool outputs are cut, and a prompt that still does not fit ends the
    /// run before generating.
    pub context_tokens: Option<usize>,
    /// A JSON Schema the final answer must match, enforced while decoding by an engine that
    /// can ([`crate::engine::Engine::structures`]); the model may still call tools first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
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
            loop_warn: 3,
            loop_stop: 6,
            sampling: Sampling::default(),
            system_prompt: None,
            approval: Policy::default(),
            context_tokens: None,
            output_schema: None,
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

/// An agent: an engine, tools and settings.
pub struct Agent<'a> {
    pub(crate) engine: &'a dyn Engine,
    pub(crate) tools: ToolRegistry,
    pub(crate) encoder: Encoder,
    pub(crate) settings: Settings,
    pub(crate) workdir: PathBuf,
    model: serde_json::Value,
    /// Asks about calls the approval policy leaves open; without one they are refused.
    pub(crate) approver: Option<Arc<dyn Approver>>,
    /// Decisions to give back instead of deciding (a replay).
    pub(crate) recorded: Option<Recorded>,
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
            approver: None,
            recorded: None,
        }
    }

    /// The structure a model turn is held to under [`Settings::output_schema`]: the answer's
    /// JSON, or a call of one of the tools (function tools with a JSON object, python and the
    /// browser with their text).
    pub(crate) fn structured(&self) -> Option<crate::engine::Structured> {
        let schema = self.settings.output_schema.clone()?;
        let (mut calls, mut text_calls) = (Vec::new(), Vec::new());
        for spec in self.tools.specs() {
            match spec {
                glm_prompts::ToolSpec::Function { .. } => calls.push(spec.name().to_owned()),
                _ => text_calls.push(spec.name().to_owned()),
            }
        }
        // A server that holds the JSON alone gets no lead: the answer is the JSON.
        let lead = match self.engine.structures() {
            crate::engine::Structures::Json => "",
            _ => "\n",
        };
        Some(crate::engine::Structured {
            schema,
            lead: lead.into(),
            calls,
            text_calls,
        })
    }

    /// Asks `approver` about the calls the approval policy ([`Settings::approval`]) leaves
    /// open: a terminal prompt, a GUI, a policy service.
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }

    /// Gives these decisions back, in order, instead of deciding (a replay of a trace).
    pub fn with_recorded_decisions(mut self, decisions: Vec<Decision>) -> Self {
        self.recorded = Some(Recorded::new(decisions));
        self
    }

    /// Says which model runs, for the trace (the engine crate's fingerprint of the folder).
    pub fn with_model_info(mut self, model: serde_json::Value) -> Self {
        self.model = model;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The model's tokenizer.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
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
            documents: Vec::new(),
            parent: None,
            resumed: Vec::new(),
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
        Session::with_messages(messages)
    }

    /// Runs `task` in a new session to an answer or a budget.
    pub async fn run(
        &self,
        task: &str,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Outcome {
        self.run_after(&[], task, cancel, sink).await
    }

    /// Runs `task` after earlier turns of a conversation (`history`: user, assistant and
    /// observation messages, rendered before the task).
    pub async fn run_after(
        &self,
        history: &[Message],
        task: &str,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Outcome {
        sink.event(&self.start_event(task));
        let mut session = self.new_session();
        session.messages.extend_from_slice(history);
        self.turn(&mut session, task, cancel, sink).await
    }

    /// One user turn in `session`: the model works (calling tools) until it answers or a
    /// budget ends the turn.
    pub async fn turn(
        &self,
        session: &mut Session,
        user: &str,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Outcome {
        Turn::new(self, session, cancel, sink).run(user).await
    }

    /// The model's first turn only (after `history`), parsed and not acted on: for judging what
    /// a model calls without running the tools. Reports `start` and `model` events like
    /// [`Agent::run`], then what the model wrote: a `call` (not run), a `malformed` call or an
    /// `answer`.
    pub async fn first_turn(
        &self,
        history: &[Message],
        task: &str,
        cancel: &CancellationToken,
        sink: &mut dyn EventSink,
    ) -> Result<Parsed, End> {
        sink.event(&self.start_event(task));
        let mut session = self.new_session();
        session.messages.extend_from_slice(history);
        Turn::new(self, &mut session, cancel, sink)
            .first(task)
            .await
    }
}
