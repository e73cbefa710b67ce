//! `glm-agent serve`: GLM-4 behind the OpenAI API, with its own chat protocol done exactly.
//!
//! Every request is rendered here in GLM-4's format (system prompts kept, tools declared the way
//! the model was trained), the model's output is read with the protocol's parser (calls as
//! `tool_calls`, several calls in one answer as several entries), `tool_choice` is enforced
//! while decoding, and the ids of each returned answer are remembered so the next request of the
//! conversation extends the previous prompt exactly and the prefix cache serves it.

mod api;
mod generation;
mod output;
mod prompt;
mod replay;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use glm_agent::engine::{Engine, Sampling};
use glm_prompts::Encoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::{CmdResult, Failure};
use crate::config::{Config, EngineSettings, SamplingSettings};
use crate::engine_opts::open;
use crate::setup::CommonOptions;

pub use api::ApiError;
pub use replay::replay_serve_trace;

/// Options of `serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Endpoints: GET /v1/models, POST /v1/chat/completions (messages, tools, \
tool_choice auto/none/required/a named function, stream), POST /v1/completions (a raw prompt: \
text with control tokens spelled out, or token ids).\n\n\
Examples:\n  glm-agent serve --model ~/models/glm-4-9b-chat-1m-hf\n  \
glm-agent serve --engine openai:http://gpu-box:8000 --tokenizer tokenizer.json --port 9000\n  \
GLM_AGENT_API_KEY=secret glm-agent serve --host 0.0.0.0"
)]
pub struct ServeArgs {
    #[command(flatten)]
    engine: EngineSettings,
    #[command(flatten)]
    sampling: SamplingSettings,
    #[command(flatten)]
    common: CommonOptions,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    host: String,
    /// The port (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on every request.
    #[arg(
        long,
        env = "GLM_AGENT_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    api_key: Option<String>,
    /// Listen on an address other than loopback without an API key.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// The model name clients send [default: the model folder's or repo's name].
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
    /// Requests waiting or running at once; more are answered 429 at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_queue: usize,
    /// The most tokens of an answer when a request sets no limit.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    default_max_tokens: u32,
    /// Answers remembered for token-exact follow-up prompts.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    remember: usize,
    /// Refuse prompts and limits beyond N tokens, below the model's own context (its keys and
    /// values must fit in memory: about 80 KiB a token for GLM-4-9B in bf16).
    #[arg(long, value_name = "N")]
    max_model_len: Option<usize>,
    /// Write one trace per request into DIR (`glm-agent replay` reads them).
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
}

/// What every request shares.
pub(crate) struct Shared {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) encoder: Encoder,
    pub(crate) model_name: String,
    model_info: Value,
    api_key: Option<[u8; 32]>,
    pub(crate) memory: prompt::Memory,
    queue: Arc<tokio::sync::Semaphore>,
    pub(crate) sampling: Sampling,
    pub(crate) default_max: u32,
    pub(crate) trace_dir: Option<PathBuf>,
    max_model_len: Option<usize>,
    created: u64,
    counter: AtomicU64,
}

impl Shared {
    /// The most tokens of prompt and answer together, when known.
    pub(crate) fn context(&self) -> Option<usize> {
        match (self.engine.context_length(), self.max_model_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_id(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Unique within the process, and across restarts by the start time.
        self.created.wrapping_mul(1_000_003).wrapping_add(n)
    }
}

pub fn run(args: ServeArgs) -> CmdResult {
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    runtime.block_on(serve(args))
}

fn loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn serve(args: ServeArgs) -> CmdResult {
    let api_key = args.api_key.clone().filter(|k| !k.is_empty());
    if !loopback(&args.host) && api_key.is_none() && !args.allow_unauthenticated {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--host {} is reachable from other machines: set an API key (--api-key or GLM_AGENT_API_KEY), or pass --allow-unauthenticated to serve without one",
            args.host
        )));
    }
    if let Some(dir) = &args.trace_dir {
        glm_agent::trace::private_dir(dir).map_err(|e| {
            Failure::bad_input(anyhow::anyhow!("--trace-dir {}: {e}", dir.display()))
        })?;
    }
    let config = Config::load()?;
    let settings = config.resolve(&args.engine)?.value;
    let sampling = config.resolve(&args.sampling)?.value.sampling();
    // Bind first: a taken port is reported before a model loads for minutes.
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| {
            Failure::bad_input(anyhow::anyhow!(
                "cannot listen on {}:{}: {e}",
                args.host,
                args.port
            ))
        })?;
    let address: SocketAddr = listener.local_addr().map_err(Failure::bad_input)?;
    let opened = open(&settings, &args.common).await?;
    let encoder = match &opened.encoder {
        Some(e) => e.clone(),
        None => crate::run::tokenizer_for(settings.model())?,
    };
    let model_name = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| served_name(settings.model(), settings.engine()));
    let engine: Arc<dyn Engine> = Arc::from(opened.engine);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let shared = Arc::new(Shared {
        engine,
        encoder,
        model_name,
        model_info: opened.model,
        api_key: api_key.map(|k| Sha256::digest(k.as_bytes()).into()),
        memory: prompt::Memory::new(args.remember, 64 << 20),
        queue: Arc::new(tokio::sync::Semaphore::new(args.max_queue.max(1))),
        sampling,
        default_max: args.default_max_tokens.max(1),
        trace_dir: args.trace_dir.clone(),
        max_model_len: args.max_model_len,
        created,
        counter: AtomicU64::new(0),
    });
    let app = router(shared.clone());
    eprintln!(
        "Serving {} on http://{address}/v1 ({}; Ctrl-C stops)",
        shared.model_name,
        shared.engine.describe()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::run::interrupted())
        .await
        .map_err(Failure::bad_input)?;
    eprintln!("Stopped.");
    Ok(())
}

