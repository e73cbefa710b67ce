//! A fetched response -> the page text the model reads.

use encoding_rs::{Encoding, UTF_8};

use super::blocks::Model;
use super::blocks_model::MODEL;
use super::fetch::Fetched;
use super::html::{Extracted, Link, extract_with};
use super::shape::strip_tags;

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
    render_page_with(fetched, id, first_link, max_chars, &MODEL)
}

/// [`render_page`] with another model for the article's blocks.
#[doc(hidden)]
pub fn render_page_with(
    fetched: &Fetched,
    id: usize,
    first_link: usize,
    max_chars: usize,
    model: &Model,
) -> Page {
    let kind = Kind::of(fetched);
    let page = match kind {
        Kind::Html => {
            let html = decode(&fetched.body, &fetched.content_type, true);
            extract_with(&html, &fetched.url, first_link, model)
        }
        Kind::Json => {
            let text = decode(&fetched.body, &fetched.content_type, false);
            Extracted {
                text: pretty_json(text, max_chars),
                ..Extracted::default()
            }
        }
        Kind::Text => {
            let text = decode(&fetched.body, &fetched.content_type, false);
            Extracted {
                text: text.trim().to_owned(),
                ..Extracted::default()
            }
        }
        Kind::Other => {
            let body = format!(
                "[{} content, {} bytes, not shown: the browser reads HTML, text and JSON]",
                fetched.content_type.split(';').next().unwrap_or("binary"),
                fetched.body.len()
            );
            Extracted {
                text: body,
                ..Extracted::default()
            }
        }
    };
    render(fetched, id, max_chars, page)
}

/// The header, the text cut to `max_chars`, and as many of the other links as fit in what is
/// left of the view.
pub(super) fn render(fetched: &Fetched, id: usize, max_chars: usize, page: Extracted) -> Page {
    let host = fetched.url.host_str().unwrap_or_default();
    let mut text = format!("【{id}†{}†{host}】\nURL: {}\n", page.title, fetched.url);
    if let Some(byline) = &page.byline {
        text.push_str(&format!("By: {byline}\n"));
    }
    if let Some(date) = &page.date {
        text.push_str(&format!("Published: {date}\n"));
    }
    if fetched.status >= 400 {
        text.push_str(&format!("The server answered HTTP {}.\n", fetched.status));
    }
    text.push('\n');
    let (shown, percent) = cut(&page.text, max_chars);
    text.push_str(shown);
    if fetched.truncated {
        text.push_str(&format!(
            "\n\n[The page is larger than {} bytes; only the start was downloaded.]",
            fetched.body.len()
        ));
    }
    text.push_str(&format!("\n\nVisible: 0% - {percent}%"));
    let mut room = max_chars.saturating_sub(shown.chars().count());
    for (listed, link) in page.other_links.iter().take(MAX_LISTED_LINKS).enumerate() {
        let entry = format!("【{}†{}】", link.id, short_url(&link.url));
        let len = entry.chars().count() + 1;
        if len > room {
            break;
        }
        text.push_str(if listed == 0 {
            "\n\nOther links on the page:\n"
        } else {
            "\n"
        });
        text.push_str(&entry);
        room -= len;
    }
    let mut links = page.links;
    links.extend(page.other_links);
    Page {
        title: page.title,
        text,
        links,
    }
}

/// A link's address without its scheme, query and fragment, cut to 60 characters.
fn short_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let text = format!("{host}{}", url.path().trim_end_matches('/'));
    let mut short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// `fetched` as plain text (tags dropped), for a page whose full reading took too long.
pub(super) fn plain_page(fetched: &Fetched, id: usize, max_chars: usize) -> Page {
    let text = decode(&fetched.body, &fetched.content_type, true);
    let page = Extracted {
        text: format!(
            "[Reading this page's structure took too long; its text only:]\n\n{}",
            strip_tags(&text)
        ),
        ..Extracted::default()
    };
    render(fetched, id, max_chars, page)
}

/// Other links listed after the text, at most.
const MAX_LISTED_LINKS: usize = 40;

/// JSON indented for reading when the indented form fits in a few views; otherwise (and when
/// it is not JSON) the text as served. The document is checked and re-indented as text, never
/// built as a tree: a deep or wide document costs no more memory than its text.
fn pretty_json(text: String, max_chars: usize) -> String {
    let budget = max_chars.saturating_mul(4).max(4096);
    if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
        return text;
    }
    reindent(&text, 2, budget).unwrap_or(text)
}

