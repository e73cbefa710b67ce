//! A linear look at a page's markup before any tree is built: how deep it nests and how many
//! attributes its tags carry. HTML tree building is quadratic in both (every open element is
//! searched when a tag closes; every attribute is compared with the ones before it), so a
//! hostile page could stall the agent; pages past the limits are repaired or read as text.

/// Attributes kept on one tag; a tag with more loses the rest before parsing.
pub const MAX_ATTRIBUTES: usize = 256;

/// What the scan needs to know of a tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Never has children.
    Void,
    /// A formatting element: the parser remembers the unclosed ones and opens copies of all of
    /// them again in every later block (the spec's "reconstruct the active formatting
    /// elements"), so a hundred unclosed `<b id=N>` before a page of paragraphs builds hundreds
    /// of millions of nodes.
    Formatting,
    /// Starts a block, where unclosed formatting elements are opened again.
    Block,
    Other,
}

/// The class of a lowercased tag name.
fn class_of(name: &str) -> Class {
    match name {
        "area" | "base" | "br" | "col" | "embed" | "hr" | "img" | "input" | "link" | "meta"
        | "param" | "source" | "track" | "wbr" => Class::Void,
        "a" | "b" | "big" | "code" | "em" | "font" | "i" | "nobr" | "s" | "small" | "strike"
        | "strong" | "tt" | "u" => Class::Formatting,
        "p" | "div" | "li" | "td" | "th" | "tr" | "table" | "ul" | "ol" | "dl" | "dd" | "dt"
        | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" | "section" => Class::Block,
        _ => Class::Other,
    }
}

/// What the scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting of start tags (an upper estimate: html5ever closes some implicitly).
    pub depth: usize,
    /// The most attributes on one tag (estimated by counting names).
    pub attributes: usize,
    /// Elements the parser would open again for unclosed formatting elements (an upper
    /// estimate: every block is taken to reopen every unclosed one).
    pub reopened: usize,
}

/// One tag found by the scan: where its attribute list starts and ends in the page.
struct Tag {
    attrs_start: usize,
    end: usize,
    attributes: usize,
}

/// Scans `html` once. `<x/>` opens an element unless `x` is void or inside `<svg>`/`<math>`:
/// that is how HTML parsers read it.
pub fn scan(html: &str) -> Shape {
    let mut shape = Shape {
        depth: 0,
        attributes: 0,
        reopened: 0,
    };
    let mut depth = 0usize;
    let mut foreign = 0usize;
    let mut formatting = Formatting::default();
    tags(html, |name, tag, self_closing, closing| {
        shape.attributes = shape.attributes.max(tag.attributes);
        let class = class_of(name);
        if class == Class::Formatting {
            if closing {
                formatting.close(name);
            } else {
                formatting.open(name, &html[tag.attrs_start..tag.end]);
            }
        } else if !closing && class == Class::Block {
            shape.reopened = shape.reopened.saturating_add(formatting.open_count);
        }
        let is_foreign = name == "svg" || name == "math";
        if closing {
            depth = depth.saturating_sub(1);
            if is_foreign {
                foreign = foreign.saturating_sub(1);
            }
            return;
        }
        let closes_itself = self_closing && (foreign > 0 || is_foreign);
        if class != Class::Void && !closes_itself {
            depth += 1;
            shape.depth = shape.depth.max(depth);
            if is_foreign {
                foreign += 1;
            }
        }
    });
    shape
}

/// The unclosed formatting elements, as the parser keeps them: at most three alike (the
/// spec's "Noah's Ark" rule), a new `<a>` or `<nobr>` ending the one before.
#[derive(Default)]
struct Formatting {
    by_name: foldhash::HashMap<String, Vec<u64>>,
    alike: foldhash::HashMap<u64, usize>,
    open_count: usize,
}

impl Formatting {
    fn open(&mut self, name: &str, attributes: &str) {
        use std::hash::BuildHasher;
        if name == "a" || name == "nobr" {
            while self.close(name) {}
        }
        let key = foldhash::fast::FixedState::with_seed(0).hash_one((name, attributes.trim()));
        let alike = self.alike.entry(key).or_default();
        if *alike < 3 {
            *alike += 1;
            self.by_name.entry(name.to_owned()).or_default().push(key);
            self.open_count += 1;
        }
    }

