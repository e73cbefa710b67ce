//! glm-tools: the tools a GLM-4 agent can call.
//!
//! Holds the `Tool` trait that user tools implement, the registry that erases it, JSON-schema
//! generation for the prompt, and the built-in `simple_browser` and `python` tools.
//!
//! The design decision to know: tool errors are split by who recovers. Bad arguments, unknown
//! tools, timeouts and tool failures become observations the model can act on; only a broken
//! runtime ends a run.
