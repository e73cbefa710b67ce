//! PDF documents: their text, extracted by `pdf-extract` in a child process of this binary
//! (`glm-agent pdf-text FILE`, hidden) whose memory and time are bounded, so that a PDF bomb (a
//! stream that inflates to gigabytes) or a file that sends the parser into a loop costs at most
//! that and is refused with a message; a parser panic is a refusal too.
//!
//! Chosen over `lopdf`'s own `extract_text` (which `pdf-extract` is built on) on real PDFs,
//! scored by word overlap against PDFium's text: both read the words (F 0.995 to 1.000), but
//! `lopdf` joins every line of a page into one, losing code blocks and lists, where
//! `pdf-extract` keeps the lines (at 2 to 5 times `lopdf`'s time: 220 ms for a 263 KB, 70,000-
//! character manual).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{CmdResult, Failure, write_stdout};

/// The most memory the extraction may take (its data segment).
pub const MAX_MEMORY: u64 = 1 << 30;

/// The most time the extraction may take.
pub const MAX_TIME: Duration = Duration::from_secs(30);

/// The most text taken from one PDF.
pub const MAX_TEXT: u64 = 32 << 20;

/// `glm-agent pdf-text FILE`: the text of a PDF on stdout (run by [`text_of`], bounded).
pub fn pdf_text(path: &Path) -> CmdResult {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
    let text = pdf_extract::extract_text_from_mem(&bytes)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("not a PDF that can be read: {e}")))?;
    write_stdout(text.as_bytes())
}

/// The text of the PDF at `path` (`name` in messages), extracted in a child process limited to
/// [`MAX_MEMORY`] and [`MAX_TIME`]; control characters but line ends and tabs removed.
pub fn text_of(path: &Path, name: &str) -> Result<String, Failure> {
    let refuse = |why: String| Failure::bad_input(anyhow::anyhow!("--file {name}: {why}"));
    let exe =
        std::env::current_exe().map_err(|e| refuse(format!("cannot run the extractor: {e}")))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -d {} 2>/dev/null; exec \"$0\" pdf-text \"$1\"",
            MAX_MEMORY >> 10
        ))
        .arg(&exe)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| refuse(format!("cannot run the extractor: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| refuse("no output".into()))?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stdout).take(MAX_TEXT + 1).read_to_end(&mut text);
        text
    });
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| refuse("no output".into()))?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = (&mut stderr).take(4096).read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > MAX_TIME => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(refuse(format!(
                    "reading the PDF took over {} s: convert it to text another way and pass that",
                    MAX_TIME.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(refuse(format!("the extractor failed: {e}"))),
        }
    };
    let text = reader.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let why = errors
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "the PDF could not be read within {} MiB of memory (a compressed stream that inflates too far, or a damaged file)",
                    MAX_MEMORY >> 20
                )
            });
        return Err(refuse(why));
    }
    if text.len() as u64 > MAX_TEXT {
        return Err(refuse(format!(
            "its text is over {} MiB: pass a part of it",
            MAX_TEXT >> 20
        )));
    }
    let text: String = String::from_utf8_lossy(&text)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    if text.trim().is_empty() {
        return Err(refuse(
            "the PDF has no text layer (a scan?): run OCR on it first and pass the text".into(),
        ));
    }
    Ok(text)
}
