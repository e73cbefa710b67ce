//! `glm-agent run`: one task, to an answer or a budget; what `run` and `chat` share.

use std::path::PathBuf;

use clap::Args;
use glm_agent::trace::TraceWriter;
use glm_agent::{Agent, End, Event, EventSink, Outcome};
use glm_engine_mistralrs::model::hub;
use glm_prompts::Encoder;
use glm_tools::builtins::builtin_registry;
use tokio_util::sync::CancellationToken;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{
    ApprovalSettings, Config, EngineSettings, LoopSettings, SamplingSettings, ToolSettings,
    TraceSettings, loop_settings,
};
use crate::display::Display;
use crate::engine_opts::{Opened, resolve};
use crate::mcp::McpFlags;
use crate::setup::CommonOptions;
use crate::workdir::{WorkDir, WorkDirOptions};

/// Options shared by `run` and `chat`. Unset flags fall back to the environment, then the config
/// file, then the defaults (`glm-agent config show` prints the result).
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    #[command(flatten)]
    engine: EngineSettings,
    #[command(flatten)]
    pub(crate) looping: LoopSettings,
    #[command(flatten)]
    pub(crate) sampling: SamplingSettings,
    #[command(flatten)]
    tools: ToolSettings,
    #[command(flatten)]
    approval: ApprovalSettings,
    #[command(flatten)]
    mcp: McpFlags,
    #[command(flatten)]
    trace: TraceSettings,
    /// A document for the conversation, put before the task under a header naming it: a text
    /// or code file, an HTML page (read as the browser's reader reads it), a PDF (its text), a
    /// folder (its text files; .gitignore honoured), or `-` for standard input; repeatable
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Do not write a trace.
    #[arg(long)]
    no_trace: bool,
    /// Print events as JSON lines on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub resume: crate::resume::ResumeFlags,
    #[command(flatten)]
    pub work: WorkDirOptions,
    #[command(flatten)]
    common: CommonOptions,
}

/// Options of `run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 answered, 1 a tool's runtime failed, 2 bad usage or \
input, 3 a budget (steps, tokens, time, or the same failing call repeated) ended the run, 4 the \
engine failed (the model cannot be downloaded or loaded), 130 interrupted.\n\n\
Examples:\n  glm-agent run \"What is 2**100? Use python.\"\n  \
echo \"What is 2**100? Use python.\" | glm-agent run -\n  \
glm-agent run --model ~/models/glm-4-9b-chat-1m-hf \"Summarise https://example.com\"\n  \
glm-agent run --engine openai:http://gpu-box:8000 --tokenizer tokenizer.json \"...\"\n  \
glm-agent run --engine replay:~/.local/state/glm-agent/traces/run-1764331200000-4242.jsonl --json \"...\""
)]
pub struct RunArgs {
    /// The task; `-` reads it from standard input (to its end).
    task: String,
    /// A JSON Schema file the answer must match: held to while decoding, so the answer printed
    /// is JSON that parses and matches it (the model may still call tools first).
    #[arg(long, value_name = "FILE")]
    output_schema: Option<PathBuf>,
    #[command(flatten)]
    options: RunOptions,
}