    fn close(&mut self, name: &str) -> bool {
        let Some(key) = self.by_name.get_mut(name).and_then(Vec::pop) else {
            return false;
        };
        if let Some(alike) = self.alike.get_mut(&key) {
            *alike = alike.saturating_sub(1);
        }
        self.open_count -= 1;
        true
    }
}

/// `html` with every tag's attributes past the first [`MAX_ATTRIBUTES`] dropped.
pub fn drop_extra_attributes(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut copied = 0;
    tags(html, |_, tag, _, _| {
        if tag.attributes <= MAX_ATTRIBUTES {
            return;
        }
        let list = &html[tag.attrs_start..tag.end];
        let cut = attribute_starts(list)
            .nth(MAX_ATTRIBUTES)
            .unwrap_or(list.len());
        out.push_str(&html[copied..tag.attrs_start + cut]);
        copied = tag.end;
    });
    out.push_str(&html[copied..]);
    out
}

/// Calls `visit(name, tag, self_closing, closing)` for each tag, names lowercased and cut at
/// 16 bytes; comments, doctypes and stray `<` are passed over.
fn tags(html: &str, mut visit: impl FnMut(&str, &Tag, bool, bool)) {
    let bytes = html.as_bytes();
    let mut i = 0usize;
    let mut name = String::new();
    while let Some(offset) = memchr(b'<', &bytes[i..]) {
        i += offset + 1;
        if bytes[i..].starts_with(b"!--") {
            i = find(bytes, i + 3, b"-->").map_or(bytes.len(), |e| e + 3);
            continue;
        }
        let closing = bytes.get(i) == Some(&b'/');
        let start = i + usize::from(closing);
        if !bytes.get(start).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let name_len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        name.clear();
        name.extend(
            bytes[start..start + name_len.min(16)]
                .iter()
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
        let attrs_start = start + name_len;
        let end = tag_end(bytes, attrs_start);
        let list = &html[attrs_start..end];
        let tag = Tag {
            attrs_start,
            end,
            attributes: if closing {
                0
            } else {
                attribute_starts(list).count()
            },
        };
        let self_closing = list.trim_end().ends_with('/');
        visit(&name, &tag, self_closing, closing);
        i = end;
        // Script and style text is not markup: `a<b` in a script opens nothing.
        if !closing && (name == "script" || name == "style") {
            let close = if name == "script" {
                "</script"
            } else {
                "</style"
            };
            i = find_ci(&html[i..], close).map_or(bytes.len(), |e| i + e);
        }
    }
}

/// The index of the `>` ending a tag whose attributes start at `from`. As in the HTML
/// tokenizer, a quote opens a quoted value only right after `=` (spaces between allowed); a
/// stray quote elsewhere is part of an attribute name.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    #[derive(PartialEq)]
    enum At {
        /// Between attributes or in a name.
        Name,
        /// After `=`, before the value.
        Equals,
        /// In an unquoted value.
        Value,
    }
    let mut at = At::Name;
    let mut k = from;
    while k < bytes.len() {
        match bytes[k] {
            b'>' => return k,
            q @ (b'"' | b'\'') if at == At::Equals => {
                k = bytes[k + 1..]
                    .iter()
                    .position(|b| *b == q)
                    .map_or(bytes.len(), |p| k + 1 + p);
                at = At::Name;
            }
            b'=' if at == At::Name => at = At::Equals,
            b if b.is_ascii_whitespace() && at == At::Value => at = At::Name,
            b if b.is_ascii_whitespace() => {}
            _ if at == At::Equals => at = At::Value,
            _ => {}
        }
        k += 1;
    }
    bytes.len()
}

/// Byte offsets in an attribute list where an attribute name starts.
fn attribute_starts(list: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = list.as_bytes();
    let mut k = 0usize;
    std::iter::from_fn(move || {
        loop {
            while k < bytes.len() && (bytes[k].is_ascii_whitespace() || bytes[k] == b'/') {
                k += 1;
            }
            if k >= bytes.len() {
                return None;
            }
            let start = k;
            while k < bytes.len()
                && !bytes[k].is_ascii_whitespace()
                && !matches!(bytes[k], b'=' | b'/')
            {
                k += 1;
            }
            while k < bytes.len() && bytes[k].is_ascii_whitespace() {
                k += 1;
            }
            if bytes.get(k) == Some(&b'=') {
                k += 1;
                while k < bytes.len() && bytes[k].is_ascii_whitespace() {
                    k += 1;
                }
                match bytes.get(k) {
                    Some(&q @ (b'"' | b'\'')) => {
                        k += 1;
                        while k < bytes.len() && bytes[k] != q {
                            k += 1;
                        }
                        k += 1;
                    }
                    _ => {
                        while k < bytes.len() && !bytes[k].is_ascii_whitespace() {
                            k += 1;
                        }
                    }
                }
            }
            if k > start {
                return Some(start);
            }
        }
    })
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|p| from + p)
}

