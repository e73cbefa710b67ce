//! glm-evals: eval cases, their checks and the scorers.
//!
//! A suite is a JSON Lines file of [`case::Case`]s: a task, the tools offered, a check, and
//! optionally reference model outputs that pass it (so a suite can run end to end on the
//! replay engine). Checks judge the final answer (exact, contains, regex, numeric) or the calls
//! of the model's first turn, matched on the abstract syntax as the Berkeley Function Calling
//! Leaderboard does ([`calls`]); [`bfcl`] converts BFCL's published data into cases. Running
//! suites needs engines and the agent loop, so the runner is `glm-agent eval`, in the agent
//! crate.

pub mod bfcl;
pub mod calls;
pub mod case;