/// Reads `--output-schema`: a JSON Schema object, at most 1 MiB.
fn read_output_schema(path: &std::path::Path) -> Result<serde_json::Value, Failure> {
    let bad = |why: String| {
        Failure::bad_input(anyhow::anyhow!("--output-schema {}: {why}", path.display()))
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if size > 1 << 20 {
        return Err(bad(format!(
            "{size} bytes; a schema of at most 1 MiB is read"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    if !schema.is_object() {
        return Err(bad(
            "a JSON Schema is an object, such as {\"type\": \"object\"}".into(),
        ));
    }
    Ok(schema)
}

/// Whether the engine can hold the answer to `--output-schema` with these tools.
fn check_output_schema(opened: &Opened, tools: usize) -> Result<(), Failure> {
    use glm_agent::engine::Structures;
    let why = match opened.engine.structures() {
        Structures::JsonOrCalls => return Ok(()),
        Structures::Json if tools == 0 => return Ok(()),
        Structures::Json => {
            "this engine's server holds an answer to a schema but cannot let the model choose between it and a call: add --tools none, or use the embedded engine or a glm-agent serve upstream"
        }
        Structures::None => {
            "this engine cannot hold an answer to a schema: use the embedded engine, or a llama.cpp, vLLM or glm-agent serve upstream"
        }
    };
    Err(Failure::bad_input(anyhow::anyhow!(
        "--output-schema: {why}"
    )))
}

/// Everything a run needs, opened.
pub struct Prepared {
    /// The engine.
    pub opened: Opened,
    /// The model's tokenizer.
    pub encoder: Encoder,
    /// The loop's settings.
    pub settings: glm_agent::Settings,
    /// The tools offered.
    pub registry: glm_tools::ToolRegistry,
    /// Where traces go.
    pub trace_dir: PathBuf,
    /// The MCP servers whose tools are offered (shut down at the end).
    pub servers: glm_tools::mcp::McpServers,
    /// Past this many prompt tokens the display warns that the model reads less reliably.
    pub effective_tokens: Option<usize>,
    /// The Python runtime's setup in the background, when python is offered.
    pub python_setup: Option<PythonSetup>,
}

/// The Python runtime readying in the background.
pub struct PythonSetup {
    handle: tokio::task::JoinHandle<()>,
    offline: bool,
}

impl PythonSetup {
    /// Before the process leaves: offline, the setup ends at once (installed or not), so its
    /// one line (why python is unavailable) is let out; online it may be downloading, and is
    /// left to finish another time.
    pub async fn settle(self) {
        if self.offline {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.handle).await;
        }
    }
}

/// The agent over the opened engine, its tools writing into `work`; calls the approval policy
/// leaves open are asked about on the terminal, unless `json` or there is none.
pub fn new_agent<'a>(
    opened: &'a Opened,
    registry: glm_tools::ToolRegistry,
    encoder: Encoder,
    settings: glm_agent::Settings,
    work: &WorkDir,
    json: bool,
) -> Agent<'a> {
    let agent = Agent::new(
        opened.engine.as_ref(),
        registry,
        encoder,
        settings,
        work.path(),
    )
    .with_model_info(opened.model.clone());
    match crate::approve::Terminal::open(json) {
        Some(terminal) => agent.with_approver(std::sync::Arc::new(terminal)),
        None => agent,
    }
}

/// The names of the tools offered.
pub fn tool_names(registry: &glm_tools::ToolRegistry) -> Vec<String> {
    registry.names()
}

/// Reads every setting, finds the model, readies the tools, then loads the engine: a model that
/// cannot be had fails (exit 4) before an MCP server starts, and a server that does not start
/// fails before a model loads for minutes. The Python runtime readies in the background.
pub async fn prepare(options: &RunOptions) -> Result<Prepared, Failure> {
    let config = Config::load()?;
    let engine = config.resolve(&options.engine)?.value;
    // A bad --engine is a usage error before anything slow runs.
    engine.spec()?;
    let looping = config.resolve(&options.looping)?.value;
    let sampling = config.resolve(&options.sampling)?.value;
    let layered_tools = config.resolve(&options.tools)?;
    let offered = crate::mcp::offered(
        &layered_tools,
        crate::mcp::configured(&config, &options.mcp)?,
    )?;
    let tools = layered_tools.value;
    let trace = config.resolve(&options.trace)?.value;
    let approval = config.resolve(&options.approval)?.value.policy()?;
    let common = &options.common;
    let builtin = tools.builtin_options(common.cache()?, common.downloads_off())?;
    let names: Vec<&str> = offered.builtins.iter().map(String::as_str).collect();
    let mut registry = if names.is_empty() {
        glm_tools::ToolRegistry::new()
    } else {
        builtin_registry(&builtin, &names).map_err(Failure::bad_input)?
    };
    let resolved = resolve(&engine, common).await?;
    // Installed (once, 93 MB) and compiled while the model loads, never before the first turn;
    // a call that comes earlier waits for it, and one that cannot have it is told why.
    let python_setup = names.contains(&"python").then(|| PythonSetup {
        handle: install_python_in_background(builtin.cache.clone(), builtin.offline),
        offline: builtin.offline,
    });
    let servers = crate::mcp::start(offered.servers).await?;
    crate::mcp::register(&servers, &mut registry);
    let opened = resolved
        .open(&engine, common, looping.context_tokens)
        .await?;
    let encoder = match &opened.encoder {
        Some(e) => e.clone(),
        None => tokenizer_for(engine.model())?,
    };
    let mut settings = glm_agent::Settings {
        approval,
        ..loop_settings(&looping, &sampling)
    };
    if settings.context_tokens.is_none() {
        settings.context_tokens = opened.model["context_window"].as_u64().map(|n| n as usize);
    }
    Ok(Prepared {
        python_setup,
        effective_tokens: looping.effective_tokens,
        opened,
        encoder,
        settings,
        registry,
        trace_dir: trace.trace_dir.unwrap_or_else(std::env::temp_dir),
        servers,
    })
}

/// Readies the Python runtime in the background, saying so when it has to be installed.
fn install_python_in_background(cache: PathBuf, offline: bool) -> tokio::task::JoinHandle<()> {
    let installed = glm_tools::python::installed(&cache);
    if !installed && !offline {
        eprintln!("Installing the Python runtime in the background (once, about 93 MB)...");
    }
    tokio::spawn(async move {
        match glm_tools::python::setup(&cache, offline, &|_| {}).await {
            Ok(_) if !installed => eprintln!("The Python runtime is ready."),
            Ok(_) => {}
            Err(e) => eprintln!(
                "warning: the python tool is unavailable ({e}); the run goes on, and python \
answers that it is unavailable"
            ),
        }
    })
}

/// The tokenizer of `model` when it is a local folder or in the Hugging Face cache.
pub(crate) fn tokenizer_for(model: &str) -> Result<Encoder, Failure> {
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

/// The trace of a run or chat, unless `--no-trace`.
pub fn trace_writer(options: &RunOptions, trace_dir: &std::path::Path) -> Option<TraceWriter> {
    if options.no_trace {
        return None;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let name = format!("run-{stamp}-{}", std::process::id());
    match TraceWriter::create(trace_dir, &name) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "warning: no trace ({}: {e}); set --trace-dir or --no-trace",
                trace_dir.display()
            );
            None
        }
    }
}

/// Events go to the trace and the display.
pub struct Shown<'d> {
    /// The trace, if any.
    pub trace: Option<TraceWriter>,
    pub display: &'d mut Display,
    /// The documents given with `--file`, recorded with the start.
    pub documents: Vec<serde_json::Value>,
}

