//! Command-line definitions and dispatch. Only the binary prints.

use crate::{
    chat, config, eval, generate, model, prompt, replay, run, serve, setup, tools, traces,
};

use std::io::Write;

use clap::{Parser, Subcommand};
use glm_agent::exit::ExitStatus;

/// A command that failed, with the exit status it maps to.
pub struct Failure {
    /// What to exit with.
    pub status: ExitStatus,
    /// What to tell the user on stderr; `None` when stdout already said it.
    pub error: Option<anyhow::Error>,
}

impl Failure {
    /// Bad usage or input: exit code 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Failure::new(ExitStatus::BadInput, error)
    }

    /// A failure with a message.
    pub fn new(status: ExitStatus, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status,
            error: Some(error.into()),
        }
    }

    /// A failure whose explanation was already printed.
    pub fn silent(status: ExitStatus) -> Self {
        Failure {
            status,
            error: None,
        }
    }
}

/// Result of one command.
pub type CmdResult = Result<(), Failure>;

/// glm-agent: run GLM-4-9B-Chat as a local agent with a web browser and a sandboxed Python.
#[derive(Debug, Parser)]
#[command(name = "glm-agent", version)]
#[command(
    after_help = "Examples:\n  glm-agent run \"How many primes are below 10000? Use python.\"\n  glm-agent chat\n  glm-agent config show"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a task: the model works with the tools until it answers.
    Run(run::RunArgs),
    /// An interactive conversation with the model and the tools.
    Chat(chat::ChatArgs),
    /// Re-run a recorded trace with today's code and report the first divergence.
    Replay(replay::ReplayArgs),
    /// Run an eval suite and score every case; or score stored traces again.
    Eval(eval::EvalArgs),
    /// Show the effective settings (config file, environment, defaults).
    #[command(after_help = "Example:\n  glm-agent config show")]
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Serve GLM-4 over the OpenAI API, tool calls included.
    Serve(serve::ServeArgs),
    /// Generate from prompt token ids with an engine, without any chat template.
    Generate(generate::GenerateArgs),
    /// Prepare model folders for the engine.
    #[command(after_help = "Example:\n  glm-agent model prepare ~/models/glm-4-9b-chat-1m-hf")]
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// Render conversations to GLM-4 prompts and parse model output into tool calls.
    #[command(after_help = "Example:\n  glm-agent prompt render conversation.json")]
    Prompt {
        #[command(subcommand)]
        command: prompt::PromptCommand,
    },
    /// Install what the tools need, such as the sandboxed Python runtime.
    #[command(after_help = "Example:\n  glm-agent setup python")]
    Setup {
        #[command(subcommand)]
        command: setup::SetupCommand,
    },
    /// The recorded runs: list them, or show one as a transcript.
    #[command(after_help = "Examples:\n  glm-agent traces list\n  glm-agent traces show last")]
    Traces {
        #[command(subcommand)]
        command: traces::TracesCommand,
    },
    /// List the tools and run one tool call outside the agent loop.
    #[command(
        after_help = "Examples:\n  glm-agent tools list\n  glm-agent tools call simple_browser 'search(\"GLM-4\")'"
    )]
    Tools {
        #[command(subcommand)]
        command: tools::ToolsCommand,
    },
    /// The text of a PDF on stdout (what `--file` runs, bounded, for a PDF).
    #[command(hide = true)]
    PdfText {
        /// The PDF.
        path: std::path::PathBuf,
    },
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::chat(args),
        Command::Replay(args) => replay::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Config { command } => config::show(command),
        Command::Serve(args) => serve::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Model { command } => model::run(command),
        Command::Prompt { command } => prompt::run(command),
        Command::Setup { command } => setup::run(command),
        Command::Tools { command } => tools::run(command),
        Command::Traces { command } => traces::run(command),
        Command::PdfText { path } => crate::pdf::pdf_text(&path),
    }
}

/// Reads all of stdin.
pub fn read_stdin() -> Result<String, Failure> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure::bad_input(anyhow::Error::new(e).context("cannot read stdin")))?;
    Ok(text)
}

/// Writes to stdout exactly, treating a closed pipe (`| head`) as success.
pub fn write_stdout(bytes: &[u8]) -> CmdResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::bad_input(
            anyhow::Error::new(e).context("writing to stdout"),
        )),
    }
}
