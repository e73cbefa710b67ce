//! The loop guard: the same call (name and arguments) giving the same result again and again is
//! noticed. The model is told first; if it goes on, the run ends.
//!
//! The defaults follow the agents people know: opencode asks the user after 3 identical calls in
//! a row, crush stops a run at more than 5 identical calls within 10 steps. Here the model is
//! told at the 3rd identical call with an identical result among the last 10 calls, and the run
//! ends at the 6th. Only identical results count: polling a file that changes, or retrying a
//! page that failed and then loads, is not a loop.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// How many of the latest calls are compared.
pub const WINDOW: usize = 10;

/// What the guard makes of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Nothing to say.
    Fine,
    /// The model repeats itself: it is told (the count so far).
    Warn(usize),
    /// Once too often: the run ends (the count).
    Stop(usize),
}

/// The latest calls, as hashes of name, arguments and result.
#[derive(Debug)]
pub(crate) struct LoopGuard {
    recent: VecDeque<u64>,
    warn: usize,
    stop: usize,
}

impl LoopGuard {
    /// A guard that warns at `warn` identical calls and stops at `stop` (0 turns either off).
    pub(crate) fn new(warn: usize, stop: usize) -> Self {
        LoopGuard {
            recent: VecDeque::with_capacity(WINDOW),
            warn,
            stop,
        }
    }

    /// Counts a call that ran: `name`, its arguments as JSON, and what it gave.
    pub(crate) fn see(&mut self, name: &str, arguments: &str, result: &str) -> Seen {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (name, arguments, result).hash(&mut hasher);
        let key = hasher.finish();
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        let count = self.recent.iter().filter(|k| **k == key).count();
        if self.stop > 0 && count >= self.stop {
            Seen::Stop(count)
        } else if self.warn > 0 && count >= self.warn {
            Seen::Warn(count)
        } else {
            Seen::Fine
        }
    }
}

/// What the model reads after a repeated call's result.
pub(crate) fn warning(name: &str, count: usize) -> String {
    format!(
        "\n\n[glm-agent: this is the same call to `{name}` with the same arguments {count} times in the last {WINDOW} calls, and it gave the same result each time. Calling it again will not change the result: use what it returned, or try something else. Repeating it further ends the run.]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_calls_with_identical_results_warn_then_stop() {
        let mut guard = LoopGuard::new(3, 6);
        let seen: Vec<Seen> = (0..6).map(|_| guard.see("ls", "{}", "a b")).collect();
        assert_eq!(
            seen,
            [
                Seen::Fine,
                Seen::Fine,
                Seen::Warn(3),
                Seen::Warn(4),
                Seen::Warn(5),
                Seen::Stop(6)
            ]
        );
    }

    #[test]
    fn a_changing_result_or_other_calls_in_between_are_no_loop() {
        let mut guard = LoopGuard::new(3, 6);
        for i in 0..20 {
            assert_eq!(guard.see("read", "{}", &format!("line {i}")), Seen::Fine);
        }
        // Identical calls spread out beyond the window are not counted together.
        let mut guard = LoopGuard::new(3, 6);
        for i in 0..30 {
            let seen = if i % 5 == 0 {
                guard.see("ls", "{}", "same")
            } else {
                guard.see("other", &i.to_string(), "x")
            };
            assert_eq!(seen, Seen::Fine, "call {i}");
        }
        // Off when zero.
        let mut guard = LoopGuard::new(0, 0);
        assert!((0..20).all(|_| guard.see("ls", "{}", "a") == Seen::Fine));
    }
}
