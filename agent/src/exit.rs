//! The exit statuses of the `glm-agent` binary, part of its documented contract.

/// Why the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked (for `run`: the model answered).
    Success,
    /// `tools call`: the tool ran and reported an error (printed as the model would see it).
    ToolFailed,
    /// Bad usage or bad input: a flag, a file, a JSON document.
    BadInput,
    /// A budget (steps, tokens, time) ended the run before an answer.
    Budget,
    /// The model engine failed.
    Engine,
    /// `replay` found a divergence from its trace, or `eval` a case that failed: the command
    /// ran and its check did not pass.
    Mismatch,
    /// Something the command needs could not be had from the system: its port is taken, the
    /// async runtime cannot start.
    Unavailable,
    /// Interrupted by Ctrl-C.
    Interrupted,
}

impl ExitStatus {
    /// The process exit code: 0, 1, 2, 3, 4, 5, 6 or 130.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::ToolFailed => 1,
            ExitStatus::BadInput => 2,
            ExitStatus::Budget => 3,
            ExitStatus::Engine => 4,
            ExitStatus::Mismatch => 5,
            ExitStatus::Unavailable => 6,
            ExitStatus::Interrupted => 130,
        }
    }
}