/// Text between tags, whitespace collapsed; scripts and styles left out. For markup too deep
/// to build a tree from, and for pages whose reading ran out of time.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let lower = |s: &str| s.get(..8).map(str::to_ascii_lowercase);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        out.push(' ');
        let tag = &rest[lt..];
        let skip_to = match lower(tag).as_deref() {
            Some(t) if t.starts_with("<script") => Some("</script"),
            Some(t) if t.starts_with("<style") => Some("</style"),
            Some(t) if t.starts_with("<!--") => Some("-->"),
            _ => None,
        };
        let after = match skip_to {
            Some(end) => find_ci(tag, end).map_or(tag.len(), |e| e + end.len()),
            None => 0,
        };
        let close = tag[after..].find('>').map_or(tag.len(), |e| after + e + 1);
        rest = &tag[close..];
    }
    out.push_str(rest);
    let text = decode_entities(&out);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
    let first = *needle.first()?;
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), hay).find(|&at| {
        hay.get(at..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// The common named entities and numeric references; others are left as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|s| {
            let name = &tail[1..s];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, s))
        });
        match decoded {
            Some((c, s)) => {
                out.push(c);
                rest = &tail[s + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_reads_self_closing_as_parsers_do() {
        assert_eq!(
            scan("<html><body><p>a<br>b<img src=x/></p></body></html>").depth,
            3
        );
        assert_eq!(scan("<div><div/></div><!-- <x> --> a < b").depth, 2);
        assert_eq!(scan(&"<div/>".repeat(50)).depth, 50);
        assert_eq!(scan("<svg><path/><path/></svg>").depth, 1);
        assert_eq!(scan("<a title='x>y'><b>c</b></a>").depth, 2);
    }

    #[test]
    fn reopened_formatting_is_counted() {
        let unclosed: String = (0..100).map(|i| format!("<b id={i}>")).collect();
        let page = format!("<p>{unclosed}</p>{}", "<p>x</p>".repeat(1_000));
        assert_eq!(scan(&page).reopened, 100 * 1_000);
        // Closed ones, and more than three alike, are not reopened.
        let tidy = "<p><b>x</b><i>y</i></p>".repeat(1_000);
        assert_eq!(scan(&tidy).reopened, 0);
        let alike = format!("<p>{}</p>{}", "<b>".repeat(50), "<p>x</p>".repeat(10));
        assert_eq!(scan(&alike).reopened, 3 * 10);
        let links = format!("{}{}", "<a href=x>".repeat(50), "<p>x</p>".repeat(10));
        assert_eq!(scan(&links).reopened, 10);
    }

    #[test]
    fn attribute_floods_are_cut() {
        let tag = format!("<p {}>text</p>", "a=1 ".repeat(1_000));
        assert_eq!(scan(&tag).attributes, 1_000);
        let fixed = drop_extra_attributes(&tag);
        assert_eq!(scan(&fixed).attributes, MAX_ATTRIBUTES);
        assert!(fixed.ends_with(">text</p>"));
        let quoted = r#"<a href="x y" title='a=b' hidden data-x=1>"#;
        assert_eq!(scan(quoted).attributes, 4);
        // Quotes open a value only after `=`; elsewhere they are part of a name or value.
        let stray = r#"<script src="a" " type='t' data-x=a"b>text " with ' quotes > <p a=1 b=2>"#;
        assert_eq!(scan(stray).attributes, 4);
        assert_eq!(tag_end(stray.as_bytes(), 7), stray.find(">text").unwrap());
    }

    #[test]
    fn plain_text() {
        assert_eq!(
            strip_tags("<p>a&amp;b</p><script>x<y</script><style>p{}</style>c&#233;&nbsp;d"),
            "a&b cé d"
        );
    }
}
