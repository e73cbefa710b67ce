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

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

mod pieces;
mod sse;

use super::{Cause, Engine, EngineError, EventStream, GenerateRequest, Structures};
pub use pieces::Pieces;
use sse::async_stream;

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
    pieces: Option<Arc<Pieces>>,
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
            pieces: None,
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

    /// Gives the engine every token's bytes (the tokenizer's vocabulary), so that ids a server
    /// holds back inside a UTF-8 character are recovered instead of lost (llama.cpp's server).
    pub fn with_pieces(mut self, pieces: Pieces) -> Self {
        self.pieces = Some(Arc::new(pieces));
        self
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
        if let Some(structured) = &request.structured {
            match self.dialect {
                Dialect::LlamaCpp => body["json_schema"] = structured.schema.clone(),
                Dialect::Vllm => body["structured_outputs"] = json!({"json": structured.schema}),
                Dialect::GlmAgent => body["structured"] = json!(structured),
                Dialect::Generic => {}
            }
        }
        body
    }

    /// A structured request this server cannot hold to: what to do instead.
    fn unenforceable(&self, request: &GenerateRequest) -> Option<EngineError> {
        let structured = request.structured.as_ref()?;
        let why = match self.structures() {
            Structures::JsonOrCalls => return None,
            Structures::Json if structured.lead.is_empty()
                && structured.calls.is_empty()
                && structured.text_calls.is_empty() => {
                return None;
            }
            Structures::Json => format!(
                "{} enforces a JSON answer alone, not a leading text or a choice of calls",
                self.dialect.name()
            ),
            Structures::None => "the server is not known to enforce JSON Schema (llama.cpp, vLLM and glm-agent serve do)".to_owned(),
        };
        Some(EngineError::new(
            Cause::Invalid,
            format!("a structured answer cannot be enforced: {why}"),
        ))
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
    // Overload (429, 503) stays a status: the attempts here already waited for it, so the
    // caller does not wait again.
    let cause = match status {
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
pub(crate) fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
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
        if let Some(e) = self.unenforceable(&request) {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        Box::pin(async_stream(self, request))
    }

    /// llama.cpp's `json_schema` and vLLM's `structured_outputs` hold the answer to a schema;
    /// another glm-agent serve takes the whole structure.
    fn structures(&self) -> Structures {
        match self.dialect {
            Dialect::LlamaCpp | Dialect::Vllm => Structures::Json,
            Dialect::GlmAgent => Structures::JsonOrCalls,
            Dialect::Generic => Structures::None,
        }
    }
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
