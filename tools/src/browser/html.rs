//! HTML -> the text the model reads: headings, paragraphs, lists, pipe tables, code blocks,
//! numbered links `【id†text†host】` (`【id†text】` within the page's own site) and `[Image n]`
//! markers; scripts, navigation, footers and cookie banners dropped.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use scraper::{ElementRef, Html, Node};
use url::Url;

use super::blocks::{self, Block, Context, FEATURES, Model};
use super::reader::{self, Analysis, hidden_or_chrome, never_shown};
use super::shape;

/// Words in an id or class that mark a banner or an advert, left out even of whole pages.
const NOISE_MARKERS: [&str; 6] = ["cookie", "consent", "gdpr", "advert", "newsletter", "popup"];

/// Below this depth the tree is walked element by element; deeper content is kept as text.
const MAX_DEPTH: usize = 256;

/// Markup nested deeper than this is read as plain text: HTML tree building takes time
/// quadratic in nesting depth (1.8 s for 20,000 levels here), which a hostile page could use to
/// stall the agent.
const MAX_MARKUP_NESTING: usize = 1_000;

/// Elements reopened for unclosed formatting tags that a page may cost; each is a node, and a
/// real page reopens a few hundred at most.
const MAX_REOPENED: usize = 200_000;

/// Text written for one page at most; a view shows far less.
const MAX_TEXT_BYTES: usize = 4 << 20;

/// Links numbered in one page's text, at most (each is kept with its address; a view shows a
/// few hundred).
const MAX_LINKS: usize = 50_000;

/// Links outside the content kept for the model, at most.
const MAX_OTHER_LINKS: usize = 100;

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    /// `<title>`, or the first `<h1>`.
    pub title: String,
    /// The author, when the page's metadata names one.
    pub byline: Option<String>,
    /// The publication date, when the page's metadata gives one.
    pub date: Option<String>,
    /// The readable text: the article in reader mode, else the whole page.
    pub text: String,
    /// Whether `text` is the article alone (reader mode found one).
    pub reader: bool,
    /// Links in `text`, numbered from the `first_link_id` given.
    pub links: Vec<Link>,
    /// The page's other links (outside the article), numbered after `links`.
    pub other_links: Vec<Link>,
}

/// Extracts the readable text of `html`: its article when it has one, else all of it. Links
/// are resolved against `base` and numbered from `first_link_id`.
pub fn extract(html: &str, base: &Url, first_link_id: usize) -> Extracted {
    extract_with(html, base, first_link_id, &super::blocks_model::MODEL)
}

/// The blocks of the article's text before any is left out, each with its features: what
/// the block model is fitted to. Empty when the page has no article.
#[doc(hidden)]
pub fn article_blocks(html: &str, base: &Url) -> Vec<(String, [f32; FEATURES])> {
    let mut found = Vec::new();
    read(html, base, 0, &mut |blocks: &[Block<'_>]| {
        found = blocks
            .iter()
            .map(|b| b.text.to_owned())
            .zip(blocks::features(blocks))
            .collect();
        vec![true; blocks.len()]
    });
    found
}

/// [`extract`] with another block model.
#[doc(hidden)]
pub fn extract_with(html: &str, base: &Url, first_link_id: usize, model: &Model) -> Extracted {
    read(html, base, first_link_id, &mut |blocks: &[Block<'_>]| {
        model.keep(blocks)
    })
}

