//! The last step of reader mode: each block of the article's text (a paragraph, heading, list,
//! table, quote or code block, as written) is weighed by a small logistic model and left out
//! when it reads as boilerplate: the newsletter box after the story, "read also" lines, photo
//! credits, share prompts.
//!
//! The model sees only shallow evidence: the block's length, link density, punctuation and
//! shape, where it sits among the blocks that read as prose (boilerplate gathers after the last
//! paragraph of the story), its neighbours, the kind of element it came from, what the class
//! names around it say, the blocks that share its parent,
//! whether it lies in the element that scored best as the article or beside it, and whether it
//! is a paragraph of prose found inside an element beside the article that was left out. Its weights
//! (`blocks_model.rs`, generated) were fitted by `cargo bench -p glm-tools --bench extract --
//! --train` to the labelled blocks
//! of a corpus of real pages; the bench also scores each half of that corpus with a model fitted
//! to the other half alone, which is the figure to expect on pages the weights never saw.

use scraper::ElementRef;

/// Features per block.
pub const FEATURES: usize = BASE + KINDS + GROUPS.len() + 1 + 4 + 2;

/// One block of written text and where it came from.
#[derive(Debug, Clone)]
pub struct Block<'a> {
    /// The block as written, link markers included.
    pub text: &'a str,
    /// Where in the markup it was written from.
    pub context: Context,
}

/// Where in the markup a block was written from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Inside the best-scoring element (else beside the path to it).
    pub in_top: bool,
    /// A paragraph of prose found inside an element beside the article that did not qualify.
    pub rescued: bool,
    /// What kind of element started the block ([`kind`]).
    pub kind: u8,
    /// The word groups ([`GROUPS`]) in the class names and ids of the elements it is inside,
    /// below the path to the article, one bit each.
    pub words: u8,
    /// Elements it is inside.
    pub depth: u16,
    /// The parent of the element that started it.
    pub parent: Option<ego_tree::NodeId>,
    /// And that parent's parent.
    pub grandparent: Option<ego_tree::NodeId>,
}

/// Kinds of element a block can start from.
const KINDS: usize = 9;

/// The kind of element `tag` is, for [`Context::kind`].
pub fn kind(tag: &str) -> u8 {
    match tag {
        "p" => 1,
        "div" | "section" | "article" | "main" | "header" | "form" | "center" | "details"
        | "summary" | "fieldset" | "address" => 2,
        "li" | "ul" | "ol" | "dl" | "dt" | "dd" => 3,
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => 4,
        "table" | "tr" | "td" | "th" => 5,
        "blockquote" => 6,
        "pre" | "code" => 7,
        "figure" | "figcaption" => 8,
        _ => 0,
    }
}

/// Groups of words that class names and ids use, matched inside the name: what a block's
/// surroundings call themselves.
const GROUPS: [&[&str]; 7] = [
    // Pictures and their captions.
    &[
        "caption", "credit", "photo", "image", "media", "gallery", "figure",
    ],
    // Other articles.
    &[
        "teaser",
        "related",
        "recommend",
        "more",
        "read",
        "latest",
        "popular",
        "card",
        "list",
    ],
    // Actions on the page.
    &[
        "share", "social", "print", "button", "btn", "follow", "like", "rating", "vote",
    ],
    // About the article.
    &[
        "meta",
        "info",
        "date",
        "time",
        "author",
        "byline",
        "tag",
        "categor",
        "source",
        "copyright",
    ],
    // Asking something of the reader.
    &[
        "subscribe",
        "newsletter",
        "promo",
        "sponsor",
        "signup",
        "banner",
        "cta",
        "box",
        "ad-",
    ],
    // Readers' comments.
    &["comment", "reply", "respond", "discussion", "review"],
    // The article's own words.
    &[
        "content", "article", "body", "text", "entry", "post", "story", "prose",
    ],
];

