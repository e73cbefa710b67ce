//! `glm-agent serve` under the worst clients we can write, through the binary on loopback, with
//! the time each takes and the server's peak memory asserted: a 1 MB request whose tool schema
//! renders to hundreds of MB, 20,000 tools, control-token text sent to `/tokenize` from two
//! clients at once, keyless uploads of 60 MB, forged log lines, SIGTERM with a request half sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running server over the replay engine and the tiny tokenizer; its stderr is kept.
struct Serve {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str], key: Option<&str>) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = dir.path().join("tokenizer.json");
        std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
        let outputs = dir.path().join("outputs.json");
        std::fs::write(&outputs, json!(vec!["fine<|user|>"; 64]).to_string()).unwrap();
        let mut command = glm_test_support::glm_agent_command();
        command
            .args(["serve", "--port", "0", "--served-model-name", "m"])
            .arg("--engine")
            .arg(format!("replay:{}", outputs.display()))
            .arg("--tokenizer")
            .arg(&tokenizer)
            .args(extra)
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_OFFLINE", "1")
            .env_remove("GLM_AGENT_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = key {
            command.env("GLM_AGENT_API_KEY", key);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line).into_owned();
                if let Some(at) = line.find("on http://") {
                    let host = line[at + 10..].split('/').next().unwrap_or("").to_owned();
                    let _ = tx.send(host);
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve did not start")
            .parse()
            .unwrap();
        Serve {
            child,
            address,
            log,
            _dir: dir,
        }
    }

    /// The server's peak resident memory so far, in MB.
    fn peak_mb(&self) -> f64 {
        glm_test_support::peak_rss_of(self.child.id()).unwrap_or(0) as f64 / (1 << 20) as f64
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A request; the status and body, and the time it took.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> (u16, String, Duration) {
        let auth = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        glm_test_support::http::request(
            &self.address.to_string(),
            method,
            path,
            &auth,
            body,
            Duration::from_secs(60),
        )
    }

    fn health_within(&self, within: Duration) -> bool {
        let (status, body, took) = self.request("GET", "/health", b"", None);
        status == 200 && body.ends_with("ok") && took < within
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat(tools: Value) -> Vec<u8> {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools})
        .to_string()
        .into_bytes()
}

#[test]
fn tool_schemas_that_render_to_hundreds_of_megabytes_or_number_thousands_are_refused_cheaply() {
    let serve = Serve::start(&[], None);
    // About 1 MB of JSON nested 30 deep: rendered with indentation, about 225 times that.
    let mut leaf = json!({"type": "string", "description": "d"});
    for _ in 0..15 {
        leaf = json!({"type": "object", "properties": {"a": leaf, "b": leaf}});
        if leaf.to_string().len() > 1_000_000 {
            break;
        }
    }
    let deep = chat(json!([{"type": "function", "function": {"name": "f", "parameters": leaf}}]));
    assert!(deep.len() > 500_000);
    let (status, body, took) = serve.request("POST", "/v1/chat/completions", &deep, None);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("context_length_exceeded") || body.contains("nests deeper"),
        "{body}"
    );
    let many: Vec<Value> = (0..20_000)
        .map(|i| json!({"type": "function", "function": {"name": format!("tool_{i}"), "parameters": {"type": "object"}}}))
        .collect();
    let (status, body, took_many) =
        serve.request("POST", "/v1/chat/completions", &chat(json!(many)), None);
    assert_eq!(status, 400, "{body}");
    let peak = serve.peak_mb();
    eprintln!("deep schema: {took:?}; 20,000 tools: {took_many:?}; peak {peak:.0} MB");
    assert!(took < Duration::from_secs(3) && took_many < Duration::from_secs(3));
    assert!(peak < 300.0, "peak {peak:.0} MB");
    assert!(serve.health_within(Duration::from_secs(1)));
}

#[test]
fn control_token_text_is_tokenized_in_linear_time_and_health_still_answers() {
    let serve = Arc::new(Serve::start(&[], None));
    let body = json!({"prompt": "<|user|>".repeat(50_000)})
        .to_string()
        .into_bytes();
    let started = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (serve, body) = (serve.clone(), body.clone());
            std::thread::spawn(move || serve.request("POST", "/tokenize", &body, None))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        serve.health_within(Duration::from_secs(1)),
        "{}",
        serve.log()
    );
    for client in clients {
        let (status, body, _) = client.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("\"count\":50000"),
            "{}",
            &body[..body.len().min(200)]
        );
    }
    let took = started.elapsed();
    let peak = serve.peak_mb();
    eprintln!("two 400 KB control-token prompts: {took:?}, peak {peak:.0} MB");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(peak < 300.0, "peak {peak:.0} MB");
}

