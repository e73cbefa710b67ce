//! `glm-agent model prepare`: find or download a model and make it loadable, mapping GLM-4-9B-Chat
//! once.

use clap::Subcommand;

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, EngineSettings};
use crate::engine_opts::resolve_model;
use crate::setup::CommonOptions;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download (for a repo id) and prepare a model, then print the folder the engine loads.
    #[command(
        after_help = "A repo id is looked up in the Hugging Face cache (HF_HOME) and downloaded \
there when missing, unless --offline or HF_HUB_OFFLINE=1. A GlmForCausalLM (-hf) or ChatGLMModel \
checkpoint is mapped onto the Qwen2 layout into the cache directory, once; other layouts are used \
as they are.\n\n\
Examples:\n  glm-agent model prepare THUDM/glm-4-9b-chat-1m-hf\n  glm-agent model prepare ~/models/glm-4-9b-chat-1m-hf"
    )]
    Prepare {
        /// A local model folder (config.json, *.safetensors, tokenizer.json) or a Hugging Face
        /// repo id [default: the `model` setting, as for `run`].
        model: Option<String>,
        #[command(flatten)]
        common: CommonOptions,
    },
}

pub fn run(command: ModelCommand) -> CmdResult {
    match command {
        ModelCommand::Prepare { model, common } => {
            let flags = EngineSettings {
                model,
                ..EngineSettings::default()
            };
            let settings = Config::load()?.resolve(&flags)?.value;
            let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
            let dir = runtime.block_on(resolve_model(settings.model(), &common))?;
            write_stdout(format!("{}\n", dir.display()).as_bytes())
        }
    }
}