/// The [`GROUPS`] that `el`'s class names and id mention, one bit each.
pub fn words(el: ElementRef<'_>) -> u8 {
    let v = el.value();
    let mut bits = 0u8;
    let mut lower = String::new();
    for name in v.id().into_iter().chain(v.classes()) {
        lower.clear();
        lower.extend(name.chars().take(64).map(|c| c.to_ascii_lowercase()));
        for (i, group) in GROUPS.iter().enumerate() {
            if group.iter().any(|w| lower.contains(w)) {
                bits |= 1 << i;
            }
        }
    }
    bits
}

/// Shallow measurements of one block's text.
#[derive(Debug, Clone, Copy, Default)]
struct Shallow {
    /// Characters, link markers read as their text and whitespace runs as one.
    chars: usize,
    link_chars: usize,
    links: usize,
    ends_sentence: bool,
    ends_colon: bool,
    heading: bool,
    list: bool,
    quote: bool,
    table: bool,
    code: bool,
    words: usize,
    word_chars: usize,
    upper: usize,
    digits: usize,
    sentences: usize,
    copyright: bool,
    at: bool,
}

/// The running state of [`Shallow::of`] over a block's pieces.
struct Scan {
    in_space: bool,
    /// The last character was a CJK full stop.
    after_cjk_stop: bool,
    /// The last character was a full stop, question or exclamation mark.
    after_stop: bool,
}

impl Scan {
    /// Counts `piece` into `s`; `link`: it is a link's text. ASCII is counted byte by byte,
    /// other characters decoded.
    fn run(&mut self, piece: &str, link: bool, s: &mut Shallow) {
        // Runs of ASCII byte by byte, the characters between them one by one.
        let mut rest = piece;
        while !rest.is_empty() {
            let ascii = rest
                .bytes()
                .position(|b| !b.is_ascii())
                .unwrap_or(rest.len());
            self.ascii(&rest.as_bytes()[..ascii], link, s);
            rest = &rest[ascii..];
            if let Some(c) = rest.chars().next() {
                self.char(c, link, s);
                rest = &rest[c.len_utf8()..];
            }
        }
    }

    fn ascii(&mut self, bytes: &[u8], link: bool, s: &mut Shallow) {
        // Branch-free, in locals: spaces in text are too irregular for a branch predictor.
        let (mut chars, mut spaces, mut words) = (0usize, 0usize, 0usize);
        let (mut upper, mut digits, mut sentences) = (0usize, 0usize, 0usize);
        let (mut in_space, mut after_stop, mut at) = (self.in_space, self.after_stop, false);
        for &b in bytes {
            let space = b.is_ascii_whitespace();
            spaces += usize::from(space && !in_space);
            words += usize::from(!space && in_space);
            chars += usize::from(!space);
            upper += usize::from(b.is_ascii_uppercase());
            digits += usize::from(b.is_ascii_digit());
            at |= b == b'@';
            sentences += usize::from(space && after_stop);
            after_stop = matches!(b, b'.' | b'!' | b'?');
            in_space = space;
        }
        (self.in_space, self.after_stop, self.after_cjk_stop) = (in_space, after_stop, false);
        s.at |= at;
        s.chars += chars + spaces;
        s.word_chars += chars;
        s.words += words;
        s.upper += upper;
        s.digits += digits;
        s.sentences += sentences;
        if link {
            s.link_chars += chars + spaces;
        }
    }

    #[inline]
    fn char(&mut self, c: char, link: bool, s: &mut Shallow) {
        let space = c.is_whitespace();
        // A sentence ends at a stop before a space, or at a CJK full stop before anything.
        s.sentences += usize::from((space && self.after_stop) || (!space && self.after_cjk_stop));
        self.after_stop = matches!(c, '.' | '!' | '?');
        self.after_cjk_stop = matches!(c, '。' | '！' | '？');
        if space {
            if !self.in_space {
                s.chars += 1;
                s.link_chars += usize::from(link);
            }
            self.in_space = true;
            return;
        }
        s.words += usize::from(self.in_space);
        self.in_space = false;
        s.chars += 1;
        s.word_chars += 1;
        s.link_chars += usize::from(link);
        s.upper += usize::from(c.is_uppercase());
        s.digits += usize::from(c.is_ascii_digit());
        s.at |= c == '@';
        s.copyright |= c == '©';
    }
}

