//! Asking the person at the terminal before a tool call runs.

use std::io::{BufRead, IsTerminal, Write};

use glm_agent::approval::{Answer, Approver, BoxFuture, Request};
use serde_json::Value;

/// Asks on the terminal: the question on standard error, the answer a line of standard input.
pub struct Terminal;

impl Terminal {
    /// The terminal, when there is one to ask on: standard input and error are terminals and
    /// events are not printed as JSON.
    pub fn open(json: bool) -> Option<Terminal> {
        (!json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
            .then_some(Terminal)
    }
}

/// The most characters of one argument shown in the question.
const SHOWN_CHARS: usize = 2_000;

/// The most arguments shown in the question.
const SHOWN_ARGUMENTS: usize = 20;

/// The call as a person reads it: one `name: value` line per argument, strings as they are
/// (their later lines indented), long values cut.
pub fn describe(tool: &str, arguments: &Value) -> String {
    let mut out = format!("{tool} wants to run");
    let entries: Vec<(String, &Value)> = match arguments {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Null => Vec::new(),
        other => vec![("arguments".to_owned(), other)],
    };
    if entries.is_empty() {
        out.push_str(" (no arguments)");
    } else {
        out.push(':');
    }
    let total = entries.len();
    for (key, value) in entries.into_iter().take(SHOWN_ARGUMENTS) {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let count = text.chars().count();
        let mut shown: String = text.chars().take(SHOWN_CHARS).collect();
        if count > SHOWN_CHARS {
            shown.push_str(&format!(" ... ({} more characters)", count - SHOWN_CHARS));
        }
        // Control characters (an escape sequence in a model's argument) are shown, not run.
        let shown: String = shown
            .chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect();
        let key: String = key.chars().take(100).collect();
        out.push_str(&format!("\n    {key}: {}", shown.replace('\n', "\n      ")));
    }
    if total > SHOWN_ARGUMENTS {
        out.push_str(&format!(
            "\n    ... ({} more arguments)",
            total - SHOWN_ARGUMENTS
        ));
    }
    out
}

/// An answer typed at the prompt; `None` when it is not one.
pub fn parse_answer(line: &str) -> Option<Answer> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word.to_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Yes),
        "a" | "always" => Some(Answer::Always),
        "n" | "no" => Some(Answer::No(
            Some(rest.trim().to_owned()).filter(|r| !r.is_empty()),
        )),
        "s" | "stop" => Some(Answer::Stop),
        _ => None,
    }
}

fn ask_blocking(tool: &str, arguments: &Value) -> Answer {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n? {}", describe(tool, arguments));
    let _ = writeln!(
        err,
        "  y: yes   a: yes, and to {tool} for the rest of the session   n [REASON]: no (the reason goes to the model)   s: stop the run"
    );
    drop(err);
    let stdin = std::io::stdin();
    loop {
        eprint!("allow {tool}? [y/a/n/s] ");
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            // The input closed: nothing was approved.
            Ok(0) | Err(_) => {
                eprintln!();
                return Answer::No(None);
            }
            Ok(_) => {}
        }
        match parse_answer(&line) {
            Some(answer) => return answer,
            None => eprintln!("  answer y, a, n (optionally with a reason) or s"),
        }
    }
}

impl Approver for Terminal {
    fn ask<'r>(&'r self, request: Request<'r>) -> BoxFuture<'r, Answer> {
        let tool = request.tool.to_owned();
        let arguments = request.arguments.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || ask_blocking(&tool, &arguments))
                .await
                .unwrap_or(Answer::No(None))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_their_reason() {
        assert_eq!(parse_answer("y\n"), Some(Answer::Yes));
        assert_eq!(parse_answer(" Always "), Some(Answer::Always));
        assert_eq!(parse_answer("n"), Some(Answer::No(None)));
        assert_eq!(
            parse_answer("n  write it under /tmp instead\n"),
            Some(Answer::No(Some("write it under /tmp instead".into())))
        );
        assert_eq!(parse_answer("s"), Some(Answer::Stop));
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("maybe"), None);
    }

    #[test]
    fn a_call_is_shown_readably_and_bounded() {
        let args =
            serde_json::json!({"path": "/tmp/a.txt", "content": "one\ntwo\u{1b}[2J", "n": 3});
        let shown = describe("fs__write_file", &args);
        assert!(shown.contains("    path: /tmp/a.txt"), "{shown}");
        assert!(
            shown.contains("    content: one\n      two\u{fffd}[2J"),
            "{shown}"
        );
        assert!(shown.contains("    n: 3"), "{shown}");
        let long = serde_json::json!({"content": "x".repeat(10_000)});
        let shown = describe("t", &long);
        assert!(shown.len() < 2_100, "{}", shown.len());
        assert!(shown.ends_with("(8000 more characters)"), "{shown}");
        let many: serde_json::Map<String, serde_json::Value> =
            (0..10_000).map(|i| (format!("k{i}"), i.into())).collect();
        let shown = describe("t", &serde_json::Value::Object(many));
        assert_eq!(shown.lines().count(), 22, "{shown}");
        assert!(shown.ends_with("(9980 more arguments)"), "{shown}");
    }
}
