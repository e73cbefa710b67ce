//! What a person sees, through the binary: how `run` shows a run on stderr, how `--help`,
//! `config show` and `tools list` show the settings and tools, and a first run whose Python
//! runtime cannot be had. A recorded model's turns are replayed; the python tool runs for real.

use std::path::Path;
use std::process::Output;

use glm_test_support::{glm_agent_command, repo_file};

fn glm_agent(dir: &Path, args: &[&str]) -> Output {
    glm_agent_command()
        .args(args)
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Text before a call is shown as text, the call once (its code indented), and an unknown
/// tool's error once.
#[test]
fn a_turn_of_text_then_a_call_shows_the_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        serde_json::json!([
            "I will count them.<|assistant|>python\nprint(6 * 7)\nprint('twice')<|observation|>",
            "no_such_tool\n{}<|observation|>",
            "Done.<|user|>"
        ])
        .to_string(),
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
            "count",
        ],
    );
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains("I will count them.\n→ python: print(6 * 7)\n  print('twice')\n"),
        "{err}"
    );
    assert!(!err.contains("them.python"), "{err}");
    assert_eq!(err.matches("print('twice')").count(), 1, "{err}");
    assert!(err.contains("← 42\n  twice"), "{err}");
    assert_eq!(err.matches("no_such_tool").count(), 1, "{err}");
    assert_eq!(text(&run.stdout), "Done.\n");
}

/// `--help` names each setting's default and variable; `config show` prints floats as written,
/// whole descriptions up to their first clause, and the configured MCP servers without the
/// values of their environment.
#[test]
fn help_and_config_show_name_defaults_and_servers() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&glm_agent(dir.path(), &["run", "--help"]).stdout);
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
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        serde_json::json!([
            "python\nprint(1)<|observation|>",
            "No python today.<|user|>"
        ])
        .to_string(),
    )
    .unwrap();
    let run = glm_agent_command()
        .args([
            "run",
            "--engine",
            &format!("replay:{}", outputs.display()),
            "--tokenizer",
            &repo_file("evals/traces/tokenizer.json"),
            "--tools",
            "python",
            "--json",
            "count",
        ])
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
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
            .starts_with("python is unavailable here"),
        "{observation}"
    );
}
