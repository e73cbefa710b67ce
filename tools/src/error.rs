//! Tool errors, split by who recovers.

use glm_prompts::{Message, Role};

/// What a tool returns when its call does not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The model can act on this (bad input, a page that does not load, an exception): the text
    /// goes back to it as an observation.
    #[error("{0}")]
    Respond(String),
    /// The tool's runtime is broken; the run cannot go on.
    #[error("{0}")]
    Fatal(String),
}

/// Who deals with a [`ToolError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The model gets an observation and may try again.
    Model,
    /// The run ends with this error.
    Fatal,
}

/// A failed tool call, with the tool's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is registered.
    #[error("there is no tool `{name}`; the available tools are: {available}")]
    UnknownTool {
        /// The name the model wrote.
        name: String,
        /// Registered names, comma separated.
        available: String,
    },
    /// The arguments do not match the tool's parameters.
    #[error("bad arguments for `{tool}`: {reason}")]
    BadArguments {
        /// The name of the tool called.
        tool: String,
        /// What was wrong and what is allowed.
        reason: String,
    },
    /// The call ran past its time limit.
    #[error("`{tool}` did not finish within {seconds} s and was stopped")]
    Timeout {
        /// The name of the tool called.
        tool: String,
        /// The limit.
        seconds: u64,
    },
    /// The run was cancelled while the tool ran.
    #[error("`{tool}` was cancelled")]
    Cancelled {
        /// The name of the tool called.
        tool: String,
    },
    /// The tool ran and reported a problem the model can act on.
    #[error("`{tool}` failed: {message}")]
    Failed {
        /// The name of the tool called.
        tool: String,
        /// What happened.
        message: String,
    },
    /// The tool's runtime is broken.
    #[error("`{tool}` cannot run: {message}")]
    Fatal {
        /// The name of the tool called.
        tool: String,
        /// What happened and what to do.
        message: String,
    },
}

impl ToolError {
    /// Who deals with this error.
    pub fn recovery(&self) -> Recovery {
        match self {
            ToolError::UnknownTool { .. }
            | ToolError::BadArguments { .. }
            | ToolError::Timeout { .. }
            | ToolError::Failed { .. } => Recovery::Model,
            ToolError::Cancelled { .. } | ToolError::Fatal { .. } => Recovery::Fatal,
        }
    }

    /// The observation turn that tells the model what went wrong.
    pub fn to_message(&self) -> Message {
        Message::new(Role::Observation, format!("Error: {self}")).with_metadata("system_error")
    }
}
