//! The agent loop driven by recorded model outputs: tool calls (custom, python, simple_browser),
//! malformed calls, unknown tools, repeated failures, budgets, interruption, traces.

use std::sync::Mutex;
use std::time::Duration;

use glm_agent::engine::{Engine, EventStream, GenerateRequest, Recorded, ReplayEngine, Sampling};
use glm_agent::trace::{Trace, TraceWriter};
use glm_agent::{Agent, Budget, End, Event, Settings};
use glm_prompts::render;
use glm_tools::builtins::{BuiltinOptions, builtin_registry};
use glm_tools::{CallError, Tool, ToolContext, ToolRegistry};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use glm_test_support::http::serve;

/// Adds two numbers.
pub(crate) struct Add;

#[derive(Deserialize, JsonSchema)]
pub(crate) struct AddArgs {
    /// First.
    a: f64,
    /// Second.
    b: f64,
}

impl Tool for Add {
    const NAME: &'static str = "add";
    type Args = AddArgs;
    type Output = String;

    fn description(&self) -> &str {
        "Add two numbers"
    }

    async fn call(&self, args: AddArgs, _ctx: &ToolContext) -> Result<String, CallError> {
        if args.a.is_nan() {
            return Err(CallError::Respond("a is NaN".into()));
        }
        Ok(format!("{}", args.a + args.b))
    }
}

/// Sleeps for a minute, or until cancelled.
struct Slow;

#[derive(Deserialize, JsonSchema)]
struct SlowArgs {}

impl Tool for Slow {
    const NAME: &'static str = "slow";
    type Args = SlowArgs;
    type Output = String;

    fn description(&self) -> &str {
        "Wait"
    }

    async fn call(&self, _: SlowArgs, ctx: &ToolContext) -> Result<String, CallError> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => Ok("done".into()),
            () = ctx.cancel.cancelled() => Err(CallError::Respond("cancelled".into())),
        }
    }
}

/// A replay engine that also keeps every prompt it was given.
pub(crate) struct Recording {
    inner: ReplayEngine,
    pub(crate) prompts: Mutex<Vec<Vec<u32>>>,
}

impl Recording {
    pub(crate) fn new(outputs: &[&str]) -> Self {
        Recording {
            inner: ReplayEngine::new(
                outputs
                    .iter()
                    .map(|t| Recorded {
                        ids: vec![],
                        text: (*t).to_owned(),
                    })
                    .collect(),
            ),
            prompts: Mutex::new(Vec::new()),
        }
    }
}

impl Engine for Recording {
    fn describe(&self) -> String {
        "recording".into()
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        self.prompts.lock().unwrap().push(request.prompt.clone());
        self.inner.generate(request)
    }
}

pub(crate) use glm_test_support::tiny_encoder;

fn settings() -> Settings {
    Settings {
        sampling: Sampling {
            greedy: true,
            ..Sampling::default()
        },
        ..Settings::default()
    }
}

async fn run_with(
    engine: &dyn Engine,
    tools: ToolRegistry,
    settings: Settings,
    task: &str,
) -> (glm_agent::Outcome, Vec<Event>) {
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::new(engine, tools, tiny_encoder(), settings, workdir.path());
    let mut events = Vec::new();
    let outcome = agent
        .run(task, &CancellationToken::new(), &mut |e: &Event| {
            events.push(e.clone())
        })
        .await;
    (outcome, events)
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Start { .. } => Some("start"),
            Event::Model { .. } => Some("model"),
            Event::Call { .. } => Some("call"),
            Event::Malformed { .. } => Some("malformed"),
            Event::Observation { .. } => Some("observation"),
            Event::Answer { .. } => Some("answer"),
            Event::Budget { .. } => Some("budget"),
            Event::Error { .. } => Some("error"),
            Event::End { .. } => Some("end"),
            Event::Tools { .. } => Some("tools"),
            Event::Approval { .. }
            | Event::Cut { .. }
            | Event::Compact { .. }
            | Event::Delta { .. } => None,
        })
        .collect()
}

/// A source that offers `grow`, and `late` once `grow` was called.
struct Growing {
    grown: std::sync::atomic::AtomicBool,
    told: std::sync::atomic::AtomicBool,
}

