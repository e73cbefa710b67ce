//! One request's generation: a task that owns it (so a client that goes away cancels it), its
//! stop strings, its answer read as it streams, and the response, streamed or whole.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use glm_agent::engine::{EngineEvent, FinishReason, GenerateRequest, Usage};
use glm_agent::{End, Event, output_segments, prefix_hash};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::{ApiError, ChatRequest, Common, CompletionRequest, Stop};
use super::output::{Piece, Reader};
use super::prompt::{PrefixHash, chat_prompt, tool_specs};
use super::{Place, Shared};

/// What a chat request forces at the start of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The model decides.
    Auto,
    /// No call: the answer starts as content.
    None,
    /// One of the tools.
    Required,
    /// This tool.
    Named(String),
}

/// Reads `tool_choice` against the offered tools.
pub(crate) fn tool_choice(value: &Option<Value>, names: &[String]) -> Result<Choice, ApiError> {
    let param = || Some("tool_choice".to_owned());
    let choice = match value {
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            other => {
                return Err(ApiError::invalid(
                    param(),
                    format!(
                        "tool_choice `{other}` is not one of auto, none, required or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                    ),
                ));
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => Choice::Named(name.to_owned()),
                _ => {
                    return Err(ApiError::invalid(
                        param(),
                        "a named tool_choice is {\"type\": \"function\", \"function\": {\"name\": \"...\"}}",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                param(),
                "tool_choice must be a string or an object",
            ));
        }
    };
    match &choice {
        Choice::Required if names.is_empty() => Err(ApiError::invalid(
            param(),
            "tool_choice is `required` but the request offers no tools",
        )),
        Choice::Named(n) if !names.contains(n) => Err(ApiError::invalid(
            param(),
            format!("tool_choice names `{n}`, which is not among the request's tools"),
        )),
        _ => Ok(choice),
    }
}

/// Which endpoint a job answers.
pub(crate) enum Kind {
    /// Chat: the answer is read into content and calls.
    Chat {
        /// The tools offered.
        names: Vec<String>,
        /// The hash of the prompt up to `<|assistant|>`, for remembering the answer.
        hash: PrefixHash,
        /// The forced start: its text (read as the answer's beginning) and its ids.
        prefill: (String, Vec<u32>),
    },
    /// A raw completion; `token_ids` asks for the generated ids beside the text (vLLM's
    /// `return_token_ids`), so a client can keep them exactly.
    Completion {
        /// Whether the ids are sent.
        token_ids: bool,
    },
}

/// A checked request, ready to run.
pub(crate) struct Job {
    kind: Kind,
    request: GenerateRequest,
    stream: bool,
    usage_chunk: bool,
    stops: Vec<String>,
    number: u64,
    model: String,
    created: u64,
    endpoint: &'static str,
    /// What a trace records of the request.
    trace: Value,
    task: String,
    tools: Vec<Value>,
}

fn sampling(shared: &Shared, common: &Common) -> glm_agent::engine::Sampling {
    let mut s = shared.sampling.clone();
    if let Some(t) = common.temperature {
        s.temperature = t;
        s.greedy = t <= 1e-5;
    }
    if let Some(p) = common.top_p {
        s.top_p = p;
    }
    if let Some(seed) = common.seed {
        s.seed = Some(seed as u64);
    }
    s
}

/// The most new tokens: the request's limit, checked against the context, else the default.
fn limit(shared: &Shared, prompt_len: usize, common: &Common) -> Result<u32, ApiError> {
    let asked = common.max_limit();
    let field = if common.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let Some(context) = shared.context() else {
        return Ok(asked.unwrap_or(shared.default_max));
    };
    if prompt_len >= context {
        return Err(ApiError::invalid(
            Some("messages".into()),
            format!("This model's maximum context length is {context} tokens, and the prompt has {prompt_len}: shorten the messages."),
        )
        .code("context_length_exceeded"));
    }
    let room = context - prompt_len;
    match asked {
        Some(m) if m as usize > room => Err(ApiError::invalid(
            Some(field.into()),
            format!("This model's maximum context length is {context} tokens; the prompt has {prompt_len} and {field} asks for {m}: ask for at most {room}."),
        )
        .code("context_length_exceeded")),
        Some(m) => Ok(m),
        None => Ok(shared.default_max.min(room as u32)),
    }
}

/// Checks a chat request and builds its prompt.
pub(crate) fn chat_job(
    shared: &Shared,
    request: ChatRequest,
    body: Value,
) -> Result<Job, ApiError> {
    request.common.check()?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages".into()),
            "messages must hold at least one message",
        ));
    }
    if let Some(format) = &request.response_format {
        let kind = format.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(ApiError::invalid(
                Some("response_format.type".into()),
                "only text answers are offered: describe the JSON you want in the prompt, or offer a tool whose parameters are that JSON",
            ));
        }
    }
    let specs = tool_specs(request.tools.as_deref().unwrap_or(&[]))?;
    let names: Vec<String> = specs.iter().map(|s| s.name().to_owned()).collect();
    let choice = tool_choice(&request.tool_choice, &names)?;
    let tracing = shared.trace_dir.is_some();
    let tools: Vec<Value> = if tracing {
        specs
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect()
    } else {
        Vec::new()
    };
    let built = chat_prompt(
        &shared.encoder,
        &mut |_, key| shared.memory.get(key),
        specs,
        &request.messages,
    )?;
    let (prefill, starts): (String, Vec<String>) = match &choice {
        Choice::Auto => (String::new(), Vec::new()),
        Choice::None if names.is_empty() => (String::new(), Vec::new()),
        Choice::None => ("\n".into(), Vec::new()),
        Choice::Required if names.len() == 1 => (format!("{}\n", names[0]), Vec::new()),
        Choice::Required => (
            String::new(),
            names.iter().map(|n| format!("{n}\n")).collect(),
        ),
        Choice::Named(n) => (format!("{n}\n"), Vec::new()),
    };
    if !starts.is_empty() && !shared.engine.constrains() {
        return Err(ApiError::invalid(
            Some("tool_choice".into()),
            "tool_choice `required` with several tools needs an engine that constrains decoding (the embedded one); name the function instead",
        ));
    }
    let encode = |text: &str| {
        shared
            .encoder
            .encode_text(text)
            .map_err(|e| ApiError::server(format!("cannot encode: {e}")))
    };
    let prefill_ids = encode(&prefill)?;
    let starts_with = starts
        .iter()
        .map(|s| encode(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids = built.ids;
    ids.extend(&prefill_ids);
    let max_new = limit(shared, ids.len(), &request.common)?;
    // Under `none` no segment of the answer is read as a call.
    let readable = if choice == Choice::None {
        Vec::new()
    } else {
        names
    };
    let stops = Stop::strings(&request.common.stop)?;
    // What a trace records: the request as received and the ids remembered for it.
    let (task, trace) = if tracing {
        let task = request
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                super::api::ChatMessage::User { content } => {
                    super::api::content_text(content, "").ok()
                }
                _ => None,
            })
            .unwrap_or_default();
        let remembered: Vec<Value> = built
            .remembered
            .iter()
            .map(|(i, ids)| json!({"message": i, "ids": ids}))
            .collect();
        let trace = json!({
            "endpoint": "chat.completions", "request": body, "remembered": remembered,
            "prefill": prefill, "calls_read": readable, "stop": stops,
        });
        (task, trace)
    } else {
        (String::new(), Value::Null)
    };
    let generate = generate_request(shared, &request.common, ids, max_new, starts_with);
    Ok(Job {
        tools,
        task,
        ..Job::new(
            shared,
            &request.common,
            generate,
            Kind::Chat {
                names: readable,
                hash: built.hash,
                prefill: (prefill, prefill_ids),
            },
            stops,
            trace,
        )
    })
}

