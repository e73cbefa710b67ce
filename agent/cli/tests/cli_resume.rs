//! `--resume` and `--continue` through the binary on a replayed model: the continued prompt is
//! the recorded conversation's ids then the new user turn, token for token, for a finished run
//! and for one interrupted in a call; the continued trace replays alone; traces that are not
//! glm-agent's, were edited, or come from another tokenizer are refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::cli_display::{json_events, replayed_run, text};
use glm_test_support::{glm_agent_command, repo_file};

fn events(trace: &Path) -> Vec<Value> {
    json_events(&std::fs::read(trace).unwrap())
}

/// The traces in `dir/traces`, oldest first.
fn traces(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Every id of a trace's conversation: the ids it resumed from, then each model turn's new
/// prompt ids and generated ids.
fn sequence(events: &[Value]) -> Vec<u64> {
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect())
            .unwrap_or_default()
    };
    let mut out = ids(&events[0]["resumed"]);
    for e in events.iter().filter(|e| e["event"] == "model") {
        out.extend(ids(&e["prompt_delta"]));
        out.extend(ids(&e["ids"]));
    }
    out
}

/// `glm-agent run --resume ...` on a replayed model answering `outputs`.
fn resume(dir: &Path, outputs: Value, flags: &[&str], task: &str) -> Output {
    let path = dir.join("next.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    glm_agent_command()
        .args(["run", "--engine", &format!("replay:{}", path.display())])
        .args(["--tokenizer", &repo_file("evals/traces/tokenizer.json")])
        .args(flags)
        .arg(task)
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.join("traces"))
        .output()
        .unwrap()
}

const USER: u64 = 151_336;
const ASSISTANT: u64 = 151_337;

/// A finished run continued with `--continue`: the new prompt is every recorded id, then the
/// new turn (the answer's closing `<|user|>` opens it), then `<|assistant|>`; the new trace
/// names its parent and replays alone.
#[test]
fn a_finished_run_continues_token_for_token() {
    let dir = tempfile::tempdir().unwrap();
    let first = replayed_run(
        dir.path(),
        serde_json::json!(["python\nprint(6 * 7)<|observation|>", "It is 42.<|user|>"]),
        "python",
    )
    .arg("compute")
    .output()
    .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let parent = traces(dir.path()).remove(0);
    let recorded = sequence(&events(&parent));

    let next = resume(
        dir.path(),
        serde_json::json!(["Doubled, 84.<|user|>"]),
        &["--continue"],
        "and doubled?",
    );
    let err = text(&next.stderr);
    assert!(next.status.success(), "{err}");
    assert!(err.contains("Resuming"), "{err}");
    assert_eq!(text(&next.stdout), "Doubled, 84.\n");
    let child = traces(dir.path())
        .into_iter()
        .find(|p| *p != parent)
        .unwrap();
    let child_events = events(&child);
    let start = &child_events[0];
    assert_eq!(start["parent"], parent.display().to_string());
    assert_eq!(sequence(std::slice::from_ref(start)), recorded);
    // The recorded tools and settings carry over.
    assert_eq!(start["tools"], events(&parent)[0]["tools"]);
    let model = child_events.iter().find(|e| e["event"] == "model").unwrap();
    let mut want: Vec<u64> = "\nand doubled?".bytes().map(u64::from).collect();
    want.push(ASSISTANT);
    assert_eq!(*recorded.last().unwrap(), USER);
    assert_eq!(model["prompt_delta"], serde_json::json!(want));
    assert_eq!(
        model["prompt_tokens"].as_u64().unwrap() as usize,
        recorded.len() + want.len()
    );
    // The continued trace replays on its own.
    let replay = glm_agent_command()
        .args(["replay", child.to_str().unwrap()])
        .args(["--tokenizer", &repo_file("evals/traces/tokenizer.json")])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&replay.stdout), text(&replay.stderr));
    assert!(replay.status.success(), "{all}");
    assert!(all.contains("no divergence"), "{all}");
}

/// A run interrupted while its second call ran resumes after its first complete step: the new
/// turn follows the last result the model saw, not the call that never returned.
#[test]
fn an_interrupted_run_resumes_after_its_last_complete_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = replayed_run(
        dir.path(),
        serde_json::json!([
            "python\nprint(1)<|observation|>",
            "python\nimport time; time.sleep(30)<|observation|>",
            "Done.<|user|>"
        ]),
        "python",
    )
    .arg("count")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("→ python: import time") {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "{seen}"
        );
        seen.push_str(&line);
    }
    std::thread::sleep(Duration::from_secs(2));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let parent = traces(dir.path()).remove(0);
    let parent_events = events(&parent);
    let models: Vec<&Value> = parent_events
        .iter()
        .filter(|e| e["event"] == "model")
        .collect();
    assert_eq!(models.len(), 2);
    let all = sequence(&parent_events);
    // The second turn's prompt, without its opening `<|assistant|>`.
    let second_prompt = models[1]["prompt_tokens"].as_u64().unwrap() as usize;
    let kept = &all[..second_prompt - 1];

    let next = resume(
        dir.path(),
        serde_json::json!(["Fine.<|user|>"]),
        &["--resume", parent.to_str().unwrap()],
        "go on",
    );
    let err = text(&next.stderr);
    assert!(next.status.success(), "{err}");
    assert!(
        err.contains("its last call, whose result was not recorded, is left out"),
        "{err}"
    );
    let child = traces(dir.path())
        .into_iter()
        .find(|p| *p != parent)
        .unwrap();
    let child_events = events(&child);
    assert_eq!(sequence(&child_events[..1]), kept);
    let model = child_events.iter().find(|e| e["event"] == "model").unwrap();
    let mut want = vec![USER];
    want.extend("\ngo on".bytes().map(u64::from));
    want.push(ASSISTANT);
    assert_eq!(model["prompt_delta"], serde_json::json!(want));
}

