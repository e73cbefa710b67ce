//! Define a tool, register it next to the built-ins, and run a call the model wrote.
//!
//!     cargo run --release --example custom_tool
#![allow(clippy::print_stdout)]

use glm_prompts::{Message, Parsed, parse, render};
use glm_tools::builtins::{BuiltinOptions, builtin_registry};
use glm_tools::{CallError, Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;

/// Converts a temperature between Celsius and Fahrenheit.
struct ConvertTemperature;

#[derive(Deserialize, JsonSchema)]
struct Args {
    /// The temperature to convert.
    value: f64,
    /// The unit of `value`: "c" or "f".
    from: String,
}

impl Tool for ConvertTemperature {
    const NAME: &'static str = "convert_temperature";
    type Args = Args;
    type Output = serde_json::Value;

    fn description(&self) -> &str {
        "Convert a temperature between Celsius and Fahrenheit"
    }

    async fn call(&self, args: Args, _ctx: &ToolContext) -> Result<serde_json::Value, CallError> {
        match args.from.as_str() {
            "c" => Ok(serde_json::json!({"value": args.value * 9.0 / 5.0 + 32.0, "unit": "f"})),
            "f" => Ok(serde_json::json!({"value": (args.value - 32.0) * 5.0 / 9.0, "unit": "c"})),
            other => Err(CallError::Respond(format!(
                "unknown unit {other:?}; use \"c\" or \"f\""
            ))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = glm_engine::paths::cache_dir(None, |k| std::env::var(k).ok())
        .ok_or(glm_engine::paths::NO_CACHE_DIR)?;
    let mut tools = builtin_registry(&BuiltinOptions::new(cache), &[])?;
    tools.register(ConvertTemperature);

    // The system turn the model sees declares every tool, yours included.
    let system = Message::system_with_tools(tools.specs(), "");
    println!("{}\n", render(&[system], false));

    // What the model might write, and what the tool answers.
    let written = "convert_temperature\n{\"value\": 21.5, \"from\": \"c\"}<|observation|>";
    if let Parsed::Call(call) = parse(written, &tools.declared()) {
        let output = tools
            .call(&call, &ToolContext::new(std::env::temp_dir()))
            .await?;
        println!("observation: {}", output.text());
    }
    Ok(())
}