/// Reads `html`; in reader mode `choose` says which blocks of the article's text stay.
fn read(
    html: &str,
    base: &Url,
    first_link_id: usize,
    choose: &mut dyn FnMut(&[Block<'_>]) -> Vec<bool>,
) -> Extracted {
    let shape = shape::scan(html);
    let hostile = if shape.depth > MAX_MARKUP_NESTING {
        Some("nested too deeply")
    } else if shape.reopened > MAX_REOPENED {
        Some("full of unclosed formatting tags")
    } else {
        None
    };
    if let Some(why) = hostile {
        return Extracted {
            text: format!(
                "[The page's markup is {why} to read its structure; its text only:]\n\n{}",
                shape::strip_tags(html)
            ),
            ..Extracted::default()
        };
    }
    let repaired;
    let html = if shape.attributes > shape::MAX_ATTRIBUTES {
        repaired = shape::drop_extra_attributes(html);
        &repaired
    } else {
        html
    };
    let document = parse(html);
    let mut analysis = reader::analyse(&document);
    let content = analysis.content(&document);
    let mut writer = Writer {
        out: String::new(),
        links: Vec::new(),
        seen: HashSet::new(),
        written: HashMap::new(),
        next_link: first_link_id,
        images: 0,
        base,
        lists: Vec::new(),
        in_cell: false,
        reader: content.as_ref().map(|_| &analysis),
        starts: vec![(0, Context::default())],
        in_top: false,
        rescuing: false,
        path: Vec::new(),
    };
    match &content {
        Some(roots) => {
            for id in roots {
                if let Some(el) = document.tree.get(*id).and_then(ElementRef::wrap) {
                    writer.element(el, 0);
                }
            }
        }
        None => writer.walk(document.root_element(), 0),
    }
    if content.is_some() {
        writer.choose_blocks(choose);
    }
    let other_links = if content.is_some() {
        writer.other_links(&document)
    } else {
        Vec::new()
    };
    let meta = reader::metadata(&document, &analysis);
    Extracted {
        title: title(&document),
        byline: meta.byline,
        date: meta.date,
        text: visible(nfc(tidy(&writer.out))),
        reader: content.is_some(),
        links: writer.links,
        other_links,
    }
}

/// `text` in Unicode's composed form (NFC), the form text is compared and searched in.
fn nfc(text: String) -> String {
    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
    if is_nfc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        text.nfc().collect()
    }
}

/// Characters that take no room when shown: soft hyphens, zero-width spaces and joiners, the
/// word joiner and a stray byte-order mark. Pages scatter them through words (a German page may
/// hold thousands of soft hyphens); the model reads and searches the words without them.
pub const INVISIBLE: [char; 6] = [
    '\u{ad}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}',
];

/// `text` without [`INVISIBLE`] characters.
fn visible(text: String) -> String {
    if text.contains(INVISIBLE) {
        text.replace(INVISIBLE, "")
    } else {
        text
    }
}

/// Parses `html` as a browser without scripts does: `<noscript>` holds markup, not text.
fn parse(html: &str) -> Html {
    use html5ever::tendril::TendrilSink;
    let opts = html5ever::ParseOpts {
        tree_builder: html5ever::tree_builder::TreeBuilderOpts {
            scripting_enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    html5ever::parse_document(scraper::HtmlTreeSink::new(Html::new_document()), opts).one(html)
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
            return t.chars().take(300).collect();
        }
    }
    String::new()
}

struct Writer<'a> {
    out: String,
    links: Vec<Link>,
    /// URLs numbered so far.
    seen: HashSet<Url>,
    /// Links written into the text, with their numbers.
    written: HashMap<ego_tree::NodeId, usize>,
    next_link: usize,
    images: usize,
    base: &'a Url,
    /// For each open list: ordered?, items so far.
    lists: Vec<(bool, usize)>,
    /// Inside a table cell: blocks are run together and nested tables read as text.
    in_cell: bool,
    /// The page's measurements in reader mode, to leave boilerplate out of the article.
    reader: Option<&'a Analysis>,
    /// Where each block of `out` starts, and where in the markup it was written from.
    starts: Vec<(usize, Context)>,
    /// Writing inside the best-scoring element.
    in_top: bool,
    /// Writing prose found inside an element left out beside the article.
    rescuing: bool,
    /// For each element being written: its kind and the class words of it and those around it.
    path: Vec<(u8, u8, ego_tree::NodeId)>,
}

