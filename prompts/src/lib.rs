//! GLM-4's chat protocol, both directions.
//!
//! This crate turns a conversation into the exact prompt GLM-4-9B-Chat was trained on and turns
//! the model's raw output back into an answer or a tool call:
//!
//! ```
//! use glm_prompts::{parse, render, DeclaredTools, Message, Parsed, Role};
//!
//! let prompt = render(&[Message::new(Role::User, "Say hi.")], true);
//! assert_eq!(prompt, "[gMASK]<sop><|user|>\nSay hi.<|assistant|>");
//!
//! let tools = DeclaredTools::from_names(["get_weather"]);
//! let parsed = parse("get_weather\n{\"city\": \"Oslo\"}<|observation|>", &tools);
//! assert!(matches!(parsed, Parsed::Call(call) if call.name == "get_weather"));
//! ```
//!
//! The design decision to know: a prompt is a list of [`Segment`]s, control tokens and text,
//! and only the renderer creates control tokens. Text is encoded with special-token matching
//! off ([`Encoder`]), so a web page that contains `<|observation|>` can never end a turn.
//! Rendering is written out in Rust rather than run through a Jinja engine; golden files made
//! with the official template and Python's `jinja2` pin it byte for byte.

mod browser;
mod builtin;
mod error;
mod message;
mod parse;
pub mod pyjson;
mod render;
mod stream;
pub mod tiny;
mod tokens;

pub use browser::{BROWSER_USAGE, BrowserCall};
pub use error::{Error, Result};
pub use message::{Conversation, FunctionSpec, Message, Role, ToolSpec};
pub use parse::{Arguments, DeclaredTools, Malformed, Parsed, ToolCall, ToolKind, Written, parse};
pub use render::{Segment, Segments, render, render_message, render_segments};
pub use stream::{Call, Piece, Reader};
pub use tokens::{Encoder, SpecialIds, SpecialToken};
