//! Snapshots of every built-in's schema and of a typical custom tool's.

use glm_tools::ToolRegistry;
use glm_tools::browser::{BrowserConfig, SimpleBrowser};
use glm_tools::python::{Limits, PythonConfig, PythonTool};
use glm_tools::schema::parameters_schema;
use pretty_assertions::assert_eq;
use schemars::JsonSchema;
use serde::Deserialize;

fn snapshot(name: &str, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    let path = format!(
        "{}/tests/golden/schema_{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("GLM_AGENT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&path).unwrap_or_default(),
        "snapshot {name}"
    );
}

#[test]
fn builtin_schemas() {
    let python = PythonTool::new(PythonConfig {
        cache: std::env::temp_dir(),
        offline: true,
        limits: Limits::default(),
    });
    let reg = ToolRegistry::new()
        .with(SimpleBrowser::new(BrowserConfig::default()).unwrap())
        .with(python);
    assert_eq!(reg.names(), ["python", "simple_browser"]);
    for info in reg.describe() {
        snapshot(&info.name, &serde_json::to_value(&info).unwrap());
    }
}

/// Books a table.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Booking {
    /// Restaurant name.
    restaurant: String,
    /// Party size.
    people: u8,
    /// When.
    time: Slot,
    /// Dietary needs.
    #[serde(default)]
    diets: Vec<Diet>,
    /// Note for the staff.
    note: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Slot {
    /// ISO date.
    date: String,
    /// 24-hour time.
    hour: u8,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Diet {
    Vegan,
    GlutenFree,
}

#[test]
fn custom_tool_schema_is_plain() {
    let schema = parameters_schema::<Booking>();
    snapshot("custom_booking", &schema);
    let text = schema.to_string();
    for noise in ["$ref", "$defs", "$schema", "title", "uint8", "null"] {
        assert!(!text.contains(noise), "{noise} in {text}");
    }
}
