//! Build an agent with the built-in tools plus a custom one, run a task, read the answer and
//! the events.
//!
//!     cargo run --release --example agent_run                          # scripted model output
//!     cargo run --release --example agent_run -- ~/models/glm-4-9b-chat-1m-hf "What is 2.5 + 4?"
//!
//! Without arguments the model's turns come from a short recording (a replay engine and a small
//! tokenizer with GLM-4's control tokens), so the example runs anywhere; with a model folder it
//! loads GLM-4 on the embedded mistral.rs engine.
#![allow(clippy::print_stdout)]

use glm_agent::engine::{Engine, Recorded, ReplayEngine};
use glm_agent::{Agent, Event, Settings};
use glm_engine_mistralrs::{EmbeddedConfig, EmbeddedEngine};
use glm_prompts::Encoder;
use glm_tools::builtins::{BuiltinOptions, builtin_registry};
use glm_tools::{CallError, Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Adds two numbers.
struct Add;

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    /// The first number.
    a: f64,
    /// The second number.
    b: f64,
}

impl Tool for Add {
    const NAME: &'static str = "add";
    type Args = AddArgs;
    type Output = String;

    fn description(&self) -> &str {
        "Add two numbers exactly"
    }

    async fn call(&self, args: AddArgs, _ctx: &ToolContext) -> Result<String, CallError> {
        Ok((args.a + args.b).to_string())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cache = glm_agent::paths::cache_dir(None, |k| std::env::var(k).ok())
        .ok_or(glm_agent::paths::NO_CACHE_DIR)?;

    // The built-in tools (python, simple_browser) and ours.
    let mut tools = builtin_registry(&BuiltinOptions::new(cache.clone()), &[])?;
    tools.register(Add);

    // An engine and the model's tokenizer.
    let (engine, encoder): (Box<dyn Engine>, Encoder) = match args.first() {
        Some(model) => {
            let dir =
                glm_engine_mistralrs::model::prepare(model.as_ref(), &cache, &mut |_, _| {})?.dir;
            let engine = EmbeddedEngine::load(EmbeddedConfig::new(&dir)).await?;
            (
                Box::new(engine),
                Encoder::from_file(&dir.join("tokenizer.json"))?,
            )
        }
        None => {
            let script = [
                "add\n{\"a\": 2.5, \"b\": 4}<|observation|>",
                "2.5 + 4 = 6.5<|user|>",
            ];
            let outputs = script
                .iter()
                .map(|t| Recorded {
                    ids: vec![],
                    text: (*t).to_owned(),
                })
                .collect();
            let tokenizer = glm_prompts::tiny::tiny_tokenizer()?;
            (
                Box::new(ReplayEngine::new(outputs)),
                Encoder::new(tokenizer)?,
            )
        }
    };
    let task = args.get(1).map_or("What is 2.5 + 4?", String::as_str);

    let workdir = std::env::temp_dir().join("glm-agent-example");
    let agent = Agent::new(
        engine.as_ref(),
        tools,
        encoder,
        Settings::default(),
        &workdir,
    );
    let mut events = Vec::new();
    let outcome = agent
        .run(task, &CancellationToken::new(), &mut |e: &Event| {
            events.push(e.clone())
        })
        .await;

    for event in &events {
        match event {
            Event::Call {
                name, arguments, ..
            } => println!("call  {name} {arguments}"),
            Event::Observation { text, .. } => println!("saw   {text}"),
            _ => {}
        }
    }
    println!("answer: {}", outcome.answer.as_deref().unwrap_or("(none)"));
    println!("ended: {:?} after {} steps", outcome.end, outcome.steps);
    Ok(())
}
