//! Each endpoint through the router, without a socket: `oneshot` a request, read the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use http_body_util::BodyExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Script, server};

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(server: &Arc<glm_serve::Server>, request: Request<Body>) -> (StatusCode, Value) {
    let response = glm_serve::router(server.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "glm-test",
        "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }}])
}

#[tokio::test]
async fn models_lists_the_served_name() {
    let s = server(Script::Answer("hi".into()), |_| {});
    let request = Request::get("/v1/models").body(Body::empty()).unwrap();
    let (status, body) = send(&s, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "glm-test");
    assert_eq!(body["data"][0]["max_model_len"], 1 << 20);
}

#[tokio::test]
async fn a_chat_answer_and_a_call_come_back_in_openai_shape() {
    let s = server(Script::Answer("It is sunny.<|user|>".into()), |_| {});
    let (status, body) = send(&s, post("/v1/chat/completions", &chat(json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "It is sunny.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);

    let call = "get_weather\n{\"city\": \"Oslo\"}<|observation|>";
    let s = server(Script::Answer(call.into()), |_| {});
    let request = chat(json!({"tools": weather_tool()}));
    let (status, body) = send(&s, post("/v1/chat/completions", &request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(arguments, json!({"city": "Oslo"}));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn a_streamed_answer_is_server_sent_events_ending_in_done() {
    let s = server(Script::Answer("Sunny.<|user|>".into()), |_| {});
    let request = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let (status, body) = send(&s, post("/v1/chat/completions", &request)).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Sunny.");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn errors_name_the_field_and_the_model() {
    let s = server(Script::Answer("x".into()), |_| {});
    let (status, body) = send(
        &s,
        post("/v1/chat/completions", &chat(json!({"max_tokens": "ten"}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "max_tokens");
    let (status, body) = send(
        &s,
        post("/v1/chat/completions", &chat(json!({"model": "gpt-4o"}))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "model_not_found");
    let request = Request::post("/v1/chat/completions")
        .body(Body::from("[1, 2]"))
        .unwrap();
    let (status, body) = send(&s, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "the body must be a JSON object");
    let request = Request::get("/v2/nothing").body(Body::empty()).unwrap();
    let (status, body) = send(&s, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

/// A body of 64 chunks of 1 MiB that counts how many were read.
fn counted_body(read: Arc<AtomicUsize>) -> Body {
    let chunks = futures::stream::iter(0..64).map(move |_| {
        read.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 1 << 20]))
    });
    Body::from_stream(chunks)
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let s = server(Script::Answer("x".into()), |o| {
        o.api_key = Some("sesame".into())
    });
    let read = Arc::new(AtomicUsize::new(0));
    let request = Request::post("/v1/chat/completions")
        .body(counted_body(read.clone()))
        .unwrap();
    let response = glm_serve::router(s.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    assert_eq!(read.load(Ordering::SeqCst), 0, "the body was read");

    let request = Request::post("/v1/chat/completions")
        .header(header::AUTHORIZATION, "Bearer sesame")
        .body(Body::from(chat(json!({})).to_string()))
        .unwrap();
    let (status, _) = send(&s, request).await;
    assert_eq!(status, StatusCode::OK);
    // /health needs no key.
    let request = Request::get("/health").body(Body::empty()).unwrap();
    assert_eq!(send(&s, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_unread_or_cut_off() {
    let s = server(Script::Answer("x".into()), |o| o.limits.max_body = 4 << 20);
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_LENGTH, 60 << 20)
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&s, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // No length given: read up to the limit, then refused.
    let read = Arc::new(AtomicUsize::new(0));
    let request = Request::post("/v1/chat/completions")
        .body(counted_body(read.clone()))
        .unwrap();
    let (status, _) = send(&s, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        read.load(Ordering::SeqCst) <= 6,
        "{} MiB read",
        read.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn tools_are_bounded_in_number_depth_and_rendered_size() {
    let s = server(Script::Answer("x".into()), |_| {});
    let many: Vec<Value> = (0..2000)
        .map(|i| json!({"type": "function", "function": {"name": format!("t{i}")}}))
        .collect();
    let (status, body) = send(
        &s,
        post("/v1/chat/completions", &chat(json!({"tools": many}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "tools", "{body}");

    let mut deep = json!({"type": "string"});
    for _ in 0..100 {
        deep = json!({"type": "array", "items": deep});
    }
    let tool = json!([{"type": "function", "function": {"name": "f", "parameters": deep}}]);
    let (status, body) = send(
        &s,
        post("/v1/chat/completions", &chat(json!({"tools": tool}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nests deeper"),
        "{body}"
    );

    // Within the depth limit, but rendered with indentation far over the prompt budget.
    let s = server(Script::Answer("x".into()), |o| {
        o.limits.max_prompt_bytes = 1 << 20
    });
    let mut leaf = json!({"type": "string"});
    for _ in 0..30 {
        leaf = json!({"type": "object", "properties": {"a": leaf, "b": leaf}});
        if leaf.to_string().len() > 400_000 {
            break;
        }
    }
    let tool = json!([{"type": "function", "function": {"name": "f", "parameters": leaf}}]);
    let (status, body) = send(
        &s,
        post("/v1/chat/completions", &chat(json!({"tools": tool}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "context_length_exceeded");
}

#[tokio::test]
async fn tokenize_reads_spelled_control_tokens_in_one_pass() {
    let s = server(Script::Answer("x".into()), |_| {});
    let text = "<|user|>".repeat(50_000) + "hi[gMASK]";
    let started = std::time::Instant::now();
    let (status, body) = send(&s, post("/tokenize", &json!({"prompt": text}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 50_003);
    assert_eq!(body["tokens"][50_002], 151_331);
    // Linear: a quadratic scan of this text takes tens of seconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_and_a_place_comes_back_when_the_client_goes() {
    let s = server(
        Script::Endless {
            every: Duration::from_millis(1),
        },
        |o| o.max_queue = 1,
    );
    let streaming = chat(json!({"stream": true}));
    let first = glm_serve::router(s.clone())
        .oneshot(post("/v1/chat/completions", &streaming))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, body) = send(&s, post("/v1/chat/completions", &streaming)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "queue_full");
    drop(first);
    let mut freed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = glm_serve::router(s.clone())
            .oneshot(post("/v1/chat/completions", &streaming))
            .await
            .unwrap();
        if second.status() == StatusCode::OK {
            freed = true;
            break;
        }
    }
    assert!(
        freed,
        "the place of a client that went away was not given back"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_gives_its_place_back() {
    let s = server(
        Script::Endless {
            every: Duration::from_micros(200),
        },
        |o| {
            o.max_queue = 1;
            o.limits.write_timeout = Duration::from_millis(300);
        },
    );
    let streaming = chat(json!({"stream": true}));
    // Held, never read.
    let stalled = glm_serve::router(s.clone())
        .oneshot(post("/v1/chat/completions", &streaming))
        .await
        .unwrap();
    assert_eq!(stalled.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    let mut freed = false;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = glm_serve::router(s.clone())
            .oneshot(post("/v1/chat/completions", &streaming))
            .await
            .unwrap();
        if next.status() != StatusCode::TOO_MANY_REQUESTS {
            freed = true;
            break;
        }
    }
    assert!(freed, "a stalled reader kept its place");
    drop(stalled);
}

/// The prompt's text as the tiny tokenizer spells it (every byte one token).
fn spelled(prompt: &[u32]) -> String {
    glm_test_support::tiny_encoder().decode(prompt).unwrap()
}

/// A follow-up that sends the call back re-serialised (spaces, other key order, as LangChain's
/// `json.dumps` does) extends the prompt with the ids the model generated, not a re-encoding;
/// results sent out of order go to their calls by `tool_call_id`; an id that names no call is a
/// 400 naming it.
#[tokio::test]
async fn follow_ups_are_exact_by_meaning_and_results_go_to_their_calls() {
    let calls = "get_weather\n{\"city\":\"Oslo\",\"days\":2}<|assistant|>get_weather\n{\"city\":\"Bergen\",\"days\":2}<|observation|>";
    let (s, prompts) = crate::common::recording_server(Script::Answer(calls.into()), |_| {});
    let first = chat(json!({"tools": weather_tool()}));
    let (status, body) = send(&s, post("/v1/chat/completions", &first)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let returned = body["choices"][0]["message"]["tool_calls"].clone();
    let ids: Vec<String> = returned
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    // Sent back as LangChain does: arguments re-serialised, the results in the other order.
    let resent: Vec<Value> = returned
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let args: Value =
                serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
            let python_style =
                format!("{{\"days\": {}, \"city\": {}}}", args["days"], args["city"]);
            json!({"id": c["id"], "type": "function",
                   "function": {"name": "get_weather", "arguments": python_style}})
        })
        .collect();
    let follow_up = |results: Value| {
        let mut body = first.clone();
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": resent}));
        messages.extend(results.as_array().unwrap().iter().cloned());
        body
    };
    let results = json!([
        {"role": "tool", "tool_call_id": ids[1], "content": "Bergen: rain"},
        {"role": "tool", "tool_call_id": ids[0], "content": "Oslo: sun"},
    ]);
    let (status, body) = send(&s, post("/v1/chat/completions", &follow_up(results))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let prompts = prompts.lock().unwrap().clone();
    let (before, after) = (&prompts[0], &prompts[1]);
    let text = spelled(after);
    // The model's own spelling, token for token after the first prompt.
    assert!(text.contains("{\"city\":\"Oslo\",\"days\":2}"), "{text}");
    assert!(!text.contains("{\"days\": 2"), "{text}");
    assert_eq!(&after[..before.len()], &before[..]);
    let oslo = text.find("Oslo: sun").unwrap();
    let bergen = text.find("Bergen: rain").unwrap();
    assert!(oslo < bergen, "results in their calls' order: {text}");

    let unknown = json!([{"role": "tool", "tool_call_id": "call_nope", "content": "x"}]);
    let (status, body) = send(&s, post("/v1/chat/completions", &follow_up(unknown))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("call_nope"), "{message}");
    assert_eq!(body["error"]["param"], "messages[2].tool_call_id");
}
