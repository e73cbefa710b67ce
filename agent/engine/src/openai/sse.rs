//! Server-sent events into engine events: each byte of the stream looked at once, lines of at
//! most [`MAX_LINE`], the request's token limit and an idle limit enforced while reading (a
//! server that goes on for ever, or sends only keep-alive comments, is cut off), and a
//! malformed event quoted short.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::pieces::Pieces;
use super::{ControlToken, Dialect, OpenAiEngine, quote};
use crate::{Cause, EngineError, EngineEvent, FinishReason, GenerateRequest, Usage};

/// The ids of an OpenAI-shaped chunk's choice: `token_ids` (vLLM's `return_token_ids`, and
/// glm-agent's), else `token_id:N` entries of its logprobs (`return_tokens_as_token_ids`).
fn chunk_ids(choice: &Value) -> Vec<u32> {
    let ids = |values: &[Value], read: fn(&Value) -> Option<u32>| -> Vec<u32> {
        values.iter().filter_map(read).collect()
    };
    if let Some(values) = choice["token_ids"].as_array() {
        return ids(values, |v| v.as_u64().and_then(|n| u32::try_from(n).ok()));
    }
    choice["logprobs"]["tokens"]
        .as_array()
        .map(|tokens| {
            ids(tokens, |t| {
                t.as_str()?.strip_prefix("token_id:")?.parse().ok()
            })
        })
        .unwrap_or_default()
}

/// The event stream of one request, parsed from server-sent events.
pub(super) fn async_stream(
    engine: &OpenAiEngine,
    request: GenerateRequest,
) -> impl futures::Stream<Item = Result<EngineEvent, EngineError>> + Send + '_ {
    let body = engine.body(&request);
    let state = SseState::new(engine, &request);
    futures::stream::once(async move {
        let started = Instant::now();
        let response = engine.open(&body).await?;
        Ok::<_, EngineError>((response, started))
    })
    .flat_map(move |opened| match opened {
        Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
        Ok((response, started)) => sse_events(response, started, state.clone()).boxed(),
    })
}

#[derive(Clone)]
struct SseState {
    dialect: Dialect,
    /// Control tokens, for llama.cpp's chunks that carry an id without its text.
    control: Vec<ControlToken>,
    /// Every token's bytes, to recover the ids llama.cpp holds back (see [`Pieces`]).
    pieces: Option<Arc<Pieces>>,
    /// The tokens llama.cpp says it generated so far (`tokens_predicted`).
    predicted: usize,
    /// Whether an id was lost: the stream's ids are then not the model's, and from there on
    /// only text is given (the reader encodes the whole text).
    lost: bool,
    /// Whether [`EngineEvent::IdsLost`] was sent.
    lost_told: bool,
    stop_ids: Vec<u32>,
    /// Bytes of the line being received (a character may be split between network reads).
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no line end: each byte is looked at once.
    scanned: usize,
    usage: Usage,
    reason: Option<FinishReason>,
    first_token: Option<Instant>,
    done: bool,
    /// Tokens received (a delta without ids counts as one), and the most that will be read:
    /// a server that goes on past the request's limit is cut off there.
    received: usize,
    most: usize,
    /// The longest wait for the next token; comments and keep-alive lines do not reset it.
    idle: Duration,
    /// When the last token arrived.
    last_delta: Instant,
}

impl SseState {
    fn new(engine: &OpenAiEngine, request: &GenerateRequest) -> Self {
        SseState {
            dialect: engine.dialect,
            control: engine.control.clone(),
            pieces: engine.pieces.clone(),
            predicted: 0,
            lost: false,
            lost_told: false,
            stop_ids: request.stop_ids.clone(),
            buffer: Vec::new(),
            scanned: 0,
            usage: Usage {
                prompt_tokens: request.prompt.len(),
                ..Usage::default()
            },
            reason: None,
            first_token: None,
            done: false,
            received: 0,
            most: token_ceiling(request.max_new_tokens),
            idle: engine.config.read_timeout,
            last_delta: Instant::now(),
        }
    }

