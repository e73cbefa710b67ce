//! What the model reads, measured: reader-mode extraction over a corpus of real pages, scored
//! with the corpus's snippets that must and must not be seen, and extraction speed.
//!
//!     cargo bench -p glm-tools --bench extract [-- --view CHARS] [--corpus DIR]
//!         [--speed-only | --scores-only | --train] [--folds K]
//!
//! The corpus is `readable-pages.tar.xz` (see `shared/corpora/readable-pages/README.md`); it is
//! looked for in `GLM_AGENT_CORPORA`, then in `../shared/corpora` beside the workspace, and
//! unpacked into `<cache>/corpora/readable-pages` (the cache folder is glm-agent's own).
//!
//! Scoring, as the corpus's README gives it: a `with` snippet in the page text is a true
//! positive, missing a false negative; a `without` snippet present is a false positive. Text is
//! compared with whitespace collapsed and the browser's markup taken out (link markers
//! `【id†text†host】` read as `text`; heading, list and quote marks, table pipes, backticks). The
//! page text is what `open_url` shows the model below its header: the content cut to the view,
//! and the page's other links.
//!
//! Reader mode's last step is a block model (`tools/src/browser/blocks.rs`) fitted to this
//! corpus's labelled blocks, so the bench also prints a cross-validated score: the corpus in two
//! fixed halves (by file name), each read with a model fitted to the other half alone; and the
//! score with every block kept; `--folds K` adds the same with K parts (each read with a model
//! fitted to the other K - 1). `-- --train` picks the model's L2 penalty and threshold by the
//! two-fold cross-validation, fits it to every labelled block and prints it as Rust.
//!
//! It also counts the pages read as having no clear article (the whole page shown) and those
//! read as empty, and the share of the views' characters spent on markup (link markers beyond
//! their text, image placeholders, heading marks).
//!
//! For study: `EXTRACT_SHOW_MISSES=1` lists every snippet scored wrong and the pages read
//! as no clear article, `EXTRACT_DUMP=FILE`
//! prints one page's view, `EXTRACT_SAVE=DIR` writes every page's view into DIR (all three from
//! the shipped model's run, or with every block kept under `EXTRACT_KEEP_ALL=1`), and with
//! `--train`, `EXTRACT_SAMPLES=FILE` writes the labelled blocks' features as CSV;
//! `EXTRACT_ALL_BLOCKS=FILE` writes every block of every page (half, page, block, label or -1,
//! characters, `with` and `without` snippets it holds, features) and `EXTRACT_BLOCK_TEXTS=FILE`
//! their text (JSON lines: page, block, file name, text as shown).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glm_tools::browser::{
    FEATURES, Fetched, INVISIBLE, MODEL, Model, article_blocks, decode, extract, extract_with,
    render_page_with,
};
use url::Url;

