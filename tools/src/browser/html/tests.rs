//! Reading pages into text: structure, reader mode, links.

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
            and read <a href="/faq">the FAQ</a> or <a href="https://other.example/">this</a>.</p>
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
        "# Install\n\nRun the `cargo` command and read 【0†the FAQ】 or 【1†this†other.example】.\n\n\
- one\n- two\n  1. a\n  2. b\n\n| k | v |\n| --- | --- |\n| a\\|b | 1 |\n\n\
```rust\nfn main() {\n    println!(\"hi\");\n}\n```\n\n[Image 1]"
    );
    // A link within the site goes without its host.
    assert_eq!(page.links.len(), 2);
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
fn byline_and_date_come_from_json_ld_and_meta_tags() {
    let article = "<article><p>Long enough prose for an article, with clauses, and more \
            clauses, and a full stop at its end.</p><p>A second paragraph of the same \
            article, with commas, so that the page reads as one.</p></article>";
    let ld = format!(
        r#"<html><head><script type="application/ld+json">{{"@context":"https://schema.org",
            "@graph":[{{"@type":"NewsArticle","datePublished":"2020-05-19T10:00:00Z",
            "author":[{{"@type":"Person","name":"Ada Lovelace"}}]}}]}}</script></head>
            <body>{article}</body></html>"#
    );
    let page = run(&ld);
    assert_eq!(page.byline.as_deref(), Some("Ada Lovelace"));
    assert_eq!(page.date.as_deref(), Some("2020-05-19T10:00:00Z"));
    assert!(!page.text.contains("schema.org"));
    let meta = format!(
        r#"<html><head><meta name="author" content=" Grace  Hopper ">
            <meta property="article:published_time" content="2021-01-02"></head>
            <body>{article}</body></html>"#
    );
    let page = run(&meta);
    assert_eq!(page.byline.as_deref(), Some("Grace Hopper"));
    assert_eq!(page.date.as_deref(), Some("2021-01-02"));
}

#[test]
fn a_stray_quote_in_a_tag_does_not_hide_the_page() {
    // A quote that opens no value (`" type=`) is part of an attribute name to an HTML
    // parser; read as an opening quote, it made the whole page one tag with thousands of
    // "attributes", which were then cut away with the page.
    let words = "word ".repeat(40);
    let page = format!(
        r#"<html><head><script src="a.js" " type="text/javascript"></script></head>
            <body><p class="x">{words} with, commas, and an end.</p>
            {}</body></html>"#,
        r#"<p title="a b c d e f g h">"quoted" text = more</p>"#.repeat(200)
    );
    assert!(shape::scan(&page).attributes < shape::MAX_ATTRIBUTES);
    let text = run(&page).text;
    assert!(text.contains("with, commas, and an end."), "{text}");
}

/// Six paragraphs of a news story.
fn story() -> String {
    "<p>The council met on Tuesday evening to discuss the new budget, which raises \
            spending on schools, roads and parks for the coming year.</p>"
        .repeat(6)
}

/// `html` read with every block of its article kept.
fn every_block(html: &str, base: &Url) -> Extracted {
    let keep_all = Model {
        threshold: 0.0,
        ..super::super::blocks_model::MODEL
    };
    extract_with(html, base, 0, &keep_all)
}

#[test]
fn boilerplate_blocks_after_the_story_are_left_out_and_their_links_kept_aside() {
    let story = story();
    let page = format!(
        r#"<html><body><div class="story">{story}
            <div class="note">Photo: Jane Doe / Example Agency</div>
            <h3>More from <a href="https://news.example/city">City news</a></h3>
            <p>Tags: <a href="https://news.example/t/budget">budget</a>,
            <a href="https://news.example/t/council">council</a></p>
            </div></body></html>"#
    );
    let base = Url::parse("https://news.example/a").unwrap();
    let every = every_block(&page, &base);
    let page = extract(&page, &base, 0);
    assert!(page.reader);
    assert!(page.text.contains("parks for the coming year."));
    for gone in ["Photo: Jane Doe", "More from", "Tags:"] {
        assert!(every.text.contains(gone), "{gone} in {}", every.text);
        assert!(!page.text.contains(gone), "{gone} in {}", page.text);
    }
    // Their links are still reachable, among the page's other links.
    let others: Vec<&str> = page.other_links.iter().map(|l| l.url.as_str()).collect();
    assert!(others.contains(&"https://news.example/city"), "{others:?}");
    assert!(page.links.iter().all(|l| !l.url.as_str().ends_with("city")));
}

