//! The registry: tools by name, type-erased behind a private object-safe trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use glm_prompts::{Arguments, DeclaredTools, ToolCall, ToolKind, ToolSpec};
use serde_json::Value;

use crate::error::{CallError, ToolError};
use crate::tool::{Tool, ToolContext, ToolOutput};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of a [`Tool`].
trait ErasedTool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn description(&self) -> &str;
    fn parameters(&self) -> Value;
    fn min_timeout(&self) -> Option<std::time::Duration>;
    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
}

impl<T: Tool> ErasedTool for T {
    fn spec(&self) -> ToolSpec {
        Tool::spec(self)
    }

    fn description(&self) -> &str {
        Tool::description(self)
    }

    fn min_timeout(&self) -> Option<std::time::Duration> {
        Tool::min_timeout(self)
    }

    fn parameters(&self) -> Value {
        crate::schema::parameters_schema::<T::Args>()
    }

    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let args: T::Args =
                serde_json::from_value(args).map_err(|e| ToolError::BadArguments {
                    tool: T::NAME.to_owned(),
                    reason: format!(
                        "{e}; the parameters are {}",
                        glm_prompts::pyjson::dumps(&self.parameters())
                    ),
                })?;
            match Tool::call(self, args, ctx).await {
                Ok(output) => Ok(output.into()),
                Err(CallError::Respond(message)) => Err(ToolError::Failed {
                    tool: T::NAME.to_owned(),
                    message,
                }),
                Err(CallError::Fatal(message)) => Err(ToolError::Fatal {
                    tool: T::NAME.to_owned(),
                    message,
                }),
            }
        })
    }
}

/// What a [`DynamicTool`] runs: arguments as JSON in, an output or a tool error out.
pub type DynamicHandler = Box<
    dyn Fn(Value, &ToolContext) -> BoxFuture<'static, Result<ToolOutput, ToolError>> + Send + Sync,
>;

/// A tool defined at run time by its declaration rather than by a Rust type: for replaying
/// recorded runs, or adapting tools from elsewhere.
pub struct DynamicTool {
    /// The declaration the model sees (its name is the tool's name).
    pub spec: ToolSpec,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments.
    pub parameters: Value,
    /// What a call runs.
    pub handler: DynamicHandler,
}

impl ErasedTool for DynamicTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn min_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        (self.handler)(args, ctx)
    }
}

/// A tool's public description, as `glm-agent tools list` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolInfo {
    /// The name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments (for built-ins, the parsed form of their syntax).
    pub parameters: Value,
}

/// The tools of one run, sorted by name so prompts are stable.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Box<dyn ErasedTool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        ToolRegistry::default()
    }

    /// Adds a tool, replacing any tool of the same name.
    pub fn register<T: Tool>(&mut self, tool: T) -> &mut Self {
        self.tools.insert(T::NAME.to_owned(), Box::new(tool));
        self
    }

    /// Adds a tool defined at run time, replacing any tool of the same name.
    pub fn register_dynamic(&mut self, tool: DynamicTool) -> &mut Self {
        self.tools
            .insert(tool.spec.name().to_owned(), Box::new(tool));
        self
    }

    /// Builder form of [`ToolRegistry::register`].
    pub fn with<T: Tool>(mut self, tool: T) -> Self {
        self.register(tool);
        self
    }

    /// Removes every tool whose name is not in `names`.
    pub fn retain(&mut self, names: &[&str]) {
        self.tools.retain(|name, _| names.contains(&name.as_str()));
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The declarations for the system turn, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }

    /// The names and argument kinds the parser needs.
    pub fn declared(&self) -> DeclaredTools {
        let mut out = DeclaredTools::default();
        for (name, tool) in &self.tools {
            let kind = match tool.spec() {
                ToolSpec::Python => ToolKind::Python,
                ToolSpec::SimpleBrowser => ToolKind::SimpleBrowser,
                ToolSpec::Function { .. } | ToolSpec::Cogview => ToolKind::Function,
            };
            out.add(name.clone(), kind);
        }
        out
    }

    /// Name, description and parameter schema of every tool.
    pub fn describe(&self) -> Vec<ToolInfo> {
        self.tools
            .iter()
            .map(|(name, tool)| ToolInfo {
                name: name.clone(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
            .collect()
    }

    /// Runs a parsed call within the context's time limit and cancellation.
    pub async fn call(&self, call: &ToolCall, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let args = match &call.arguments {
            Arguments::Json(value) => value.clone(),
            Arguments::Python { code } => serde_json::json!({ "code": code }),
            Arguments::Browser(command) => serde_json::to_value(command).unwrap_or_default(),
        };
        self.call_json(&call.name, args, ctx).await
    }

    /// Runs a tool by name with JSON arguments.
    pub async fn call_json(
        &self,
        name: &str,
        args: Value,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let tool = self.tools.get(name).ok_or_else(|| ToolError::UnknownTool {
            name: name.to_owned(),
            available: self.names().join(", "),
        })?;
        let timeout = tool
            .min_timeout()
            .map_or(ctx.timeout, |least| least.max(ctx.timeout));
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Err(ToolError::Cancelled { tool: name.to_owned() }),
            result = tokio::time::timeout(timeout, tool.call(args, ctx)) => match result {
                Ok(Ok(mut output)) => {
                    // Every tool's observations are held to the same limit.
                    for observation in &mut output.observations {
                        observation.text = shorten(&observation.text, ctx.max_observation_chars);
                    }
                    Ok(output)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ToolError::Timeout {
                    tool: name.to_owned(),
                    seconds: timeout.as_secs(),
                }),
            },
        }
    }
}

/// `text` cut to about `max_chars` characters: the first two thirds and the last third are kept
/// (an error or a result often comes last), with a note of how much was left out.
pub fn shorten(text: &str, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_owned();
    }
    let head: String = text.chars().take(max_chars * 2 / 3).collect();
    let tail: String = text.chars().skip(total - max_chars / 3).collect();
    format!(
        "{head}\n[... {} characters not shown ...]\n{tail}",
        total - head.chars().count() - tail.chars().count()
    )
}