impl glm_tools::ToolSource for Growing {
    fn tools(&self) -> Vec<glm_tools::SourceTool> {
        let tool = |name: &str| {
            glm_tools::SourceTool::function(
                name,
                format!("The {name} tool"),
                json!({"type": "object", "properties": {}}),
            )
        };
        let mut tools = vec![tool("srv__grow")];
        if self.told.load(std::sync::atomic::Ordering::SeqCst) {
            tools.push(tool("srv__late"));
        }
        tools
    }

    fn call<'a>(
        &'a self,
        name: &'a str,
        _args: serde_json::Value,
        _ctx: &'a ToolContext,
    ) -> glm_tools::BoxFuture<'a, Result<glm_tools::ToolOutput, glm_tools::ToolError>> {
        if name == "srv__grow" {
            self.grown.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Box::pin(std::future::ready(Ok(format!("{name} ran").into())))
    }

    fn refresh(&self) -> glm_tools::BoxFuture<'_, bool> {
        use std::sync::atomic::Ordering::SeqCst;
        let changed = self.grown.load(SeqCst) && !self.told.swap(true, SeqCst);
        Box::pin(std::future::ready(changed))
    }
}

#[tokio::test]
async fn a_changed_tool_list_is_told_in_an_appended_system_turn() {
    let engine = Recording::new(&[
        "srv__grow\n{}<|observation|>",
        "srv__late\n{}<|observation|>",
        "Done.<|user|>",
    ]);
    let mut tools = ToolRegistry::new();
    tools.add_source(std::sync::Arc::new(Growing {
        grown: false.into(),
        told: false.into(),
    }));
    let (outcome, events) = run_with(&engine, tools, settings(), "Grow.").await;
    assert_eq!(outcome.end, End::Answered);
    assert_eq!(
        kinds(&events),
        [
            "start",
            "model",
            "call",
            "observation",
            "tools",
            "model",
            "call",
            "observation",
            "model",
            "answer",
            "end"
        ]
    );
    let prompts = engine.prompts.lock().unwrap().clone();
    // Still append-only, and the new turn is a system turn declaring both tools.
    assert_eq!(&prompts[1][..prompts[0].len()], prompts[0].as_slice());
    let encoder = tiny_encoder();
    let added = encoder.decode(&prompts[1][prompts[0].len()..]).unwrap();
    let system = added.find("<|system|>").expect("a system turn");
    assert!(added[system..].contains("## srv__late"), "{added}");
    assert!(added.ends_with("<|assistant|>"), "{added}");
    assert!(events.iter().any(
        |e| matches!(e, Event::Observation { text, error: false, .. } if text == "srv__late ran")
    ));
}

#[tokio::test]
async fn a_custom_tool_call_then_an_answer_with_append_only_prompts() {
    let engine = Recording::new(&[
        "add\n{\"a\": 2, \"b\": 3.5}<|observation|>",
        "The sum is 5.5.<|user|>",
    ]);
    let tools = ToolRegistry::new().with(Add);
    let (outcome, events) = run_with(&engine, tools, settings(), "What is 2 + 3.5?").await;
    assert_eq!(outcome.end, End::Answered);
    assert_eq!(outcome.answer.as_deref(), Some("The sum is 5.5."));
    assert_eq!(
        kinds(&events),
        [
            "start",
            "model",
            "call",
            "observation",
            "model",
            "answer",
            "end"
        ]
    );
    assert!(events.iter().any(
        |e| matches!(e, Event::Call { name, arguments, .. } if name == "add" && *arguments == json!({"a": 2, "b": 3.5}))
    ));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Observation { text, error: false, .. } if text == "5.5"))
    );
    // Token-level append: prompt 2 = prompt 1 + the generated ids + the new turn.
    let prompts = engine.prompts.lock().unwrap().clone();
    let generated: Vec<Vec<u32>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Model { ids, .. } => Some(ids.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(prompts.len(), 2);
    let (p1, p2) = (&prompts[0], &prompts[1]);
    assert_eq!(&p2[..p1.len()], p1.as_slice());
    assert_eq!(
        &p2[p1.len()..p1.len() + generated[0].len()],
        generated[0].as_slice()
    );
    // And the ids say exactly what the official template renders for the conversation.
    let encoder = tiny_encoder();
    let text = encoder.decode(p2).unwrap();
    let tools = ToolRegistry::new().with(Add);
    let messages = vec![
        glm_prompts::Message::system_with_tools(tools.specs(), ""),
        glm_prompts::Message::new(glm_prompts::Role::User, "What is 2 + 3.5?"),
        glm_prompts::Message {
            role: glm_prompts::Role::Assistant,
            content: "{\"a\": 2, \"b\": 3.5}".into(),
            metadata: Some("add".into()),
            tools: None,
        },
        glm_prompts::Message::new(glm_prompts::Role::Observation, "5.5"),
    ];
    assert_eq!(text, render(&messages, true));
}

