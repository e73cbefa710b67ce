//! glm-eval-runner: runs eval suites through the glm-agent loop and scores them.
//!
//! Each case runs through the agent (or, for call checks, the model's first turn only), with a
//! trace per case and a verdict per case from `glm-evals`' scorers. The built-in suites and the
//! tool-use suite's fixture site are data of this crate (`suites/`, `sites/`).

mod needle;
mod report;
mod run;
mod site;

use std::path::PathBuf;

pub use needle::{needle_cases, needle_grid};
pub use report::{CaseReport, SummaryLine, Tally, bfcl_summary, rescore, table, tallies};
pub use run::{EngineChoice, RECORDED, SuiteOptions, result_of, run_case, run_suite};
pub use site::FixtureSite;

/// The suites that ship with glm-agent, by name.
pub const BUILTIN_SUITES: &[(&str, &str)] = &[
    (
        "function_calling",
        include_str!("../suites/function_calling.jsonl"),
    ),
    ("tool_use", include_str!("../suites/tool_use.jsonl")),
];

/// Why a suite cannot run or be scored; all of them are the user's to fix (a case, a file, a
/// folder) except a trace that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A case is not well formed.
    #[error("case {case}: {message}")]
    Case {
        /// The id of the case at fault.
        case: String,
        /// What is wrong.
        message: String,
    },
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The suite file does not parse.
    #[error("{0}")]
    Suite(String),
    /// A tool could not be set up.
    #[error(transparent)]
    Tools(#[from] glm_tools::builtins::BuiltinError),
    /// A trace could not be written or read.
    #[error("trace {}: {message}", path.display())]
    Trace {
        /// The trace.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl RunnerError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunnerError {
        let path = path.into();
        move |source| RunnerError::Io { path, source }
    }

    pub(crate) fn case(case: &str, message: impl Into<String>) -> RunnerError {
        RunnerError::Case {
            case: case.to_owned(),
            message: message.into(),
        }
    }
}
