//! The engine's event stream: picks become deltas, decoded as they come, then the end.

use glm_engine::{Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest};
use tokio::sync::mpsc;

use crate::decoder::Decoder;
use crate::engine::{EmbeddedEngine, RunEnd};
use crate::picker::Picked;

impl Engine for EmbeddedEngine {
    fn describe(&self) -> String {
        let down = match &self.report.down_isq {
            Some(d) => format!(" down={d}"),
            None => String::new(),
        };
        format!(
            "embedded:{} isq={}{down}",
            self.config.model_dir.display(),
            self.report.isq.as_deref().unwrap_or("none")
        )
    }

    fn context_length(&self) -> Option<usize> {
        self.shape.context
    }

    /// The sampler masks every id that would leave [`GenerateRequest::starts_with`].
    fn constrains(&self) -> bool {
        true
    }

    /// The sampler masks every id that would leave the request's grammar.
    fn structures(&self) -> glm_engine::Structures {
        glm_engine::Structures::JsonOrCalls
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        let (picks, run) = self.start(request, false);
        let state = StreamState {
            picks: Some(picks),
            run: Some(Box::pin(run)),
            decoder: Decoder::new(self.tokenizer.clone()),
            queue: std::collections::VecDeque::new(),
        };
        Box::pin(futures::stream::unfold(state, |mut s| async move {
            s.next().await.map(|item| (item, s))
        }))
    }
}

type RunFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunEnd, EngineError>> + Send + 'a>>;

struct StreamState<'a> {
    picks: Option<mpsc::UnboundedReceiver<Picked>>,
    run: Option<RunFuture<'a>>,
    decoder: Decoder,
    queue: std::collections::VecDeque<Result<EngineEvent, EngineError>>,
}

impl StreamState<'_> {
    async fn next(&mut self) -> Option<Result<EngineEvent, EngineError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            let run = self.run.as_mut()?;
            let picks = self.picks.as_mut();
            tokio::select! {
                biased;
                pick = async {
                    match picks {
                        Some(p) => p.recv().await,
                        None => std::future::pending().await,
                    }
                } => match pick {
                    Some(Picked::Token { id, .. }) => {
                        let text = self.decoder.push(id);
                        return Some(Ok(EngineEvent::Delta { ids: vec![id], text }));
                    }
                    Some(Picked::Sentinel) => {}
                    None => self.picks = None,
                },
                result = run => {
                    self.run = None;
                    let end = match result {
                        Ok(end) => end,
                        Err(e) => return Some(Err(e)),
                    };
                    // Picks still queued come before the end.
                    let mut ids = Vec::new();
                    let mut text = String::new();
                    if let Some(p) = self.picks.as_mut() {
                        while let Ok(pick) = p.try_recv() {
                            if let Picked::Token { id, .. } = pick {
                                ids.push(id);
                                text.push_str(&self.decoder.push(id));
                            }
                        }
                    }
                    text.push_str(&self.decoder.flush());
                    if !ids.is_empty() || !text.is_empty() {
                        self.queue.push_back(Ok(EngineEvent::Delta { ids, text }));
                    }
                    let reason = if end.stopped { FinishReason::Stop } else { FinishReason::Length };
                    self.queue.push_back(Ok(EngineEvent::Finished { reason, usage: end.usage }));
                }
            }
        }
    }
}
