//! `glm-agent serve`'s Responses API driven by real clients: the official OpenAI Python client
//! (`responses.create`, plain and streamed, tool round trips, `previous_response_id`) and codex CLI
//! from npm running a tool round trip, both against recorded GLM-4 outputs. The clients are
//! installed by `tests/serve/fetch.sh` into the cache folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::cli_serve::Server;

/// The pinned Python clients' folder, for PYTHONPATH.
pub(crate) fn python_clients() -> PathBuf {
    glm_test_support::fetched(
        &format!("{}/tests/serve/fetch.sh", env!("CARGO_MANIFEST_DIR")),
        "python3 and pip",
    )
}

/// Runs `tests/serve/SCRIPT ARGS` with the pinned clients against `server`; its stdout.
fn drive(server: &Server, script: &str, args: &[&str]) -> String {
    let script = format!("{}/tests/serve/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .env("PYTHONPATH", python_clients())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {}\n{stdout}\nserver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    stdout
}

/// A server on the replay engine answering `outputs` in order, tracing every request, serving
/// the name clients of the Responses API are given.
fn replay_server(dir: &Path, outputs: Value) -> (Server, PathBuf) {
    crate::cli_serve::replay_server(dir, &outputs, &["--served-model-name", "glm-4-9b-chat"])
}

/// The model events of the traces in `dir` (one request each), oldest first.
fn model_events(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| crate::cli_serve::model_event(f))
        .collect()
}

fn ids(value: &Value) -> Vec<u32> {
    serde_json::from_value(value.clone()).unwrap()
}

#[test]
fn responses_answer_the_openai_client_and_follow_ups_are_token_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (server, traces) = replay_server(
        dir.path(),
        json!([
            "get_weather\n{\"city\": \"Beijing\"}<|observation|>",
            "\nIt is 23 °C in Beijing.<|user|>",
            "I will check both.<|assistant|>get_weather\n{\"city\": \"Oslo\"}<|assistant|>get_time\n{\"tz\": \"CET\"}<|observation|>",
            "\nSunny at noon.<|user|>",
            "\nSunny at noon.<|user|>",
        ]),
    );
    drive(
        &server,
        "responses.py",
        &["replayed", server.base(), "none"],
    );
    drop(server);
    let events = model_events(&traces);
    assert_eq!(events.len(), 5, "one generation per answered request");
    // Each follow-up's prompt extends the prompt it follows and the ids generated for it.
    for (earlier, later) in [(0, 1), (2, 3)] {
        let mut expected = ids(&events[earlier]["prompt_delta"]);
        let mut generated = ids(&events[earlier]["ids"]);
        if generated.is_empty() {
            // The replay engine reports text: the server encoded it, as it remembered it.
            let spelled =
                glm_prompts::Segments::from_spelled(events[earlier]["text"].as_str().unwrap());
            generated = glm_test_support::tiny_encoder().encode(&spelled.0).unwrap();
        }
        generated.pop();
        expected.extend(generated);
        let prompt = ids(&events[later]["prompt_delta"]);
        assert_eq!(
            prompt[..expected.len()],
            expected[..],
            "request {later} does not extend request {earlier} exactly"
        );
    }
    // The conversation sent whole as items renders to the same prompt as the one followed by id.
    assert_eq!(events[3]["prompt_delta"], events[4]["prompt_delta"]);
    // Every request replays: its conversation (stored responses expanded) renders again to the
    // recorded prompt.
    let tokenizer = dir.path().join("tokenizer.json");
    for file in std::fs::read_dir(&traces).unwrap() {
        crate::cli_serve::assert_replays(&file.unwrap().path(), &tokenizer);
    }
}

#[test]
fn codex_cli_runs_a_tool_round_trip_against_serve() {
    let codex = glm_test_support::fetched_part(
        &format!("{}/tests/serve/fetch.sh", env!("CARGO_MANIFEST_DIR")),
        Some("codex"),
        "npm",
    );
    let dir = tempfile::tempdir().unwrap();
    let (server, traces) = replay_server(
        dir.path(),
        json!([
            "exec_command\n{\"cmd\": \"echo glm-codex-ok | tee proof.txt\"}<|observation|>",
            "\nThe file is written.<|user|>",
        ]),
    );
    let home = dir.path().join("codex-home");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"glm-4-9b-chat\"\nmodel_provider = \"glm\"\n\n[model_providers.glm]\nname = \"glm-agent\"\nbase_url = \"{}\"\nwire_api = \"responses\"\n",
            server.base()
        ),
    )
    .unwrap();
    let out = Command::new(&codex)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "Write glm-codex-ok to proof.txt",
        ])
        .current_dir(&work)
        .env("CODEX_HOME", &home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "codex failed:\n{stdout}\n{stderr}\nserver:\n{}",
        server.log()
    );
    println!("codex:\n{stdout}");
    // codex ran the call the model made, and showed the model's answer to its result.
    let proof = std::fs::read_to_string(work.join("proof.txt")).unwrap_or_default();
    assert_eq!(proof.trim(), "glm-codex-ok", "{stdout}\n{stderr}");
    assert!(
        stdout.contains("The file is written."),
        "{stdout}\n{stderr}"
    );
    drop(server);
    // The second request carried the command's output back to the model.
    let events = model_events(&traces);
    assert_eq!(events.len(), 2, "{events:?}");
    let prompt = glm_test_support::tiny_encoder()
        .decode(&ids(&events[1]["prompt_delta"]))
        .unwrap();
    let observation = prompt.rfind("<|observation|>").unwrap();
    assert!(
        prompt[observation..].contains("glm-codex-ok"),
        "{}",
        &prompt[observation..]
    );
}

