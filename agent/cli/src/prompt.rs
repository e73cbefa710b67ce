//! `glm-agent prompt render|parse`: the chat protocol from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use glm_prompts::{Conversation, DeclaredTools, Encoder, parse, render_segments};

use crate::cli::{CmdResult, Failure, write_stdout};

#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    /// Print the exact GLM-4 prompt for a conversation, ending with `<|assistant|>`.
    #[command(
        after_help = "FILE holds {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}.\n\n\
Examples:\n  glm-agent prompt render conversation.json\n  \
echo '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}' | glm-agent prompt render -\n  \
glm-agent prompt render conversation.json --tokenizer tokenizer.json --ids"
    )]
    Render {
        /// The conversation JSON file; `-` reads stdin.
        file: PathBuf,
        /// A GLM-4 tokenizer.json, used with --ids.
        #[arg(long, value_name = "PATH")]
        tokenizer: Option<PathBuf>,
        /// Print the token ids (one JSON array) instead of the text.
        #[arg(long, requires = "tokenizer")]
        ids: bool,
    },
    /// Read raw model output on stdin and print the answer or tool call it contains, as JSON.
    #[command(
        after_help = "Prints {\"kind\":\"answer\",...}, {\"kind\":\"call\",...} or {\"kind\":\"malformed\",...}.\n\n\
Example:\n  printf 'get_weather\\n{\"city\": \"Oslo\"}<|observation|>' | glm-agent prompt parse --tools get_weather,python"
    )]
    Parse {
        /// Declared tool names, comma separated; `python` and `simple_browser` are the built-ins.
        #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME...]")]
        tools: Vec<String>,
    },
}

pub fn run(command: PromptCommand) -> CmdResult {
    match command {
        PromptCommand::Render {
            file,
            tokenizer,
            ids,
        } => render(&file, tokenizer.as_deref(), ids),
        PromptCommand::Parse { tools } => {
            let output = crate::cli::read_stdin()?;
            let tools = DeclaredTools::from_names(tools.into_iter().filter(|t| !t.is_empty()));
            let mut json = parse(&output, &tools).to_json().to_string();
            json.push('\n');
            write_stdout(json.as_bytes())
        }
    }
}

fn render(file: &std::path::Path, tokenizer: Option<&std::path::Path>, ids: bool) -> CmdResult {
    let text = read_input(file)?;
    let conversation = Conversation::from_json(&text)
        .with_context(|| display_name(file))
        .map_err(Failure::bad_input)?;
    let segments = render_segments(&conversation.messages, true);
    match tokenizer {
        Some(path) if ids => {
            let encoder = Encoder::from_file(path).map_err(Failure::bad_input)?;
            let ids = encoder.encode(&segments.0).map_err(Failure::bad_input)?;
            let mut json = serde_json::to_string(&ids).map_err(Failure::bad_input)?;
            json.push('\n');
            write_stdout(json.as_bytes())
        }
        _ => write_stdout(segments.to_text().as_bytes()),
    }
}

fn read_input(file: &std::path::Path) -> Result<String, Failure> {
    if file.as_os_str() == "-" {
        return crate::cli::read_stdin();
    }
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Failure::bad_input)
}

fn display_name(file: &std::path::Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        file.display().to_string()
    }
}