/// Valid JSON `text` with `indent` spaces a level, or `None` once it passes `budget` bytes.
fn reindent(text: &str, indent: usize, budget: usize) -> Option<String> {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent * depth));
    };
    while let Some(c) = chars.next() {
        if out.len() > budget {
            return None;
        }
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
                let close = if c == '{' { '}' } else { ']' };
                if chars.next_if_eq(&close).is_some() {
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
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

/// How far into an HTML page a `<meta>` declaring its charset is looked for. (The standard's
/// prescan reads 1,024 bytes; pages with long heads declare it later, and browsers find it.)
const META_PRESCAN: usize = 16 << 10;

/// How much of one `<meta` tag the prescan reads.
const MAX_META_TAG: usize = 1 << 10;

/// How much of a body without a declared charset the guesser reads.
const GUESS_BYTES: usize = 256 << 10;

/// Decodes a body as a browser does: a byte-order mark, else the charset in the header, else
/// one a `<meta>` in the page's head declares, else UTF-8 when the bytes are valid UTF-8, else
/// a guess from the bytes (the detector Firefox uses). Undecodable bytes become U+FFFD.
pub fn decode(body: &[u8], content_type: &str, html: bool) -> String {
    let declared = || {
        let header = charset_of(content_type).and_then(|l| Encoding::for_label(l.as_bytes()));
        // A page cannot declare itself UTF-16 from inside: such a label means UTF-8.
        header.or_else(|| {
            html.then(|| meta_charset(&body[..body.len().min(META_PRESCAN)]))
                .flatten()
                .and_then(|l| Encoding::for_label(l.as_bytes()))
                .map(Encoding::output_encoding)
        })
    };
    let encoding = Encoding::for_bom(body)
        .map(|(e, _)| e)
        .or_else(declared)
        .unwrap_or_else(|| guess(body));
    let (text, _, _) = encoding.decode(body);
    text.into_owned()
}

/// UTF-8 when `body` is (a cut-off last character allowed), else chardetng's guess.
fn guess(body: &[u8]) -> &'static Encoding {
    match std::str::from_utf8(body) {
        Ok(_) => return UTF_8,
        Err(e) if e.error_len().is_none() => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new();
    let sample = &body[..body.len().min(GUESS_BYTES)];
    detector.feed(sample, sample.len() == body.len());
    detector.guess(None, true)
}

fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        (k.trim() == "charset").then(|| v.trim().trim_matches(['"', '\'']).to_owned())
    })
}

/// The charset a `<meta charset>` or `<meta http-equiv content="...; charset=...">` in `head`
/// declares; `charset=` elsewhere (a script's attribute, text) does not count.
fn meta_charset(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let mut rest = head.as_str();
    while let Some(at) = rest.find("<meta") {
        let tag = &rest[at + "<meta".len()..];
        // A tag is read up to its `>` within 1 KB, so unclosed `<meta`s cost 1 KB each.
        let mut end = tag.len().min(MAX_META_TAG);
        while !tag.is_char_boundary(end) {
            end -= 1;
        }
        let tag = &tag[..tag[..end].find('>').unwrap_or(end)];
        if let Some(value) = tag
            .find("charset")
            .and_then(|c| charset_value(&tag[c + 7..]))
        {
            return Some(value);
        }
        rest = &rest[at + "<meta".len()..];
    }
    None
}

/// The label after `charset`: optional spaces, `=`, optional quotes.
fn charset_value(after: &str) -> Option<String> {
    let value: String = after
        .trim_start()
        .strip_prefix('=')?
        .trim_start()
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
        // A script's `charset` attribute before the page's own declaration is not it.
        let scripted =
            b"<script charset=\"utf-8\" src=a.js></script><meta charset=windows-1250>\xb9";
        assert!(decode(scripted, "text/html", true).ends_with('\u{105}'));
        // Nothing declared and not UTF-8: guessed from the bytes (GB2312 here).
        let chinese = "<p>一个约定，信守十五年，感人至深；一段真情，延续十五年。河北农大果树班毕业生群体的事迹在全省引起强烈反响。</p>";
        let (gbk, _, _) = encoding_rs::GBK.encode(chinese);
        assert_eq!(decode(&gbk, "text/html", true), chinese);
        // A page declaring UTF-16 from inside is read as UTF-8.
        assert_eq!(
            decode(b"<meta charset=utf-16>h\xc3\xa9", "text/html", true),
            "<meta charset=utf-16>h\u{e9}"
        );
    }

    #[test]
    fn json_is_indented_without_a_tree_and_only_when_small() {
        let text = r#"{"a": [1, {"b": "x,\"y"}], "e": {}, "f": []}"#.to_owned();
        assert_eq!(
            pretty_json(text, 1_000),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,\\\"y\"\n    }\n  ],\n  \"e\": {},\n  \"f\": []\n}"
        );
        let big = format!("[{}]", vec!["[[1]]"; 10_000].join(","));
        assert_eq!(pretty_json(big.clone(), 1_000), big);
        assert_eq!(pretty_json("{oops".into(), 1_000), "{oops");
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
