//! `glm-agent run`, `glm-agent chat` and `glm-agent config show`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use glm_agent::agent::trace::TraceWriter;
use glm_agent::agent::{Agent, End, Event, Outcome};
use glm_agent::builtins::{BuiltinOptions, builtin_registry};
use glm_agent::config::{Layered, RunConfig, config_path};
use glm_agent::exit::ExitStatus;
use glm_agent::model::hub;
use glm_prompts::{Encoder, SpecialToken};
use glm_tools::browser::SearchChoice;
use tokio_util::sync::CancellationToken;

use super::engine_opts::{EngineOptions, Opened};
use super::setup::{CommonOptions, show_progress};
use super::{CmdResult, Failure, write_stdout};

/// Options shared by `run` and `chat`. Unset flags fall back to the environment, then the config
/// file, then the defaults (`glm-agent config show` prints the result).
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// The engine: embedded, openai:URL or replay:TRACE [config: engine].
    #[arg(long, value_name = "ENGINE")]
    engine: Option<String>,
    /// A local model folder or a Hugging Face repo id [config: model].
    #[arg(long, value_name = "PATH_OR_ID")]
    model: Option<String>,
    /// Quantisation at load: auto, none, q4k, q8_0, ... [config: isq].
    #[arg(long, value_name = "Q")]
    isq: Option<String>,
    /// Tools offered to the model, comma separated; `none` for none [config: tools].
    #[arg(long, value_name = "LIST")]
    tools: Option<String>,
    /// The most model turns [config: max_steps, default 20].
    #[arg(long, value_name = "N")]
    max_steps: Option<usize>,
    /// The most generated tokens over the run [config: max_generated_tokens].
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Wall-clock limit in seconds [config: time_limit_s].
    #[arg(long, value_name = "S")]
    time_limit: Option<u64>,
    /// Sampling temperature; 0 for greedy [config: temperature].
    #[arg(long, value_name = "T")]
    temperature: Option<f32>,
    /// Seed for reproducible sampling [config: seed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// A private host the browser may reach (repeatable) [config: allow_hosts].
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_host: Vec<String>,
    /// Where traces go [config: trace_dir].
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
    /// Do not write a trace.
    #[arg(long)]
    no_trace: bool,
    /// The model's tokenizer.json, for the openai and replay engines.
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Print events as JSON lines on stdout instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonOptions,
}

/// Options of `run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 answered, 1 a tool's runtime failed, 2 bad usage or \
input, 3 a budget (steps, tokens, time, or the same failing call repeated) ended the run, 4 the \
engine failed, 130 interrupted.\n\n\
Examples:\n  glm-agent run \"What is 2**100? Use python.\"\n  \
glm-agent run --model ~/models/glm-4-9b-chat-1m-hf \"Summarise https://example.com\"\n  \
glm-agent run --engine openai:http://gpu-box:8000 --tokenizer tokenizer.json \"...\"\n  \
glm-agent run --engine replay:~/.local/state/glm-agent/traces/run.jsonl --json \"...\""
)]
pub struct RunArgs {
    /// The task.
    task: String,
    #[command(flatten)]
    options: RunOptions,
}

