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

pub use openai::{ControlToken, Dialect, OpenAiConfig, OpenAiEngine, Pieces, redact_url};
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
    /// When set, the answer must have this shape ([`Structured`]), enforced while decoding by
    /// engines whose [`Engine::structures`] offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured: Option<Structured>,
}

/// The shape an answer must take: `lead` then one JSON value matching `schema`, or, when
/// calls are named, GLM-4's call instead: one of the `calls`, a newline and a JSON object, or
/// one of the `text_calls` (tools that take text, such as python), a newline and any text.
/// After either, only a stop id may follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Structured {
    /// A JSON Schema; `{}` accepts any JSON value, `{"type": "object"}` any object.
    pub schema: serde_json::Value,
    /// Text the answer starts with before its JSON (GLM-4 starts a text answer with a newline).
    #[serde(default)]
    pub lead: String,
    /// Function tools the model may call instead of answering (their arguments a JSON object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// Tools the model may call with text arguments (code, a browser command).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_calls: Vec<String>,
}

/// What an engine enforces of [`GenerateRequest::structured`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structures {
    /// Nothing: a structured request is refused.
    None,
    /// JSON matching a schema, with no lead and no calls.
    Json,
    /// Everything [`Structured`] describes.
    JsonOrCalls,
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
            structured: None,
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
#[allow(missing_docs)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache, when the backend reports it.
    pub cached_prompt_tokens: Option<usize>,
    pub generated_tokens: usize,
    /// Time to the first generated token.
    pub prefill: Duration,
    /// Time from the first to the last generated token.
    pub decode: Duration,
}

/// One event of a generation stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum EngineEvent {
    /// New tokens: their ids (when the backend reports them) and their text, control tokens
    /// visible.
    Delta {
        /// Token ids.
        ids: Vec<u32>,
        text: String,
    },
    /// The backend lost generated ids (a server held a token back and never said which): the
    /// ids given so far and from here on are not all the model's. Readers drop them and encode
    /// the text, as for a backend that reports text only.
    IdsLost,
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

    /// What it enforces of [`GenerateRequest::structured`].
    fn structures(&self) -> Structures {
        Structures::None
    }

    /// Runs [`Engine::generate`] to the end and gathers the result.
    fn collect(
        &self,
        request: GenerateRequest,
    ) -> Pin<Box<dyn Future<Output = Result<Generation, EngineError>> + Send + '_>> {
        Box::pin(async move {
            let mut stream = self.generate(request);
            let mut collector = Collector::default();
            loop {
                if let Progress::Finished { reason, usage } = collector.next(&mut stream).await? {
                    return Ok(collector.into_generation(reason, usage));
                }
            }
        })
    }
}

/// Reads a generation stream by its contract: deltas, then one finish event, the last; a stream
/// that ends before its finish is broken ([`Cause::StreamEnded`]). Every reader of
/// [`Engine::generate`] goes through it: [`Engine::collect`] for a whole generation, the agent's
/// loop and the server event by event while the text streams.
#[derive(Debug, Default)]
pub struct Collector {
    ids: Vec<u32>,
    text: String,
    /// Whether the backend said it lost ids ([`EngineEvent::IdsLost`]).
    ids_lost: bool,
}

/// What [`Collector::next`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// New tokens: their text (empty when a delta carried ids only). The ids and text so far
    /// are [`Collector::ids`] and [`Collector::text`].
    Delta(String),
    /// The generation's end.
    Finished {
        /// Why it ended.
        reason: FinishReason,
        /// What it cost.
        usage: Usage,
    },
}

impl Collector {
    /// Reads the stream's next event into the collector. After [`Progress::Finished`] the stream
    /// has nothing more to give.
    pub async fn next(&mut self, stream: &mut EventStream<'_>) -> Result<Progress, EngineError> {
        match stream.next().await {
            Some(Ok(EngineEvent::IdsLost)) => {
                // None of the ids is kept: the caller encodes the whole text.
                self.ids_lost = true;
                self.ids.clear();
                Ok(Progress::Delta(String::new()))
            }
            Some(Ok(EngineEvent::Delta { ids, text })) => {
                if self.ids_lost {
                    self.ids.clear();
                } else {
                    self.ids.extend(ids);
                }
                self.text.push_str(&text);
                Ok(Progress::Delta(text))
            }
            Some(Ok(EngineEvent::Finished { reason, usage })) => {
                Ok(Progress::Finished { reason, usage })
            }
            Some(Err(e)) => Err(e),
            None => Err(EngineError::new(
                Cause::StreamEnded,
                "the engine's stream ended without a finish event",
            )),
        }
    }

