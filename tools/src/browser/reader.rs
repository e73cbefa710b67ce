//! Reader mode: which part of a page is its article.
//!
//! One pass over the tree measures every element: how much text it holds, how much of that is
//! link text, and how much paragraph-like prose sits in it or just below it. Prose scores its
//! parent fully and its grandparent and great-grandparent partly, so the element whose children
//! are the article's paragraphs scores highest; link-heavy elements are discounted by their
//! link density, and class or id words (`sidebar`, `comment`, `share`, ... against `article`,
//! `content`, `post`, ...) move the score. The best element, with those of its siblings that
//! score close to it, is the content. Inside it, blocks marked as boilerplate and lists that are
//! mostly links are left out. Elements beside it that do not qualify still give up their
//! paragraphs of prose (long, few links, not inside anything marked as boilerplate), and those
//! close to it (siblings of it or of the three elements above it) with less than half their
//! text in links give up all their text: a story split around a box of links or by a page
//! builder's layout is read whole, a headline, lead or recipe's ingredients in a box of their
//! own are found, and the block model weighs those blocks with the rest. A page with no clear
//! article reads as a whole.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use ego_tree::NodeId;
use scraper::{ElementRef, Html, Node};

mod meta;
pub(super) use meta::metadata;

/// Tags whose content is never shown.
pub(super) const SKIPPED: [&str; 21] = [
    "script", "style", "template", "svg", "nav", "footer", "aside", "button", "iframe", "select",
    "input", "textarea", "canvas", "object", "embed", "head", "dialog", "menu", "option", "rt",
    "rp",
];

/// Whether `el` is never shown: a [`SKIPPED`] tag, or a `<noscript>` asking for scripts.
/// (Pages are parsed as a browser without scripts reads them, so `<noscript>` holds the markup
/// such a browser shows, which is often the article itself.)
pub(super) fn never_shown(el: ElementRef<'_>) -> bool {
    let name = el.value().name();
    if name == "noscript" {
        let mut text = String::new();
        for t in el.text() {
            text.push_str(t);
            if text.len() > 2_000 {
                return false;
            }
        }
        return text.to_ascii_lowercase().contains("javascript");
    }
    SKIPPED.contains(&name)
}

/// Words of class names and ids that mark boilerplate, matched as whole words.
const NEGATIVE: [&str; 55] = [
    "nav",
    "navi",
    "navbar",
    "menu",
    "menubar",
    "breadcrumb",
    "breadcrumbs",
    "footer",
    "sidebar",
    "widget",
    "widgets",
    "comment",
    "comments",
    "commentlist",
    "respond",
    "share",
    "sharing",
    "social",
    "related",
    "recommended",
    "popular",
    "trending",
    "banner",
    "cookie",
    "cookies",
    "consent",
    "gdpr",
    "ad",
    "ads",
    "sponsor",
    "sponsored",
    "promo",
    "newsletter",
    "subscribe",
    "popup",
    "modal",
    "pagination",
    "pager",
    "skip",
    "toolbar",
    "masthead",
    "shoutbox",
    "offcanvas",
    "overlay",
    "author",
    "byline",
    "meta",
    "postmetadata",
    "utility",
    "tags",
    "credit",
    "copyright",
    "kommentare",
    "feedback",
    "paywall",
];

/// Boilerplate markers that also count inside a word (`sharebar`, `relatedposts`).
const NEGATIVE_INSIDE: [&str; 12] = [
    "navigation",
    "breadcrumb",
    "footer",
    "sidebar",
    "widget",
    "social",
    "related",
    "cookie",
    "advert",
    "newsletter",
    "sponsor",
    "pagination",
];

/// Words of class names and ids that mark content.
const POSITIVE: [&str; 13] = [
    "article",
    "articlebody",
    "content",
    "entry",
    "main",
    "post",
    "story",
    "text",
    "body",
    "blog",
    "hentry",
    "prose",
    "rte",
];