/// A link marker `【id†text†host】` or `【id†text】` becomes `text`.
fn strip_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('【') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '【'.len_utf8()..];
        let Some(end) = after.find('】') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let mut parts = inner.split('†');
        let _id = parts.next();
        out.push_str(parts.next().unwrap_or(inner));
        rest = &after[end + '】'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The view as plain text, the browser's own markup taken out: link markers read as their text,
/// the marks that start headings, bulleted list items and quotes, table pipes and rules, code fences
/// and the backticks around inline code. (The corpus's snippets are the pages' text.)
fn plain(text: &str) -> String {
    let text = strip_markers(text);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut line = line.trim_start();
        if line.starts_with("```") || line.starts_with("|---") || line.starts_with("| ---") {
            out.push('\n');
            continue;
        }
        let hashes = line.len() - line.trim_start_matches('#').len();
        if hashes > 0 && line[hashes..].starts_with(' ') {
            line = &line[hashes + 1..];
        }
        while let Some(rest) = line.strip_prefix("> ") {
            line = rest;
        }
        // (Numbers of ordered lists stay: pages write them as text as often as in markup.)
        if let Some(rest) = line.strip_prefix("- ") {
            line = rest;
        }
        if let Some(row) = line.strip_prefix("| ") {
            let row = row.strip_suffix(" |").unwrap_or(row);
            out.push_str(&row.replace(" | ", " ").replace("\\|", "|"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.retain(|c| c != '`');
    out
}

/// What a view spends on markup, in characters: link markers beyond their text, image
/// placeholders, heading marks.
#[derive(Default)]
struct Markup {
    all: usize,
    links: usize,
    images: usize,
    headings: usize,
}

impl Markup {
    fn add(&mut self, body: &str) {
        let plain = strip_markers(body);
        self.all += body.chars().count();
        self.links += body.chars().count() - plain.chars().count();
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("[Image ") {
            let tail = &rest[at..];
            let end = tail.find(']').map_or(tail.len(), |e| e + 1);
            self.images += tail[..end].chars().count();
            rest = &tail[end..];
        }
        for line in plain.lines() {
            let marks = line.len() - line.trim_start_matches('#').len();
            if marks > 0 && line[marks..].starts_with(' ') {
                self.headings += marks + 1;
            }
        }
    }

    fn line(&self) -> String {
        let share = |n: usize| 100.0 * n as f64 / self.all.max(1) as f64;
        format!(
            "markup: {:.1}% of the views' {} characters (link markers beyond their text {:.1}%, image placeholders {:.1}%, heading marks {:.1}%)",
            share(self.links + self.images + self.headings),
            self.all,
            share(self.links),
            share(self.images),
            share(self.headings)
        )
    }
}

/// `text` with whitespace runs as one space and invisible format characters (soft hyphens,
/// zero-width spaces and joiners) taken out: pages and snippets write them inconsistently.
fn collapse(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.replace(INVISIBLE, ""))
        .collect::<Vec<_>>()
        .join(" ")
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The unpacked corpus folder, unpacking it on first use.
fn corpus() -> Option<PathBuf> {
    if let Some(dir) = arg("--corpus") {
        return Some(PathBuf::from(dir));
    }
    let archive = std::env::var_os("GLM_AGENT_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"))
        .join("readable-pages/readable-pages.tar.xz");
    let cache = glm_engine::paths::cache_dir(None, |k| std::env::var(k).ok())?;
    let dir = cache.join("corpora/readable-pages");
    if dir.join("evaldata.json").is_file() {
        return Some(dir);
    }
    if !archive.is_file() {
        eprintln!(
            "no corpus: {} is missing (set GLM_AGENT_CORPORA to the folder holding readable-pages/)",
            archive.display()
        );
        return None;
    }
    let partial = cache.join("corpora/readable-pages.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).unwrap();
    eprintln!("unpacking {} into {}", archive.display(), dir.display());
    let status = std::process::Command::new("tar")
        .arg("-xJf")
        .arg(&archive)
        .arg("-C")
        .arg(&partial)
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    std::fs::rename(&partial, &dir).unwrap();
    Some(dir)
}

#[derive(Default)]
struct Score {
    tp: usize,
    fn_: usize,
    fp: usize,
    tn: usize,
}

impl Score {
    fn add(&mut self, other: &Score) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    fn f(&self) -> f64 {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }

    fn line(&self) -> String {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        format!(
            "precision {p:.3}  recall {r:.3}  F-score {f:.4}  ({} found, {} boilerplate shown, {} missed)",
            self.tp, self.fp, self.fn_
        )
    }
}

/// One page of the corpus.
struct Page {
    url: Url,
    file: String,
    body: Vec<u8>,
    with: Vec<String>,
    without: Vec<String>,
}

impl Page {
    fn fetched(&self) -> Fetched {
        Fetched {
            url: self.url.clone(),
            status: 200,
            content_type: "text/html".into(),
            body: self.body.clone(),
            truncated: false,
        }
    }

    /// Which of `folds` parts of the corpus the page is in (FNV-1a of the file name, so the
    /// split is fixed and blind to the content).
    fn fold(&self, folds: usize) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.file.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % folds as u64) as usize
    }
}

fn load(dir: &Path) -> Vec<Page> {
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("evaldata.json")).unwrap()).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| collapse(s.as_str().unwrap()))
            .collect()
    };
    data.as_object()
        .unwrap()
        .iter()
        .map(|(url, entry)| {
            let file = entry["file"].as_str().unwrap().to_owned();
            // The name comes from the corpus's index: keep it a plain file name.
            assert!(!file.contains(['/', '\\']) && !file.starts_with('.'));
            Page {
                url: Url::parse(url)
                    .unwrap_or_else(|_| Url::parse("https://corpus.example/").unwrap()),
                body: std::fs::read(dir.join("pages").join(&file)).unwrap(),
                file,
                with: strings(&entry["with"]),
                without: strings(&entry["without"]),
            }
        })
        .collect()
}

