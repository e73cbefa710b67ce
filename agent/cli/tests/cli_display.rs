//! What a person sees, through the binary: how `run` shows a run on stderr, how `--help`,
//! `config show` and `tools list` show the settings and tools, and a first run whose Python
//! runtime cannot be had. A recorded model's turns are replayed; the python tool runs for real.

use std::path::Path;
use std::process::{Command, Output};

use glm_test_support::{glm_agent_command, repo_file};

fn glm_agent(dir: &Path, args: &[&str]) -> Output {
    glm_agent_command()
        .args(args)
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"))
        .output()
        .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The events a `--json` command printed, one JSON object a line.
pub(crate) fn json_events(stdout: &[u8]) -> Vec<serde_json::Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `glm-agent run` on a replayed model (`outputs`, one per model turn) with the tiny tokenizer
/// and `tools` offered, its config file and traces in `dir`; the caller adds flags and the task.
pub(crate) fn replayed_run(dir: &Path, outputs: serde_json::Value, tools: &str) -> Command {
    let path = dir.join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    let mut command = glm_agent_command();
    command
        .args(["run", "--engine", &format!("replay:{}", path.display())])
        .args(["--tokenizer", &repo_file("evals/traces/tokenizer.json")])
        .args(["--tools", tools])
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"));
    command
}

/// Text before a call is shown as text, the call once (its code indented), and an unknown
/// tool's error once.
#[test]
fn a_turn_of_text_then_a_call_shows_the_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = replayed_run(
        dir.path(),
        serde_json::json!([
            "I will count them.<|assistant|>python\nprint(6 * 7)\nprint('twice')<|observation|>",
            "no_such_tool\n{}<|observation|>",
            "Done.<|user|>"
        ]),
        "python",
    )
    .args(["count"])
    .output()
    .unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("I will count them.\n→ python: print(6 * 7)\n  print('twice')\n"),
        "{err}"
    );
    assert!(!err.contains("them.python"), "{err}");
    assert_eq!(err.matches("print('twice')").count(), 1, "{err}");
    assert!(err.contains("← 42\n  twice"), "{err}");
    // The model's text naming an unknown tool is shown as it wrote it; the error once.
    assert_eq!(
        err.matches("there is no tool `no_such_tool`").count(),
        1,
        "{err}"
    );
    assert_eq!(text(&run.stdout), "Done.\n");
}

/// `--help` names each setting's default and variable; `config show` prints floats as written,
/// whole descriptions up to their first clause, and the configured MCP servers without the
/// values of their environment.
#[test]
fn help_and_config_show_name_defaults_and_servers() {
    let dir = tempfile::tempdir().unwrap();
    // Wrapped to the terminal's width: compared with single spaces.
    let help = text(&glm_agent(dir.path(), &["run", "--help"]).stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "[env: GLM_AGENT_MAX_STEPS]",
        "[default: 0.8] [env: GLM_AGENT_TEMPERATURE]",
        "[default: embedded] [env: GLM_AGENT_ENGINE]",
    ] {
        assert!(help.contains(want), "{want} in {help}");
    }
    std::fs::write(
        dir.path().join("config.toml"),
        "temperature = 0.3\n[mcp_servers.memory]\ncommand = \"npx\"\nargs = [\"-y\", \"@modelcontextprotocol/server-memory\"]\nenv = { MEMORY_FILE_PATH = \"/tmp/secret-place.json\" }\n",
    )
    .unwrap();
    let show = glm_agent(dir.path(), &["config", "show"]);
    let out = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let temperature = out.lines().find(|l| l.starts_with("temperature ")).unwrap();
    assert!(temperature.contains(" 0.3 "), "{temperature}");
    assert!(
        out.contains("memory               npx -y @modelcontextprotocol/server-memory  (env: MEMORY_FILE_PATH)"),
        "{out}"
    );
    assert!(!out.contains("secret-place"), "{out}");
    let json: serde_json::Value =
        serde_json::from_slice(&glm_agent(dir.path(), &["config", "show", "--json"]).stdout)
            .unwrap();
    assert_eq!(json["temperature"]["value"], serde_json::json!(0.3));
    assert_eq!(
        json["mcp_servers"]["memory"]["env"],
        serde_json::json!(["MEMORY_FILE_PATH"])
    );
}

/// `tools list` shows the built-ins' arguments as `tools call` takes them, not a JSON schema.
#[test]
fn tools_list_shows_how_builtins_are_called() {
    let dir = tempfile::tempdir().unwrap();
    let list = glm_agent(dir.path(), &["tools", "list"]);
    let out = text(&list.stdout);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let browser = out
        .split("\n\n")
        .find(|b| b.starts_with("simple_browser\n"))
        .unwrap();
    assert!(
        browser.contains("arguments: one of search(\"query\", recency_days=N)"),
        "{browser}"
    );
    assert!(!browser.contains("oneOf"), "{browser}");
    assert!(
        browser.contains("read-only: runs without asking"),
        "{browser}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&glm_agent(dir.path(), &["tools", "list", "--json"]).stdout)
            .unwrap();
    let python = json
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "python")
        .unwrap();
    assert!(
        python["arguments"]
            .as_str()
            .unwrap()
            .starts_with("Python code")
    );
}

