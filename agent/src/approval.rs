//! Approvals: whether a tool call runs, decided before it does.
//!
//! The [`Policy`] decides what it can alone (rules, the mode, tools that cannot change anything
//! outside the run); what is left is asked of an [`Approver`] (a person at a terminal, a GUI, a
//! policy service), and refused when there is none. Every decision is a trace event
//! ([`crate::events::Event::Approval`]) and a replay gives the recorded ones back.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What runs without asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every call runs (rules that deny still refuse).
    #[default]
    Auto,
    /// Calls that cannot change anything outside the run, and those the rules allow, run; the
    /// rest are asked about (refused when no one can be asked).
    Ask,
    /// Only calls the rules allow run.
    Deny,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "ask" => Ok(Mode::Ask),
            "deny" => Ok(Mode::Deny),
            other => Err(format!(
                "`{other}` is not an approval mode: auto, ask or deny"
            )),
        }
    }
}

/// The approval settings of a run. The library's default runs every call (`auto`); the
/// command line's is `ask`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// What runs without asking.
    pub mode: Mode,
    /// Tools that run without asking: names, a server's `NAME__*`, `*`.
    pub allow: Vec<String>,
    /// Tools that never run, whatever the mode and `allow` say.
    pub deny: Vec<String>,
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It runs.
    Run,
    /// It does not run; the model is told why and the run goes on.
    Refuse,
    /// It does not run, and the run stops.
    Stop,
}

/// Who or what decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The mode (`auto` runs everything, `deny` what is not allowed is refused).
    Mode,
    /// An `allow` or `deny` rule.
    Rule,
    /// The tool cannot change anything outside the run.
    ReadOnly,
    /// The person, asked now.
    Person,
    /// The person said earlier to run this tool for the rest of the session.
    Session,
    /// It needed asking and no one could be asked (no terminal).
    NoOne,
}

/// A decision about one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What became of the call.
    pub verdict: Verdict,
    /// Who decided.
    pub by: By,
    /// The rule's pattern, when a rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why it was refused, in words the model reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Decision {
    pub(crate) fn new(verdict: Verdict, by: By) -> Self {
        Decision {
            verdict,
            by,
            rule: None,
            reason: None,
        }
    }

    fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// A call waiting for approval.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    /// The model turn that made it.
    pub step: usize,
    /// The tool.
    pub tool: &'r str,
    /// Its arguments.
    pub arguments: &'r Value,
}

/// A person's (or a service's) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Run it.
    Yes,
    /// Run it, and every later call of this tool in the session.
    Always,
    /// Do not run it; the reason, if any, goes to the model.
    No(Option<String>),
    /// Do not run it, and stop the run.
    Stop,
}

/// A boxed future that can be sent between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Asks about a call the policy leaves open: a terminal prompt, a GUI, a policy service.
pub trait Approver: Send + Sync {
    /// The answer for `request`. A run that is interrupted meanwhile stops waiting for it.
    fn ask<'r>(&'r self, request: Request<'r>) -> BoxFuture<'r, Answer>;
}

/// What the policy makes of a call before anyone is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ruled {
    /// Decided.
    Decided(Decision),
    /// Someone must be asked.
    Ask,
}

impl Policy {
    /// The decision on a call of `tool` (`read_only` as the tool says; `approved` when the
    /// person said earlier to run it for the session), or [`Ruled::Ask`].
    pub fn rule(&self, tool: &str, read_only: bool, approved: bool) -> Ruled {
        let rule = |patterns: &[String]| patterns.iter().find(|p| matches(p, tool)).cloned();
        if let Some(pattern) = rule(&self.deny) {
            let reason = format!("the user's rules deny `{tool}` (rule `{pattern}`)");
            let mut decision = Decision::new(Verdict::Refuse, By::Rule).with_reason(reason);
            decision.rule = Some(pattern);
            return Ruled::Decided(decision);
        }
        if let Some(pattern) = rule(&self.allow) {
            let mut decision = Decision::new(Verdict::Run, By::Rule);
            decision.rule = Some(pattern);
            return Ruled::Decided(decision);
        }
        match self.mode {
            Mode::Auto => Ruled::Decided(Decision::new(Verdict::Run, By::Mode)),
            Mode::Deny => Ruled::Decided(Decision::new(Verdict::Refuse, By::Mode).with_reason(
                format!("only tools the user allowed run in this session, and `{tool}` is not one"),
            )),
            Mode::Ask if read_only => Ruled::Decided(Decision::new(Verdict::Run, By::ReadOnly)),
            Mode::Ask if approved => Ruled::Decided(Decision::new(Verdict::Run, By::Session)),
            Mode::Ask => Ruled::Ask,
        }
    }
}