impl EventSink for Shown<'_> {
    fn event(&mut self, event: &Event) {
        let mut with_documents;
        let event = match event {
            Event::Start { .. } if !self.documents.is_empty() => {
                with_documents = event.clone();
                if let Event::Start { documents, .. } = &mut with_documents {
                    *documents = std::mem::take(&mut self.documents);
                }
                &with_documents
            }
            _ => event,
        };
        if let Some(t) = self.trace.as_mut() {
            t.record(event);
        }
        self.display.show(event);
    }
}

/// Ctrl-C (and, on Unix, SIGTERM) interrupts the run: the tool call in progress is cancelled,
/// the trace closed and the MCP servers shut down before the process exits.
fn interrupt_on_ctrl_c(cancel: &CancellationToken) {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        interrupted().await;
        cancel.cancel();
        // A second Ctrl-C leaves at once, whatever is still winding down.
        interrupted().await;
        eprintln!("interrupted again: leaving now");
        std::process::exit(i32::from(glm_agent::exit::ExitStatus::Interrupted.code()));
    });
}

/// Resolves at Ctrl-C or, on Unix, SIGTERM (what a service manager sends to stop a process).
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn outcome_result(outcome: &Outcome) -> CmdResult {
    match &outcome.end {
        End::Answered => Ok(()),
        other => Err(Failure::silent(other.exit_status())),
    }
}

/// Prints the answer (on stdout, unless it was just streamed to the same terminal) and how the
/// run ended when it did not answer.
pub fn show_outcome(outcome: &Outcome, display: &Display, json: bool) -> CmdResult {
    if json {
        return Ok(());
    }
    if let Some(answer) = &outcome.answer
        && display.answer_to_stdout()
    {
        write_stdout(format!("{answer}\n").as_bytes())?;
    }
    if outcome.end != End::Answered {
        eprintln!("{}", describe_end(&outcome.end));
    }
    Ok(())
}

/// The most bytes of a task read from standard input.
const MAX_TASK_BYTES: u64 = 16 << 20;