#[tokio::test]
async fn malformed_calls_and_unknown_tools_become_observations() {
    let engine = Recording::new(&[
        "add\n{\"a\": 2,<|observation|>",
        "multiply\n{\"a\": 2, \"b\": 3}<|observation|>",
        "add\n{\"a\": 2, \"b\": 3}<|observation|>",
        "5<|user|>",
    ]);
    let tools = ToolRegistry::new().with(Add);
    let (outcome, events) = run_with(&engine, tools, settings(), "2+3?").await;
    assert_eq!(outcome.end, End::Answered);
    let observations: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observation { text, error, .. } => Some((text.clone(), *error)),
            _ => None,
        })
        .collect();
    assert_eq!(observations.len(), 3);
    assert!(observations[0].1 && observations[0].0.contains("bad arguments for `add`"));
    assert!(
        observations[1].1 && observations[1].0.contains("there is no tool `multiply`"),
        "{:?}",
        observations[1]
    );
    assert!(observations[1].0.contains("add"), "lists the tools");
    assert_eq!(observations[2], ("5".to_owned(), false));
}

#[tokio::test]
async fn the_same_failing_call_three_times_stops_the_run() {
    let bad = "add\n{\"a\": oops}<|observation|>";
    let engine = Recording::new(&[bad, bad, bad, "never<|user|>"]);
    let (outcome, events) = run_with(&engine, ToolRegistry::new().with(Add), settings(), "t").await;
    assert!(
        matches!(&outcome.end, End::Repeated(m) if m.contains("3 times")),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.end.exit_status().code(), 3);
    assert_eq!(outcome.steps, 3);
    assert!(matches!(events.last(), Some(Event::End { .. })));
}

#[tokio::test]
async fn a_step_budget_gives_the_model_one_last_turn() {
    let call = "add\n{\"a\": 1, \"b\": 1}<|observation|>";
    let engine = Recording::new(&[call, call, "It is 2, as far as I got.<|user|>"]);
    let s = Settings {
        max_steps: 2,
        ..settings()
    };
    let (outcome, events) = run_with(&engine, ToolRegistry::new().with(Add), s, "t").await;
    assert_eq!(outcome.end, End::Budget(Budget::Steps));
    assert_eq!(outcome.answer.as_deref(), Some("It is 2, as far as I got."));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Budget {
            budget: Budget::Steps,
            ..
        }
    )));
    // The last prompt tells the model why.
    let prompts = engine.prompts.lock().unwrap().clone();
    let last = tiny_encoder().decode(prompts.last().unwrap()).unwrap();
    assert!(last.contains("The step limit (2) is reached."), "{last}");
    // Past the recording: the replay engine says so and the run ends as an engine failure.
    let engine = Recording::new(&[call]);
    let (outcome, _) = run_with(&engine, ToolRegistry::new().with(Add), settings(), "t").await;
    assert!(matches!(&outcome.end, End::EngineFailed(m) if m.contains("past what was recorded")));
    assert_eq!(outcome.end.exit_status().code(), 4);
}

