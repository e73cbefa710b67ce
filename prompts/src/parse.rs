//! Raw model output -> an answer, a tool call, or a malformed call.
//!
//! The one place where model text becomes a tool call. Rules (see the crate docs):
//! cut at the first stop token, split on `<|assistant|>` and keep the last segment, read the
//! first line as a tool name; a first line that is not a declared tool means an answer.

use serde::Serialize;
use serde_json::{Value, json};

use crate::browser::BrowserCall;
use crate::message::{Message, Role, ToolSpec};
use crate::tokens::SpecialToken;

/// How a declared tool's arguments are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// A JSON object.
    Function,
    /// Python source, optionally in a ```python fence.
    Python,
    /// One `search`/`mclick`/`open_url` call.
    SimpleBrowser,
}

/// The tools a model was offered, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclaredTools {
    tools: Vec<(String, ToolKind)>,
}

impl DeclaredTools {
    /// Declares tools by name: `python` and `simple_browser` are the built-ins, any other name
    /// is a function tool.
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut out = DeclaredTools::default();
        for name in names {
            let name = name.into();
            let kind = match name.as_str() {
                "python" => ToolKind::Python,
                "simple_browser" => ToolKind::SimpleBrowser,
                _ => ToolKind::Function,
            };
            out.add(name, kind);
        }
        out
    }

    /// The tools declared anywhere in a conversation (`cogview` is not run here, so its calls
    /// read as answers).
    pub fn from_messages(messages: &[Message]) -> Self {
        let mut out = DeclaredTools::default();
        for spec in messages.iter().filter_map(|m| m.tools.as_ref()).flatten() {
            let kind = match spec {
                ToolSpec::Function { .. } => ToolKind::Function,
                ToolSpec::Python => ToolKind::Python,
                ToolSpec::SimpleBrowser => ToolKind::SimpleBrowser,
                ToolSpec::Cogview => continue,
            };
            out.add(spec.name().to_owned(), kind);
        }
        out
    }

    /// Adds one tool; a later declaration of the same name wins.
    pub fn add(&mut self, name: String, kind: ToolKind) {
        self.tools.retain(|(n, _)| *n != name);
        self.tools.push((name, kind));
    }

    /// How `name`'s arguments are written, if it is declared.
    pub fn kind(&self, name: &str) -> Option<ToolKind> {
        self.tools.iter().find(|(n, _)| n == name).map(|(_, k)| *k)
    }

    /// Declared names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|(n, _)| n.as_str())
    }
}

/// Parsed arguments of a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Arguments {
    /// A function tool's JSON object.
    Json(Value),
    /// The python tool's code, fences removed.
    Python {
        /// Source to run.
        code: String,
    },
    /// A simple_browser command.
    Browser(BrowserCall),
}

/// A call as the model wrote it: the tool name line and the argument text, kept byte for byte
/// so that the call goes back into history exactly as generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The first line as written (the tool name, possibly with surrounding spaces).
    pub header: String,
    /// Everything after the first newline, up to the stop token.
    pub body: String,
}

impl Written {
    /// The history turn for this call: `{role: assistant, metadata: header, content: body}`.
    /// Rendered, it gives back `<|assistant|>` followed by the bytes the model wrote.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.body.clone(),
            metadata: Some(self.header.clone()),
            tools: None,
        }
    }
}

/// A well-formed call to a declared tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The parsed arguments.
    pub arguments: Arguments,
    /// What the model wrote.
    pub written: Written,
}

/// A call to a declared tool whose arguments do not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// The tool the model tried to call.
    pub name: String,
    /// What is wrong, in words the model can act on.
    pub reason: String,
    /// What the model wrote.
    pub written: Written,
}

/// The result of reading one model output.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A final answer (trimmed).
    Answer(String),
    /// A tool call.
    Call(ToolCall),
    /// An attempted call that cannot run.
    Malformed(Malformed),
}

