//! A scripted engine (an answer's text, encoded with the tiny tokenizer, or an endless stream)
//! and a server over it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use glm_agent::engine::{Engine, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage};
use glm_serve::{Options, Server};

/// What the scripted engine does with every request.
#[derive(Clone)]
pub enum Script {
    /// Answers this text (control tokens spelled out), then finishes.
    Answer(String),
    /// Streams "x" every `every` for ever.
    Endless { every: Duration },
}

pub struct Scripted {
    pub script: Script,
    pub context: Option<usize>,
}

impl Engine for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn context_length(&self) -> Option<usize> {
        self.context
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        let encoder = glm_test_support::tiny_encoder();
        match self.script.clone() {
            Script::Answer(text) => {
                let ids = encoder
                    .encode(&glm_prompts::Segments::from_spelled(&text).0)
                    .unwrap();
                let events = vec![
                    Ok(EngineEvent::Delta {
                        ids: ids.clone(),
                        text,
                    }),
                    Ok(EngineEvent::Finished {
                        reason: FinishReason::Stop,
                        usage: Usage {
                            prompt_tokens: request.prompt.len(),
                            generated_tokens: ids.len(),
                            ..Usage::default()
                        },
                    }),
                ];
                futures::stream::iter(events).boxed()
            }
            Script::Endless { every } => futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((
                    Ok(EngineEvent::Delta {
                        ids: vec![b'x' as u32],
                        text: "x".into(),
                    }),
                    (),
                ))
            })
            .boxed(),
        }
    }
}

/// A server answering `script`, with `options` changed by `tune`.
pub fn server(script: Script, tune: impl FnOnce(&mut Options)) -> Arc<Server> {
    let mut options = Options::new("glm-test");
    tune(&mut options);
    let engine = Scripted {
        script,
        context: Some(1 << 20),
    };
    Server::new(Arc::new(engine), glm_test_support::tiny_encoder(), options)
}