    /// Handles one `data:` payload; returns the delta it carries, if any.
    fn data(&mut self, data: &str) -> Result<Option<EngineEvent>, EngineError> {
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            EngineError::new(
                Cause::StreamEnded,
                format!("the server sent a malformed event ({e}): {}", quote(data)),
            )
        })?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            return Err(EngineError::new(
                Cause::StreamEnded,
                format!("the server failed mid-stream: {}", quote(message)),
            ));
        }
        let (text, ids) = match self.dialect {
            Dialect::LlamaCpp => self.llama_chunk(&chunk),
            _ => self.openai_chunk(&chunk),
        };
        if text.is_empty() && ids.is_empty() {
            return Ok(None);
        }
        self.received += ids.len().max(1);
        if self.received >= self.most {
            // Past what was asked for: the rest is not read.
            self.reason = Some(FinishReason::Length);
            self.done = true;
        }
        self.first_token.get_or_insert_with(Instant::now);
        Ok(Some(EngineEvent::Delta { ids, text }))
    }

    fn openai_chunk(&mut self, chunk: &Value) -> (String, Vec<u32>) {
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage.prompt_tokens =
                count(&usage["prompt_tokens"]).unwrap_or(self.usage.prompt_tokens);
            self.usage.generated_tokens =
                count(&usage["completion_tokens"]).unwrap_or(self.usage.generated_tokens);
            self.usage.cached_prompt_tokens =
                count(&usage["prompt_tokens_details"]["cached_tokens"]);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return (String::new(), Vec::new());
        };
        match choice["finish_reason"].as_str() {
            Some("length") => self.reason = Some(FinishReason::Length),
            Some(_) => self.reason = Some(FinishReason::Stop),
            None => {}
        }
        let text = choice["text"].as_str().unwrap_or_default().to_owned();
        (text, chunk_ids(choice))
    }

    /// A chunk of llama.cpp's `/completion` stream: `content`, `tokens`, and on the last one
    /// `stop: true` with `stop_type`. Generation ends here at the first stop id.
    fn llama_chunk(&mut self, chunk: &Value) -> (String, Vec<u32>) {
        self.usage.prompt_tokens =
            count(&chunk["tokens_evaluated"]).unwrap_or(self.usage.prompt_tokens);
        if let Some(cached) = count(&chunk["timings"]["cache_n"]) {
            self.usage.cached_prompt_tokens = Some(cached);
        }
        let mut text = chunk["content"].as_str().unwrap_or_default().to_owned();
        let mut ids: Vec<u32> = chunk["tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            })
            .unwrap_or_default();
        self.recover_held(chunk, &text, &mut ids);
        if let Some(at) = ids.iter().position(|id| self.stop_ids.contains(id)) {
            ids.truncate(at + 1);
            self.reason = Some(FinishReason::Stop);
            self.done = true;
        } else if chunk["stop"].as_bool() == Some(true) {
            self.reason = Some(match chunk["stop_type"].as_str() {
                Some("limit") => FinishReason::Length,
                _ => FinishReason::Stop,
            });
            self.done = true;
        }
        // A control token the server does not render (an end-of-generation token, or one it
        // was not asked to keep) gets its text here, after what came with it.
        for id in &ids {
            if let Some((token, _)) = self.control.iter().find(|c| c.1 == *id)
                && !text.contains(token.as_str())
            {
                text.push_str(token);
            }
        }
        self.usage.generated_tokens += ids.len();
        if self.lost {
            ids.clear();
        }
        (text, ids)
    }

    /// Puts back before `ids` the ids llama.cpp held back, when its count of generated tokens
    /// says some are missing; when they cannot be known for certain, the stream's ids are lost.
    fn recover_held(&mut self, chunk: &Value, text: &str, ids: &mut Vec<u32>) {
        // The last chunk counts every token but carries none of them when streaming.
        if chunk["stop"].as_bool() == Some(true) {
            return;
        }
        let Some(predicted) = count(&chunk["tokens_predicted"]) else {
            return;
        };
        let held = predicted.saturating_sub(self.predicted + ids.len());
        self.predicted = predicted;
        if held == 0 || self.lost {
            return;
        }
        match self
            .pieces
            .as_ref()
            .and_then(|p| p.held_back(text, ids, held))
        {
            Some(mut before) => {
                before.append(ids);
                *ids = before;
            }
            None => self.lost = true,
        }
    }
}

