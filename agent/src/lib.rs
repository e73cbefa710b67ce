//! glm-agent: a local agent runtime for GLM-4-9B-Chat.
//!
//! This crate holds the engine backends, the agent loop and its traces, and the `glm-agent`
//! command-line binary. Prompts are rendered and parsed by [`glm_prompts`]; tools come from
//! [`glm_tools`].
//!
//! The design decision to know: the library never prints. Everything a run does is reported
//! as data (events, errors with exit codes) and the binary decides how to show it.
//!
//! ```
//! use glm_agent::exit::ExitStatus;
//! assert_eq!(ExitStatus::BadInput.code(), 2);
//! ```

pub mod agent;
pub mod builtins;
pub mod config;
pub mod engine;
mod error;
pub mod eval;
pub mod exit;
pub mod model;
pub mod paths;

pub use error::{Error, Result};
