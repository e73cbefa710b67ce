//! What the model reads, measured: reader-mode extraction over a corpus of real pages, scored
//! with the corpus's snippets that must and must not be seen, and extraction speed.
//!
//!     cargo bench -p glm-tools --bench extract [-- --view CHARS] [--corpus DIR]
//!         [--speed-only | --scores-only]
//!
//! The corpus is `readable-pages.tar.xz` (see `shared/corpora/readable-pages/README.md`); it is
//! looked for in `GLM_AGENT_CORPORA`, then in `../shared/corpora` beside the workspace, and
//! unpacked into `<cache>/corpora/readable-pages` (the cache folder is glm-agent's own).
//!
//! Scoring, as the corpus's README gives it: a `with` snippet in the page text is a true
//! positive, missing a false negative; a `without` snippet present is a false positive. Text is
//! compared with whitespace collapsed and link markers `【id†text†host】` read as `text`. The
//! page text is what `open_url` shows the model below its header: the content cut to the view,
//! and the page's other links.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glm_tools::browser::{Fetched, extract, render_page};
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

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
    fn line(&self) -> String {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        format!("precision {p:.3}  recall {r:.3}  F-score {f:.3}")
    }
}

fn score_corpus(dir: &Path, view: usize) {
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("evaldata.json")).unwrap()).unwrap();
    let entries = data.as_object().unwrap();
    let mut score = Score::default();
    let mut bytes = 0usize;
    let mut spent = Duration::ZERO;
    let mut slowest = (Duration::ZERO, String::new());
    let mut worst: Vec<(usize, String)> = Vec::new();
    for (url, entry) in entries {
        let file = entry["file"].as_str().unwrap();
        // The name comes from the corpus's index: keep it a plain file name.
        assert!(!file.contains(['/', '\\']) && !file.starts_with('.'));
        let body = std::fs::read(dir.join("pages").join(file)).unwrap();
        bytes += body.len();
        let fetched = Fetched {
            url: Url::parse(url).unwrap_or_else(|_| Url::parse("https://corpus.example/").unwrap()),
            status: 200,
            content_type: "text/html".into(),
            body,
            truncated: false,
        };
        let start = Instant::now();
        let page = render_page(&fetched, 0, 1, view);
        let took = start.elapsed();
        spent += took;
        if took > slowest.0 {
            slowest = (took, file.to_owned());
        }
        // The header (source, URL, byline, date) is the browser's own; the page starts after it.
        let body = page.text.split_once("\n\n").map_or("", |(_, b)| b);
        let seen = collapse(&strip_markers(body));
        let mut misses = 0;
        let debug = std::env::var_os("EXTRACT_SHOW_MISSES").is_some();
        for s in entry["with"].as_array().unwrap() {
            if seen.contains(&collapse(s.as_str().unwrap())) {
                score.tp += 1;
            } else {
                score.fn_ += 1;
                misses += 1;
                if debug {
                    println!("  {file}: missing {s}");
                }
            }
        }
        for s in entry["without"].as_array().unwrap() {
            if seen.contains(&collapse(s.as_str().unwrap())) {
                score.fp += 1;
                misses += 1;
                if debug {
                    println!("  {file}: showing {s}");
                }
            } else {
                score.tn += 1;
            }
        }
        if std::env::var("EXTRACT_DUMP").is_ok_and(|d| d == file) {
            println!("{}", page.text);
        }
        if misses > 0 {
            worst.push((misses, file.to_owned()));
        }
    }
    println!(
        "corpus: {} pages, {:.1} MB, view {view} chars",
        entries.len(),
        bytes as f64 / 1e6
    );
    println!("  {}", score.line());
    println!(
        "  {:.1} MB/s over the corpus (decode + parse + extract + render); slowest page {:.0} ms ({})",
        bytes as f64 / spent.as_secs_f64() / 1e6,
        slowest.0.as_secs_f64() * 1e3,
        slowest.1
    );
    if std::env::var_os("EXTRACT_SHOW_MISSES").is_some() {
        worst.sort();
        for (misses, file) in worst.iter().rev().take(40) {
            println!("  {misses} wrong: {file}");
        }
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