/// The decision for an [`Answer`].
pub fn decision_of(answer: Answer) -> Decision {
    match answer {
        Answer::Yes | Answer::Always => Decision::new(Verdict::Run, By::Person),
        Answer::No(reason) => {
            let reason = match reason.filter(|r| !r.trim().is_empty()) {
                Some(r) => format!("the user declined it: {}", r.trim()),
                None => "the user declined it".to_owned(),
            };
            Decision::new(Verdict::Refuse, By::Person).with_reason(reason)
        }
        Answer::Stop => Decision::new(Verdict::Stop, By::Person)
            .with_reason("the user stopped the run instead of running it"),
    }
}

/// The decision when the call needed asking and no one can be asked.
pub fn no_one_to_ask(tool: &str) -> Decision {
    Decision::new(Verdict::Refuse, By::NoOne).with_reason(format!(
        "`{tool}` can change things outside this run, so it needs the user's approval, and the user cannot be asked now"
    ))
}

/// Recorded decisions, given back in order (a replay).
#[derive(Debug, Default)]
pub struct Recorded(std::sync::Mutex<VecDeque<Decision>>);

impl Recorded {
    /// The decisions of a trace, in order.
    pub fn new(decisions: impl IntoIterator<Item = Decision>) -> Self {
        Recorded(std::sync::Mutex::new(decisions.into_iter().collect()))
    }

    /// The next recorded decision; `None` when none is left (a trace recorded before
    /// approvals existed runs every call).
    pub fn next(&self) -> Option<Decision> {
        self.0.lock().ok().and_then(|mut q| q.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_servers_and_everything() {
        assert!(matches("fs__write_file", "fs__write_file"));
        assert!(!matches("fs__write_file", "fs__write_file2"));
        assert!(matches("fs__*", "fs__write_file"));
        assert!(!matches("fs__*", "git__commit"));
        assert!(matches("*", "anything"));
        assert!(matches("*__read_*", "fs__read_text_file"));
        assert!(!matches("*__read_*", "fs__write_file"));
        assert!(matches("a*b*c", "abc"));
        assert!(!matches("a*b*c", "acb"));
    }

    fn policy(mode: Mode, allow: &[&str], deny: &[&str]) -> Policy {
        Policy {
            mode,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn verdict(ruled: Ruled) -> Option<(Verdict, By)> {
        match ruled {
            Ruled::Decided(d) => Some((d.verdict, d.by)),
            Ruled::Ask => None,
        }
    }

    #[test]
    fn rules_then_mode_then_read_only_then_asking() {
        let ask = policy(Mode::Ask, &["fs__read_*"], &["fs__*", "git__push"]);
        // Deny wins over allow.
        assert_eq!(
            verdict(ask.rule("fs__read_file", true, false)),
            Some((Verdict::Refuse, By::Rule))
        );
        let ask = policy(Mode::Ask, &["git__status"], &["git__push"]);
        assert_eq!(
            verdict(ask.rule("git__status", false, false)),
            Some((Verdict::Run, By::Rule))
        );
        assert_eq!(
            verdict(ask.rule("git__push", true, true)),
            Some((Verdict::Refuse, By::Rule))
        );
        assert_eq!(
            verdict(ask.rule("python", true, false)),
            Some((Verdict::Run, By::ReadOnly))
        );
        assert_eq!(
            verdict(ask.rule("git__commit", false, true)),
            Some((Verdict::Run, By::Session))
        );
        assert_eq!(verdict(ask.rule("git__commit", false, false)), None);
        let auto = policy(Mode::Auto, &[], &["git__push"]);
        assert_eq!(
            verdict(auto.rule("git__commit", false, false)),
            Some((Verdict::Run, By::Mode))
        );
        assert_eq!(
            verdict(auto.rule("git__push", false, false)),
            Some((Verdict::Refuse, By::Rule))
        );
        // Under deny only what is allowed runs, read-only or not.
        let deny = policy(Mode::Deny, &["python"], &[]);
        assert_eq!(
            verdict(deny.rule("python", true, false)),
            Some((Verdict::Run, By::Rule))
        );
        assert_eq!(
            verdict(deny.rule("simple_browser", true, false)),
            Some((Verdict::Refuse, By::Mode))
        );
    }

    #[test]
    fn answers_become_decisions_with_the_reason_for_the_model() {
        let no = decision_of(Answer::No(Some(" not that file ".into())));
        assert_eq!((no.verdict, no.by), (Verdict::Refuse, By::Person));
        assert_eq!(
            no.reason.as_deref(),
            Some("the user declined it: not that file")
        );
        assert_eq!(decision_of(Answer::Stop).verdict, Verdict::Stop);
        assert_eq!(decision_of(Answer::Always).verdict, Verdict::Run);
        let json = serde_json::to_value(no_one_to_ask("fs__write_file")).unwrap();
        assert_eq!(json["verdict"], "refuse");
        assert_eq!(json["by"], "no_one");
        assert!(json.get("rule").is_none());
    }
}
