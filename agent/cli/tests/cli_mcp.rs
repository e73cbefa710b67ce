//! MCP servers through the command line, against the protocol's reference servers
//! (`@modelcontextprotocol/server-everything` and `server-filesystem` from npm) and a server
//! written with the official Python SDK (`mcp` from PyPI), installed by `tests/mcp/fetch.sh`
//! into the cache folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli_display::json_events;
use glm_test_support::{glm_agent_command, repo_file};

/// The pinned packages' folders: (server-everything's `dist/index.js`, the Python SDK's folder).
fn packages() -> &'static (PathBuf, PathBuf) {
    static PACKAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let root = glm_test_support::fetched(
            &format!("{}/tests/mcp/fetch.sh", env!("CARGO_MANIFEST_DIR")),
            "node, npm and pip",
        );
        let everything = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("npm-"))
            .unwrap()
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        let python = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("py-"))
            .unwrap();
        (everything, python)
    })
}

/// `--mcp` for the reference filesystem server over stdio, allowed into `root`.
pub(crate) fn filesystem_stdio(root: &Path) -> String {
    let js = packages()
        .0
        .ancestors()
        .nth(3)
        .unwrap()
        .join("server-filesystem/dist/index.js");
    format!("fs=node {} {}", js.display(), root.display())
}

/// `--mcp` for the reference server over stdio.
fn everything_stdio() -> String {
    format!("ev=node {} stdio", packages().0.display())
}

