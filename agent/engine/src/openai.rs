//! An OpenAI-compatible completions server as an engine, in the dialect the server speaks.
//!
//! Prompts go as token ids and come back streamed over server-sent events with control tokens
//! kept. What a server offers beyond OpenAI's API is found when connecting ([`Dialect`]):
//!
//! - vLLM (and SGLang, which follows it): `/v1/completions` with `skip_special_tokens: false`,
//!   `stop_token_ids`, and the generated ids through `return_tokens_as_token_ids`; `/tokenize`
//!   with `prompt`; cached tokens in `usage.prompt_tokens_details`.
//! - llama.cpp's `llama-server`: `/completion` with `return_tokens`, `cache_prompt` and the
//!   control tokens as `preserved_tokens` (so their text is shown); `/tokenize` with `content`
//!   and `parse_special`; cached tokens from `timings.cache_n`. The endpoint takes stop strings,
//!   not ids: the stop tokens' text is sent, and the stream is ended here at the first stop id.
//! - `glm-agent serve`: `/v1/completions` with `return_token_ids`; `/tokenize` as vLLM's.
//! - Any other server: text only (ids are re-tokenized by the caller), said once as a warning.
//!
//! Requests that fail before any token arrives are retried with backoff on 429, 5xx and
//! dropped connections.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::{
    Cause, Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage,
};

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `http://gpu-box:8000` (with or without `/v1`).
    pub base_url: String,
    /// The model name the server serves; `None` asks the server (`/v1/models`).
    pub model: Option<String>,
    /// Sent as a bearer token (from `OPENAI_API_KEY` or `GLM_AGENT_API_KEY`).
    pub api_key: Option<String>,
    /// Attempts for a request that fails before streaming starts.
    pub attempts: u32,
    /// First backoff; doubles each retry.
    pub backoff: Duration,
    /// Connect timeout and the longest wait for the next streamed bytes.
    pub read_timeout: Duration,
}

impl OpenAiConfig {
    /// Defaults for `base_url`: 4 attempts from 500 ms, 300 s between streamed bytes (long
    /// prompts prefill before the first byte).
    pub fn new(base_url: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: None,
            api_key: None,
            attempts: 4,
            backoff: Duration::from_millis(500),
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// What a server speaks beyond OpenAI's completions API, found when connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// vLLM or SGLang: generated ids through `return_tokens_as_token_ids`.
    Vllm,
    /// llama.cpp's `llama-server`: its own `/completion` endpoint with `return_tokens`.
    LlamaCpp,
    /// `glm-agent serve`: generated ids through `return_token_ids`.
    GlmAgent,
    /// Any other OpenAI-compatible server: text only.
    Generic,
}

impl Dialect {
    /// The name used in descriptions and traces.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Vllm => "vllm",
            Dialect::LlamaCpp => "llama.cpp",
            Dialect::GlmAgent => "glm-agent",
            Dialect::Generic => "openai",
        }
    }

    /// Whether the server reports the ids it generated.
    pub fn exact(self) -> bool {
        self != Dialect::Generic
    }

    /// The dialect a server names as the owner of its models (`/v1/models`).
    fn from_owner(owner: &str) -> Option<Dialect> {
        match owner {
            "vllm" | "sglang" => Some(Dialect::Vllm),
            "llamacpp" => Some(Dialect::LlamaCpp),
            "glm-agent" => Some(Dialect::GlmAgent),
            _ => None,
        }
    }
}

/// A control token: its text and its id in the model's tokenizer.
pub type ControlToken = (String, u32);

/// The engine.
#[derive(Debug, Clone)]
pub struct OpenAiEngine {
    config: OpenAiConfig,
    client: reqwest::Client,
    model: String,
    dialect: Dialect,
    control: Vec<ControlToken>,
}

/// The text whose encoding tells a GLM-4 tokenizer from another.
const PROBE: [&str; 3] = ["[gMASK]", "<sop>", "<|user|>"];