/// A trace given to `--resume` is hostile input: not a trace, not glm-agent's, edited, from
/// another tokenizer, or huge: each is refused with why (exit 2) in little time, before a model
/// or tool starts.
#[test]
fn traces_that_cannot_be_resumed_are_refused_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let first = replayed_run(dir.path(), serde_json::json!(["It is 42.<|user|>"]), "none")
        .arg("compute")
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let good = std::fs::read_to_string(traces(dir.path()).remove(0)).unwrap();
    let write = |name: &str, content: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let edited = good.replacen(
        "\"prompt_delta\":[151331,151333",
        "\"prompt_delta\":[151331,151333,9",
        1,
    );
    let foreign = good.replace("151331", "1");
    let huge_ids = good.replacen(
        "\"prompt_delta\":[151331,151333",
        "\"prompt_delta\":[151331,151333,999999",
        1,
    );
    let cases = [
        ("not-json.jsonl", "hello\n".to_owned(), "not JSON"),
        (
            "no-start.jsonl",
            "{\"v\":1,\"event\":\"error\",\"message\":\"x\"}\n".to_owned(),
            "no start event",
        ),
        ("edited.jsonl", edited, "does not rebuild"),
        ("foreign.jsonl", foreign, "another tokenizer"),
        ("beyond.jsonl", huge_ids, "beyond this tokenizer"),
        (
            "long-line.jsonl",
            "x".repeat(40 << 20) + "\n",
            "longer than",
        ),
    ];
    for (name, content, why) in cases {
        let path = write(name, &content);
        let outputs = dir.path().join("never.json");
        std::fs::write(&outputs, "[\"never\"]").unwrap();
        let mut command = glm_agent_command();
        command
            .args(["run", "--engine", &format!("replay:{}", outputs.display())])
            .args(["--tokenizer", &repo_file("evals/traces/tokenizer.json")])
            .args(["--resume", &path, "go on"])
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"));
        let run = glm_test_support::run_measured(&mut command);
        let err = text(&run.output.stderr);
        println!("{name}: {:?}, peak {} MB", run.elapsed, run.peak_rss >> 20);
        assert_eq!(run.output.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert!(
            run.elapsed < Duration::from_secs(10),
            "{name}: {:?}",
            run.elapsed
        );
        assert!(
            run.peak_rss < 300 << 20,
            "{name}: {} MB",
            run.peak_rss >> 20
        );
    }
    // An id that names no trace.
    let out = resume(
        dir.path(),
        serde_json::json!([]),
        &["--resume", "run-0-0"],
        "x",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("traces list"),
        "{}",
        text(&out.stderr)
    );
}

/// `chat --continue` goes on with the newest recorded conversation: its first message follows
/// the recorded ids, and later messages follow on in the same session.
#[test]
fn chat_continues_the_newest_conversation() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let first = replayed_run(dir.path(), serde_json::json!(["It is 42.<|user|>"]), "none")
        .arg("compute")
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let parent = traces(dir.path()).remove(0);
    let recorded = sequence(&events(&parent));
    let outputs = dir.path().join("chat.json");
    std::fs::write(&outputs, r#"["Still 42.<|user|>", "Yes.<|user|>"]"#).unwrap();
    let mut child = glm_agent_command()
        .args(["chat", "--engine", &format!("replay:{}", outputs.display())])
        .args(["--tokenizer", &repo_file("evals/traces/tokenizer.json")])
        .args(["--continue", "--json"])
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"still?\nsure?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = json_events(&out.stdout);
    assert_eq!(events[0]["parent"], parent.display().to_string());
    assert_eq!(sequence(&events[..1]), recorded);
    let models: Vec<&Value> = events.iter().filter(|e| e["event"] == "model").collect();
    assert_eq!(models.len(), 2);
    let mut want = vec![];
    want.extend("\nstill?".bytes().map(u64::from));
    want.push(ASSISTANT);
    assert_eq!(models[0]["prompt_delta"], serde_json::json!(want));
    // The second message extends the first turn's prompt and answer.
    let first_end = models[0]["prompt_tokens"].as_u64().unwrap()
        + models[0]["ids"].as_array().unwrap().len() as u64;
    assert!(models[1]["prompt_tokens"].as_u64().unwrap() > first_end);
}
