//! `chat` on a real terminal (tmux): the line editor's keys, its history, Ctrl-D.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use glm_test_support::{glm_agent_exe, repo_file};

/// A tmux session running one command, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let status = Command::new("tmux")
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
        Tmux(name.to_owned())
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text` `times` times.
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
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Up brings the last message back to be sent again (not `^[[A`), the history outlives the
/// session, and Ctrl-D leaves with exit 0 on a fresh line.
#[test]
fn chat_edits_lines_keeps_history_and_leaves_on_ctrl_d() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(
        &outputs,
        serde_json::json!(["First answer.<|user|>", "Second answer.<|user|>"]).to_string(),
    )
    .unwrap();
    let command = format!(
        "env GLM_AGENT_CONFIG={config} XDG_STATE_HOME={state} GLM_AGENT_TRACE_DIR={traces} \
{exe} chat --engine replay:{outputs} --tokenizer {tokenizer} --tools none; \
echo \"EXIT=$?\"; sleep 60",
        config = shell_quote(&dir.path().join("config.toml")),
        state = shell_quote(&dir.path().join("state")),
        traces = shell_quote(&dir.path().join("traces")),
        exe = shell_quote(&glm_agent_exe()),
        outputs = shell_quote(&outputs),
        tokenizer = shell_quote(Path::new(&repo_file("evals/traces/tokenizer.json"))),
    );
    let name = format!("glm-chat-{}", std::process::id());
    let tmux = Tmux::start(&name, &command);
    tmux.wait_for("> ", 1);
    tmux.keys(&["hello there", "Enter"]);
    tmux.wait_for("First answer.", 1);
    tmux.wait_for("> ", 2);
    tmux.keys(&["Up"]);
    tmux.wait_for("> hello there", 2);
    tmux.keys(&["Enter"]);
    tmux.wait_for("Second answer.", 1);
    tmux.wait_for("> ", 3);
    tmux.keys(&["C-d"]);
    let screen = tmux.wait_for("EXIT=", 1);
    assert!(screen.contains("\nEXIT=0"), "{screen}");
    assert!(!screen.contains("^[["), "{screen}");
    let history = std::fs::read_to_string(dir.path().join("state/glm-agent/chat_history")).unwrap();
    assert!(history.contains("hello there"), "{history}");
}
