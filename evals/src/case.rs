//! Eval cases and their checks. A suite is a JSON Lines file, one case per line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::calls::{ExpectedCall, check_calls, no_call};

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// A unique id within the suite.
    pub id: String,
    /// A category for the report (`simple`, `multiple`, `irrelevance`, ...).
    #[serde(default)]
    pub category: String,
    /// A system prompt, rendered with the tools' descriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Earlier turns of the conversation, before the task: `{"role": "user" | "assistant",
    /// "content": ...}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Turn>,
    /// The user's message.
    pub task: String,
    /// Function tools offered: `{"name", "description", "parameters"}` objects.
    #[serde(default)]
    pub functions: Vec<Value>,
    /// Built-in tools offered (`python`, `simple_browser`).
    #[serde(default)]
    pub builtins: Vec<String>,
    /// How the run is judged.
    pub check: Check,
    /// Model outputs that pass this case, one per model turn: the replay engine uses them to
    /// run a suite end to end without a model.
    #[serde(default)]
    pub reference: Vec<String>,
}

/// An earlier turn of a case's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

/// How a case is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Check {
    /// The model's first turn calls these functions (order-free), judged on the abstract
    /// syntax by BFCL's rules ([`crate::calls`]); the tools are not run.
    Calls {
        /// The expected calls.
        calls: Vec<ExpectedCall>,
    },
    /// The model's first turn calls no function (BFCL's irrelevance category).
    NoCall,
    /// A case of the Berkeley Function Calling Leaderboard, judged as BFCL's checker judges
    /// it ([`crate::bfcl::ast`]): the first turn's calls, or for `parallel` categories every
    /// call the model makes until it answers (each answered with a neutral observation, at
    /// most [`Check::call_limit`] turns); irrelevance categories pass without a call,
    /// `live_relevance` with one.
    Bfcl {
        /// BFCL's category name, which decides the checker's rules.
        category: String,
        /// The declared functions in BFCL's own types.
        functions: Vec<Value>,
        /// BFCL's `ground_truth`: one `{function: {argument: [allowed values]}}` per expected
        /// call; empty for irrelevance and relevance.
        #[serde(default)]
        ground_truth: Vec<Value>,
    },
    /// The final answer equals this text (trimmed).
    Exact { text: String },
    /// The final answer contains this text (case-insensitive).
    Contains { text: String },
    /// The final answer matches this regular expression.
    Regex { pattern: String },
    /// Python run in the sandbox after the run, with `answer` bound to the final answer and the
    /// run's files under `/mnt/data`; the case passes when the code's last expression is true.
    Python {
        /// The check's code.
        code: String,
    },
    /// The final answer contains a number within `tolerance` of `value`.
    Numeric {
        /// The expected value.
        value: f64,
        /// The allowed absolute difference.
        #[serde(default)]
        tolerance: f64,
    },
}

impl Check {
    /// Whether the case is judged on the first model turn only (the tools are not run).
    pub fn first_turn_only(&self) -> bool {
        match self {
            Check::Calls { .. } | Check::NoCall => true,
            Check::Bfcl { .. } => self.call_limit().is_none(),
            _ => false,
        }
    }

    /// For a case whose calls are collected over several turns (BFCL's parallel categories),
    /// the most model turns: the calls expected plus two, room for an answer and one extra
    /// call to judge.
    pub fn call_limit(&self) -> Option<usize> {
        match self {
            Check::Bfcl {
                category,
                ground_truth,
                ..
            } if category.contains("parallel") => Some(ground_truth.len() + 2),
            _ => None,
        }
    }
}

/// What a run gave, for scoring.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunResult {
    /// Calls of the first model turn: name and JSON arguments.
    pub first_calls: Vec<(String, Value)>,
    /// Every call of the run, in the order made.
    pub calls: Vec<(String, Value)>,
    /// The final answer, if any.
    pub answer: Option<String>,
    /// What a Python check printed (its notebook output), when the case has one and it ran.
    pub check_output: Option<String>,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the case passed.
    pub pass: bool,
    /// Why not (empty when it passed).
    pub reason: String,
}

impl From<Result<(), String>> for Verdict {
    fn from(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Verdict::pass(),
            Err(why) => Verdict::fail(why),
        }
    }
}