impl OpenAiEngine {
    /// Connects: finds the model name when not given and the server's [`Dialect`], and checks
    /// that the server tokenizes GLM-4's control tokens (`[gMASK]<sop><|user|>`) to the ids
    /// `control` gives them, so a server running another model is caught before the first
    /// step. A server whose tokenizer endpoint is missing or not understood is not refused.
    /// `control` lists every control token of the model (text and id).
    pub async fn connect(
        config: OpenAiConfig,
        control: Vec<ControlToken>,
    ) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(config.read_timeout))
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| {
                EngineError::new(
                    Cause::Internal,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        let mut engine = OpenAiEngine {
            config,
            client,
            model: String::new(),
            dialect: Dialect::Generic,
            control,
        };
        // The list says who serves (vLLM, llama.cpp and glm-agent name themselves).
        let (listed, owner) = engine.served_model().await?.unzip();
        engine.model = match (engine.config.model.clone(), listed) {
            (Some(model), _) | (None, Some(model)) => model,
            (None, None) => {
                return Err(EngineError::new(
                    Cause::Invalid,
                    format!(
                        "{} lists no model: name the served model with --model",
                        redact_url(&engine.url("/v1/models"))
                    ),
                ));
            }
        };
        let (dialect, tokens) = engine.detect(owner.flatten().as_deref()).await?;
        engine.dialect = dialect;
        engine.check_tokenizer(tokens)?;
        Ok(engine)
    }

    /// The dialect found when connecting.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// What a user should know about this server, once: a server that reports no token ids.
    pub fn warning(&self) -> Option<String> {
        (!self.dialect.exact()).then(|| {
            format!(
                "the server at {} reports text only (not vLLM, SGLang, llama.cpp's llama-server or glm-agent serve): generated ids are re-tokenized from the text, so the prefix cache may miss and replays may not be exact",
                redact_url(&self.config.base_url)
            )
        })
    }

    fn url(&self, path: &str) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        format!("{base}{path}")
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// The first model `/v1/models` lists, and who it says owns it; `None` when the server
    /// answers without a list. Only a server that cannot be reached is an error.
    async fn served_model(&self) -> Result<Option<(String, Option<String>)>, EngineError> {
        let url = self.url("/v1/models");
        let response = self
            .request(self.client.get(&url))
            .send()
            .await
            .map_err(|e| not_reached(&url, e))?;
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) {
            let body = json_capped(response, MAX_ERROR_BODY).await;
            return Err(http_error(&url, status.as_u16(), &body));
        }
        if !status.is_success() {
            return Ok(None);
        }
        let body = json_capped(response, MAX_JSON).await;
        let first = &body["data"][0];
        Ok(first["id"].as_str().map(|model| {
            (
                model.to_owned(),
                first["owned_by"].as_str().map(str::to_owned),
            )
        }))
    }

    async fn get_json(&self, url: &str) -> Result<Value, EngineError> {
        let response = self
            .request(self.client.get(url))
            .send()
            .await
            .map_err(|e| not_reached(url, e))?;
        let status = response.status();
        let body = json_capped(response, MAX_JSON).await;
        if !status.is_success() {
            return Err(http_error(url, status.as_u16(), &body));
        }
        Ok(body)
    }

    /// The dialect, and what the server's tokenizer made of the probe when it was asked.
    async fn detect(
        &self,
        owner: Option<&str>,
    ) -> Result<(Dialect, Option<Vec<u64>>), EngineError> {
        let dialect = match owner.and_then(Dialect::from_owner) {
            Some(dialect) => dialect,
            // llama-server forks may not name themselves; its settings endpoint tells.
            None if self
                .get_json(&self.url("/props"))
                .await
                .is_ok_and(|p| p.get("default_generation_settings").is_some()) =>
            {
                Dialect::LlamaCpp
            }
            None => {
                // vLLM-shaped servers that do not name themselves: their tokenizer answers.
                let tokens = self.tokenize(Dialect::Vllm).await?;
                let dialect = if tokens.is_some() {
                    Dialect::Vllm
                } else {
                    Dialect::Generic
                };
                return Ok((dialect, tokens));
            }
        };
        Ok((dialect, self.tokenize(dialect).await?))
    }

    /// The server's encoding of the probe; `None` when it has no tokenizer endpoint this
    /// dialect knows, or answers in a shape it does not.
    async fn tokenize(&self, dialect: Dialect) -> Result<Option<Vec<u64>>, EngineError> {
        let text = PROBE.concat();
        let request = match dialect {
            Dialect::Vllm | Dialect::GlmAgent => {
                json!({"model": self.model, "prompt": text, "add_special_tokens": false})
            }
            Dialect::LlamaCpp => {
                json!({"content": text, "add_special": false, "parse_special": true})
            }
            Dialect::Generic => return Ok(None),
        };
        let url = self.url("/tokenize");
        let response = self
            .request(self.client.post(&url).json(&request))
            .send()
            .await
            .map_err(|e| not_reached(&url, e))?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let body = json_capped(response, MAX_JSON).await;
        // llama.cpp answers `[id, ...]`, or `[{"id", "piece"}, ...]` when asked for pieces.
        let tokens: Option<Vec<u64>> = body["tokens"].as_array().and_then(|a| {
            a.iter()
                .map(|t| t.as_u64().or_else(|| t["id"].as_u64()))
                .collect()
        });
        Ok(tokens.filter(|t| !t.is_empty()))
    }

    fn check_tokenizer(&self, got: Option<Vec<u64>>) -> Result<(), EngineError> {
        let want: Option<Vec<u64>> = PROBE
            .iter()
            .map(|text| self.control_id(text).map(u64::from))
            .collect();
        let (Some(got), Some(want)) = (got, want) else {
            return Ok(());
        };
        if got != want {
            return Err(EngineError::new(
                Cause::Invalid,
                format!(
                    "the server at {} serves `{}`, whose tokenizer encodes GLM-4's control tokens as {got:?} instead of {want:?}; it is not running GLM-4 (serve THUDM/glm-4-9b-chat-1m-hf, or point --engine at a server that does)",
                    redact_url(&self.config.base_url),
                    self.model
                ),
            ));
        }
        Ok(())
    }

    fn control_id(&self, text: &str) -> Option<u32> {
        self.control.iter().find(|(t, _)| t == text).map(|c| c.1)
    }

    fn endpoint(&self) -> &'static str {
        match self.dialect {
            Dialect::LlamaCpp => "/completion",
            _ => "/v1/completions",
        }
    }

    fn body(&self, request: &GenerateRequest) -> Value {
        let s = &request.sampling;
        let temperature = if s.greedy { 0.0 } else { s.temperature };
        let top_p = if s.greedy { 1.0 } else { s.top_p };
        let top_k = s.top_k.filter(|_| !s.greedy);
        let mut body = match self.dialect {
            Dialect::LlamaCpp => json!({
                "prompt": request.prompt,
                "n_predict": request.max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                // llama.cpp's own defaults (top_k 40, min_p 0.05) would change the sampling.
                "top_k": top_k.unwrap_or(0),
                "min_p": 0.0,
                "stream": true,
                "return_tokens": true,
                "cache_prompt": true,
                "timings_per_token": true,
                "preserved_tokens": self.control.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
                // The stop tokens' text, so the server ends where the stop id is seen here.
                "stop": request
                    .stop_ids
                    .iter()
                    .filter_map(|id| self.control.iter().find(|c| c.1 == *id))
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>(),
            }),
            Dialect::Vllm | Dialect::GlmAgent | Dialect::Generic => {
                let mut body = json!({
                    "model": self.model,
                    "prompt": request.prompt,
                    "max_tokens": request.max_new_tokens,
                    "temperature": temperature,
                    "top_p": top_p,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                });
                if self.dialect == Dialect::GlmAgent {
                    body["return_token_ids"] = json!(true);
                } else {
                    body["stop_token_ids"] = json!(request.stop_ids);
                    body["skip_special_tokens"] = json!(false);
                    body["include_stop_str_in_output"] = json!(true);
                    body["logprobs"] = json!(1);
                    body["return_tokens_as_token_ids"] = json!(true);
                }
                body
            }
        };
        if let Some(k) = top_k.filter(|_| self.dialect != Dialect::LlamaCpp) {
            body["top_k"] = json!(k);
        }
        if let Some(seed) = s.seed {
            body["seed"] = json!(seed);
        }
        body
    }

    /// Sends the request, retrying failures that happen before streaming starts.
    async fn open(&self, body: &Value) -> Result<reqwest::Response, EngineError> {
        let url = self.url(self.endpoint());
        let mut backoff = self.config.backoff;
        let mut waited_total = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let result = self.request(self.client.post(&url).json(body)).send().await;
            let error = match result {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let body = json_capped(response, MAX_ERROR_BODY).await;
                    if let Some(secs) = retry_after {
                        backoff = backoff.max(Duration::from_secs(secs.min(60)));
                    }
                    http_error(&url, status, &body)
                }
                Err(e) => not_reached(&url, e),
            };
            // One budget of waiting for all the attempts, whatever a server's Retry-After asks.
            let waited = waited_total + backoff;
            if !error.retryable() || attempt >= self.config.attempts || waited > MAX_RETRY_WAIT {
                return Err(error);
            }
            waited_total = waited;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

