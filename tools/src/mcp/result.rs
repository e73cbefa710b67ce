//! A `tools/call` result as the model reads it.
//!
//! Text blocks are joined; images, audio and binary resources are saved into the run's data
//! folder (`/mnt/data`, where the notebook's figures go) under names made here and listed as
//! `[Image] /mnt/data/NAME`; resource links and embedded text resources are listed with their
//! addresses; `structuredContent` is shown as JSON unless the text blocks and the media saved
//! from this result already carry what it says.
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
    // Media saved from this result: its base64 data and the file it went to.
    let mut media: Vec<(&str, String)> = Vec::new();
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
                    Ok(name) => {
                        media.push((str_of("data").unwrap_or_default(), name.clone()));
                        format!("[{label}] /mnt/data/{name}")
                    }
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
                let resource = block.get("resource");
                let get = |key: &str| resource.and_then(|r| r.get(key)).and_then(Value::as_str);
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
                        Ok(name) => {
                            media.push((blob.unwrap_or_default(), name.clone()));
                            format!("{head} saved as /mnt/data/{name}")
                        }
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
    } else if let Some(structured) = structured
        && !carried(structured, &texts, &media)
    {
        parts.push(glm_prompts::pyjson::dumps(&without_media(
            structured, &media,
        )));
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

/// Whether the text blocks and the media saved carry everything `structured` says, so that
/// showing it would only double the tokens: the text parses as the same JSON (or as its
/// `{"result": value}`), or every string in it is written in the text or was saved as a file,
/// and every number and boolean stands in the text as a word. Keys do not count. The search
/// stops (and the structured content is shown) past a budget of bytes compared.
fn carried(structured: &Value, texts: &[&str], media: &[(&str, String)]) -> bool {
    let unwrapped = structured
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("result"));
    let same_json = texts.iter().any(|t| {
        serde_json::from_str::<Value>(t).is_ok_and(|v| v == *structured || Some(&v) == unwrapped)
    });
    if same_json {
        return true;
    }
    let joined = texts.join("\n");
    let mut budget: usize = 64 << 20;
    let mut found = |needle: &str, word: bool| -> bool {
        budget = budget.saturating_sub(joined.len().max(1));
        budget > 0 && contains(&joined, needle, word)
    };
    fn walk(
        value: &Value,
        media: &[(&str, String)],
        found: &mut dyn FnMut(&str, bool) -> bool,
    ) -> bool {
        match value {
            Value::Null => true,
            Value::Bool(b) => found(if *b { "true" } else { "false" }, true),
            Value::Number(n) => found(&n.to_string(), true),
            Value::String(s) => {
                s.trim().is_empty()
                    || media.iter().any(|(data, _)| data.trim() == s.trim())
                    || found(s, false)
            }
            Value::Array(items) => items.iter().all(|v| walk(v, media, found)),
            Value::Object(map) => map.values().all(|v| walk(v, media, found)),
        }
    }
    walk(structured, media, &mut found)
}

/// Whether `hay` holds `needle`; as a word, not inside a longer number or name.
fn contains(hay: &str, needle: &str, word: bool) -> bool {
    if !word {
        return hay.contains(needle);
    }
    let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
    hay.match_indices(needle).any(|(at, _)| {
        !part(hay[..at].chars().next_back()) && !part(hay[at + needle.len()..].chars().next())
    })
}

/// `value` with the data of media saved from the same result replaced by the file's place.
fn without_media(value: &Value, media: &[(&str, String)]) -> Value {
    match value {
        Value::String(s) => match media.iter().find(|(data, _)| data.trim() == s.trim()) {
            Some((_, name)) => Value::String(format!("[saved as /mnt/data/{name}]")),
            None => value.clone(),
        },
        Value::Array(items) => items.iter().map(|v| without_media(v, media)).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), without_media(v, media)))
            .collect(),
        other => other.clone(),
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

    /// As `@modelcontextprotocol/server-filesystem` answers: the text again under `content`,
    /// and an image whose data is both a block and structured content.
    #[test]
    fn structured_content_that_repeats_the_text_or_saved_media_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files {
            dir: dir.path().join("data"),
            prefix: "mcp_fs_1".into(),
        };
        let read = json!({
            "content": [{"type": "text", "text": "line one\nline \"two\""}],
            "structuredContent": {"content": "line one\nline \"two\""}
        });
        assert_eq!(
            render(&read, &files).observation.text,
            "line one\nline \"two\""
        );
        let image = json!({
            "content": [{"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}],
            "structuredContent": {"content": [{"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}]}
        });
        let text = render(&image, &files).observation.text;
        assert!(!text.contains("iVBORw0KGgo"), "{text}");
        // A structured value the text does not carry is shown, with saved media as its file.
        let more = json!({
            "content": [
                {"type": "text", "text": "Created 2 entities"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}
            ],
            "structuredContent": {"count": 2, "ids": [17, 23], "thumb": "iVBORw0KGgo="}
        });
        let text = render(&more, &files).observation.text;
        assert!(text.ends_with("{\"count\": 2, \"ids\": [17, 23], \"thumb\": \"[saved as /mnt/data/mcp_fs_1_1.png]\"}"), "{text}");
        // Numbers count as words: 3 is not carried by "13".
        let number = json!({
            "content": [{"type": "text", "text": "13 items"}],
            "structuredContent": {"n": 3}
        });
        assert!(
            render(&number, &files)
                .observation
                .text
                .ends_with("{\"n\": 3}")
        );
    }
}
