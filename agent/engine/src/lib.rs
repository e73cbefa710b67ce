//! glm-engine: prompt token ids in, a stream of generated tokens out.
//!
//! The agent renders and tokenizes prompts itself (see `glm-prompts`), so an engine never sees
//! a chat template: it takes token ids and stop ids and streams back ids and text with control
//! tokens kept visible. This crate holds the [`Engine`] trait and two backends: an
//! OpenAI-compatible server (vLLM, SGLang) and the replay of recorded outputs. The embedded
//! mistral.rs backend lives in its own crate, `glm-engine-mistralrs`, the only one that names
//! mistral.rs types.

mod openai;
pub mod paths;
mod replay;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

pub use openai::{ControlToken, Dialect, OpenAiConfig, OpenAiEngine, redact_url};
pub use replay::{Recorded, ReplayEngine};

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; ignored when `greedy`.
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<u32>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
    /// Always take the most likely token.
    pub greedy: bool,
}

impl Default for Sampling {
    /// GLM-4's published generation settings: temperature 0.8, top_p 0.8.
    fn default() -> Self {
        Sampling {
            temperature: 0.8,
            top_p: 0.8,
            top_k: None,
            seed: None,
            greedy: false,
        }
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The prompt as token ids.
    pub prompt: Vec<u32>,
    /// How to sample.
    pub sampling: Sampling,
    /// The most tokens to generate.
    pub max_new_tokens: u32,
    /// Generation ends after any of these ids (which are included in the output).
    pub stop_ids: Vec<u32>,
    /// When not empty, the generated ids must begin with one of these sequences (a forced tool
    /// name, say). Only engines whose [`Engine::constrains`] is true honour it; callers put a
    /// single forced sequence in the prompt instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<Vec<u32>>,
}

impl GenerateRequest {
    /// Greedy decoding of at most `max_new_tokens` after `prompt`, with no stop ids.
    pub fn greedy(prompt: Vec<u32>, max_new_tokens: u32) -> Self {
        GenerateRequest {
            prompt,
            sampling: Sampling {
                greedy: true,
                ..Sampling::default()
            },
            max_new_tokens,
            stop_ids: Vec::new(),
            starts_with: Vec::new(),
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop token was generated.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// What a generation cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache, when the backend reports it.
    pub cached_prompt_tokens: Option<usize>,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time to the first generated token.
    pub prefill: Duration,
    /// Time from the first to the last generated token.
    pub decode: Duration,
}

/// One event of a generation stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// New tokens: their ids (when the backend reports them) and their text, control tokens
    /// visible.
    Delta {
        /// Token ids.
        ids: Vec<u32>,
        /// Text.
        text: String,
    },
    /// The end, always the last event.
    Finished {
        /// Why it ended.
        reason: FinishReason,
        /// What it cost.
        usage: Usage,
    },
}

/// Why an engine failed. Callers decide from this alone whether to try again
/// ([`EngineError::retryable`]) and what to answer (an HTTP status, an exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The server could not be reached: no connection, DNS, TLS, a timeout before an answer.
    Unreachable,
    /// The server answered this HTTP status (429 and 503 included: the engine client retries
    /// those itself).
    Status(u16),
    /// The prompt and the answer's limit do not fit the model's context.
    ContextExceeded,
    /// The stream broke or ended before its end, or carried an event that cannot be read.
    StreamEnded,
    /// The engine is busy or restarting (the embedded engine's worker died).
    Overloaded,
    /// The request cannot be served as asked (an empty prompt, a recording that has no more
    /// outputs, a model that cannot load).
    Invalid,
    /// Anything else on the engine's side: the model failed while generating.
    Internal,
}

/// An engine failure: its cause and a message that says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// Why it failed.
    pub cause: Cause,
    /// What happened and what to do.
    pub message: String,
}

impl EngineError {
    /// A failure of `cause`.
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        EngineError {
            cause,
            message: message.into(),
        }
    }

    /// Whether the same request may succeed if tried again: a server not reached, a broken
    /// stream, overload, and the HTTP statuses that say so (408, 429, 5xx).
    pub fn retryable(&self) -> bool {
        match self.cause {
            Cause::Unreachable | Cause::StreamEnded | Cause::Overloaded => true,
            Cause::Status(status) => status == 408 || status == 429 || status >= 500,
            Cause::ContextExceeded | Cause::Invalid | Cause::Internal => false,
        }
    }

    /// The HTTP status a server answers this failure with: 400 for a request that cannot fit,
    /// 502 for an upstream that failed, 503 for overload, 500 for the rest.
    pub fn http_status(&self) -> u16 {
        match self.cause {
            Cause::ContextExceeded | Cause::Invalid => 400,
            Cause::Unreachable | Cause::StreamEnded | Cause::Status(_) => 502,
            Cause::Overloaded => 503,
            Cause::Internal => 500,
        }
    }
}

/// A stream of generation events.
pub type EventStream<'a> =
    Pin<Box<dyn Stream<Item = Result<EngineEvent, EngineError>> + Send + 'a>>;

/// A whole generation, collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Generated ids (empty when the backend reports text only).
    pub ids: Vec<u32>,
    /// Generated text, control tokens visible.
    pub text: String,
    /// Why it ended.
    pub reason: FinishReason,
    /// What it cost.
    pub usage: Usage,
}

/// A language model that continues token-id prompts.
pub trait Engine: Send + Sync {
    /// A short description for logs and traces (`openai:http://host:8000 model=...`).
    fn describe(&self) -> String;

    /// Streams the continuation of `request.prompt`.
    fn generate(&self, request: GenerateRequest) -> EventStream<'_>;

    /// The most tokens a sequence may hold (prompt and generation), when the engine knows it.
    fn context_length(&self) -> Option<usize> {
        None
    }

    /// Whether [`GenerateRequest::starts_with`] is enforced while decoding.
    fn constrains(&self) -> bool {
        false
    }

    /// Runs [`Engine::generate`] to the end and gathers the result.
    fn collect(
        &self,
        request: GenerateRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Generation, EngineError>> + Send + '_>> {
        Box::pin(async move {
            let mut stream = self.generate(request);
            let (mut ids, mut text) = (Vec::new(), String::new());
            while let Some(event) = stream.next().await {
                match event? {
                    EngineEvent::Delta { ids: i, text: t } => {
                        ids.extend(i);
                        text.push_str(&t);
                    }
                    EngineEvent::Finished { reason, usage } => {
                        return Ok(Generation {
                            ids,
                            text,
                            reason,
                            usage,
                        });
                    }
                }
            }
            Err(EngineError::new(
                Cause::StreamEnded,
                "the engine's stream ended without a finish event",
            ))
        })
    }
}
