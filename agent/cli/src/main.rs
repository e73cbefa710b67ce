//! The `glm-agent` command line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod approve;
mod chat;
mod cli;
mod config;
mod display;
mod documents;
mod engine_opts;
mod eval;
mod generate;
mod input;
mod mcp;
mod model;
mod pdf;
mod prompt;
mod replay;
mod resume;
mod run;
mod serve;
mod settings;
mod setup;
mod shared;
mod tools;
mod traces;
mod workdir;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let command = config::with_help_notes(cli::Cli::command(), &config::help_notes());
    let args = cli::Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(error) = failure.error {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(failure.status.code())
        }
    }
}
