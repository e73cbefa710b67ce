//! How `run` and `chat` show a run: the model's text streamed on stderr, each call once as
//! `→ tool: args`, results as `← ...`, and the answer on stdout unless both streams are the
//! same terminal (where the streamed answer already stands); or every event as a JSON line.

use std::io::{IsTerminal, Write};

use glm_agent::approval::By;
use glm_agent::{Event, EventSink};
use glm_prompts::{Piece, Reader};
use serde::Deserialize;

use crate::cli::write_stdout;

/// Shows events as they come.
pub struct Display {
    json: bool,
    at_line_start: bool,
    /// Tool names: a segment of a turn whose first line is one is a call, shown by its `call`
    /// event only.
    tools: Vec<String>,
    /// Reads the current turn into its text, which streams, and its calls, which do not.
    reader: Reader,
    /// The reason of the turn's malformed call, which its error observation repeats.
    malformed: Option<String>,
    /// Whether the answer also goes to stdout.
    answer_to_stdout: bool,
    /// The context meter: the window, the bytes of keys and values a token takes (embedded
    /// engine), the highest share of the window shown so far, and where the warning that the
    /// model reads less reliably starts.
    window: Option<usize>,
    kv_per_token: Option<u64>,
    shown_share: Option<usize>,
    warn_past: Option<usize>,
}

/// The first `lines` lines of `text`, at most `chars` characters.
pub fn short(text: &str, lines: usize, chars: usize) -> String {
    let mut out: String = text.lines().take(lines).collect::<Vec<_>>().join("\n");
    if out.chars().count() > chars {
        out = out.chars().take(chars).collect::<String>() + "…";
    } else if text.lines().count() > lines {
        out.push_str("\n…");
    }
    out
}

impl Display {
    /// A display for a run offering `tools`; `json` prints JSON lines instead.
    pub fn new(json: bool, tools: Vec<String>) -> Self {
        let same_terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Display {
            json,
            at_line_start: true,
            reader: Reader::new(&tools),
            tools,
            malformed: None,
            answer_to_stdout: !same_terminal,
            window: None,
            kv_per_token: None,
            shown_share: None,
            warn_past: None,
        }
    }

    /// Warns once when a prompt grows past `tokens` (the model's effective length).
    pub fn warn_past(mut self, tokens: Option<usize>) -> Self {
        self.warn_past = tokens.filter(|t| *t > 0);
        self
    }

    /// After a model turn: the prompt's share of the window, at the first turn and when it
    /// passes a half, four fifths and nineteen twentieths; the warning past the effective length.
    fn meter(&mut self, prompt: usize) {
        if let Some(limit) = self.warn_past
            && prompt > limit
        {
            self.warn_past = None;
            self.write_err(&format!(
                "warning: the prompt has {prompt} tokens, past {limit}, beyond which this model reads less reliably (GLM-4-9B-Chat-1M on RULER: 86.7 at 64K tokens, 83.1 at 128K)\n"
            ));
        }
        let Some(window) = self.window.filter(|w| *w > 0) else {
            return;
        };
        let share = prompt * 100 / window;
        let mark = [95, 80, 50, 0]
            .into_iter()
            .find(|m| share >= *m)
            .unwrap_or(0);
        if self.shown_share.is_some_and(|last| mark <= last) {
            return;
        }
        self.shown_share = Some(mark);
        let memory = self
            .kv_per_token
            .map(|b| {
                format!(
                    "; keys and values {} MiB now, {} MiB at the full window",
                    (b * prompt as u64) >> 20,
                    (b * window as u64) >> 20
                )
            })
            .unwrap_or_default();
        self.write_err(&format!(
            "context: {prompt} of {window} tokens ({share}%){memory}\n"
        ));
    }

    /// Whether the final answer should be printed on stdout (not when it was just streamed to
    /// the same terminal).
    pub fn answer_to_stdout(&self) -> bool {
        self.answer_to_stdout
    }

    fn write_err(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{text}");
        let _ = err.flush();
        self.at_line_start = text.ends_with('\n');
    }

    fn end_line(&mut self) {
        if !self.at_line_start {
            let _ = writeln!(std::io::stderr());
            self.at_line_start = true;
        }
    }

    /// Streams a turn's text as it comes; a call's name and arguments wait for its `call` event.
    fn delta(&mut self, text: &str) {
        let pieces = self.reader.push(text);
        self.content(pieces);
    }

