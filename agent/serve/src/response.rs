//! The response bodies and stream chunks of both endpoints, typed as OpenAI's clients read them.
//! Fields OpenAI always sends are always sent (`null` when there is nothing); fields it sends
//! only sometimes are left out when empty.

#![allow(missing_docs)]

use glm_agent::engine::Usage;
use serde::Serialize;

/// `usage`, with the prompt tokens the prefix cache served.
#[derive(Debug, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptDetails,
}

#[derive(Debug, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: usize,
}

impl From<&Usage> for UsageOut {
    fn from(usage: &Usage) -> Self {
        UsageOut {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.generated_tokens,
            total_tokens: usage.prompt_tokens + usage.generated_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: usage.cached_prompt_tokens.unwrap_or(0),
            },
        }
    }
}

/// What every body and chunk starts with: `id`, `object`, `created`, `model`.
#[derive(Debug, Serialize)]
pub struct Head {
    pub id: String,
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    pub model: String,
    pub system_fingerprint: Option<String>,
}

/// A whole chat answer (`chat.completion`), or one streamed chunk of it
/// (`chat.completion.chunk`: then `usage` only in the last, when asked for).
#[derive(Debug, Serialize)]
pub struct ChatCompletion<C> {
    #[serde(flatten)]
    pub head: Head,
    pub choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

/// The one choice of a whole answer.
#[derive(Debug, Serialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: Message,
    pub logprobs: Option<()>,
    pub finish_reason: &'static str,
}

/// The assistant's message: `content` is null when it only calls.
#[derive(Debug, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// A call: in a whole answer `id`, `type` and the function whole; streamed, its start (`index`,
/// `id`, `type`, the name and empty arguments) then its arguments (`index` and arguments).
#[derive(Debug, Serialize)]
pub struct ToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: Function,
}

#[derive(Debug, Serialize)]
pub struct Function {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub arguments: String,
}

/// The one choice of a streamed chunk.
#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds: the role (first chunk), content, or a call's start or arguments.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A raw completion (`text_completion`), whole or one streamed chunk.
#[derive(Debug, Serialize)]
pub struct Completion {
    #[serde(flatten)]
    pub head: Head,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
    /// The generated ids, when the client asked for them (vLLM's `return_token_ids`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

/// `value` as JSON text (these types always serialise).
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