impl Writer<'_> {
    fn walk(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            if self.out.len() > MAX_TEXT_BYTES {
                return;
            }
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

    fn skipped(&self, el: ElementRef<'_>) -> bool {
        if never_shown(el) {
            return true;
        }
        match self.reader {
            // Hidden elements were not measured, and unmeasured ones are left out.
            Some(analysis) => analysis.is_boilerplate(el),
            None => hidden_or_chrome(el) || is_noise(el),
        }
    }

    fn element(&mut self, el: ElementRef<'_>, depth: usize) {
        if self.skipped(el) {
            let rescue = self
                .reader
                .is_some_and(|a| a.beside(el) && a.may_hold_prose(el));
            if rescue && !self.rescuing {
                self.rescuing = true;
                let whole = self.reader.is_some_and(|a| a.close_beside(el));
                self.in_path(el, blocks::words(el), |w| {
                    if whole {
                        w.element_inner(el, depth);
                    } else {
                        w.rescue(el, depth);
                    }
                });
                self.rescuing = false;
            }
            return;
        }
        let Some(analysis) = self.reader else {
            self.element_inner(el, depth);
            return;
        };
        // The path to the article says nothing of a block: its class words are left out.
        let own = if analysis.on_path(el.id()) {
            0
        } else {
            blocks::words(el)
        };
        let top = analysis.top() == Some(el.id());
        self.in_path(el, own, |w| {
            w.in_top |= top;
            w.element_inner(el, depth);
            w.in_top &= !top;
        });
    }

    /// Writes the paragraphs of prose inside `el`, an element beside the article that did
    /// not qualify as part of it: the block model weighs them with the rest.
    fn rescue(&mut self, el: ElementRef<'_>, depth: usize) {
        let Some(analysis) = self.reader else {
            return;
        };
        for child in el.children().filter_map(ElementRef::wrap) {
            if depth >= MAX_DEPTH || self.out.len() > MAX_TEXT_BYTES {
                return;
            }
            if never_shown(child) || !analysis.may_hold_prose(child) {
                continue;
            }
            if analysis.is_prose(child) {
                self.in_path(child, blocks::words(child), |w| {
                    w.element_inner(child, depth + 1);
                });
            } else {
                self.in_path(child, blocks::words(child), |w| w.rescue(child, depth + 1));
            }
        }
    }

    /// Runs `write` with `el`, whose own class words are `own`, on the path of elements being
    /// written.
    fn in_path(&mut self, el: ElementRef<'_>, own: u8, write: impl FnOnce(&mut Self)) {
        let around = self.path.last().map_or(0, |p| p.1);
        let kind = blocks::kind(el.value().name());
        self.path.push((kind, around | own, el.id()));
        write(self);
        self.path.pop();
    }

    fn element_inner(&mut self, el: ElementRef<'_>, depth: usize) {
        let name = el.value().name();
        if self.in_cell {
            match name {
                "br" | "p" | "div" | "li" | "tr" | "td" | "th" | "h1" | "h2" | "h3" | "h4"
                | "h5" | "h6" | "pre" => {
                    self.inline(" ");
                    self.walk(el, depth);
                    self.inline(" ");
                }
                "a" => self.link(el, depth),
                "img" => self.image(),
                _ => self.walk(el, depth),
            }
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
            "table" => {
                let table = self.table(el, depth);
                self.block(&table);
            }
            "pre" => self.block(&code_block(el)),
            "code" => {
                let text = collapse(&el.text().collect::<String>());
                if !text.is_empty() {
                    self.inline(&format!("`{text}`"));
                }
            }
            "a" => self.link(el, depth),
            "img" => self.image(),
            "blockquote" => {
                self.blank_line();
                let start = self.out.len();
                self.walk(el, depth);
                let quoted: String = tidy(&self.out[start..])
                    .lines()
                    .map(|l| format!("> {l}\n"))
                    .collect();
                self.out.truncate(start);
                self.out.push_str(&quoted);
                // The quote is one block.
                self.starts.retain(|(at, _)| *at <= start);
                self.blank_line();
            }
            "p" | "div" | "section" | "article" | "main" | "header" | "figure" | "figcaption"
            | "dl" | "dt" | "dd" | "address" | "details" | "summary" | "form" | "fieldset"
            | "center" => {
                self.blank_line();
                self.walk(el, depth);
                self.blank_line();
            }
            _ => self.walk(el, depth),
        }
    }

    fn image(&mut self) {
        self.images += 1;
        self.inline(&format!("[Image {}]", self.images));
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

    /// Where a link goes, when it is a web address.
    fn target(&self, el: ElementRef<'_>) -> Option<Url> {
        el.value()
            .attr("href")
            .and_then(|href| self.base.join(href.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    fn link(&mut self, el: ElementRef<'_>, depth: usize) {
        // Past the numbered links a page may hold, links read as their text.
        let target = self.target(el).filter(|_| self.links.len() < MAX_LINKS);
        let text = collapse(&el.text().collect::<String>());
        match target {
            Some(url) if !text.is_empty() => {
                let id = self.next_link;
                self.next_link += 1;
                // A link within the page's own site goes without its host: the id is what
                // opens and cites it, and the view is better spent on the article.
                let host = url.host_str().unwrap_or_default();
                let marker = if Some(host) == self.base.host_str() {
                    format!("【{id}†{text}】")
                } else {
                    format!("【{id}†{text}†{host}】")
                };
                self.inline(&marker);
                self.written.insert(el.id(), id);
                self.seen.insert(url.clone());
                self.links.push(Link { id, url, text });
            }
            _ => self.walk(el, depth),
        }
    }

    /// The page's links that the text does not number, numbered after it.
    fn other_links(&mut self, document: &Html) -> Vec<Link> {
        let mut others = Vec::new();
        let mut skipping = 0usize;
        // Addresses as written, already looked at: a page repeats its links many times.
        let mut tried: HashSet<&str> = HashSet::new();
        for edge in document.tree.root().traverse() {
            if others.len() >= MAX_OTHER_LINKS {
                break;
            }
            let (node, open) = match edge {
                ego_tree::iter::Edge::Open(n) => (n, true),
                ego_tree::iter::Edge::Close(n) => (n, false),
            };
            let Some(el) = ElementRef::wrap(node) else {
                continue;
            };
            let name = el.value().name();
            if matches!(name, "script" | "style" | "head" | "template") || skipping > 0 {
                if open {
                    skipping += 1;
                } else {
                    skipping -= 1;
                }
                continue;
            }
            if !open || name != "a" || self.written.contains_key(&el.id()) {
                continue;
            }
            let Some(href) = el.value().attr("href").filter(|h| !tried.contains(h)) else {
                continue;
            };
            let Some(url) = self.target(el).filter(|u| !self.seen.contains(u)) else {
                tried.insert(href);
                continue;
            };
            let text: String = collapse(&el.text().collect::<String>())
                .chars()
                .take(80)
                .collect();
            // An image link without text may be followed by the same address with text.
            if text.is_empty() {
                continue;
            }
            tried.insert(href);
            self.seen.insert(url.clone());
            let id = self.next_link;
            self.next_link += 1;
            others.push(Link { id, url, text });
        }
        others
    }

    /// Appends inline text, collapsing whitespace runs to one space.
    fn inline(&mut self, text: &str) {
        if self.out.len() > MAX_TEXT_BYTES {
            return;
        }
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
        // A block starts here.
        let at = self.out.len();
        let (kind, words) = self.path.last().map_or((0, 0), |p| (p.0, p.1));
        let above = |n: usize| {
            self.path
                .len()
                .checked_sub(n + 1)
                .and_then(|i| self.path.get(i))
                .map(|p| p.2)
        };
        let context = Context {
            in_top: self.in_top,
            rescued: self.rescuing,
            kind,
            words,
            depth: u16::try_from(self.path.len()).unwrap_or(u16::MAX),
            parent: above(1),
            grandparent: above(2),
        };
        match self.starts.last_mut() {
            Some(last) if last.0 == at => last.1 = context,
            _ => self.starts.push((at, context)),
        }
    }

    /// Leaves out the blocks of the article's text that `choose` rejects, and the links in
    /// them (they join the page's other links).
    fn choose_blocks(&mut self, choose: &mut dyn FnMut(&[Block<'_>]) -> Vec<bool>) {
        let out = std::mem::take(&mut self.out);
        self.out.reserve(out.len());
        let mut found: Vec<Block<'_>> = Vec::with_capacity(self.starts.len());
        for (i, &(start, context)) in self.starts.iter().enumerate() {
            let end = self.starts.get(i + 1).map_or(out.len(), |n| n.0);
            let text = out
                .get(start..end.min(out.len()))
                .unwrap_or_default()
                .trim();
            if !text.is_empty() {
                found.push(Block { text, context });
            }
        }
        let keep = choose(&found);
        let mut dropped_links = HashSet::new();
        for (block, keep) in found.iter().zip(&keep) {
            if *keep {
                self.out.push_str(block.text);
                self.out.push_str("\n\n");
            } else {
                dropped_links.extend(link_ids(block.text));
            }
        }
        if dropped_links.is_empty() {
            return;
        }
        self.links.retain(|l| !dropped_links.contains(&l.id));
        self.written.retain(|_, id| !dropped_links.contains(id));
        self.seen = self.links.iter().map(|l| l.url.clone()).collect();
    }

    fn block(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.blank_line();
        self.out.push_str(text);
        self.blank_line();
    }

    /// A pipe table of the rows that belong to `el` itself; cells are written in place, so a
    /// table nested in a cell is read once, as text of that cell.
    fn table(&mut self, el: ElementRef<'_>, depth: usize) -> String {
        let saved = std::mem::take(&mut self.out);
        let starts = self.starts.len();
        let was_in_cell = std::mem::replace(&mut self.in_cell, true);
        let mut rows: Vec<Vec<String>> = Vec::new();
        for tr in rows_of(el) {
            let mut cells = Vec::new();
            for cell in tr.children().filter_map(ElementRef::wrap) {
                if !matches!(cell.value().name(), "td" | "th") || self.skipped(cell) {
                    continue;
                }
                self.out.clear();
                self.walk(cell, depth);
                cells.push(collapse(&self.out).replace('|', "\\|"));
            }
            if !cells.is_empty() {
                rows.push(cells);
            }
        }
        self.in_cell = was_in_cell;
        self.out = saved;
        self.starts.truncate(starts);
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut out = String::new();
        for (i, row) in rows.iter_mut().enumerate() {
            row.resize(width, String::new());
            out.push_str("| ");
            out.push_str(&row.join(" | "));
            out.push_str(" |\n");
            if i == 0 {
                out.push('|');
                out.push_str(&" --- |".repeat(width));
                out.push('\n');
            }
        }
        out.trim_end().to_owned()
    }
}

/// The rows of `table` itself, not those of tables inside it.
fn rows_of(table: ElementRef<'_>) -> Vec<ElementRef<'_>> {
    let mut rows = Vec::new();
    for child in table.children().filter_map(ElementRef::wrap) {
        match child.value().name() {
            "tr" => rows.push(child),
            "thead" | "tbody" | "tfoot" => rows.extend(
                child
                    .children()
                    .filter_map(ElementRef::wrap)
                    .filter(|r| r.value().name() == "tr"),
            ),
            _ => {}
        }
    }
    rows
}

fn is_noise(el: ElementRef<'_>) -> bool {
    let v = el.value();
    let marked = |s: &str| {
        let s = s.to_ascii_lowercase();
        NOISE_MARKERS.iter().any(|m| s.contains(m))
    };
    v.id().is_some_and(marked) || v.classes().any(marked)
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

/// The numbers of the link markers `【id†...】` in `text`.
fn link_ids(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.split('【')
        .skip(1)
        .filter_map(|m| m.split_once('†').and_then(|(id, _)| id.parse().ok()))
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
mod tests;