/// Paragraphs beside the article this long are written for the block model to weigh.
const RESCUED_PARAGRAPH: u32 = 100;

/// Elements close beside the article with less of their text in links than this are written
/// whole for the block model.
const NEAR_LINK_DENSITY: f32 = 0.5;

/// Close beside the article: a sibling of one of this many elements, the best and those above.
const NEAR_LEVELS: usize = 4;

/// Captions this long are read with the article.
const LONG_CAPTION: u32 = 200;

/// Prose shorter than this does not score.
const MIN_PARAGRAPH: u32 = 25;

/// Content with less text than this is no article: the page is read whole.
const MIN_CONTENT: u32 = 140;

/// Measurements of one element.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stats {
    /// Characters of text (whitespace runs counted once).
    pub text: u32,
    /// Characters of that inside links.
    pub link_text: u32,
    /// Links inside.
    pub links: u32,
    /// Prose score gathered from paragraphs in or below it.
    score: f32,
    /// What its class and id say.
    marks: Marks,
    /// Whether it scored as a paragraph of its own (a `<p>`, a `<div>` without blocks, ...).
    paragraph: bool,
}

impl Stats {
    pub fn link_density(&self) -> f32 {
        if self.text == 0 {
            0.0
        } else {
            self.link_text as f32 / self.text as f32
        }
    }
}

/// The measured page.
pub(super) struct Analysis {
    stats: HashMap<NodeId, Stats>,
    /// `<meta>` elements and JSON-LD scripts, for the byline and date.
    head: Vec<NodeId>,
    /// The best-scoring element.
    top: Option<NodeId>,
    /// Its ancestors: never boilerplate, whatever their names say (`<div class="page
    /// has-sidebar">` wraps many an article).
    chain: HashSet<NodeId>,
    /// The score a sibling of the path needs to be read with the article.
    threshold: f32,
    /// The best element's [`NEAR_LEVELS`] nearest ancestors: their children are close beside
    /// the article, and headings beside the first two (its parent and grandparent) title it.
    around: Vec<NodeId>,
}

/// How an element's class and id read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Marks {
    Negative,
    Positive,
    #[default]
    Neutral,
}

/// The class and id words of `el`.
pub(super) fn marks(el: ElementRef<'_>) -> Marks {
    let v = el.value();
    let mut positive = false;
    // A page builder's layout classes (`elementor-widget-text-editor`) call every box a
    // widget: there the word says nothing; the words after it still do.
    let words = v.id().into_iter().chain(v.classes()).flat_map(|s| {
        let builder = s.starts_with("elementor-");
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(move |w| !w.is_empty() && (!builder || *w != "widget"))
    });
    // `widget` alone is weak: content management systems call every box one, the blog's
    // posts included (`widget Blog`), so a content word beside it wins.
    let mut weak = false;
    let mut lower = String::new();
    for word in words {
        lower.clear();
        lower.extend(word.chars().map(|c| c.to_ascii_lowercase()));
        let word = lower.as_str();
        if matches!(word, "widget" | "widgets") {
            weak = true;
        } else if NEGATIVE.contains(&word) || NEGATIVE_INSIDE.iter().any(|m| word.contains(m)) {
            return Marks::Negative;
        }
        positive |= POSITIVE.contains(&word);
    }
    if positive {
        Marks::Positive
    } else if weak {
        Marks::Negative
    } else {
        Marks::Neutral
    }
}

/// Hidden, or given a role that is not content.
pub(super) fn hidden_or_chrome(el: ElementRef<'_>) -> bool {
    hidden(el) || chrome_role(el)
}

/// Hidden by an attribute or an inline style (one pass over the attributes).
pub(super) fn hidden(el: ElementRef<'_>) -> bool {
    el.value().attrs().any(|(name, value)| match name {
        "hidden" => true,
        "aria-hidden" => value == "true",
        "style" => {
            let style = value.to_ascii_lowercase().replace(' ', "");
            style.contains("display:none") || style.contains("visibility:hidden")
        }
        _ => false,
    })
}

