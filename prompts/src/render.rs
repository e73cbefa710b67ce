//! Conversation -> prompt, byte-identical to the official template under transformers'
//! settings (`trim_blocks`, `lstrip_blocks`, `tojson` = `json.dumps(indent=4,
//! ensure_ascii=False)` with key order kept).

use crate::builtin::{BROWSER_TEXT, COGVIEW_TEXT, PYTHON_TEXT, SELF_INTRO};
use crate::message::{Message, ToolSpec};
use crate::pyjson::dumps_object_indent;
use crate::tokens::SpecialToken;

/// A piece of a rendered prompt: a control token, or text that must be encoded as plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A control token; only the renderer creates these.
    Control(SpecialToken),
    /// Text, encoded with special-token matching off.
    Text(String),
}

/// A rendered prompt as a list of segments; adjacent text is merged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Segments(pub Vec<Segment>);

impl Segments {
    fn control(&mut self, token: SpecialToken) {
        self.0.push(Segment::Control(token));
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Segment::Text(last)) = self.0.last_mut() {
            last.push_str(text);
        } else {
            self.0.push(Segment::Text(text.to_owned()));
        }
    }

    /// The prompt text, control tokens spelled out.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Control(token) => out.push_str(token.as_str()),
                Segment::Text(text) => out.push_str(text),
            }
        }
        out
    }
}

impl Segments {
    /// Reads text in which control tokens are spelled out (a model's output, a raw prompt) as
    /// segments: each spelled token becomes [`Segment::Control`]. One pass over the text: every
    /// control token starts with `<` or `[`, so only those bytes are looked at, and each is
    /// compared with the ten tokens in place (linear in the text, whatever it holds).
    pub fn from_spelled(text: &str) -> Segments {
        let mut out = Segments::default();
        let bytes = text.as_bytes();
        let (mut start, mut at) = (0, 0);
        while at < bytes.len() {
            let found = match bytes[at] {
                b'<' | b'[' => SpecialToken::ALL
                    .into_iter()
                    .find(|t| bytes[at..].starts_with(t.as_str().as_bytes())),
                _ => None,
            };
            match found {
                Some(token) => {
                    out.text(&text[start..at]);
                    out.control(token);
                    at += token.as_str().len();
                    start = at;
                }
                None => at += 1,
            }
        }
        out.text(&text[start..]);
        out
    }
}

/// Renders a whole conversation: `[gMASK]<sop>`, every message, and `<|assistant|>` when
/// `add_generation_prompt` is set.
pub fn render_segments(messages: &[Message], add_generation_prompt: bool) -> Segments {
    let mut out = Segments::default();
    out.control(SpecialToken::GMask);
    out.control(SpecialToken::Sop);
    for message in messages {
        push_message(&mut out, message);
    }
    if add_generation_prompt {
        out.control(SpecialToken::Assistant);
    }
    out
}

/// Renders one message alone, as it is appended to an existing prompt.
pub fn render_message(message: &Message) -> Segments {
    let mut out = Segments::default();
    push_message(&mut out, message);
    out
}

/// [`render_segments`] as text.
pub fn render(messages: &[Message], add_generation_prompt: bool) -> String {
    render_segments(messages, add_generation_prompt).to_text()
}

fn push_message(out: &mut Segments, message: &Message) {
    if let Some(tools) = &message.tools {
        out.control(SpecialToken::System);
        out.text("\n");
        out.text(SELF_INTRO);
        out.text("\n\n# 可用工具");
        for tool in tools {
            push_tool(out, tool);
        }
    }
    if !message.content.is_empty() {
        out.control(message.role.token());
        out.text(message.metadata.as_deref().unwrap_or(""));
        out.text("\n");
        out.text(&message.content);
    }
}

fn push_tool(out: &mut Segments, tool: &ToolSpec) {
    out.text("\n## ");
    out.text(tool.name());
    out.text("\n\n");
    match tool {
        ToolSpec::Function { function } => {
            out.text(&dumps_object_indent(function.object(), 4));
            out.text("\n在调用上述函数时，请使用 Json 格式表示调用的参数。");
        }
        ToolSpec::Python => out.text(PYTHON_TEXT),
        ToolSpec::SimpleBrowser => out.text(BROWSER_TEXT),
        ToolSpec::Cogview => out.text(COGVIEW_TEXT),
    }
}
