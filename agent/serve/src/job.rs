//! A request checked and turned into a job: its prompt ids, its limits, how its answer is read.
//! Nothing here touches the network; it runs off the async workers (see `routes`).

use glm_agent::engine::{GenerateRequest, Sampling, Structured, Structures};
use glm_prompts::Segments;
use serde_json::{Value, json};

use crate::Server;
use crate::api::{ChatMessage, ChatRequest, Common, CompletionRequest, Stop, content_text};
use crate::error::ApiError;
use crate::prompt::{PrefixHash, chat_prompt, tool_specs};

/// What a chat request forces at the start of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The model decides.
    Auto,
    /// No call: the answer starts as content.
    None,
    /// One of the tools.
    Required,
    /// This tool.
    Named(String),
}

/// Reads `tool_choice` against the offered tools.
pub(crate) fn tool_choice(value: &Option<Value>, names: &[String]) -> Result<Choice, ApiError> {
    let param = || Some("tool_choice".to_owned());
    let choice = match value {
        None | Some(Value::Null) => Choice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            other => {
                return Err(ApiError::invalid(
                    param(),
                    format!(
                        "tool_choice `{other}` is not one of auto, none, required or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                    ),
                ));
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => Choice::Named(name.to_owned()),
                _ => {
                    return Err(ApiError::invalid(
                        param(),
                        "a named tool_choice is {\"type\": \"function\", \"function\": {\"name\": \"...\"}}",
                    ));
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                param(),
                "tool_choice must be a string or an object",
            ));
        }
    };
    match &choice {
        Choice::Required if names.is_empty() => Err(ApiError::invalid(
            param(),
            "tool_choice is `required` but the request offers no tools",
        )),
        Choice::Named(n) if !names.contains(n) => Err(ApiError::invalid(
            param(),
            format!("tool_choice names `{n}`, which is not among the request's tools"),
        )),
        _ => Ok(choice),
    }
}

/// Which endpoint a job answers.
pub(crate) enum Kind {
    /// Chat: the answer is read into content and calls.
    Chat {
        /// The tools offered.
        names: Vec<String>,
        /// The hash of the prompt up to `<|assistant|>`, for remembering the answer.
        hash: PrefixHash,
        /// The forced start: its text (read as the answer's beginning) and its ids.
        prefill: (String, Vec<u32>),
    },
    /// A raw completion; `token_ids` asks for the generated ids beside the text (vLLM's
    /// `return_token_ids`), so a client can keep them exactly.
    Completion {
        /// Whether the ids are sent.
        token_ids: bool,
    },
}

/// A checked request, ready to run.
#[allow(missing_docs)]
pub(crate) struct Job {
    pub kind: Kind,
    pub request: GenerateRequest,
    pub stream: bool,
    pub usage_chunk: bool,
    pub stops: Vec<String>,
    /// Makes the response's ids (`chatcmpl-…`, `call_…`).
    pub number: u64,
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    pub endpoint: &'static str,
    /// What a trace records of the request (null when no trace is written).
    pub trace: Value,
    /// The last user message, for a trace's start event.
    pub task: String,
    /// The tools as declared, for a trace's start event.
    pub tools: Vec<Value>,
    /// A Responses request's own fields (none for chat and completions).
    pub responses: Option<Box<crate::responses::Meta>>,
}

fn sampling(server: &Server, common: &Common) -> Sampling {
    let mut s = server.options.sampling.clone();
    if let Some(t) = common.temperature {
        s.temperature = t;
        s.greedy = t <= 1e-5;
    }
    if let Some(p) = common.top_p {
        s.top_p = p;
    }
    if let Some(seed) = common.seed {
        s.seed = Some(seed as u64);
    }
    s
}

/// The most new tokens: the request's limit, checked against the context, else the default.
fn limit(server: &Server, prompt_len: usize, common: &Common) -> Result<u32, ApiError> {
    let asked = common.max_limit();
    let field = if common.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let Some(context) = server.context() else {
        return Ok(asked.unwrap_or(server.options.default_max_tokens.max(1)));
    };
    if prompt_len >= context {
        return Err(ApiError::invalid(
            Some("messages".into()),
            format!("This model's maximum context length is {context} tokens, and the prompt has {prompt_len}: shorten the messages."),
        )
        .code("context_length_exceeded"));
    }
    let room = context - prompt_len;
    match asked {
        Some(m) if m as usize > room => Err(ApiError::invalid(
            Some(field.into()),
            format!("This model's maximum context length is {context} tokens; the prompt has {prompt_len} and {field} asks for {m}: ask for at most {room}."),
        )
        .code("context_length_exceeded")),
        Some(m) => Ok(m),
        None => Ok(server.options.default_max_tokens.max(1).min(room as u32)),
    }
}

