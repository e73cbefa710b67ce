//! `glm-agent model prepare`: make a model folder loadable, mapping GLM-4-9B-Chat once.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use glm_agent::model::{Layout, prepare};

use super::setup::CommonOptions;
use super::{CmdResult, Failure, write_stdout};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Make a model folder loadable and print where it is (GLM-4-9B-Chat is mapped once).
    #[command(
        after_help = "A GlmForCausalLM (-hf) or ChatGLMModel checkpoint is mapped onto the \
Qwen2 layout into the cache directory; other layouts are used as they are.\n\n\
Example:\n  glm-agent model prepare ~/models/glm-4-9b-chat-1m-hf"
    )]
    Prepare {
        /// A local model folder (config.json, *.safetensors, tokenizer.json).
        model: String,
        #[command(flatten)]
        common: CommonOptions,
    },
}

pub fn run(command: ModelCommand) -> CmdResult {
    match command {
        ModelCommand::Prepare { model, common } => {
            let source = PathBuf::from(&model);
            if !source.is_dir() {
                return Err(Failure::bad_input(anyhow::anyhow!(
                    "{model} is not a local folder; download the repo first, e.g. \
`huggingface-cli download THUDM/glm-4-9b-chat-1m-hf --local-dir ~/models/glm-4-9b-chat-1m-hf`, and pass that folder"
                )));
            }
            let started = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let mut last = 0u64;
            let prepared = prepare(&source, &common.cache(), &mut |done, total| {
                let percent = done * 100 / total.max(1);
                if tty || percent >= last + 10 || done == total {
                    last = percent;
                    let mut err = std::io::stderr().lock();
                    let end = if tty { "\r" } else { "\n" };
                    let _ = write!(
                        err,
                        "{end}Mapping to the Qwen2 layout: {percent:>3}% ({} of {} MB)",
                        done >> 20,
                        total >> 20
                    );
                    let _ = err.flush();
                }
            })
            .map_err(Failure::bad_input)?;
            if prepared.mapped_now {
                eprintln!("\nMapped in {:.1} s", started.elapsed().as_secs_f64());
            }
            if let Layout::Native(arch) = &prepared.layout {
                eprintln!("{arch}: loaded as it is");
            }
            write_stdout(format!("{}\n", prepared.dir.display()).as_bytes())
        }
    }
}
