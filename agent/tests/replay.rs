//! The recorded-trace corpus under `evals/traces/` replays with no divergence, and changes that
//! alter what the model would see are reported where they happen.
//!
//! `GLM_AGENT_UPDATE_CORPUS=1 cargo test --release -p glm-agent corpus` records the corpus again.

use std::path::{Path, PathBuf};

use glm_agent::engine::Sampling;
use glm_agent::replay::replay;
use glm_agent::trace::{Trace, TraceWriter};
use glm_agent::{Agent, Event, Settings};
use glm_tools::ToolRegistry;
use glm_tools::builtins::{BuiltinOptions, builtin_registry};
use tokio_util::sync::CancellationToken;

use crate::agent_loop::{Add, Recording, tiny_encoder};

fn corpus_dir() -> PathBuf {
    PathBuf::from(glm_test_support::repo_file("evals/traces"))
}

fn settings(max_steps: usize) -> Settings {
    Settings {
        max_steps,
        sampling: Sampling {
            greedy: true,
            ..Sampling::default()
        },
        ..Settings::default()
    }
}

/// The corpus: name, task, whether the tools are the built-ins (else the `add` tool), max steps,
/// the model's outputs.
const CASES: &[(&str, &str, bool, usize, &[&str])] = &[
    (
        "function_call",
        "What is 2 + 3.5?",
        false,
        20,
        &[
            "add\n{\"a\": 2, \"b\": 3.5}<|observation|>",
            "2 + 3.5 = 5.5.<|user|>",
        ],
    ),
    (
        "malformed_then_unknown_then_answer",
        "Add 1 and 2.",
        false,
        20,
        &[
            "add\n{\"a\": 1,<|observation|>",
            "plus\n{\"a\": 1, \"b\": 2}<|observation|>",
            "add\n{\"a\": 1, \"b\": 2}<|observation|>",
            "1 + 2 = 3<|user|>",
        ],
    ),
    (
        "step_budget",
        "Keep adding.",
        false,
        2,
        &[
            "add\n{\"a\": 1, \"b\": 1}<|observation|>",
            "add\n{\"a\": 2, \"b\": 1}<|observation|>",
            "I got to 3.<|user|>",
        ],
    ),
    (
        "python_call",
        "What is 2**100?",
        true,
        20,
        &[
            "python\n```python\nprint(2**100)\n```<|observation|>",
            "2**100 = 1267650600228229401496703205376<|user|>",
        ],
    ),
];

fn builtins() -> ToolRegistry {
    let mut options = BuiltinOptions::new(glm_test_support::cache_dir());
    options.offline = true;
    builtin_registry(&options, &["python"]).unwrap()
}

async fn record(dir: &Path, case: &(&str, &str, bool, usize, &[&str])) {
    let (name, task, uses_builtins, max_steps, outputs) = *case;
    let engine = Recording::new(outputs);
    let tools = if uses_builtins {
        builtins()
    } else {
        ToolRegistry::new().with(Add)
    };
    let path = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&path);
    let mut trace = TraceWriter::create(dir, name).unwrap();
    let work = tempfile::tempdir().unwrap();
    let agent = Agent::new(
        &engine,
        tools,
        tiny_encoder(),
        settings(max_steps),
        work.path(),
    );
    agent
        .run(task, &CancellationToken::new(), &mut |e: &Event| {
            trace.record(e)
        })
        .await;
}

fn traces() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_recorded_corpus_replays_without_divergence() {
    let dir = corpus_dir();
    if std::env::var_os("GLM_AGENT_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for case in CASES {
            record(&dir, case).await;
        }
        std::fs::write(
            dir.join("tokenizer.json"),
            glm_prompts::tiny::tiny_tokenizer_json(),
        )
        .unwrap();
    }
    let files = traces();
    assert_eq!(files.len(), CASES.len(), "{files:?}");
    for file in files {
        let trace = Trace::read(&file).unwrap();
        let work = tempfile::tempdir().unwrap();
        let report = replay(&trace, tiny_encoder(), None, work.path())
            .await
            .unwrap();
        assert_eq!(report.divergences, vec![], "{}", file.display());
        assert!(report.recorded_steps >= 2);
        assert_eq!(report.recorded_steps, report.replayed_steps);
    }
}