    /// The ids generated so far (none from a backend that reports text only, or that lost some).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text generated so far, control tokens visible.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sets the ids of a backend that reports text only (the caller encodes the text, control
    /// tokens recognised).
    pub fn set_ids(&mut self, ids: Vec<u32>) {
        self.ids = ids;
    }

    /// The whole generation, once [`Progress::Finished`] gave its reason and usage.
    pub fn into_generation(self, reason: FinishReason, usage: Usage) -> Generation {
        Generation {
            ids: self.ids,
            text: self.text,
            reason,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: Vec<Result<EngineEvent, EngineError>>) -> EventStream<'static> {
        Box::pin(futures::stream::iter(events))
    }

    fn delta(ids: &[u32], text: &str) -> Result<EngineEvent, EngineError> {
        Ok(EngineEvent::Delta {
            ids: ids.to_vec(),
            text: text.to_owned(),
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|r| r.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }

    #[test]
    fn the_collector_gathers_deltas_until_the_finish() {
        let finished = Ok(EngineEvent::Finished {
            reason: FinishReason::Stop,
            usage: Usage::default(),
        });
        let mut s = stream(vec![delta(&[1, 2], "ab"), delta(&[3], ""), finished]);
        let mut c = Collector::default();
        let steps: Vec<Progress> = block_on(async {
            let mut steps = Vec::new();
            loop {
                let step = c.next(&mut s).await.unwrap_or_else(|e| panic!("{e}"));
                let last = matches!(step, Progress::Finished { .. });
                steps.push(step);
                if last {
                    return steps;
                }
            }
        });
        assert_eq!(steps[0], Progress::Delta("ab".into()));
        assert_eq!(steps[1], Progress::Delta(String::new()));
        assert_eq!((c.ids(), c.text()), (&[1, 2, 3][..], "ab"));
    }

    #[test]
    fn ids_lost_drops_them_all() {
        let finished = Ok(EngineEvent::Finished {
            reason: FinishReason::Stop,
            usage: Usage::default(),
        });
        let events = vec![
            delta(&[1], "a"),
            Ok(EngineEvent::IdsLost),
            delta(&[], "b"),
            delta(&[3], "c"),
            finished,
        ];
        let mut s = stream(events);
        let mut c = Collector::default();
        block_on(async { while !matches!(c.next(&mut s).await, Ok(Progress::Finished { .. })) {} });
        assert_eq!((c.ids(), c.text()), (&[][..], "abc"));
    }

    #[test]
    fn text_flushed_without_ids_keeps_the_ids() {
        let finished = Ok(EngineEvent::Finished {
            reason: FinishReason::Stop,
            usage: Usage::default(),
        });
        let mut s = stream(vec![delta(&[1, 2], "a"), delta(&[], "\u{fffd}"), finished]);
        let mut c = Collector::default();
        block_on(async { while !matches!(c.next(&mut s).await, Ok(Progress::Finished { .. })) {} });
        assert_eq!(c.ids(), &[1, 2]);
    }

    #[test]
    fn a_stream_that_ends_before_its_finish_is_broken() {
        let mut s = stream(vec![delta(&[1], "a")]);
        let mut c = Collector::default();
        let second = block_on(async {
            let first = c.next(&mut s).await;
            assert!(first.is_ok());
            c.next(&mut s).await
        });
        let e = second
            .err()
            .unwrap_or_else(|| panic!("a finish was invented"));
        assert_eq!(e.cause, Cause::StreamEnded);
        assert!(e.retryable());
        // What arrived before the break is kept for the caller's report.
        assert_eq!(c.text(), "a");
    }

    #[test]
    fn a_failure_in_the_stream_is_passed_on_as_it_is() {
        let failed = Err(EngineError::new(Cause::ContextExceeded, "too long"));
        let mut s = stream(vec![failed]);
        let e = block_on(Collector::default().next(&mut s)).err();
        assert_eq!(e.map(|e| e.cause), Some(Cause::ContextExceeded));
    }
}