#[tokio::test]
async fn a_token_budget_ends_the_run() {
    let call = "add\n{\"a\": 1, \"b\": 1}<|observation|>";
    let engine = Recording::new(&[call, "ok<|user|>"]);
    let s = Settings {
        max_generated_tokens: 10,
        ..settings()
    };
    let (outcome, _) = run_with(&engine, ToolRegistry::new().with(Add), s, "t").await;
    assert_eq!(outcome.end, End::Budget(Budget::Tokens));
    assert_eq!(outcome.answer.as_deref(), Some("ok"));
}

/// An engine whose answer never ends: a token every 10 ms, for ever.
struct Endless;

impl Engine for Endless {
    fn describe(&self) -> String {
        "endless".into()
    }

    fn generate(&self, _: GenerateRequest) -> EventStream<'_> {
        Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let delta = glm_agent::engine::EngineEvent::Delta {
                ids: vec![b'x' as u32],
                text: "x".into(),
            };
            Some((Ok(delta), ()))
        }))
    }
}

#[tokio::test]
async fn the_time_limit_stops_a_generation_that_never_ends() {
    let s = Settings {
        time_limit_s: Some(1),
        ..settings()
    };
    let started = std::time::Instant::now();
    let (outcome, _) = run_with(&Endless, ToolRegistry::new(), s, "t").await;
    assert_eq!(outcome.end, End::Budget(Budget::Time));
    // The limit, then as long again for the last turn.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn interruption_stops_a_running_tool_promptly() {
    let engine = Recording::new(&["slow\n{}<|observation|>", "x<|user|>"]);
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::new(
        &engine,
        ToolRegistry::new().with(Slow),
        tiny_encoder(),
        settings(),
        workdir.path(),
    );
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let started = std::time::Instant::now();
    let outcome = agent.run("wait", &cancel, &mut |_: &Event| {}).await;
    assert_eq!(outcome.end, End::Interrupted);
    assert_eq!(outcome.end.exit_status().code(), 130);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn python_and_the_browser_through_the_loop_and_a_trace_that_replays() {
    let (base, _) = serve(|req, _| {
        match req.path.as_str() {
        "/" => (
            200,
            vec![("Content-Type", "text/html".into())],
            "<html><head><title>Fixture</title></head><body><p>The answer is 1729.</p></body></html>".into(),
        ),
        _ => (404, vec![], String::new()),
    }
    });
    let outputs = [
        "python\n```python\nprint(6 * 7)\n```<|observation|>".to_owned(),
        format!("simple_browser\nopen_url(\"{base}/\")<|observation|>"),
        "42 and 1729.<|user|>".to_owned(),
    ];
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let engine = Recording::new(&refs);
    let mut options = BuiltinOptions::new(glm_test_support::cache_dir());
    options.allow_hosts = vec!["127.0.0.1".into()];
    options.offline = true;
    let tools = builtin_registry(&options, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut trace = TraceWriter::create(dir.path(), "run").unwrap();
    let agent = Agent::new(&engine, tools, tiny_encoder(), settings(), dir.path());
    let mut events = Vec::new();
    let outcome = agent
        .run("numbers", &CancellationToken::new(), &mut |e: &Event| {
            trace.record(e);
            events.push(e.clone());
        })
        .await;
    assert_eq!(outcome.end, End::Answered, "{events:#?}");
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observation { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(texts[0].contains("42"), "{texts:?}");
    assert!(texts[1].contains("The answer is 1729."), "{texts:?}");
    // The trace reads back, and drives the same run again.
    let read = Trace::read(trace.path()).unwrap();
    assert!(!read.truncated);
    assert_eq!(read.task(), Some("numbers"));
    assert_eq!(read.outputs().len(), 3);
    let replay = read.replay_engine();
    let tools = builtin_registry(&options, &[]).unwrap();
    let agent = Agent::new(&replay, tools, tiny_encoder(), settings(), dir.path());
    let mut again = Vec::new();
    let outcome = agent
        .run("numbers", &CancellationToken::new(), &mut |e: &Event| {
            again.push(e.clone())
        })
        .await;
    assert_eq!(outcome.answer.as_deref(), Some("42 and 1729."));
    let hashes = |evs: &[Event]| -> Vec<String> {
        evs.iter()
            .filter_map(|e| match e {
                Event::Model { prefix_hash, .. } => Some(prefix_hash.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(hashes(&events), hashes(&again));
}

#[test]
fn a_corrupt_trace_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    std::fs::write(
        &path,
        "{\"v\":1,\"event\":\"error\",\"message\":\"x\"}\n{oops}\n",
    )
    .unwrap();
    let err = Trace::read(&path).unwrap_err().to_string();
    assert!(err.contains(":2: not JSON"), "{err}");
    std::fs::write(&path, "{\"v\":9,\"event\":\"error\",\"message\":\"x\"}\n").unwrap();
    let err = Trace::read(&path).unwrap_err().to_string();
    assert!(err.contains("version"), "{err}");
    // A cut last line (a killed run) is not an error.
    std::fs::write(
        &path,
        "{\"v\":1,\"event\":\"error\",\"message\":\"x\"}\n{\"v\":1,\"ev",
    )
    .unwrap();
    let t = Trace::read(&path).unwrap();
    assert!(t.truncated);
    assert_eq!(t.events.len(), 1);
}

#[test]
fn glm_agent_run_with_a_replay_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tokenizer) = replay_files(
        dir.path(),
        json!([
            "python\n```python\nprint(2**100)\n```<|observation|>",
            "2**100 = 1267650600228229401496703205376<|user|>"
        ]),
    );
    let traces = dir.path().join("traces");
    let run = |engine: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--engine",
            engine,
            "--tokenizer",
            &tokenizer,
            "--tools",
            "python",
            "--offline",
            "--trace-dir",
            traces.to_str().unwrap(),
        ];
        args.extend(extra);
        args.push("What is 2**100?");
        glm_test_support::glm_agent_command()
            .args(&args)
            .env("GLM_AGENT_CONFIG", dir.path().join("none.toml"))
            .env("GLM_AGENT_CACHE", glm_test_support::cache_dir())
            .output()
            .unwrap()
    };
    let out = run(&engine, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2**100 = 1267650600228229401496703205376\n"
    );
    assert!(stderr.contains("→ python: print(2**100)"), "{stderr}");
    assert!(
        stderr.contains("← 1267650600228229401496703205376"),
        "{stderr}"
    );
    let json_out = run(&engine, &["--json", "--no-trace"]);
    assert!(json_out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json_out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["event"], "end");
    assert_eq!(lines.last().unwrap()["end"]["kind"], "answered");
    // The trace of the first run drives a second one.
    let trace = std::fs::read_dir(&traces)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    #[cfg(unix)]
    {
        // Traces are the user's alone: 0600 files in a 0700 folder.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&trace), 0o600);
        assert_eq!(mode(&traces), 0o700);
    }
    let again = run(&format!("replay:{}", trace.display()), &["--no-trace"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(again.stdout, out.stdout);
    // An unknown tool is bad usage: exit 2, naming it.
    let bad = glm_test_support::glm_agent_command()
        .args(["run", "--tools", "nosuch", "--no-trace", "x"])
        .env("GLM_AGENT_CONFIG", dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nosuch"));
}

fn replay_files(dir: &std::path::Path, outputs: serde_json::Value) -> (String, String) {
    let path = dir.join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
    (
        format!("replay:{}", path.display()),
        tokenizer.display().to_string(),
    )
}

#[test]
fn glm_agent_chat_keeps_history_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tokenizer) = replay_files(
        dir.path(),
        json!([
            "Hello! How can I help?<|user|>",
            "You said hi before.<|user|>",
            "Fresh start.<|user|>"
        ]),
    );
    let traces = dir.path().join("traces");
    let out = glm_test_support::glm_agent_command()
        .args([
            "chat",
            "--engine",
            &engine,
            "--tokenizer",
            &tokenizer,
            "--tools",
            "none",
            "--trace-dir",
            traces.to_str().unwrap(),
        ])
        .env("GLM_AGENT_CONFIG", dir.path().join("none.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"hi\nwhat did I say?\n/reset\nagain\n/exit\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello! How can I help?\nYou said hi before.\nFresh start.\n"
    );
    // The second turn's prompt held the first exchange; the one after /reset did not.
    let trace = std::fs::read_dir(&traces)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let trace = Trace::read(&trace).unwrap();
    let prompts: Vec<usize> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Model { prompt_tokens, .. } => Some(*prompt_tokens),
            _ => None,
        })
        .collect();
    assert_eq!(prompts.len(), 3);
    assert!(prompts[1] > prompts[0] + 20, "{prompts:?}");
    assert!(prompts[2] < prompts[1], "{prompts:?}");
}

/// Starts `glm-agent run` whose recorded model opens a page that never answers, and waits
/// until its trace has recorded the call: returns the process (the caller waits for it) and
/// the trace.
#[allow(clippy::zombie_processes)]
fn run_stuck_in_a_tool_call(dir: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
    let (base, _) = serve(|_, _| {
        std::thread::sleep(Duration::from_secs(30));
        (200, vec![], String::new())
    });
    let (engine, tokenizer) = replay_files(
        dir,
        json!([
            format!("simple_browser\nopen_url(\"{base}/\")<|observation|>"),
            "x<|user|>"
        ]),
    );
    let traces = dir.join("traces");
    let mut child = glm_test_support::glm_agent_command()
        .args([
            "run",
            "--engine",
            &engine,
            "--tokenizer",
            &tokenizer,
            "--tools",
            "simple_browser",
            "--allow-host",
            "127.0.0.1",
            "--trace-dir",
            traces.to_str().unwrap(),
            "task",
        ])
        .env("GLM_AGENT_CONFIG", dir.join("none.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(&traces)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        if let Some(p) = found
            && std::fs::read_to_string(&p)
                .unwrap_or_default()
                .contains("\"event\":\"call\"")
        {
            return (child, p);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no trace appeared");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run killed with SIGKILL while a tool is busy leaves a trace whose lines all parse.
#[test]
fn a_killed_run_leaves_a_readable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, trace_path) = run_stuck_in_a_tool_call(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let trace = Trace::read(&trace_path).unwrap();
    assert_eq!(kinds(&trace.events), ["start", "model", "call"]);
}

/// Ctrl-C (SIGINT) during a tool call: the run stops, the trace ends with the interruption,
/// and the exit code is 130.
#[test]
fn sigint_stops_a_run_and_keeps_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (child, trace_path) = run_stuck_in_a_tool_call(dir.path());
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let trace = Trace::read(&trace_path).unwrap();
    assert!(matches!(
        trace.events.last(),
        Some(Event::End {
            end: End::Interrupted,
            ..
        })
    ));
}

#[test]
fn config_show_says_where_each_setting_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "max_steps = 7\ntools = [\"python\"]\n").unwrap();
    let out = glm_test_support::glm_agent_command()
        .args(["config", "show", "--json"])
        .env("GLM_AGENT_CONFIG", &file)
        .env("GLM_AGENT_MODEL", "/models/x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["max_steps"]["value"], 7);
    assert!(
        v["max_steps"]["source"]
            .as_str()
            .unwrap()
            .starts_with("file ")
    );
    assert_eq!(v["model"]["value"], "/models/x");
    assert_eq!(v["model"]["source"], "env GLM_AGENT_MODEL");
    assert_eq!(v["isq"]["source"], "default");
    std::fs::write(&file, "max_stepz = 7\n").unwrap();
    let bad = glm_test_support::glm_agent_command()
        .args(["config", "show"])
        .env("GLM_AGENT_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown setting `max_stepz`"));
}

/// A cell stopped at its deadline costs only itself: the loop's tool timeout equal to the cell
/// deadline used to fire first and drop the call with the notebook taken out of its slot, so
/// the next cell found `x` undefined. Also: the run's files are in a private folder that is
/// removed at the end unless kept.
#[test]
fn a_cell_stopped_at_its_deadline_keeps_the_notebook() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, tokenizer) = replay_files(
        dir.path(),
        json!([
            "python\n```python\nx = 41\nopen('/mnt/data/kept.txt', 'w').write('k')\n```<|observation|>",
            "python\n```python\nwhile True: pass\n```<|observation|>",
            "python\n```python\nprint(x + 1)\n```<|observation|>",
            "Done.<|user|>"
        ]),
    );
    let work = dir.path().join("work");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--engine",
            &engine,
            "--tokenizer",
            &tokenizer,
            "--tools",
            "python",
            "--offline",
            "--no-trace",
            "--json",
            "--cell-timeout",
            "2",
            "--tool-timeout",
            "2",
        ];
        args.extend(extra);
        args.push("Count.");
        glm_test_support::glm_agent_command()
            .args(&args)
            .env("GLM_AGENT_CONFIG", dir.path().join("none.toml"))
            .env("GLM_AGENT_CACHE", glm_test_support::cache_dir())
            .env("TMPDIR", dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let observations: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "observation")
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(observations.len(), 3, "{stdout}");
    assert!(
        observations[1].contains("timed out after 2 s"),
        "{}",
        observations[1]
    );
    assert_eq!(observations[2].trim(), "42", "{stdout}");
    // Nothing of the run is left in the temporary folder.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("glm-agent-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A folder given by flag is kept, with what the cells wrote.
    let out = run(&["--work-dir", work.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(work.join("data").join("kept.txt").exists());
}

/// An approver a library user writes (a GUI, a policy service): it answers from a list and
/// counts the questions.
struct Scripted {
    answers: Mutex<Vec<glm_agent::approval::Answer>>,
    asked: Mutex<Vec<String>>,
}

impl glm_agent::approval::Approver for Scripted {
    fn ask<'r>(
        &'r self,
        request: glm_agent::approval::Request<'r>,
    ) -> glm_agent::approval::BoxFuture<'r, glm_agent::approval::Answer> {
        self.asked.lock().unwrap().push(request.tool.to_owned());
        let answer = self.answers.lock().unwrap().remove(0);
        Box::pin(std::future::ready(answer))
    }
}

