//! `--file`: documents put into the conversation. Text and code go in as they are, HTML through
//! the browser's reader; anything else is refused with a message. Every input is bounded: bytes
//! per file and in all, files per folder (walked with `.gitignore` honoured, links not followed),
//! and time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cli::Failure;

/// The most bytes of one document.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most bytes of all documents together (about 8M tokens of English, past the 1M window).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// The most files taken from folders.
pub const MAX_FILES: usize = 10_000;
/// The most time spent finding and reading documents.
pub const MAX_TIME: Duration = Duration::from_secs(60);

/// A document read for the conversation.
#[derive(Debug, Clone)]
pub struct Document {
    /// As the user named it (a folder's files under the folder's name; `-` for standard input).
    pub name: String,
    /// Bytes read.
    pub bytes: u64,
    /// sha256 of the bytes read.
    pub sha256: String,
    /// The text the model reads.
    pub text: String,
}

impl Document {
    /// What the trace records of it.
    pub fn record(&self) -> serde_json::Value {
        serde_json::json!({"path": self.name, "bytes": self.bytes, "sha256": self.sha256})
    }
}

fn refuse(message: String) -> Failure {
    Failure::bad_input(anyhow::anyhow!(message))
}

/// Reads every `--file`: files, folders, `-` (standard input).
pub fn read_documents(paths: &[PathBuf]) -> Result<Vec<Document>, Failure> {
    let started = Instant::now();
    let mut docs = Vec::new();
    let mut total = 0u64;
    for path in paths {
        let found = if path.as_os_str() == "-" {
            vec![read_stdin()?]
        } else if path.is_dir() {
            read_folder(path, started)?
        } else {
            vec![read_file(path, &path.display().to_string())?]
        };
        for doc in found {
            total += doc.bytes;
            if total > MAX_TOTAL_BYTES {
                return Err(refuse(format!(
                    "the files given come to over {} MiB, more than glm-agent reads for one conversation: pass fewer or smaller files",
                    MAX_TOTAL_BYTES >> 20
                )));
            }
            docs.push(doc);
        }
    }
    Ok(docs)
}

fn read_stdin() -> Result<Document, Failure> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("--file -: cannot read standard input: {e}")))?;
    document("-", bytes, false)
}

/// How long standard input may stay silent before a run goes on without it.
pub const STDIN_WAIT: Duration = Duration::from_secs(2);