impl Parsed {
    /// The JSON shape the `prompt parse` command prints.
    pub fn to_json(&self) -> Value {
        match self {
            Parsed::Answer(text) => json!({"kind": "answer", "text": text}),
            Parsed::Call(call) => {
                json!({"kind": "call", "name": call.name, "arguments": call.arguments})
            }
            Parsed::Malformed(bad) => {
                json!({"kind": "malformed", "name": bad.name, "reason": bad.reason})
            }
        }
    }
}

/// Reads raw model output (control tokens kept visible) given the declared tools.
pub fn parse(output: &str, tools: &DeclaredTools) -> Parsed {
    let text = cut_at_stop(output);
    let last = text
        .rsplit(SpecialToken::Assistant.as_str())
        .next()
        .unwrap_or(text);
    let (header, body) = last.split_once('\n').unwrap_or((last, ""));
    let name = header.trim();
    let Some(kind) = tools.kind(name).filter(|_| !name.is_empty()) else {
        return Parsed::Answer(last.trim().to_owned());
    };
    let written = Written {
        header: header.to_owned(),
        body: body.to_owned(),
    };
    match parse_arguments(kind, name, body) {
        Ok(arguments) => Parsed::Call(ToolCall {
            name: name.to_owned(),
            arguments,
            written,
        }),
        Err(reason) => Parsed::Malformed(Malformed {
            name: name.to_owned(),
            reason,
            written,
        }),
    }
}

/// Everything before the first stop token.
fn cut_at_stop(output: &str) -> &str {
    let end = SpecialToken::STOPS
        .iter()
        .filter_map(|t| output.find(t.as_str()))
        .min()
        .unwrap_or(output.len());
    &output[..end]
}

fn parse_arguments(kind: ToolKind, name: &str, body: &str) -> Result<Arguments, String> {
    match kind {
        ToolKind::Function => parse_json_arguments(name, body),
        ToolKind::Python => {
            let code = strip_fence(body.trim());
            if code.trim().is_empty() {
                return Err(
                    "the python call has no code; write the code on the lines after `python`"
                        .into(),
                );
            }
            Ok(Arguments::Python {
                code: code.to_owned(),
            })
        }
        ToolKind::SimpleBrowser => BrowserCall::parse(strip_fence(body.trim()))
            .map(Arguments::Browser)
            .map_err(|reason| format!("the simple_browser call does not parse: {reason}")),
    }
}

fn parse_json_arguments(name: &str, body: &str) -> Result<Arguments, String> {
    let text = strip_fence(body.trim());
    if text.trim().is_empty() {
        return Err(format!(
            "the call to `{name}` has no arguments; write them as one JSON object on the line after the name (`{{}}` when there are none)"
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(Arguments::Json(value)),
        Ok(other) => Err(format!(
            "the arguments to `{name}` must be a JSON object, got {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!(
            "the arguments to `{name}` are not valid JSON ({e}); write them as one JSON object such as {{\"key\": \"value\"}}"
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Removes one Markdown code fence around `text`: a first line starting with three backticks
/// (any info string) and the last line that is exactly three backticks. Text after that
/// closing fence is dropped. Inner fences are kept.
fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some((_info, inner)) = rest.split_once('\n') else {
        return text;
    };
    let mut end = None;
    let mut offset = 0;
    for line in inner.split_inclusive('\n') {
        if line.trim() == "```" {
            end = Some(offset);
        }
        offset += line.len();
    }
    match end {
        Some(end) => inner[..end].trim_end_matches(['\n', '\r']),
        None => inner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_stripping() {
        assert_eq!(strip_fence("```python\nx = 1\n```"), "x = 1");
        assert_eq!(strip_fence("```\nx\n```\nprose"), "x");
        assert_eq!(strip_fence("```json\n{}"), "{}");
        assert_eq!(
            strip_fence("```python\ns = '''\n```\n'''\nprint(s)\n```"),
            "s = '''\n```\n'''\nprint(s)"
        );
        assert_eq!(strip_fence("plain"), "plain");
        assert_eq!(strip_fence("```"), "```");
    }
}
