//! The OpenAI-compatible engine against local servers replaying recorded streams (vLLM's
//! documented shape; llama.cpp's `llama-server`, recorded from the real server), and the replay
//! engine. The engine against the real llama.cpp server is tested in the embedded engine's
//! tests (`llamacpp.rs`), beside the embedded engine on the same weights.

use std::time::Duration;

use glm_engine::{
    ControlToken, Dialect, Engine, FinishReason, GenerateRequest, OpenAiConfig, OpenAiEngine,
    Recorded, ReplayEngine, Sampling,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use glm_test_support::http::{Answer, Seen, serve};

const GLM_IDS: [u32; 3] = [151_331, 151_333, 151_336];
const SSE: &str = include_str!("fixtures/vllm_completion.sse");
/// `POST /completion` of llama.cpp's server (the `xllamacpp` 2026.10 build) on a tiny GLM-4-shaped
/// GGUF, asked as the engine asks, with a grammar forcing a call then `ok<|endoftext|>`.
const LLAMA_SSE: &str = include_str!("fixtures/llamacpp_completion.sse");

/// GLM-4-9B's control tokens, text and id.
fn control() -> Vec<ControlToken> {
    [
        "<|endoftext|>",
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "<sop>",
        "<eop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
    ]
    .iter()
    .zip(151_329..)
    .map(|(t, id)| (t.to_string(), id))
    .collect()
}

fn sse() -> Answer {
    (
        200,
        vec![("Content-Type", "text/event-stream".into())],
        SSE.into(),
    )
}

fn json_answer(status: u16, value: Value) -> Answer {
    (
        status,
        vec![("Content-Type", "application/json".into())],
        value.to_string(),
    )
}

/// A GLM-4 server whose completions answer with `completions(n)` for the n-th completion call.
fn glm_server(
    completions: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    serve(move |req, _| match req.path.as_str() {
        "/v1/models" => json_answer(200, json!({"data": [{"id": "glm-4-9b-chat-1m-hf"}]})),
        "/tokenize" => json_answer(200, json!({"tokens": GLM_IDS, "count": 3})),
        "/v1/completions" => completions(calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst)),
        _ => json_answer(404, json!({"detail": "Not Found"})),
    })
}

fn request() -> GenerateRequest {
    GenerateRequest {
        prompt: vec![151_331, 151_333, 151_336, 10, 72, 105, 151_337],
        sampling: Sampling {
            greedy: true,
            seed: Some(7),
            ..Sampling::default()
        },
        max_new_tokens: 64,
        stop_ids: vec![151_329, 151_336, 151_338],
        starts_with: Vec::new(),
        structured: None,
    }
}

fn config(base: &str) -> OpenAiConfig {
    OpenAiConfig {
        backoff: Duration::from_millis(10),
        api_key: Some("sk-test".into()),
        ..OpenAiConfig::new(base)
    }
}

#[tokio::test]
async fn streams_ids_text_and_usage_and_sends_token_ids() {
    let (base, seen) = glm_server(|_| sse());
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    assert_eq!(
        engine.describe(),
        format!("openai:{base} model=glm-4-9b-chat-1m-hf dialect=vllm")
    );
    let out = engine.collect(request()).await.unwrap();
    assert_eq!(out.text, "get_weather\n{\"city\": \"Oslo\"}<|observation|>");
    assert_eq!(out.ids, vec![455, 63_121, 198, 5018, 151_338]);
    assert_eq!(out.reason, FinishReason::Stop);
    assert_eq!(
        (
            out.usage.prompt_tokens,
            out.usage.generated_tokens,
            out.usage.cached_prompt_tokens
        ),
        (12, 5, Some(8))
    );

    let seen = seen.lock().unwrap();
    let sent = seen.iter().find(|r| r.path == "/v1/completions").unwrap();
    assert_eq!(sent.method, "POST");
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(
        body["prompt"],
        json!([151_331, 151_333, 151_336, 10, 72, 105, 151_337])
    );
    assert_eq!(body["stop_token_ids"], json!([151_329, 151_336, 151_338]));
    assert_eq!(body["skip_special_tokens"], json!(false));
    assert_eq!(body["temperature"], json!(0.0));
    assert_eq!(body["seed"], json!(7));
    assert_eq!(body["stream"], json!(true));
    assert!(
        sent.headers
            .contains(&("authorization".into(), "Bearer sk-test".into()))
    );
}