/// Given a role that is not content: navigation, a banner, a dialog, ...
fn chrome_role(el: ElementRef<'_>) -> bool {
    el.value().attr("role").is_some_and(|role| {
        matches!(
            role,
            "navigation" | "contentinfo" | "dialog" | "complementary" | "banner" | "menu"
        )
    })
}

fn is_paragraph(tag: &str) -> bool {
    matches!(tag, "p" | "pre" | "td" | "blockquote" | "li" | "dd")
}

fn is_block(tag: &str) -> bool {
    matches!(
        tag,
        "p" | "div"
            | "section"
            | "article"
            | "main"
            | "table"
            | "ul"
            | "ol"
            | "pre"
            | "blockquote"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "form"
            | "header"
            | "figure"
            | "dl"
    )
}

/// One open element during the pass.
struct Frame {
    id: NodeId,
    tag: &'static str,
    stats: Stats,
    commas: u32,
    has_block: bool,
    /// Given a role that is not content: measured, and not counted in the elements above.
    chrome: bool,
}

/// Interned tag names the pass cares about; others read as "".
fn intern(name: &str) -> &'static str {
    const KNOWN: [&str; 27] = [
        "p",
        "pre",
        "td",
        "blockquote",
        "li",
        "dd",
        "div",
        "section",
        "article",
        "main",
        "table",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "form",
        "header",
        "figure",
        "dl",
        "a",
        "body",
        "span",
        "font",
    ];
    KNOWN.iter().find(|k| **k == name).copied().unwrap_or("")
}

/// An element's frame is done: links and paragraphs counted, its score passed up to the three
/// elements above it, and its totals added to its parent's.
fn close(mut frame: Frame, stack: &mut [Frame], stats: &mut HashMap<NodeId, Stats>) {
    if frame.tag == "a" {
        frame.stats.link_text = frame.stats.text;
        frame.stats.links += 1;
    }
    let leaf_div = frame.tag == "div" && !frame.has_block;
    if (is_paragraph(frame.tag) || leaf_div) && frame.stats.text >= MIN_PARAGRAPH {
        let prose = 1.0 + frame.commas.min(20) as f32 + (frame.stats.text as f32 / 100.0).min(3.0);
        let prose = prose * (1.0 - frame.stats.link_density());
        frame.stats.paragraph = true;
        let depth = stack.len();
        for (level, divider) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
            if let Some(f) = depth.checked_sub(level).and_then(|i| stack.get_mut(i)) {
                f.stats.score += prose / divider;
            }
        }
    }
    if let Some(parent) = stack.last_mut().filter(|_| !frame.chrome) {
        parent.stats.text += frame.stats.text;
        parent.stats.link_text += frame.stats.link_text;
        parent.stats.links += frame.stats.links;
        parent.commas += frame.commas;
        parent.has_block |= is_block(frame.tag) || frame.has_block;
    }
    if frame.stats.text > 0 {
        stats.insert(frame.id, frame.stats);
    }
}

