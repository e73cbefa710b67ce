//! What a person at a terminal does: `chat` on a real terminal (tmux) with the line editor's
//! keys, its history and Ctrl-D; Ctrl-C on a running Python cell through `run` and `chat`, with
//! the time to stop measured.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use glm_test_support::{glm_agent_exe, repo_file};

/// A tmux server of its own (tests run at once must not share one: two servers started together
/// race for one socket) with one session running one command, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.0]);
        command
    }

    fn start(name: &str, command: &str) -> Tmux {
        let tmux = Tmux(name.to_owned());
        let status = tmux
            .tmux()
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "120",
                "-y",
                "40",
                command,
            ])
            .status()
            .expect("tmux is needed for the terminal tests (apt-get install tmux)");
        assert!(status.success());
        tmux
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text` `times` times (the screen's lines come without
    /// their trailing spaces: a prompt is `>`).
    fn wait_for(&self, text: &str, times: usize) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= times {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{text:?} x{times} never appeared:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

/// The shell command a tmux pane runs: `glm-agent chat` on a replayed model (`outputs`) with
/// `tools`, its config, state and traces in `dir`, then `EXIT=status` (kept on screen).
fn chat_command(dir: &Path, outputs: serde_json::Value, tools: &str) -> String {
    let path = dir.join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    format!(
        "env GLM_AGENT_CONFIG={config} XDG_STATE_HOME={state} GLM_AGENT_TRACE_DIR={traces} \
{exe} chat --engine replay:{outputs} --tokenizer {tokenizer} --tools {tools}; \
echo \"EXIT=$?\"; sleep 60",
        config = shell_quote(&dir.join("config.toml")),
        state = shell_quote(&dir.join("state")),
        traces = shell_quote(&dir.join("traces")),
        exe = shell_quote(&glm_agent_exe()),
        outputs = shell_quote(&path),
        tokenizer = shell_quote(Path::new(&repo_file("evals/traces/tokenizer.json"))),
    )
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Up brings the last message back to be sent again (not `^[[A`), the history outlives the
/// session, and Ctrl-D leaves with exit 0 on a fresh line.
#[test]
fn chat_edits_lines_keeps_history_and_leaves_on_ctrl_d() {
    let dir = tempfile::tempdir().unwrap();
    let command = chat_command(
        dir.path(),
        serde_json::json!(["First answer.<|user|>", "Second answer.<|user|>"]),
        "none",
    );
    let name = format!("glm-chat-{}", std::process::id());
    let tmux = Tmux::start(&name, &command);
    tmux.wait_for(">", 1);
    tmux.keys(&["hello there", "Enter"]);
    tmux.wait_for("First answer.", 1);
    tmux.wait_for(">", 2);
    tmux.keys(&["Up"]);
    tmux.wait_for("> hello there", 2);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Second answer.", 1);
    tmux.wait_for(">", 3);
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("EXIT=", 1);
    assert!(screen.contains("\nEXIT=0"), "{screen}");
    assert!(!screen.contains("^[["), "{screen}");
    let history = std::fs::read_to_string(dir.path().join("state/glm-agent/chat_history")).unwrap();
    assert!(history.contains("hello there"), "{history}");
}

/// Ctrl-C (SIGINT) while a cell is busy or asleep: `run` exits 130 within a couple of seconds
/// (it used to wait for the cell: 45 s for `time.sleep(45)`), its trace written.
#[test]
fn ctrl_c_stops_a_running_cell_and_the_run() {
    use std::io::{BufRead, BufReader};
    for code in ["while True: pass", "import time; time.sleep(45)"] {
        let dir = tempfile::tempdir().unwrap();
        let outputs =
            serde_json::json!([format!("python\n{code}<|observation|>"), "Done.<|user|>"]);
        let mut child = crate::cli_display::replayed_run(dir.path(), outputs, "python")
            .arg("count")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("→ python:") {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "no call shown: {seen}"
            );
            seen.push_str(&line);
        }
        // The cell is running (the notebook starts, then the code runs).
        std::thread::sleep(Duration::from_secs(3));
        let asked = Instant::now();
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        let took = asked.elapsed();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        println!("{code:?}: Ctrl-C to exit {took:?}");
        assert_eq!(exit.code(), Some(130), "{code}: {seen}{rest}");
        assert!(took < Duration::from_secs(3), "{code}: {took:?}");
        assert!(rest.contains("trace: "), "{rest}");
    }
}

/// Ctrl-C in `chat` while a cell runs: the turn stops, the prompt comes back, and the notebook is
/// as it was before the cell.
#[test]
fn ctrl_c_in_chat_stops_the_cell_and_keeps_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let command = chat_command(
        dir.path(),
        serde_json::json!([
            "python\nkept = 5<|observation|>",
            "Set.<|user|>",
            "python\nkept = 99\nimport time; time.sleep(45)<|observation|>",
            "python\nprint(kept)<|observation|>",
            "It is 5.<|user|>"
        ]),
        "python",
    );
    let tmux = Tmux::start(&format!("glm-chat-c-{}", std::process::id()), &command);
    tmux.wait_for(">", 1);
    tmux.keys(&["set it", "Enter"]);
    tmux.wait_for("Set.", 1);
    tmux.keys(&["sleep now", "Enter"]);
    tmux.wait_for("time.sleep(45)", 1);
    std::thread::sleep(Duration::from_secs(2));
    let asked = Instant::now();
    tmux.keys(&["C-c"]);
    tmux.wait_for("(interrupted; that message is dropped)", 1);
    println!("chat: Ctrl-C to prompt {:?}", asked.elapsed());
    assert!(asked.elapsed() < Duration::from_secs(3));
    tmux.keys(&["what is kept", "Enter"]);
    let screen = tmux.wait_for("It is 5.", 1);
    assert!(screen.contains("← 5"), "{screen}");
    tmux.keys(&["/exit", "Enter"]);
    tmux.wait_for("EXIT=0", 1);
}

/// On a real terminal each call the policy leaves open is asked about, and each answer does
/// what it says: no (with a reason the model reads), yes, yes for the rest of the session (the
/// next call of that tool is not asked about), and stop (exit 130).
#[test]
fn each_answer_to_an_approval_question_does_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let write = |name: &str| {
        let args = serde_json::json!({ "path": root.join(name), "content": name });
        format!("fs__write_file\n{args}<|observation|>")
    };
    let mkdir = serde_json::json!({ "path": root.join("e") });
    let outputs = serde_json::json!([
        write("a.txt"),
        write("b.txt"),
        write("c.txt"),
        write("d.txt"),
        format!("fs__create_directory\n{mkdir}<|observation|>"),
        "Done.<|user|>"
    ]);
    let path = dir.path().join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    let command = format!(
        "env GLM_AGENT_CONFIG={config} GLM_AGENT_TRACE_DIR={traces} \
{exe} run --engine replay:{outputs} --tokenizer {tokenizer} --mcp {mcp} --tools fs 'write them'; \
echo \"EXIT=$?\"; sleep 60",
        config = shell_quote(&dir.path().join("config.toml")),
        traces = shell_quote(&dir.path().join("traces")),
        exe = shell_quote(&glm_agent_exe()),
        outputs = shell_quote(&path),
        tokenizer = shell_quote(Path::new(&repo_file("evals/traces/tokenizer.json"))),
        mcp = shell_quote(Path::new(&crate::cli_mcp::filesystem_stdio(&root))),
    );
    let tmux = Tmux::start(&format!("glm-approve-{}", std::process::id()), &command);
    tmux.wait_for("allow fs__write_file? [y/a/n/s]", 1);
    let screen = tmux.screen();
    assert!(screen.contains("a.txt"), "{screen}");
    tmux.keys(&["n not in that folder", "Enter"]);
    tmux.wait_for("allow fs__write_file? [y/a/n/s]", 2);
    tmux.keys(&["y", "Enter"]);
    tmux.wait_for("allow fs__write_file? [y/a/n/s]", 3);
    tmux.keys(&["a", "Enter"]);
    tmux.wait_for("allow fs__create_directory?", 1);
    let screen = tmux.screen();
    // d.txt was written without a question.
    assert_eq!(
        screen.matches("allow fs__write_file?").count(),
        3,
        "{screen}"
    );
    tmux.keys(&["s", "Enter"]);
    let screen = tmux.wait_for("EXIT=", 1);
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(!root.join("a.txt").exists());
    for name in ["b.txt", "c.txt", "d.txt"] {
        assert_eq!(std::fs::read_to_string(root.join(name)).unwrap(), name);
    }
    assert!(!root.join("e").exists());
    let trace = std::fs::read_dir(dir.path().join("traces"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let decisions: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "approval")
        .map(|e| (e["verdict"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("refuse", "person"),
            ("run", "person"),
            ("run", "person"),
            ("run", "session"),
            ("stop", "person")
        ]
    );
    let declined = events.iter().find(|e| e["event"] == "observation").unwrap();
    assert!(
        declined["text"]
            .as_str()
            .unwrap()
            .contains("the user declined it: not in that folder"),
        "{declined}"
    );
}