#[tokio::test]
async fn rate_limits_and_overload_are_retried() {
    let (base, seen) = glm_server(|n| match n {
        0 => (
            429,
            vec![("Retry-After", "0".into())],
            "{\"error\": {\"message\": \"slow down\"}}".into(),
        ),
        1 => json_answer(503, json!({"error": {"message": "overloaded"}})),
        _ => sse(),
    });
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let out = engine.collect(request()).await.unwrap();
    assert_eq!(out.ids.len(), 5);
    let completions = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/v1/completions")
        .count();
    assert_eq!(completions, 3);
}

#[tokio::test]
async fn errors_say_whether_retrying_helps() {
    let (base, seen) =
        glm_server(|_| json_answer(500, json!({"error": {"message": "CUDA out of memory"}})));
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let err = engine.collect(request()).await.unwrap_err();
    assert!(err.retryable());
    assert!(
        err.message
            .ends_with("answered HTTP 500 CUDA out of memory"),
        "{err}"
    );
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/v1/completions")
            .count(),
        4
    );

    let (base, seen) =
        glm_server(|_| json_answer(400, json!({"error": {"message": "prompt is too long"}})));
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let err = engine.collect(request()).await.unwrap_err();
    assert!(!err.retryable());
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/v1/completions")
            .count(),
        1
    );

    let (base, _) = glm_server(|_| {
        (
            200,
            vec![],
            SSE.split("data: [DONE]").next().unwrap().to_owned(),
        )
    });
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let err = engine.collect(request()).await.unwrap_err();
    assert!(
        err.retryable() && err.message.contains("before [DONE]"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_running_another_model_is_refused() {
    let (base, _) = serve(|req: &Seen, _| match req.path.as_str() {
        "/v1/models" => json_answer(200, json!({"data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}]})),
        "/tokenize" => json_answer(200, json!({"tokens": [58, 70, 44, 7], "count": 4})),
        _ => json_answer(404, json!({})),
    });
    let err = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("serves `Qwen/Qwen2.5-7B-Instruct`"),
        "{err}"
    );
    assert!(err.message.contains("it is not running GLM-4"), "{err}");
    assert!(!err.retryable());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = OpenAiEngine::connect(config(&format!("http://127.0.0.1:{port}")), control())
        .await
        .unwrap_err();
    assert!(
        err.retryable() && err.message.contains("cannot reach"),
        "{err}"
    );
}

/// A llama.cpp server as `llama-server` answers: its model list, its settings, its tokenizer
/// (`content` and `parse_special`; a vLLM-shaped request gets `[]`, as the real one answers),
/// and `/completion` with `stream`.
fn llama_server(
    owned_by: &'static str,
    stream: String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    serve(move |req: &Seen, _| match req.path.as_str() {
        "/v1/models" => json_answer(
            200,
            json!({"object": "list", "data": [{"id": "model.gguf", "object": "model", "owned_by": owned_by}]}),
        ),
        "/props" => json_answer(
            200,
            json!({"default_generation_settings": {}, "total_slots": 2, "build_info": "b0"}),
        ),
        "/tokenize" => {
            let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let tokens =
                if body["content"] == "[gMASK]<sop><|user|>" && body["parse_special"] == true {
                    json!(GLM_IDS)
                } else {
                    json!([])
                };
            json_answer(200, json!({"tokens": tokens}))
        }
        "/completion" => (
            200,
            vec![("Content-Type", "text/event-stream".into())],
            stream.clone(),
        ),
        _ => json_answer(
            404,
            json!({"error": {"code": 404, "message": "File Not Found"}}),
        ),
    })
}

#[tokio::test]
async fn llama_server_is_spoken_to_in_its_own_dialect() {
    let (base, seen) = llama_server("llamacpp", LLAMA_SSE.into());
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    assert_eq!(engine.dialect(), Dialect::LlamaCpp);
    assert_eq!(
        engine.describe(),
        format!("openai:{base} model=model.gguf dialect=llama.cpp")
    );
    assert_eq!(engine.warning(), None);
    let mut req = request();
    req.prompt = vec![151_331, 151_333, 151_336, 10, 104, 105, 151_337];
    let out = engine.collect(req.clone()).await.unwrap();
    // Ends at the first stop id, though the server went on.
    assert_eq!(out.text, "get_weather\n{\"city\": \"Oslo\"}<|observation|>");
    assert_eq!(out.ids.len(), 29);
    assert_eq!(out.ids[..3], [103, 101, 116]);
    assert_eq!(out.ids.last(), Some(&151_338));
    assert_eq!(out.reason, FinishReason::Stop);
    assert_eq!(
        (
            out.usage.prompt_tokens,
            out.usage.cached_prompt_tokens,
            out.usage.generated_tokens
        ),
        (7, Some(6), 29)
    );
    {
        let seen = seen.lock().unwrap();
        let sent = seen.iter().find(|r| r.path == "/completion").unwrap();
        let body: Value = serde_json::from_str(&sent.body).unwrap();
        assert_eq!(body["prompt"], json!(req.prompt));
        assert_eq!(body["n_predict"], json!(64));
        assert_eq!(
            (body["return_tokens"].clone(), body["cache_prompt"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(body["preserved_tokens"].as_array().unwrap().len(), 10);
        assert_eq!(
            body["stop"],
            json!(["<|endoftext|>", "<|user|>", "<|observation|>"])
        );
        assert_eq!(
            (body["temperature"].clone(), body["top_k"].clone()),
            (json!(0.0), json!(0))
        );
        assert!(!seen.iter().any(|r| r.path == "/v1/completions"));
    }

    // No stop ids: the server's own end (`eos`) ends it, with the end token's text.
    req.stop_ids.clear();
    let out = engine.collect(req.clone()).await.unwrap();
    assert!(
        out.text.ends_with("<|observation|>ok<|endoftext|>"),
        "{}",
        out.text
    );
    assert_eq!(out.reason, FinishReason::Stop);

    // A server that does not render control tokens: their text is put back from the ids.
    let bare = LLAMA_SSE.replace("\"content\":\"<|observation|>\"", "\"content\":\"\"");
    assert_ne!(bare, LLAMA_SSE);
    let (base, _) = llama_server("llamacpp", bare);
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let out = engine.collect(request()).await.unwrap();
    assert!(out.text.ends_with("}<|observation|>"), "{}", out.text);

    // The length limit.
    let limited = LLAMA_SSE.replace("\"stop_type\":\"eos\"", "\"stop_type\":\"limit\"");
    let (base, _) = llama_server("llamacpp", limited);
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    let out = engine.collect(req).await.unwrap();
    assert_eq!(out.reason, FinishReason::Length);
}

#[tokio::test]
async fn dialects_are_found_without_names_and_unknown_tokenizers_are_not_refused() {
    // A llama.cpp fork that does not name itself: its settings endpoint tells.
    let (base, _) = llama_server("someone", LLAMA_SSE.into());
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    assert_eq!(engine.dialect(), Dialect::LlamaCpp);

    // A server with none of the known endpoints: text only, said once, not refused.
    let (base, seen) = serve(|req: &Seen, _| match req.path.as_str() {
        "/v1/models" => json_answer(200, json!({"data": [{"id": "glm-4", "owned_by": "acme"}]})),
        "/tokenize" => json_answer(200, json!({"tokens": []})),
        "/v1/completions" => sse(),
        _ => json_answer(404, json!({})),
    });
    let engine = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap();
    assert_eq!(engine.dialect(), Dialect::Generic);
    assert!(engine.describe().ends_with("dialect=openai"));
    let warning = engine.warning().unwrap();
    assert!(warning.contains("re-tokenized"), "{warning}");
    assert!(engine.collect(request()).await.is_ok());
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| r.path == "/v1/completions")
    );

    // llama.cpp answering a tokenizer request it reads differently is not a wrong model.
    let (base, _) = serve(|req: &Seen, _| match req.path.as_str() {
        "/v1/models" => json_answer(
            200,
            json!({"data": [{"id": "model.gguf", "owned_by": "llamacpp"}]}),
        ),
        "/tokenize" => json_answer(200, json!({"tokens": []})),
        _ => json_answer(404, json!({})),
    });
    assert!(
        OpenAiEngine::connect(config(&base), control())
            .await
            .is_ok()
    );

    // ...but a llama.cpp server whose tokenizer splits the control tokens is.
    let (base, _) = serve(|req: &Seen, _| match req.path.as_str() {
        "/v1/models" => json_answer(
            200,
            json!({"data": [{"id": "qwen.gguf", "owned_by": "llamacpp"}]}),
        ),
        "/tokenize" => json_answer(200, json!({"tokens": [58, 70, 44, 7]})),
        _ => json_answer(404, json!({})),
    });
    let err = OpenAiEngine::connect(config(&base), control())
        .await
        .unwrap_err();
    assert!(err.message.contains("serves `qwen.gguf`"), "{err}");
}

#[tokio::test]
async fn replay_serves_recordings_in_order_then_errs() {
    let engine = ReplayEngine::from_json(
        r#"["first", {"text": "python\nx<|observation|>", "ids": [1, 151338]}]"#,
    )
    .unwrap();
    assert_eq!(engine.collect(request()).await.unwrap().text, "first");
    let second = engine.collect(request()).await.unwrap();
    assert_eq!(
        (second.ids.as_slice(), second.reason),
        (&[1, 151_338][..], FinishReason::Stop)
    );
    let err = engine.collect(request()).await.unwrap_err();
    assert!(
        err.message
            .contains("the recording has 2 outputs and request 3 asked for one more"),
        "{err}"
    );
    assert_eq!(engine.served(), 3);
    assert!(ReplayEngine::from_json("{").is_err());
    let _ = Recorded {
        ids: vec![],
        text: String::new(),
    };
}

#[test]
fn generate_command_prints_ids_text_and_usage() {
    let (base, _) = glm_server(|_| sse());
    let out = glm_test_support::glm_agent(
        &[
            "generate",
            "--engine",
            &format!("openai:{base}"),
            "--prompt-ids",
            "151331,151333,151336,10,72,151337",
            "--greedy",
            "--json",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["ids"], json!([455, 63_121, 198, 5018, 151_338]));
    assert_eq!(
        value["text"],
        "get_weather\n{\"city\": \"Oslo\"}<|observation|>"
    );
    assert_eq!(value["finish_reason"], "stop");
    assert_eq!(value["usage"]["cached_prompt_tokens"], 8);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outputs.json");
    std::fs::write(&file, r#"["Hello<|user|>"]"#).unwrap();
    let prompt = dir.path().join("prompt.txt");
    std::fs::write(&prompt, "151331 151333\n151336").unwrap();
    let out = glm_test_support::glm_agent(
        &[
            "generate",
            "--engine",
            &format!("replay:{}", file.display()),
            "--prompt-file",
            prompt.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "Hello<|user|>\n");
}

#[test]
fn generate_command_exit_codes() {
    let out =
        glm_test_support::glm_agent(&["generate", "--engine", "bogus", "--prompt-ids", "1"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use embedded, openai:URL"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = glm_test_support::glm_agent(
        &[
            "generate",
            "--engine",
            &format!("openai:http://127.0.0.1:{port}"),
            "--prompt-ids",
            "1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
