//! One request's generation: a task that owns it (so a client that goes away cancels it), its
//! stop strings, its answer read as it streams, and the response, streamed or whole.
//!
//! The task runs in three stages: [`Generation::open`] (the role chunk and the forced start),
//! [`Generation::drive`] (the engine's stream to its end, a stop string, a failure or a client
//! gone) and [`Generation::finish`] (usage, the remembered ids, the trace, the last chunks or the
//! body).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use glm_agent::engine::{Collector, EngineError, FinishReason, Progress, Usage};
use glm_agent::{End, Event, prefix_hash};
use glm_prompts::{Piece, Reader, Segments};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::Server;
use crate::error::ApiError;
use crate::job::{Job, Kind};
use crate::response::{
    ChatChoice, ChatCompletion, ChunkChoice, Completion, CompletionChoice, Delta, Function, Head,
    Message, ToolCall, to_json,
};
use crate::responses;

/// A queue place: held by a request until its generation ends.
pub(crate) type Place = tokio::sync::OwnedSemaphorePermit;

/// What the job's task sends to the response.
enum Out {
    /// A streamed chunk, as JSON.
    Chunk(String),
    /// The whole answer (unstreamed), as JSON.
    Body(String),
    /// A named event of a Responses stream, as JSON.
    Event(&'static str, String),
    /// The end of a stream.
    Done,
    /// The end of a Responses stream (which sends no `[DONE]`).
    End,
    /// A failure.
    Fail(ApiError),
}

/// Starts the job and answers: server-sent events, or one JSON body when it is done.
pub(crate) async fn respond(
    server: Arc<Server>,
    job: Job,
    place: Place,
    started: Instant,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let streaming = job.stream;
    tokio::spawn(run(server, job, place, tx, started));
    if streaming {
        let events = futures::stream::unfold(Some(rx), |state| async move {
            let mut rx = state?;
            match rx.recv().await {
                Some(Out::Chunk(v)) => Some((SseEvent::default().data(v), Some(rx))),
                Some(Out::Event(name, v)) => {
                    Some((SseEvent::default().event(name).data(v), Some(rx)))
                }
                Some(Out::Fail(e)) => Some((SseEvent::default().data(e.body().to_string()), None)),
                Some(Out::Done) => Some((SseEvent::default().data("[DONE]"), None)),
                Some(Out::Body(_) | Out::End) | None => None,
            }
        })
        .map(Ok::<_, Infallible>);
        return Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    loop {
        match rx.recv().await {
            Some(Out::Body(v)) => {
                let json = [(header::CONTENT_TYPE, "application/json")];
                return (json, v).into_response();
            }
            Some(Out::Fail(e)) => return e.into_response(),
            Some(Out::Chunk(_) | Out::Event(..) | Out::Done | Out::End) => continue,
            None => {
                return ApiError::server("the generation ended without an answer").into_response();
            }
        }
    }
}

/// The longest tail of `text` (from `from`) that may be the start of a stop string, and the
/// earliest stop string in `text[from..]`.
fn scan_stops(text: &str, from: usize, stops: &[String]) -> (usize, bool) {
    if stops.is_empty() {
        return (text.len(), false);
    }
    let rest = &text[from..];
    if let Some(at) = stops.iter().filter_map(|s| rest.find(s.as_str())).min() {
        return (from + at, true);
    }
    let hold = stops.iter().map(String::len).max().unwrap_or(1) - 1;
    let mut end = text.len().saturating_sub(hold).max(from);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (end.max(from), false)
}

fn head(job: &Job, object: &'static str) -> Head {
    let prefix = match job.kind {
        Kind::Chat { .. } => "chatcmpl",
        Kind::Completion { .. } => "cmpl",
    };
    Head {
        id: format!("{prefix}-{:016x}", job.number),
        object,
        created: job.created,
        model: job.model.clone(),
        system_fingerprint: None,
    }
}

/// A chat chunk around `delta`.
fn chat_chunk(job: &Job, delta: Delta, finish: Option<&'static str>) -> String {
    to_json(&ChatCompletion {
        head: head(job, "chat.completion.chunk"),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }],
        usage: None,
    })
}

/// A completion, whole or a chunk; `ids` are the generated ids it carries, when the client
/// asked for them.
fn completion(
    job: &Job,
    text: &str,
    ids: Option<&[u32]>,
    finish: Option<&'static str>,
) -> Completion {
    Completion {
        head: head(job, "text_completion"),
        choices: vec![CompletionChoice {
            index: 0,
            text: text.to_owned(),
            logprobs: None,
            finish_reason: finish,
            token_ids: ids.map(<[u32]>::to_vec),
        }],
        usage: None,
    }
}