#[test]
fn keyless_uploads_are_refused_before_their_bodies_are_read() {
    let serve = Arc::new(Serve::start(&[], Some("sesame")));
    let started = Instant::now();
    let uploads: Vec<_> = (0..12)
        .map(|_| {
            let address = serve.address;
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 62914560\r\n\r\n";
                stream.write_all(head.as_bytes()).unwrap();
                let chunk = vec![b' '; 1 << 20];
                let mut sent = 0usize;
                for _ in 0..60 {
                    match stream.write_all(&chunk) {
                        Ok(()) => sent += chunk.len(),
                        Err(_) => break,
                    }
                }
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                (String::from_utf8_lossy(&answer).into_owned(), sent)
            })
        })
        .collect();
    for upload in uploads {
        let (answer, sent) = upload.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(sent < 60 << 20, "the whole 60 MB was taken");
    }
    let took = started.elapsed();
    let peak = serve.peak_mb();
    eprintln!("12 keyless 60 MB uploads: {took:?}, peak {peak:.0} MB");
    assert!(peak < 200.0, "peak {peak:.0} MB");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn client_text_cannot_forge_log_lines() {
    let serve = Serve::start(&[], None);
    let forged =
        json!({"model": "x\nPOST /v1/chat/completions 200 forged\u{1b}[2J", "messages": []});
    let (status, _, _) = serve.request(
        "POST",
        "/v1/chat/completions",
        forged.to_string().as_bytes(),
        None,
    );
    assert_eq!(status, 404);
    std::thread::sleep(Duration::from_millis(200));
    let log = serve.log();
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("POST /v1/chat/completions 200 forged")),
        "{log}"
    );
    assert!(log.contains("\\u{1b}"), "{log}");
}

#[test]
fn sigterm_stops_the_server_while_a_request_is_half_sent() {
    let mut serve = Serve::start(&[], None);
    let mut half = TcpStream::connect(serve.address).unwrap();
    half.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let pid = serve.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stopped = None;
    while started.elapsed() < Duration::from_secs(15) {
        if let Some(status) = serve.child.try_wait().unwrap() {
            stopped = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    assert!(
        stopped.is_some(),
        "still running {took:?} after SIGTERM:\n{}",
        serve.log()
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    drop(half);
}

#[test]
fn responses_floods_of_items_nesting_and_stored_responses_are_bounded() {
    let serve = Serve::start(&["--store-responses", "8"], None);
    let post =
        |body: &Value| serve.request("POST", "/v1/responses", body.to_string().as_bytes(), None);
    // 2 million tiny items in 60 MB: refused at the 100,001st item, never all held.
    let item = r#"{"role":"user","content":"x"},"#;
    let mut flood = String::from(r#"{"model": "m", "input": ["#);
    flood.push_str(&item.repeat(2_000_000));
    flood.push_str(r#"{"role":"user","content":"x"}]}"#);
    let (status, body, took_flood) = serve.request("POST", "/v1/responses", flood.as_bytes(), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 100000 items"), "{body}");
    // Content nested 100,000 deep.
    let deep = format!(
        r#"{{"model": "m", "input": [{{"role": "user", "content": {}x{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body, took_deep) = serve.request("POST", "/v1/responses", deep.as_bytes(), None);
    assert_eq!(status, 400, "{body}");
    // An item type the server does not know is named.
    let (status, body, _) =
        post(&json!({"model": "m", "input": [{"type": "computer_call_output"}]}));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("input[0].type"), "{body}");
    // 40 responses of 200 KB each with 8 kept: the first is dropped, memory stays flat.
    let text = "word ".repeat(40_000);
    let mut ids = Vec::new();
    let started = Instant::now();
    for _ in 0..40 {
        let (status, body, _) = post(&json!({"model": "m", "input": text}));
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    let took_stored = started.elapsed();
    let (status, body, _) =
        post(&json!({"model": "m", "input": "more", "previous_response_id": ids[0]}));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("previous_response_not_found"), "{body}");
    let (status, body, _) =
        post(&json!({"model": "m", "input": "more", "previous_response_id": ids[39]}));
    assert_eq!(status, 200, "{body}");
    let peak = serve.peak_mb();
    eprintln!(
        "2M items: {took_flood:?}; nested 100,000 deep: {took_deep:?}; 40 stored 200 KB responses: {took_stored:?}; peak {peak:.0} MB"
    );
    assert!(took_flood < Duration::from_secs(3) && took_deep < Duration::from_secs(1));
    assert!(peak < 300.0, "peak {peak:.0} MB");
    assert!(serve.health_within(Duration::from_secs(1)));
}
