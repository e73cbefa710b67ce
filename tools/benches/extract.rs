//! Extraction throughput: HTML -> model text over the fixture pages.
//!
//!     cargo bench -p glm-tools --bench extract
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::time::{Duration, Instant};

use glm_tools::browser::extract;
use url::Url;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Runs `extract` on `html` for at least `budget` and returns MB/s.
fn measure(html: &str, budget: Duration) -> (f64, u32) {
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

fn main() {
    let article = fixture("news_article.html");
    let docs = fixture("docs_page.html");
    // A long page: the article body repeated to about 1 MB.
    let body = article
        .split("<main>")
        .nth(1)
        .unwrap()
        .split("</main>")
        .next()
        .unwrap();
    let long = format!(
        "<html><body>{}</body></html>",
        body.repeat(1_000_000 / body.len())
    );
    println!(
        "{:<22} {:>10} {:>8} {:>10}",
        "page", "bytes", "runs", "MB/s"
    );
    for (name, html) in [
        ("news_article.html", &article),
        ("docs_page.html", &docs),
        ("malformed.html", &fixture("malformed.html")),
        ("article x1MB", &long),
    ] {
        let (mbps, runs) = measure(html, Duration::from_secs(2));
        println!("{name:<22} {:>10} {runs:>8} {mbps:>10.1}", html.len());
    }
}
