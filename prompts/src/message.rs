//! Conversations in the shape of GLM-4's official chat template.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::tokens::SpecialToken;

/// Who speaks a turn. Each role has its own control token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `<|system|>`: instructions and the tool list.
    System,
    /// `<|user|>`: the person asking.
    User,
    /// `<|assistant|>`: the model's answer or tool call.
    Assistant,
    /// `<|observation|>`: a tool's result.
    Observation,
}

impl Role {
    /// The control token that opens a turn of this role.
    pub fn token(self) -> SpecialToken {
        match self {
            Role::System => SpecialToken::System,
            Role::User => SpecialToken::User,
            Role::Assistant => SpecialToken::Assistant,
            Role::Observation => SpecialToken::Observation,
        }
    }
}

/// One turn of a conversation.
///
/// `metadata` is the tool name on an assistant turn that calls a tool, and an optional label on
/// an observation (`browser_result`, `quote_result [n†source]`). A JSON `null` is read as absent.
/// `tools`, when present, renders GLM-4's tool section before the turn (normally on the system
/// message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The text; an empty content renders nothing for this turn.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    /// Text written right after the role token, before the newline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Tools declared at this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
}

impl Message {
    /// A turn with plain content and no metadata.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            metadata: None,
            tools: None,
        }
    }

    /// A system turn that declares `tools`, with optional extra instructions as content.
    pub fn system_with_tools(tools: Vec<ToolSpec>, content: impl Into<String>) -> Self {
        Message {
            tools: Some(tools),
            ..Message::new(Role::System, content)
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(de: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(de)?.unwrap_or_default())
}

/// A tool declaration as the template knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolSpec {
    /// A function tool: its `function` object is printed as JSON, keys in their given order.
    Function {
        /// `{"name": ..., "description": ..., "parameters": {...}}` and any other keys.
        function: FunctionSpec,
    },
    /// The built-in stateful Python notebook.
    Python,
    /// The built-in web browser (`search`, `mclick`, `open_url`).
    SimpleBrowser,
    /// The built-in image generator of the official template (rendered, not run here).
    Cogview,
}

impl ToolSpec {
    /// The name the model writes on the first line of a call.
    pub fn name(&self) -> &str {
        match self {
            ToolSpec::Function { function } => function.name(),
            ToolSpec::Python => "python",
            ToolSpec::SimpleBrowser => "simple_browser",
            ToolSpec::Cogview => "cogview",
        }
    }
}

/// The `function` object of a function tool, kept as given so it renders byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct FunctionSpec {
    name: String,
    object: Map<String, Value>,
}

impl FunctionSpec {
    /// Builds `{"name", "description", "parameters"}` in that order.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        let name = name.into();
        let mut object = Map::new();
        object.insert("name".into(), Value::String(name.clone()));
        object.insert("description".into(), Value::String(description.into()));
        object.insert("parameters".into(), parameters);
        FunctionSpec { name, object }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole object, as it will be printed.
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }
}

impl TryFrom<Map<String, Value>> for FunctionSpec {
    type Error = String;

    fn try_from(object: Map<String, Value>) -> std::result::Result<Self, String> {
        match object.get("name") {
            Some(Value::String(name)) => Ok(FunctionSpec {
                name: name.clone(),
                object,
            }),
            _ => Err("a function tool needs a string \"name\" in its \"function\" object".into()),
        }
    }
}

impl From<FunctionSpec> for Map<String, Value> {
    fn from(spec: FunctionSpec) -> Self {
        spec.object
    }
}

/// A whole conversation: the `{"messages": [...]}` document the CLI reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The turns, oldest first.
    pub messages: Vec<Message>,
}

impl Conversation {
    /// Reads `{"messages": [...]}`.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(Error::Conversation)?;
        if !value.get("messages").is_some_and(Value::is_array) {
            return Err(Error::NotAConversation);
        }
        serde_json::from_value(value).map_err(Error::Conversation)
    }

    /// Writes `{"messages": [...]}`.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
