//! `glm-agent serve` driven by the official OpenAI Python client (`openai` from PyPI, installed
//! by `tests/serve/fetch.sh` into the cache folder): recorded GLM-4 outputs for the protocol's
//! exact shapes, and the tiny generated model on the embedded engine for enforcement,
//! cancellation, concurrency and the prefix cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::cli_llamacpp::Listening;

/// The tiny GLM-4 checkpoint mapped for the embedded engine (as `glm-agent` maps a user's model
/// on first use), once per test process.
pub(crate) fn tiny_model() -> &'static Path {
    static MAPPED: OnceLock<PathBuf> = OnceLock::new();
    MAPPED.get_or_init(|| {
        let tiny = glm_test_support::checkpoint::tiny_glm4();
        let cache = glm_test_support::checkpoint::shared_cache();
        glm_engine_mistralrs::model::prepare(&tiny.dir, &cache, &mut |_, _| {})
            .unwrap()
            .dir
    })
}

/// The pinned client's folder, for PYTHONPATH.
fn openai_client() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        glm_test_support::fetched(
            &format!("{}/tests/serve/fetch.sh", env!("CARGO_MANIFEST_DIR")),
            "python3 and pip",
        )
    })
}

/// A running `glm-agent serve`; what it writes goes to `serve.log` in its folder.
pub(crate) struct Server {
    listening: Listening,
}

impl Server {
    pub(crate) fn start(args: &[&str], dir: &Path) -> Server {
        let mut command = glm_test_support::glm_agent_command();
        command
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
            .env("GLM_AGENT_OFFLINE", "1");
        Server {
            listening: Listening::start(command, &dir.join("serve.log"), true),
        }
    }

    /// Serve on the tiny model at full precision, with `args` besides.
    pub(crate) fn tiny(args: &[&str], dir: &Path) -> Server {
        let model = tiny_model().to_str().unwrap();
        Server::start(&[&["--model", model, "--isq", "none"], args].concat(), dir)
    }

    /// The address it listens on.
    pub(crate) fn base(&self) -> &str {
        &self.listening.base
    }

    /// The server's peak resident memory so far, in MB.
    pub(crate) fn peak_mb(&self) -> f64 {
        self.listening.peak_mb()
    }

    pub(crate) fn log(&self) -> String {
        self.listening.log()
    }

    /// Runs one scenario of `tests/serve/client.py`; returns its findings.
    fn client(&self, scenario: &str, key: &str) -> Value {
        let script = format!("{}/tests/serve/client.py", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("python3")
            .arg(&script)
            .args([scenario, self.base(), key])
            .env("PYTHONPATH", openai_client())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scenario {scenario} failed:\n{}\n{stdout}\nserver:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
    }
}

/// The first model event of the trace at `trace`.
pub(crate) fn model_event(trace: &Path) -> Value {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "model")
        .unwrap()
}

#[test]
fn serve_answers_openai_clients_with_recorded_glm4_outputs() {
    let dir = tempfile::tempdir().unwrap();
    // What GLM-4 writes, in the order client.py asks.
    let outputs = json!([
        "get_weather\n{\"city\": \"Beijing\"}<|observation|>",
        "get_weather\n```json\n{\"city\": \"Beijing\"}\n```<|observation|>",
        "\nIt is 23 °C in Beijing.<|user|>",
        "I will check both.<|assistant|>get_weather\n{\"city\": \"Oslo\"}<|assistant|>get_time\n{\"tz\": \"CET\"}<|observation|>",
        "I will check both.<|assistant|>get_weather\n{\"city\": \"Oslo\"}<|assistant|>get_time\n{\"tz\": \"CET\"}<|observation|>",
        "{\"tz\": \"UTC\"}<|observation|>",
        "\nSunny, then STOP rain.<|user|>",
    ]);
    let (server, traces) = replay_server(dir.path(), &outputs, &[]);
    let tokenizer = dir.path().join("tokenizer.json");
    server.client("replayed", "none");
    drop(server);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 7, "one trace per request");
    // The first request's prompt: the tool section, then the system prompt, kept.
    let first = model_event(&files[0]);
    let ids: Vec<u32> = serde_json::from_value(first["prompt_delta"].clone()).unwrap();
    let prompt = glm_test_support::tiny_encoder().decode(&ids).unwrap();
    let tools_at = prompt.find("## get_weather").unwrap();
    let system_at = prompt.find("<|system|>\nAnswer in one sentence.").unwrap();
    assert!(tools_at < system_at, "{prompt}");
    assert!(prompt.ends_with("<|user|>\nWhat is the weather in Beijing?<|assistant|>"));
    // The named tool_choice forced the name into the prompt.
    let named = model_event(&files[5]);
    let ids: Vec<u32> = serde_json::from_value(named["prompt_delta"].clone()).unwrap();
    assert!(
        glm_test_support::tiny_encoder()
            .decode(&ids)
            .unwrap()
            .ends_with("<|assistant|>get_time\n")
    );
    // Every request replays: the request renders to the recorded prompt again.
    for file in &files {
        assert_replays(file, &tokenizer);
    }
    // A trace whose request was edited diverges.
    let text = std::fs::read_to_string(&files[2]).unwrap().replace(
        "What is the weather in Beijing?",
        "What is the weather in Paris?",
    );
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text).unwrap();
    let out = glm_test_support::glm_agent_command()
        .args(["replay", edited.to_str().unwrap()])
        .args(["--tokenizer", tokenizer.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("the prompt differs"));
}

