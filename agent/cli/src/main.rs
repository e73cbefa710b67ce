//! The `glm-agent` command line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod chat;
mod cli;
mod config;
mod display;
mod engine_opts;
mod eval;
mod generate;
mod mcp;
mod model;
mod prompt;
mod replay;
mod run;
mod serve;
mod settings;
mod setup;
mod tools;
mod workdir;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