/// Under `ask`, a tool that is not read-only is asked about: a refusal's reason reaches the
/// model, "always" answers later calls of that tool in the session, and each decision is an
/// event; without an approver such a call is refused and the run goes on.
#[tokio::test]
async fn an_approver_decides_the_calls_the_policy_leaves_open() {
    use glm_agent::approval::{Answer, Mode, Policy};
    let call = r#"add
{"a": 1, "b": 2}<|observation|>"#;
    let outputs = [call, call, call, "Three.<|user|>"];
    let engine = Recording::new(&outputs);
    let settings = Settings {
        approval: Policy {
            mode: Mode::Ask,
            ..Policy::default()
        },
        ..settings()
    };
    let approver = std::sync::Arc::new(Scripted {
        answers: Mutex::new(vec![Answer::No(Some("use python".into())), Answer::Always]),
        asked: Mutex::new(Vec::new()),
    });
    let workdir = tempfile::tempdir().unwrap();
    let agent = Agent::new(
        &engine,
        ToolRegistry::new().with(Add),
        tiny_encoder(),
        settings.clone(),
        workdir.path(),
    )
    .with_approver(approver.clone());
    let mut events = Vec::new();
    let outcome = agent
        .run("add", &CancellationToken::new(), &mut |e: &Event| {
            events.push(e.clone())
        })
        .await;
    assert_eq!(outcome.end, End::Answered);
    // Asked twice: the third call ran on the "always".
    assert_eq!(*approver.asked.lock().unwrap(), ["add", "add"]);
    let decisions: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| matches!(e, Event::Approval { .. }))
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let pairs: Vec<(&str, &str)> = decisions
        .iter()
        .map(|d| (d["verdict"].as_str().unwrap(), d["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        [("refuse", "person"), ("run", "person"), ("run", "session")]
    );
    let observations: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observation { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        observations[0].contains("the user declined it: use python"),
        "{observations:?}"
    );
    assert_eq!(observations[1..], ["3", "3"]);

    // No approver: refused, and the run goes on to its answer.
    let engine = Recording::new(&[call, "Could not.<|user|>"]);
    let (outcome, events) = run_with(&engine, ToolRegistry::new().with(Add), settings, "add").await;
    assert_eq!(outcome.end, End::Answered);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Observation { text, error: true, .. } if text.contains("cannot be asked")
    )));
}
