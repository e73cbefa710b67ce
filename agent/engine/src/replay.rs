//! Replays recorded model outputs in order: for tests, examples and evals.

use std::sync::Mutex;

use futures::stream;
use serde::{Deserialize, Serialize};

use super::{
    Cause, Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage,
};

/// One recorded output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The generated ids, when known.
    #[serde(default)]
    pub ids: Vec<u32>,
    /// The generated text, control tokens visible.
    pub text: String,
}

/// An engine that answers with recorded outputs, one per request, in order.
#[derive(Debug)]
pub struct ReplayEngine {
    outputs: Vec<Recorded>,
    next: Mutex<usize>,
}

impl ReplayEngine {
    /// Replays `outputs`.
    pub fn new(outputs: Vec<Recorded>) -> Self {
        ReplayEngine {
            outputs,
            next: Mutex::new(0),
        }
    }

    /// Reads a JSON array of `{"text": ..., "ids": [...]}` (or of plain strings).
    pub fn from_json(text: &str) -> Result<Self, EngineError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Text(String),
            Full(Recorded),
        }
        let items: Vec<Item> = serde_json::from_str(text).map_err(|e| {
            EngineError::new(Cause::Invalid, format!(
                "a replay file is a JSON array of outputs ({{\"text\": ..., \"ids\": [...]}} or strings): {e}"
            ))
        })?;
        Ok(ReplayEngine::new(
            items
                .into_iter()
                .map(|item| match item {
                    Item::Text(text) => Recorded {
                        ids: Vec::new(),
                        text,
                    },
                    Item::Full(recorded) => recorded,
                })
                .collect(),
        ))
    }

    /// How many outputs have been served.
    pub fn served(&self) -> usize {
        *self.next.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Engine for ReplayEngine {
    fn describe(&self) -> String {
        format!("replay ({} outputs)", self.outputs.len())
    }

    /// A recording answers what it recorded: a constraint is accepted and has nothing to do.
    fn constrains(&self) -> bool {
        true
    }

    /// The same for a structured answer.
    fn structures(&self) -> crate::Structures {
        crate::Structures::JsonOrCalls
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let index = *next;
            *next += 1;
            index
        };
        let Some(recorded) = self.outputs.get(index) else {
            let error = EngineError::new(
                Cause::Invalid,
                format!(
                    "the recording has {} outputs and request {} asked for one more; the run went past what was recorded",
                    self.outputs.len(),
                    index + 1
                ),
            );
            return Box::pin(stream::iter([Err(error)]));
        };
        let reason = match recorded.ids.last() {
            Some(id) if request.stop_ids.contains(id) => FinishReason::Stop,
            Some(_) => FinishReason::Length,
            None => FinishReason::Stop,
        };
        let usage = Usage {
            prompt_tokens: request.prompt.len(),
            generated_tokens: recorded.ids.len(),
            ..Usage::default()
        };
        Box::pin(stream::iter([
            Ok(EngineEvent::Delta {
                ids: recorded.ids.clone(),
                text: recorded.text.clone(),
            }),
            Ok(EngineEvent::Finished { reason, usage }),
        ]))
    }
}