    fn content(&mut self, pieces: Vec<Piece>) {
        for piece in pieces {
            if let Piece::Content(text) = piece {
                self.write_err(&text);
            }
        }
    }

    /// Ends a model turn: what the reader held back is shown, and the next turn starts afresh.
    fn end_turn(&mut self) {
        let pieces = self.reader.finish();
        self.content(pieces);
        self.reader = Reader::new(&self.tools);
        self.malformed = None;
        self.end_line();
    }

    /// A call as `→ tool: args`, the code alone for python; `note` after it.
    fn call(&mut self, name: &str, arguments: &serde_json::Value, note: &str) {
        let args = match arguments {
            serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("code") => {
                m["code"].as_str().unwrap_or_default().to_owned()
            }
            other => other.to_string(),
        };
        let args = short(&args, 6, 400).replace('\n', "\n  ");
        self.write_err(&format!("→ {name}: {args}{note}\n"));
    }

    /// Shows one event.
    pub fn show(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let _ = write_stdout(format!("{line}\n").as_bytes());
            }
            return;
        }
        match event {
            Event::Delta { text, .. } => self.delta(text),
            Event::Model { prompt_tokens, .. } => {
                self.end_turn();
                self.meter(*prompt_tokens);
            }
            Event::Start {
                settings, model, ..
            } => {
                self.window = settings["context_tokens"].as_u64().map(|n| n as usize);
                self.kv_per_token = model["kv_bytes_per_token"].as_u64();
                self.end_line();
            }
            Event::Answer { .. } => self.end_line(),
            Event::Cut {
                removed,
                before,
                after,
                window,
                ..
            } => self.write_err(&format!(
                "context: {before} tokens and the answer would not fit the {window}-token window: {removed} old tool outputs cut ({after} tokens now)\n"
            )),
            Event::Compact {
                summary: None,
                before,
                window,
                ..
            } => self.write_err(&format!(
                "context: {before} tokens do not fit the {window}-token window even with old tool outputs cut: the model writes a summary to go on from\n"
            )),
            Event::Compact {
                summary: Some(_),
                after,
                ..
            } => self.write_err(&format!(
                "context: compacted to the task, the summary and the latest exchange ({after} tokens)\n"
            )),
            Event::Call {
                name, arguments, ..
            } => self.call(name, arguments, ""),
            // A refused call is shown as the call it was, then its error observation says why;
            // the person who refused it saw it in the question.
            Event::Approval {
                name,
                decision,
                arguments: Some(arguments),
                ..
            } if decision.by != By::Person => {
                let note = match decision.by {
                    By::NoOne => format!(
                        " (not run: nobody to ask; --allow {name} or --approval auto runs it)"
                    ),
                    _ => " (not run)".to_owned(),
                };
                self.call(name, arguments, &note);
            }
            Event::Approval { .. } => {}
            Event::Malformed { name, reason, .. } => {
                self.write_err(&format!("✗ {name}: {reason}\n"));
                self.malformed = Some(reason.clone());
            }
            Event::Observation { text, error, .. }
                if *error
                    && self
                        .malformed
                        .as_ref()
                        .is_some_and(|r| text.contains(r.as_str())) => {}
            Event::Observation {
                text, error, files, ..
            } => {
                let mark = if *error { "✗" } else { "←" };
                let mut out = format!("{mark} {}\n", short(text, 6, 600).replace('\n', "\n  "));
                for f in files {
                    out.push_str(&format!("  file: {f}\n"));
                }
                self.write_err(&out);
            }
            Event::Tools { tools, .. } => {
                self.tools = tools
                    .iter()
                    .filter_map(|t| glm_prompts::ToolSpec::deserialize(t).ok())
                    .map(|t| t.name().to_owned())
                    .collect();
                self.reader = Reader::new(&self.tools);
                self.write_err(&format!(
                    "tools changed: {} offered now ({})\n",
                    self.tools.len(),
                    short(&self.tools.join(", "), 1, 300)
                ));
            }
            Event::Budget { detail, .. } => self.write_err(&format!("budget: {detail}\n")),
            Event::Error { message } => self.write_err(&format!("error: {message}\n")),
            Event::End { .. } => {}
        }
    }
}

impl EventSink for Display {
    fn event(&mut self, event: &Event) {
        self.show(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortening_keeps_the_first_lines() {
        assert_eq!(short("a\nb\nc", 2, 100), "a\nb\n…");
        assert_eq!(short("abcdef", 3, 3), "abc…");
    }
}
