//! The router: one handler per endpoint, the key checked by middleware before any body is read,
//! bodies read within a byte limit and a time limit, and the costly part of a request (parsing,
//! rendering, encoding) run off the async workers under a permit, so that a large request can
//! neither freeze the server nor take more than its share of memory.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use glm_prompts::Segments;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Server;
use crate::api::{self, WithCommon};
use crate::error::{ApiError, Failure};
use crate::generation::{self, Place};
use crate::job::{self, Job};

/// The router of `server`: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/tokenize`
/// behind the key, and `/health` open.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/responses", post(responses))
        .route("/tokenize", post(tokenize))
        .fallback(not_found)
        .layer(from_fn_with_state(server.clone(), authorize))
        .layer(from_fn_with_state(server.clone(), log_failures))
        .route("/health", get(|| async { "ok" }))
        .with_state(server)
}

/// When the request arrived, for the log line of its generation.
#[derive(Debug, Clone, Copy)]
struct Arrived(Instant);

async fn not_found() -> ApiError {
    ApiError::no_endpoint()
}

/// Middleware, outermost: every request answered with an [`ApiError`] gets one log line (method,
/// path, status, the message, the time taken). A generation logs its own ending.
async fn log_failures(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut request = request;
    request.extensions_mut().insert(Arrived(started));
    let mut response = next.run(request).await;
    if let Some(Failure(message)) = response.extensions_mut().remove::<Failure>() {
        server.log(format_args!(
            "{method} {} {} {message} ({} ms)",
            crate::escape(&path, 200),
            response.status().as_u16(),
            started.elapsed().as_millis()
        ));
    }
    response
}

/// Middleware: a request without the key is answered 401 before its body is read, and its
/// connection is closed (so an upload of megabytes costs nothing).
async fn authorize(State(server): State<Arc<Server>>, request: Request, next: Next) -> Response {
    let Some(want) = &server.api_key else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| Sha256::digest(k.trim().as_bytes()));
    // Digests compared, so the comparison's time says nothing about the key.
    if given.is_some_and(|g| g.as_slice() == want) {
        return next.run(request).await;
    }
    let mut response = ApiError::unauthorized().into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn check_model(server: &Server, model: &str) -> Result<(), ApiError> {
    if model == server.options.model_name {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "the model `{}` does not exist here: this server serves `{}`",
            crate::escape(model, 100),
            server.options.model_name
        ),
        kind: "invalid_request_error",
        param: Some("model".into()),
        code: Some("model_not_found"),
    })
}

async fn models(State(server): State<Arc<Server>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": server.options.model_name, "object": "model", "created": server.created,
            "owned_by": "glm-agent", "max_model_len": server.engine.context_length(),
        }],
    }))
    .into_response()
}

/// A body read whole, with its share of the buffered-bytes budget (given back when dropped).
/// As an extractor it reads within the server's limits (see [`read`]).
struct Read {
    bytes: Bytes,
    _room: tokio::sync::OwnedSemaphorePermit,
}

impl FromRequest<Arc<Server>> for Read {
    type Rejection = ApiError;

    async fn from_request(request: Request, server: &Arc<Server>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        read(server, &parts.headers, body).await
    }
}

/// Reads a body within the byte limit and the time limit, once there is room for it among the
/// bodies held. A body declared over the limit is refused before it is read, and then read and
/// thrown away in the background (within the same limits), so the client, still sending, sees
/// the refusal instead of a reset connection.
async fn read(server: &Server, headers: &HeaderMap, body: Body) -> Result<Read, ApiError> {
    let limits = &server.options.limits;
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "the request body is over {} MiB, the most this server accepts",
            limits.max_body >> 20
        ),
        kind: "invalid_request_error",
        param: None,
        code: Some("body_too_large"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        tokio::spawn(drain(body, limits.max_body * 2, limits.body_timeout));
        return Err(too_large());
    }
    let room = declared.map_or(limits.max_body, |n| n as usize).max(1);
    let timed_out = |what: &str| ApiError {
        status: StatusCode::REQUEST_TIMEOUT,
        message: format!(
            "the request body {what} within {} s",
            limits.body_timeout.as_secs()
        ),
        kind: "invalid_request_error",
        param: None,
        code: Some("body_timeout"),
    };
    let room = tokio::time::timeout(
        limits.body_timeout,
        server.bodies.clone().acquire_many_owned(room as u32),
    )
    .await
    .map_err(|_| timed_out("found no room among the bodies being read"))?
    .map_err(|_| ApiError::server("the server is shutting down"))?;
    match tokio::time::timeout(
        limits.body_timeout,
        axum::body::to_bytes(body, limits.max_body),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(Read { bytes, _room: room }),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::invalid(
            None,
            format!("the request body cannot be read ({e})"),
        )
        .code("body_not_read")),
        Err(_) => Err(timed_out("did not arrive")),
    }
}