impl Verdict {
    fn pass() -> Self {
        Verdict {
            pass: true,
            reason: String::new(),
        }
    }

    fn fail(reason: impl Into<String>) -> Self {
        Verdict {
            pass: false,
            reason: reason.into(),
        }
    }
}

/// A scorer of one's own: implement it to judge runs in a way the built-in checks do not.
pub trait Scorer {
    /// Judges `result` for `case`.
    fn score(&self, case: &Case, result: &RunResult) -> Verdict;
}

/// The built-in checks.
pub struct BuiltinScorer;

/// Numbers written in `text` (`1,234.5`, `-3`, `2e10`).
fn numbers(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<f64>| {
        let cleaned: String = current.chars().filter(|c| *c != ',').collect();
        let trimmed = cleaned.trim_end_matches(['.', 'e', 'E', '-', '+']);
        if let Ok(v) = trimmed.parse::<f64>() {
            out.push(v);
        }
        current.clear();
    };
    for c in text.chars() {
        let continues = c.is_ascii_digit()
            || (c == '-' && current.is_empty())
            || (matches!(c, '.' | ',' | 'e' | 'E') && !current.is_empty())
            || (matches!(c, '-' | '+') && current.ends_with(['e', 'E']));
        if continues {
            current.push(c);
        } else if !current.is_empty() {
            flush(&mut current, &mut out);
        }
    }
    if !current.is_empty() {
        flush(&mut current, &mut out);
    }
    out
}

impl Scorer for BuiltinScorer {
    fn score(&self, case: &Case, result: &RunResult) -> Verdict {
        let answer = result.answer.as_deref().unwrap_or("");
        match &case.check {
            Check::Calls { calls } => {
                check_calls(calls, &result.first_calls, &case.functions).into()
            }
            Check::Bfcl {
                category,
                functions,
                ground_truth,
            } => bfcl_verdict(category, functions, ground_truth, result),
            Check::NoCall => no_call(&result.first_calls).into(),
            Check::Exact { text } => {
                if answer.trim() == text.trim() {
                    Verdict::pass()
                } else {
                    Verdict::fail(format!("answer {answer:?} is not {text:?}"))
                }
            }
            Check::Contains { text } => {
                if answer.to_lowercase().contains(&text.to_lowercase()) {
                    Verdict::pass()
                } else {
                    Verdict::fail(format!("answer {answer:?} does not contain {text:?}"))
                }
            }
            Check::Regex { pattern } => match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(answer) => Verdict::pass(),
                Ok(_) => Verdict::fail(format!("answer {answer:?} does not match /{pattern}/")),
                Err(e) => Verdict::fail(format!("the case's pattern is invalid: {e}")),
            },
            Check::Python { .. } => match &result.check_output {
                Some(out) => {
                    let last = out
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    if last.trim() == "True" {
                        Verdict::pass()
                    } else {
                        Verdict::fail(format!("the python check gave {:?}", out.trim()))
                    }
                }
                None => Verdict::fail("the python check did not run"),
            },
            Check::Numeric { value, tolerance } => {
                if numbers(answer)
                    .iter()
                    .any(|n| (n - value).abs() <= tolerance.max(f64::EPSILON * value.abs()))
                {
                    Verdict::pass()
                } else {
                    Verdict::fail(format!(
                        "no number within {tolerance} of {value} in {answer:?}"
                    ))
                }
            }
        }
    }
}

/// BFCL's verdict: relevance by whether a call was made, else its AST checker.
fn bfcl_verdict(
    category: &str,
    functions: &[Value],
    ground_truth: &[Value],
    result: &RunResult,
) -> Verdict {
    let calls = if category.contains("parallel") {
        &result.calls
    } else {
        &result.first_calls
    };
    if category.contains("irrelevance") {
        return no_call(calls).into();
    }
    if calls.is_empty() {
        return Verdict::fail("no function was called");
    }
    if category.contains("relevance") {
        return Verdict::pass();
    }
    crate::bfcl::ast::check(category, functions, calls, ground_truth).into()
}

/// Why `id` cannot name a case's files (`<id>.jsonl`, `work/<id>`), or `None` when it can: a
/// case id is a plain file name of letters, digits, `.`, `_` and `-`, not starting with a dot,
/// at most 128 characters.
pub fn unsafe_id(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.len() > 128 {
        Some("is longer than 128 characters")
    } else if id.starts_with('.') {
        Some("starts with a dot")
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("has a character other than letters, digits, `.`, `_` and `-`")
    } else {
        None
    }
}