/// glm-agent with no config file of the user's.
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process killed when the test ends.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and waits until `port` accepts connections.
fn serve(mut command: Command, port: u16) -> Served {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

/// The Python SDK's server over streamable HTTP.
fn python_server() -> (Served, String) {
    let port = free_port();
    let mut command = Command::new("python3");
    command
        .arg(format!(
            "{}/tests/mcp/py_server.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(port.to_string())
        .env("PYTHONPATH", &packages().1);
    (
        serve(command, port),
        format!("py=http://127.0.0.1:{port}/mcp"),
    )
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if line.contains(needle) {
                found.push(line);
            }
        }
    }
    found
}

#[test]
fn the_reference_server_over_stdio_lists_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mcp = everything_stdio();
    let list = glm_agent(
        dir.path(),
        &["tools", "list", "--json", "--mcp", &mcp, "--tools", "ev"],
    );
    assert!(list.status.success(), "{}", text(&list.stderr));
    let tools: Vec<Value> = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in ["ev__echo", "ev__get-sum", "ev__get-tiny-image"] {
        assert!(names.contains(&name), "{names:?}");
    }
    // Normalised like every tool's schema: plain `type`/`properties`, no `$schema`.
    let sum = tools.iter().find(|t| t["name"] == "ev__get-sum").unwrap();
    assert_eq!(sum["parameters"]["type"], "object");
    assert_eq!(sum["parameters"]["required"], serde_json::json!(["a", "b"]));
    assert!(sum["parameters"].get("$schema").is_none());

    let call = |tool: &str, args: &str, extra: &[&str]| {
        let mut all = vec!["tools", "call", tool, args, "--mcp", &mcp];
        all.extend_from_slice(extra);
        glm_agent(dir.path(), &all)
    };
    let echo = call("ev__echo", r#"{"message": "hi there"}"#, &[]);
    assert!(echo.status.success(), "{}", text(&echo.stderr));
    assert_eq!(text(&echo.stdout), "Echo: hi there\n");
    let sum = call("ev__get-sum", r#"{"a": 2, "b": 3.5}"#, &[]);
    assert_eq!(text(&sum.stdout), "The sum of 2 and 3.5 is 5.5.\n");

    // An image is saved into the data folder and named, like the notebook's figures.
    let image = call("ev__get-tiny-image", "{}", &["--keep-files"]);
    assert!(image.status.success(), "{}", text(&image.stderr));
    assert!(
        text(&image.stdout).contains("[Image] /mnt/data/mcp_ev_1_1.png"),
        "{}",
        text(&image.stdout)
    );
    let stderr = text(&image.stderr);
    let written = stderr
        .lines()
        .find_map(|l| l.strip_prefix("wrote "))
        .expect("the file is reported");
    let png = std::fs::read(written).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_dir_all(Path::new(written).parent().unwrap().parent().unwrap()).unwrap();

    // Resource links are listed; structured content shown once.
    let links = call("ev__get-resource-links", r#"{"count": 2}"#, &[]);
    assert!(
        text(&links.stdout)
            .contains("[Resource link] Text Resource 2: demo://resource/dynamic/text/2"),
        "{}",
        text(&links.stdout)
    );
    let structured = call(
        "ev__get-structured-content",
        r#"{"location": "Chicago"}"#,
        &[],
    );
    assert_eq!(text(&structured.stdout).matches("temperature").count(), 1);

    // The server's refusal is an error observation the model can act on (exit 1).
    let bad = call("ev__get-sum", r#"{"a": "x"}"#, &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stdout).starts_with("Error: `ev__get-sum` failed:"));
    assert!(text(&bad.stdout).contains("expected number"));

    // A stdio server sees only PATH, HOME and what its config gives.
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[mcp_servers.ev]\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\nenv = {{ GIVEN = \"yes\" }}\n",
            packages().0.display()
        ),
    )
    .unwrap();
    let env = glm_agent_command()
        .args(["tools", "call", "ev__get-env", "{}"])
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("SECRET_TOKEN", "must-not-leak")
        .output()
        .unwrap();
    assert!(env.status.success(), "{}", text(&env.stderr));
    let shown: Value = serde_json::from_slice(&env.stdout).unwrap();
    let mut keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["GIVEN", "HOME", "PATH"]);
}

#[test]
fn servers_over_streamable_http_both_sdks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(&packages().0)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    let _everything = serve(command, port);
    let mcp = format!("ev=http://127.0.0.1:{port}/mcp");
    let sum = glm_agent(
        dir.path(),
        &[
            "tools",
            "call",
            "ev__get-sum",
            r#"{"a": 1, "b": 2}"#,
            "--mcp",
            &mcp,
        ],
    );
    assert!(sum.status.success(), "{}", text(&sum.stderr));
    assert_eq!(text(&sum.stdout), "The sum of 1 and 2 is 3.\n");

    let (_python, mcp) = python_server();
    let product = glm_agent(
        dir.path(),
        &[
            "tools",
            "call",
            "py__multiply",
            r#"{"a": 6, "b": 7}"#,
            "--mcp",
            &mcp,
        ],
    );
    assert!(product.status.success(), "{}", text(&product.stderr));
    assert_eq!(text(&product.stdout), "42\n");
    let refused = glm_agent(
        dir.path(),
        &["tools", "call", "py__refuse", "{}", "--mcp", &mcp],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stdout).starts_with("Error: `py__refuse` failed"));
}

#[test]
fn a_run_follows_a_tool_list_change_and_replays_without_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (python, mcp_py) = python_server();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        serde_json::json!([
            "py__grow\n{}<|observation|>",
            "py__late\n{\"word\": \"hi\"}<|observation|>",
            "ev__echo\n{\"message\": \"both\"}<|observation|>",
            "Done.<|user|>"
        ])
        .to_string(),
    )
    .unwrap();
    let engine = format!("replay:{}", outputs.display());
    let tokenizer = repo_file("evals/traces/tokenizer.json");
    let mcp_ev = everything_stdio();
    let traces = dir.path().join("traces");
    let run = glm_agent(
        dir.path(),
        &[
            "run",
            "--engine",
            &engine,
            "--tokenizer",
            &tokenizer,
            "--mcp",
            &mcp_py,
            "--mcp",
            &mcp_ev,
            "--tools",
            "py,ev__echo",
            "--approval",
            "auto",
            "--json",
            "go",
        ],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    let events: Vec<Value> = json_events(&run.stdout);
    let observations: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "observation")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        observations,
        ["added the tool `late`", "late says hi", "Echo: both"]
    );
    // The start offers the chosen tools only; the change adds `late` before the next turn.
    let start = events.iter().find(|e| e["event"] == "start").unwrap();
    let names = |tools: &Value| -> Vec<String> {
        tools
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&start["tools"]),
        [
            "ev__echo",
            "py__grow",
            "py__multiply",
            "py__refuse",
            "py__sleep"
        ]
    );
    let change = events.iter().find(|e| e["event"] == "tools").unwrap();
    assert_eq!(change["step"], 1);
    assert!(names(&change["tools"]).contains(&"py__late".to_owned()));
    drop(python);

    // The servers are gone: the trace replays with the recorded observations, every prompt
    // (the appended system turn too) identical.
    replays_without_servers(dir.path(), &traces);
}

