//! The last step of reader mode: each block of the article's text (a paragraph, heading, list,
//! table, quote or code block, as written) is weighed by a small logistic model and left out
//! when it reads as boilerplate: the newsletter box after the story, "read also" lines, photo
//! credits, share prompts.
//!
//! The model sees only shallow evidence: the block's length, link density, punctuation and
//! shape, where it sits among the blocks that read as prose (boilerplate gathers after the last
//! paragraph of the story), its neighbours, the kind of element it came from, what the class
//! names around it say, the blocks that share its parent, whether it names the site, and
//! whether it lies in the element that scored best as the article or beside it. Its weights
//! were fitted by `cargo bench -p glm-tools --bench extract -- --train` to the labelled blocks
//! of a corpus of real pages; the bench also scores each half of that corpus with a model fitted
//! to the other half alone, which is the figure to expect on pages the weights never saw.

use scraper::ElementRef;

/// Features per block.
pub const FEATURES: usize = 37 + KINDS + GROUPS.len() + 1 + 4 + 2;

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
pub fn features(blocks: &[Block<'_>], site: &str) -> Vec<[f32; FEATURES]> {
    let shallow: Vec<Shallow> = blocks.iter().map(|b| Shallow::of(b.text)).collect();
    let prose: Vec<bool> = shallow.iter().map(Shallow::prose).collect();
    let total: usize = shallow.iter().map(|s| s.chars).sum();
    let prose_total = prose.iter().filter(|p| **p).count();
    let first_prose = prose.iter().position(|p| *p);
    let last_prose = prose.iter().rposition(|p| *p);
    // What the blocks sharing a parent (or grandparent) element hold together: prose
    // characters, all characters, blocks.
    let mut groups: foldhash::HashMap<(bool, ego_tree::NodeId), (usize, usize, usize)> =
        foldhash::HashMap::default();
    for ((block, s), p) in blocks.iter().zip(&shallow).zip(&prose) {
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
    // The share of prose among the other blocks of the group, and how many they are.
    let group = |key: Option<(bool, ego_tree::NodeId)>, s: &Shallow, p: bool| {
        let Some(&(prose, chars, count)) = key.and_then(|k| groups.get(&k)) else {
            return [0.0, 0.0];
        };
        let prose = prose - if p { s.chars } else { 0 };
        let chars = chars - s.chars;
        [prose as f32 / chars.max(1) as f32, ln(count - 1)]
    };
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
        f.extend(group(block.context.parent.map(|n| (false, n)), s, prose[i]));
        f.extend(group(
            block.context.grandparent.map(|n| (true, n)),
            s,
            prose[i],
        ));
        f.push(flag(block.text.trim_end().ends_with(['?', '？'])));
        f.push(flag(mentions(block.text, site)));
        // A mismatch is a mistake in this function, found by any call.
        let Ok(f) = <[f32; FEATURES]>::try_from(f) else {
            unreachable!("features() fills exactly FEATURES values");
        };
        out.push(f);
        before += s.chars;
        prose_before += usize::from(prose[i]);
    }
    out
}

/// The name a site goes by, from its host: the label before the public suffix, hyphens
/// dropped, lowercase (`www.jamaica-gleaner.com` -> `jamaicagleaner`); empty when too short to
/// mean anything.
pub fn site_name(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    // Second-level labels that are part of a country's suffix (`co.uk`, `com.au`).
    const SUFFIXES: [&str; 8] = ["co", "com", "org", "net", "gov", "ac", "edu", "or"];
    let mut i = labels.len().saturating_sub(2);
    if i > 0 && labels.len() >= 3 && SUFFIXES.contains(&labels[i]) {
        i -= 1;
    }
    let name: String = labels
        .get(i)
        .map(|l| {
            l.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.len() >= 4 { name } else { String::new() }
}

/// Whether `text` names the site (letters and digits compared, case ignored).
fn mentions(text: &str, site: &str) -> bool {
    if site.is_empty() {
        return false;
    }
    let squeezed: String = text
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squeezed.contains(site)
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
    pub fn keep(&self, blocks: &[Block<'_>], site: &str) -> Vec<bool> {
        features(blocks, site)
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
            l2,
        }
    }
}

/// The fitted model (see the module's notes).
pub const MODEL: Model = Model {
    mean: [
        5.5261726,
        0.034407925,
        0.18981825,
        0.75669557,
        0.073899426,
        0.043238968,
        0.016509429,
        0.010613207,
        0.005110063,
        0.0,
        0.41255248,
        0.38237286,
        0.49640155,
        0.031053443,
        0.0361635,
        1.6553164,
        1.3323468,
        6.001163,
        0.066637956,
        0.013374116,
        0.031446524,
        0.005896227,
        0.010220125,
        1.2725104,
        0.9158981,
        4.248523,
        0.03859543,
        0.21344298,
        0.89152634,
        4.180743,
        0.048781075,
        0.14819208,
        0.8400312,
        0.5031508,
        0.53892225,
        8.330309,
        0.8396381,
        0.0007861635,
        0.80504596,
        0.085298896,
        0.0011792453,
        0.08687124,
        0.011792451,
        0.0031446537,
        0.005110063,
        0.0007861635,
        0.020833325,
        0.031839605,
        0.009433962,
        0.02476414,
        0.02240565,
        0.005896227,
        0.23702765,
        2.428658,
        0.72300947,
        1.8793763,
        0.7828017,
        2.068723,
        0.020833325,
        0.1584121,
    ],
    scale: [
        1.0911772,
        0.12882377,
        0.42328236,
        0.42908803,
        0.2616042,
        0.20339397,
        0.1274239,
        0.102473386,
        0.071301535,
        1.0,
        0.31174833,
        0.33989298,
        0.3502872,
        0.1734649,
        0.186697,
        1.1332289,
        1.0322819,
        1.5961783,
        0.07118557,
        0.037662525,
        0.17452286,
        0.07656014,
        0.10057575,
        0.76051307,
        0.2775644,
        1.9108186,
        0.15827626,
        0.409742,
        0.3110035,
        2.0268424,
        0.17710535,
        0.35529247,
        0.36658946,
        0.49998817,
        0.49848655,
        0.9182189,
        0.36695528,
        0.028027372,
        0.39617747,
        0.27932787,
        0.034320008,
        0.28164378,
        0.107951716,
        0.055990335,
        0.071301535,
        0.02802741,
        0.14282699,
        0.17557374,
        0.096669756,
        0.15540369,
        0.1479996,
        0.07655939,
        0.42525786,
        0.26997557,
        0.40688768,
        1.1606418,
        0.3605628,
        1.0673324,
        0.14282666,
        0.3651277,
    ],
    weights: [
        0.7940278,
        -0.3868537,
        -0.1434588,
        0.3397456,
        0.43735904,
        0.4266562,
        0.11654908,
        0.19301817,
        0.19992732,
        0.0,
        0.17231433,
        -1.040504,
        -0.23441978,
        -0.17725253,
        -0.2534953,
        -0.08004321,
        -0.26482058,
        -0.12886468,
        -0.268908,
        0.050665688,
        -0.032520168,
        -0.2526002,
        -0.1295601,
        -0.1209711,
        0.1959788,
        -0.059493802,
        -0.22295049,
        0.12475355,
        0.20066,
        0.18423946,
        -0.14705059,
        -0.37080556,
        -0.068008296,
        0.07537252,
        -0.2555748,
        -0.37873024,
        0.19543414,
        -0.13306566,
        0.2392774,
        -0.16518997,
        0.120290026,
        -0.380449,
        0.37193716,
        0.07601751,
        0.19992732,
        -0.02053491,
        -0.20915812,
        -0.009703546,
        -0.07193497,
        -0.09116419,
        -0.32738033,
        -0.1529588,
        0.2898537,
        -0.0022964843,
        0.20330344,
        -0.038892608,
        -0.13044938,
        0.41646048,
        -0.004188685,
        -0.090525515,
    ],
    bias: 3.1717525,
    threshold: 0.5,
    l2: 0.001,
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
        let f = features(&blocks, "");
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
    fn site_names() {
        assert_eq!(site_name("www.jamaica-gleaner.com"), "jamaicagleaner");
        assert_eq!(site_name("www.theguardian.co.uk"), "theguardian");
        assert_eq!(site_name("security.googleblog.com"), "googleblog");
        assert_eq!(site_name("x.io"), "");
        assert_eq!(site_name("127.0.0.1"), "");
        assert!(mentions(
            "Follow The Gleaner: @JamaicaGleaner",
            "jamaicagleaner"
        ));
        assert!(!mentions("anything", ""));
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