/// A server that could not be reached: the address (without credentials) and every cause.
fn not_reached(url: &str, error: reqwest::Error) -> EngineError {
    let error = error.without_url();
    let mut message = format!("cannot reach {}: {error}", redact_url(url));
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    EngineError::new(Cause::Unreachable, message)
}

fn http_error(url: &str, status: u16, body: &Value) -> EngineError {
    let detail = body["error"]["message"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .or_else(|| body["detail"].as_str())
        .unwrap_or("");
    let message = format!(
        "{} answered HTTP {status} {}",
        redact_url(url),
        quote(detail)
    )
    .trim_end()
    .to_owned();
    let context = detail.contains("context length") || detail.contains("context_length");
    let cause = match status {
        429 | 503 => Cause::Overloaded,
        400 if context => Cause::ContextExceeded,
        other => Cause::Status(other),
    };
    EngineError::new(cause, message)
}

/// The most bytes of a JSON answer read (`/v1/models`, `/props`, `/tokenize`).
const MAX_JSON: usize = 4 << 20;
/// The most bytes of an error answer read.
const MAX_ERROR_BODY: usize = 64 << 10;
/// The most time spent waiting between attempts at one request.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The most characters of a server's text quoted in an error.
const MAX_QUOTE: usize = 300;

/// Reads at most `cap` bytes of `response` as JSON (null when it is longer, or not JSON).
async fn json_capped(mut response: reqwest::Response, cap: usize) -> Value {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if bytes.len() + chunk.len() > cap {
            return Value::Null;
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// `text` cut to [`MAX_QUOTE`] characters, for an error message.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

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

impl Engine for OpenAiEngine {
    fn describe(&self) -> String {
        format!(
            "openai:{} model={} dialect={}",
            redact_url(&self.config.base_url),
            self.model,
            self.dialect.name()
        )
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        Box::pin(async_stream(self, request))
    }
}

/// The event stream of one request, parsed from server-sent events.
fn async_stream(
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
        (text, ids)
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
                        state.buffer.extend_from_slice(&chunk);
                        let mut events = Vec::new();
                        let mut start = 0;
                        // Lines after the end (llama.cpp's final chunk, a stop id seen here)
                        // are not read: the stream is dropped with the response.
                        while !state.done
                            && let Some(found) = state.buffer[state.scanned..]
                                .iter()
                                .position(|b| *b == b'\n')
                        {
                            let end = state.scanned + found;
                            let line =
                                String::from_utf8_lossy(&state.buffer[start..end]).into_owned();
                            start = end + 1;
                            state.scanned = start;
                            let Some(data) = line.trim_end().strip_prefix("data:") else {
                                continue;
                            };
                            match state.data(data.trim()) {
                                Ok(Some(event)) => {
                                    state.last_delta = Instant::now();
                                    events.push(Ok(event));
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    // What came before the error, then the error, then the end.
                                    events.push(Err(e));
                                    state.done = false;
                                    pending = events.into_iter().rev().collect();
                                    let first = pending.pop();
                                    return first.map(|e| (e, (bytes, state, pending, true)));
                                }
                            }
                        }
                        state.buffer.drain(..start);
                        state.scanned = state.buffer.len();
                        if state.buffer.len() > MAX_LINE {
                            events.push(Err(EngineError::new(
                                Cause::StreamEnded,
                                format!(
                                    "the server sent over {} MiB without ending a line",
                                    MAX_LINE >> 20
                                ),
                            )));
                            pending = events.into_iter().rev().collect();
                            let first = pending.pop();
                            return first.map(|e| (e, (bytes, state, pending, true)));
                        }
                        pending = events.into_iter().rev().collect();
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
/// `url` without what must not be written down: a `user:password@` part is dropped and query
/// values are replaced by `***` (servers take keys there too). What is not a URL is kept
/// only up to its first `@`, `?` or `#`.
pub fn redact_url(url: &str) -> String {
    let cut = || url[..url.find(['@', '?', '#']).unwrap_or(url.len())].to_owned();
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return cut();
    };
    if parsed.cannot_be_a_base() {
        return cut();
    }
    if parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none()
    {
        return url.to_owned();
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    if keys.is_empty() {
        parsed.set_query(None);
    } else {
        let query: Vec<String> = keys.iter().map(|k| format!("{k}=***")).collect();
        parsed.set_query(Some(&query.join("&")));
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a stream whose body arrives in `chunks`.
    async fn events_of(chunks: Vec<Vec<u8>>) -> Vec<Result<EngineEvent, EngineError>> {
        let reads = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let response =
            reqwest::Response::from(http::Response::new(reqwest::Body::wrap_stream(reads)));
        let state = SseState {
            dialect: Dialect::Vllm,
            control: Vec::new(),
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

    #[test]
    fn credentials_never_reach_a_trace() {
        assert_eq!(
            redact_url("http://user:secret@10.0.0.2:8000/v1?api_key=k&x=1#f"),
            "http://10.0.0.2:8000/v1?api_key=***&x=***"
        );
        assert_eq!(redact_url("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
        assert_eq!(redact_url("user:pw@host"), "user:pw");
        assert!(!redact_url("not a url @secret").contains("secret"));
    }
}
