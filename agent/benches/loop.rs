//! The agent loop's own cost per step: rendering, encoding, parsing, dispatch and event
//! handling, with a replay engine (no model time) and a tool that returns at once.
//!
//!     cargo bench -p glm-agent --bench loop
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::Instant;

use glm_agent::engine::{Recorded, ReplayEngine, Sampling};
use glm_agent::{Agent, End, Event, Settings};
use glm_prompts::Encoder;
use glm_tools::{CallError, Tool, ToolContext, ToolRegistry};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

struct Echo;

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    /// Text to return.
    text: String,
}

impl Tool for Echo {
    const NAME: &'static str = "echo";
    type Args = EchoArgs;
    type Output = String;

    fn description(&self) -> &str {
        "Return the text"
    }

    async fn call(&self, args: EchoArgs, _ctx: &ToolContext) -> Result<String, CallError> {
        Ok(args.text.repeat(8))
    }
}

fn main() {
    let steps = 100;
    let payload = "The quick brown fox jumps over the lazy dog. ".repeat(6);
    let mut outputs: Vec<Recorded> = (0..steps - 1)
        .map(|i| Recorded {
            ids: vec![],
            text: format!("echo\n{{\"text\": \"{i}: {payload}\"}}<|observation|>"),
        })
        .collect();
    outputs.push(Recorded {
        ids: vec![],
        text: "done<|user|>".into(),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..3 {
        let engine = ReplayEngine::new(outputs.clone());
        let encoder = Encoder::new(glm_prompts::tiny::tiny_tokenizer().unwrap()).unwrap();
        let settings = Settings {
            max_steps: steps + 1,
            max_generated_tokens: usize::MAX / 2,
            sampling: Sampling {
                greedy: true,
                ..Sampling::default()
            },
            ..Settings::default()
        };
        let dir = std::env::temp_dir();
        let agent = Agent::new(
            &engine,
            ToolRegistry::new().with(Echo),
            encoder,
            settings,
            &dir,
        );
        let mut tool_ms = 0u64;
        let mut prompt_tokens = 0usize;
        let started = Instant::now();
        let outcome = runtime.block_on(agent.run(
            "bench",
            &CancellationToken::new(),
            &mut |e: &Event| match e {
                Event::Observation { took_ms, .. } => tool_ms += took_ms,
                Event::Model {
                    prompt_tokens: p, ..
                } => prompt_tokens = *p,
                _ => {}
            },
        ));
        let total = started.elapsed();
        assert_eq!(outcome.end, End::Answered);
        let own = total.as_secs_f64() * 1e3 - tool_ms as f64;
        println!(
            "round {round}: {steps} steps in {:.1} ms, tools {tool_ms} ms: loop overhead {:.3} ms/step (final prompt {prompt_tokens} tokens, byte-level tokenizer)",
            total.as_secs_f64() * 1e3,
            own / steps as f64
        );
    }
}
