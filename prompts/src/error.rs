//! The one error type of this crate.
//!
//! Messages carry their cause inline, so each error prints as one line.

use std::path::PathBuf;

/// Everything that can go wrong while reading conversations or encoding prompts.
///
/// Parsing model output never fails: a bad call is a [`crate::Parsed::Malformed`] value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The conversation JSON is not valid or does not have the template's shape.
    #[error("invalid conversation: {0}")]
    Conversation(serde_json::Error),
    /// The document is JSON but not `{"messages": [...]}`.
    #[error("invalid conversation: expected a JSON object {{\"messages\": [...]}}")]
    NotAConversation,
    /// The tokenizer file could not be loaded.
    #[error("cannot load tokenizer {}: {cause}", path.display())]
    TokenizerFile {
        /// The file that was read.
        path: PathBuf,
        /// What the tokenizers library reported.
        cause: tokenizers::Error,
    },
    /// The tokenizer has no id for one of GLM-4's control tokens.
    #[error(
        "tokenizer has no token `{token}`; is this a GLM-4 tokenizer (tokenizer.json of a GLM-4 -hf repo)?"
    )]
    MissingControlToken {
        /// The control token text.
        token: &'static str,
    },
    /// One of GLM-4's control tokens is an ordinary added token: text that spells it would
    /// encode to the control token, so a web page or a tool's output could forge a turn.
    #[error(
        "tokenizer's `{token}` is not marked special; text spelling it would encode to the control \
         token (set \"special\": true for it in tokenizer.json's added_tokens)"
    )]
    ControlTokenNotSpecial {
        /// The control token text.
        token: &'static str,
    },
    /// Encoding or decoding failed inside the tokenizer.
    #[error("tokenizer failed: {0}")]
    Tokenizer(tokenizers::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
