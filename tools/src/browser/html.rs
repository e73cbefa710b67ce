//! HTML -> the text the model reads: headings, paragraphs, lists, pipe tables, code blocks,
//! numbered links `【id†text†host】` and `[Image n]` markers; scripts, navigation, footers and
//! cookie banners dropped.

use scraper::{ElementRef, Html, Node};
use url::Url;

/// Tags whose content is never shown.
const SKIPPED: [&str; 20] = [
    "script", "style", "noscript", "template", "svg", "nav", "footer", "aside", "form", "button",
    "iframe", "select", "input", "textarea", "canvas", "object", "embed", "head", "dialog", "menu",
];

/// Words in an id or class that mark a banner or an advert.
const NOISE_MARKERS: [&str; 6] = ["cookie", "consent", "gdpr", "advert", "newsletter", "popup"];

/// Below this depth the tree is walked element by element; deeper content is kept as text.
const MAX_DEPTH: usize = 256;

/// A link found in a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its number in the text.
    pub id: usize,
    /// The absolute URL.
    pub url: Url,
    /// The anchor text.
    pub text: String,
}

/// A page as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// `<title>`, or the first `<h1>`.
    pub title: String,
    /// The readable text.
    pub text: String,
    /// Links, numbered from the `first_link_id` given.
    pub links: Vec<Link>,
}

/// Markup nested deeper than this is read as plain text: HTML tree building takes time
/// quadratic in nesting depth (1.8 s for 20,000 levels here), which a hostile page could use to
/// stall the agent.
const MAX_MARKUP_NESTING: usize = 1_000;

/// Elements that never have children.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Extracts the readable text of `html`; links are resolved against `base` and numbered from
/// `first_link_id`.
pub fn extract(html: &str, base: &Url, first_link_id: usize) -> Extracted {
    if nesting_depth(html) > MAX_MARKUP_NESTING {
        return Extracted {
            title: String::new(),
            text: format!(
                "[The page's markup is nested too deeply to read its structure; its text only:]\n\n{}",
                strip_tags(html)
            ),
            links: Vec::new(),
        };
    }
    let document = Html::parse_document(html);
    let mut writer = Writer {
        out: String::new(),
        links: Vec::new(),
        next_link: first_link_id,
        images: 0,
        base,
        lists: Vec::new(),
    };
    writer.walk(document.root_element(), 0);
    Extracted {
        title: title(&document),
        text: tidy(&writer.out),
        links: writer.links,
    }
}