/// Measures every element of `document` (skipped and hidden subtrees count nothing).
pub(super) fn analyse(document: &Html) -> Analysis {
    let mut stats = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut skipping = 0usize;
    let mut head = Vec::new();
    for edge in document.tree.root().traverse() {
        match edge {
            ego_tree::iter::Edge::Open(node) => match node.value() {
                Node::Element(e) => {
                    let el = ElementRef::wrap(node);
                    // Metadata scripts are read for the byline and date, never shown.
                    let json_ld =
                        e.name() == "script" && e.attr("type") == Some("application/ld+json");
                    if json_ld && head.len() < 500 {
                        head.push(node.id());
                    }
                    let skip = skipping > 0
                        || (e.name() != "head" && el.is_some_and(never_shown))
                        || el.is_some_and(hidden);
                    if skip {
                        skipping += 1;
                        continue;
                    }
                    let wanted = e.name() == "meta" || e.name() == "time" || names_author(e);
                    if wanted && head.len() < 500 {
                        head.push(node.id());
                    }
                    // A role that is not content reads as a boilerplate class word: a page
                    // whose banner was left open around everything is still read.
                    let chrome = el.is_some_and(chrome_role);
                    let marks = if chrome {
                        Marks::Negative
                    } else if e.id().is_some() || e.classes().next().is_some() {
                        el.map_or(Marks::Neutral, marks)
                    } else {
                        Marks::Neutral
                    };
                    stack.push(Frame {
                        id: node.id(),
                        tag: intern(e.name()),
                        stats: Stats {
                            marks,
                            ..Stats::default()
                        },
                        commas: 0,
                        has_block: false,
                        chrome,
                    });
                }
                Node::Text(t) if skipping == 0 => {
                    if let Some(top) = stack.last_mut() {
                        let (chars, commas) = measure(t);
                        top.stats.text += chars;
                        top.commas += commas;
                    }
                }
                _ => {}
            },
            ego_tree::iter::Edge::Close(node) => {
                if !matches!(node.value(), Node::Element(_)) {
                    continue;
                }
                if skipping > 0 {
                    skipping -= 1;
                    continue;
                }
                let Some(frame) = stack.pop() else {
                    continue;
                };
                close(frame, &mut stack, &mut stats);
            }
        }
    }
    // A boilerplate word on an element that holds most of the page's text names a layout
    // (`page has-sidebar`, `offcanvas-wrap`, `has-paywall`), not a box beside the article.
    let page_text = stats.values().map(|s| s.text).max().unwrap_or(0);
    for s in stats.values_mut() {
        if s.marks == Marks::Negative && s.text * 2 >= page_text && s.link_density() < 0.3 {
            s.marks = Marks::Neutral;
        }
    }
    Analysis {
        stats,
        head,
        top: None,
        chain: HashSet::new(),
        threshold: 0.0,
        around: Vec::new(),
    }
}

/// Characters (whitespace runs as one) and clause marks of a text node.
fn measure(text: &str) -> (u32, u32) {
    let mut chars = 0u32;
    let mut commas = 0u32;
    let mut in_space = true;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                chars += 1;
            }
            in_space = true;
        } else {
            chars += 1;
            in_space = false;
            if matches!(c, ',' | '，' | '、' | '。' | '،') {
                commas += 1;
            }
        }
    }
    (chars, commas)
}

impl Analysis {
    /// The best-scoring element, once [`Analysis::content`] has chosen it.
    pub fn top(&self) -> Option<NodeId> {
        self.top
    }

    /// Whether `id` is the best-scoring element or one of its ancestors.
    pub fn on_path(&self, id: NodeId) -> bool {
        self.top == Some(id) || self.chain.contains(&id)
    }

    pub fn stats(&self, id: NodeId) -> Stats {
        self.stats.get(&id).copied().unwrap_or_default()
    }

    /// How strongly `el` reads as the article's container.
    fn candidate_score(&self, el: ElementRef<'_>) -> f32 {
        let stats = self.stats(el.id());
        let bias = match el.value().name() {
            "article" => 10.0,
            "main" => 8.0,
            "div" | "section" => 5.0,
            "pre" | "td" | "blockquote" => 3.0,
            "form" | "ul" | "ol" | "dl" => -3.0,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "th" => -5.0,
            _ => 0.0,
        };
        let marks = match stats.marks {
            // Content words are weaker evidence than boilerplate words: `content` and `text`
            // name every wrapper.
            Marks::Positive => 10.0,
            Marks::Negative => -25.0,
            Marks::Neutral => 0.0,
        };
        let itemprop = if el.value().attr("itemprop") == Some("articleBody") {
            25.0
        } else {
            0.0
        };
        (stats.score + bias + marks + itemprop) * (1.0 - stats.link_density())
    }

