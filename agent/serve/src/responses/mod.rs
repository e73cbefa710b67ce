//! `POST /v1/responses`: the Responses API read into the same conversation a chat request makes
//! (so GLM-4's prompt, its calls and the token-exact follow-ups are the chat endpoint's own), and
//! answered as Responses items and events ([`stream`]). Responses are kept in memory for
//! `previous_response_id`, each holding only what it added and naming its parent, within a
//! count and a byte budget ([`Stored`]).

pub(crate) mod store;
pub(crate) mod stream;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Server;
use crate::api::{ChatMessage, ChatRequest, Common, FunctionCallIn, ToolCallIn, ToolDef};
use crate::error::ApiError;
use crate::job::{self, Job};

pub(crate) use store::Stored;

/// `POST /v1/responses`, as read: the fields this server acts on (others are accepted and
/// ignored, as OpenAI's own server does for fields it does not know).
#[derive(Debug, Deserialize)]
pub(crate) struct ResponsesRequest {
    pub model: String,
    pub input: Input,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Map<String, Value>>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub text: Option<TextOptions>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// `text`: the answer's format.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TextOptions {
    #[serde(default)]
    pub format: Option<Value>,
}

/// `input`: one user message as text, or items.
#[derive(Debug)]
pub(crate) enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// The most input items one request may hold: each costs a few hundred bytes as read, so a
/// body of tiny items would cost many times its size.
pub(crate) const MAX_ITEMS: usize = 100_000;

/// Read straight from the body (no buffered copy of the input), items refused as soon as there
/// are more than [`MAX_ITEMS`].
impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Input;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a string or an array of at most {MAX_ITEMS} input items")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Input, E> {
                Ok(Input::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Input, E> {
                Ok(Input::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Input, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX_ITEMS {
                        return Err(serde::de::Error::custom(format!(
                            "input holds more than {MAX_ITEMS} items: send fewer, or follow a stored response by previous_response_id"
                        )));
                    }
                    items.push(item);
                }
                Ok(Input::Items(items))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One input item: a message (with or without `"type": "message"`), a `function_call` or a
/// `function_call_output`. Read loosely and checked by [`to_messages`], so an error names the
/// item and its field.
#[derive(Debug, Deserialize)]
pub(crate) struct Item {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    output: Option<Value>,
}

/// What a Responses job carries besides the chat job: what the response echoes and what is
/// stored of it.
pub(crate) struct Meta {
    pub instructions: Option<String>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub text_format: Value,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub metadata: Value,
    /// Whether the response is kept for `previous_response_id`.
    pub store: bool,
    /// The messages this request added to the conversation (its input, not the instructions
    /// and not what earlier responses hold), stored with the answer.
    pub added: Vec<ChatMessage>,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Some(param.into()), message)
}

/// The text of a Responses content: a string, or parts of type `input_text`, `output_text` or
/// `text`.
fn content_text(content: &Value, param: &str) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
                match (kind, part.get("text").and_then(Value::as_str)) {
                    ("input_text" | "output_text" | "text", Some(t)) => text.push_str(t),
                    ("refusal", _) => {
                        text.push_str(part.get("refusal").and_then(Value::as_str).unwrap_or(""))
                    }
                    ("input_text" | "output_text" | "text", None) => {
                        return Err(invalid(
                            format!("{param}[{i}].text"),
                            "a text part needs a string `text`",
                        ));
                    }
                    _ => {
                        return Err(invalid(
                            format!("{param}[{i}].type"),
                            format!(
                                "content parts of type `{}` are not supported: GLM-4-9B-Chat reads text only (input_text, output_text)",
                                crate::escape(kind, 60)
                            ),
                        ));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(invalid(
            param,
            "content must be a string or an array of text parts",
        )),
    }
}

/// A `message` item as a chat message.
fn message(item: &Item, at: &str) -> Result<ChatMessage, ApiError> {
    let content = item
        .content
        .as_ref()
        .ok_or_else(|| invalid(format!("{at}.content"), "a message needs content"))?;
    let text = Value::String(content_text(content, &format!("{at}.content"))?);
    Ok(match item.role.as_deref() {
        Some("user") => ChatMessage::User { content: text },
        Some("system") => ChatMessage::System { content: text },
        Some("developer") => ChatMessage::Developer { content: text },
        Some("assistant") => ChatMessage::Assistant {
            content: Some(text),
            tool_calls: None,
        },
        other => {
            return Err(invalid(
                format!("{at}.role"),
                format!(
                    "a message's role is user, system, developer or assistant, not `{}`",
                    crate::escape(other.unwrap_or("(none)"), 40)
                ),
            ));
        }
    })
}

/// The input items as chat messages, each with the request field it came from: a message's
/// role becomes the chat role, `function_call` items join the assistant message before them
/// (several calls of one answer are one message), `function_call_output` items become tool
/// results naming their calls.
pub(crate) fn to_messages(input: Input) -> Result<(Vec<ChatMessage>, Vec<String>), ApiError> {
    let items = match input {
        Input::Text(text) => {
            return Ok((
                vec![ChatMessage::User {
                    content: Value::String(text),
                }],
                vec!["input".into()],
            ));
        }
        Input::Items(items) => items,
    };
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(items.len());
    let mut origin = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let kind = item.kind.as_deref().unwrap_or("message");
        match kind {
            "message" => {
                messages.push(message(&item, &at)?);
                origin.push(at);
            }
            "function_call" => {
                let name = item.name.ok_or_else(|| {
                    invalid(format!("{at}.name"), "a function_call needs its name")
                })?;
                let call = ToolCallIn {
                    id: item.call_id,
                    function: FunctionCallIn {
                        name,
                        arguments: item.arguments.unwrap_or(Value::Null),
                    },
                };
                // A call joins the assistant message right before it: the text and the calls
                // of one answer.
                if let Some(ChatMessage::Assistant { tool_calls, .. }) = messages.last_mut() {
                    tool_calls.get_or_insert_with(Vec::new).push(call);
                } else {
                    messages.push(ChatMessage::Assistant {
                        content: None,
                        tool_calls: Some(vec![call]),
                    });
                    origin.push(at);
                }
            }
            "function_call_output" => {
                let output = item.output.as_ref().ok_or_else(|| {
                    invalid(
                        format!("{at}.output"),
                        "a function_call_output needs its output",
                    )
                })?;
                let text = content_text(output, &format!("{at}.output"))?;
                let call_id = item.call_id.ok_or_else(|| {
                    invalid(
                        format!("{at}.call_id"),
                        "a function_call_output names the call it answers by call_id",
                    )
                })?;
                messages.push(ChatMessage::Tool {
                    content: Value::String(text),
                    tool_call_id: Some(call_id),
                });
                origin.push(at);
            }
            // The model writes no reasoning items; a client that sends some back loses nothing.
            "reasoning" => {}
            other => {
                return Err(invalid(
                    format!("{at}.type"),
                    format!(
                        "input items of type `{}` are not supported: send message, function_call and function_call_output items",
                        crate::escape(other, 60)
                    ),
                ));
            }
        }
    }
    Ok((messages, origin))
}