#[test]
fn servers_that_fail_are_named_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A command that does not exist: exit 2, naming the server and the command.
    let missing = glm_agent(
        dir.path(),
        &[
            "tools",
            "list",
            "--mcp",
            "gone=glm-agent-no-such-command",
            "--tools",
            "gone",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    let err = text(&missing.stderr);
    assert!(err.contains("MCP server `gone` did not start"), "{err}");
    assert!(
        err.contains("`glm-agent-no-such-command` was not found"),
        "{err}"
    );

    // A server that never answers the handshake: stopped at its start-up limit, its stderr
    // shown, its process (and its children) gone.
    let marker = format!("glm-agent-mute-{}", std::process::id());
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[mcp_servers.mute]\ncommand = \"sh\"\nargs = [\"-c\", \"echo 'set MUTE_KEY first' >&2; sleep 60 # {marker}\"]\nstartup_timeout_s = 2\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mute = glm_agent(dir.path(), &["tools", "list"]);
    let took = started.elapsed();
    assert_eq!(mute.status.code(), Some(2));
    let err = text(&mute.stderr);
    assert!(
        err.contains("no answer to the handshake within 2 s"),
        "{err}"
    );
    assert!(err.contains("set MUTE_KEY first"), "{err}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );

    // Marked optional, the same server is left out with a warning and the rest goes on.
    let optional =
        std::fs::read_to_string(dir.path().join("config.toml")).unwrap() + "optional = true\n";
    std::fs::write(dir.path().join("config.toml"), optional).unwrap();
    let listed = glm_agent(dir.path(), &["tools", "list", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stderr).contains("`mute` is optional: left out"));
    let tools: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(tools.len(), 2);
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();

    // A call past its limit is cancelled with `notifications/cancelled`; the log of what the
    // client sent shows it.
    let sent = dir.path().join("sent.jsonl");
    let mcp = format!(
        "ev=sh -c 'tee {} | node {} stdio'",
        sent.display(),
        packages().0.display()
    );
    let started = Instant::now();
    let slow = glm_agent(
        dir.path(),
        &[
            "tools",
            "call",
            "ev__trigger-long-running-operation",
            r#"{"duration": 30, "steps": 3}"#,
            "--tool-timeout",
            "2",
            "--mcp",
            &mcp,
        ],
    );
    assert_eq!(slow.status.code(), Some(1));
    assert!(text(&slow.stdout).contains("did not finish within 2 s"));
    assert!(started.elapsed() < Duration::from_secs(20));
    let log = std::fs::read_to_string(&sent).unwrap();
    assert!(
        log.contains("\"method\":\"notifications/cancelled\""),
        "{log}"
    );

    // A server killed mid-call: the call reports it, the command ends.
    let marker = format!("glm-agent-killed-{}", std::process::id());
    let mcp = format!("ev=node {} stdio {marker}", packages().0.display());
    let call = glm_agent_command()
        .args([
            "tools",
            "call",
            "ev__trigger-long-running-operation",
            r#"{"duration": 30, "steps": 3}"#,
            "--mcp",
            &mcp,
        ])
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let server = loop {
        let found: Vec<String> = processes_with(&marker)
            .into_iter()
            .filter(|l| l.starts_with("node "))
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(server.len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("pkill")
        .args(["-f", &format!("^node .*{marker}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = call.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("the MCP server `ev` is no longer running"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn mistakes_in_the_configuration_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[mcp_servers.both]\ncommand = \"x\"\nurl = \"http://127.0.0.1:1/\"\n",
    )
    .unwrap();
    let both = glm_agent(dir.path(), &["tools", "list"]);
    assert_eq!(both.status.code(), Some(2));
    assert!(text(&both.stderr).contains("either `command` (stdio) or `url`"));
    std::fs::write(
        dir.path().join("config.toml"),
        "[mcp_servers.typo]\ncomand = \"x\"\n",
    )
    .unwrap();
    let typo = glm_agent(dir.path(), &["tools", "list"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        text(&typo.stderr).contains("comand"),
        "{}",
        text(&typo.stderr)
    );
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();
    let unknown = glm_agent(
        dir.path(),
        &[
            "tools",
            "list",
            "--tools",
            "nosuch__tool",
            "--mcp",
            "ok=true",
        ],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("unknown tool `nosuch__tool`"),
        "{}",
        text(&unknown.stderr)
    );
}

/// `glm-agent tools ARGS` against `tests/mcp/hostile_server.py`, measured.
fn hostile(dir: &Path, args: &[&str]) -> glm_test_support::Measured {
    let mcp = format!(
        "h=python3 {}",
        repo_file_path("agent/cli/tests/mcp/hostile_server.py")
    );
    let mut command = glm_agent_command();
    command
        .arg("tools")
        .args(args)
        .args(["--mcp", &mcp, "--tools", "h"])
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"));
    glm_test_support::run_measured(&mut command)
}

fn repo_file_path(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_hostile_server_is_bounded_in_schemas_pages_and_results() {
    let dir = tempfile::tempdir().unwrap();
    // A `$ref` bomb of 8^8 nodes and a cursor that never ends.
    let listed = hostile(dir.path(), &["list"]);
    let out = text(&listed.output.stdout);
    let err = text(&listed.output.stderr);
    eprintln!(
        "tools list: {:?}, peak {} MB",
        listed.elapsed,
        listed.peak_rss >> 20
    );
    assert!(listed.output.status.success(), "{err}");
    assert!(out.contains("h__bomb") && out.contains("h__t1"), "{out}");
    assert!(err.contains("goes on past"), "{err}");
    assert!(
        listed.elapsed < Duration::from_secs(20),
        "{:?}",
        listed.elapsed
    );
    assert!(
        listed.peak_rss < 400 << 20,
        "peak {} MB",
        listed.peak_rss >> 20
    );

    // 15 MiB of structured content (just under the SDK's 16 MiB message limit).
    let called = hostile(dir.path(), &["call", "h__huge", "{}"]);
    eprintln!(
        "tools call: {:?}, peak {} MB",
        called.elapsed,
        called.peak_rss >> 20
    );
    let shown = text(&called.output.stdout);
    assert!(shown.contains("done"), "{}", text(&called.output.stderr));
    assert!(
        shown.contains("Structured content of over 1024 KiB left out"),
        "{shown:.300}"
    );
    assert!(
        called.elapsed < Duration::from_secs(20),
        "{:?}",
        called.elapsed
    );
    assert!(
        called.peak_rss < 400 << 20,
        "peak {} MB",
        called.peak_rss >> 20
    );
}

#[test]
fn an_http_server_cannot_redirect_the_session_to_another_origin() {
    let (elsewhere, seen) = glm_test_support::http::serve(|_, _| (200, Vec::new(), "{}".into()));
    let target = format!("{elsewhere}/mcp");
    let (base, _) = glm_test_support::http::serve(move |_, _| {
        (307, vec![("Location", target.clone())], String::new())
    });
    let dir = tempfile::tempdir().unwrap();
    let out = glm_agent(
        dir.path(),
        &[
            "tools",
            "list",
            "--mcp",
            &format!("r={base}/mcp"),
            "--tools",
            "r",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("MCP server `r` did not start"), "{err}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other origin was asked"
    );
}

/// Starts `glm-agent tools list` with one server, `command` and `args` (a marker in them), that
/// never answers the handshake.
fn waiting_on_a_mute_server(dir: &Path, command: &str, args: &str) -> std::process::Child {
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[mcp_servers.slow]\ncommand = \"{command}\"\nargs = {args}\nstartup_timeout_s = 60\n"
        ),
    )
    .unwrap();
    glm_agent_command()
        .args(["tools", "list"])
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits up to `within` for processes naming `marker` to be there (`present`) or gone.
fn wait_for(marker: &str, present: bool, within: Duration) -> bool {
    let started = Instant::now();
    while processes_with(marker).is_empty() == present && started.elapsed() < within {
        std::thread::sleep(Duration::from_millis(50));
    }
    processes_with(marker).is_empty() != present
}

#[test]
fn sigterm_while_servers_start_leaves_none_running() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("glm-agent-slow-start-{}", std::process::id());
    let args = format!("[\"-c\", \"sleep 60 # {marker}\"]");
    let mut child = waiting_on_a_mute_server(dir.path(), "sh", &args);
    assert!(
        wait_for(&marker, true, Duration::from_secs(10)),
        "the server did not start"
    );
    let pid = child.id().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        wait_for(&marker, false, Duration::from_secs(2)),
        "{:?}",
        processes_with(&marker)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_server_dies_with_a_killed_glm_agent() {
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("skipped: no setpriv on this system (util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("glm-agent-orphan-{}", std::process::id());
    let args = format!("[\"-c\", \"import time; time.sleep(60)\", \"{marker}\"]");
    let mut child = waiting_on_a_mute_server(dir.path(), "python3", &args);
    assert!(
        wait_for(&marker, true, Duration::from_secs(10)),
        "the server did not start"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_for(&marker, false, Duration::from_secs(5)),
        "{:?}",
        processes_with(&marker)
    );
}

/// server-filesystem sends each result twice (a text block and `structuredContent`), an image
/// also as base64 in both: the model reads the text once and the image as a saved file.
#[test]
fn the_filesystem_servers_results_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "marker-7731 first\nsecond line\n").unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend((0..12_000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(root.join("figure.png"), &png).unwrap();
    let fs = filesystem_stdio(&root);
    let call = |tool: &str, path: &str| {
        let args = serde_json::json!({ "path": root.join(path) }).to_string();
        let out = glm_agent(dir.path(), &["tools", "call", tool, &args, "--mcp", &fs]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let read = call("fs__read_text_file", "notes.txt");
    assert_eq!(read.matches("marker-7731").count(), 1, "{read}");
    let image = call("fs__read_media_file", "figure.png");
    assert!(image.contains("/mnt/data/"), "{image}");
    assert!(!image.contains("iVBORw0KGgo"), "{image}");
    assert!(image.len() < 1_000, "{} bytes: {image}", image.len());
}

/// The one trace in `traces` replays with its recorded observations and no divergence.
fn replays_without_servers(dir: &Path, traces: &Path) {
    let trace = std::fs::read_dir(traces)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let tokenizer = repo_file("evals/traces/tokenizer.json");
    let args = ["replay", trace.to_str().unwrap(), "--tokenizer", &tokenizer];
    let replay = glm_agent(dir, &[&args[..], &["--tools", "recorded"]].concat());
    let all = format!("{}{}", text(&replay.stdout), text(&replay.stderr));
    assert!(replay.status.success(), "{}: {all}", trace.display());
    assert!(all.contains("no divergence"), "{}: {all}", trace.display());
}

/// The events of a `--json` run.
fn events_of(out: &Output) -> Vec<Value> {
    json_events(&out.stdout)
}

/// Approvals with the reference filesystem server, whose read tools are annotated read-only and
/// whose write tools are not: with no terminal to ask on, a read runs and a write is refused
/// (the model is told, the run goes on); rules allow and deny by name and by server; and the
/// recorded decisions replay.
#[test]
fn approvals_run_reads_refuse_writes_without_a_terminal_and_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("notes.txt"), "marker-5150\n").unwrap();
    let target = root.join("out.txt");
    let read = serde_json::json!({ "path": root.join("notes.txt") });
    let write = serde_json::json!({ "path": &target, "content": "written" });
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        serde_json::json!([
            format!("fs__read_text_file\n{read}<|observation|>"),
            format!("fs__write_file\n{write}<|observation|>"),
            "Done.<|user|>"
        ])
        .to_string(),
    )
    .unwrap();
    let engine = format!("replay:{}", outputs.display());
    let tokenizer = repo_file("evals/traces/tokenizer.json");
    let fs = filesystem_stdio(&root);
    let run = |name: &str, flags: &[&str]| -> (Output, Vec<Value>) {
        let traces = dir.path().join(name);
        let mut args = vec!["run", "--engine", &engine, "--tokenizer", &tokenizer];
        args.extend(["--mcp", &fs, "--tools", "fs", "--json"]);
        let traces_arg = traces.to_str().unwrap().to_owned();
        args.extend(["--trace-dir", &traces_arg]);
        args.extend(flags);
        args.push("copy the notes");
        let started = Instant::now();
        let out = glm_agent(dir.path(), &args);
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let events = events_of(&out);
        (out, events)
    };
    let decisions = |events: &[Value]| -> Vec<(String, String, String)> {
        events
            .iter()
            .filter(|e| e["event"] == "approval")
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("name"), s("verdict"), s("by"))
            })
            .collect()
    };
    let d = |name: &str, verdict: &str, by: &str| (name.into(), verdict.into(), by.into());

    // The default, `ask`, with nobody to ask: the read runs, the write is refused.
    let (_, events) = run("default", &[]);
    assert_eq!(
        decisions(&events),
        [
            d("fs__read_text_file", "run", "read_only"),
            d("fs__write_file", "refuse", "no_one")
        ]
    );
    assert!(!target.exists());
    let observations: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "observation")
        .collect();
    assert!(
        observations[0]["text"]
            .as_str()
            .unwrap()
            .contains("marker-5150")
    );
    let refused = observations[1]["text"].as_str().unwrap();
    assert!(
        refused.contains("not run") && refused.contains("approval"),
        "{refused}"
    );
    let refusal = events.iter().find(|e| e["verdict"] == "refuse").unwrap();
    assert_eq!(refusal["arguments"]["content"], "written");
    // Not shown as JSON: the refused call is named with what would run it.
    let shown = glm_agent(
        dir.path(),
        &[
            "run",
            "--engine",
            &engine,
            "--tokenizer",
            &tokenizer,
            "--mcp",
            &fs,
            "--tools",
            "fs",
            "--no-trace",
            "copy",
        ],
    );
    let err = text(&shown.stderr);
    assert!(err.contains("→ fs__write_file: "), "{err}");
    assert!(err.contains("--allow fs__write_file"), "{err}");

    // A rule allows the write.
    let (_, events) = run("allowed", &["--allow", "fs__write_file"]);
    assert_eq!(decisions(&events)[1], d("fs__write_file", "run", "rule"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "written");
    std::fs::remove_file(&target).unwrap();

    // Deny wins over auto, for a whole server.
    let (_, events) = run("denied", &["--approval", "auto", "--deny", "fs__*"]);
    assert_eq!(
        decisions(&events),
        [
            d("fs__read_text_file", "refuse", "rule"),
            d("fs__write_file", "refuse", "rule")
        ]
    );
    assert!(!target.exists());

    // `deny` runs only what is allowed, read-only or not; the config file's [approval] table.
    std::fs::write(
        dir.path().join("config.toml"),
        "[approval]\nmode = \"deny\"\nallow = [\"fs__write_*\"]\n",
    )
    .unwrap();
    let (_, events) = run("config", &[]);
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();
    assert_eq!(
        decisions(&events),
        [
            d("fs__read_text_file", "refuse", "mode"),
            d("fs__write_file", "run", "rule")
        ]
    );
    assert!(target.exists());

    // Replays give the recorded decisions back, the servers gone: every prompt the same.
    for name in ["default", "config"] {
        replays_without_servers(dir.path(), &dir.path().join(name));
    }

    // `tools list` says which the server marks read-only.
    let list = text(&glm_agent(dir.path(), &["tools", "list", "--mcp", &fs]).stdout);
    let block = |name: &str| {
        list.split("\n\n")
            .find(|b| b.starts_with(&format!("{name}\n")))
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .to_owned()
    };
    assert!(block("fs__read_text_file").contains("read-only: runs without asking"));
    assert!(block("fs__write_file").contains("asked about under --approval ask"));

    // A mode that is not one is a usage error naming the modes.
    let bad = glm_agent(dir.path(), &["run", "--approval", "sometimes", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("auto, ask or deny"),
        "{}",
        text(&bad.stderr)
    );
}
