//! An OpenAI-compatible completions server (vLLM, SGLang) as an engine.
//!
//! Prompts go to `/v1/completions` as token ids, streamed back over server-sent events with
//! control tokens kept (`skip_special_tokens: false`) and token ids reported
//! (`return_tokens_as_token_ids`, a vLLM extension; servers without it give text only).
//! Requests that fail before any token arrives are retried with backoff on 429, 5xx and
//! dropped connections.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::{Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage};

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

/// The engine.
#[derive(Debug, Clone)]
pub struct OpenAiEngine {
    config: OpenAiConfig,
    client: reqwest::Client,
    model: String,
}

impl OpenAiEngine {
    /// Connects: finds the model name when not given, and checks that the server tokenizes
    /// GLM-4's control tokens to `expected_ids` (`[gMASK]`, `<sop>`, `<|user|>`), so a server
    /// running another model is caught before the first step.
    pub async fn connect(
        config: OpenAiConfig,
        expected_ids: [u32; 3],
    ) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(config.read_timeout))
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| EngineError::fatal(format!("cannot build the HTTP client: {e}")))?;
        let mut engine = OpenAiEngine {
            config,
            client,
            model: String::new(),
        };
        engine.model = match engine.config.model.clone() {
            Some(model) => model,
            None => engine.served_model().await?,
        };
        engine.check_tokenizer(expected_ids).await?;
        Ok(engine)
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

    async fn served_model(&self) -> Result<String, EngineError> {
        let body = self.get_json(&self.url("/v1/models")).await?;
        body["data"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| EngineError::fatal(format!("{} lists no model", self.url("/v1/models"))))
    }

    async fn get_json(&self, url: &str) -> Result<Value, EngineError> {
        let response = self
            .request(self.client.get(url))
            .send()
            .await
            .map_err(|e| EngineError::transient(format!("cannot reach {url}: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(http_error(url, status.as_u16(), &body));
        }
        Ok(body)
    }

    async fn check_tokenizer(&self, expected: [u32; 3]) -> Result<(), EngineError> {
        let url = self.url("/tokenize");
        let request = json!({
            "model": self.model, "prompt": "[gMASK]<sop><|user|>", "add_special_tokens": false
        });
        let response = self
            .request(self.client.post(&url).json(&request))
            .send()
            .await
            .map_err(|e| EngineError::transient(format!("cannot reach {url}: {e}")))?;
        if response.status().as_u16() == 404 {
            // Not vLLM: the check is not available; the model name is all there is.
            return Ok(());
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let got: Vec<u64> = body["tokens"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let want: Vec<u64> = expected.iter().map(|id| u64::from(*id)).collect();
        if got != want {
            return Err(EngineError::fatal(format!(
                "the server at {} serves `{}`, whose tokenizer encodes GLM-4's control tokens as {got:?} instead of {want:?}; it is not running GLM-4 (serve THUDM/glm-4-9b-chat-1m-hf, or point --engine at a server that does)",
                self.config.base_url, self.model
            )));
        }
        Ok(())
    }

    fn body(&self, request: &GenerateRequest) -> Value {
        let s = &request.sampling;
        let mut body = json!({
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": if s.greedy { 0.0 } else { s.temperature },
            "top_p": if s.greedy { 1.0 } else { s.top_p },
            "stream": true,
            "stream_options": {"include_usage": true},
            "stop_token_ids": request.stop_ids,
            "skip_special_tokens": false,
            "include_stop_str_in_output": true,
            "logprobs": 1,
            "return_tokens_as_token_ids": true,
        });
        if let Some(k) = s.top_k.filter(|_| !s.greedy) {
            body["top_k"] = json!(k);
        }
        if let Some(seed) = s.seed {
            body["seed"] = json!(seed);
        }
        body
    }

    /// Sends the request, retrying failures that happen before streaming starts.
    async fn open(&self, body: &Value) -> Result<reqwest::Response, EngineError> {
        let url = self.url("/v1/completions");
        let mut backoff = self.config.backoff;
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
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if let Some(secs) = retry_after {
                        backoff = backoff.max(Duration::from_secs(secs.min(60)));
                    }
                    http_error(&url, status, &body)
                }
                Err(e) => EngineError::transient(format!("cannot reach {url}: {e}")),
            };
            if !error.retryable || attempt >= self.config.attempts {
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

fn http_error(url: &str, status: u16, body: &Value) -> EngineError {
    let detail = body["error"]["message"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .or_else(|| body["detail"].as_str())
        .unwrap_or("");
    let message = format!("{url} answered HTTP {status} {detail}")
        .trim_end()
        .to_owned();
    if status == 429 || status >= 500 {
        EngineError::transient(message)
    } else {
        EngineError::fatal(message)
    }
}

/// Reads `token_id:N` entries of a chunk's logprobs.
fn chunk_ids(choice: &Value) -> Vec<u32> {
    choice["logprobs"]["tokens"]
        .as_array()
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| t.as_str()?.strip_prefix("token_id:")?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Engine for OpenAiEngine {
    fn describe(&self) -> String {
        format!(
            "openai:{} model={}",
            redact_url(&self.config.base_url),
            self.model
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
    let prompt_tokens = request.prompt.len();
    futures::stream::once(async move {
        let started = Instant::now();
        let response = engine.open(&body).await?;
        Ok::<_, EngineError>((response, started))
    })
    .flat_map(move |opened| {
        let state = SseState::new(prompt_tokens);
        match opened {
            Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
            Ok((response, started)) => sse_events(response, started, state).boxed(),
        }
    })
}

struct SseState {
    buffer: String,
    usage: Usage,
    reason: Option<FinishReason>,
    first_token: Option<Instant>,
    done: bool,
}

impl SseState {
    fn new(prompt_tokens: usize) -> Self {
        SseState {
            buffer: String::new(),
            usage: Usage {
                prompt_tokens,
                ..Usage::default()
            },
            reason: None,
            first_token: None,
            done: false,
        }
    }

    /// Handles one `data:` payload; returns the delta it carries, if any.
    fn data(&mut self, data: &str) -> Result<Option<EngineEvent>, EngineError> {
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| {
            EngineError::transient(format!("the server sent a malformed event ({e}): {data}"))
        })?;
        if let Some(message) = chunk["error"]["message"].as_str() {
            return Err(EngineError::transient(format!(
                "the server failed mid-stream: {message}"
            )));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            let n = |v: &Value| v.as_u64().map(|n| n as usize);
            self.usage.prompt_tokens =
                n(&usage["prompt_tokens"]).unwrap_or(self.usage.prompt_tokens);
            self.usage.generated_tokens =
                n(&usage["completion_tokens"]).unwrap_or(self.usage.generated_tokens);
            self.usage.cached_prompt_tokens = n(&usage["prompt_tokens_details"]["cached_tokens"]);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(None);
        };
        match choice["finish_reason"].as_str() {
            Some("length") => self.reason = Some(FinishReason::Length),
            Some(_) => self.reason = Some(FinishReason::Stop),
            None => {}
        }
        let text = choice["text"].as_str().unwrap_or_default().to_owned();
        let ids = chunk_ids(choice);
        if text.is_empty() && ids.is_empty() {
            return Ok(None);
        }
        self.first_token.get_or_insert_with(Instant::now);
        Ok(Some(EngineEvent::Delta { ids, text }))
    }
}

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
                match bytes.next().await {
                    Some(Ok(chunk)) => {
                        state.buffer.push_str(&String::from_utf8_lossy(&chunk));
                        let mut events = Vec::new();
                        while let Some(end) = state.buffer.find('\n') {
                            let line: String = state.buffer.drain(..=end).collect();
                            let Some(data) = line.trim_end().strip_prefix("data:") else {
                                continue;
                            };
                            match state.data(data.trim()) {
                                Ok(Some(event)) => events.push(Ok(event)),
                                Ok(None) => {}
                                Err(e) => {
                                    events.push(Err(e));
                                    state.done = false;
                                    pending = events.into_iter().rev().collect();
                                    return pending
                                        .pop()
                                        .map(|e| (e, (bytes, state, Vec::new(), true)));
                                }
                            }
                        }
                        pending = events.into_iter().rev().collect();
                    }
                    Some(Err(e)) => {
                        let error = EngineError::transient(format!("the stream broke: {e}"));
                        return Some((Err(error), (bytes, state, pending, true)));
                    }
                    None => {
                        if !state.done {
                            let error = EngineError::transient(
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
    use super::redact_url;

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