/// Checks a chat request and builds its prompt; `body` is the request's bytes, for a trace.
pub(crate) fn chat_job(
    server: &Server,
    request: ChatRequest,
    body: &[u8],
) -> Result<Job, ApiError> {
    request.common.check()?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages".into()),
            "messages must hold at least one message",
        ));
    }
    let schema = response_schema(&request.response_format)?;
    let tools = request.tools.as_deref().unwrap_or(&[]);
    check_prompt_size(server, tools, &request.messages)?;
    let specs = tool_specs(tools)?;
    let names: Vec<String> = specs.iter().map(|s| s.name().to_owned()).collect();
    let choice = tool_choice(&request.tool_choice, &names)?;
    let tracing = server.options.trace_dir.is_some();
    let declared: Vec<Value> = if tracing {
        specs
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect()
    } else {
        Vec::new()
    };
    let built = chat_prompt(
        &server.encoder,
        &mut |_, key| server.memory.get(key),
        specs,
        &request.messages,
    )?;
    let mut forced = Forced::of(server, &choice, &names)?;
    let structured = structured(server, schema, &choice, &names, &mut forced)?;
    let mut ids = built.ids;
    ids.extend(&forced.ids);
    let max_new = limit(server, ids.len(), &request.common)?;
    // Under `none` no segment of the answer is read as a call.
    let readable = if choice == Choice::None {
        Vec::new()
    } else {
        names
    };
    let stops = Stop::strings(&request.common.stop)?;
    let (task, trace) = if tracing {
        let remembered: Vec<Value> = built
            .remembered
            .iter()
            .map(|(i, ids)| json!({"message": i, "ids": ids}))
            .collect();
        let trace = json!({
            "endpoint": "chat.completions", "request": body_value(body),
            "remembered": remembered, "prefill": forced.text, "calls_read": readable,
            "stop": stops,
        });
        (last_user_text(&request.messages), trace)
    } else {
        (String::new(), Value::Null)
    };
    let mut generate = generate_request(server, &request.common, ids, max_new, forced.starts_with);
    generate.structured = structured;
    let kind = Kind::Chat {
        names: readable,
        hash: built.hash,
        prefill: (forced.text, forced.ids),
    };
    Ok(Job {
        tools: declared,
        task,
        ..Job::new(server, &request.common, generate, kind, stops, trace)
    })
}

/// The JSON Schema `response_format` asks the answer to match (`{"type": "object"}` for
/// `json_object`); none for text. The chat form (`{"type": "json_schema", "json_schema":
/// {"name", "schema"}}`) and the Responses form (`{"type": "json_schema", "name", "schema"}`) are
/// both read.
fn response_schema(format: &Option<Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = format.as_ref().filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let param = |p: &str| Some(format!("response_format{p}"));
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .or_else(|| format.get("schema"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            if !(schema.is_object() || schema == Value::Bool(true)) {
                return Err(ApiError::invalid(
                    param(".json_schema.schema"),
                    "the schema must be a JSON Schema object",
                ));
            }
            Ok(Some(schema))
        }
        _ => Err(ApiError::invalid(
            param(".type"),
            "response_format's type is text, json_object or json_schema",
        )),
    }
}

/// The structure a JSON answer is held to while decoding, as the engine can enforce it: with
/// calls beside it when the model may still call (tool_choice auto), alone otherwise; none when
/// the answer must be a call. An engine that enforces JSON but not calls gets the answer's
/// leading newline in the prompt; one that enforces nothing is refused, never trusted.
fn structured(
    server: &Server,
    schema: Option<Value>,
    choice: &Choice,
    names: &[String],
    forced: &mut Forced,
) -> Result<Option<Structured>, ApiError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let calls = match choice {
        Choice::Required | Choice::Named(_) => return Ok(None),
        Choice::Auto => names.to_vec(),
        Choice::None => Vec::new(),
    };
    // A text answer starts with a newline, which tool_choice none already forced.
    let lead = if forced.text.is_empty() { "\n" } else { "" };
    let refuse = |message: &str| {
        Err(ApiError::invalid(
            Some("response_format".into()),
            message.to_owned(),
        ))
    };
    match server.engine.structures() {
        Structures::JsonOrCalls => Ok(Some(Structured {
            schema,
            lead: lead.into(),
            calls,
            text_calls: Vec::new(),
        })),
        Structures::Json if calls.is_empty() => {
            forced.text.push_str(lead);
            forced.ids.extend(
                server
                    .encoder
                    .encode_text(lead)
                    .map_err(|e| ApiError::server(format!("cannot encode: {e}")))?,
            );
            Ok(Some(Structured {
                schema,
                lead: String::new(),
                calls,
                text_calls: Vec::new(),
            }))
        }
        Structures::Json => refuse(
            "this server's engine enforces a JSON answer but not a choice between it and a call: send tool_choice none with response_format, or no tools",
        ),
        Structures::None => refuse(
            "this server's engine cannot enforce a JSON answer while decoding (the embedded engine and llama.cpp, vLLM or glm-agent upstreams can): describe the JSON in the prompt instead",
        ),
    }
}