/// Checks a raw completion request.
pub(crate) fn completion_job(
    shared: &Shared,
    request: CompletionRequest,
    _body: Value,
) -> Result<Job, ApiError> {
    request.common.check()?;
    if request.echo == Some(true) {
        return Err(ApiError::invalid(
            Some("echo".into()),
            "echo is not offered: the prompt is what you sent",
        ));
    }
    let param = || Some("prompt".to_owned());
    let one = match &request.prompt {
        Value::Array(items) if items.len() == 1 && !items[0].is_number() => items[0].clone(),
        Value::Array(items) if items.is_empty() || items.iter().any(|i| !i.is_number()) => {
            return Err(ApiError::invalid(
                param(),
                "send one prompt per request: a string or an array of token ids",
            ));
        }
        other => other.clone(),
    };
    let ids: Vec<u32> = match &one {
        Value::String(text) => shared
            .encoder
            .encode(&output_segments(text))
            .map_err(|e| ApiError::server(format!("cannot encode the prompt: {e}")))?,
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| ApiError::invalid(param(), "token ids must be integers from 0"))?,
        _ => {
            return Err(ApiError::invalid(
                param(),
                "prompt must be a string or an array of token ids",
            ));
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid(param(), "the prompt is empty"));
    }
    let max_new = limit(shared, ids.len(), &request.common)?;
    let stops = Stop::strings(&request.common.stop)?;
    let trace = if shared.trace_dir.is_some() {
        json!({"endpoint": "completions", "prompt": ids})
    } else {
        Value::Null
    };
    let generate = generate_request(shared, &request.common, ids, max_new, Vec::new());
    Ok(Job::new(
        shared,
        &request.common,
        generate,
        Kind::Completion {
            token_ids: request.return_token_ids == Some(true),
        },
        stops,
        trace,
    ))
}

