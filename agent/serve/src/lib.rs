//! GLM-4 behind the OpenAI API, with its own chat protocol done exactly: the library behind
//! `glm-agent serve`.
//!
//! Every request is rendered in GLM-4's format (system prompts kept, tools declared the way the
//! model was trained), the model's output is read with the protocol's parser (calls as
//! `tool_calls`, several calls in one answer as several entries), `tool_choice` is enforced while
//! decoding, and the ids of each returned answer are remembered so the next request of the
//! conversation extends the previous prompt exactly and the prefix cache serves it.
//!
//! ```no_run
//! # async fn example(engine: std::sync::Arc<dyn glm_agent::engine::Engine>, encoder: glm_prompts::Encoder) -> std::io::Result<()> {
//! use glm_serve::{Options, Server};
//! let server = Server::new(engine, encoder, Options::new("glm-4-9b-chat"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! glm_serve::serve(listener, server, std::future::pending()).await
//! # }
//! ```
//!
//! The design decision a reader must know: a request moves through stages that each own one
//! concern, in this order, and nothing costly happens before the cheap checks that can refuse it:
//! the key (middleware, before the body is read), the body (read within a byte limit), a place in
//! the queue, the typed request (parsed from the bytes once, off the async workers), the prompt
//! (within a byte budget before anything is encoded), the generation, and the response.

mod api;
mod error;
mod generation;
mod job;
mod listen;
mod log;
mod prompt;
mod replay;
mod response;
mod responses;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glm_agent::engine::{Engine, Sampling};
use glm_prompts::Encoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use error::ApiError;
pub use listen::serve;
pub use log::escape;
pub use replay::{ServeReplay, replay_serve_trace};
pub use routes::router;

/// Where a server's log lines go (the binary prints them on stderr). Client text in them is
/// already escaped: one call is one line.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A server's settings; [`Options::new`] holds every default.
#[derive(Clone)]
pub struct Options {
    /// The model name clients send and `/v1/models` lists.
    pub model_name: String,
    /// `Authorization: Bearer KEY` required on every request when set.
    pub api_key: Option<String>,
    /// Requests waiting or running at once; more are answered 429 at once.
    pub max_queue: usize,
    /// The most tokens of an answer when a request sets no limit.
    pub default_max_tokens: u32,
    /// Answers remembered for token-exact follow-up prompts.
    pub remember: usize,
    /// Responses kept for `previous_response_id` (the oldest dropped first; 0 keeps none).
    pub store_responses: usize,
    /// Prompts and limits beyond this many tokens are refused (below the engine's own context).
    pub max_model_len: Option<usize>,
    /// One trace per request is written here.
    pub trace_dir: Option<PathBuf>,
    /// The model's fingerprint, for traces.
    pub model_info: Value,
    /// Sampling when a request sets none.
    pub sampling: Sampling,
    /// Bounds on what one client may cost.
    pub limits: Limits,
    /// Where log lines go.
    pub log: Log,
}

impl Options {
    /// The defaults, serving `model_name`, logging nowhere.
    pub fn new(model_name: impl Into<String>) -> Self {
        Options {
            model_name: model_name.into(),
            api_key: None,
            max_queue: 64,
            default_max_tokens: 4096,
            remember: 4096,
            store_responses: 1024,
            max_model_len: None,
            trace_dir: None,
            model_info: Value::Null,
            sampling: Sampling::default(),
            limits: Limits::default(),
            log: Arc::new(|_| {}),
        }
    }
}

/// Bounds on what one client may cost: bytes, time and connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The most bytes of a request body; a 1M-token conversation is a few MiB of text.
    pub max_body: usize,
    /// The most bytes of request bodies held at once, all clients together (a body waits for
    /// room before it is read).
    pub max_buffered: usize,
    /// The most bytes a prompt may have as text, control tokens spelled out, before it is
    /// encoded (checked on the rendered size, tools included).
    pub max_prompt_bytes: usize,
    /// The most tools one request may offer.
    pub max_tools: usize,
    /// The deepest nesting of a tool's JSON Schema.
    pub max_schema_depth: usize,
    /// Requests whose prompts are built at once (each may take a core and memory in
    /// proportion to its prompt); others wait for a turn.
    pub max_preparing: usize,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time to send a request's head (line and headers).
    pub header_timeout: Duration,
    /// Time to send a request's body.
    pub body_timeout: Duration,
    /// Time a client may leave a response unread before the connection is closed (and its
    /// generation stopped).
    pub write_timeout: Duration,
    /// Time open connections get to finish after a shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Limits {
            max_body: 64 << 20,
            max_buffered: 256 << 20,
            max_prompt_bytes: 8 << 20,
            max_tools: 1024,
            max_schema_depth: 32,
            max_preparing: cores,
            max_connections: 512,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What every request shares: the engine, the tokenizer, the settings and the memory of answers.
pub struct Server {
    engine: Arc<dyn Engine>,
    encoder: Encoder,
    options: Options,
    api_key: Option<[u8; 32]>,
    memory: prompt::Memory,
    /// Responses kept for `previous_response_id`.
    stored: responses::Stored,
    queue: Arc<tokio::sync::Semaphore>,
    preparing: Arc<tokio::sync::Semaphore>,
    /// Bytes of bodies held, in bytes.
    bodies: Arc<tokio::sync::Semaphore>,
    created: u64,
    counter: AtomicU64,
}

impl Server {
    /// A server of `engine`, whose prompts `encoder` encodes.
    pub fn new(engine: Arc<dyn Engine>, encoder: Encoder, options: Options) -> Arc<Server> {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let api_key = options
            .api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| Sha256::digest(k.as_bytes()).into());
        Arc::new(Server {
            engine,
            encoder,
            api_key,
            memory: prompt::Memory::new(options.remember, 64 << 20),
            stored: responses::Stored::new(options.store_responses, 256 << 20),
            queue: Arc::new(tokio::sync::Semaphore::new(options.max_queue.max(1))),
            preparing: Arc::new(tokio::sync::Semaphore::new(
                options.limits.max_preparing.max(1),
            )),
            bodies: Arc::new(tokio::sync::Semaphore::new(
                options
                    .limits
                    .max_buffered
                    .max(options.limits.max_body)
                    .min(u32::MAX as usize),
            )),
            options,
            created,
            counter: AtomicU64::new(0),
        })
    }

    /// The settings it runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The engine's description, for the start-up line.
    pub fn describe(&self) -> String {
        self.engine.describe()
    }

    /// The most tokens of prompt and answer together, when known.
    fn context(&self) -> Option<usize> {
        match (self.engine.context_length(), self.options.max_model_len) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_id(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Unique within the process, and across restarts by the start time.
        self.created.wrapping_mul(1_000_003).wrapping_add(n)
    }

    /// Writes one log line, client text escaped.
    fn log(&self, line: std::fmt::Arguments<'_>) {
        (self.options.log)(&escape(&line.to_string(), 2000));
    }
}