/// Scores `pages` read with `model`; when `report`, also prints and saves what the environment
/// asks for (misses, views, one page's text).
fn score_pages(
    pages: &[&Page],
    view: usize,
    model: &Model,
    report: bool,
) -> (Score, Duration, (Duration, String)) {
    let mut markup = Markup::default();
    let (mut whole_page, mut empty) = (0, 0);
    let mut score = Score::default();
    let mut spent = Duration::ZERO;
    let mut slowest = (Duration::ZERO, String::new());
    let debug = report && std::env::var_os("EXTRACT_SHOW_MISSES").is_some();
    for page in pages {
        let fetched = page.fetched();
        let start = Instant::now();
        let shown = render_page_with(&fetched, 0, 1, view, model);
        let took = start.elapsed();
        spent += took;
        if took > slowest.0 {
            slowest = (took, page.file.clone());
        }
        // The header (source, URL, byline, date) is the browser's own; the page starts after it.
        let body = shown.text.split_once("\n\n").map_or("", |(_, b)| b);
        let seen = collapse(&plain(body));
        let file = &page.file;
        for s in &page.with {
            if seen.contains(s.as_str()) {
                score.tp += 1;
            } else {
                score.fn_ += 1;
                if debug {
                    println!("  {file}: missing {s:?}");
                }
            }
        }
        for s in &page.without {
            if seen.contains(s.as_str()) {
                score.fp += 1;
                if debug {
                    println!("  {file}: showing {s:?}");
                }
            } else {
                score.tn += 1;
            }
        }
        if !report {
            continue;
        }
        markup.add(body);
        if seen.is_empty() {
            empty += 1;
        }
        let html = decode(&page.body, "text/html", true);
        if !extract_with(&html, &page.url, 0, model).reader {
            whole_page += 1;
            if debug {
                println!("  {file}: read as no clear article");
            }
        }
        if let Some(dir) = std::env::var_os("EXTRACT_SAVE") {
            std::fs::write(Path::new(&dir).join(format!("{file}.txt")), body).unwrap();
        }
        if std::env::var("EXTRACT_DUMP").is_ok_and(|d| d == *file) {
            println!("{}", shown.text);
        }
    }
    if report {
        println!(
            "  pages read as no clear article (the whole page shown): {whole_page}; read as empty: {empty}"
        );
        println!("  {}", markup.line());
    }
    (score, spent, slowest)
}

fn score_corpus(dir: &Path, view: usize) {
    let pages = load(dir);
    let bytes: usize = pages.iter().map(|p| p.body.len()).sum();
    let all: Vec<&Page> = pages.iter().collect();
    // EXTRACT_KEEP_ALL: the misses and views reported are those with every block kept.
    let shown = if std::env::var_os("EXTRACT_KEEP_ALL").is_some() {
        &KEEP_ALL
    } else {
        &MODEL
    };
    println!(
        "corpus: {} pages, {:.1} MB, view {view} chars",
        pages.len(),
        bytes as f64 / 1e6
    );
    let (score, spent, slowest) = score_pages(&all, view, shown, true);
    println!("  {}", score.line());
    let halves = Folds::new(&pages, 2);
    let unseen = halves.score_crosswise(view, &halves.fit_crosswise(MODEL.l2), MODEL.threshold);
    let (every, _, _) = score_pages(&all, view, &KEEP_ALL, false);
    println!(
        "  cross-validated, each half read with a block model fitted to the other half only:\n    \
         {}\n  every block kept: {}",
        unseen.line(),
        every.line()
    );
    if let Some(k) = arg("--folds").map(|k| k.parse::<usize>().expect("--folds K")) {
        let folds = Folds::new(&pages, k.max(2));
        let unseen = folds.score_crosswise(view, &folds.fit_crosswise(MODEL.l2), MODEL.threshold);
        println!(
            "  {k}-fold cross-validated, each part read with a model fitted to the others:\n    {}",
            unseen.line()
        );
    }
    println!(
        "  {:.1} MB/s over the corpus (decode + parse + extract + render); slowest page {:.0} ms ({})",
        bytes as f64 / spent.as_secs_f64() / 1e6,
        slowest.0.as_secs_f64() * 1e3,
        slowest.1
    );
}

/// A block model that keeps every block.
const KEEP_ALL: Model = Model {
    mean: [0.0; FEATURES],
    scale: [1.0; FEATURES],
    weights: [0.0; FEATURES],
    bias: 0.0,
    threshold: 0.0,
    l2: 0.0,
};

