//! A fetched response -> the page text the model reads.

use encoding_rs::{Encoding, UTF_8};

use super::fetch::Fetched;
use super::html::{Link, extract};

/// A page ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page title (may be empty).
    pub title: String,
    /// Header, readable text and the visible range.
    pub text: String,
    /// Links in the page, numbered.
    pub links: Vec<Link>,
}

/// Renders `fetched` as source `id`, numbering links from `first_link`, showing at most
/// `max_chars` characters of the body.
pub fn render_page(fetched: &Fetched, id: usize, first_link: usize, max_chars: usize) -> Page {
    let kind = Kind::of(fetched);
    let (title, body, links) = match kind {
        Kind::Html => {
            let html = decode(&fetched.body, &fetched.content_type, true);
            let page = extract(&html, &fetched.url, first_link);
            (page.title, page.text, page.links)
        }
        Kind::Json => {
            let text = decode(&fetched.body, &fetched.content_type, false);
            let body = serde_json::from_str::<serde_json::Value>(&text)
                .map(|v| glm_prompts::pyjson::dumps_indent(&v, 2))
                .unwrap_or(text);
            (String::new(), body, Vec::new())
        }
        Kind::Text => {
            let text = decode(&fetched.body, &fetched.content_type, false);
            (String::new(), text.trim().to_owned(), Vec::new())
        }
        Kind::Other => {
            let body = format!(
                "[{} content, {} bytes, not shown: the browser reads HTML, text and JSON]",
                fetched.content_type.split(';').next().unwrap_or("binary"),
                fetched.body.len()
            );
            (String::new(), body, Vec::new())
        }
    };
    let host = fetched.url.host_str().unwrap_or_default();
    let mut text = format!("【{id}†{title}†{host}】\nURL: {}\n", fetched.url);
    if fetched.status >= 400 {
        text.push_str(&format!("The server answered HTTP {}.\n", fetched.status));
    }
    text.push('\n');
    let (shown, percent) = cut(&body, max_chars);
    text.push_str(shown);
    if fetched.truncated {
        text.push_str(&format!(
            "\n\n[The page is larger than {} bytes; only the start was downloaded.]",
            fetched.body.len()
        ));
    }
    text.push_str(&format!("\n\nVisible: 0% - {percent}%"));
    Page { title, text, links }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Html,
    Json,
    Text,
    Other,
}

impl Kind {
    fn of(fetched: &Fetched) -> Kind {
        let mime = fetched.content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "text/html" | "application/xhtml+xml" => Kind::Html,
            m if m == "application/json" || m.ends_with("+json") => Kind::Json,
            m if m.starts_with("text/") => Kind::Text,
            "" => {
                let head = String::from_utf8_lossy(&fetched.body[..fetched.body.len().min(512)])
                    .trim_start()
                    .to_ascii_lowercase();
                if head.starts_with("<!doctype html") || head.starts_with("<html") {
                    Kind::Html
                } else if std::str::from_utf8(&fetched.body).is_ok() {
                    Kind::Text
                } else {
                    Kind::Other
                }
            }
            _ => Kind::Other,
        }
    }
}

/// At most `max_chars` characters, cut at a line end when one is near; and the percentage of
/// the text shown.
fn cut(text: &str, max_chars: usize) -> (&str, usize) {
    let total = text.chars().count();
    if total <= max_chars {
        return (text, 100);
    }
    let end = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(i, _)| i);
    let end = match text[..end].rfind('\n') {
        Some(nl) if nl > end / 2 => nl,
        _ => end,
    };
    let shown = &text[..end];
    (shown, shown.chars().count() * 100 / total)
}

/// Decodes a body: charset from the header, else from a `<meta>` near the top of an HTML page,
/// else a byte-order mark, else UTF-8. Undecodable bytes become U+FFFD.
pub fn decode(body: &[u8], content_type: &str, html: bool) -> String {
    let label = charset_of(content_type).or_else(|| {
        html.then(|| sniff_meta_charset(&body[..body.len().min(2048)]))
            .flatten()
    });
    let encoding = label
        .and_then(|l| Encoding::for_label(l.as_bytes()))
        .unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        (k.trim() == "charset").then(|| v.trim().trim_matches(['"', '\'']).to_owned())
    })
}

fn sniff_meta_charset(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let value: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
        .collect();
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        let latin1 = b"caf\xe9";
        assert_eq!(
            decode(latin1, "text/plain; charset=ISO-8859-1", false),
            "café"
        );
        let html = b"<html><head><meta charset=\"windows-1252\"></head><body>\x93hi\x94</body>";
        assert!(decode(html, "text/html", true).contains("\u{201c}hi\u{201d}"));
        let http_equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=shift_jis\">\x82\xa0";
        assert!(decode(http_equiv, "text/html", true).ends_with('あ'));
        assert_eq!(decode("naïve".as_bytes(), "", false), "naïve");
        assert_eq!(decode(b"\xff\xfeh\0i\0", "", false), "hi");
    }

    #[test]
    fn cutting_reports_the_visible_range() {
        let text = "line\n".repeat(100);
        let (shown, percent) = cut(&text, 250);
        assert!(shown.len() <= 250 && shown.ends_with("line"));
        assert_eq!(percent, 49);
        assert_eq!(cut("short", 100), ("short", 100));
        let (shown, _) = cut("ééééé", 2);
        assert_eq!(shown, "éé");
    }
}