impl Shallow {
    fn of(text: &str) -> Self {
        let text = text.trim();
        let mut s = Shallow {
            heading: text.starts_with('#'),
            list: text.starts_with("- ") || {
                let digits = text.bytes().take_while(u8::is_ascii_digit).count();
                digits > 0 && text[digits..].starts_with(". ")
            },
            quote: text.starts_with("> "),
            table: text.starts_with("| "),
            code: text.starts_with("```"),
            ..Shallow::default()
        };
        let mut scan = Scan {
            in_space: true,
            after_cjk_stop: false,
            after_stop: false,
        };
        // Link markers `【id†text†host】` count as their text, and as link text.
        let mut rest = text;
        while let Some(open) = rest.find('【') {
            scan.run(&rest[..open], false, &mut s);
            let inner = &rest[open + '【'.len_utf8()..];
            let Some(close) = inner.find('】') else {
                rest = inner;
                continue;
            };
            let mut parts = inner[..close].split('†');
            let _id = parts.next();
            if let Some(anchor) = parts.next() {
                s.links += 1;
                scan.run(anchor, true, &mut s);
            }
            rest = &inner[close + '】'.len_utf8()..];
        }
        scan.run(rest, false, &mut s);
        let end = text.trim_end_matches(|c: char| {
            matches!(c, '"' | '“' | '”' | '»' | '«' | ')' | '\'' | '’')
        });
        s.ends_sentence = end.ends_with(['.', '!', '?', '。', '！', '？']);
        s.ends_colon = end.ends_with([':', '：']);
        s.sentences += usize::from(s.ends_sentence);
        s
    }

    fn link_density(&self) -> f32 {
        if self.chars == 0 {
            0.0
        } else {
            self.link_chars as f32 / self.chars as f32
        }
    }

    /// Reads as a paragraph of prose on its own.
    fn prose(&self) -> bool {
        !self.heading
            && self.link_density() <= 0.5
            && (self.chars >= 100 || (self.chars >= 30 && self.ends_sentence))
    }

    /// Only image markers, or nothing.
    fn images_only(&self, text: &str) -> bool {
        let mut rest = text.trim();
        while let Some(after) = rest.strip_prefix("[Image ") {
            let Some(close) = after.find(']') else {
                return false;
            };
            rest = after[close + 1..].trim_start();
        }
        rest.is_empty()
    }
}

/// ln(1 + x), from a table for the small counts most features are.
fn ln(x: usize) -> f32 {
    static TABLE: std::sync::LazyLock<[f32; 1024]> =
        std::sync::LazyLock::new(|| std::array::from_fn(|i| (i as f32).ln_1p()));
    match TABLE.get(x) {
        Some(v) => *v,
        None => (x as f32).ln_1p(),
    }
}