fn call_id(job: &Job, index: usize) -> String {
    format!("call_{:016x}{index:02}", job.number)
}

fn piece_delta(job: &Job, piece: &Piece) -> Delta {
    match piece {
        Piece::Content(text) => Delta {
            content: Some(text.clone()),
            ..Delta::default()
        },
        Piece::CallStart { index, name } => Delta {
            tool_calls: Some(vec![ToolCall {
                index: Some(*index),
                id: Some(call_id(job, *index)),
                kind: Some("function"),
                function: Function {
                    name: Some(name.clone()),
                    arguments: String::new(),
                },
            }]),
            ..Delta::default()
        },
        Piece::CallArguments { index, arguments } => Delta {
            tool_calls: Some(vec![ToolCall {
                index: Some(*index),
                id: None,
                kind: None,
                function: Function {
                    name: None,
                    arguments: arguments.clone(),
                },
            }]),
            ..Delta::default()
        },
    }
}

/// The job, to its end or until the client goes away; the queue place is given back as soon as
/// the engine's stream is done with.
async fn run(server: Arc<Server>, job: Job, place: Place, tx: mpsc::Sender<Out>, started: Instant) {
    let out = Outbox {
        tx,
        wait: server.options.limits.write_timeout,
    };
    let mut generation = Generation::new(&job);
    generation.open(&job, &out).await;
    let ended = generation.drive(&server, &job, &out).await;
    drop(place);
    match ended {
        Ended::Gone => server.log(format_args!(
            "POST {} cancelled: the client went away or stopped reading after {} generated tokens ({:.1} s)",
            job.endpoint,
            generation.collected.ids().len(),
            started.elapsed().as_secs_f64()
        )),
        Ended::Failed(e) => {
            let error = ApiError::from_engine(&e);
            if job.stream {
                // An unstreamed failure is an answer the router logs; a stream's is not.
                server.log(format_args!(
                    "POST {} {} {} ({} ms)",
                    job.endpoint,
                    error.status.as_u16(),
                    e.message,
                    started.elapsed().as_millis()
                ));
            }
            match generation.responses.as_mut() {
                Some(stream) if job.stream => {
                    let (name, data) = stream.failed(&job, "server_error", &error.message);
                    out.send(Out::Event(name, data)).await;
                    out.send(Out::End).await;
                }
                _ => {
                    out.send(Out::Fail(error)).await;
                }
            }
        }
        Ended::Finished {
            reason,
            usage,
            by_string,
        } => {
            let end = Finish {
                reason,
                usage,
                by_string,
                started,
            };
            generation.finish(&server, &job, &out, end).await;
        }
    }
}

/// Sends to the response, giving up on a client that leaves its answer unread for too long.
struct Outbox {
    tx: mpsc::Sender<Out>,
    wait: std::time::Duration,
}

impl Outbox {
    /// Whether it went (false: the client is gone or stopped reading).
    async fn send(&self, out: Out) -> bool {
        matches!(
            tokio::time::timeout(self.wait, self.tx.send(out)).await,
            Ok(Ok(()))
        )
    }
}

/// How the engine's stream ended.
enum Ended {
    /// It finished, or a stop string ended it (`by_string`).
    Finished {
        reason: FinishReason,
        usage: Option<Usage>,
        by_string: bool,
    },
    /// The client went away or stopped reading.
    Gone,
    /// The engine failed.
    Failed(EngineError),
}

/// How a finished generation ended, for its last stage.
struct Finish {
    reason: FinishReason,
    usage: Option<Usage>,
    by_string: bool,
    started: Instant,
}

/// One answer as it is generated.
struct Generation {
    /// Reads a chat answer into content and calls (none for a raw completion).
    reader: Option<Reader>,
    /// Read but not yet sent.
    pieces: Vec<Piece>,
    /// The ids and text generated so far.
    collected: Collector,
    /// Bytes of `raw` passed on (the rest may be the start of a stop string).
    sent: usize,
    /// Generated ids already sent in a chunk, when the client asked for them.
    ids_sent: usize,
    /// Whether a raw completion's chunks carry their ids.
    token_ids: bool,
    /// The output items of a Responses answer, as streamed.
    responses: Option<responses::stream::Stream>,
}

impl Generation {
    fn new(job: &Job) -> Self {
        Generation {
            reader: match &job.kind {
                Kind::Chat { names, .. } => Some(Reader::new(names)),
                Kind::Completion { .. } => None,
            },
            pieces: Vec::new(),
            collected: Collector::default(),
            sent: 0,
            ids_sent: 0,
            token_ids: matches!(job.kind, Kind::Completion { token_ids: true }),
            responses: job
                .responses
                .is_some()
                .then(responses::stream::Stream::default),
        }
    }