impl SseState {
    /// Reads the lines `chunk` completes: their events, and whether the stream failed (its
    /// error is the last event; what came before it is kept).
    fn take(&mut self, chunk: &[u8]) -> (Vec<Result<EngineEvent, EngineError>>, bool) {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        // Lines after the end (llama.cpp's final chunk, a stop id seen here) are not read: the
        // stream is dropped with the response.
        while !self.done
            && let Some(found) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n')
        {
            let end = self.scanned + found;
            let line = String::from_utf8_lossy(&self.buffer[start..end]).into_owned();
            start = end + 1;
            self.scanned = start;
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            match self.data(data.trim()) {
                Ok(Some(event)) => {
                    self.last_delta = Instant::now();
                    if self.lost && !self.lost_told {
                        self.lost_told = true;
                        events.push(Ok(EngineEvent::IdsLost));
                    }
                    events.push(Ok(event));
                }
                Ok(None) => {}
                Err(e) => {
                    events.push(Err(e));
                    self.done = false;
                    return (events, true);
                }
            }
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_LINE {
            events.push(Err(EngineError::new(
                Cause::StreamEnded,
                format!(
                    "the server sent over {} MiB without ending a line",
                    MAX_LINE >> 20
                ),
            )));
            return (events, true);
        }
        (events, false)
    }
}

fn count(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// The most tokens read of an answer limited to `max_new_tokens`: the limit and a margin (a
/// server may count a little differently, and its last chunk carries the usage).
fn token_ceiling(max_new_tokens: u32) -> usize {
    let limit = max_new_tokens as usize;
    limit + limit / 8 + 16
}

/// The longest server-sent line read: llama.cpp's last event repeats the prompt's text.
const MAX_LINE: usize = 64 << 20;

fn sse_events(
    response: reqwest::Response,
    started: Instant,
    state: SseState,
) -> impl futures::Stream<Item = Result<EngineEvent, EngineError>> + Send {
    let bytes = response.bytes_stream();
    futures::stream::unfold(
        (
            bytes,
            state,
            Vec::<Result<EngineEvent, EngineError>>::new(),
            false,
        ),
        move |(mut bytes, mut state, mut pending, finished)| async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((event, (bytes, state, pending, finished)));
                }
                if finished {
                    return None;
                }
                if state.done {
                    let now = Instant::now();
                    let first = state.first_token.unwrap_or(now);
                    state.usage.prefill = first - started;
                    state.usage.decode = now - first;
                    let reason = state.reason.unwrap_or(FinishReason::Stop);
                    let usage = std::mem::take(&mut state.usage);
                    return Some((
                        Ok(EngineEvent::Finished { reason, usage }),
                        (bytes, state, pending, true),
                    ));
                }
                let progress = state.first_token.unwrap_or(started).max(state.last_delta);
                let next = tokio::time::timeout_at((progress + state.idle).into(), bytes.next());
                let Ok(next) = next.await else {
                    let error = EngineError::new(
                        Cause::StreamEnded,
                        format!(
                            "the server sent no token for {} s (--engine's read timeout)",
                            state.idle.as_secs()
                        ),
                    );
                    return Some((Err(error), (bytes, state, pending, true)));
                };
                match next {
                    Some(Ok(chunk)) => {
                        let (events, failed) = state.take(&chunk);
                        pending = events.into_iter().rev().collect();
                        if failed {
                            let first = pending.pop();
                            return first.map(|e| (e, (bytes, state, pending, true)));
                        }
                    }
                    Some(Err(e)) => {
                        let error =
                            EngineError::new(Cause::StreamEnded, format!("the stream broke: {e}"));
                        return Some((Err(error), (bytes, state, pending, true)));
                    }
                    None => {
                        if !state.done {
                            let error = EngineError::new(
                                Cause::StreamEnded,
                                "the server closed the stream before [DONE]",
                            );
                            return Some((Err(error), (bytes, state, pending, true)));
                        }
                    }
                }
            }
        },
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a stream whose body arrives in `chunks`.
    async fn events_of(chunks: Vec<Vec<u8>>) -> Vec<Result<EngineEvent, EngineError>> {
        events_from(Dialect::Vllm, None, chunks).await
    }

