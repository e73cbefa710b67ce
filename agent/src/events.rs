//! What a run reports, as it happens. The CLI shows these, `--json` prints them, and the trace
//! records them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::Settings;
use crate::approval::Decision;
use crate::engine::FinishReason;
use crate::exit::ExitStatus;

/// Which budget ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// `max_steps` model turns.
    Steps,
    /// `max_generated_tokens`.
    Tokens,
    /// `time_limit_s`.
    Time,
}

impl Budget {
    /// A sentence for the user and the model.
    pub fn describe(self, settings: &Settings) -> String {
        match self {
            Budget::Steps => format!("The step limit ({}) is reached.", settings.max_steps),
            Budget::Tokens => format!(
                "The generated-token limit ({}) is reached.",
                settings.max_generated_tokens
            ),
            Budget::Time => format!(
                "The time limit ({} s) is reached.",
                settings.time_limit_s.unwrap_or(0)
            ),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum End {
    /// The model answered.
    Answered,
    /// A budget ran out (the model had one last turn to answer).
    Budget(Budget),
    /// The model repeated itself too many times: the same failing call, or the same call
    /// giving the same result.
    Repeated(String),
    /// A tool's runtime is broken.
    ToolFailed(String),
    /// The engine failed.
    EngineFailed(String),
    /// The prompt could not be built.
    BadInput,
    /// The run was interrupted.
    Interrupted,
}

impl End {
    /// The process exit status for this end.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            End::Answered => ExitStatus::Success,
            End::Budget(_) | End::Repeated(_) => ExitStatus::Budget,
            End::ToolFailed(_) => ExitStatus::ToolFailed,
            End::EngineFailed(_) => ExitStatus::Engine,
            End::BadInput => ExitStatus::BadInput,
            End::Interrupted => ExitStatus::Interrupted,
        }
    }
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Event {
    /// The run starts.
    Start {
        task: String,
        /// The engine's description.
        engine: String,
        /// The model: its id, folder, and hashes of its config and tokenizer (null when the
        /// caller did not say).
        #[serde(default)]
        model: Value,
        /// The tools offered, as rendered into the system turn.
        tools: Vec<Value>,
        /// The settings in effect.
        settings: Value,
        /// The documents put into the task (`--file`): path, bytes, sha256.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        documents: Vec<Value>,
        /// The trace this run continues (`--resume`), as given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
        /// The prompt ids this run continues from: the parent's conversation, exactly. The
        /// first model event's `prompt_delta` follows them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resumed: Vec<u32>,
    },
    /// The tools offered changed (an MCP server's list): from `step` on, the model is offered
    /// these, told in a system turn appended before its next turn.
    Tools {
        /// The model turns taken before the change.
        step: usize,
        /// Every tool now offered, as rendered into that system turn.
        tools: Vec<Value>,
    },
    /// Text the model just generated (not recorded in traces: `model` has all of it).
    Delta {
        step: usize,
        /// The new text.
        text: String,
    },
    /// One model turn, complete.
    Model {
        /// The step (1-based).
        step: usize,
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// The prompt ids not accounted for by earlier model events (the whole prompt at the
        /// first step, then each new turn): earlier prompts, generated ids and these rebuild
        /// every prompt exactly.
        #[serde(default)]
        prompt_delta: Vec<u32>,
        /// A hash of the prompt's ids.
        prefix_hash: String,
        /// Prompt tokens served from the prefix cache, when the engine reports it.
        cached_tokens: Option<usize>,
        /// The generated ids, exactly.
        ids: Vec<u32>,
        /// The generated text, control tokens visible.
        text: String,
        /// Why generation stopped.
        finish: FinishReason,
        generated_tokens: usize,
        /// Time to the first token.
        prefill_ms: u64,
        /// Time after it.
        decode_ms: u64,
    },
    /// The decision on a call, before it runs (or does not).
    Approval {
        step: usize,
        /// The tool.
        name: String,
        #[serde(flatten)]
        decision: Decision,
        /// The call's arguments, when it does not run (a call that runs has them in its `call`
        /// event).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arguments: Option<Value>,
    },
    /// Old tool outputs were cut to fit the context window: the next model turn's prompt is
    /// rendered anew (its `prompt_delta` holds all of it).
    Cut {
        /// Model turns taken before the cut.
        step: usize,
        /// Tool outputs replaced by a note.
        removed: usize,
        /// Prompt tokens before and after.
        before: usize,
        after: usize,
        /// The window.
        window: usize,
    },
    /// Cutting old tool outputs was not enough: the conversation is compacted. First (no
    /// `summary`) the model is asked for a summary, on a prompt rendered anew; then (with the
    /// `summary`) the conversation goes on from the system turn, the task, the summary and the
    /// latest exchange, rendered anew. Each next `model` event's `prompt_delta` holds its whole
    /// prompt.
    Compact {
        step: usize,
        /// Prompt tokens before and after.
        before: usize,
        after: usize,
        window: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// A tool call about to run.
    Call {
        step: usize,
        /// The tool.
        name: String,
        /// Its arguments.
        arguments: Value,
    },
    /// A call that cannot run (bad arguments, unknown tool).
    Malformed {
        step: usize,
        /// The name the model wrote.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// What the model reads after a call.
    Observation {
        step: usize,
        /// The tool.
        name: String,
        /// The observation's label.
        metadata: Option<String>,
        text: String,
        /// Files the call produced.
        files: Vec<String>,
        /// Whether this reports an error.
        error: bool,
        /// How long the call took.
        took_ms: u64,
    },
    /// The final answer.
    Answer {
        step: usize,
        /// The answer.
        text: String,
    },
    /// A budget ran out.
    Budget {
        /// Which.
        budget: Budget,
        /// In words.
        detail: String,
    },
    /// Something went wrong.
    Error {
        /// What, and what to do.
        message: String,
    },
    /// The run is over.
    End {
        /// How it ended.
        end: End,
        /// Model turns.
        steps: usize,
        generated_tokens: usize,
        /// Wall-clock time.
        took_ms: u64,
    },
}