/// What `tool_choice` forces at the start of the answer: text written for the model, or a set of
/// starts the engine keeps decoding to.
struct Forced {
    text: String,
    ids: Vec<u32>,
    starts_with: Vec<Vec<u32>>,
}

impl Forced {
    fn of(server: &Server, choice: &Choice, names: &[String]) -> Result<Forced, ApiError> {
        let (text, starts): (String, Vec<String>) = match choice {
            Choice::Auto => (String::new(), Vec::new()),
            Choice::None if names.is_empty() => (String::new(), Vec::new()),
            Choice::None => ("\n".into(), Vec::new()),
            Choice::Required if names.len() == 1 => (format!("{}\n", names[0]), Vec::new()),
            Choice::Required => (
                String::new(),
                names.iter().map(|n| format!("{n}\n")).collect(),
            ),
            Choice::Named(n) => (format!("{n}\n"), Vec::new()),
        };
        if !starts.is_empty() && !server.engine.constrains() {
            return Err(ApiError::invalid(
                Some("tool_choice".into()),
                "tool_choice `required` with several tools needs an engine that constrains decoding (the embedded one); name the function instead",
            ));
        }
        let encode = |text: &str| {
            server
                .encoder
                .encode_text(text)
                .map_err(|e| ApiError::server(format!("cannot encode: {e}")))
        };
        Ok(Forced {
            ids: encode(&text)?,
            starts_with: starts
                .iter()
                .map(|s| encode(s))
                .collect::<Result<Vec<_>, _>>()?,
            text,
        })
    }
}

/// The request as received, for a trace (its bytes, when they are not one JSON value).
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn last_user_text(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ChatMessage::User { content } => content_text(content, "").ok(),
            _ => None,
        })
        .unwrap_or_default()
}

/// Refuses a request whose prompt would be too large to build before anything is rendered or
/// encoded: the tools' rendered size (indentation grows with depth, so a deeply nested schema
/// renders to many times its bytes) is bounded from their JSON, and each message's text by its
/// bytes.
fn check_prompt_size(
    server: &Server,
    tools: &[crate::api::ToolDef],
    messages: &[ChatMessage],
) -> Result<(), ApiError> {
    let limits = &server.options.limits;
    if tools.len() > limits.max_tools {
        return Err(ApiError::invalid(
            Some("tools".into()),
            format!(
                "the request offers {} tools; at most {} are accepted",
                tools.len(),
                limits.max_tools
            ),
        ));
    }
    let mut bytes = 0usize;
    for (i, tool) in tools.iter().enumerate() {
        let Some(function) = &tool.function else {
            continue;
        };
        let mut size = crate::prompt::RenderedSize::new(limits.max_schema_depth);
        for (key, value) in function {
            size.add(key, value, 1);
        }
        if size.too_deep {
            return Err(ApiError::invalid(
                Some(format!("tools[{i}].function")),
                format!(
                    "the tool's JSON nests deeper than {} levels: flatten its schema",
                    limits.max_schema_depth
                ),
            ));
        }
        bytes = bytes.saturating_add(size.bytes);
    }
    for message in messages {
        bytes = bytes.saturating_add(message.text_bytes());
    }
    if bytes > limits.max_prompt_bytes {
        return Err(ApiError::invalid(
            Some("messages".into()),
            format!(
                "the prompt would be about {} MiB as text, over this server's {} MiB: shorten the messages or the tools",
                bytes >> 20,
                limits.max_prompt_bytes >> 20
            ),
        )
        .code("context_length_exceeded"));
    }
    Ok(())
}

