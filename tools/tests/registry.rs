//! The registry: declaration, dispatch, and errors split by who recovers.

use std::time::Duration;

use glm_prompts::{Parsed, ToolSpec, parse, render};
use glm_tools::{CallError, Observation, Recovery, Tool, ToolContext, ToolError, ToolRegistry};
use pretty_assertions::assert_eq;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Looks up the weather.
struct Weather;

#[derive(Deserialize, JsonSchema)]
struct WeatherArgs {
    /// City name.
    city: String,
    /// Temperature unit.
    #[serde(default)]
    unit: Option<Unit>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Unit {
    Celsius,
    Fahrenheit,
}

impl Tool for Weather {
    const NAME: &'static str = "get_weather";
    type Args = WeatherArgs;
    type Output = serde_json::Value;

    fn description(&self) -> &str {
        "Get the current weather for a city"
    }

    async fn call(
        &self,
        args: WeatherArgs,
        _: &ToolContext,
    ) -> Result<serde_json::Value, CallError> {
        if args.city == "Atlantis" {
            return Err(CallError::Respond("no weather station in Atlantis".into()));
        }
        let unit = match args.unit {
            Some(Unit::Fahrenheit) => "f",
            Some(Unit::Celsius) | None => "c",
        };
        Ok(json!({"city": args.city, "temp": 21, "unit": unit}))
    }
}

/// Sleeps; or fails fatally.
struct Slow;

#[derive(Deserialize, JsonSchema)]
struct SlowArgs {
    seconds: u64,
    #[serde(default)]
    fatal: bool,
}

impl Tool for Slow {
    const NAME: &'static str = "slow";
    type Args = SlowArgs;
    type Output = Observation;

    fn description(&self) -> &str {
        "Wait"
    }