/// Options of `chat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Type a message and press Enter. /reset starts a new conversation, \
/exit (or end of input) leaves.\n\nExample:\n  glm-agent chat --tools python"
)]
pub struct ChatArgs {
    #[command(flatten)]
    options: RunOptions,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and where each came from.
    #[command(
        after_help = "Settings come from the config file ($GLM_AGENT_CONFIG, else \
$XDG_CONFIG_HOME/glm-agent/config.toml, else ~/.config/glm-agent/config.toml), then environment \
variables (GLM_AGENT_MODEL, GLM_AGENT_MAX_STEPS, ...), then flags.\n\n\
Examples:\n  glm-agent config show\n  GLM_AGENT_MAX_STEPS=5 glm-agent config show --json"
    )]
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn layered(options: Option<&RunOptions>) -> Result<(Layered, RunConfig), Failure> {
    let path = config_path(|k| std::env::var(k).ok());
    let mut layered = Layered::load(&path, |k| std::env::var(k).ok())
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    if let Some(o) = options {
        if let Some(v) = &o.engine {
            layered.flag("engine", v.clone());
        }
        if let Some(v) = &o.model {
            layered.flag("model", v.clone());
        }
        if let Some(v) = &o.isq {
            layered.flag("isq", v.clone());
        }
        if let Some(v) = &o.tools {
            let list: Vec<String> = if v == "none" {
                Vec::new()
            } else {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            layered.flag("tools", list);
        }
        if let Some(v) = o.max_steps {
            layered.flag("max_steps", v);
        }
        if let Some(v) = o.max_tokens {
            layered.flag("max_generated_tokens", v);
        }
        if let Some(v) = o.time_limit {
            layered.flag("time_limit_s", v);
        }
        if let Some(v) = o.temperature {
            layered.flag("temperature", v);
        }
        if let Some(v) = o.seed {
            layered.flag("seed", v);
        }
        if !o.allow_host.is_empty() {
            layered.flag("allow_hosts", o.allow_host.clone());
        }
        if let Some(v) = &o.trace_dir {
            layered.flag("trace_dir", v.display().to_string());
        }
    }
    let config = layered
        .typed()
        .map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    Ok((layered, config))
}

/// `config show`.
pub fn config(command: ConfigCommand) -> CmdResult {
    let ConfigCommand::Show { json } = command;
    let (layered, _) = layered(None)?;
    let path = config_path(|k| std::env::var(k).ok());
    let rows = layered.rows();
    if json {
        let value: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, s, _)| {
                (
                    (*k).to_owned(),
                    serde_json::json!({"value": v, "source": s.to_string()}),
                )
            })
            .collect();
        return write_stdout(format!("{}\n", serde_json::Value::Object(value)).as_bytes());
    }
    let mut out = format!(
        "config file: {}{}\n\n",
        path.display(),
        if path.exists() { "" } else { " (not present)" }
    );
    for (k, v, s, help) in rows {
        out.push_str(&format!("{k:<22} {:<40} {s:<28} # {help}\n", v.to_string()));
    }
    write_stdout(out.as_bytes())
}

/// Everything a run needs, opened.
struct Prepared {
    opened: Opened,
    encoder: Encoder,
    config: RunConfig,
    registry: glm_tools::ToolRegistry,
}

/// The agent over the opened engine, working in a fresh folder for the run's files (kept
/// afterwards: files the tools produced are the user's).
fn new_agent<'a>(
    opened: &'a Opened,
    registry: glm_tools::ToolRegistry,
    encoder: Encoder,
    config: &RunConfig,
) -> Result<Agent<'a>, Failure> {
    let workdir = std::env::temp_dir().join(format!("glm-agent-run-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).map_err(Failure::bad_input)?;
    let engine = opened.engine.as_ref();
    Ok(
        Agent::new(engine, registry, encoder, config.settings(), workdir)
            .with_model_info(opened.model.clone()),
    )
}

async fn prepare(options: &RunOptions) -> Result<Prepared, Failure> {
    let (_, config) = layered(Some(options))?;
    let engine_options = EngineOptions {
        engine: config.engine.clone(),
        model: Some(config.model.clone()),
        isq: config.isq.clone(),
        no_prefix_cache: false,
        tokenizer: options.tokenizer.clone(),
    };
    let common = &options.common;
    // Tools first: a missing Python runtime is found before a model loads for minutes.
    let mut builtin = BuiltinOptions::new(common.cache());
    builtin.offline = common.is_offline();
    builtin.allow_hosts = config.allow_hosts.clone();
    builtin.search = SearchChoice::parse(&config.search, |k| std::env::var(k).ok())
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("search: {e}")))?;
    let names: Vec<&str> = config.tools.iter().map(String::as_str).collect();
    let registry = if names.is_empty() {
        glm_tools::ToolRegistry::new()
    } else {
        builtin_registry(&builtin, &names).map_err(Failure::bad_input)?
    };
    if names.contains(&"python") {
        glm_tools::python::setup(&builtin.cache, builtin.offline, &show_progress)
            .await
            .map_err(|e| Failure::bad_input(anyhow::anyhow!("the python tool: {e}")))?;
    }
    let opened = engine_options.open(common).await?;
    let encoder = match &opened.encoder {
        Some(e) => e.clone(),
        None => tokenizer_for(&config.model)?,
    };
    Ok(Prepared {
        opened,
        encoder,
        config,
        registry,
    })
}

