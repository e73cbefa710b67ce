//! `glm-agent traces list|show`: the runs recorded in the trace folder, as sessions.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use glm_agent::trace::Trace;
use glm_agent::{End, Event};

use crate::cli::{CmdResult, Failure, write_stdout};
use crate::config::{Config, TraceSettings};
use crate::display::short;
use crate::run::describe_end;

#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// The recorded runs, newest first: id, when, task, steps, how each ended, tokens.
    #[command(
        after_help = "Examples:\n  glm-agent traces list\n  glm-agent traces list --limit 5 --json"
    )]
    List {
        /// The most runs listed.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trace: TraceSettings,
    },
    /// A run as a readable transcript: the task, each call and what came back, the answer.
    #[command(
        after_help = "TRACE is a trace file, an id from `traces list`, or `last`.\n\n\
Examples:\n  glm-agent traces show last\n  glm-agent traces show run-1764331200000-4242"
    )]
    Show {
        /// The trace: a file, an id, or `last`.
        trace: String,
        #[command(flatten)]
        trace_settings: TraceSettings,
    },
}

/// Traces over this size are listed without a summary (reading them takes too long).
const MAX_SUMMARISED: u64 = 256 << 20;

/// Files in the trace folder, newest first (by the time in their names, else when written).
fn trace_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "cannot read the trace folder {}: {e}",
                dir.display()
            )));
        }
    };
    let mut files: Vec<(u128, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| (started_ms(&p), p))
        .collect();
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// When a run started, in ms since the epoch: from its name (`run-MILLIS-PID`), else the file's
/// time.
fn started_ms(path: &Path) -> u128 {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    stem.split('-')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .or_else(|| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(
                modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_millis(),
            )
        })
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM`, local time, of a time in ms since the epoch.
fn when(ms: u128) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// One line of `traces list`.
#[derive(serde::Serialize)]
struct Summary {
    id: String,
    when: String,
    task: String,
    steps: usize,
    ended: String,
    generated_tokens: usize,
    path: String,
}

fn summarise(path: &Path) -> Summary {
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut summary = Summary {
        when: when(started_ms(path)),
        id,
        task: String::new(),
        steps: 0,
        ended: String::new(),
        generated_tokens: 0,
        path: path.display().to_string(),
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_SUMMARISED {
        summary.ended = format!("(over {} MiB: not read)", MAX_SUMMARISED >> 20);
        return summary;
    }
    let trace = match Trace::read(path) {
        Ok(trace) => trace,
        Err(e) => {
            summary.ended = format!("(unreadable: {e})");
            return summary;
        }
    };
    summary.ended = "cut short (killed, or still running)".into();
    for event in &trace.events {
        match event {
            Event::Start {
                task, documents, ..
            } => {
                // The task as typed, after the documents put before it.
                summary.task = match task.rsplit_once(" ---\n\n") {
                    Some((_, typed)) if !documents.is_empty() => {
                        format!("{typed} [+{} files]", documents.len())
                    }
                    _ => task.clone(),
                };
            }
            Event::Model {
                generated_tokens, ..
            } => {
                summary.steps += 1;
                summary.generated_tokens += generated_tokens;
            }
            Event::End { end, .. } => summary.ended = ended(end),
            _ => {}
        }
    }
    summary
}

fn ended(end: &End) -> String {
    let text = describe_end(end);
    text.strip_prefix("stopped: ").unwrap_or(&text).to_owned()
}

/// The trace named by `name`: a file, an id in the folder, or `last`.
pub(crate) fn find(name: &str, dir: &Path) -> Result<PathBuf, Failure> {
    let given = Path::new(name);
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let files = trace_files(dir)?;
    let found = if name == "last" {
        files.into_iter().next()
    } else {
        files.into_iter().find(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy() == name.trim_end_matches(".jsonl"))
        })
    };
    found.ok_or_else(|| {
        Failure::bad_input(anyhow::anyhow!(
            "no trace `{name}` in {} (nor a file of that name): `glm-agent traces list` shows them",
            dir.display()
        ))
    })
}

/// A readable transcript of `trace`.
fn transcript(trace: &Trace) -> String {
    let mut out = String::new();
    for event in &trace.events {
        match event {
            Event::Start {
                task,
                engine,
                parent,
                ..
            } => {
                out.push_str(&format!("task: {}\nengine: {engine}\n", indent(task)));
                if let Some(parent) = parent {
                    out.push_str(&format!("continues: {parent}\n"));
                }
                out.push('\n');
            }
            Event::Call {
                step,
                name,
                arguments,
            } => {
                let args = match arguments {
                    serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("code") => {
                        m["code"].as_str().unwrap_or_default().to_owned()
                    }
                    other => other.to_string(),
                };
                out.push_str(&format!("[{step}] → {name}: {}\n", indent(&args)));
            }
            Event::Malformed { step, name, reason } => {
                out.push_str(&format!("[{step}] ✗ {name}: {reason}\n"));
            }
            Event::Observation {
                step, text, error, ..
            } => {
                let mark = if *error { "✗" } else { "←" };
                out.push_str(&format!(
                    "[{step}] {mark} {}\n",
                    indent(&short(text, 12, 2000))
                ));
            }
            Event::Tools { step, tools } => {
                out.push_str(&format!(
                    "[{step}] tools changed: {} offered\n",
                    tools.len()
                ));
            }
            Event::Answer { text, .. } => out.push_str(&format!("\nanswer: {}\n", indent(text))),
            Event::Budget { detail, .. } => out.push_str(&format!("budget: {detail}\n")),
            Event::Error { message } => out.push_str(&format!("error: {message}\n")),
            Event::End {
                end,
                steps,
                generated_tokens,
                took_ms,
            } => out.push_str(&format!(
                "\nended: {} ({steps} steps, {generated_tokens} tokens generated, {:.1} s)\n",
                ended(end),
                *took_ms as f64 / 1000.0
            )),
            Event::Approval {
                step,
                name,
                arguments: Some(arguments),
                ..
            } => {
                let args = short(&arguments.to_string(), 1, 300);
                out.push_str(&format!("[{step}] → {name}: {args} (not run)\n"));
            }
            Event::Cut {
                step,
                removed,
                before,
                after,
                ..
            } => out.push_str(&format!(
                "[{step}] context full: {removed} old tool outputs cut ({before} -> {after} tokens)\n"
            )),
            Event::Compact {
                step,
                summary: Some(summary),
                before,
                after,
                ..
            } => out.push_str(&format!(
                "[{step}] context full: compacted ({before} -> {after} tokens); the summary:\n    {}\n",
                indent(summary)
            )),
            Event::Compact { .. }
            | Event::Approval { .. }
            | Event::Model { .. }
            | Event::Delta { .. } => {}
        }
    }
    if !trace.events.iter().any(|e| matches!(e, Event::End { .. })) {
        out.push_str("\nended: cut short (the run was killed, or is still running)\n");
    }
    out
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n    ")
}

/// `traces`.
pub fn run(command: TracesCommand) -> CmdResult {
    let config = Config::load()?;
    match command {
        TracesCommand::List { limit, json, trace } => {
            let dir = trace_dir(&config, trace)?;
            let files = trace_files(&dir)?;
            let mut out = String::new();
            if files.is_empty() && !json {
                out.push_str(&format!("no traces in {}\n", dir.display()));
            }
            for path in files.iter().take(limit) {
                let s = summarise(path);
                if json {
                    out.push_str(&serde_json::to_string(&s).unwrap_or_default());
                    out.push('\n');
                } else {
                    out.push_str(&format!(
                        "{:<30} {}  {:>3} steps {:>7} tokens  {:<40}  {}\n",
                        s.id,
                        s.when,
                        s.steps,
                        s.generated_tokens,
                        short(&s.task.replace('\n', " "), 1, 40),
                        s.ended
                    ));
                }
            }
            write_stdout(out.as_bytes())
        }
        TracesCommand::Show {
            trace,
            trace_settings,
        } => {
            let dir = trace_dir(&config, trace_settings)?;
            let path = find(&trace, &dir)?;
            let read = Trace::read(&path).map_err(|e| Failure::bad_input(anyhow::Error::new(e)))?;
            write_stdout(transcript(&read).as_bytes())
        }
    }
}

fn trace_dir(config: &Config, flags: TraceSettings) -> Result<PathBuf, Failure> {
    let settings = config.resolve(&flags)?.value;
    Ok(settings.trace_dir.unwrap_or_else(std::env::temp_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_local_minutes() {
        let ms = 1_764_331_200_000;
        let shown = chrono::NaiveDateTime::parse_from_str(&when(ms), "%Y-%m-%d %H:%M").unwrap();
        let local = chrono::DateTime::from_timestamp_millis(ms as i64)
            .unwrap()
            .with_timezone(&chrono::Local)
            .naive_local();
        assert_eq!(shown, local);
        assert_eq!(when(u128::MAX), "?");
    }
}
