//! glm-tools: the tools a GLM-4 agent can call.
//!
//! A tool is a type implementing [`Tool`]: a `NAME`, an `Args` type whose JSON schema the model
//! sees, a description, and an async `call`. A [`ToolRegistry`] holds the tools of one run, gives
//! the prompt their declarations, and runs the calls the parser finds:
//!
//! ```
//! use glm_tools::{CallError, Tool, ToolContext, ToolRegistry};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! struct Echo;
//! #[derive(Deserialize, JsonSchema)]
//! struct EchoArgs {
//!     text: String,
//! }
//! impl Tool for Echo {
//!     const NAME: &'static str = "echo";
//!     type Args = EchoArgs;
//!     type Output = String;
//!     fn description(&self) -> &str {
//!         "Repeat the text"
//!     }
//!     async fn call(&self, args: EchoArgs, _: &ToolContext) -> Result<String, CallError> {
//!         Ok(args.text)
//!     }
//! }
//!
//! let registry = ToolRegistry::new().with(Echo);
//! let parsed = glm_prompts::parse("echo\n{\"text\": \"hi\"}", &registry.declared());
//! let glm_prompts::Parsed::Call(call) = parsed else { panic!() };
//! let ctx = ToolContext::new(std::env::temp_dir());
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let output = rt.block_on(registry.call(&call, &ctx)).unwrap();
//! assert_eq!(output.text(), "hi");
//! ```
//!
//! The design decision to know: tool errors are split by who recovers ([`Recovery`]). Bad
//! arguments, unknown tools, timeouts and tool failures become observations the model can act
//! on; only a broken runtime or a cancelled run ends it.

pub mod browser;
pub mod builtins;
mod error;
pub mod mcp;
pub mod python;
mod registry;
pub mod schema;
mod tool;

pub use error::{CallError, Recovery, ToolError};
pub use registry::{
    BoxFuture, DynamicHandler, DynamicTool, SourceTool, ToolInfo, ToolRegistry, ToolSource, shorten,
};
pub use tool::{Observation, Tool, ToolContext, ToolOutput};
