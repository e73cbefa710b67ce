//! The request bodies of the OpenAI API, typed and read strictly enough to say which field is
//! wrong.

use serde::{Deserialize, Serialize};
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A request made of the fields every endpoint shares and its own.
pub trait WithCommon: serde::de::DeserializeOwned {
    /// Puts the shared fields in.
    fn set_common(&mut self, common: Common);

    /// The shared fields.
    fn common(&self) -> &Common;
}

/// Reads JSON bytes into `T`, naming the field that does not fit. Typed, from the bytes: no
/// JSON tree of the body is built (a tree costs several times the body's size).
fn read_typed<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(
                None,
                format!("the body is not valid JSON ({inner}); send a JSON object"),
            );
        }
        let param = (path != ".").then_some(path);
        ApiError::invalid(param, inner.to_string())
    })?;
    de.end().map_err(|e| {
        ApiError::invalid(
            None,
            format!("the body is not valid JSON ({e}); send one JSON object"),
        )
    })?;
    Ok(value)
}

/// Reads a JSON body into a request, naming the field that does not fit.
pub fn read_body<T: WithCommon>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut request: T = read_object(bytes)?;
    let common: Common = read_typed(bytes)?;
    request.set_common(common);
    Ok(request)
}

/// Reads a JSON object body into `T`, naming the field that does not fit.
pub fn read_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|at| bytes[at]) {
        None => {
            return Err(ApiError::invalid(
                None,
                "the request has no body: send a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) => return Err(ApiError::invalid(None, "the body must be a JSON object")),
    }
    read_typed(bytes)
}

/// `stop`: one string or up to four.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The non-empty stop strings, at most four.
    pub fn strings(stop: &Option<Stop>) -> Result<Vec<String>, ApiError> {
        let all = match stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if all.len() > 4 {
            return Err(ApiError::invalid(
                Some("stop".into()),
                format!("stop has {} strings; at most 4 are allowed", all.len()),
            ));
        }
        Ok(all.into_iter().filter(|s| !s.is_empty()).collect())
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// What both endpoints share: sampling, limits and streaming.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    /// The model's name, as `/v1/models` lists it.
    pub model: String,
    /// Stream chunks as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// The most tokens to generate (older name).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The most tokens to generate.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2; 0 is greedy.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Seed for reproducible sampling.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Strings that end the generation (not included in the output).
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Choices to generate; only 1.
    #[serde(default)]
    pub n: Option<u32>,
    /// Log probabilities are not offered.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

impl Common {
    /// Checks the fields every request shares.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid(
                Some("n".into()),
                "only n = 1 is supported: send one request per choice",
            ));
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ApiError::invalid(
                Some("temperature".into()),
                format!("temperature {t} is outside 0 to 2"),
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ApiError::invalid(
                Some("top_p".into()),
                format!("top_p {p} must be above 0 and at most 1"),
            ));
        }
        if matches!(self.logprobs, Some(Value::Bool(true)))
            || matches!(self.logprobs, Some(Value::Number(_)))
        {
            return Err(ApiError::invalid(
                Some("logprobs".into()),
                "log probabilities are not offered by this server",
            ));
        }
        if self.max_limit() == Some(0) {
            return Err(ApiError::invalid(
                Some(self.max_field().into()),
                "the token limit must be at least 1",
            ));
        }
        Ok(())
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    fn max_field(&self) -> &'static str {
        if self.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        }
    }

    /// Whether to stream.
    pub fn streaming(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub fn usage_chunk(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// What every request has (read separately, so errors name their field).
    #[serde(skip)]
    pub common: Common,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Function tools.
    #[serde(default)]
    pub tools: Option<Vec<ToolDef>>,
    /// `auto`, `none`, `required` or `{"type": "function", "function": {"name": ...}}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Only `{"type": "text"}`.
    #[serde(default)]
    pub response_format: Option<Value>,
}

impl WithCommon for ChatRequest {
    fn set_common(&mut self, common: Common) {
        self.common = common;
    }

    fn common(&self) -> &Common {
        &self.common
    }
}

impl WithCommon for CompletionRequest {
    fn set_common(&mut self, common: Common) {
        self.common = common;
    }

    fn common(&self) -> &Common {
        &self.common
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    /// Instructions.
    System {
        /// Text, or text parts.
        content: Value,
    },
    /// Instructions (the newer name).
    Developer {
        /// Text, or text parts.
        content: Value,
    },
    /// The person.
    User {
        /// Text, or text parts.
        content: Value,
    },
    /// The model's earlier turn.
    Assistant {
        /// Text, or text parts, or null with `tool_calls`.
        #[serde(default)]
        content: Option<Value>,
        /// The calls it made.
        #[serde(default)]
        tool_calls: Option<Vec<ToolCallIn>>,
    },
    /// A tool's result.
    Tool {
        /// Text, or text parts.
        content: Value,
        /// The id of the call it answers: results are put in their calls' order by it (GLM-4
        /// reads them in order).
        #[serde(default)]
        tool_call_id: Option<String>,
    },
}

impl ChatMessage {
    /// The bytes of its text and calls as sent: about what it adds to the prompt as text.
    pub fn text_bytes(&self) -> usize {
        fn of(content: &Value) -> usize {
            match content {
                Value::String(s) => s.len(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| p.get("text").and_then(Value::as_str).map_or(0, str::len))
                    .sum(),
                _ => 0,
            }
        }
        match self {
            ChatMessage::System { content }
            | ChatMessage::Developer { content }
            | ChatMessage::User { content }
            | ChatMessage::Tool { content, .. } => of(content),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let calls: usize = tool_calls
                    .iter()
                    .flatten()
                    .map(|c| c.function.name.len() + c.function.arguments_text().len())
                    .sum();
                content.as_ref().map_or(0, of) + calls
            }
        }
    }
}

/// A call in an earlier assistant message.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCallIn {
    /// Its id, which the results name.
    #[serde(default)]
    pub id: Option<String>,
    /// The function and its arguments.
    pub function: FunctionCallIn,
}