    /// The role chunk of a streamed chat answer, and the forced start read as the answer's
    /// beginning (a forced name streams as the call's name).
    async fn open(&mut self, job: &Job, out: &Outbox) {
        if let Some(stream) = self.responses.as_mut().filter(|_| job.stream) {
            for (name, data) in stream.open(job) {
                out.send(Out::Event(name, data)).await;
            }
        } else if job.stream && self.reader.is_some() {
            let role = Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                tool_calls: None,
            };
            out.send(Out::Chunk(chat_chunk(job, role, None))).await;
        }
        if let (Some(r), Kind::Chat { prefill, .. }) = (self.reader.as_mut(), &job.kind) {
            self.pieces.extend(r.push(&prefill.0));
        }
    }

    /// Sends what was read; false when the client is gone.
    async fn flush(&mut self, job: &Job, out: &Outbox) -> bool {
        if !job.stream {
            return true;
        }
        if let Some(stream) = self.responses.as_mut() {
            for piece in self.pieces.drain(..) {
                for (name, data) in stream.piece(job, &piece) {
                    if !out.send(Out::Event(name, data)).await {
                        return false;
                    }
                }
            }
            return true;
        }
        for piece in self.pieces.drain(..) {
            if !out
                .send(Out::Chunk(chat_chunk(job, piece_delta(job, &piece), None)))
                .await
            {
                return false;
            }
        }
        true
    }

    /// The engine's stream, to its end; dropping it stops a generation still running.
    async fn drive(&mut self, server: &Server, job: &Job, out: &Outbox) -> Ended {
        let mut stream = server.engine.generate(job.request.clone());
        loop {
            if !self.flush(job, out).await {
                return Ended::Gone;
            }
            let next = tokio::select! {
                biased;
                () = out.tx.closed() => return Ended::Gone,
                next = self.collected.next(&mut stream) => next,
            };
            let finished = match next {
                Ok(Progress::Delta(_)) => None,
                Ok(Progress::Finished { reason, usage }) => Some((reason, usage)),
                Err(e) => return Ended::Failed(e),
            };
            let (hit, fresh) = self.take(job, finished.is_some());
            if job.stream && self.reader.is_none() && !self.send_text(job, out, fresh).await {
                return Ended::Gone;
            }
            if hit {
                return Ended::Finished {
                    reason: FinishReason::Stop,
                    usage: finished.map(|f| f.1),
                    by_string: true,
                };
            }
            if let Some((reason, usage)) = finished {
                return Ended::Finished {
                    reason,
                    usage: Some(usage),
                    by_string: false,
                };
            }
        }
    }

    /// Reads what the last delta added; passes on what cannot be the start of a stop string (everything,
    /// at the end). Whether a stop string was found, and the text passed on.
    fn take(&mut self, job: &Job, last: bool) -> (bool, std::ops::Range<usize>) {
        let (ready, hit) = match scan_stops(self.collected.text(), self.sent, &job.stops) {
            (at, true) => (at, true),
            _ if last => (self.collected.text().len(), false),
            other => other,
        };
        if let Some(r) = self.reader.as_mut() {
            self.pieces
                .extend(r.push(&self.collected.text()[self.sent..ready]));
        }
        let fresh = self.sent..ready;
        self.sent = ready;
        (hit, fresh)
    }

    /// A raw completion's chunk of new text (and ids, when asked for); false when the client
    /// is gone.
    async fn send_text(&mut self, job: &Job, out: &Outbox, fresh: std::ops::Range<usize>) -> bool {
        let new_ids = self.token_ids && self.collected.ids().len() > self.ids_sent;
        if fresh.is_empty() && !new_ids {
            return true;
        }
        let ids = self
            .token_ids
            .then(|| &self.collected.ids()[self.ids_sent..]);
        let chunk = to_json(&completion(job, &self.collected.text()[fresh], ids, None));
        self.ids_sent = self.collected.ids().len();
        out.send(Out::Chunk(chunk)).await
    }

    /// The last stage: usage, the ids remembered for a follow-up, the log line, the trace, and
    /// the answer's last chunks or its body.
    async fn finish(mut self, server: &Server, job: &Job, out: &Outbox, end: Finish) {
        let mut usage = end.usage.unwrap_or_else(|| Usage {
            prompt_tokens: job.request.prompt.len(),
            generated_tokens: self.collected.ids().len(),
            ..Usage::default()
        });
        if self.collected.ids().is_empty() && !self.collected.text().is_empty() {
            // A backend that reports text only.
            let spelled = Segments::from_spelled(self.collected.text()).0;
            self.collected
                .set_ids(server.encoder.encode(&spelled).unwrap_or_default());
        }
        if usage.generated_tokens == 0 {
            // A backend that does not count (a recording).
            usage.generated_tokens = self.collected.ids().len();
        }
        if let Some(r) = self.reader.as_mut() {
            self.pieces.extend(r.finish());
        }
        let finish = match (end.reason, self.reader.as_ref()) {
            (FinishReason::Length, _) => "length",
            (_, Some(r)) if !r.calls.is_empty() => "tool_calls",
            _ => "stop",
        };
        let took = end.started.elapsed();
        server.log(format_args!(
            "POST {} 200 prompt={} cached={} generated={} finish={finish} {:.0} ms",
            job.endpoint,
            usage.prompt_tokens,
            usage.cached_prompt_tokens.unwrap_or(0),
            usage.generated_tokens,
            took.as_secs_f64() * 1000.0
        ));
        let answer = self.answer(server, job, end.by_string);
        if server.options.trace_dir.is_some() {
            let outcome = Outcome {
                ids: self.collected.ids(),
                raw: self.collected.text(),
                reason: end.reason,
                usage: &usage,
                answer: answer.as_ref(),
                took,
            };
            write_trace(server, job, &outcome);
        }
        if let Some((content, calls)) = answer.as_ref().filter(|_| job.responses.is_some()) {
            self.finish_response(server, job, out, (content, calls), finish, &usage)
                .await;
        } else if job.stream {
            self.send_last_chunks(job, out, finish, &usage).await;
        } else {
            let body = self.body(job, answer, finish, &usage);
            out.send(Out::Body(body)).await;
        }
    }

    /// A chat answer's content and calls; its ids are remembered for a follow-up that sends it
    /// back (unless a stop string cut it: then the ids say more than the answer).
    fn answer(&self, server: &Server, job: &Job, by_string: bool) -> Option<Answer> {
        let (Kind::Chat { hash, prefill, .. }, Some(r)) = (&job.kind, self.reader.as_ref()) else {
            return None;
        };
        let calls: Vec<(String, String)> = r
            .calls
            .iter()
            .map(|c| (c.name.clone(), c.arguments.clone()))
            .collect();
        if !by_string {
            let mut kept = prefill.1.clone();
            kept.extend(self.collected.ids());
            if kept
                .last()
                .is_some_and(|l| job.request.stop_ids.contains(l))
            {
                kept.pop();
            }
            server.memory.put(hash.key(&r.content, &calls), kept);
        }
        Some((r.content.clone(), calls))
    }

    /// A Responses answer's end: kept for a follow-up (unless `store` is false), then its last
    /// events or its body.
    async fn finish_response(
        &mut self,
        server: &Server,
        job: &Job,
        out: &Outbox,
        (content, calls): (&str, &[(String, String)]),
        finish: &'static str,
        usage: &Usage,
    ) {
        let Some(meta) = job.responses.as_deref() else {
            return;
        };
        if meta.store {
            server.stored.put(
                responses::stream::response_id(job),
                meta.previous_response_id.clone(),
                responses::stream::added_messages(job, content, calls),
            );
        }
        let status = if finish == "length" {
            responses::stream::Status::Incomplete
        } else {
            responses::stream::Status::Completed
        };
        if !job.stream {
            let body = responses::stream::body(job, content, calls, status, usage);
            out.send(Out::Body(body)).await;
            return;
        }
        if !self.flush(job, out).await {
            return;
        }
        let last = self
            .responses
            .as_mut()
            .map(|s| s.finish(job, status, usage));
        for (name, data) in last.unwrap_or_default() {
            out.send(Out::Event(name, data)).await;
        }
        out.send(Out::End).await;
    }

    async fn send_last_chunks(
        &mut self,
        job: &Job,
        out: &Outbox,
        finish: &'static str,
        usage: &Usage,
    ) {
        if !self.flush(job, out).await {
            return;
        }
        let last = match &job.kind {
            Kind::Chat { .. } => chat_chunk(job, Delta::default(), Some(finish)),
            Kind::Completion { .. } => {
                let ids = self.collected.ids().get(self.ids_sent..).unwrap_or(&[]);
                to_json(&completion(
                    job,
                    "",
                    self.token_ids.then_some(ids),
                    Some(finish),
                ))
            }
        };
        out.send(Out::Chunk(last)).await;
        if job.usage_chunk {
            let chunk = match &job.kind {
                Kind::Chat { .. } => to_json(&ChatCompletion::<ChunkChoice> {
                    head: head(job, "chat.completion.chunk"),
                    choices: Vec::new(),
                    usage: Some(usage.into()),
                }),
                Kind::Completion { .. } => to_json(&Completion {
                    head: head(job, "text_completion"),
                    choices: Vec::new(),
                    usage: Some(usage.into()),
                }),
            };
            out.send(Out::Chunk(chunk)).await;
        }
        out.send(Out::Done).await;
    }

    fn body(
        &self,
        job: &Job,
        answer: Option<Answer>,
        finish: &'static str,
        usage: &Usage,
    ) -> String {
        let Some((content, calls)) = answer else {
            let ids = self.token_ids.then_some(self.collected.ids());
            let mut body = completion(job, &self.collected.text()[..self.sent], ids, Some(finish));
            body.usage = Some(usage.into());
            return to_json(&body);
        };
        let content = (!content.is_empty() || calls.is_empty()).then_some(content);
        let tool_calls = calls
            .into_iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                index: None,
                id: Some(call_id(job, i)),
                kind: Some("function"),
                function: Function {
                    name: Some(name),
                    arguments,
                },
            })
            .collect();
        to_json(&ChatCompletion {
            head: head(job, "chat.completion"),
            choices: vec![ChatChoice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls,
                },
                logprobs: None,
                finish_reason: finish,
            }],
            usage: Some(usage.into()),
        })
    }
}