/// Standard input as a document, when it is piped (not a terminal) and sends something: an
/// empty or closed input adds nothing, and one that sends nothing within [`STDIN_WAIT`] is left
/// alone (the run goes on, saying so) instead of waiting for ever. What it sends is bounded as
/// `--file -` is.
pub fn piped_stdin() -> Result<Option<Document>, Failure> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    enum Read {
        Started,
        Done(std::io::Result<Vec<u8>>),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut first = [0u8; 8192];
        let result = match stdin.read(&mut first) {
            Ok(0) => Ok(Vec::new()),
            Ok(n) => {
                let _ = tx.send(Read::Started);
                let mut bytes = first[..n].to_vec();
                (&mut stdin)
                    .take(MAX_FILE_BYTES + 1 - n as u64)
                    .read_to_end(&mut bytes)
                    .map(|_| bytes)
            }
            Err(e) => Err(e),
        };
        let _ = tx.send(Read::Done(result));
    });
    let bytes = match rx.recv_timeout(STDIN_WAIT) {
        Ok(Read::Started) => match rx.recv_timeout(MAX_TIME) {
            Ok(Read::Done(result)) => result,
            _ => {
                return Err(refuse(format!(
                    "standard input did not end within {} s: pass the material with --file instead",
                    MAX_TIME.as_secs()
                )));
            }
        },
        Ok(Read::Done(result)) => result,
        Err(_) => {
            eprintln!(
                "note: standard input is not a terminal but sent nothing in {} s; going on without it (pipe material in, or give it with --file -)",
                STDIN_WAIT.as_secs()
            );
            return Ok(None);
        }
    }
    .map_err(|e| refuse(format!("cannot read standard input: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    document("standard input", bytes, false).map(Some)
}

/// The documents a chat message names as `@path` (a word starting with `@` that names a file or
/// folder that exists); other words starting with `@` stay text.
pub fn at_paths(message: &str) -> Result<Vec<Document>, Failure> {
    let paths: Vec<PathBuf> = message
        .split_whitespace()
        .filter_map(|word| word.strip_prefix('@'))
        .map(|p| p.trim_end_matches([',', '.', ';', ':', ')', '?', '!']))
        .filter(|p| !p.is_empty() && Path::new(p).exists())
        .map(PathBuf::from)
        .collect();
    read_documents(&paths)
}

/// The files of `dir` (`.gitignore`, `.ignore` and hidden files honoured, links not followed),
/// in path order; binary files are left out (and counted in a warning).
fn read_folder(dir: &Path, started: Instant) -> Result<Vec<Document>, Failure> {
    let mut files = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .follow_links(false)
        .max_depth(Some(64))
        .require_git(false)
        .build();
    for entry in walker {
        if started.elapsed() > MAX_TIME {
            return Err(refuse(format!(
                "--file {}: listing the folder took over {} s: pass a narrower folder",
                dir.display(),
                MAX_TIME.as_secs()
            )));
        }
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_some_and(|t| t.is_file()) {
            files.push(entry.into_path());
            if files.len() > MAX_FILES {
                return Err(refuse(format!(
                    "--file {}: the folder holds over {MAX_FILES} files: pass a narrower folder, or list what to leave out in a .ignore file there",
                    dir.display()
                )));
            }
        }
    }
    files.sort();
    let mut docs = Vec::new();
    let mut skipped = 0;
    for file in files {
        if started.elapsed() > MAX_TIME {
            return Err(refuse(format!(
                "--file {}: reading the folder took over {} s: pass a narrower folder",
                dir.display(),
                MAX_TIME.as_secs()
            )));
        }
        match read_file(&file, &file.display().to_string()) {
            Ok(doc) => docs.push(doc),
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        eprintln!(
            "note: --file {}: {skipped} files left out (not text, or over {} MiB)",
            dir.display(),
            MAX_FILE_BYTES >> 20
        );
    }
    Ok(docs)
}

fn read_file(path: &Path, name: &str) -> Result<Document, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("--file {name}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(format!(
            "--file {name}: not a regular file (a device or a pipe is not read)"
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "--file {name}: {} MiB, over the {} MiB glm-agent reads of one file: pass a part of it",
            meta.len() >> 20,
            MAX_FILE_BYTES >> 20
        )));
    }
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| refuse(format!("--file {name}: {e}")))?;
    if extension == "pdf" || bytes.starts_with(b"%PDF-") {
        let text = crate::pdf::text_of(path, name)?;
        return Ok(Document {
            name: name.to_owned(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            text,
        });
    }
    document(name, bytes, matches!(extension.as_str(), "html" | "htm"))
}

/// A document from its bytes: text as it is, HTML through the reader; refused when over the
/// limit or not text.
fn document(name: &str, bytes: Vec<u8>, html: bool) -> Result<Document, Failure> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse(format!(
            "--file {name}: over the {} MiB glm-agent reads of one file: pass a part of it",
            MAX_FILE_BYTES >> 20
        )));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    if bytes.contains(&0) {
        return Err(refuse(format!(
            "--file {name}: binary data, not text: glm-agent reads text, code and HTML"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        refuse(format!(
            "--file {name}: not UTF-8 text: convert it first (iconv -t UTF-8)"
        ))
    })?;
    let text = if html {
        let base = url::Url::parse("file:///document.html").map_err(|e| refuse(e.to_string()))?;
        let page = glm_tools::browser::extract(&text, &base, 0);
        match page.title.trim() {
            "" => page.text,
            title => format!("{title}\n\n{}", page.text),
        }
    } else {
        text
    };
    Ok(Document {
        name: name.to_owned(),
        bytes: size,
        sha256,
        text,
    })
}

/// The user's message with the documents before it, each under a header naming it (so the
/// model can cite it) and closed by a line naming it again.
pub fn with_documents(task: &str, docs: &[Document]) -> String {
    if docs.is_empty() {
        return task.to_owned();
    }
    let mut out = String::new();
    for doc in docs {
        out.push_str(&format!(
            "--- file: {} ({} bytes) ---\n{}\n--- end of {} ---\n\n",
            doc.name,
            doc.bytes,
            doc.text.trim_end(),
            doc.name
        ));
    }
    out.push_str(task);
    out
}