/// The corpus in fixed parts (two halves unless asked), with the labelled blocks of each: a
/// block holding a `with` snippet is content, one holding a `without` snippet boilerplate
/// (neither or both: unused).
struct Folds<'a> {
    pages: Vec<Vec<&'a Page>>,
    samples: Vec<Vec<([f32; FEATURES], bool)>>,
}

impl<'a> Folds<'a> {
    fn new(pages: &'a [Page], folds: usize) -> Self {
        let mut parts = Folds {
            pages: vec![Vec::new(); folds],
            samples: vec![Vec::new(); folds],
        };
        // EXTRACT_ALL_BLOCKS, EXTRACT_BLOCK_TEXTS: every block's features and text, written
        // only when asked for.
        let dump_to = std::env::var_os("EXTRACT_ALL_BLOCKS");
        let texts_to = std::env::var_os("EXTRACT_BLOCK_TEXTS");
        let mut dump = String::new();
        let mut texts = String::new();
        for (pi, page) in pages.iter().enumerate() {
            let fold = page.fold(folds);
            parts.pages[fold].push(page);
            let html = decode(&page.body, "text/html", true);
            for (bi, (shown, features)) in article_blocks(&html, &page.url).into_iter().enumerate()
            {
                let text = collapse(&plain(&shown));
                let holds = |snippets: &[String]| {
                    snippets
                        .iter()
                        .filter(|s| text.contains(s.as_str()))
                        .count()
                };
                let (with, without) = (holds(&page.with), holds(&page.without));
                let (content, boilerplate) = (with > 0, without > 0);
                if content != boilerplate {
                    parts.samples[fold].push((features, content));
                }
                if texts_to.is_some() {
                    texts.push_str(&serde_json::json!([pi, bi, page.file, shown]).to_string());
                    texts.push('\n');
                }
                if dump_to.is_none() {
                    continue;
                }
                let label = if content != boilerplate {
                    i32::from(content)
                } else {
                    -1
                };
                let f: Vec<String> = features.iter().map(|x| x.to_string()).collect();
                dump.push_str(&format!(
                    "{fold},{pi},{bi},{label},{},{with},{without},{}\n",
                    text.chars().count(),
                    f.join(",")
                ));
            }
        }
        if let Some(p) = dump_to {
            std::fs::write(p, dump).unwrap();
        }
        if let Some(p) = texts_to {
            std::fs::write(p, texts).unwrap();
        }
        parts
    }

    /// For each part, a model fitted to the other parts only.
    fn fit_crosswise(&self, l2: f32) -> Vec<Model> {
        (0..self.samples.len())
            .map(|held| {
                let others: Vec<([f32; FEATURES], bool)> = self
                    .samples
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != held)
                    .flat_map(|(_, s)| s.iter().copied())
                    .collect();
                Model::fit(&others, l2, 0.5)
            })
            .collect()
    }

    /// Each part read with its crosswise model at `threshold`: the summed score.
    fn score_crosswise(&self, view: usize, models: &[Model], threshold: f32) -> Score {
        let mut total = Score::default();
        for (pages, model) in self.pages.iter().zip(models) {
            let model = Model {
                threshold,
                ..model.clone()
            };
            total.add(&score_pages(pages, view, &model, false).0);
        }
        total
    }
}