/// The function of a call.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCallIn {
    /// Its name.
    pub name: String,
    /// Its arguments as JSON text (an object is accepted too).
    #[serde(default)]
    pub arguments: Value,
}

impl FunctionCallIn {
    /// The arguments as the text the model wrote.
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolDef {
    /// Only `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `{"name", "description", "parameters", ...}`, rendered as given.
    #[serde(default)]
    pub function: Option<Map<String, Value>>,
}

/// The text of a message's `content`: a string, or an array of `{"type": "text", "text": ...}`.
pub fn content_text(content: &Value, param: &str) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, part) in parts.iter().enumerate() {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => out.push_str(text),
                    (Some(kind), _) if kind != "text" => {
                        return Err(ApiError::invalid(
                            Some(format!("{param}[{i}].type")),
                            format!(
                                "content parts of type `{kind}` are not supported: GLM-4-9B-Chat reads text only"
                            ),
                        ));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            Some(format!("{param}[{i}]")),
                            "a content part needs \"type\": \"text\" and a string \"text\"",
                        ));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(ApiError::invalid(
            Some(param.to_owned()),
            "content must be a string or an array of text parts",
        )),
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// What every request has (read separately, so errors name their field).
    #[serde(skip)]
    pub common: Common,
    /// Text (control tokens spelled out are read as control tokens) or token ids.
    pub prompt: Value,
    /// Echoing the prompt is not offered.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Send the generated token ids with the text (`choices[0].token_ids`), as vLLM does.
    #[serde(default)]
    pub return_token_ids: Option<bool>,
    /// The answer's structure, enforced while decoding (glm-agent's own field, which another
    /// glm-agent's engine sends).
    #[serde(default)]
    pub structured: Option<glm_agent::engine::Structured>,
}

/// A valid function name: what OpenAI accepts.
pub fn valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = read_body::<ChatRequest>(
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"}"#,
        )
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("max_tokens"), "{err:?}");
        let err = read_body::<ChatRequest>(br#"{"model": "m", "messages": [{"role": "robot"}]}"#)
            .unwrap_err();
        assert!(err.param.unwrap().starts_with("messages[0]"));
        let err = read_body::<ChatRequest>(b"{not json").unwrap_err();
        assert!(err.message.contains("not valid JSON"));
        // Unknown fields are ignored, as OpenAI's own server does for forward compatibility.
        let ok = read_body::<ChatRequest>(
            br#"{"model": "m", "messages": [], "frequency_penalty": 0, "user": "u"}"#,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn content_parts_are_text_only() {
        let parts = json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]);
        assert_eq!(content_text(&parts, "messages[0].content").unwrap(), "ab");
        let image = json!([{"type": "image_url", "image_url": {"url": "x"}}]);
        let err = content_text(&image, "messages[0].content").unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn function_names_follow_openai() {
        assert!(valid_function_name("get_weather-2"));
        assert!(!valid_function_name(""));
        assert!(!valid_function_name("a b"));
        assert!(!valid_function_name("../x"));
        assert!(!valid_function_name(&"a".repeat(65)));
    }
}
