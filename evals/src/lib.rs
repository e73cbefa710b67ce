//! glm-evals: replay recorded agent traces and score evaluation suites.
//!
//! A trace records every model output of a run; replaying it through the current renderer,
//! parser and loop shows the first step where anything changed. Suites run many cases and
//! score each run.
//!
//! The design decision to know: replay and scoring consume the same trace files that
//! `glm-agent run` writes, so every recorded run is also a regression test.