/// The tokenizer of `model` when it is a local folder or in the Hugging Face cache.
fn tokenizer_for(model: &str) -> Result<Encoder, Failure> {
    let dir = if std::path::Path::new(model).is_dir() {
        Some(PathBuf::from(model))
    } else {
        hub::cached(model, None)
    };
    let Some(dir) = dir else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "this engine needs the model's tokenizer to build prompts: pass --tokenizer PATH/tokenizer.json (or --model with a local folder)"
        )));
    };
    Encoder::from_file(&dir.join("tokenizer.json")).map_err(Failure::bad_input)
}

/// Shows events: text on stderr as it comes and the answer on stdout, or JSON lines on stdout.
struct Display {
    json: bool,
    at_line_start: bool,
}

fn short(text: &str, lines: usize, chars: usize) -> String {
    let mut out: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
    if out.chars().count() > chars {
        out = out.chars().take(chars).collect::<String>() + "…";
    } else if text.lines().count() > lines {
        out.push_str("\n…");
    }
    out
}

impl Display {
    fn new(json: bool) -> Self {
        Display {
            json,
            at_line_start: true,
        }
    }

    fn show(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let _ = write_stdout(format!("{line}\n").as_bytes());
            }
            return;
        }
        let mut err = std::io::stderr().lock();
        match event {
            Event::Delta { text, .. } => {
                let mut shown = text.clone();
                for t in SpecialToken::ALL {
                    shown = shown.replace(t.as_str(), "");
                }
                if !shown.is_empty() {
                    let _ = write!(err, "{shown}");
                    let _ = err.flush();
                    self.at_line_start = shown.ends_with('\n');
                }
            }
            Event::Model { .. } | Event::Start { .. } | Event::Answer { .. } => {
                if !self.at_line_start {
                    let _ = writeln!(err);
                    self.at_line_start = true;
                }
            }
            Event::Call {
                name, arguments, ..
            } => {
                let args = match arguments {
                    serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("code") => {
                        m["code"].as_str().unwrap_or_default().to_owned()
                    }
                    other => other.to_string(),
                };
                let _ = writeln!(err, "→ {name}: {}", short(&args, 6, 400));
            }
            Event::Malformed { name, reason, .. } => {
                let _ = writeln!(err, "✗ {name}: {reason}");
            }
            Event::Observation {
                text, error, files, ..
            } => {
                let mark = if *error { "✗" } else { "←" };
                let _ = writeln!(err, "{mark} {}", short(text, 6, 600).replace('\n', "\n  "));
                for f in files {
                    let _ = writeln!(err, "  file: {f}");
                }
            }
            Event::Budget { detail, .. } => {
                let _ = writeln!(err, "budget: {detail}");
            }
            Event::Error { message } => {
                let _ = writeln!(err, "error: {message}");
            }
            Event::End { .. } => {}
        }
    }
}

fn trace_writer(options: &RunOptions, config: &RunConfig) -> Option<TraceWriter> {
    if options.no_trace {
        return None;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("run-{stamp}-{}", std::process::id());
    match TraceWriter::create(&config.trace_dir, &name) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "warning: no trace ({}: {e}); set --trace-dir or --no-trace",
                config.trace_dir.display()
            );
            None
        }
    }
}

fn interrupt_on_ctrl_c(cancel: &CancellationToken) {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
}

fn outcome_result(outcome: &Outcome) -> CmdResult {
    match &outcome.end {
        End::Answered => Ok(()),
        other => Err(Failure::silent(other.exit_status())),
    }
}

