//! The `Tool` trait and what a call gets and gives.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use glm_prompts::{FunctionSpec, Message, Role, ToolSpec};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::CallError;
use crate::schema::parameters_schema;

/// A tool the model can call.
///
/// `NAME` is the one source of the tool's name; `Args` is deserialised from the arguments the
/// model wrote and its JSON schema is what the model sees.
///
/// ```
/// use glm_tools::{CallError, Tool, ToolContext};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// /// Adds two numbers.
/// struct Add;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct AddArgs {
///     /// First addend.
///     a: f64,
///     /// Second addend.
///     b: f64,
/// }
///
/// impl Tool for Add {
///     const NAME: &'static str = "add";
///     type Args = AddArgs;
///     type Output = String;
///
///     fn description(&self) -> &str {
///         "Add two numbers"
///     }
///
///     async fn call(&self, args: AddArgs, _ctx: &ToolContext) -> Result<String, CallError> {
///         Ok((args.a + args.b).to_string())
///     }
/// }
/// ```
pub trait Tool: Send + Sync + 'static {
    /// The name the model writes on the first line of a call.
    const NAME: &'static str;
    /// The arguments.
    type Args: DeserializeOwned + JsonSchema + Send;
    /// What a successful call gives back.
    type Output: Into<ToolOutput>;

    /// One or two sentences for the model: what the tool does and when to use it.
    fn description(&self) -> &str;

    /// Runs the tool.
    fn call(
        &self,
        args: Self::Args,
        ctx: &ToolContext,
    ) -> impl Future<Output = Result<Self::Output, CallError>> + Send;

    /// The least time a call must be given, whatever the run's tool timeout: a tool with its
    /// own deadline (the notebook's cell deadline) says so here, so that the run's timer never
    /// fires first and drops the call while the tool still holds its state. `None` by default.
    fn min_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether a call cannot change anything outside the run (it reads, or works in a sandbox
    /// the run owns): such calls run without asking under the `ask` approval mode. `false` by
    /// default: a tool says so only when it is true of every call.
    fn read_only(&self) -> bool {
        false
    }

    /// How the tool is declared in the prompt. Function tools keep the default; GLM-4's
    /// built-ins (`python`, `simple_browser`) override it.
    fn spec(&self) -> ToolSpec {
        ToolSpec::Function {
            function: FunctionSpec::new(
                Self::NAME,
                self.description(),
                parameters_schema::<Self::Args>(),
            ),
        }
    }
}

/// What a tool call may use: cancellation, where to put files, limits.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// Fires when the run is interrupted; long tools should watch it.
    pub cancel: CancellationToken,
    /// The run's working directory; files a tool produces go under it.
    pub workdir: PathBuf,
    /// The most one call may take.
    pub timeout: Duration,
    /// The most characters of one observation the model sees.
    pub max_observation_chars: usize,
}

impl ToolContext {
    /// A context with the default limits: 60 s per call, 20,000 characters per observation.
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        ToolContext {
            cancel: CancellationToken::new(),
            workdir: workdir.into(),
            timeout: Duration::from_secs(60),
            max_observation_chars: 20_000,
        }
    }
}

/// One observation turn: what the model reads after a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Observation {
    /// Label after `<|observation|>` (`browser_result`, `quote_result [n†source]`).
    pub metadata: Option<String>,
    pub text: String,
    /// Files the call produced, on the host.
    pub files: Vec<PathBuf>,
}

impl Observation {
    /// An observation with text only.
    pub fn text(text: impl Into<String>) -> Self {
        Observation {
            text: text.into(),
            ..Observation::default()
        }
    }

    /// The conversation turn for this observation. An empty text becomes `(no output)`, since
    /// the template drops empty turns and the model would not see that the call returned.
    pub fn to_message(&self) -> Message {
        let text = if self.text.is_empty() {
            "(no output)".to_owned()
        } else {
            self.text.clone()
        };
        Message {
            role: Role::Observation,
            content: text,
            metadata: self.metadata.clone(),
            tools: None,
        }
    }
}

/// Everything one call returns: usually one observation, one per page for `mclick`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolOutput {
    /// The observation turns, in order.
    pub observations: Vec<Observation>,
}

impl ToolOutput {
    /// The observations as the model sees them: texts joined by blank lines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.observations.iter().map(|o| o.text.as_str()).collect();
        texts.join("\n\n")
    }
}

impl From<String> for ToolOutput {
    fn from(text: String) -> Self {
        Observation::text(text).into()
    }
}

impl From<&str> for ToolOutput {
    fn from(text: &str) -> Self {
        Observation::text(text).into()
    }
}

impl From<Observation> for ToolOutput {
    fn from(observation: Observation) -> Self {
        ToolOutput {
            observations: vec![observation],
        }
    }
}

impl From<Vec<Observation>> for ToolOutput {
    fn from(observations: Vec<Observation>) -> Self {
        ToolOutput { observations }
    }
}

/// A JSON result, written as Python's `json.dumps` writes it (the form GLM-4 saw in training).
impl From<serde_json::Value> for ToolOutput {
    fn from(value: serde_json::Value) -> Self {
        Observation::text(glm_prompts::pyjson::dumps(&value)).into()
    }
}
