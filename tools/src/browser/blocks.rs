//! The last step of reader mode: each block of the article's text (a paragraph, heading, list,
//! table, quote or code block, as written) is weighed by a small logistic model and left out
//! when it reads as boilerplate: the newsletter box after the story, "read also" lines, photo
//! credits, share prompts.
//!
//! The model sees only shallow, language-neutral evidence: the block's length, link density,
//! punctuation and shape, where it sits among the blocks that read as prose (boilerplate
//! gathers after the last paragraph of the story), its neighbours, and whether it lies in the
//! element that scored best as the article or beside it. Its weights were fitted by
//! `cargo bench -p glm-tools --bench extract -- --train` on half of a corpus of real pages; the
//! bench scores the other half apart, so the figure it prints for that half is one the weights
//! never saw.

use scraper::ElementRef;

/// Features per block.
pub const FEATURES: usize = 37 + KINDS + GROUPS.len() + 1;

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
    /// What kind of element started the block ([`kind`]).
    pub kind: u8,
    /// The word groups ([`GROUPS`]) in the class names and ids of the elements it is inside,
    /// below the path to the article, one bit each.
    pub words: u8,
    /// Elements it is inside.
    pub depth: u16,
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

impl Shallow {
    fn of(text: &str) -> Self {
        let text = text.trim();
        let mut s = Shallow {
            heading: text.starts_with('#'),
            list: text.starts_with("- ")
                || text
                    .split_once(". ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
            quote: text.starts_with("> "),
            table: text.starts_with("| "),
            code: text.starts_with("```"),
            ..Shallow::default()
        };
        let mut last = ' ';
        let mut in_space = true;
        let mut visit = |c: char, link: bool, s: &mut Shallow| {
            if c.is_whitespace() {
                if !in_space {
                    s.chars += 1;
                    if link {
                        s.link_chars += 1;
                    }
                }
                in_space = true;
                return;
            }
            if in_space {
                s.words += 1;
            }
            in_space = false;
            s.chars += 1;
            s.word_chars += 1;
            if link {
                s.link_chars += 1;
            }
            s.upper += usize::from(c.is_uppercase());
            s.digits += usize::from(c.is_ascii_digit());
            s.copyright |= c == '©';
            s.at |= c == '@';
            if matches!(last, '.' | '!' | '?' | '。' | '！' | '？') {
                s.sentences += 1;
            }
            last = c;
        };
        // Link markers `【id†text†host】` count as their text, and as link text.
        let mut rest = text;
        while let Some(open) = rest.find('【') {
            for c in rest[..open].chars() {
                visit(c, false, &mut s);
            }
            let inner = &rest[open + '【'.len_utf8()..];
            let Some(close) = inner.find('】') else {
                rest = inner;
                continue;
            };
            let mut parts = inner[..close].split('†');
            let _id = parts.next();
            if let Some(anchor) = parts.next() {
                s.links += 1;
                for c in anchor.chars() {
                    visit(c, true, &mut s);
                }
            }
            rest = &inner[close + '】'.len_utf8()..];
        }
        for c in rest.chars() {
            visit(c, false, &mut s);
        }
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

fn ln(x: usize) -> f32 {
    (x as f32).ln_1p()
}

fn flag(b: bool) -> f32 {
    if b { 1.0 } else { 0.0 }
}

/// The features of every block, in order.
pub fn features(blocks: &[Block<'_>]) -> Vec<[f32; FEATURES]> {
    let shallow: Vec<Shallow> = blocks.iter().map(|b| Shallow::of(b.text)).collect();
    let prose: Vec<bool> = shallow.iter().map(Shallow::prose).collect();
    let total: usize = shallow.iter().map(|s| s.chars).sum();
    let prose_total = prose.iter().filter(|p| **p).count();
    let first_prose = prose.iter().position(|p| *p);
    let last_prose = prose.iter().rposition(|p| *p);
    let mut before = 0usize;
    let mut prose_before = 0usize;
    let mut out = Vec::with_capacity(blocks.len());
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
        let mut f = f.to_vec();
        f.extend((0..KINDS).map(|k| flag(usize::from(block.context.kind) == k)));
        f.extend((0..GROUPS.len()).map(|g| flag(block.context.words & (1 << g) != 0)));
        f.push(ln(usize::from(block.context.depth)));
        let f: [f32; FEATURES] = f.try_into().unwrap_or([0.0; FEATURES]);
        out.push(f);
        before += s.chars;
        prose_before += usize::from(prose[i]);
    }
    out
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
        features(blocks)
            .iter()
            .map(|f| self.probability(f) >= self.threshold)
            .collect()
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
        }
    }
}

/// The fitted model (see the module's notes).
pub const MODEL: Model = Model {
    mean: [
        5.5389686,
        0.03840328,
        0.19331527,
        0.75758,
        0.0738151,
        0.032634027,
        0.019425016,
        0.008547008,
        0.006993007,
        0.0,
        0.40996093,
        0.37751374,
        0.4982722,
        0.02486402,
        0.03729604,
        1.6783785,
        1.3343341,
        6.0169854,
        0.062764995,
        0.013327258,
        0.02564102,
        0.006993007,
        0.012432011,
        1.2777662,
        0.9137582,
        4.2527275,
        0.042067077,
        0.22533081,
        0.888894,
        4.167512,
        0.044099115,
        0.15540026,
        0.84227365,
        0.50583,
        0.5345792,
        8.332537,
        0.85470575,
        0.0,
        0.80575436,
        0.08469308,
        0.0015540016,
        0.08702408,
        0.008547008,
        0.005439006,
        0.006993007,
        0.0,
        0.020979017,
        0.029526023,
        0.010101009,
        0.021756018,
        0.02408702,
        0.006993007,
        0.23387788,
        2.4244204,
    ],
    scale: [
        1.0776389,
        0.13805632,
        0.42581147,
        0.4285486,
        0.2614683,
        0.17767586,
        0.13801245,
        0.0920544,
        0.08333223,
        1.0,
        0.31095934,
        0.3373035,
        0.34959927,
        0.15571135,
        0.18948609,
        1.1637247,
        1.0401628,
        1.66465,
        0.051323004,
        0.03486202,
        0.1580619,
        0.083331674,
        0.11080394,
        0.7553669,
        0.2807287,
        1.8929452,
        0.16386004,
        0.41780117,
        0.31426856,
        2.0446315,
        0.16675086,
        0.3622829,
        0.36448693,
        0.4999683,
        0.4988006,
        0.9627057,
        0.35240436,
        1.0,
        0.39562076,
        0.278424,
        0.03939006,
        0.28187194,
        0.0920544,
        0.07354808,
        0.08333223,
        1.0,
        0.14331475,
        0.16927628,
        0.0999943,
        0.14588359,
        0.15331921,
        0.08333206,
        0.42329258,
        0.25568292,
    ],
    weights: [
        0.4185638,
        -0.255555,
        -0.25314075,
        0.38928065,
        0.38616368,
        0.50778,
        -0.072345585,
        0.24117175,
        0.191187,
        0.0,
        0.54979,
        -1.0699062,
        -0.44111678,
        -0.22830532,
        -0.1635006,
        0.07106895,
        -0.48696974,
        -0.07256963,
        -0.19626687,
        -0.022831623,
        -0.007896534,
        -0.44414943,
        -0.03653297,
        0.23566672,
        0.06786804,
        0.042274866,
        -0.16455415,
        0.12162734,
        0.25512648,
        0.2337917,
        -0.15287478,
        -0.31589034,
        0.10538917,
        0.008458486,
        -0.32311508,
        -0.21160254,
        0.38964012,
        0.0,
        0.20679024,
        -0.2547406,
        0.12254942,
        -0.23077078,
        0.24117175,
        0.1522769,
        0.191187,
        0.0,
        -0.24797183,
        0.07307552,
        0.0108885225,
        -0.11244424,
        -0.28318533,
        -0.059346575,
        0.13604312,
        -0.10905312,
    ],
    bias: 3.0411,
    threshold: 0.6,
};

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_shipped_model_is_well_formed() {
        assert!(MODEL.scale.iter().all(|s| *s > 0.0));
        assert!((0.0..1.0).contains(&MODEL.threshold));
        assert!(MODEL.weights.iter().any(|w| *w != 0.0));
    }
}