    /// The elements holding the article, in document order; `None` when the page has none.
    pub fn content(&mut self, document: &Html) -> Option<Vec<NodeId>> {
        let mut best: Option<(f32, ElementRef<'_>)> = None;
        // Nodes in parse order, so that of equal scores the first wins.
        for node in document.tree.nodes() {
            let Some(stats) = self.stats.get(&node.id()) else {
                continue;
            };
            if stats.score <= 0.0 {
                continue;
            }
            let Some(el) = ElementRef::wrap(node) else {
                continue;
            };
            if matches!(el.value().name(), "html" | "body") {
                continue;
            }
            let score = self.candidate_score(el);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, el));
            }
        }
        let (top_score, top) = best?;
        self.top = Some(top.id());
        self.threshold = (top_score * 0.2).max(10.0);
        self.chain = std::iter::successors(top.parent(), |n| n.parent())
            .map(|n| n.id())
            .collect();
        self.around = std::iter::successors(top.parent(), |n| n.parent())
            .take(NEAR_LEVELS)
            .map(|n| n.id())
            .collect();
        // The text that will be read: the best element and the siblings that qualify at each
        // level above it.
        let mut text = self.stats(top.id()).text;
        for ancestor in std::iter::successors(top.parent(), |n| n.parent()) {
            for sibling in ancestor.children().filter_map(ElementRef::wrap) {
                if !self.chain.contains(&sibling.id())
                    && sibling.id() != top.id()
                    && self.qualifies(sibling)
                {
                    text += self.stats(sibling.id()).text;
                }
            }
        }
        (text >= MIN_CONTENT).then(|| vec![document.root_element().id()])
    }

    /// Whether `el`, beside the path from the page's root to the best element, belongs to the
    /// article too: it scores near the best, or it is prose, or a heading close to it.
    fn qualifies(&self, el: ElementRef<'_>) -> bool {
        let name = el.value().name();
        let stats = self.stats(el.id());
        if stats.text == 0 || never_shown(el) || stats.marks == Marks::Negative {
            return false;
        }
        let density = stats.link_density();
        if self.candidate_score(el) >= self.threshold {
            return true;
        }
        match name {
            "p" | "blockquote" | "pre" | "table" | "ul" | "ol" | "dl" | "figure" | "div" => {
                (stats.text > 150 && density < 0.25)
                    || (name == "p" && stats.text > 0 && density == 0.0 && ends_sentence(el))
            }
            "h1" | "h2" | "h3" => {
                density < 0.5
                    && el
                        .parent()
                        .is_some_and(|p| self.around.iter().take(2).any(|a| *a == p.id()))
            }
            _ => false,
        }
    }

    /// Whether `el` sits beside the path to the best element and does not qualify.
    pub fn beside(&self, el: ElementRef<'_>) -> bool {
        !self.on_path(el.id())
            && el.parent().is_some_and(|p| self.chain.contains(&p.id()))
            && !self.qualifies(el)
    }

    /// Whether `el`, beside the article, is close to it (a sibling of the best element or of
    /// one of the elements above it, [`NEAR_LEVELS`] in all) and mostly not links: its text is
    /// written whole for the block model to weigh.
    pub fn close_beside(&self, el: ElementRef<'_>) -> bool {
        let stats = self.stats(el.id());
        stats.marks != Marks::Negative
            && stats.link_density() < NEAR_LINK_DENSITY
            && el.parent().is_some_and(|p| self.around.contains(&p.id()))
    }

    /// Whether `el` was measured (not hidden) and is not marked as boilerplate.
    pub fn may_hold_prose(&self, el: ElementRef<'_>) -> bool {
        self.stats
            .get(&el.id())
            .is_some_and(|s| s.marks != Marks::Negative)
    }

    /// Whether `el` reads as a paragraph of prose: long, and little of it links.
    pub fn is_prose(&self, el: ElementRef<'_>) -> bool {
        let stats = self.stats(el.id());
        stats.paragraph
            && matches!(el.value().name(), "p" | "div" | "blockquote" | "pre")
            && stats.text >= RESCUED_PARAGRAPH
            && stats.link_density() < 0.3
    }

    /// Whether `el` is left out of the article: beside the path to the best element and not
    /// qualifying, or inside the article and marked as boilerplate or mostly links.
    pub fn is_boilerplate(&self, el: ElementRef<'_>) -> bool {
        let id = el.id();
        if self.chain.contains(&id) || self.top == Some(id) {
            return false;
        }
        if el.parent().is_some_and(|p| self.chain.contains(&p.id())) {
            return !self.qualifies(el);
        }
        let Some(stats) = self.stats.get(&id).copied() else {
            // No text at all (or hidden): only images and rules could be lost.
            return !matches!(
                el.value().name(),
                "img" | "br" | "hr" | "figure" | "picture"
            );
        };
        if stats.marks == Marks::Negative {
            return true;
        }
        let density = stats.link_density();
        match el.value().name() {
            // A short caption credits a photographer, a long one describes the story; dates
            // and addresses are the page's, not the story's.
            "figcaption" => stats.text < LONG_CAPTION,
            "time" | "address" => true,
            "ul" | "ol" | "dl" => stats.links >= 2 && density > 0.6,
            "div" | "section" | "table" | "header" => stats.links >= 3 && density > 0.6,
            // "Read also: <a>...</a>".
            "p" | "li" => stats.links >= 1 && density > 0.8 && stats.text < 100,
            _ => false,
        }
    }
}