/// Checks a raw completion request.
pub(crate) fn completion_job(
    server: &Server,
    request: CompletionRequest,
    _body: &[u8],
) -> Result<Job, ApiError> {
    request.common.check()?;
    if request.echo == Some(true) {
        return Err(ApiError::invalid(
            Some("echo".into()),
            "echo is not offered: the prompt is what you sent",
        ));
    }
    let param = || Some("prompt".to_owned());
    let one = match &request.prompt {
        Value::Array(items) if items.len() == 1 && !items[0].is_number() => items[0].clone(),
        Value::Array(items) if items.is_empty() || items.iter().any(|i| !i.is_number()) => {
            return Err(ApiError::invalid(
                param(),
                "send one prompt per request: a string or an array of token ids",
            ));
        }
        other => other.clone(),
    };
    let ids: Vec<u32> = match &one {
        Value::String(text) if text.len() > server.options.limits.max_prompt_bytes => {
            return Err(ApiError::invalid(
                param(),
                format!(
                    "the prompt has {} MiB of text, over this server's {} MiB",
                    text.len() >> 20,
                    server.options.limits.max_prompt_bytes >> 20
                ),
            )
            .code("context_length_exceeded"));
        }
        Value::String(text) => server
            .encoder
            .encode(&Segments::from_spelled(text).0)
            .map_err(|e| ApiError::server(format!("cannot encode the prompt: {e}")))?,
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| ApiError::invalid(param(), "token ids must be integers from 0"))?,
        _ => {
            return Err(ApiError::invalid(
                param(),
                "prompt must be a string or an array of token ids",
            ));
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid(param(), "the prompt is empty"));
    }
    let max_new = limit(server, ids.len(), &request.common)?;
    let stops = Stop::strings(&request.common.stop)?;
    let trace = if server.options.trace_dir.is_some() {
        json!({"endpoint": "completions", "prompt": ids})
    } else {
        Value::Null
    };
    let mut generate = generate_request(server, &request.common, ids, max_new, Vec::new());
    if let Some(structured) = request.structured {
        let enforced = match server.engine.structures() {
            Structures::JsonOrCalls => true,
            Structures::Json => {
                structured.lead.is_empty()
                    && structured.calls.is_empty()
                    && structured.text_calls.is_empty()
            }
            Structures::None => false,
        };
        if !enforced {
            return Err(ApiError::invalid(
                Some("structured".into()),
                "this server's engine cannot enforce that structure while decoding",
            ));
        }
        generate.structured = Some(structured);
    }
    Ok(Job::new(
        server,
        &request.common,
        generate,
        Kind::Completion {
            token_ids: request.return_token_ids == Some(true),
        },
        stops,
        trace,
    ))
}

fn generate_request(
    server: &Server,
    common: &Common,
    prompt: Vec<u32>,
    max_new_tokens: u32,
    starts_with: Vec<Vec<u32>>,
) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: sampling(server, common),
        max_new_tokens,
        stop_ids: server.encoder.special_ids().stop_ids(),
        starts_with,
        structured: None,
    }
}

impl Job {
    fn new(
        server: &Server,
        common: &Common,
        request: GenerateRequest,
        kind: Kind,
        stops: Vec<String>,
        trace: Value,
    ) -> Job {
        let endpoint = match kind {
            Kind::Chat { .. } => "/v1/chat/completions",
            Kind::Completion { .. } => "/v1/completions",
        };
        Job {
            kind,
            request,
            stream: common.streaming(),
            usage_chunk: common.usage_chunk(),
            stops,
            number: server.next_id(),
            model: server.options.model_name.clone(),
            created: now(),
            endpoint,
            trace,
            task: String::new(),
            tools: Vec::new(),
            responses: None,
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_choice_is_checked_against_the_tools() {
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(tool_choice(&None, &names).unwrap(), Choice::Auto);
        assert_eq!(
            tool_choice(&Some(json!("required")), &names).unwrap(),
            Choice::Required
        );
        assert_eq!(
            tool_choice(
                &Some(json!({"type": "function", "function": {"name": "b"}})),
                &names
            )
            .unwrap(),
            Choice::Named("b".into())
        );
        for bad in [
            json!("sometimes"),
            json!({"type": "function", "function": {"name": "c"}}),
            json!(3),
        ] {
            let err = tool_choice(&Some(bad), &names).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("tool_choice"));
        }
        assert!(tool_choice(&Some(json!("required")), &[]).is_err());
    }
}
