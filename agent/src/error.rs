//! The error type of the glm-agent library.

use crate::exit::ExitStatus;

/// What can go wrong in the agent runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool name that is not available.
    #[error("unknown tool `{name}`; available: {available}")]
    UnknownTool {
        /// The name asked for.
        name: String,
        /// What exists.
        available: String,
    },
    /// A tool could not be set up.
    #[error("cannot set up `{tool}`: {message}")]
    ToolSetup {
        /// The tool.
        tool: &'static str,
        /// What failed.
        message: String,
    },
}

impl Error {
    /// The exit status this error maps to.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::UnknownTool { .. } | Error::ToolSetup { .. } => ExitStatus::BadInput,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