#[test]
fn structured_outputs_hold_a_random_model_to_the_schema_for_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::tiny(
        &[
            "--max-model-len",
            "2048",
            "--api-key",
            "test-key",
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
        ],
        dir.path(),
    );
    let found = drive(&server, "structured.py", &[server.base(), "test-key"]);
    println!("structured answers: {}", found.trim());
}

#[test]
fn run_output_schema_prints_json_that_matches_it() {
    let model = crate::cli_serve::tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        json!({
            "type": "object",
            "properties": {
                "answer": {"type": "integer", "minimum": 0, "maximum": 1000},
                "unit": {"enum": ["m", "km"]},
            },
            "required": ["answer", "unit"],
            "additionalProperties": false,
        })
        .to_string(),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        glm_test_support::glm_agent_command()
            .args(["run", "How far is it?", "--model", model.to_str().unwrap()])
            .args([
                "--isq",
                "none",
                "--tools",
                "none",
                "--max-step-tokens",
                "200",
            ])
            .args(["--approval", "auto", "--seed", "5"])
            .args(extra)
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_OFFLINE", "1")
            .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
            .output()
            .unwrap()
    };
    let out = run(&["--output-schema", schema.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}");
    });
    assert!(
        answer["answer"].as_u64().is_some_and(|n| n <= 1000),
        "{answer}"
    );
    assert!(
        ["m", "km"].contains(&answer["unit"].as_str().unwrap()),
        "{answer}"
    );
    // The same run without the schema writes no such JSON: the answer above is the schema's doing.
    let free = run(&[]);
    let text = String::from_utf8_lossy(&free.stdout);
    assert!(
        serde_json::from_str::<Value>(text.trim()).is_err(),
        "{text}"
    );
    // A file that is not a schema, one nested past any parser's depth and a sparse 40 GiB one
    // are refused before anything loads, in moments.
    let sparse = dir.path().join("huge.json");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(40 << 30)
        .unwrap();
    std::fs::write(&schema, "[1, 2]").unwrap();
    let deep = dir.path().join("deep.json");
    std::fs::write(&deep, "[".repeat(1_000_000)).unwrap();
    for (file, says) in [(&schema, "object"), (&deep, "not JSON"), (&sparse, "1 MiB")] {
        let started = std::time::Instant::now();
        let bad = run(&["--output-schema", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--output-schema") && stderr.contains(says),
            "{stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{stderr}"
        );
    }
}

/// POSTs `body` to `base` + `/v1` + `path`; the status, the body and the time it took.
fn post(base: &str, path: &str, body: &Value) -> (u16, String, std::time::Duration) {
    let address = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    glm_test_support::http::request(
        address,
        "POST",
        &format!("/v1{path}"),
        "",
        body.to_string().as_bytes(),
        std::time::Duration::from_secs(120),
    )
}

/// The worst schemas a client can send, each answered (or refused with why) in bounded time
/// and memory on the embedded engine, which compiles them into a grammar over the vocabulary.
#[test]
fn hostile_schemas_are_answered_or_refused_in_bounded_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::tiny(&["--served-model-name", "m"], dir.path());
    let mut nested = json!({"type": "integer"});
    for _ in 0..50 {
        nested = json!({"type": "object", "properties": {"a": nested}, "required": ["a"]});
    }
    let words: Vec<String> = (0..50_000).map(|i| format!("w{i}")).collect();
    let cases = [
        ("nested 50 deep", nested),
        ("an enum of 50,000 strings", json!({"enum": words})),
        (
            "a backtracking pattern",
            json!({"type": "string", "pattern": "^(a+)+$", "maxLength": 30}),
        ),
        (
            "an array of at least 100,000 objects",
            json!({"type": "array", "minItems": 100_000, "items": {"type": "object"}}),
        ),
        (
            "a reference to itself",
            json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        ),
        (
            "nothing can match",
            json!({"type": "string", "minLength": 5, "maxLength": 2}),
        ),
    ];
    for (name, schema) in cases {
        let body = json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        });
        let (status, answer, took) = post(server.base(), "/chat/completions", &body);
        println!(
            "{name}: {status} in {took:?}: {}",
            &answer[..answer.len().min(160)]
        );
        assert!(status == 200 || status == 400, "{name}: {status} {answer}");
        if status == 400 {
            assert!(answer.contains("cannot be enforced"), "{name}: {answer}");
        }
        assert!(
            took < std::time::Duration::from_secs(20),
            "{name}: {took:?}"
        );
    }
    let peak = server.peak_mb();
    println!("peak {peak:.0} MB");
    assert!(peak < 1500.0, "peak {peak:.0} MB\n{}", server.log());
    // Still answering.
    let ask =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    assert_eq!(post(server.base(), "/chat/completions", &ask).0, 200);
}