/// Picks the block model's L2 penalty and threshold by two-fold cross-validation over the
/// corpus's halves, fits it to every labelled block, and prints it as Rust.
fn train(dir: &Path, view: usize) {
    let pages = load(dir);
    let halves = Folds::new(&pages, 2);
    if let Some(path) = std::env::var_os("EXTRACT_SAMPLES") {
        // Every labelled block, for study elsewhere: half, label, features.
        let mut csv = String::new();
        for (half, samples) in halves.samples.iter().enumerate() {
            for (features, content) in samples {
                let f: Vec<String> = features.iter().map(|x| x.to_string()).collect();
                csv.push_str(&format!("{half},{},{}\n", u8::from(*content), f.join(",")));
            }
        }
        std::fs::write(path, csv).unwrap();
    }
    let samples: Vec<([f32; FEATURES], bool)> = halves.samples.concat();
    let content = samples.iter().filter(|s| s.1).count();
    println!(
        "{} labelled blocks of {} pages ({content} content, {} boilerplate)",
        samples.len(),
        pages.len(),
        samples.len() - content
    );
    let mut best: Option<(f64, f32, f32)> = None;
    for l2 in [0.001, 0.01, 0.1] {
        let models = halves.fit_crosswise(l2);
        for t in [0.3, 0.4, 0.5, 0.6, 0.7] {
            let total = halves.score_crosswise(view, &models, t);
            println!("  l2 {l2} threshold {t}: cross-validated {}", total.line());
            if best.is_none_or(|(b, _, _)| total.f() > b) {
                best = Some((total.f(), l2, t));
            }
        }
    }
    let (_, l2, threshold) = best.unwrap();
    let model = Model::fit(&samples, l2, threshold);
    let all: Vec<&Page> = pages.iter().collect();
    let (fitted, _, _) = score_pages(&all, view, &model, false);
    println!(
        "chosen: l2 {l2}, threshold {threshold}; on the pages it was fitted to: {}",
        fitted.line()
    );
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let generated = format!(
        "//! Generated by `cargo bench -p glm-tools --bench extract -- --train` from the labelled blocks of\n//! `shared/corpora/readable-pages` (the regularisation and threshold it chose are the last two\n//! fields). Do not edit: train again, which rewrites this file.\n\nuse super::blocks::Model;\n\n/// The fitted block model (see `blocks.rs`).\npub const MODEL: Model = Model {{\n    mean: [{}],\n    scale: [{}],\n    weights: [{}],\n    bias: {:?},\n    threshold: {:?},\n    l2: {:?},\n}};\n",
        list(&model.mean),
        list(&model.scale),
        list(&model.weights),
        model.bias,
        model.threshold,
        model.l2
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/browser/blocks_model.rs");
    match std::fs::write(path, generated) {
        Ok(()) => println!("wrote {path} (run cargo fmt)"),
        Err(e) => println!("cannot write {path}: {e}"),
    }
}

/// Runs `extract` on `html` for at least `budget` and returns MB/s.
fn throughput(html: &str, budget: Duration) -> (f64, u32) {
    let base = Url::parse("https://bench.example/").unwrap();
    let start = Instant::now();
    let mut runs = 0u32;
    let mut sink = 0usize;
    while start.elapsed() < budget || runs < 3 {
        sink += extract(html, &base, 0).text.len();
        runs += 1;
    }
    assert!(sink > 0);
    let secs = start.elapsed().as_secs_f64();
    (html.len() as f64 * f64::from(runs) / secs / 1e6, runs)
}

/// MB/s of parsing `html` into a tree, nothing else.
fn parse_throughput(html: &str, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < budget || runs < 3 {
        std::hint::black_box(scraper::Html::parse_document(html));
        runs += 1;
    }
    html.len() as f64 * f64::from(runs) / start.elapsed().as_secs_f64() / 1e6
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn main() {
    let view = arg("--view").map_or(12_000, |v| v.parse().expect("--view CHARS"));
    let wanted = !std::env::args().any(|a| a == "--speed-only");
    if std::env::args().any(|a| a == "--train") {
        train(&corpus().expect("--train needs the corpus"), view);
        return;
    }
    match corpus().filter(|_| wanted) {
        Some(dir) => score_corpus(&dir, view),
        None => println!("corpus: not found, scores skipped"),
    }
    if std::env::args().any(|a| a == "--scores-only") {
        return;
    }
    let article = fixture("news_article.html");
    let body = article
        .split("<main>")
        .nth(1)
        .unwrap()
        .split("</main>")
        .next()
        .unwrap();
    // A long article page: the body's paragraphs repeated to about 1 MB, inside a page's chrome.
    let long = article.replace(body, &body.repeat(1_000_000 / body.len()));
    println!(
        "{:<22} {:>10} {:>8} {:>10} {:>14} {:>7}",
        "page", "bytes", "runs", "MB/s", "parse MB/s", "ratio"
    );
    for (name, html) in [
        ("news_article.html", &article),
        ("docs_page.html", &fixture("docs_page.html")),
        ("article x1MB", &long),
    ] {
        // Side by side: the whole reading, and html5ever building the tree alone.
        let (mbps, runs) = throughput(html, Duration::from_secs(2));
        let parse = parse_throughput(html, Duration::from_secs(2));
        println!(
            "{name:<22} {:>10} {runs:>8} {mbps:>10.1} {parse:>14.1} {:>7.2}",
            html.len(),
            mbps / parse
        );
    }
}