/// With downloads off and no runtime in the cache, a run does not refuse to start: python tells
/// the model that it is unavailable and why, and the run goes on to its answer.
#[test]
fn a_run_whose_python_cannot_be_installed_goes_on_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = replayed_run(
        dir.path(),
        serde_json::json!([
            "python\nprint(1)<|observation|>",
            "No python today.<|user|>"
        ]),
        "python",
    )
    .args(["--json", "count"])
    .env("GLM_AGENT_CACHE", dir.path().join("empty-cache"))
    .env("GLM_AGENT_OFFLINE", "1")
    .output()
    .unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("the python tool is unavailable"), "{err}");
    let observation: serde_json::Value = text(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "observation")
        .unwrap();
    assert!(
        observation["text"]
            .as_str()
            .unwrap()
            .contains("python is unavailable here: the Python runtime is not installed"),
        "{observation}"
    );
}

/// `run -` takes the task from standard input; an empty input is a usage error, not a task.
#[test]
fn run_dash_reads_the_task_from_standard_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(&outputs, serde_json::json!(["42.<|user|>"]).to_string()).unwrap();
    let run = |input: &str| {
        let mut child = glm_agent_command()
            .args([
                "run",
                "--engine",
                &format!("replay:{}", outputs.display()),
                "--tokenizer",
                &repo_file("evals/traces/tokenizer.json"),
                "--tools",
                "none",
                "--json",
                "-",
            ])
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("What is six times seven?\nAnswer briefly.\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(start["task"], "What is six times seven?\nAnswer briefly.");
    let empty = run("");
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty.stderr));
    assert!(text(&empty.stderr).contains("read no task from standard input"));
}

/// `traces list` shows the runs newest first, a killed run as cut short; `traces show` gives
/// the transcript of one by id or `last`.
#[test]
fn traces_list_and_show_read_the_trace_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = replayed_run(
        dir.path(),
        serde_json::json!(["no_such_tool\n{\"x\": 1}<|observation|>", "Done.<|user|>"]),
        "none",
    )
    .args(["Say done\nplease"])
    .output()
    .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let traces = dir.path().join("traces");
    let recorded = std::fs::read_dir(&traces)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // A later run killed mid-line: its last line is cut.
    let whole = std::fs::read_to_string(&recorded).unwrap();
    let cut = &whole[..whole.trim_end().rfind('\n').unwrap() + 10];
    std::fs::write(traces.join("run-9999999999999-1.jsonl"), cut).unwrap();
    let list = glm_agent(dir.path(), &["traces", "list", "--json"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let rows: Vec<serde_json::Value> = text(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["id"], "run-9999999999999-1");
    assert!(rows[0]["ended"].as_str().unwrap().starts_with("cut short"));
    assert_eq!(rows[1]["task"], "Say done\nplease");
    assert_eq!(rows[1]["steps"], 2);
    assert_eq!(rows[1]["ended"], "answered");
    let id = rows[1]["id"].as_str().unwrap();
    let show = glm_agent(dir.path(), &["traces", "show", id]);
    let transcript = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        transcript.starts_with("task: Say done\n    please\n"),
        "{transcript}"
    );
    assert!(transcript.contains("[1] ✗ no_such_tool:"), "{transcript}");
    assert!(transcript.contains("\nanswer: Done.\n"), "{transcript}");
    assert!(
        transcript.contains("ended: answered (2 steps"),
        "{transcript}"
    );
    let last = text(&glm_agent(dir.path(), &["traces", "show", "last"]).stdout);
    assert!(
        last.ends_with("ended: cut short (the run was killed, or is still running)\n"),
        "{last}"
    );
    let missing = glm_agent(dir.path(), &["traces", "show", "run-1-2"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("traces list"));
}

/// The loop guard through `run`: a model that repeats a call with the same result is told at
/// the 3rd time and stopped at the 6th, exit 3.
#[test]
fn a_model_repeating_a_call_is_told_then_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.json");
    let call = "python\nprint(6 * 7)<|observation|>";
    std::fs::write(
        &outputs,
        serde_json::json!([call, call, call, call, call, call, "Done.<|user|>"]).to_string(),
    )
    .unwrap();
    let run = glm_agent(
        dir.path(),
        &[
            "run",
            "--engine",
            &format!("replay:{}", outputs.display()),
            "--tokenizer",
            &repo_file("evals/traces/tokenizer.json"),
            "--tools",
            "python",
            "--json",
            "count",
        ],
    );
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    let events: Vec<serde_json::Value> = text(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let observations: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "observation")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(observations.len(), 6);
    assert!(
        !observations[1].contains("[glm-agent:"),
        "{}",
        observations[1]
    );
    assert!(
        observations[2].contains("same call to `python` with the same arguments 3 times"),
        "{}",
        observations[2]
    );
    let end = events.iter().find(|e| e["event"] == "end").unwrap();
    assert!(
        end["end"]
            .to_string()
            .contains("6 times in the last 10 calls"),
        "{end}"
    );
}