/// The task: as given, or standard input's text for `-` (bounded, UTF-8, not empty).
fn read_task(task: String) -> Result<String, Failure> {
    if task != "-" {
        return Ok(task);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_TASK_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| {
        Failure::bad_input(anyhow::anyhow!(
            "cannot read the task from standard input: {e}"
        ))
    })?;
    if bytes.len() as u64 > MAX_TASK_BYTES {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "the task on standard input is over {} MiB; put long material in a file the tools can read",
            MAX_TASK_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::bad_input(anyhow::anyhow!(
            "the task on standard input is not UTF-8 text"
        ))
    })?;
    if text.trim().is_empty() {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "`run -` read no task from standard input: pipe one in (echo \"...\" | glm-agent run -)"
        )));
    }
    Ok(text.trim_end().to_owned())
}

/// The trace `--resume` or `--continue` names, read; its tools are offered when `--tools`
/// does not say otherwise.
pub fn resumed_parent(options: &mut RunOptions) -> Result<Option<crate::resume::Parent>, Failure> {
    let config = Config::load()?;
    let trace_dir = config
        .resolve(&options.trace)?
        .value
        .trace_dir
        .unwrap_or_else(std::env::temp_dir);
    let parent = options.resume.load(&trace_dir)?;
    if let Some(parent) = &parent
        && options.tools.tools.is_none()
    {
        options.tools.tools = Some(parent.tool_names());
    }
    Ok(parent)
}

/// `run`.
pub fn run(mut args: RunArgs) -> CmdResult {
    if args.task == "-" && args.options.files.iter().any(|f| f.as_os_str() == "-") {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "`run -` and `--file -` both read standard input: give the task as an argument"
        )));
    }
    let reads_stdin = args.task == "-" || args.options.files.iter().any(|f| f.as_os_str() == "-");
    args.task = read_task(std::mem::take(&mut args.task))?;
    let mut documents = crate::documents::read_documents(&args.options.files)?;
    if !reads_stdin && let Some(piped) = crate::documents::piped_stdin()? {
        documents.push(piped);
    }
    args.task = crate::documents::with_documents(&args.task, &documents);
    let parent = resumed_parent(&mut args.options)?;
    let output_schema = args
        .output_schema
        .as_deref()
        .map(read_output_schema)
        .transpose()?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    let result = runtime.block_on(async move {
        let options = &args.options;
        let Prepared {
            opened,
            encoder,
            mut settings,
            registry,
            trace_dir,
            servers,
            effective_tokens,
            python_setup,
        } = prepare(options).await?;
        if let Some(parent) = &parent {
            settings = parent.settings(settings, &options.looping, &options.sampling)?;
        }
        if let Some(schema) = output_schema {
            if let Err(e) = check_output_schema(&opened, registry.names().len()) {
                servers.shutdown().await;
                return Err(e);
            }
            settings.output_schema = Some(schema);
        }
        let mut display =
            Display::new(options.json, tool_names(&registry)).warn_past(effective_tokens);
        let work = options.work.open("run")?;
        let agent = new_agent(&opened, registry, encoder, settings, &work, options.json);
        let cancel = CancellationToken::new();
        interrupt_on_ctrl_c(&cancel);
        let mut shown = Shown {
            trace: trace_writer(options, &trace_dir),
            display: &mut display,
            documents: documents
                .iter()
                .map(crate::documents::Document::record)
                .collect(),
        };
        let outcome = match &parent {
            None => agent.run(&args.task, &cancel, &mut shown).await,
            Some(parent) => {
                let mut session = match parent.session(&agent, &opened.model) {
                    Ok(session) => session,
                    Err(e) => {
                        servers.shutdown().await;
                        return Err(e);
                    }
                };
                let start = parent.start_event(&agent, &args.task, &session);
                shown.event(&start);
                agent
                    .turn(&mut session, &args.task, &cancel, &mut shown)
                    .await
            }
        };
        servers.shutdown().await;
        if let Some(setup) = python_setup {
            setup.settle().await;
        }
        if let Some(t) = &shown.trace {
            if let Some(e) = t.error() {
                eprintln!("warning: the trace is incomplete: {e}");
            } else if !options.json {
                eprintln!("trace: {}", t.path().display());
            }
        }
        work.finish(options.json);
        show_outcome(&outcome, &display, options.json)?;
        outcome_result(&outcome)
    });
    // What still runs in the background (the Python runtime's install or compile, which is
    // written atomically) does not hold the exit up.
    runtime.shutdown_background();
    result
}

/// How a run ended, in a line.
pub fn describe_end(end: &End) -> String {
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