fn flag(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// Fills a feature vector after its first `BASE` values.
struct Filler {
    values: [f32; FEATURES],
    at: usize,
}

/// Features computed from the text alone, first in the vector.
const BASE: usize = 37;

impl Filler {
    fn new(base: [f32; BASE]) -> Self {
        let mut values = [0.0; FEATURES];
        values[..BASE].copy_from_slice(&base);
        Filler { values, at: BASE }
    }

    fn push(&mut self, v: f32) {
        if let Some(slot) = self.values.get_mut(self.at) {
            *slot = v;
        }
        self.at += 1;
    }

    fn done(self) -> [f32; FEATURES] {
        // A mismatch is a mistake in `features`, found by any call of it.
        assert_eq!(self.at, FEATURES, "features() must fill every value");
        self.values
    }
}

/// The features of every block, in order.
pub fn features(blocks: &[Block<'_>]) -> Vec<[f32; FEATURES]> {
    let mut out = Vec::with_capacity(blocks.len());
    each_features(blocks, |f| out.push(*f));
    out
}

/// What the blocks sharing a parent (or grandparent) element hold together: prose characters,
/// all characters, blocks.
struct Groups(foldhash::HashMap<(bool, ego_tree::NodeId), (usize, usize, usize)>);

impl Groups {
    fn of(blocks: &[Block<'_>], shallow: &[Shallow], prose: &[bool]) -> Self {
        let mut groups: foldhash::HashMap<(bool, ego_tree::NodeId), (usize, usize, usize)> =
            foldhash::HashMap::with_capacity_and_hasher(blocks.len(), Default::default());
        for ((block, s), p) in blocks.iter().zip(shallow).zip(prose) {
            for key in [
                block.context.parent.map(|n| (false, n)),
                block.context.grandparent.map(|n| (true, n)),
            ]
            .into_iter()
            .flatten()
            {
                let g = groups.entry(key).or_default();
                g.0 += if *p { s.chars } else { 0 };
                g.1 += s.chars;
                g.2 += 1;
            }
        }
        Groups(groups)
    }

    /// The share of prose among the other blocks of the group, and how many they are.
    fn share(&self, key: Option<(bool, ego_tree::NodeId)>, s: &Shallow, p: bool) -> [f32; 2] {
        let Some(&(prose, chars, count)) = key.and_then(|k| self.0.get(&k)) else {
            return [0.0, 0.0];
        };
        let prose = prose - if p { s.chars } else { 0 };
        let chars = chars - s.chars;
        [prose as f32 / chars.max(1) as f32, ln(count - 1)]
    }
}

/// Calls `visit` with the features of every block, in order.
fn each_features(blocks: &[Block<'_>], mut visit: impl FnMut(&[f32; FEATURES])) {
    let shallow: Vec<Shallow> = blocks.iter().map(|b| Shallow::of(b.text)).collect();
    let prose: Vec<bool> = shallow.iter().map(Shallow::prose).collect();
    let total: usize = shallow.iter().map(|s| s.chars).sum();
    let prose_total = prose.iter().filter(|p| **p).count();
    let first_prose = prose.iter().position(|p| *p);
    let last_prose = prose.iter().rposition(|p| *p);
    let groups = Groups::of(blocks, &shallow, &prose);
    let mut before = 0usize;
    let mut prose_before = 0usize;
    for (i, (block, s)) in blocks.iter().zip(&shallow).enumerate() {
        let prev = i.checked_sub(1).map(|p| (&shallow[p], prose[p]));
        let next = shallow.get(i + 1).map(|n| (n, prose[i + 1]));
        let side = |n: Option<(&Shallow, bool)>| match n {
            Some((n, p)) => [1.0, ln(n.chars), n.link_density(), flag(n.heading), flag(p)],
            None => [0.0; 5],
        };
        let [has_prev, prev_len, prev_links, prev_heading, prev_prose] = side(prev);
        let [has_next, next_len, next_links, next_heading, next_prose] = side(next);
        let nonspace = s.word_chars.max(1) as f32;
        let prose_after = prose_total - prose_before - usize::from(prose[i]);
        let f = [
            ln(s.chars),
            s.link_density(),
            ln(s.links),
            flag(s.ends_sentence),
            flag(s.heading),
            flag(s.list),
            flag(s.quote),
            flag(s.table),
            flag(s.code),
            flag(s.images_only(block.text)),
            i as f32 / blocks.len() as f32,
            before as f32 / total.max(1) as f32,
            (total - before - s.chars) as f32 / total.max(1) as f32,
            flag(last_prose.is_some_and(|l| i > l)),
            flag(first_prose.is_some_and(|f| i < f)),
            ln(prose_after),
            ln(prose_before),
            (s.word_chars as f32 / s.words.max(1) as f32).min(20.0),
            s.upper as f32 / nonspace,
            s.digits as f32 / nonspace,
            flag(s.ends_colon),
            flag(s.copyright),
            flag(s.at),
            ln(s.sentences),
            has_prev,
            prev_len,
            prev_links,
            prev_heading,
            has_next,
            next_len,
            next_links,
            next_heading,
            flag(prose[i]),
            prev_prose,
            next_prose,
            ln(total),
            flag(block.context.in_top),
        ];
        let mut f = Filler::new(f);
        for k in 0..KINDS {
            f.push(flag(usize::from(block.context.kind) == k));
        }
        for g in 0..GROUPS.len() {
            f.push(flag(block.context.words & (1 << g) != 0));
        }
        f.push(ln(usize::from(block.context.depth)));
        for v in groups.share(block.context.parent.map(|n| (false, n)), s, prose[i]) {
            f.push(v);
        }
        for v in groups.share(block.context.grandparent.map(|n| (true, n)), s, prose[i]) {
            f.push(v);
        }
        f.push(flag(block.text.trim_end().ends_with(['?', '？'])));
        f.push(flag(block.context.rescued));
        let f = f.done();
        visit(&f);
        before += s.chars;
        prose_before += usize::from(prose[i]);
    }
}

/// A heading inside the article goes with the paragraph of prose it heads.
fn follow_headings(blocks: &[Block<'_>], keep: &mut [bool]) {
    for i in 0..blocks.len().saturating_sub(1) {
        let (this, next) = (&blocks[i], &blocks[i + 1]);
        if keep[i] || !keep[i + 1] || !this.context.in_top || !next.context.in_top {
            continue;
        }
        let heading = Shallow::of(this.text);
        if heading.heading && heading.links == 0 && Shallow::of(next.text).prose() {
            keep[i] = true;
        }
    }
}

/// A logistic model over standardised features.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Subtracted from each feature...
    pub mean: [f32; FEATURES],
    /// ...which is then divided by this.
    pub scale: [f32; FEATURES],
    /// The weight of each standardised feature.
    pub weights: [f32; FEATURES],
    /// The intercept.
    pub bias: f32,
    /// Blocks whose probability of being content is below this are left out.
    pub threshold: f32,
    /// The L2 penalty it was fitted with.
    pub l2: f32,
}

impl Model {
    /// The probability that a block with features `f` is content.
    pub fn probability(&self, f: &[f32; FEATURES]) -> f32 {
        let mut z = self.bias;
        for (k, x) in f.iter().enumerate() {
            z += self.weights[k] * (x - self.mean[k]) / self.scale[k];
        }
        1.0 / (1.0 + (-z).exp())
    }

    /// Which of `blocks` to keep.
    pub fn keep(&self, blocks: &[Block<'_>]) -> Vec<bool> {
        // The standardisation folded into the weights once: w·(x - m)/s = (w/s)·x - w·m/s.
        let weights: [f32; FEATURES] = std::array::from_fn(|k| self.weights[k] / self.scale[k]);
        let bias = self.bias
            - (0..FEATURES)
                .map(|k| weights[k] * self.mean[k])
                .sum::<f32>();
        // The threshold on the probability, as one on the logit.
        let t = self.threshold.clamp(1e-6, 1.0 - 1e-6);
        let logit = (t / (1.0 - t)).ln();
        let mut keep = Vec::with_capacity(blocks.len());
        each_features(blocks, |f| {
            keep.push(bias + weights.iter().zip(f).map(|(w, x)| w * x).sum::<f32>() >= logit);
        });
        follow_headings(blocks, &mut keep);
        keep
    }

    /// Fits a model to labelled blocks (true: content) by gradient descent on the log loss
    /// with an L2 penalty of `l2` per weight.
    pub fn fit(samples: &[([f32; FEATURES], bool)], l2: f32, threshold: f32) -> Model {
        let n = samples.len().max(1) as f32;
        let mut mean = [0.0f32; FEATURES];
        let mut scale = [0.0f32; FEATURES];
        for (f, _) in samples {
            for (m, x) in mean.iter_mut().zip(f) {
                *m += x / n;
            }
        }
        for (f, _) in samples {
            for ((s, m), x) in scale.iter_mut().zip(&mean).zip(f) {
                *s += (x - m).powi(2) / n;
            }
        }
        for s in &mut scale {
            *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let x: Vec<[f32; FEATURES]> = samples
            .iter()
            .map(|(f, _)| std::array::from_fn(|k| (f[k] - mean[k]) / scale[k]))
            .collect();
        let mut w = [0.0f32; FEATURES];
        let mut b = 0.0f32;
        // Plain gradient descent converges here: the features are standardised and few.
        for _ in 0..3_000 {
            let mut gw = [0.0f32; FEATURES];
            let mut gb = 0.0f32;
            for (xi, (_, y)) in x.iter().zip(samples) {
                let z = b + w.iter().zip(xi).map(|(w, x)| w * x).sum::<f32>();
                let err = 1.0 / (1.0 + (-z).exp()) - flag(*y);
                for (g, x) in gw.iter_mut().zip(xi) {
                    *g += err * x / n;
                }
                gb += err / n;
            }
            for (w, g) in w.iter_mut().zip(&gw) {
                *w -= 0.5 * (g + l2 * *w);
            }
            b -= 0.5 * gb;
        }
        Model {
            mean,
            scale,
            weights: w,
            bias: b,
            threshold,
            l2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::MODEL;

    fn block(text: &str) -> Block<'_> {
        Block {
            text,
            context: Context {
                in_top: true,
                kind: 1,
                ..Context::default()
            },
        }
    }

    #[test]
    fn link_markers_count_as_link_text() {
        let s = Shallow::of("Read 【3†the whole report†example.org】 today.");
        assert_eq!(s.links, 1);
        assert_eq!(s.chars, "Read the whole report today.".len());
        assert_eq!(s.link_chars, "the whole report".len());
        assert!(s.ends_sentence);
        assert!(Shallow::of("1. first step").list && Shallow::of("- item").list);
        assert!(Shallow::of("[Image 1] [Image 2]").images_only("[Image 1] [Image 2]"));
        // An unclosed marker is text, not a link.
        assert_eq!(Shallow::of("a 【b").links, 0);
    }

    #[test]
    fn position_features_see_the_prose_around_a_block() {
        let prose = "A paragraph of the story, long enough to read as prose on its own, \
                     with a full stop at the end of it.";
        let blocks = [
            block(prose),
            block("Share this"),
            block(prose),
            block("【1†Subscribe†example.org】"),
        ];
        let f = features(&blocks);
        assert_eq!(f.len(), 4);
        // "after the last prose block": only the last one.
        assert_eq!(
            f.iter().map(|f| f[13]).collect::<Vec<_>>(),
            [0.0, 0.0, 0.0, 1.0]
        );
        // Its link density is 1, the prose's 0.
        assert_eq!((f[3][1], f[0][1]), (1.0, 0.0));
    }

    #[test]
    fn fitting_separates_what_the_features_separate() {
        // Content is long and has no links; boilerplate is short and all links.
        let mut samples = Vec::new();
        for i in 0..40 {
            let mut content = [0.0; FEATURES];
            content[0] = 5.0 + (i % 5) as f32 * 0.1;
            let mut boilerplate = [0.0; FEATURES];
            boilerplate[0] = 2.0 + (i % 3) as f32 * 0.1;
            boilerplate[1] = 1.0;
            samples.push((content, true));
            samples.push((boilerplate, false));
        }
        let model = Model::fit(&samples, 0.01, 0.5);
        for (f, content) in &samples {
            assert_eq!(model.probability(f) >= 0.5, *content);
        }
    }

    #[test]
    fn a_heading_goes_with_the_paragraph_it_heads() {
        // A model that leaves out every heading and keeps everything else.
        let mut weights = [0.0; FEATURES];
        weights[4] = -10.0;
        let model = Model {
            mean: [0.0; FEATURES],
            scale: [1.0; FEATURES],
            weights,
            bias: 5.0,
            threshold: 0.5,
            l2: 0.0,
        };
        let prose = "A paragraph of the story, long enough to read as prose on its own, \
                     with a full stop at the end of it.";
        let beside = Block {
            text: "## Related",
            context: Context {
                in_top: false,
                ..Context::default()
            },
        };
        let blocks = [
            block("## Conclusion"),
            block(prose),
            block("## Links"),
            block("【1†More†example.org】"),
            beside,
            block(prose),
        ];
        // Kept: the heading before prose in the article; not the one before a line of links,
        // nor one beside the article.
        assert_eq!(model.keep(&blocks), [true, true, false, true, false, true]);
    }

    #[test]
    fn the_shipped_model_is_well_formed() {
        assert!(MODEL.scale.iter().all(|s| *s > 0.0));
        assert!((0.0..1.0).contains(&MODEL.threshold));
        assert!(MODEL.weights.iter().any(|w| *w != 0.0));
    }
}
