//! glm-agent: the agent loop of a local GLM-4-9B-Chat runtime.
//!
//! An [`Agent`] holds an engine ([`engine::Engine`]), tools ([`glm_tools::ToolRegistry`]), the
//! model's tokenizer and [`Settings`]. [`Agent::run`] renders the conversation in GLM-4's chat
//! format ([`glm_prompts`]), generates, parses the model's call, runs the tool and appends the
//! observation, until the model answers or a budget ends the run. Everything that happens is an
//! [`Event`] given to an [`EventSink`]; [`trace`] writes events to JSON lines and reads them
//! back, and [`replay`] re-runs a recorded trace and reports the first prompt that differs.
//!
//! The design decision to know: the library never prints. Everything a run does is reported
//! as data (events, errors with exit codes) and the caller decides how to show it. It depends on
//! neither mistral.rs nor clap: the embedded engine and the command line are crates above it.
//!
//! ```
//! use glm_agent::exit::ExitStatus;
//! assert_eq!(ExitStatus::BadInput.code(), 2);
//! ```

pub mod agent;
pub mod approval;
pub mod context;
mod events;
pub mod exit;
mod guard;
pub mod replay;
pub mod resume;
mod session;
mod sink;
pub mod trace;
mod turn;

pub use agent::{Agent, Outcome, Settings, prefix_hash};
pub use events::{Budget, End, Event};
/// The engine trait and its remote and replay backends.
pub use glm_engine as engine;
/// Where glm-agent keeps its files.
pub use glm_engine::paths;
pub use session::Session;
pub use sink::{EventSink, Events};
pub use turn::parsed_event;