/// The deepest nesting of start tags, estimated with a linear scan (no tree is built).
fn nesting_depth(html: &str) -> usize {
    let bytes = html.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(offset) = bytes[i..].iter().position(|b| *b == b'<') {
        i += offset + 1;
        let rest = &bytes[i..];
        if rest.first() == Some(&b'/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let name_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 || !rest[0].is_ascii_alphabetic() {
            continue;
        }
        let name = String::from_utf8_lossy(&rest[..name_len]).to_ascii_lowercase();
        let end = rest.iter().position(|b| *b == b'>').unwrap_or(rest.len());
        let self_closing = end > 0 && rest.get(end - 1) == Some(&b'/');
        if !VOID.contains(&name.as_str()) && !self_closing {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

/// Text between tags, whitespace collapsed; for markup too deep to build a tree from.
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    collapse(&out)
}

fn title(document: &Html) -> String {
    for tag in ["title", "h1"] {
        let found = document
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
            .find(|e| e.value().name() == tag)
            .map(|e| collapse(&e.text().collect::<String>()));
        if let Some(t) = found.filter(|t| !t.is_empty()) {
            return t;
        }
    }
    String::new()
}

struct Writer<'a> {
    out: String,
    links: Vec<Link>,
    next_link: usize,
    images: usize,
    base: &'a Url,
    /// For each open list: ordered?, items so far.
    lists: Vec<(bool, usize)>,
}

impl Writer<'_> {
    fn walk(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            match child.value() {
                Node::Text(text) => self.inline(text),
                Node::Element(_) => {
                    if let Some(child) = ElementRef::wrap(child) {
                        if depth >= MAX_DEPTH {
                            self.inline(&child.text().collect::<String>());
                        } else {
                            self.element(child, depth + 1);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn element(&mut self, el: ElementRef<'_>, depth: usize) {
        let name = el.value().name();
        if SKIPPED.contains(&name) || is_noise(el) {
            return;
        }
        match name {
            "br" => self.out.push('\n'),
            "hr" => self.block("---"),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                let level = usize::from(name.as_bytes()[1] - b'0');
                self.blank_line();
                self.out.push_str(&"#".repeat(level));
                self.out.push(' ');
                self.walk(el, depth);
                self.blank_line();
            }
            "ul" | "ol" => {
                self.line_break();
                self.lists.push((name == "ol", 0));
                self.walk(el, depth);
                self.lists.pop();
                self.line_break();
            }
            "li" => self.list_item(el, depth),
            "table" => self.block(&table(el)),
            "pre" => self.block(&code_block(el)),
            "code" => {
                let text = collapse(&el.text().collect::<String>());
                if !text.is_empty() {
                    self.inline(&format!("`{text}`"));
                }
            }
            "a" => self.link(el, depth),
            "img" => {
                self.images += 1;
                self.inline(&format!("[Image {}]", self.images));
            }
            "p" | "div" | "section" | "article" | "main" | "header" | "blockquote" | "figure"
            | "figcaption" | "dl" | "dt" | "dd" | "address" | "details" | "summary" => {
                self.blank_line();
                self.walk(el, depth);
                self.blank_line();
            }
            _ => self.walk(el, depth),
        }
    }

    fn list_item(&mut self, el: ElementRef<'_>, depth: usize) {
        self.line_break();
        let indent = "  ".repeat(self.lists.len().saturating_sub(1));
        let marker = match self.lists.last_mut() {
            Some((true, n)) => {
                *n += 1;
                format!("{n}. ")
            }
            _ => "- ".to_owned(),
        };
        self.out.push_str(&indent);
        self.out.push_str(&marker);
        self.walk(el, depth);
        self.line_break();
    }

    fn link(&mut self, el: ElementRef<'_>, depth: usize) {
        let target = el
            .value()
            .attr("href")
            .and_then(|href| self.base.join(href.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let text = collapse(&el.text().collect::<String>());
        match target {
            Some(url) if !text.is_empty() => {
                let id = self.next_link;
                self.next_link += 1;
                let host = url.host_str().unwrap_or_default().to_owned();
                self.inline(&format!("【{id}†{text}†{host}】"));
                self.links.push(Link { id, url, text });
            }
            _ => self.walk(el, depth),
        }
    }

    /// Appends inline text, collapsing whitespace runs to one space.
    fn inline(&mut self, text: &str) {
        let mut pending_space = text.starts_with(char::is_whitespace);
        for word in text.split_whitespace() {
            if pending_space && !self.out.is_empty() && !self.out.ends_with([' ', '\n']) {
                self.out.push(' ');
            }
            self.out.push_str(word);
            pending_space = true;
        }
        if text.ends_with(char::is_whitespace) && !self.out.ends_with([' ', '\n']) {
            self.out.push(' ');
        }
    }

    fn line_break(&mut self) {
        trim_trailing_spaces(&mut self.out);
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn blank_line(&mut self) {
        self.line_break();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn block(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.blank_line();
        self.out.push_str(text);
        self.blank_line();
    }
}

fn is_noise(el: ElementRef<'_>) -> bool {
    let v = el.value();
    if v.attr("hidden").is_some() || v.attr("aria-hidden") == Some("true") {
        return true;
    }
    if matches!(
        v.attr("role"),
        Some("navigation" | "contentinfo" | "dialog")
    ) {
        return true;
    }
    let marked = |s: &str| {
        let s = s.to_ascii_lowercase();
        NOISE_MARKERS.iter().any(|m| s.contains(m))
    };
    v.id().is_some_and(marked) || v.classes().any(marked)
}

fn table(el: ElementRef<'_>) -> String {
    let rows: Vec<Vec<String>> = el
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| e.value().name() == "tr")
        .map(|tr| {
            tr.children()
                .filter_map(ElementRef::wrap)
                .filter(|c| matches!(c.value().name(), "td" | "th"))
                .map(|c| collapse(&c.text().collect::<String>()).replace('|', "\\|"))
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut cells = row.clone();
        cells.resize(width, String::new());
        out.push_str("| ");
        out.push_str(&cells.join(" | "));
        out.push_str(" |\n");
        if i == 0 {
            out.push('|');
            out.push_str(&" --- |".repeat(width));
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

fn code_block(el: ElementRef<'_>) -> String {
    let language = el
        .descendants()
        .filter_map(ElementRef::wrap)
        .flat_map(|e| e.value().classes().collect::<Vec<_>>())
        .find_map(|c| {
            c.strip_prefix("language-")
                .or_else(|| c.strip_prefix("lang-"))
        })
        .unwrap_or_default()
        .to_owned();
    let code: String = el.text().collect();
    format!("```{language}\n{}\n```", code.trim_matches('\n'))
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn trim_trailing_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Trims line ends and squeezes runs of blank lines to one, leaving code blocks as they are.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let line = if in_code { line } else { line.trim_end() };
        if line.trim().is_empty() && !in_code {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn run(html: &str) -> Extracted {
        extract(html, &Url::parse("https://site.example/docs/").unwrap(), 0)
    }

    #[test]
    fn structure_survives() {
        let page = run(
            r#"<html><head><title> Guide </title><script>var x=1</script></head>
            <body><nav><a href="/">Home</a></nav>
            <h1>Install</h1><p>Run   the <code>cargo</code> command
            and read <a href="/faq">the FAQ</a>.</p>
            <ul><li>one</li><li>two<ol><li>a</li><li>b</li></ol></li></ul>
            <table><tr><th>k</th><th>v</th></tr><tr><td>a|b</td><td>1</td></tr></table>
            <pre><code class="language-rust">fn main() {
    println!("hi");
}</code></pre>
            <img src="x.png"><div class="cookie-banner">Accept cookies</div>
            <footer>© 2026</footer></body></html>"#,
        );
        assert_eq!(page.title, "Guide");
        assert_eq!(
            page.text,
            "# Install\n\nRun the `cargo` command and read 【0†the FAQ†site.example】.\n\n\
- one\n- two\n  1. a\n  2. b\n\n| k | v |\n| --- | --- |\n| a\\|b | 1 |\n\n\
```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n[Image 1]"
        );
        assert_eq!(page.links.len(), 1);
        assert_eq!(page.links[0].url.as_str(), "https://site.example/faq");
    }

    #[test]
    fn deep_nesting_is_read_as_text() {
        let html = "<div>".repeat(200_000) + "deep" + &"</div>".repeat(200_000);
        let page = run(&html);
        assert!(page.text.contains("nested too deeply"));
        assert!(page.text.ends_with("deep"));
        // Nesting below the limit still builds a tree, and the walk below MAX_DEPTH is bounded.
        let html = "<span>".repeat(900) + "<p>inner</p>" + &"</span>".repeat(900);
        assert_eq!(run(&html).text, "inner");
    }

    #[test]
    fn nesting_estimate() {
        assert_eq!(
            nesting_depth("<html><body><p>a<br>b<img src=x/></p></body></html>"),
            3
        );
        assert_eq!(nesting_depth("<div><div/></div><!-- <x> --> a < b"), 1);
    }
}