#[tokio::test]
async fn a_live_replay_runs_python_again_and_matches() {
    let trace = Trace::read(&corpus_dir().join("python_call.jsonl")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let report = replay(&trace, tiny_encoder(), Some(builtins()), work.path())
        .await
        .unwrap();
    assert_eq!(report.divergences, vec![]);
    // A recorded observation that today's python would not produce is reported.
    let mut changed = trace.clone();
    for e in &mut changed.events {
        if let Event::Observation { text, .. } = e {
            *text = text.replace(
                "1267650600228229401496703205376",
                "1267650600228229401496703205377",
            );
        }
    }
    let report = replay(&changed, tiny_encoder(), Some(builtins()), work.path())
        .await
        .unwrap();
    let first = &report.divergences[0];
    assert_eq!(first.step, 1);
    assert!(
        first.what.contains("`python` returned something else"),
        "{first:?}"
    );
    assert!(
        first.diff.contains("1267650600228229401496703205377"),
        "{first:?}"
    );
}

#[tokio::test]
async fn one_changed_byte_of_the_system_prompt_is_a_divergence_at_step_1() {
    let mut trace = Trace::read(&corpus_dir().join("function_call.jsonl")).unwrap();
    for e in &mut trace.events {
        if let Event::Start { tools, .. } = e {
            let text = tools[0]
                .to_string()
                .replacen("Add two numbers", "Add two numberz", 1);
            tools[0] = serde_json::from_str(&text).unwrap();
        }
    }
    let work = tempfile::tempdir().unwrap();
    let report = replay(&trace, tiny_encoder(), None, work.path())
        .await
        .unwrap();
    let first = report.divergences.first().expect("a divergence");
    assert_eq!(first.step, 1, "{first:?}");
    assert!(first.what.contains("the prompt differs"), "{first:?}");
    assert!(
        first.diff.contains("Add two number\" | \"s"),
        "{}",
        first.diff
    );
    assert!(
        first.diff.contains("Add two number\" | \"z"),
        "{}",
        first.diff
    );
}

#[test]
fn glm_agent_replay_reports_and_exits() {
    let dir = corpus_dir();
    let tokenizer = dir.join("tokenizer.json");
    let ok = glm_test_support::glm_agent(
        &[
            "replay",
            dir.join("malformed_then_unknown_then_answer.jsonl")
                .to_str()
                .unwrap(),
            "--tokenizer",
            tokenizer.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "no divergence: 4 model turns replayed, every prompt identical\n"
    );
    // A trace whose second recorded prompt does not match what the loop builds.
    let work = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("function_call.jsonl")).unwrap();
    let changed = text.replacen("\"text\":\"5.5\"", "\"text\":\"5.50\"", 1);
    assert_ne!(changed, text);
    let path = work.path().join("changed.jsonl");
    std::fs::write(&path, changed).unwrap();
    let bad = glm_test_support::glm_agent(
        &[
            "replay",
            path.to_str().unwrap(),
            "--tokenizer",
            tokenizer.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(bad.status.code(), Some(5));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(
        out.starts_with("diverged at step 2: the prompt differs"),
        "{out}"
    );
    let missing = glm_test_support::glm_agent(&["replay", path.to_str().unwrap()], "");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_trace_finds_its_models_tokenizer_only_while_it_is_the_same_file() {
    use glm_agent::trace::TokenizerLookup;
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
    let sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(std::fs::read(&tokenizer).unwrap()))
    };
    let trace = |model: serde_json::Value| Trace {
        events: vec![Event::Start {
            task: "t".into(),
            engine: "embedded".into(),
            model,
            tools: Vec::new(),
            settings: serde_json::Value::Null,
            documents: Vec::new(),
            parent: None,
            resumed: Vec::new(),
        }],
        truncated: false,
    };
    let recorded = trace(serde_json::json!({
        "folder": dir.path().display().to_string(),
        "tokenizer_sha256": sha,
    }));
    assert_eq!(recorded.recorded_tokenizer().unwrap(), tokenizer);
    std::fs::write(&tokenizer, "{}").unwrap();
    assert!(matches!(
        recorded.recorded_tokenizer(),
        Err(TokenizerLookup::Changed { .. })
    ));
    std::fs::remove_file(&tokenizer).unwrap();
    let missing = recorded.recorded_tokenizer().unwrap_err();
    assert!(matches!(missing, TokenizerLookup::Missing { .. }));
    assert!(
        missing.to_string().contains("no longer exists"),
        "{missing}"
    );
    assert_eq!(
        trace(serde_json::Value::Null).recorded_tokenizer(),
        Err(TokenizerLookup::NotRecorded)
    );
}

/// A hostile trace: one model event whose prompt delta is a million ids, then 10,000 empty model
/// events (5 MB). Replay keeps one copy of the ids, not one per event: under 300 MB and 10 s.
/// A line longer than any event glm-agent writes is refused, not read into memory.
#[test]
fn replay_of_a_hostile_trace_is_linear_and_lines_are_capped() {
    let dir = corpus_dir();
    let tokenizer = dir.join("tokenizer.json");
    let text = std::fs::read_to_string(dir.join("function_call.jsonl")).unwrap();
    let mut lines = text.lines();
    let start = lines.next().unwrap().to_owned();
    let mut model: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    model["prompt_delta"] = serde_json::json!(vec![65u32; 1_000_000]);
    model["ids"] = serde_json::json!([]);
    model["text"] = serde_json::json!("");
    let mut trace = format!("{start}\n{model}\n");
    model["prompt_delta"] = serde_json::json!([]);
    let empty = format!("{model}\n");
    for _ in 0..10_000 {
        trace.push_str(&empty);
    }
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("hostile.jsonl");
    std::fs::write(&path, &trace).unwrap();
    let measured = glm_test_support::run_measured(glm_test_support::glm_agent_command().args([
        "replay",
        path.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ]));
    println!(
        "replay of a {:.1} MB hostile trace: {:.2} s, peak {:.0} MB",
        trace.len() as f64 / 1e6,
        measured.elapsed.as_secs_f64(),
        measured.peak_rss as f64 / 1e6
    );
    let out = String::from_utf8_lossy(&measured.output.stdout);
    assert_eq!(
        measured.output.status.code(),
        Some(5),
        "{out}{}",
        String::from_utf8_lossy(&measured.output.stderr)
    );
    assert!(out.starts_with("diverged at step 1"), "{out}");
    assert!(measured.elapsed.as_secs_f64() < 10.0);
    assert!(measured.peak_rss < 300_000_000, "{}", measured.peak_rss);

    // One line of 40 MiB.
    let long = work.path().join("long.jsonl");
    let mut huge = format!("{start}\n");
    huge.push_str(&"x".repeat(40 << 20));
    huge.push('\n');
    std::fs::write(&long, huge).unwrap();
    let refused = glm_test_support::run_measured(glm_test_support::glm_agent_command().args([
        "replay",
        long.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ]));
    let err = String::from_utf8_lossy(&refused.output.stderr);
    assert_eq!(refused.output.status.code(), Some(2), "{err}");
    assert!(err.contains("longer than 32 MiB"), "{err}");
    assert!(refused.peak_rss < 200_000_000, "{}", refused.peak_rss);
}
