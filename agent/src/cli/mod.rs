//! Command-line definitions and dispatch. Only the binary prints.

mod prompt;

use std::io::Write;

use clap::{Parser, Subcommand};
use glm_agent::exit::ExitStatus;

/// A command that failed, with the exit status it maps to.
pub struct Failure {
    /// What to exit with.
    pub status: ExitStatus,
    /// What to tell the user.
    pub error: anyhow::Error,
}

impl Failure {
    /// Bad usage or input: exit code 2.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            status: ExitStatus::BadInput,
            error: error.into(),
        }
    }
}

/// Result of one command.
pub type CmdResult = Result<(), Failure>;

/// glm-agent: run GLM-4-9B-Chat as a local agent with a web browser and a sandboxed Python.
#[derive(Debug, Parser)]
#[command(name = "glm-agent", version)]
#[command(after_help = "Example:\n  glm-agent prompt render conversation.json")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render conversations to GLM-4 prompts and parse model output into tool calls.
    #[command(after_help = "Example:\n  glm-agent prompt render conversation.json")]
    Prompt {
        #[command(subcommand)]
        command: prompt::PromptCommand,
    },
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Prompt { command } => prompt::run(command),
    }
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
