//! The registry: tools by name, type-erased behind a private object-safe trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use glm_prompts::{Arguments, DeclaredTools, FunctionSpec, ToolCall, ToolKind, ToolSpec};
use serde_json::Value;

use crate::error::{CallError, ToolError};
use crate::tool::{Tool, ToolContext, ToolOutput};

/// A boxed future that can be sent between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of a [`Tool`].
trait ErasedTool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    fn description(&self) -> &str;
    fn parameters(&self) -> Value;
    fn min_timeout(&self) -> Option<std::time::Duration>;
    fn read_only(&self) -> bool;
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

    fn read_only(&self) -> bool {
        Tool::read_only(self)
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
    /// Whether its calls cannot change anything outside the run (see [`Tool::read_only`]).
    pub read_only: bool,
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

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn call<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        (self.handler)(args, ctx)
    }
}

/// A tool another program offers (an MCP server's, a recording's), as a [`ToolSource`] lists
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTool {
    /// How it is declared in the prompt (its name is the one the model writes, unique in the
    /// registry).
    pub spec: ToolSpec,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments, already normalised.
    pub parameters: Value,
    /// Whether its calls cannot change anything outside the run, as the source says (an MCP
    /// server's `readOnlyHint`).
    pub read_only: bool,
}

impl SourceTool {
    /// A function tool, not read-only.
    pub fn function(name: impl Into<String>, description: String, parameters: Value) -> Self {
        let function = FunctionSpec::new(name, description.clone(), parameters.clone());
        SourceTool {
            spec: ToolSpec::Function { function },
            description,
            parameters,
            read_only: false,
        }
    }

    /// The same tool, read-only or not.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The name the model writes.
    pub fn name(&self) -> &str {
        self.spec.name()
    }
}

/// Tools that live elsewhere and can change while a run goes on: the registry asks for their
/// list, runs their calls through [`ToolSource::call`], and re-reads the list on
/// [`ToolRegistry::refresh`] when the source says it changed.
pub trait ToolSource: Send + Sync {
    /// The tools offered now.
    fn tools(&self) -> Vec<SourceTool>;
    /// Runs one of them by the name it is offered under.
    fn call<'a>(
        &'a self,
        name: &'a str,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
    /// This source's own limit per call, in place of the run's; `None` keeps the run's.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Re-reads the list when the source was told it changed; `true` when it was re-read.
    fn refresh(&self) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(false))
    }
}

/// The tools of the sources, by offered name: which source, and its description.
type SourceTools = BTreeMap<String, (usize, SourceTool)>;

/// A tool's public description, as `glm-agent tools list` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(missing_docs)]
pub struct ToolInfo {
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments (for built-ins, the parsed form of their syntax).
    pub parameters: Value,
    /// Whether its calls cannot change anything outside the run.
    pub read_only: bool,
}

/// The tools of one run, sorted by name so prompts are stable.
#[derive(Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Box<dyn ErasedTool>>,
    sources: Vec<Arc<dyn ToolSource>>,
    /// The sources' tools as last listed (a registered tool of the same name wins).
    listed: RwLock<SourceTools>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
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

    /// Adds the tools of a source (listed now, and again on [`ToolRegistry::refresh`]).
    pub fn add_source(&mut self, source: Arc<dyn ToolSource>) -> &mut Self {
        self.sources.push(source);
        self.relist();
        self
    }

    /// Re-reads the sources' lists after they changed; `true` when any was re-read (the
    /// declarations may differ: the loop tells the model before its next turn).
    pub async fn refresh(&self) -> bool {
        let mut changed = false;
        for source in &self.sources {
            changed |= source.refresh().await;
        }
        if changed {
            self.relist();
        }
        changed
    }

    fn relist(&self) {
        let mut listed = SourceTools::new();
        for (i, source) in self.sources.iter().enumerate() {
            for tool in source.tools() {
                if !self.tools.contains_key(tool.name()) {
                    listed.entry(tool.name().to_owned()).or_insert((i, tool));
                }
            }
        }
        *self.listed.write().unwrap_or_else(|e| e.into_inner()) = listed;
    }

    fn listed(&self) -> std::sync::RwLockReadGuard<'_, SourceTools> {
        self.listed.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every registered tool whose name is not in `names` (a source's tools are chosen
    /// by the source).
    pub fn retain(&mut self, names: &[&str]) {
        self.tools.retain(|name, _| names.contains(&name.as_str()));
    }

    /// Every tool's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tools.keys().cloned().collect();
        names.extend(self.listed().keys().cloned());
        names.sort();
        names
    }

    /// Whether no tool is offered.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.listed().is_empty()
    }

    /// The declarations for the system turn, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut specs: BTreeMap<String, ToolSpec> = self
            .tools
            .iter()
            .map(|(name, tool)| (name.clone(), tool.spec()))
            .collect();
        for (name, (_, tool)) in self.listed().iter() {
            specs.insert(name.clone(), tool.spec.clone());
        }
        specs.into_values().collect()
    }

    /// The names and argument kinds the parser needs.
    pub fn declared(&self) -> DeclaredTools {
        let mut out = DeclaredTools::default();
        for (name, tool) in &self.tools {
            out.add(name.clone(), kind(&tool.spec()));
        }
        for (name, (_, tool)) in self.listed().iter() {
            out.add(name.clone(), kind(&tool.spec));
        }
        out
    }

    /// Whether `name`'s calls cannot change anything outside the run; `false` for a name no
    /// tool has.
    pub fn is_read_only(&self, name: &str) -> bool {
        match self.tools.get(name) {
            Some(tool) => tool.read_only(),
            None => self.listed().get(name).is_some_and(|(_, t)| t.read_only),
        }
    }

    /// Name, description and parameter schema of every tool, sorted by name.
    pub fn describe(&self) -> Vec<ToolInfo> {
        let mut infos: Vec<ToolInfo> = self
            .tools
            .iter()
            .map(|(name, tool)| ToolInfo {
                name: name.clone(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
                read_only: tool.read_only(),
            })
            .collect();
        infos.extend(self.listed().iter().map(|(name, (_, tool))| ToolInfo {
            name: name.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
            read_only: tool.read_only,
        }));
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
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
        let (timeout, call) = if let Some(tool) = self.tools.get(name) {
            let timeout = tool
                .min_timeout()
                .map_or(ctx.timeout, |least| least.max(ctx.timeout));
            (timeout, tool.call(args, ctx))
        } else {
            let source = self.listed().get(name).map(|(i, _)| *i);
            let Some(source) = source.and_then(|i| self.sources.get(i)) else {
                return Err(ToolError::UnknownTool {
                    name: name.to_owned(),
                    available: self.names().join(", "),
                });
            };
            (
                source.timeout().unwrap_or(ctx.timeout),
                source.call(name, args, ctx),
            )
        };
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Err(ToolError::Cancelled { tool: name.to_owned() }),
            result = tokio::time::timeout(timeout, call) => match result {
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

/// How the parser reads a tool's arguments.
fn kind(spec: &ToolSpec) -> ToolKind {
    match spec {
        ToolSpec::Python => ToolKind::Python,
        ToolSpec::SimpleBrowser => ToolKind::SimpleBrowser,
        ToolSpec::Function { .. } | ToolSpec::Cogview => ToolKind::Function,
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
