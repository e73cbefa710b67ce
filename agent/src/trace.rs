//! Traces: one JSON object per line, written and flushed as each event happens, so a run that is
//! killed leaves every finished line readable. The format is described in docs/trace-format.md.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::engine::{Recorded, ReplayEngine};
use crate::events::Event;
use crate::sink::EventSink;

/// The trace schema version, the `v` field of every line.
pub const VERSION: u64 = 1;

/// Writes a trace file.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    started: Instant,
    failed: Option<String>,
}

impl EventSink for TraceWriter {
    fn event(&mut self, event: &Event) {
        self.record(event);
    }
}

/// Creates `dir` and its missing parents readable by the user only (0700 on Unix); folders that
/// exist are left as they are.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

impl TraceWriter {
    /// Creates `dir/<name>.jsonl` (the directory too). Fails when the file exists.
    pub fn create(dir: &Path, name: &str) -> std::io::Result<TraceWriter> {
        private_dir(dir)?;
        let path = dir.join(format!("{name}.jsonl"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        Ok(TraceWriter {
            file,
            path,
            started: Instant::now(),
            failed: None,
        })
    }

    /// Where the trace is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, if any (the run goes on without its trace).
    pub fn error(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Records one event (model deltas are skipped: the `model` event has the whole text).
    pub fn record(&mut self, event: &Event) {
        if matches!(event, Event::Delta { .. }) || self.failed.is_some() {
            return;
        }
        let Ok(Value::Object(fields)) = serde_json::to_value(event) else {
            return;
        };
        let mut line = Map::new();
        line.insert("v".into(), VERSION.into());
        line.insert(
            "t_ms".into(),
            (self.started.elapsed().as_millis() as u64).into(),
        );
        line.extend(fields);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // One write per line, straight to the file: a killed process leaves whole lines.
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            self.failed = Some(format!("writing {}: {e}", self.path.display()));
        }
    }
}

/// Why the recorded model's tokenizer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizerLookup {
    /// The trace does not say which folder the model was in.
    #[error("the trace does not name the model's folder")]
    NotRecorded,
    /// The folder or its tokenizer.json is gone.
    #[error("{path} no longer exists")]
    Missing {
        /// The tokenizer it looked for.
        path: PathBuf,
    },
    /// The file is there but is not the one the run used.
    #[error("{path} has changed since the run (sha256 {found}, recorded {recorded})")]
    Changed {
        /// The tokenizer.
        path: PathBuf,
        /// Its sha256 now.
        found: String,
        /// The sha256 the trace recorded.
        recorded: String,
    },
}

/// The longest trace line read: a model event with a whole 1M-token prompt as its delta
/// takes about 8 MiB.
pub const MAX_LINE: usize = 32 << 20;

/// A trace read back.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The events, in order.
    pub events: Vec<Event>,
    /// Whether the last line was cut short (the run was killed while writing it).
    pub truncated: bool,
}

/// Why a trace cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file cannot be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A complete line is not a valid event.
    #[error("{path}:{line}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Trace {
    /// Reads a trace. Every complete line must be an event of a known version; a last line
    /// without its newline (a killed run) is ignored and reported as `truncated`.
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| TraceError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let mut events = Vec::new();
        let mut truncated = false;
        let mut number = 0;
        loop {
            let mut raw = Vec::new();
            let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut raw)
                .map_err(|source| TraceError::Io {
                    path: shown.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            number += 1;
            if raw.len() > MAX_LINE {
                return Err(TraceError::Corrupt {
                    path: shown.clone(),
                    line: number,
                    message: format!(
                        "the line is longer than {} MiB, more than any event glm-agent writes",
                        MAX_LINE >> 20
                    ),
                });
            }
            if raw.last() != Some(&b'\n') {
                truncated = true;
                break;
            }
            let corrupt = |message: String| TraceError::Corrupt {
                path: shown.clone(),
                line: number,
                message,
            };
            let text = std::str::from_utf8(&raw).map_err(|e| corrupt(e.to_string()))?;
            if text.trim().is_empty() {
                continue;
            }
            let mut value: Value =
                serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
            let version = value.get("v").and_then(Value::as_u64);
            if version != Some(VERSION) {
                return Err(corrupt(format!(
                    "trace version {version:?}; this glm-agent reads version {VERSION}"
                )));
            }
            if let Some(map) = value.as_object_mut() {
                map.remove("v");
                map.remove("t_ms");
            }
            let event: Event =
                serde_json::from_value(value).map_err(|e| corrupt(format!("not an event: {e}")))?;
            events.push(event);
        }
        Ok(Trace { events, truncated })
    }

    /// The recorded model outputs, in order.
    pub fn outputs(&self) -> Vec<Recorded> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Model { ids, text, .. } => Some(Recorded {
                    ids: ids.clone(),
                    text: text.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// An engine that gives the recorded outputs back.
    pub fn replay_engine(&self) -> ReplayEngine {
        ReplayEngine::new(self.outputs())
    }

    /// The recorded model's `tokenizer.json`, when its folder still holds the very file the run
    /// used (same sha256).
    pub fn recorded_tokenizer(&self) -> Result<PathBuf, TokenizerLookup> {
        use sha2::{Digest, Sha256};
        let model = self.events.iter().find_map(|e| match e {
            Event::Start { model, .. } => Some(model),
            _ => None,
        });
        let field = |name: &str| model.and_then(|m| m.get(name)).and_then(Value::as_str);
        let (Some(folder), Some(recorded)) = (field("folder"), field("tokenizer_sha256")) else {
            return Err(TokenizerLookup::NotRecorded);
        };
        let path = Path::new(folder).join("tokenizer.json");
        let bytes =
            std::fs::read(&path).map_err(|_| TokenizerLookup::Missing { path: path.clone() })?;
        let found = hex::encode(Sha256::digest(&bytes));
        if found != recorded {
            return Err(TokenizerLookup::Changed {
                path,
                found,
                recorded: recorded.to_owned(),
            });
        }
        Ok(path)
    }

    /// The tools the recorded run offered last, as declared (its start's, or the last change's).
    pub fn last_tools(&self) -> Vec<Value> {
        let mut offered = Vec::new();
        for event in &self.events {
            if let Event::Start { tools, .. } | Event::Tools { tools, .. } = event {
                offered = tools.clone();
            }
        }
        offered
    }

    /// The task of the recorded run.
    pub fn task(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::Start { task, .. } => Some(task.as_str()),
            _ => None,
        })
    }
}