/// `run`.
pub fn run(args: RunArgs) -> CmdResult {
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    runtime.block_on(async move {
        let Prepared {
            opened,
            encoder,
            config,
            registry,
        } = prepare(&args.options).await?;
        let agent = new_agent(&opened, registry, encoder, &config)?;
        let cancel = CancellationToken::new();
        interrupt_on_ctrl_c(&cancel);
        let mut trace = trace_writer(&args.options, &config);
        let mut display = Display::new(args.options.json);
        let mut on_event = |e: &Event| {
            if let Some(t) = trace.as_mut() {
                t.record(e);
            }
            display.show(e);
        };
        let outcome = agent.run(&args.task, &cancel, &mut on_event).await;
        if let Some(t) = &trace {
            if let Some(e) = t.error() {
                eprintln!("warning: the trace is incomplete: {e}");
            } else if !args.options.json {
                eprintln!("trace: {}", t.path().display());
            }
        }
        if !args.options.json {
            if let Some(answer) = &outcome.answer {
                write_stdout(format!("{answer}\n").as_bytes())?;
            }
            if outcome.end != End::Answered {
                eprintln!("{}", describe_end(&outcome.end));
            }
        }
        outcome_result(&outcome)
    })
}

fn describe_end(end: &End) -> String {
    match end {
        End::Answered => "answered".into(),
        End::Budget(b) => format!("stopped: the {b:?} budget ran out").to_lowercase(),
        End::Repeated(m) => format!("stopped: {m}"),
        End::ToolFailed(m) => format!("stopped: a tool cannot run: {m}"),
        End::EngineFailed(m) => format!("stopped: the engine failed: {m}"),
        End::BadInput => "stopped: the prompt could not be built".into(),
        End::Interrupted => "interrupted".into(),
    }
}

/// `chat`.
pub fn chat(args: ChatArgs) -> CmdResult {
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    runtime.block_on(async move {
        let options = &args.options;
        let Prepared {
            opened,
            encoder,
            config,
            registry,
        } = prepare(options).await?;
        let agent = new_agent(&opened, registry, encoder, &config)?;
        let mut trace = trace_writer(options, &config);
        let mut display = Display::new(options.json);
        let mut session = agent.new_session();
        let tty = std::io::stdin().is_terminal();
        // Ctrl-C stops the turn in progress; at the prompt it leaves.
        let current = std::sync::Arc::new(std::sync::Mutex::new(None::<CancellationToken>));
        {
            let current = current.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    let running = current.lock().ok().and_then(|c| c.clone());
                    match running {
                        Some(token) => token.cancel(),
                        None => std::process::exit(i32::from(ExitStatus::Interrupted.code())),
                    }
                }
            });
        }
        if tty {
            eprintln!("glm-agent chat: /reset starts over, /exit leaves.");
        }
        let stdin = std::io::stdin();
        let mut started = false;
        let mut status = ExitStatus::Success;
        loop {
            if tty {
                eprint!("> ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = line.trim();
            match line {
                "" => continue,
                "/exit" | "/quit" => break,
                "/reset" => {
                    session = agent.new_session();
                    eprintln!("(new conversation)");
                    continue;
                }
                _ => {}
            }
            let cancel = CancellationToken::new();
            if let Ok(mut c) = current.lock() {
                *c = Some(cancel.clone());
            }
            let snapshot = session.clone();
            let mut on_event = |e: &Event| {
                if let Some(t) = trace.as_mut() {
                    t.record(e);
                }
                display.show(e);
            };
            if !started {
                on_event(&agent.start_event(line));
                started = true;
            }
            let outcome = agent.turn(&mut session, line, &cancel, &mut on_event).await;
            if let Ok(mut c) = current.lock() {
                *c = None;
            }
            if !options.json {
                if let Some(answer) = &outcome.answer {
                    write_stdout(format!("{answer}\n").as_bytes())?;
                }
                if outcome.end != End::Answered {
                    eprintln!("{}", describe_end(&outcome.end));
                }
            }
            status = outcome.end.exit_status();
            if matches!(outcome.end, End::EngineFailed(_) | End::ToolFailed(_)) {
                break;
            }
            if outcome.end == End::Interrupted {
                // Ctrl-C stops the turn; the conversation goes on without it.
                session = snapshot;
                eprintln!("(interrupted; that message is dropped)");
                status = ExitStatus::Success;
            }
        }
        match status {
            ExitStatus::Success | ExitStatus::Budget => Ok(()),
            other => Err(Failure::silent(other)),
        }
    })
}
