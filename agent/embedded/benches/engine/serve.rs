//! `--serve` and `--shared`: glm-agent serve under concurrent clients, and a run that finds the
//! model already loaded by a serve.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(exe: &std::path::Path, model: &std::path::Path, sequences: usize) -> Server {
    start_in(exe, model, sequences, &model.parent().unwrap().join("run"))
}

/// A serve whose file (what `run` finds) goes in `registry`.
fn start_in(
    exe: &std::path::Path,
    model: &std::path::Path,
    sequences: usize,
    registry: &std::path::Path,
) -> Server {
    let mut child = Command::new(exe)
        .env("GLM_AGENT_RUN_DIR", registry)
        .args(["serve", "--port", "0", "--isq", "none", "--model"])
        .arg(model)
        .args(["--max-sequences", &sequences.to_string()])
        .args(["--cache-dir"])
        .arg(model.parent().unwrap().join("cache"))
        .env(
            "GLM_AGENT_CONFIG",
            model.parent().unwrap().join("none.toml"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("on http://") {
                let url = line[at + 3..].split_whitespace().next().unwrap_or("");
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("the server starts");
    Server { child, base }
}

/// One streamed chat request: (time to the first generated token, tokens generated, usage).
async fn ask(
    http: &reqwest::Client,
    base: &str,
    messages: &Value,
    max: u32,
) -> (Duration, Value, Value) {
    let started = Instant::now();
    let body = json!({
        "model": "model", "messages": messages, "stream": true, "max_tokens": max,
        "temperature": 0, "stream_options": {"include_usage": true},
    });
    let response = http
        .post(format!("{base}/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let (mut first, mut usage, mut message) = (
        None,
        Value::Null,
        json!({"role": "assistant", "content": ""}),
    );
    while let Some(bytes) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            if !chunk["usage"].is_null() {
                usage = chunk["usage"].clone();
            }
            let delta = &chunk["choices"][0]["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                first.get_or_insert_with(|| started.elapsed());
                let all = message["content"].as_str().unwrap_or("").to_owned() + text;
                message["content"] = all.into();
            }
            if delta["tool_calls"].is_array() {
                first.get_or_insert_with(|| started.elapsed());
            }
        }
    }
    (first.unwrap_or_else(|| started.elapsed()), usage, message)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(base: std::ffi::OsString) {
    let Some(exe) = super::built_exe() else {
        return;
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("model");
    super::write_model(&model, &super::SMALL);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    const PER_CLIENT: usize = 4;
    const MAX: u32 = 32;
    println!(
        "glm-agent serve, streamed chat, {MAX} tokens at most, temperature 0, {PER_CLIENT} requests per client"
    );
    for sequences in [1, 8] {
        let server = start(&exe, &model, sequences);
        let base = server.base.clone();
        println!("engine running {sequences} sequence(s) at once:");
        let mut one = 0.0;
        rt.block_on(async {
            let warm = json!([{"role": "user", "content": "warm up"}]);
            ask(&http, &base, &warm, 4).await;
            for clients in [1usize, 4, 8] {
                let started = Instant::now();
                let tasks: Vec<_> = (0..clients)
                    .map(|c| {
                        let (http, base) = (http.clone(), base.clone());
                        tokio::spawn(async move {
                            let mut out = Vec::new();
                            for r in 0..PER_CLIENT {
                                let m = json!([{"role": "user", "content": format!("Client {c}, request {r}: tell me something.")}]);
                                out.push(ask(&http, &base, &m, MAX).await);
                            }
                            out
                        })
                    })
                    .collect();
                let mut ttft = Vec::new();
                let mut tokens = 0u64;
                for t in tasks {
                    for (first, usage, _) in t.await.unwrap() {
                        ttft.push(first);
                        tokens += usage["completion_tokens"].as_u64().unwrap_or(0);
                    }
                }
                let wall = started.elapsed().as_secs_f64();
                let rps = (clients * PER_CLIENT) as f64 / wall;
                if clients == 1 {
                    one = rps;
                }
                println!(
                    "  {clients} client(s): {rps:6.2} requests/s ({:.2}x one client), {:7.1} tokens/s, median time to first token {:6.1} ms",
                    rps / one,
                    tokens as f64 / wall,
                    median(&mut ttft).as_secs_f64() * 1000.0
                );
            }
        });
        if sequences == 1 {
            rt.block_on(async {
                let mut messages = vec![
                    json!({"role": "system", "content": "You are a careful assistant who answers briefly. ".repeat(20)}),
                    json!({"role": "user", "content": "Hello."}),
                ];
                println!("  a 6-turn conversation, the whole history re-sent each turn:");
                for turn in 1..=6 {
                    let (first, usage, message) = ask(&http, &base, &Value::from(messages.clone()), MAX).await;
                    let prompt = usage["prompt_tokens"].as_f64().unwrap_or(1.0);
                    let cached = usage["prompt_tokens_details"]["cached_tokens"].as_f64().unwrap_or(0.0);
                    println!(
                        "    turn {turn}: prompt {prompt:5} tokens, {:5.1}% cached, time to first token {:6.1} ms",
                        100.0 * cached / prompt,
                        first.as_secs_f64() * 1000.0
                    );
                    messages.push(message);
                    messages.push(json!({"role": "user", "content": format!("And then, {turn}?")}));
                }
            });
        }
    }
}

/// One `run` of a one-token answer: the time from its start to the end of its first model turn
/// (its time to the first token, the model's load included when it loads one).
fn first_token(exe: &std::path::Path, model: &std::path::Path, use_serve: bool) -> Duration {
    let dir = model.parent().unwrap();
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["run", "What is the capital of France?", "--model"])
        .arg(model)
        .args(["--isq", "none", "--tools", "none", "--approval", "auto"])
        .args(["--max-step-tokens", "1", "--max-steps", "1", "--json"])
        .args(["--use-serve", if use_serve { "true" } else { "false" }])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("GLM_AGENT_RUN_DIR", dir.join("run"))
        .env("GLM_AGENT_CONFIG", dir.join("none.toml"))
        .env("GLM_AGENT_OFFLINE", "1")
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut took = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if took.is_none() && line.contains("\"event\":\"model\"") {
            took = Some(started.elapsed());
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.contains("as glm-agent serve (pid"),
        use_serve,
        "{stderr}"
    );
    took.unwrap_or_else(|| panic!("no model turn: {stderr}"))
}

/// `--shared`: a run's time to its first token when it loads the 2-layer real-width model
/// itself (cold, 3 runs), then when a running serve already holds it (3 runs).
pub fn shared(base: std::ffi::OsString) {
    let Some(exe) = super::built_exe() else {
        return;
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("glm-4-9b-widths-2-layers");
    super::write_model(&model, &super::GLM4_9B_2_LAYERS);
    println!(
        "run, a one-token answer on the 2-layer real-width model (f32), time to its first token:"
    );
    let mut cold: Vec<Duration> = (0..3).map(|_| first_token(&exe, &model, false)).collect();
    let server = start_in(&exe, &model, 1, &dir.path().join("run"));
    let mut shared: Vec<Duration> = (0..3).map(|_| first_token(&exe, &model, true)).collect();
    drop(server);
    let (c, s) = (median(&mut cold), median(&mut shared));
    println!(
        "  loading the model in the run (--use-serve false): median {:.2} s ({:?})",
        c.as_secs_f64(),
        cold
    );
    println!(
        "  through the running serve: median {:.2} s ({:?}): {:.1}x faster",
        s.as_secs_f64(),
        shared,
        c.as_secs_f64() / s.as_secs_f64()
    );
}