    /// The events of a stream of `dialect` whose body arrives in `chunks`.
    async fn events_from(
        dialect: Dialect,
        pieces: Option<Pieces>,
        chunks: Vec<Vec<u8>>,
    ) -> Vec<Result<EngineEvent, EngineError>> {
        let reads = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let response =
            reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(reads)));
        let state = SseState {
            dialect,
            control: Vec::new(),
            pieces: pieces.map(Arc::new),
            predicted: 0,
            lost: false,
            lost_told: false,
            stop_ids: Vec::new(),
            buffer: Vec::new(),
            scanned: 0,
            usage: Usage::default(),
            reason: None,
            first_token: None,
            done: false,
            received: 0,
            most: token_ceiling(16),
            idle: Duration::from_secs(5),
            last_delta: Instant::now(),
        };
        sse_events(response, Instant::now(), state).collect().await
    }

    /// llama.cpp's chunks for `(content, tokens, tokens_predicted)`, then its last chunk.
    fn llama_stream(chunks: &[(&str, &[u32], usize)]) -> Vec<Vec<u8>> {
        let mut body: Vec<Vec<u8>> = chunks
            .iter()
            .map(|(content, tokens, predicted)| {
                let chunk = serde_json::json!({
                    "content": content, "tokens": tokens, "stop": false,
                    "tokens_predicted": predicted,
                });
                format!("data: {chunk}\n\n").into_bytes()
            })
            .collect();
        let last = serde_json::json!({
            "content": "", "tokens": [], "stop": true, "stop_type": "limit",
            "tokens_predicted": chunks.last().map_or(0, |c| c.2),
        });
        body.push(format!("data: {last}\n\n").into_bytes());
        body
    }

    fn deltas(events: &[Result<EngineEvent, EngineError>]) -> Vec<(Vec<u32>, String)> {
        events
            .iter()
            .filter_map(|e| match e {
                Ok(EngineEvent::Delta { ids, text }) => Some((ids.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every byte a token, and "\xf0\x9f" one too.
    fn byte_pieces() -> Pieces {
        let bytes = (0..=255u8).map(|b| (u32::from(b), vec![b]));
        Pieces::new(bytes.chain([(300, vec![0xf0, 0x9f])]))
    }

    #[tokio::test]
    async fn ids_llama_cpp_holds_back_are_recovered_from_the_text() {
        // "aé": a, then c3 held and sent with a9; then "😀" as f0, 9f, 98 held and 80 sent.
        let stream = llama_stream(&[
            ("a", &[0x61], 1),
            ("\u{e9}", &[0xa9], 3),
            ("\u{1f600}", &[0x80], 7),
        ]);
        let events = events_from(Dialect::LlamaCpp, Some(byte_pieces()), stream).await;
        assert_eq!(
            deltas(&events),
            vec![
                (vec![0x61], "a".into()),
                (vec![0xc3, 0xa9], "\u{e9}".into()),
                (vec![0xf0, 0x9f, 0x98, 0x80], "\u{1f600}".into()),
            ]
        );
        assert!(!events.iter().any(|e| matches!(e, Ok(EngineEvent::IdsLost))));
        let Some(Ok(EngineEvent::Finished { usage, .. })) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(usage.generated_tokens, 7);
    }

    #[tokio::test]
    async fn ids_that_cannot_be_known_are_not_given() {
        // Without a vocabulary: the ids from the first loss on are not given.
        let stream = llama_stream(&[("a", &[0x61], 1), ("\u{e9}", &[0xa9], 3), ("b", &[0x62], 4)]);
        let events = events_from(Dialect::LlamaCpp, None, stream).await;
        assert_eq!(
            deltas(&events),
            vec![
                (vec![0x61], "a".into()),
                (vec![], "\u{e9}".into()),
                (vec![], "b".into()),
            ]
        );
        // Said once, before the first delta whose ids are missing.
        assert!(matches!(events[1], Ok(EngineEvent::IdsLost)), "{events:?}");
        // With the vocabulary, two held tokens before 80 are f0 9f | 98 or f0 | 9f 98 when both
        // are tokens: taken only when one split exists.
        let stream = llama_stream(&[("\u{1f600}", &[0x80], 3)]);
        let pieces = Pieces::new(
            (0..=255u8)
                .map(|b| (u32::from(b), vec![b]))
                .chain([(300, vec![0xf0, 0x9f]), (301, vec![0x9f, 0x98])]),
        );
        let events = events_from(Dialect::LlamaCpp, Some(pieces), stream).await;
        assert_eq!(deltas(&events), vec![(vec![], "\u{1f600}".into())]);
    }

    #[tokio::test]
    async fn a_character_split_between_reads_arrives_whole() {
        let body = "data: {\"choices\": [{\"text\": \"北京\", \"finish_reason\": \"stop\"}]}\n\ndata: [DONE]\n\n";
        let cut = body.find('京').unwrap() + 1;
        let events = events_of(vec![
            body.as_bytes()[..cut].to_vec(),
            body.as_bytes()[cut..].to_vec(),
        ])
        .await;
        assert!(
            matches!(&events[0], Ok(EngineEvent::Delta { text, .. }) if text == "北京"),
            "{events:?}"
        );
        assert!(matches!(events[1], Ok(EngineEvent::Finished { .. })));
    }

    #[tokio::test]
    async fn a_line_without_end_is_cut_and_events_before_an_error_are_kept() {
        let mut chunks = vec![b"data: {\"choices\": [{\"text\": \"a\"}]}\n".to_vec()];
        chunks.extend((0..65).map(|_| vec![b'x'; 1 << 20]));
        let events = events_of(chunks).await;
        assert!(matches!(&events[0], Ok(EngineEvent::Delta { text, .. }) if text == "a"));
        let last = events.last().unwrap().as_ref().unwrap_err();
        assert!(last.message.contains("without ending a line"), "{last}");

        let events = events_of(vec![
            b"data: {\"choices\": [{\"text\": \"a\"}]}\ndata: {\"error\": {\"message\": \"gone\"}}\n"
                .to_vec(),
        ])
        .await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[1].as_ref().unwrap_err().message.contains("gone"));
    }
}