fn ends_sentence(el: ElementRef<'_>) -> bool {
    let text: String = el.text().collect();
    text.trim_end().ends_with(['.', '!', '?', '。', '！', '？'])
}

/// An element that says it holds the author's name.
pub(super) fn names_author(e: &scraper::node::Element) -> bool {
    e.attr("rel") == Some("author")
        || e.attr("itemprop") == Some("author")
        || e.classes().chain(e.id()).any(|c| {
            let tail = |word: &str| {
                c.len() >= word.len()
                    && c.as_bytes()[c.len() - word.len()..].eq_ignore_ascii_case(word.as_bytes())
                    && (c.len() == word.len() || c.as_bytes()[c.len() - word.len() - 1] == b'-')
            };
            tail("author") || tail("byline")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marks of the first element with `class` in `html`.
    fn marks_of(html: &str, class: &str) -> Marks {
        let document = Html::parse_document(html);
        let el = document
            .root_element()
            .descendants()
            .filter_map(ElementRef::wrap)
            .find(|e| e.value().classes().any(|c| c == class))
            .expect(class);
        marks(el)
    }

    #[test]
    fn widget_is_a_weak_mark_and_a_page_builders_widget_none() {
        let page = r#"<html><body>
            <div class="widget Blog" id="Blog1"><div class="post-body">story</div></div>
            <div class="widget HTML" id="HTML2">badge</div>
            <div class="elementor-widget-container">text</div>
            <div class="elementor-widget-nav-menu">menu</div>
            <div class="related-posts">more</div>
            </body></html>"#;
        // Blogger's posts gadget: the content word wins over `widget`.
        assert_eq!(marks_of(page, "Blog"), Marks::Positive);
        assert_eq!(marks_of(page, "HTML"), Marks::Negative);
        assert_eq!(marks_of(page, "elementor-widget-container"), Marks::Neutral);
        assert_eq!(marks_of(page, "elementor-widget-nav-menu"), Marks::Negative);
        // A strong boilerplate word is not outweighed by a content word.
        assert_eq!(marks_of(page, "related-posts"), Marks::Negative);
    }
}
