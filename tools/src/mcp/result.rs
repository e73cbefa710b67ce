//! A `tools/call` result as the model reads it.
//!
//! Text blocks are joined; images, audio and binary resources are saved into the run's data
//! folder (`/mnt/data`, where the notebook's figures go) under names made here and listed as
//! `[Image] /mnt/data/NAME`; resource links and embedded text resources are listed with their
//! addresses; `structuredContent` is shown as JSON unless a text block already carries it.
//! The protocol's JSON is read directly, so a block of a kind this client does not know is
//! shown as JSON rather than lost.

use std::path::PathBuf;

use base64::Engine;
use serde_json::Value;

use crate::tool::Observation;

/// Where a result's files go and how they are named (`PREFIX_N.EXT`).
pub struct Files {
    /// The run's data folder.
    pub dir: PathBuf,
    /// The name's start: the server and the call's number.
    pub prefix: String,
}

/// A rendered result.
pub struct Rendered {
    /// What the model reads, and the files saved.
    pub observation: Observation,
    /// The server marked the result as an error.
    pub is_error: bool,
}

/// Renders a `CallToolResult` (as JSON).
pub fn render(result: &Value, files: &Files) -> Rendered {
    let mut parts: Vec<String> = Vec::new();
    let mut saved = Vec::new();
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut texts = Vec::new();
    for block in blocks {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let str_of = |key: &str| block.get(key).and_then(Value::as_str);
        match kind {
            "text" => {
                let text = str_of("text").unwrap_or_default();
                texts.push(text);
                parts.push(text.to_owned());
            }
            "image" | "audio" => {
                let mime = str_of("mimeType").unwrap_or_default();
                let label = if kind == "image" { "Image" } else { "Audio" };
                parts.push(match save(files, &mut saved, str_of("data"), mime) {
                    Ok(name) => format!("[{label}] /mnt/data/{name}"),
                    Err(why) => format!("[{label} ({mime}) not saved: {why}]"),
                });
            }
            "resource_link" => {
                let mut line = format!(
                    "[Resource link] {}: {}",
                    str_of("name").unwrap_or_default(),
                    str_of("uri").unwrap_or_default()
                );
                if let Some(mime) = str_of("mimeType") {
                    line.push_str(&format!(" ({mime})"));
                }
                if let Some(description) = str_of("description") {
                    line.push_str(&format!(" - {description}"));
                }
                parts.push(line);
            }
            "resource" => {
                let resource = block.get("resource").cloned().unwrap_or_default();
                let get = |key: &str| resource.get(key).and_then(Value::as_str);
                let uri = get("uri").unwrap_or_default();
                let mime = get("mimeType").unwrap_or_default();
                let head = if mime.is_empty() {
                    format!("[Resource] {uri}")
                } else {
                    format!("[Resource] {uri} ({mime})")
                };
                parts.push(match (get("text"), get("blob")) {
                    (Some(text), _) => format!("{head}\n{text}"),
                    (None, blob) => match save(files, &mut saved, blob, mime) {
                        Ok(name) => format!("{head} saved as /mnt/data/{name}"),
                        Err(why) => format!("{head} not saved: {why}"),
                    },
                });
            }
            _ => parts.push(glm_prompts::pyjson::dumps(block)),
        }
    }
    let structured = result.get("structuredContent").filter(|v| !v.is_null());
    if let Some(size) = structured.and_then(|v| larger_than(v, MAX_STRUCTURED)) {
        parts.push(format!(
            "[Structured content of over {} KiB left out: too large to read here]",
            size >> 10
        ));
    } else if let Some(structured) = structured {
        // A text block usually carries the same JSON (the SDKs wrap a plain value as
        // `{"result": value}`): then it is not shown twice.
        let unwrapped = structured
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("result"));
        let carried = texts.iter().any(|t| {
            serde_json::from_str::<Value>(t)
                .is_ok_and(|v| v == *structured || Some(&v) == unwrapped)
                || unwrapped.and_then(Value::as_str) == Some(*t)
        });
        if !carried {
            parts.push(glm_prompts::pyjson::dumps(structured));
        }
    }
    Rendered {
        observation: Observation {
            metadata: None,
            text: parts.join("\n"),
            files: saved,
        },
        is_error: result.get("isError").and_then(Value::as_bool) == Some(true),
    }
}

/// The most bytes of structured content shown (as JSON); the model reads a bounded view anyway.
const MAX_STRUCTURED: usize = 1 << 20;

/// `Some(cap)` when `value` written as JSON would be over `cap` bytes, found by a walk that stops
/// there (nothing is written).
fn larger_than(value: &Value, cap: usize) -> Option<usize> {
    fn walk(value: &Value, left: &mut usize) -> bool {
        let own = match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                *left = left.saturating_sub(2);
                return items.iter().all(|item| walk(item, left) && *left > 0);
            }
            Value::Object(map) => {
                *left = left.saturating_sub(2);
                return map.iter().all(|(key, item)| {
                    *left = left.saturating_sub(key.len() + 4);
                    walk(item, left) && *left > 0
                });
            }
        };
        *left = left.saturating_sub(own);
        *left > 0
    }
    let mut left = cap;
    (!walk(value, &mut left)).then_some(cap)
}

/// The file extension for a media type; anything else is `.bin`.
fn extension(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or_default().trim() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "application/pdf" => "pdf",
        "application/json" => "json",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// Decodes base64 `data` and writes it as the next `PREFIX_N.EXT`; the file's name.
fn save(
    files: &Files,
    saved: &mut Vec<PathBuf>,
    data: Option<&str>,
    mime: &str,
) -> Result<String, String> {
    let data = data.ok_or("no data")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("not base64 ({e})"))?;
    std::fs::create_dir_all(&files.dir).map_err(|e| e.to_string())?;
    let name = format!("{}_{}.{}", files.prefix, saved.len() + 1, extension(mime));
    let path = files.dir.join(&name);
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    saved.push(path);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_of_block_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            dir: dir.path().join("data"),
            prefix: "mcp_ev_3".into(),
        };
        let result = json!({
            "content": [
                {"type": "text", "text": "Here it is"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "file:///a.txt", "name": "a", "mimeType": "text/plain"},
                {"type": "resource", "resource": {"uri": "demo://1", "mimeType": "text/plain", "text": "inline"}},
                {"type": "image", "data": "%%%", "mimeType": "image/png"},
                {"type": "hologram", "x": 1}
            ],
            "structuredContent": {"sum": 3}
        });
        let rendered = render(&result, &files);
        assert!(!rendered.is_error);
        let text = &rendered.observation.text;
        assert_eq!(
            text,
            "Here it is\n[Image] /mnt/data/mcp_ev_3_1.png\n[Resource link] a: file:///a.txt (text/plain)\n\
[Resource] demo://1 (text/plain)\ninline\n[Image (image/png) not saved: not base64 (Invalid symbol 37, offset 0.)]\n\
{\"type\": \"hologram\", \"x\": 1}\n{\"sum\": 3}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("data/mcp_ev_3_1.png")).unwrap(),
            b"\x89PNG\r\n\x1a\n"
        );
        let carried = json!({
            "content": [{"type": "text", "text": "{\"sum\": 3}"}],
            "structuredContent": {"sum": 3},
            "isError": true
        });
        let rendered = render(&carried, &files);
        assert!(rendered.is_error);
        assert_eq!(rendered.observation.text, "{\"sum\": 3}");
        let wrapped = json!({
            "content": [{"type": "text", "text": "late says hi"}],
            "structuredContent": {"result": "late says hi"}
        });
        assert_eq!(render(&wrapped, &files).observation.text, "late says hi");
    }
}
