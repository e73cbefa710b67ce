//! `--resume TRACE` and `--continue` on `run` and `chat`: the recorded conversation continued
//! token for token, with the recorded tools and settings unless flags say otherwise.

use std::path::{Path, PathBuf};

use clap::Args;
use glm_agent::resume::Resumed;
use glm_agent::trace::Trace;
use glm_agent::{Agent, Event, Session};

use crate::cli::Failure;

/// Which recorded conversation to continue.
#[derive(Debug, Clone, Default, Args)]
pub struct ResumeFlags {
    /// Continue the conversation of this trace (a file, an id from `glm-agent traces list`, or
    /// `last`) with the new message: its prompt ids, its tools and settings (flags override
    /// them); a fresh notebook and working folder
    #[arg(long, value_name = "TRACE")]
    resume: Option<String>,
    /// Continue the newest trace in the trace folder (as --resume last)
    #[arg(long = "continue", conflicts_with = "resume")]
    continue_last: bool,
}

/// A trace to continue, read and checked.
pub struct Parent {
    /// Where it is.
    pub path: PathBuf,
    /// What it holds.
    pub trace: Trace,
}

impl ResumeFlags {
    /// The trace these flags name, read; `None` when they name none.
    pub fn load(&self, trace_dir: &Path) -> Result<Option<Parent>, Failure> {
        let name = match (&self.resume, self.continue_last) {
            (Some(name), _) => name.as_str(),
            (None, true) => "last",
            (None, false) => return Ok(None),
        };
        let path = crate::traces::find(name, trace_dir)?;
        let trace = Trace::read(&path).map_err(|e| refused(&path, e))?;
        if trace.task().is_none() {
            return Err(refused(&path, glm_agent::resume::ResumeError::NoStart));
        }
        Ok(Some(Parent { path, trace }))
    }
}

fn refused(path: &Path, why: impl std::fmt::Display) -> Failure {
    Failure::bad_input(anyhow::anyhow!("cannot resume {}: {why}", path.display()))
}

impl Parent {
    /// The names of the tools the recorded run offered last (`none` for none).
    pub fn tool_names(&self) -> Vec<String> {
        let names: Vec<String> = self
            .trace
            .last_tools()
            .iter()
            .filter_map(|t| {
                let spec: glm_prompts::ToolSpec = serde::Deserialize::deserialize(t).ok()?;
                Some(spec.name().to_owned())
            })
            .collect();
        if names.is_empty() {
            vec!["none".to_owned()]
        } else {
            names
        }
    }

    /// The recorded settings, each flag given now on top.
    pub fn settings(
        &self,
        current: glm_agent::Settings,
        looping: &crate::config::LoopSettings,
        sampling: &crate::config::SamplingSettings,
    ) -> Result<glm_agent::Settings, Failure> {
        let recorded = self
            .trace
            .events
            .iter()
            .find_map(|e| match e {
                Event::Start { settings, .. } => Some(settings.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let recorded: glm_agent::Settings = serde_json::from_value(recorded)
            .map_err(|e| refused(&self.path, format!("its settings cannot be read ({e})")))?;
        let mut settings = glm_agent::Settings {
            // Approvals are this run's: what may run is decided now.
            approval: current.approval,
            ..crate::config::loop_settings_over(recorded, looping, sampling)
        };
        settings.context_tokens = settings.context_tokens.or(current.context_tokens);
        Ok(settings)
    }

    /// The session the trace ends with, for `agent` (its tokenizer, its model: a trace of
    /// another model's tokenizer is refused), and the start event that names the parent.
    pub fn session(
        &self,
        agent: &Agent<'_>,
        model: &serde_json::Value,
    ) -> Result<Session, Failure> {
        let sha = |v: &serde_json::Value| {
            v.get("tokenizer_sha256")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        };
        let recorded_model = self.trace.events.iter().find_map(|e| match e {
            Event::Start { model, .. } => Some(model.clone()),
            _ => None,
        });
        if let (Some(recorded), Some(now)) = (recorded_model.as_ref().and_then(sha), sha(model))
            && recorded != now
        {
            return Err(refused(
                &self.path,
                format!(
                    "it was recorded with another tokenizer (sha256 {recorded}, this model's {now})"
                ),
            ));
        }
        let Resumed {
            mut session,
            recorded_steps,
            kept_steps,
            tools,
            ..
        } = glm_agent::resume::resume(&self.trace, agent.encoder())
            .map_err(|e| refused(&self.path, e))?;
        let offered: Vec<serde_json::Value> = agent
            .tools()
            .specs()
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .collect();
        if offered != tools {
            // The prompt declares the recorded tools: the model is told the list offered now.
            session.tools_changed = true;
            eprintln!("The tools differ from the recorded run's: the model is told the new list.");
        }
        let cut = if self.trace.truncated {
            " (its last line was cut short)"
        } else {
            ""
        };
        let left = if kept_steps < recorded_steps {
            "; its last call, whose result was not recorded, is left out"
        } else {
            ""
        };
        eprintln!(
            "Resuming {}{cut}: {} tokens, {kept_steps} model turns{left}. The notebook starts empty.",
            self.path.display(),
            session.ids.len(),
        );
        Ok(session)
    }

    /// The start event of the continued run: it names its parent and holds the ids it
    /// continues from, so that it replays alone.
    pub fn start_event(&self, agent: &Agent<'_>, task: &str, session: &Session) -> Event {
        let mut start = agent.start_event(task);
        if let Event::Start {
            parent, resumed, ..
        } = &mut start
        {
            *parent = Some(self.path.display().to_string());
            *resumed = session.ids.clone();
        }
        start
    }
}