#[test]
fn prose_beside_the_article_reaches_the_block_model() {
    let story = story();
    let links: String = (0..12)
        .map(|i| format!(r#"<li><a href="/topic/{i}">Another story about topic {i}</a></li>"#))
        .collect();
    // Beside the article, a box that is mostly links: it does not qualify as a whole, but
    // the paragraph of prose in it is written for the block model to weigh; its list is not.
    let page = format!(
        r#"<html><body><div id="page"><article>{story}</article>
            <div class="box"><ul>{links}</ul>
            <p>The mayor answered questions from residents after the vote and promised that
            the first new classrooms would open before the end of the school year.</p></div>
            <div class="comments"><div><p>I have lived here for thirty years and I have never
            seen the council spend a single cent on the roads of our part of town.</p></div></div>
            </div></body></html>"#
    );
    let base = Url::parse("https://news.example/a").unwrap();
    let every = every_block(&page, &base);
    assert!(every.reader);
    assert!(
        every.text.contains("The mayor answered questions"),
        "{}",
        every.text
    );
    assert!(
        !every.text.contains("Another story about topic"),
        "{}",
        every.text
    );
    // Nothing inside an element marked as boilerplate is looked for.
    assert!(!every.text.contains("I have lived here"), "{}", every.text);
    let blocks = article_blocks(&page, &base);
    assert!(
        blocks
            .iter()
            .any(|(text, _)| text.contains("The mayor answered"))
    );
}

#[test]
fn boxes_close_beside_the_article_are_written_whole() {
    let story = story();
    // The lead sits in a box of its own beside the story, too short to be prose; a box of
    // links beside it, and a box deeper down the page, are not written.
    let page = format!(
        r#"<html><body><div id="page"><div class="lead-box"><span>Schools first.</span>
            <span>Roads second.</span></div><div class="story">{story}</div>
            <div class="more"><a href="/a">One</a> <a href="/b">Two</a> <a href="/c">Three</a></div>
            </div></body></html>"#
    );
    let base = Url::parse("https://news.example/a").unwrap();
    let every = every_block(&page, &base);
    assert!(
        every.text.contains("Schools first. Roads second."),
        "{}",
        every.text
    );
    assert!(!every.text.contains("Three"), "{}", every.text);
}

#[test]
fn a_layout_named_like_boilerplate_and_an_unclosed_banner_do_not_hide_the_article() {
    let story = story();
    let base = Url::parse("https://news.example/a").unwrap();
    // The story's own element says `paywall` (a layout for subscribers); the box beside
    // it says `sidebar` and is left out.
    let page = format!(
        r#"<html><body><div id="page"><div class="story has-paywall">{story}</div>
            <div class="sidebar"><p>Our newsletter arrives every Friday morning with the week's
            stories, and you can leave it whenever you like.</p></div></div></body></html>"#
    );
    let read = every_block(&page, &base);
    assert!(read.reader && read.text.contains("parks for the coming year."));
    assert!(!read.text.contains("newsletter"), "{}", read.text);
    // A banner left open around the whole page.
    let page = format!(
        r#"<html><body><header role="banner"><a href="/">Home</a><main>{story}</main>
            </body></html>"#
    );
    let read = every_block(&page, &base);
    assert!(
        read.reader && read.text.contains("parks for the coming year."),
        "{read:?}"
    );
    // A banner that is only a banner stays out.
    let page = format!(
        r#"<html><body><div role="banner"><p>Welcome to the city's own news site, read by
            thousands of residents every single day.</p></div><main>{story}</main></body></html>"#
    );
    let read = every_block(&page, &base);
    assert!(!read.text.contains("Welcome"), "{}", read.text);
}

#[test]
fn long_captions_are_read_and_credits_are_not() {
    let story = story();
    let long = "The council chamber on Tuesday evening, where members voted on the budget \
                    that raises spending on schools, roads and parks; residents followed the \
                    long debate from the crowded public gallery until late in the night.";
    let page = format!(
        r#"<html><body><article>{story}<figure><img src="a.jpg"><figcaption>{long}</figcaption></figure>
            <figure><img src="b.jpg"><figcaption>Photo: Jane Doe</figcaption></figure></article>
            </body></html>"#
    );
    let base = Url::parse("https://news.example/a").unwrap();
    let read = every_block(&page, &base);
    assert!(
        read.text.contains("until late in the night."),
        "{}",
        read.text
    );
    assert!(!read.text.contains("Jane Doe"), "{}", read.text);
}

#[test]
fn a_page_builders_widget_classes_do_not_hide_the_article() {
    let paragraph = "<p>Lithium batteries store the energy of a solar roof for the evening, \
            and their price has fallen by half in five years, which changes the sums.</p>";
    let widget = |kind: &str, inner: &str| {
        format!(
            r#"<div class="elementor-element elementor-widget elementor-widget-{kind}">
                <div class="elementor-widget-container">{inner}</div></div>"#
        )
    };
    let page = format!(
        r#"<html><body><div class="elementor-section">{}{}{}</div></body></html>"#,
        widget("heading", "<h2>Storing solar power</h2>"),
        widget("text-editor", &paragraph.repeat(5)),
        widget(
            "nav-menu",
            r#"<ul><li><a href="/shop">Shop</a></li><li><a href="/blog">Blog</a></li></ul>"#
        ),
    );
    let read = run(&page);
    assert!(read.reader);
    assert!(
        read.text.contains("Lithium batteries store"),
        "{}",
        read.text
    );
    // The words after `widget` still count: the menu stays out.
    assert!(!read.text.contains("Shop"), "{}", read.text);
}

#[test]
fn other_links_are_listed_once_with_their_text() {
    let story = "<p>The council met on Tuesday evening to discuss the new budget, which \
            raises spending on schools, roads and parks for the coming year.</p>"
        .repeat(4);
    let teaser = r#"<li><a href="/next"><img src="n.jpg"></a><a href="/next">Next story</a></li>"#;
    let page = format!(
        r#"<html><body><article>{story}</article>
            <ul class="more">{}</ul></body></html>"#,
        teaser.repeat(3)
    );
    let page = run(&page);
    assert!(page.reader);
    let next: Vec<&Link> = page
        .other_links
        .iter()
        .filter(|l| l.url.as_str() == "https://site.example/next")
        .collect();
    assert_eq!(next.len(), 1, "{:?}", page.other_links);
    assert_eq!(next[0].text, "Next story");
}

#[test]
fn invisible_characters_are_taken_out_of_words() {
    let page =
        run("<p>Bundes\u{ad}verfassungs\u{ad}gericht, zero\u{200b}width and \u{feff}joined.</p>");
    assert_eq!(page.text, "Bundesverfassungsgericht, zerowidth and joined.");
}