/// The name `/v1/models` lists: the last part of a folder path or repo id.
fn served_name(model: &str, engine: &str) -> String {
    if engine.starts_with("replay:") {
        return "replay".into();
    }
    let trimmed = model.trim_end_matches('/');
    if std::path::Path::new(trimmed).is_dir() {
        return std::path::Path::new(trimmed)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| trimmed.to_owned());
    }
    trimmed.to_owned()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/tokenize", post(tokenize))
        .route("/health", get(|| async { "ok" }))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint: this server offers GET /v1/models, POST /v1/chat/completions, POST /v1/completions and POST /tokenize".into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("not_found"),
    }
    .into_response()
}

fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(want) = &shared.api_key else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| Sha256::digest(k.trim().as_bytes()));
    // Digests compared, so the comparison's time says nothing about the key.
    if given.is_some_and(|g| g.as_slice() == want) {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "a valid API key is needed: send `Authorization: Bearer KEY`".into(),
        kind: "authentication_error",
        param: None,
        code: Some("invalid_api_key"),
    })
}

fn check_model(shared: &Shared, model: &str) -> Result<(), ApiError> {
    if model == shared.model_name {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "the model `{model}` does not exist here: this server serves `{}`",
            shared.model_name
        ),
        kind: "invalid_request_error",
        param: Some("model".into()),
        code: Some("model_not_found"),
    })
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&shared, &headers) {
        return e.into_response();
    }
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": shared.model_name, "object": "model", "created": shared.created,
            "owned_by": "glm-agent", "max_model_len": shared.engine.context_length(),
        }],
    }))
    .into_response()
}

/// `POST /tokenize` as vLLM answers it: `{"prompt": TEXT}` to `{"tokens", "count",
/// "max_model_len"}`, control tokens spelled out read as control tokens. Clients check with it
/// that they talk to the model they render prompts for.
async fn tokenize(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let answer = (|| {
        authorize(&shared, &headers)?;
        let body = body.map_err(|e| ApiError::invalid(None, e.body_text()))?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(
                None,
                format!("the body is not valid JSON ({e}); send a JSON object"),
            )
        })?;
        if let Some(model) = value["model"].as_str() {
            check_model(&shared, model)?;
        }
        let text = value["prompt"]
            .as_str()
            .ok_or_else(|| ApiError::invalid(Some("prompt".into()), "prompt must be a string"))?;
        let tokens = shared
            .encoder
            .encode(&glm_agent::output_segments(text))
            .map_err(|e| ApiError::server(format!("cannot encode the prompt: {e}")))?;
        Ok::<_, ApiError>(json!({
            "count": tokens.len(), "max_model_len": shared.engine.context_length(), "tokens": tokens,
        }))
    })();
    match answer {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A queue place: held by a request until its generation ends.
pub(crate) type Place = tokio::sync::OwnedSemaphorePermit;

fn take_place(shared: &Shared) -> Result<Place, ApiError> {
    shared
        .queue
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the server's queue is full: retry shortly (or raise --max-queue)".into(),
            kind: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
        })
}

/// A body, or why it could not be read (over the size limit, a broken upload).
type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// The most bytes a request body may have: a whole 1M-token conversation is a few MiB of text.
const MAX_BODY: usize = 64 << 20;

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    answer(
        shared,
        headers,
        body,
        "/v1/chat/completions",
        generation::chat_job,
    )
    .await
}

async fn completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        shared,
        headers,
        body,
        "/v1/completions",
        generation::completion_job,
    )
    .await
}

/// One request of either endpoint: checked, queued, then generated.
async fn answer<R: api::WithCommon>(
    shared: Arc<Shared>,
    headers: HeaderMap,
    body: Body,
    path: &str,
    job: fn(&Shared, R, serde_json::Value) -> Result<generation::Job, ApiError>,
) -> Response {
    let started = Instant::now();
    let prepared = (|| {
        authorize(&shared, &headers)?;
        let body = body.map_err(|rejection| ApiError {
            status: rejection.status(),
            message: format!(
                "the request body cannot be read ({}); bodies of up to {} MiB are accepted",
                rejection.body_text(),
                MAX_BODY >> 20
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("body_not_read"),
        })?;
        let (request, json) = api::read_body::<R>(&body)?;
        check_model(&shared, &request.common().model)?;
        let job = job(&shared, request, json)?;
        Ok::<_, ApiError>((job, take_place(&shared)?))
    })();
    match prepared {
        Ok((job, place)) => generation::respond(shared.clone(), job, place, started).await,
        Err(e) => {
            eprintln!("POST {path} {} {}", e.status.as_u16(), e.message);
            e.into_response()
        }
    }
}