    async fn call(&self, args: SlowArgs, _: &ToolContext) -> Result<Observation, CallError> {
        if args.fatal {
            return Err(CallError::Fatal("the runtime is gone".into()));
        }
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        Ok(Observation::text(""))
    }
}

fn registry() -> ToolRegistry {
    ToolRegistry::new().with(Weather).with(Slow)
}

fn ctx() -> ToolContext {
    ToolContext {
        timeout: Duration::from_millis(300),
        ..ToolContext::new(std::env::temp_dir())
    }
}

async fn run(registry: &ToolRegistry, output: &str) -> Result<glm_tools::ToolOutput, ToolError> {
    match parse(output, &registry.declared()) {
        Parsed::Call(call) => registry.call(&call, &ctx()).await,
        other => panic!("not a call: {other:?}"),
    }
}

#[tokio::test]
async fn calls_reach_the_tool_and_json_output_is_python_style() {
    let out = run(
        &registry(),
        "get_weather\n{\"city\": \"Oslo\", \"unit\": \"fahrenheit\"}",
    )
    .await
    .unwrap();
    assert_eq!(out.text(), r#"{"city": "Oslo", "temp": 21, "unit": "f"}"#);
}

#[tokio::test]
async fn errors_the_model_can_fix_become_observations() {
    let reg = registry();
    let bad = run(&reg, "get_weather\n{\"town\": \"Oslo\"}")
        .await
        .unwrap_err();
    assert_eq!(bad.recovery(), Recovery::Model);
    let text = bad.to_message().content;
    assert!(
        text.starts_with("Error: bad arguments for `get_weather`: missing field `city`"),
        "{text}"
    );
    assert!(
        text.contains(r#""required": ["city"]"#),
        "the schema is shown: {text}"
    );
    assert_eq!(bad.to_message().metadata.as_deref(), Some("system_error"));

    let wrong_enum = run(
        &reg,
        "get_weather\n{\"city\": \"Oslo\", \"unit\": \"kelvin\"}",
    )
    .await
    .unwrap_err();
    assert!(
        wrong_enum
            .to_string()
            .contains("unknown variant `kelvin`, expected `celsius` or `fahrenheit`"),
        "{wrong_enum}"
    );

    let failed = run(&reg, "get_weather\n{\"city\": \"Atlantis\"}")
        .await
        .unwrap_err();
    assert_eq!(
        failed.to_string(),
        "`get_weather` failed: no weather station in Atlantis"
    );
    assert_eq!(failed.recovery(), Recovery::Model);

    let timeout = run(&reg, "slow\n{\"seconds\": 5}").await.unwrap_err();
    assert_eq!(
        timeout,
        ToolError::Timeout {
            tool: "slow".into(),
            seconds: 0
        }
    );
    assert_eq!(timeout.recovery(), Recovery::Model);

    let unknown = reg
        .call_json("delete_all", json!({}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "there is no tool `delete_all`; the available tools are: get_weather, slow"
    );
    assert_eq!(unknown.recovery(), Recovery::Model);
}

#[tokio::test]
async fn a_broken_runtime_or_cancellation_ends_the_run() {
    let reg = registry();
    let fatal = run(&reg, "slow\n{\"seconds\": 0, \"fatal\": true}")
        .await
        .unwrap_err();
    assert_eq!(fatal.recovery(), Recovery::Fatal);
    let ctx = ToolContext {
        timeout: Duration::from_secs(30),
        ..ctx()
    };
    ctx.cancel.cancel();
    let cancelled = reg
        .call_json("slow", json!({"seconds": 30}), &ctx)
        .await
        .unwrap_err();
    assert_eq!(
        cancelled,
        ToolError::Cancelled {
            tool: "slow".into()
        }
    );
    assert_eq!(cancelled.recovery(), Recovery::Fatal);
}

#[test]
fn empty_output_is_still_a_visible_turn() {
    let msg = Observation::text("").to_message();
    assert_eq!(
        render(&[msg], false),
        "[gMASK]<sop><|observation|>\n(no output)"
    );
}

#[test]
fn declarations_are_sorted_and_render() {
    let reg = ToolRegistry::new().with(Slow).with(Weather);
    assert_eq!(reg.names(), ["get_weather", "slow"]);
    let specs = reg.specs();
    let names: Vec<&str> = specs.iter().map(ToolSpec::name).collect();
    assert_eq!(names, ["get_weather", "slow"]);
    let prompt = render(&[glm_prompts::Message::system_with_tools(specs, "")], false);
    assert!(prompt.contains("## get_weather\n\n{\n    \"name\": \"get_weather\",\n    \"description\": \"Get the current weather for a city\",\n    \"parameters\": {\n        \"type\": \"object\","));
}

/// Returns as many characters as asked.
struct Verbose;

#[derive(Deserialize, JsonSchema)]
struct VerboseArgs {
    chars: usize,
}

impl Tool for Verbose {
    const NAME: &'static str = "verbose";
    type Args = VerboseArgs;
    type Output = String;

    fn description(&self) -> &str {
        "Print a lot"
    }

    async fn call(&self, args: VerboseArgs, _: &ToolContext) -> Result<String, CallError> {
        Ok(format!("start{}end", "x".repeat(args.chars)))
    }
}

#[tokio::test]
async fn every_tools_observation_is_held_to_the_limit() {
    let registry = ToolRegistry::new().with(Verbose);
    let mut ctx = ToolContext::new(std::env::temp_dir());
    ctx.max_observation_chars = 1_000;
    let out = registry
        .call_json("verbose", json!({"chars": 100_000}), &ctx)
        .await
        .unwrap();
    let text = out.text();
    assert!(
        text.chars().count() < 1_100,
        "{} chars",
        text.chars().count()
    );
    assert!(text.starts_with("start") && text.ends_with("end"), "{text}");
    assert!(text.contains("characters not shown"), "{text}");
    let short = registry
        .call_json("verbose", json!({"chars": 10}), &ctx)
        .await
        .unwrap();
    assert_eq!(short.text(), format!("start{}end", "x".repeat(10)));
}
