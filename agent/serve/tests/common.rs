//! A scripted engine (an answer's text, encoded with the tiny tokenizer, or an endless stream)
//! and a server over it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use glm_agent::engine::{Engine, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage};
use glm_serve::{Options, Server};

/// The prompts a scripted engine was given, in order.
pub type Prompts = Arc<Mutex<Vec<Vec<u32>>>>;

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
    /// Every prompt it was given, in order.
    pub prompts: Prompts,
}

impl Engine for Scripted {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn context_length(&self) -> Option<usize> {
        self.context
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        if let Ok(mut prompts) = self.prompts.lock() {
            prompts.push(request.prompt.clone());
        }
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
    recording_server(script, tune).0
}

/// [`server`], and the prompts its engine is given.
pub fn recording_server(script: Script, tune: impl FnOnce(&mut Options)) -> (Arc<Server>, Prompts) {
    let mut options = Options::new("glm-test");
    tune(&mut options);
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let engine = Scripted {
        script,
        context: Some(1 << 20),
        prompts: prompts.clone(),
    };
    let server = Server::new(Arc::new(engine), glm_test_support::tiny_encoder(), options);
    (server, prompts)
}