/// Reads a suite: one case per line; blank lines and lines starting with `//` are skipped.
pub fn read_suite(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let case: Case = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        if let Some(why) = unsafe_id(&case.id) {
            return Err(format!(
                "line {}: the case id {:?} {why}; ids name the case's trace and work folder",
                i + 1,
                case.id
            ));
        }
        if !ids.insert(case.id.clone()) {
            return Err(format!(
                "line {}: the id `{}` is used twice",
                i + 1,
                case.id
            ));
        }
        cases.push(case);
    }
    if cases.is_empty() {
        return Err("the suite has no cases".into());
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(check: Value) -> Case {
        serde_json::from_value(json!({"id": "c", "task": "t", "check": check})).unwrap()
    }

    fn answer(text: &str) -> RunResult {
        RunResult {
            answer: Some(text.into()),
            ..RunResult::default()
        }
    }

    #[test]
    fn answer_checks() {
        let s = BuiltinScorer;
        assert!(
            s.score(
                &case(json!({"kind": "exact", "text": "42"})),
                &answer(" 42\n")
            )
            .pass
        );
        assert!(
            !s.score(
                &case(json!({"kind": "exact", "text": "42"})),
                &answer("42.")
            )
            .pass
        );
        assert!(
            s.score(
                &case(json!({"kind": "contains", "text": "oslo"})),
                &answer("In Oslo.")
            )
            .pass
        );
        assert!(
            s.score(
                &case(json!({"kind": "regex", "pattern": "^\\d+ primes$"})),
                &answer("9592 primes")
            )
            .pass
        );
        let numeric = case(json!({"kind": "numeric", "value": 1234.5, "tolerance": 0.01}));
        assert!(s.score(&numeric, &answer("It is 1,234.5 in total.")).pass);
        assert!(!s.score(&numeric, &answer("It is 1,235 in total.")).pass);
        assert!(
            s.score(
                &case(json!({"kind": "numeric", "value": -3e-5})),
                &answer("x = -3e-5")
            )
            .pass
        );
        let bad = s.score(
            &case(json!({"kind": "regex", "pattern": "("})),
            &answer("x"),
        );
        assert!(!bad.pass && bad.reason.contains("invalid"));
    }

    #[test]
    fn call_checks() {
        let mut c = case(json!({"kind": "calls", "calls": [{"name": "f", "args": {"x": [1]}}]}));
        c.functions = vec![
            json!({"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}),
        ];
        let s = BuiltinScorer;
        let called = |x: Value| RunResult {
            first_calls: vec![("f".into(), json!({"x": x}))],
            ..RunResult::default()
        };
        assert!(s.score(&c, &called(json!(1))).pass);
        assert!(!s.score(&c, &called(json!(2))).pass);
        let none = s.score(&c, &RunResult::default());
        assert_eq!(none.reason, "no function was called");
        let irrelevant = case(json!({"kind": "no_call"}));
        assert!(
            s.score(&irrelevant, &answer("I cannot help with that."))
                .pass
        );
        assert!(!s.score(&irrelevant, &called(json!(1))).pass);
    }

    #[test]
    fn suites_are_read_strictly() {
        let ok =
            "{\"id\": \"a\", \"task\": \"t\", \"check\": {\"kind\": \"no_call\"}}\n\n// note\n";
        assert_eq!(read_suite(ok).unwrap().len(), 1);
        let twice = format!("{ok}{ok}");
        assert!(read_suite(&twice).unwrap_err().contains("used twice"));
        assert!(read_suite("{\"id\": 1}").unwrap_err().starts_with("line 1"));
        assert!(read_suite("").is_err());
        for bad in ["/tmp/x/victim", "../../y", ".hidden", "a b", ""] {
            let line = json!({"id": bad, "task": "t", "check": {"kind": "no_call"}}).to_string();
            let err = read_suite(&line).unwrap_err();
            assert!(err.contains("case id"), "{bad}: {err}");
        }
        assert_eq!(unsafe_id("live_multiple_10-3-2"), None);
    }
}