/// The function tools as chat tools. Tools of other types (hosted tools such as web_search, or
/// namespaces) cannot be declared to GLM-4 and are left out: a client that offers them with its
/// functions (codex does) still gets its functions.
fn to_tools(tools: &[Map<String, Value>]) -> Result<Vec<ToolDef>, ApiError> {
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(_) => continue,
            None => return Err(invalid(format!("tools[{i}].type"), "a tool needs its type")),
        }
        let mut function = Map::new();
        for key in ["name", "description", "parameters"] {
            if let Some(v) = tool.get(key) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(ToolDef {
            kind: "function".into(),
            function: Some(function),
        });
    }
    Ok(out)
}

/// `tool_choice` in the chat form: `{"type": "function", "name": N}` becomes
/// `{"type": "function", "function": {"name": N}}`.
fn to_tool_choice(choice: &Option<Value>) -> Result<Option<Value>, ApiError> {
    match choice {
        Some(Value::Object(o)) => match (o.get("type").and_then(Value::as_str), o.get("name")) {
            (Some("function"), Some(name)) => Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            )),
            _ => Err(invalid(
                "tool_choice",
                "tool_choice is auto, none, required or {\"type\": \"function\", \"name\": \"...\"}",
            )),
        },
        other => Ok(other.clone()),
    }
}

/// Renames a chat error's `messages[k]…` to the Responses field it came from.
fn rename_param(mut error: ApiError, origin: &[String]) -> ApiError {
    let Some(param) = error.param.as_deref() else {
        return error;
    };
    if let Some(rest) = param.strip_prefix("messages[") {
        let (index, tail) = rest.split_once(']').unwrap_or((rest, ""));
        let named = index
            .parse::<usize>()
            .ok()
            .and_then(|k| origin.get(k))
            .map(|o| format!("{o}{tail}"));
        error.param = Some(named.unwrap_or_else(|| "input".into()));
    } else if param == "messages" {
        error.param = Some("input".into());
    } else if param == "max_completion_tokens" {
        error.param = Some("max_output_tokens".into());
    } else if param == "response_format" || param.starts_with("response_format.") {
        error.param = Some(param.replacen("response_format", "text.format", 1));
    }
    error
}

