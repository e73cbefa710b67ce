//! The OpenAI-compatible engine against the worst servers we can write on 127.0.0.1: a stream
//! that never ends, one that drips keep-alive comments and no token, an endless model list, a
//! line of 100 MB, a malformed event of megabytes, and a 429 asking to wait a minute. Each is
//! bounded in time (asserted) and in what is kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use glm_engine::{Engine, FinishReason, GenerateRequest, OpenAiConfig, OpenAiEngine};

/// A server that answers every request with `answer(path, stream)`, writing raw bytes.
fn raw_server(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                answer(&path, &mut stream);
            });
        }
    });
    base
}

fn head(stream: &mut TcpStream, status: &str, kind: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n"
    )
}

/// A model list and a tokenizer that make the engine connect; `/v1/completions` by `stream`.
fn glm(completions: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> String {
    raw_server(move |path, stream| match path {
        "/v1/models" => {
            let _ = head(stream, "200 OK", "application/json");
            let _ = stream.write_all(br#"{"data": [{"id": "glm", "owned_by": "vllm"}]}"#);
        }
        "/tokenize" => {
            let _ = head(stream, "404 Not Found", "application/json");
            let _ = stream.write_all(b"{}");
        }
        _ => completions(stream),
    })
}

fn config(base: &str, read_timeout: Duration) -> OpenAiConfig {
    OpenAiConfig {
        backoff: Duration::from_millis(10),
        read_timeout,
        ..OpenAiConfig::new(base)
    }
}

fn request(max_new_tokens: u32) -> GenerateRequest {
    GenerateRequest::greedy(vec![151_331, 151_333, 10, 151_337], max_new_tokens)
}

fn chunk(text: &str) -> String {
    format!("data: {{\"choices\": [{{\"text\": \"{text}\", \"finish_reason\": null}}]}}\n\n")
}

#[tokio::test]
async fn a_stream_that_never_ends_is_cut_at_the_token_limit() {
    let base = glm(|stream| {
        let _ = head(stream, "200 OK", "text/event-stream");
        while stream.write_all(chunk("x").as_bytes()).is_ok() {}
    });
    let engine = OpenAiEngine::connect(config(&base, Duration::from_secs(10)), Vec::new())
        .await
        .unwrap();
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), engine.collect(request(100)))
        .await
        .expect("the endless stream was read for ever")
        .unwrap();
    assert_eq!(out.reason, FinishReason::Length);
    assert!(out.text.len() <= 130, "{} tokens read", out.text.len());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn keep_alive_comments_without_tokens_end_at_the_read_timeout() {
    let base = glm(|stream| {
        let _ = head(stream, "200 OK", "text/event-stream");
        let _ = stream.write_all(chunk("a").as_bytes());
        for _ in 0..200 {
            if stream.write_all(b": keep-alive\n\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let engine = OpenAiEngine::connect(config(&base, Duration::from_secs(1)), Vec::new())
        .await
        .unwrap();
    let started = Instant::now();
    let err = engine.collect(request(100)).await.unwrap_err();
    assert!(err.message.contains("no token for 1 s"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_model_list_is_not_read_whole() {
    let base = raw_server(|_, stream| {
        let _ = head(stream, "200 OK", "application/json");
        let _ = stream.write_all(br#"{"data": [{"id": "glm", "owned_by": ""#);
        let block = vec![b'x'; 1 << 20];
        while stream.write_all(&block).is_ok() {}
    });
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        OpenAiEngine::connect(config(&base, Duration::from_secs(5)), Vec::new()),
    )
    .await
    .expect("the endless list was read for ever");
    let Err(err) = result else {
        panic!("a list cut off cannot name a model");
    };
    assert!(err.message.contains("lists no model"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_line_of_100_mb_fails_in_linear_time_and_a_bad_event_is_quoted_short() {
    let base = glm(|stream| {
        let _ = head(stream, "200 OK", "text/event-stream");
        let _ = stream.write_all(b"data: ");
        let block = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\n\n");
    });
    let engine = OpenAiEngine::connect(config(&base, Duration::from_secs(10)), Vec::new())
        .await
        .unwrap();
    let started = Instant::now();
    let err = engine.collect(request(100)).await.unwrap_err();
    assert!(err.message.contains("without ending a line"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let base = glm(|stream| {
        let _ = head(stream, "200 OK", "text/event-stream");
        let bad = format!("data: {{\"choices\": [{}\n\n", "y".repeat(4 << 20));
        let _ = stream.write_all(bad.as_bytes());
    });
    let engine = OpenAiEngine::connect(config(&base, Duration::from_secs(10)), Vec::new())
        .await
        .unwrap();
    let err = engine.collect(request(100)).await.unwrap_err();
    assert!(err.message.contains("malformed event"), "{err}");
    assert!(
        err.message.len() < 1000,
        "{} bytes of error",
        err.message.len()
    );
}

#[tokio::test]
async fn a_server_asking_to_wait_a_minute_is_not_waited_for() {
    let base = glm(|stream| {
        let _ = write!(
            stream,
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 60\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"error\": {{\"message\": \"slow down\"}}}}"
        );
    });
    let engine = OpenAiEngine::connect(config(&base, Duration::from_secs(5)), Vec::new())
        .await
        .unwrap();
    let started = Instant::now();
    let err = engine.collect(request(10)).await.unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(err.message.contains("429"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