/// A chat answer: its content and its calls (name, arguments).
type Answer = (String, Vec<(String, String)>);

/// What a trace records of a finished generation.
struct Outcome<'a> {
    ids: &'a [u32],
    raw: &'a str,
    reason: FinishReason,
    usage: &'a Usage,
    answer: Option<&'a Answer>,
    took: std::time::Duration,
}
/// One trace per request: the request as received, what was remembered, and the model turn.
fn write_trace(server: &Server, job: &Job, outcome: &Outcome<'_>) {
    let Some(dir) = &server.options.trace_dir else {
        return;
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("serve-{stamp}-{:016x}", job.number);
    let mut writer = match glm_agent::trace::TraceWriter::create(dir, &name) {
        Ok(w) => w,
        Err(e) => {
            server.log(format_args!(
                "warning: no trace for this request ({}: {e})",
                dir.display()
            ));
            return;
        }
    };
    writer.record(&Event::Start {
        task: job.task.clone(),
        engine: server.engine.describe(),
        model: server.options.model_info.clone(),
        tools: job.tools.clone(),
        settings: json!({"serve": job.trace}),
        documents: Vec::new(),
        parent: None,
        resumed: Vec::new(),
    });
    writer.record(&Event::Model {
        step: 1,
        prompt_tokens: job.request.prompt.len(),
        prompt_delta: job.request.prompt.clone(),
        prefix_hash: prefix_hash(&job.request.prompt),
        cached_tokens: outcome.usage.cached_prompt_tokens,
        ids: outcome.ids.to_vec(),
        text: outcome.raw.to_owned(),
        finish: outcome.reason,
        generated_tokens: outcome.usage.generated_tokens,
        prefill_ms: outcome.usage.prefill.as_millis() as u64,
        decode_ms: outcome.usage.decode.as_millis() as u64,
    });
    if let Some((content, calls)) = outcome.answer {
        for (name, arguments) in calls {
            writer.record(&Event::Call {
                step: 1,
                name: name.clone(),
                arguments: serde_json::from_str(arguments)
                    .unwrap_or_else(|_| Value::String(arguments.clone())),
            });
        }
        if !content.is_empty() || calls.is_empty() {
            writer.record(&Event::Answer {
                step: 1,
                text: content.clone(),
            });
        }
    }
    writer.record(&Event::End {
        end: End::Answered,
        steps: 1,
        generated_tokens: outcome.usage.generated_tokens,
        took_ms: outcome.took.as_millis() as u64,
    });
    if let Some(e) = writer.error() {
        server.log(format_args!(
            "warning: the trace {} is incomplete: {e}",
            writer.path().display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_cut_and_hold_back_only_a_possible_start() {
        let stops = vec!["END".to_string()];
        assert_eq!(scan_stops("abcE", 0, &stops), (2, false));
        assert_eq!(scan_stops("abcEN", 2, &stops), (3, false));
        assert_eq!(scan_stops("abcENDxyz", 3, &stops), (3, true));
        assert_eq!(scan_stops("abc", 0, &[]), (3, false));
        // Never inside a character.
        assert_eq!(scan_stops("aé", 0, &["xyz".to_string()]), (1, false));
    }
}