/// Checks a Responses request and builds its job: the conversation (the stored responses it
/// follows, the instructions, its input) as a chat request.
pub(crate) fn responses_job(
    server: &Server,
    request: ResponsesRequest,
    body: &[u8],
) -> Result<Job, ApiError> {
    let store = request.store.unwrap_or(true);
    let (added, added_origin) = to_messages(request.input)?;
    let mut messages = Vec::new();
    let mut origin = Vec::new();
    if let Some(text) = &request.instructions {
        messages.push(ChatMessage::System {
            content: Value::String(text.clone()),
        });
        origin.push("instructions".to_owned());
    }
    if let Some(previous) = &request.previous_response_id {
        let earlier = server.stored.conversation(previous)?;
        origin.extend(std::iter::repeat_n(
            "previous_response_id".to_owned(),
            earlier.len(),
        ));
        messages.extend(earlier);
    }
    messages.extend(added.iter().cloned());
    origin.extend(added_origin);
    let tools = to_tools(request.tools.as_deref().unwrap_or(&[]))?;
    let text_format = request
        .text
        .as_ref()
        .and_then(|t| t.format.clone())
        .unwrap_or_else(|| json!({"type": "text"}));
    let chat = ChatRequest {
        common: Common {
            model: request.model,
            stream: request.stream,
            max_completion_tokens: request.max_output_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            ..Common::default()
        },
        messages,
        tools: Some(tools),
        tool_choice: to_tool_choice(&request.tool_choice)?,
        response_format: Some(text_format.clone()),
    };
    // A trace records the request in its chat form (the stored responses it follows expanded),
    // which `replay` renders again; the Responses request itself beside it.
    let tracing = server.options.trace_dir.is_some();
    let chat_body = if tracing {
        serde_json::to_vec(&json!({
            "model": chat.common.model, "messages": chat.messages, "tools": chat.tools,
            "tool_choice": chat.tool_choice, "response_format": chat.response_format,
        }))
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut job = job::chat_job(server, chat, &chat_body).map_err(|e| rename_param(e, &origin))?;
    if tracing {
        job.trace["responses_request"] = serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    job.endpoint = "/v1/responses";
    job.responses = Some(Box::new(Meta {
        instructions: request.instructions,
        tools: request
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(Value::Object)
            .collect(),
        tool_choice: request.tool_choice.unwrap_or_else(|| json!("auto")),
        text_format,
        max_output_tokens: request.max_output_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
        previous_response_id: request.previous_response_id,
        metadata: request.metadata.unwrap_or_else(|| json!({})),
        store,
        added,
    }));
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(value: Value) -> Input {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn items_become_the_chat_conversation() {
        let (messages, origin) = to_messages(items(json!([
            {"role": "user", "content": "weather?"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c2", "output": "12:00"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "sunny"}]},
            {"type": "reasoning", "summary": []},
        ])))
        .unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(origin, ["input[0]", "input[1]", "input[4]", "input[5]"]);
        let ChatMessage::Assistant {
            content,
            tool_calls,
        } = &messages[1]
        else {
            panic!("{messages:?}")
        };
        assert_eq!(content.as_ref().unwrap(), "Checking.");
        assert_eq!(tool_calls.as_ref().unwrap().len(), 2);
        let ChatMessage::Tool { tool_call_id, .. } = &messages[3] else {
            panic!()
        };
        assert_eq!(tool_call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn a_bad_item_is_named() {
        for (input, param) in [
            (json!([{"type": "computer_call"}]), "input[0].type"),
            (json!([{"role": "robot", "content": "x"}]), "input[0].role"),
            (
                json!([{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]),
                "input[0].content[0].type",
            ),
            (
                json!([{"type": "function_call_output", "output": "x"}]),
                "input[0].call_id",
            ),
            (
                json!([{"type": "function_call", "arguments": "{}"}]),
                "input[0].name",
            ),
        ] {
            let err = to_messages(items(input)).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{err:?}");
        }
    }

    #[test]
    fn chat_errors_name_the_responses_field() {
        let origin = vec!["instructions".to_string(), "input[3]".to_string()];
        let err = rename_param(
            ApiError::invalid(Some("messages[1].tool_call_id".into()), "x"),
            &origin,
        );
        assert_eq!(err.param.as_deref(), Some("input[3].tool_call_id"));
    }

    #[test]
    fn only_function_tools_are_declared() {
        let tools: Vec<Map<String, Value>> = serde_json::from_value(json!([
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
            {"type": "web_search"},
            {"type": "namespace", "name": "n", "tools": []},
        ]))
        .unwrap();
        let out = to_tools(&tools).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].function.as_ref().unwrap()["name"], "f");
    }
}