#[test]
fn serve_on_the_embedded_engine_enforces_cancels_batches_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let server = Server::tiny(
        &[
            "--max-sequences",
            "8",
            "--max-model-len",
            "2048",
            "--api-key",
            "test-key",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        dir.path(),
    );
    let errors = server.client("errors", "test-key");
    println!("errors: {errors}");
    let choices = server.client("choices", "test-key");
    println!("tool_choice: {choices}");
    let left = server.client("disconnect", "test-key");
    println!("disconnect: {left}");
    // The generation stopped when the client left, long before its 1900 tokens.
    let log = server.log();
    let cancelled = log
        .lines()
        .find(|l| l.contains("cancelled: the client went away"))
        .unwrap_or_else(|| panic!("no cancellation in the log:\n{log}"));
    let generated: usize = cancelled
        .split("after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(generated < 1900, "{cancelled}");
    let concurrent = server.client("concurrent", "test-key");
    println!("8 clients: {concurrent}");
    let conversation = server.client("conversation", "test-key");
    println!("conversation: {conversation}");
    server.client("completions", "test-key");
}

#[test]
fn serve_refuses_an_open_address_without_a_key() {
    let out = glm_test_support::glm_agent(
        &[
            "serve",
            "--host",
            "0.0.0.0",
            "--engine",
            "replay:/nonexistent",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
}

/// A run of the model a serve holds uses that serve (and says so), its first step finding its
/// prompt's start in the server's cache; `--use-serve false` loads the model in the run.
#[test]
fn a_run_uses_the_model_a_running_serve_holds() {
    let model = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("run");
    let mut command = glm_test_support::glm_agent_command();
    command
        .args(["serve", "--port", "0", "--isq", "none", "--model"])
        .arg(model)
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("GLM_AGENT_OFFLINE", "1")
        .env("GLM_AGENT_RUN_DIR", &registry);
    let server = Listening::start(command, &dir.path().join("serve.log"), true);
    let system = "You are a careful assistant. Answer briefly and cite what you used. ".repeat(4);
    let run = |traces: &str, use_serve: &str| {
        let task = format!("Say hello to the {traces} world.");
        let out = glm_test_support::glm_agent_command()
            .args(["run", &task, "--system-prompt", &system, "--model"])
            .arg(model)
            .args(["--isq", "none", "--tools", "none", "--approval", "auto"])
            .args(["--max-step-tokens", "4", "--max-steps", "1", "--json"])
            .args(["--use-serve", use_serve])
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_OFFLINE", "1")
            .env("GLM_AGENT_RUN_DIR", &registry)
            .env("GLM_AGENT_TRACE_DIR", dir.path().join(traces))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let model = crate::cli_display::json_events(&out.stdout)
            .into_iter()
            .find(|e| e["event"] == "model")
            .unwrap_or_else(|| panic!("no model turn: {stderr}"));
        (stderr, model)
    };
    let (first, _) = run("first", "true");
    assert!(first.contains("as glm-agent serve (pid"), "{first}");
    assert!(!first.contains("Loading"), "{first}");
    // Another task: its first prompt shares the system turn with the first run's.
    let (_, second) = run("second", "true");
    let cached = second["cached_tokens"].as_u64().unwrap_or(0);
    let prompt = second["prompt_tokens"].as_u64().unwrap();
    let task = glm_test_support::tiny_encoder()
        .encode_text("\nSay hello to the second world.")
        .unwrap()
        .len() as u64;
    assert!(
        cached + task + 2 >= prompt && cached < prompt,
        "{cached} of {prompt} cached\n{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("POST /v1/completions 200"), "{log}");
    let (local, _) = run("local", "false");
    assert!(local.contains("Loading"), "{local}");
    assert!(!local.contains("as glm-agent serve"), "{local}");
    drop(server);
    // The server's file went with it: the next run loads the model itself.
    let (after, _) = run("after", "true");
    assert!(after.contains("Loading"), "{after}");
}

/// Asserts that `glm-agent replay` re-renders the trace `file` with no divergence.
pub(crate) fn assert_replays(file: &Path, tokenizer: &Path) {
    let out = glm_test_support::glm_agent_command()
        .args(["replay", file.to_str().unwrap()])
        .args(["--tokenizer", tokenizer.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("no divergence"),
        "{}: {stdout}{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server on the replay engine answering `outputs` in order, tracing every request into the
/// returned folder, with the tiny tokenizer written to `dir/tokenizer.json` and `extra` flags.
pub(crate) fn replay_server(dir: &Path, outputs: &Value, extra: &[&str]) -> (Server, PathBuf) {
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
    let recorded = dir.join("outputs.json");
    std::fs::write(&recorded, outputs.to_string()).unwrap();
    let traces = dir.join("traces");
    let engine = format!("replay:{}", recorded.display());
    let mut args = vec![
        "--engine",
        &engine,
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--trace-dir",
        traces.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (Server::start(&args, dir), traces)
}