/// Reads and throws away at most `bytes` of `body` within `time`.
async fn drain(body: Body, bytes: usize, time: std::time::Duration) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut left = bytes;
    let _ = tokio::time::timeout(time, async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            if n >= left {
                break;
            }
            left -= n;
        }
    })
    .await;
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Runs `work` on a blocking thread once a preparation permit is free: parsing, rendering and
/// encoding take a core and memory in proportion to the request, so only a few run at once.
async fn prepare<T: Send + 'static>(
    server: &Arc<Server>,
    work: impl FnOnce(&Server) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = server
        .preparing
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::server("the server is shutting down"))?;
    let server = server.clone();
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work(&server)
    })
    .await;
    done.map_err(|e| ApiError::server(format!("the request's preparation failed: {e}")))?
}

/// `POST /tokenize` as vLLM answers it: `{"prompt": TEXT}` to `{"tokens", "count",
/// "max_model_len"}`, control tokens spelled out read as control tokens. Clients check with it
/// that they talk to the model they render prompts for.
async fn tokenize(State(server): State<Arc<Server>>, read: Read) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct Tokenize {
        #[serde(default)]
        model: Option<String>,
        prompt: String,
    }
    let answer = prepare(&server, move |server| {
        let request: Tokenize = serde_json::from_slice(&read.bytes).map_err(|e| {
            ApiError::invalid(
                None,
                format!("the body is not a tokenize request ({e}): send {{\"prompt\": TEXT}}"),
            )
        })?;
        if let Some(model) = &request.model {
            check_model(server, model)?;
        }
        let max = server.options.limits.max_prompt_bytes;
        if request.prompt.len() > max {
            return Err(ApiError::invalid(
                Some("prompt".into()),
                format!("the prompt is over this server's {} MiB", max >> 20),
            ));
        }
        let tokens = server
            .encoder
            .encode(&Segments::from_spelled(&request.prompt).0)
            .map_err(|e| ApiError::server(format!("cannot encode the prompt: {e}")))?;
        Ok(json!({
            "count": tokens.len(), "max_model_len": server.engine.context_length(),
            "tokens": tokens,
        }))
    })
    .await?;
    Ok(axum::Json(answer).into_response())
}

async fn chat(
    State(server): State<Arc<Server>>,
    Extension(arrived): Extension<Arrived>,
    read: Read,
) -> Result<Response, ApiError> {
    answer(server, arrived, read, job::chat_job).await
}

async fn completions(
    State(server): State<Arc<Server>>,
    Extension(arrived): Extension<Arrived>,
    read: Read,
) -> Result<Response, ApiError> {
    answer(server, arrived, read, job::completion_job).await
}

async fn responses(
    State(server): State<Arc<Server>>,
    Extension(Arrived(started)): Extension<Arrived>,
    read: Read,
) -> Result<Response, ApiError> {
    let place = take_place(&server)?;
    let job = prepare(&server, move |server| {
        let request = api::read_object::<crate::responses::ResponsesRequest>(&read.bytes)?;
        check_model(server, &request.model)?;
        crate::responses::responses_job(server, request, &read.bytes)
    })
    .await?;
    Ok(generation::respond(server, job, place, started).await)
}

/// One request of either endpoint, in stages: (the body read by the extractor) a queue place
/// taken, the request parsed and its prompt built off the async workers, then generated.
async fn answer<R: WithCommon + Send + 'static>(
    server: Arc<Server>,
    Arrived(started): Arrived,
    read: Read,
    job: fn(&Server, R, &[u8]) -> Result<Job, ApiError>,
) -> Result<Response, ApiError> {
    let place = take_place(&server)?;
    let job = prepare(&server, move |server| {
        let request = api::read_body::<R>(&read.bytes)?;
        check_model(server, &request.common().model)?;
        job(server, request, &read.bytes)
    })
    .await?;
    Ok(generation::respond(server, job, place, started).await)
}

fn take_place(server: &Server) -> Result<Place, ApiError> {
    server
        .queue
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::queue_full())
}
