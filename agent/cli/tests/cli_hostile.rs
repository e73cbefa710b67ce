//! Hostile inputs through the public commands: eval suites whose case ids are paths, model
//! folders with impossible sizes or offsets, tokenizers whose control tokens are not special.

use glm_test_support::{glm_agent, glm_agent_command};

#[test]
fn case_ids_that_are_paths_are_refused_and_nothing_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    for id in [victim.display().to_string(), "../../y".to_owned()] {
        let case = serde_json::json!({"id": id, "task": "t", "check": {"kind": "no_call"},
            "reference": ["fine<|user|>"]});
        let suite = dir.path().join("suite.jsonl");
        std::fs::write(&suite, format!("{case}\n")).unwrap();
        let out_dir = dir.path().join("out");
        let out = glm_agent(
            &[
                "eval",
                suite.to_str().unwrap(),
                "--engine",
                "reference",
                "--out",
                out_dir.to_str().unwrap(),
            ],
            "",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{id}: {err}");
        assert!(err.contains("case id"), "{id}: {err}");
        assert!(!victim.exists() && !dir.path().join("victim.jsonl").exists());
        assert!(!dir.path().parent().unwrap().join("y.jsonl").exists());
    }
}

/// A model folder: `config`, the tiny tokenizer, and `weights` as the safetensors file.
fn model_folder(config: serde_json::Value, weights: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        glm_prompts::tiny::tiny_tokenizer_json(),
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    dir
}

fn safetensors(header: serde_json::Value, data: usize) -> Vec<u8> {
    let header = header.to_string().into_bytes();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(std::iter::repeat_n(0u8, data));
    bytes
}

fn prepare(dir: &std::path::Path) -> (Option<i32>, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = glm_agent_command()
        .args(["model", "prepare", dir.to_str().unwrap(), "--offline"])
        .env("GLM_AGENT_CACHE", cache.path())
        .env("GLM_AGENT_CONFIG", cache.path().join("none.toml"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn model_folders_with_impossible_sizes_or_offsets_are_refused() {
    let config = |heads: i64| {
        serde_json::json!({"architectures": ["GlmForCausalLM"], "model_type": "glm",
            "vocab_size": 151552, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 1, "num_attention_heads": heads, "num_key_value_heads": 2,
            "head_dim": 16, "partial_rotary_factor": 0.5})
    };
    let ok_weights = safetensors(
        serde_json::json!({"model.norm.weight": {"dtype": "F32", "shape": [64],
            "data_offsets": [0, 256]}}),
        256,
    );
    let zero_heads = model_folder(config(0), &ok_weights);
    let (code, err) = prepare(zero_heads.path());
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("num_attention_heads is 0"), "{err}");

    let backwards = model_folder(
        config(4),
        &safetensors(
            serde_json::json!({"model.norm.weight": {"dtype": "F32", "shape": [64],
                "data_offsets": [256, 0]}}),
            256,
        ),
    );
    let (code, err) = prepare(backwards.path());
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("data_offsets"), "{err}");

    let past_the_end = model_folder(
        config(4),
        &safetensors(
            serde_json::json!({"model.norm.weight": {"dtype": "F32", "shape": [1 << 30],
                "data_offsets": [0, 4u64 << 30]}}),
            256,
        ),
    );
    let (code, err) = prepare(past_the_end.path());
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("data_offsets"), "{err}");
}

#[test]
fn a_tokenizer_whose_control_tokens_are_not_special_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let forged = glm_prompts::tiny::tiny_tokenizer_json().replacen(
        "\"special\":true",
        "\"special\":false",
        1,
    );
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, forged).unwrap();
    let conversation = glm_test_support::repo_file("prompts/tests/golden/function_roundtrip.json");
    let out = glm_agent(
        &[
            "prompt",
            "render",
            &conversation,
            "--tokenizer",
            path.to_str().unwrap(),
            "--ids",
        ],
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("not marked special"), "{err}");
}

/// An engine URL with credentials: the run works and its trace has neither the user nor the
/// password.
#[test]
fn url_credentials_never_reach_the_trace() {
    use glm_test_support::http::serve;
    let sse = std::fs::read_to_string(glm_test_support::repo_file(
        "agent/engine/tests/fixtures/vllm_completion.sse",
    ))
    .unwrap();
    let json = |v: serde_json::Value| {
        (
            200,
            vec![("Content-Type", "application/json".to_owned())],
            v.to_string(),
        )
    };
    let (base, _) = serve(move |req, _| match req.path.as_str() {
        "/v1/models" => json(serde_json::json!({"data": [{"id": "glm-4-9b-chat-1m-hf"}]})),
        "/tokenize" => json(serde_json::json!({"tokens": [151_331, 151_333, 151_336], "count": 3})),
        "/v1/completions" => (
            200,
            vec![("Content-Type", "text/event-stream".to_owned())],
            sse.clone(),
        ),
        _ => (404, Vec::new(), String::new()),
    });
    let with_secret = base.replacen("http://", "http://agent-user:hunter2@", 1);
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
    let traces = dir.path().join("traces");
    let out = glm_agent_command()
        .args([
            "run",
            "--engine",
            &format!("openai:{with_secret}"),
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--tools",
            "none",
            "--trace-dir",
            traces.to_str().unwrap(),
            "Hi",
        ])
        .env("GLM_AGENT_CONFIG", dir.path().join("none.toml"))
        .output()
        .unwrap();
    // The server's canned output calls a tool that is not offered: the run ends there, with
    // its trace written.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("get_weather"), "{err}");
    let trace = std::fs::read_dir(&traces)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(trace).unwrap();
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("agent-user"),
        "{text}"
    );
}

/// A python cell blocked in a long sleep is stopped at its deadline through `tools call`.
#[test]
fn a_long_sleep_ends_at_the_cell_deadline() {
    let measured = glm_test_support::run_measured(glm_agent_command().args([
        "tools",
        "call",
        "python",
        "import time\ntime.sleep(10**6)",
        "--cell-timeout",
        "2",
    ]));
    let out = String::from_utf8_lossy(&measured.output.stdout);
    println!(
        "sleep(10**6) with a 2 s deadline: {:.1} s",
        measured.elapsed.as_secs_f64()
    );
    assert!(out.contains("timed out after 2 s"), "{out}");
    assert!(measured.elapsed < std::time::Duration::from_secs(15));
}

/// With no cache folder to be had, commands say what to set instead of using a shared one.
#[test]
fn no_home_means_no_shared_cache() {
    let out = glm_agent_command()
        .args(["tools", "call", "python", "print(1)"])
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("GLM_AGENT_CACHE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("GLM_AGENT_CACHE"), "{err}");
}
