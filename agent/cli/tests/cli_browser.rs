//! Hostile pages through `glm-agent tools call simple_browser`: each is served on 127.0.0.1,
//! opened, and followed in the same process by a normal page, which must still read. Time and
//! peak memory of each process are printed and bounded.

use std::time::Duration;

use glm_test_support::http::serve_bytes;
use glm_test_support::{glm_agent_command, repo_file, run_measured};

/// What every hostile page must stay under, in the process that then opens a normal page.
const MEMORY_LIMIT: u64 = 512 << 20;
/// The tool call's own limit in these tests; the process must be done well within twice it.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn hostile_pages() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let html = "text/html; charset=utf-8";
    let mut pages = Vec::new();
    // Self-closing divs: HTML parsers open each one, so this nests 800,000 deep.
    pages.push(("div-flood", html, "<div/>".repeat(800_000).into_bytes()));
    // One tag with 300,000 attributes (the parser compares each with those before it).
    let attributes: String = (0..300_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    pages.push((
        "attribute-flood",
        html,
        format!("<html><body><p{attributes}>after the flood</p></body></html>").into_bytes(),
    ));
    // 300 levels of tables, each with text (a renderer copying descendants' text per level is
    // quadratic).
    let mut tables = String::from("<html><body>");
    for level in 0..300 {
        tables.push_str(&format!(
            "<table><tr><td>level {level} {}",
            "words ".repeat(40)
        ));
    }
    tables.push_str(&"</td></tr></table>".repeat(300));
    pages.push(("nested-tables", html, tables.into_bytes()));
    // A hundred unclosed formatting tags before 4.8 MB of paragraphs: the parser reopens all
    // of them in every paragraph.
    let mut reopened: String = "<p>".to_owned();
    reopened.extend((0..100).map(|i| format!("<b id={i}>")));
    reopened.push_str("</p>");
    reopened.push_str(&"<p>x</p>".repeat(600_000));
    pages.push(("unclosed-formatting", html, reopened.into_bytes()));
    // 4.8 MB of JSON nested 100 deep: formatted whole it would be hundreds of megabytes.
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let items = vec![deep; 4_800_000 / 202];
    pages.push((
        "nested-json",
        "application/json",
        format!("[{}]", items.join(",")).into_bytes(),
    ));
    // 200,000 links.
    pages.push((
        "link-flood",
        html,
        "<a href=\"/l\">a link</a> ".repeat(200_000).into_bytes(),
    ));
    // An article, then 4.7 MB of boxes beside it, each mostly links around a paragraph of
    // prose: none qualifies as part of the article, and every paragraph in them is weighed.
    let links: String = (0..10)
        .map(|i| format!("<li><a href=\"/t/{i}\">link number {i} here</a></li>"))
        .collect();
    let prose = "A paragraph of prose beside the article, with commas, words. ".repeat(3);
    let unit = format!("<div class=\"box\"><ul>{links}</ul><p>{prose}</p></div>");
    let article = "<p>The council met on Tuesday evening to discuss the new budget.</p>".repeat(20);
    pages.push((
        "prose-beside",
        html,
        format!(
            "<html><body><div><article>{article}</article>{}</div></body></html>",
            unit.repeat(4_700_000 / unit.len())
        )
        .into_bytes(),
    ));
    // 4.8 MB of bytes that are no UTF-8, declaring no charset: the guesser reads a bounded
    // sample.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let junk: Vec<u8> = (0..4_800_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            0x80 | (state as u8)
        })
        .collect();
    pages.push(("undeclared-bytes", "text/html", junk));
    // A head of 370,000 unclosed `<meta` tags before the page declares its charset.
    let mut metas = "<meta charset".repeat(370_000);
    metas.push_str("<meta charset=windows-1250><p>end</p>");
    pages.push(("meta-flood", "text/html", metas.into_bytes()));
    // 85,000 navigation boxes of links: each is measured (a role is read as a boilerplate
    // mark, not skipped), none is shown.
    let chrome = "<div role=\"navigation\"><a href=\"/m\">menu item</a></div>".repeat(85_000);
    pages.push((
        "chrome-flood",
        html,
        format!("<html><body>{chrome}<p>The story itself.</p></body></html>").into_bytes(),
    ));
    pages
}

#[test]
fn hostile_pages_come_back_bounded_and_a_normal_page_reads_after_them() {
    let pages = hostile_pages();
    let served: Vec<(String, &'static str, Vec<u8>)> = pages
        .iter()
        .map(|(name, kind, body)| (format!("/{name}"), *kind, body.clone()))
        .collect();
    let normal = std::fs::read(repo_file("tools/tests/fixtures/news_article.html")).unwrap();
    let (base, _) = serve_bytes(move |req, _| {
        if req.path == "/normal" {
            return (
                200,
                vec![("Content-Type", "text/html".into())],
                normal.clone(),
            );
        }
        match served.iter().find(|(path, _, _)| *path == req.path) {
            Some((_, kind, body)) => (200, vec![("Content-Type", (*kind).into())], body.clone()),
            None => (404, Vec::new(), Vec::new()),
        }
    });
    println!(
        "{:<22} {:>9} {:>8} {:>10}",
        "page", "bytes", "seconds", "peak MiB"
    );
    for (name, _, body) in &pages {
        let measured = run_measured(
            glm_agent_command()
                .args(["tools", "call", "simple_browser"])
                .arg(format!("open_url(\"{base}/{name}\")"))
                .arg(format!("open_url(\"{base}/normal\")"))
                .args(["--allow-host", "127.0.0.1", "--tool-timeout"])
                .arg(TOOL_TIMEOUT.as_secs().to_string()),
        );
        let out = String::from_utf8_lossy(&measured.output.stdout);
        let err = String::from_utf8_lossy(&measured.output.stderr);
        println!(
            "{name:<22} {:>9} {:>8.2} {:>10.1}",
            body.len(),
            measured.elapsed.as_secs_f64(),
            measured.peak_rss as f64 / f64::from(1 << 20)
        );
        assert!(measured.output.status.success(), "{name}: {out}\n{err}");
        let (hostile, normal) = out.split_once("[call 2 of 2]").expect(name);
        assert!(
            hostile.contains(&format!("URL: {base}/{name}")),
            "{name}: {hostile}"
        );
        assert!(hostile.contains("Visible: 0% - "), "{name}: {hostile}");
        assert!(
            normal.contains("Residents of three northern towns woke to a frozen lake"),
            "{name}: the normal page after it did not read: {normal}"
        );
        assert!(
            measured.elapsed < TOOL_TIMEOUT * 2,
            "{name}: took {:?}",
            measured.elapsed
        );
        assert!(
            measured.peak_rss < MEMORY_LIMIT,
            "{name}: peak {} MiB",
            measured.peak_rss >> 20
        );
    }
}