fn generate_request(
    shared: &Shared,
    common: &Common,
    prompt: Vec<u32>,
    max_new_tokens: u32,
    starts_with: Vec<Vec<u32>>,
) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: sampling(shared, common),
        max_new_tokens,
        stop_ids: shared.encoder.special_ids().stop_ids(),
        starts_with,
    }
}

impl Job {
    fn new(
        shared: &Shared,
        common: &Common,
        request: GenerateRequest,
        kind: Kind,
        stops: Vec<String>,
        trace: Value,
    ) -> Job {
        let endpoint = match kind {
            Kind::Chat { .. } => "/v1/chat/completions",
            Kind::Completion { .. } => "/v1/completions",
        };
        Job {
            kind,
            request,
            stream: common.streaming(),
            usage_chunk: common.usage_chunk(),
            stops,
            number: shared.next_id(),
            model: shared.model_name.clone(),
            created: now(),
            endpoint,
            trace,
            task: String::new(),
            tools: Vec::new(),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the job's task sends to the response.
enum Out {
    /// A streamed chunk.
    Chunk(Value),
    /// The whole answer (unstreamed).
    Body(Value),
    /// A failure.
    Fail(ApiError),
}

/// Starts the job and answers: server-sent events, or one JSON body when it is done.
pub(crate) async fn respond(
    shared: Arc<Shared>,
    job: Job,
    place: Place,
    started: Instant,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let streaming = job.stream;
    tokio::spawn(run(shared, job, place, tx, started));
    if streaming {
        let events = futures::stream::unfold(Some(rx), |state| async move {
            let mut rx = state?;
            match rx.recv().await {
                Some(Out::Chunk(v)) => Some((SseEvent::default().data(v.to_string()), Some(rx))),
                Some(Out::Fail(e)) => Some((SseEvent::default().data(e.body().to_string()), None)),
                Some(Out::Body(_)) => Some((SseEvent::default().data("[DONE]"), None)),
                None => None,
            }
        })
        .map(Ok::<_, Infallible>);
        return Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    loop {
        match rx.recv().await {
            Some(Out::Body(v)) => return axum::Json(v).into_response(),
            Some(Out::Fail(e)) => return e.into_response(),
            Some(Out::Chunk(_)) => continue,
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

/// A chat chunk around `delta`.
fn chat_chunk(job: &Job, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": format!("chatcmpl-{:016x}", job.number), "object": "chat.completion.chunk",
        "created": job.created, "model": job.model, "system_fingerprint": null,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

/// A completion chunk; `ids` are the generated ids it carries, when the client asked for them.
fn completion_chunk(job: &Job, text: &str, ids: Option<&[u32]>, finish: Option<&str>) -> Value {
    let mut chunk = json!({
        "id": format!("cmpl-{:016x}", job.number), "object": "text_completion",
        "created": job.created, "model": job.model, "system_fingerprint": null,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(ids) = ids {
        chunk["choices"][0]["token_ids"] = json!(ids);
    }
    chunk
}

fn call_id(job: &Job, index: usize) -> String {
    format!("call_{:016x}{index:02}", job.number)
}

fn piece_delta(job: &Job, piece: &Piece) -> Value {
    match piece {
        Piece::Content(text) => json!({"content": text}),
        Piece::CallStart { index, name } => json!({"tool_calls": [{
            "index": index, "id": call_id(job, *index), "type": "function",
            "function": {"name": name, "arguments": ""},
        }]}),
        Piece::CallArguments { index, arguments } => json!({"tool_calls": [{
            "index": index, "function": {"arguments": arguments},
        }]}),
    }
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.generated_tokens,
        "total_tokens": usage.prompt_tokens + usage.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens.unwrap_or(0)},
    })
}

/// The job, to its end or until the client goes away.
async fn run(shared: Arc<Shared>, job: Job, place: Place, tx: mpsc::Sender<Out>, started: Instant) {
    let send = |out: Out| {
        let tx = tx.clone();
        async move { tx.send(out).await.is_ok() }
    };
    let mut reader = match &job.kind {
        Kind::Chat { names, .. } => Some(Reader::new(names)),
        Kind::Completion { .. } => None,
    };
    let token_ids = matches!(job.kind, Kind::Completion { token_ids: true });
    // Generated ids already sent in a chunk, when the client asked for them.
    let mut ids_sent = 0;
    if job.stream && reader.is_some() {
        send(Out::Chunk(chat_chunk(
            &job,
            json!({"role": "assistant", "content": ""}),
            None,
        )))
        .await;
    }
    // The forced start is the answer's beginning: a forced name streams as the call's name.
    let mut pieces = Vec::new();
    if let (Some(r), Kind::Chat { prefill, .. }) = (reader.as_mut(), &job.kind) {
        pieces.extend(r.push(&prefill.0));
    }
    let mut stream = shared.engine.generate(job.request.clone());
    let mut ids = Vec::new();
    let mut raw = String::new();
    let mut sent = 0;
    let mut by_string = false;
    let mut end: Option<(FinishReason, Option<Usage>)> = None;
    let mut failure = None;
    let mut gone = false;
    loop {
        if job.stream {
            for piece in pieces.drain(..) {
                if !send(Out::Chunk(chat_chunk(
                    &job,
                    piece_delta(&job, &piece),
                    None,
                )))
                .await
                {
                    gone = true;
                }
            }
        }
        if gone {
            break;
        }
        let next = tokio::select! {
            biased;
            () = tx.closed() => { gone = true; break; }
            next = stream.next() => next,
        };
        let (text, finished) = match next {
            Some(Ok(EngineEvent::Delta { ids: i, text })) => {
                ids.extend(i);
                (text, None)
            }
            Some(Ok(EngineEvent::Finished { reason, usage })) => {
                (String::new(), Some((reason, usage)))
            }
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
            None => {
                failure = Some(glm_agent::engine::EngineError::transient(
                    "the engine's stream ended without a finish event",
                ));
                break;
            }
        };
        raw.push_str(&text);
        let (ready, hit) = if finished.is_some() {
            match scan_stops(&raw, sent, &job.stops) {
                (at, true) => (at, true),
                _ => (raw.len(), false),
            }
        } else {
            scan_stops(&raw, sent, &job.stops)
        };
        let fresh = raw[sent..ready].to_owned();
        sent = ready;
        if let Some(r) = reader.as_mut() {
            pieces.extend(r.push(&fresh));
        } else if job.stream && (!fresh.is_empty() || (token_ids && ids.len() > ids_sent)) {
            let new_ids = token_ids.then(|| &ids[ids_sent..]);
            if !send(Out::Chunk(completion_chunk(&job, &fresh, new_ids, None))).await {
                gone = true;
            }
            ids_sent = ids.len();
        }
        if hit {
            by_string = true;
            end = Some((FinishReason::Stop, finished.map(|f| f.1)));
            break;
        }
        if let Some((reason, usage)) = finished {
            end = Some((reason, Some(usage)));
            break;
        }
    }
    // Dropping the stream stops a generation still running (a stop string, a client gone).
    drop(stream);
    drop(place);
    let took = started.elapsed();
    if gone {
        eprintln!(
            "POST {} cancelled: the client went away after {} generated tokens ({:.1} s)",
            job.endpoint,
            ids.len(),
            took.as_secs_f64()
        );
        return;
    }
    if let Some(e) = failure {
        let status = if e.retryable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        eprintln!("POST {} {} {}", job.endpoint, status.as_u16(), e.message);
        let error = ApiError {
            status,
            ..ApiError::server(format!("the engine failed: {}", e.message))
        };
        send(Out::Fail(error)).await;
        return;
    }
    let Some((reason, usage)) = end else {
        return;
    };
    let usage = usage.unwrap_or_else(|| Usage {
        prompt_tokens: job.request.prompt.len(),
        generated_tokens: ids.len(),
        ..Usage::default()
    });
    if ids.is_empty() && !raw.is_empty() {
        // A backend that reports text only.
        ids = shared
            .encoder
            .encode(&output_segments(&raw))
            .unwrap_or_default();
    }
    let mut usage = usage;
    if usage.generated_tokens == 0 {
        // A backend that does not count (a recording).
        usage.generated_tokens = ids.len();
    }
    if let Some(r) = reader.as_mut() {
        pieces.extend(r.finish());
    }
    let finish = match (reason, reader.as_ref()) {
        (FinishReason::Length, _) => "length",
        (_, Some(r)) if !r.calls.is_empty() => "tool_calls",
        _ => "stop",
    };
    eprintln!(
        "POST {} 200 prompt={} cached={} generated={} finish={finish} {:.0} ms",
        job.endpoint,
        usage.prompt_tokens,
        usage.cached_prompt_tokens.unwrap_or(0),
        usage.generated_tokens,
        took.as_secs_f64() * 1000.0
    );
    let answer = match (&job.kind, reader.as_ref()) {
        (Kind::Chat { hash, prefill, .. }, Some(r)) => {
            let calls: Vec<(String, String)> = r
                .calls
                .iter()
                .map(|c| (c.name.clone(), c.arguments.clone()))
                .collect();
            if !by_string {
                let mut kept = prefill.1.clone();
                kept.extend(&ids);
                let stops = job.request.stop_ids.clone();
                if kept.last().is_some_and(|l| stops.contains(l)) {
                    kept.pop();
                }
                shared.memory.put(hash.key(&r.content, &calls), kept);
            }
            Some((r.content.clone(), calls))
        }
        _ => None,
    };
    if shared.trace_dir.is_some() {
        write_trace(
            &shared,
            &job,
            &ids,
            &raw,
            reason,
            &usage,
            answer.as_ref(),
            took,
        );
    }
    if job.stream {
        for piece in pieces.drain(..) {
            send(Out::Chunk(chat_chunk(
                &job,
                piece_delta(&job, &piece),
                None,
            )))
            .await;
        }
        let last = match &job.kind {
            Kind::Chat { .. } => chat_chunk(&job, json!({}), Some(finish)),
            Kind::Completion { .. } => completion_chunk(
                &job,
                "",
                token_ids.then(|| ids.get(ids_sent..).unwrap_or(&[])),
                Some(finish),
            ),
        };
        send(Out::Chunk(last)).await;
        if job.usage_chunk {
            let mut chunk = match &job.kind {
                Kind::Chat { .. } => chat_chunk(&job, json!({}), None),
                Kind::Completion { .. } => completion_chunk(&job, "", None, None),
            };
            chunk["choices"] = json!([]);
            chunk["usage"] = usage_json(&usage);
            send(Out::Chunk(chunk)).await;
        }
        send(Out::Body(Value::Null)).await;
        return;
    }
    let body = match (&job.kind, answer) {
        (Kind::Chat { .. }, Some((content, calls))) => {
            let mut message = json!({
                "role": "assistant",
                "content": if content.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(content) },
                "refusal": null,
            });
            if !calls.is_empty() {
                message["tool_calls"] = calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, arguments))| {
                        json!({"id": call_id(&job, i), "type": "function",
                               "function": {"name": name, "arguments": arguments}})
                    })
                    .collect();
            }
            json!({
                "id": format!("chatcmpl-{:016x}", job.number), "object": "chat.completion",
                "created": job.created, "model": job.model, "system_fingerprint": null,
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                "usage": usage_json(&usage),
            })
        }
        _ => {
            let mut body = completion_chunk(
                &job,
                &raw[..sent],
                token_ids.then_some(ids.as_slice()),
                Some(finish),
            );
            body["usage"] = usage_json(&usage);
            body
        }
    };
    send(Out::Body(body)).await;
}

/// One trace per request: the request as received, what was remembered, and the model turn.
#[allow(clippy::too_many_arguments)]
fn write_trace(
    shared: &Shared,
    job: &Job,
    ids: &[u32],
    raw: &str,
    reason: FinishReason,
    usage: &Usage,
    answer: Option<&(String, Vec<(String, String)>)>,
    took: std::time::Duration,
) {
    let Some(dir) = &shared.trace_dir else {
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
            eprintln!(
                "warning: no trace for this request ({}: {e})",
                dir.display()
            );
            return;
        }
    };
    writer.record(&Event::Start {
        task: job.task.clone(),
        engine: shared.engine.describe(),
        model: shared.model_info.clone(),
        tools: job.tools.clone(),
        settings: json!({"serve": job.trace}),
    });
    writer.record(&Event::Model {
        step: 1,
        prompt_tokens: job.request.prompt.len(),
        prompt_delta: job.request.prompt.clone(),
        prefix_hash: prefix_hash(&job.request.prompt),
        cached_tokens: usage.cached_prompt_tokens,
        ids: ids.to_vec(),
        text: raw.to_owned(),
        finish: reason,
        generated_tokens: usage.generated_tokens,
        prefill_ms: usage.prefill.as_millis() as u64,
        decode_ms: usage.decode.as_millis() as u64,
    });
    if let Some((content, calls)) = answer {
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
        generated_tokens: usage.generated_tokens,
        took_ms: took.as_millis() as u64,
    });
    if let Some(e) = writer.error() {
        eprintln!(
            "warning: the trace {} is incomplete: {e}",
            writer.path().display()
        );
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

    #[test]
    fn tool_choice_is_checked_against_the_tools() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(tool_choice(&None, &names).unwrap(), Choice::Auto);
        assert_eq!(
            tool_choice(&Some(json!("required")), &names).unwrap(),
            Choice::Required
        );
        assert_eq!(
            tool_choice(
                &Some(json!({"type": "function", "function": {"name": "b"}})),
                &names
            )
            .unwrap(),
            Choice::Named("b".into())
        );
        for bad in [
            json!("sometimes"),
            json!({"type": "function", "function": {"name": "c"}}),
            json!(3),
        ] {
            let err = tool_choice(&Some(bad), &names).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("tool_choice"));
        }
        assert!(tool_choice(&Some(json!("required")), &[]).is_err());
    }
}
