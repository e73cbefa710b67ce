//! simple_browser against a fixture site served on 127.0.0.1.

use std::time::Duration;

use glm_prompts::BrowserCall;
use glm_tools::browser::{BrowserConfig, FetchLimits, SearchChoice, SimpleBrowser};
use glm_tools::{CallError, Tool, ToolContext, ToolOutput};
use pretty_assertions::assert_eq;
use url::Url;

use crate::server::{Reply, Request, TestServer};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn site(req: &Request, base: &str) -> Reply {
    let port = base.rsplit(':').next().unwrap_or_default();
    match req.path.as_str() {
        "/news" => Reply::html(fixture("news_article.html")),
        "/docs" => Reply::html(fixture("docs_page.html")),
        "/broken" => Reply::html(fixture("malformed.html")),
        "/latin1" => Reply::ok("text/html; charset=windows-1252", fixture("latin1.html")),
        "/sjis" => Reply::ok("text/html", fixture("meta_sjis.html")),
        "/big" => Reply::Large(20 * 1024 * 1024),
        "/loop" => Reply::redirect("/loop"),
        "/hop" => Reply::redirect("/news"),
        "/to-private" => Reply::redirect("http://10.0.0.7/secret"),
        "/to-metadata" => Reply::redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-localhost" => Reply::redirect(&format!("http://localhost:{port}/news")),
        "/to-file" => Reply::redirect("file:///etc/passwd"),
        "/stall" => Reply::Stall,
        "/brave-moved" => Reply::redirect(&format!("http://localhost:{port}/brave")),
        "/searxng-moved/search" => Reply::redirect("http://10.0.0.7/search"),
        "/huge-search/" => Reply::Large(3 * 1024 * 1024),
        "/data.json" => Reply::ok("application/json", r#"{"b": 1, "a": [1, 2]}"#),
        "/notes.txt" => Reply::ok("text/plain", "plain notes\nsecond line"),
        "/logo.png" => Reply::ok("image/png", vec![0x89, b'P', b'N', b'G', 0, 0, 0, 13]),
        "/ddg/" => {
            let encoded: String = url::form_urlencoded::byte_serialize(base.as_bytes()).collect();
            let page = String::from_utf8(fixture("ddg_results.html")).unwrap();
            Reply::html(page.replace("{BASE_ENC}", &encoded))
        }
        "/searxng/search" if req.query.get("format").map(String::as_str) == Some("json") => {
            Reply::ok("application/json", fixture("searxng.json"))
        }
        "/brave" => match req.headers.get("x-subscription-token").map(String::as_str) {
            Some("test-key") => Reply::ok("application/json", fixture("brave.json")),
            _ => Reply::status(401),
        },
        _ => Reply::status(404),
    }
}

fn config(server: &TestServer, allow: &[&str]) -> BrowserConfig {
    BrowserConfig {
        allow_hosts: allow.iter().map(|s| (*s).to_owned()).collect(),
        search: SearchChoice::DuckDuckGoAt(Url::parse(&server.url("/ddg/")).unwrap()),
        limits: FetchLimits {
            total_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(1),
            ..FetchLimits::default()
        },
        ..BrowserConfig::default()
    }
}

async fn call(browser: &SimpleBrowser, args: BrowserCall) -> Result<ToolOutput, CallError> {
    browser
        .call(args, &ToolContext::new(std::env::temp_dir()))
        .await
}

async fn open(browser: &SimpleBrowser, url: &str) -> Result<String, CallError> {
    call(
        browser,
        BrowserCall::OpenUrl {
            url: url.to_owned(),
        },
    )
    .await
    .map(|o| o.text())
}

/// Compares with `tests/golden/NAME.txt`, the server's address written as `http://SERVER`.
/// `GLM_AGENT_UPDATE_GOLDEN=1` rewrites the file instead.
fn golden(name: &str, text: &str, server: &TestServer) {
    let text = text.replace(&server.base, "http://SERVER");
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("GLM_AGENT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, want, "golden {name}");
}

#[tokio::test]
async fn news_article_reads_like_the_model_should_see_it() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let text = open(&browser, &server.url("/news")).await.unwrap();
    golden("news_article", &text, &server);
    for noise in [
        "dataLayer",
        "font-size",
        "Accept all",
        "newsletter",
        "All rights reserved",
        "Sport",
        "Snow forecast",
    ] {
        assert!(!text.contains(noise), "{noise} leaked:\n{text}");
    }
}

#[tokio::test]
async fn docs_page_keeps_tables_and_code() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let text = open(&browser, &server.url("/docs")).await.unwrap();
    golden("docs_page", &text, &server);
    assert!(text.contains("| threads | integer | 4 |"));
    assert!(text.contains("```toml\n[widget]\nthreads = 8"));
    assert!(!text.contains("Internal note"));
}

#[tokio::test]
async fn malformed_and_non_utf8_pages_are_read() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let broken = open(&browser, &server.url("/broken")).await.unwrap();
    for part in [
        "First paragraph never closed",
        "| cell one | cell two |",
        "- another",
        "End & &unknown; 😀",
    ] {
        assert!(broken.contains(part), "{part} missing:\n{broken}");
    }
    let latin1 = open(&browser, &server.url("/latin1")).await.unwrap();
    assert!(latin1.contains("Crème brûlée – 5 €"), "{latin1}");
    assert!(latin1.contains("†Café menu†"), "{latin1}");
    let sjis = open(&browser, &server.url("/sjis")).await.unwrap();
    assert!(sjis.contains("こんにちは世界"), "{sjis}");
}

#[tokio::test]
async fn a_20_mb_page_is_capped_and_cut() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let text = open(&browser, &server.url("/big")).await.unwrap();
    assert!(
        text.contains("[The page is larger than 5242880 bytes; only the start was downloaded.]")
    );
    let visible = text.rsplit("Visible: 0% - ").next().unwrap();
    let percent: u32 = visible.trim_end_matches('%').parse().unwrap();
    assert!(percent < 5, "{percent}");
    assert!(text.chars().count() < 13_000);
}

#[tokio::test]
async fn other_content_types() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let json = open(&browser, &server.url("/data.json")).await.unwrap();
    assert!(
        json.contains("{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2\n  ]\n}"),
        "{json}"
    );
    let text = open(&browser, &server.url("/notes.txt")).await.unwrap();
    assert!(text.contains("plain notes\nsecond line"));
    let png = open(&browser, &server.url("/logo.png")).await.unwrap();
    assert!(
        png.contains("[image/png content, 8 bytes, not shown"),
        "{png}"
    );
    let missing = open(&browser, &server.url("/nope")).await.unwrap();
    assert!(missing.contains("The server answered HTTP 404."));
}

#[tokio::test]
async fn redirects_are_followed_and_rechecked() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let hop = open(&browser, &server.url("/hop")).await.unwrap();
    assert!(hop.contains(&format!("URL: {}/news", server.base)));
    let cases = [
        ("/loop", "redirected more than 5 times"),
        (
            "/to-private",
            "refused to connect to 10.0.0.7: it is a private address",
        ),
        (
            "/to-metadata",
            "it is a link-local address (cloud metadata lives here)",
        ),
        ("/to-file", "the `file` scheme is not supported"),
    ];
    for (path, want) in cases {
        let err = open(&browser, &server.url(path)).await.unwrap_err();
        assert!(err.to_string().contains(want), "{path}: {err}");
    }
    let loops = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/loop")
        .count();
    assert_eq!(loops, 6, "the first request and 5 redirects");
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let server = TestServer::start(site).await;
    let strict = SimpleBrowser::new(config(&server, &[])).unwrap();
    let err = open(&strict, &server.url("/news"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("it is a loopback address"), "{err}");
    assert!(err.contains("--allow-host 127.0.0.1"), "{err}");
    // A name is checked after resolution, by the resolver the client connects with.
    let by_name = format!("http://localhost:{}/news", server.addr.port());
    let err = open(&strict, &by_name).await.unwrap_err().to_string();
    assert!(
        err.contains("refused to connect to localhost (127.0.0.1): it is a loopback"),
        "{err}"
    );
    // Allowing the name lets it through; a redirect to it from an allowed page is checked too.
    let named = SimpleBrowser::new(config(&server, &["localhost"])).unwrap();
    assert!(open(&named, &by_name).await.unwrap().contains("Lake Ice"));
    let only_ip = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    assert!(
        open(&only_ip, &server.url("/to-localhost"))
            .await
            .unwrap()
            .contains("Lake Ice")
    );
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_stalling_server_times_out() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let started = std::time::Instant::now();
    let err = open(&browser, &server.url("/stall"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("read timeout") || err.contains("did not answer"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn search_then_mclick_opens_pages_concurrently() {
    let server = TestServer::start(site).await;
    let browser = SimpleBrowser::new(config(&server, &["127.0.0.1"])).unwrap();
    let search = call(
        &browser,
        BrowserCall::Search {
            query: "lake ice".into(),
            recency_days: Some(7),
        },
    )
    .await
    .unwrap();
    golden("ddg_search", &search.text(), &server);
    assert_eq!(
        search.observations[0].metadata.as_deref(),
        Some("browser_result")
    );
    let ddg = server.requests.lock().unwrap().last().unwrap().clone();
    assert_eq!(ddg.query.get("q").map(String::as_str), Some("lake ice"));
    assert_eq!(ddg.query.get("df").map(String::as_str), Some("w"));

    let pages = call(
        &browser,
        BrowserCall::Mclick {
            ids: vec![0, 1, 2, 42],
        },
    )
    .await
    .unwrap();
    let obs = &pages.observations;
    assert_eq!(obs.len(), 4);
    assert_eq!(
        obs[0].metadata.as_deref(),
        Some(format!("quote_result [0†{}/news]", server.base).as_str())
    );
    assert!(obs[0].text.contains("Lake Ice Arrives Early"));
    assert!(obs[1].text.contains("| Key | Type | Default |"));
    assert!(obs[2].text.contains("The server answered HTTP 404."));
    assert!(
        obs[3].text.contains("there is no source 42"),
        "{}",
        obs[3].text
    );
    // Links found in the opened pages got new ids and can be clicked too.
    let link = obs[0].text.split("【").nth(2).unwrap();
    let id: u32 = link.split('†').next().unwrap().parse().unwrap();
    assert!(id >= 3, "{link}");
}

#[tokio::test]
async fn searxng_and_brave_backends() {
    let server = TestServer::start(site).await;
    let searx = SimpleBrowser::new(BrowserConfig {
        search: SearchChoice::Searxng(Url::parse(&server.url("/searxng/")).unwrap()),
        ..config(&server, &[])
    })
    .unwrap();
    let out = call(
        &searx,
        BrowserCall::Search {
            query: "lake ice".into(),
            recency_days: Some(30),
        },
    )
    .await
    .unwrap()
    .text();
    assert_eq!(
        out,
        "# 【0†Lake ice arrives early†news.example.com】\nResidents woke to a frozen lake.\n\n\
# 【1†November weather report†weather.example.org】\nTemperatures were 4 degrees below normal.\n\n\
Visible: 0% - 100%"
    );
    let req = server.requests.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        req.query.get("time_range").map(String::as_str),
        Some("month")
    );

    let brave = |key: &str| {
        SimpleBrowser::new(BrowserConfig {
            search: SearchChoice::Brave {
                endpoint: Some(Url::parse(&server.url("/brave")).unwrap()),
                key: key.into(),
            },
            ..config(&server, &[])
        })
        .unwrap()
    };
    let out = call(
        &brave("test-key"),
        BrowserCall::Search {
            query: "lake ice".into(),
            recency_days: None,
        },
    )
    .await
    .unwrap()
    .text();
    assert!(out.starts_with("# 【0†Lake ice arrives early†news.example.com】\nResidents woke to a frozen lake, two weeks early."), "{out}");
    let err = call(
        &brave("wrong"),
        BrowserCall::Search {
            query: "q".into(),
            recency_days: None,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "Brave search failed: the service answered HTTP 401 Unauthorized; check the API key"
    );
}

#[tokio::test]
async fn unreachable_search_is_an_observation_not_a_crash() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let browser = SimpleBrowser::new(BrowserConfig {
        search: SearchChoice::Searxng(Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap()),
        ..BrowserConfig::default()
    })
    .unwrap();
    let err = call(
        &browser,
        BrowserCall::Search {
            query: "q".into(),
            recency_days: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CallError::Respond(m) if m.starts_with("SearXNG search failed: the service is unreachable")),
        "{err}"
    );
}

#[test]
fn search_choice_parsing() {
    let env = |k: &str| match k {
        "BRAVE_SEARCH_API_KEY" => Some("k".to_owned()),
        "SEARXNG_URL" => Some("http://searx.lan:8888/".to_owned()),
        _ => None,
    };
    assert_eq!(
        SearchChoice::parse("duckduckgo", env),
        Ok(SearchChoice::DuckDuckGo)
    );
    assert_eq!(
        SearchChoice::parse("searxng", env),
        Ok(SearchChoice::Searxng(
            Url::parse("http://searx.lan:8888/").unwrap()
        ))
    );
    assert_eq!(
        SearchChoice::parse("brave", env),
        Ok(SearchChoice::Brave {
            endpoint: None,
            key: "k".into()
        })
    );
    let no_env = |_: &str| None;
    assert!(
        SearchChoice::parse("brave", no_env)
            .unwrap_err()
            .contains("BRAVE_SEARCH_API_KEY")
    );
    assert!(
        SearchChoice::parse("bing", no_env)
            .unwrap_err()
            .contains("unknown search backend")
    );
}

#[tokio::test]
async fn search_backends_keep_keys_home_refuse_private_redirects_and_cap_bodies() {
    let server = TestServer::start(site).await;
    let search = |choice: SearchChoice| async move {
        let browser = SimpleBrowser::new(BrowserConfig {
            search: choice,
            ..BrowserConfig::default()
        })
        .unwrap();
        let result = call(
            &browser,
            BrowserCall::Search {
                query: "q".into(),
                recency_days: None,
            },
        )
        .await;
        match result {
            Ok(out) => panic!("expected an error, got {}", out.text()),
            Err(e) => e.to_string(),
        }
    };
    // A key-carrying request does not follow a redirect to another host.
    let error = search(SearchChoice::Brave {
        endpoint: Some(Url::parse(&server.url("/brave-moved")).unwrap()),
        key: "test-key".into(),
    })
    .await;
    assert!(error.contains("another host (localhost)"), "{error}");
    assert!(
        server
            .requests
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.path != "/brave"),
        "the key went to the other host"
    );
    // A redirect to a private address is refused (the endpoint's own host may be private).
    let error = search(SearchChoice::Searxng(
        Url::parse(&server.url("/searxng-moved/")).unwrap(),
    ))
    .await;
    assert!(
        error.contains("10.0.0.7") && error.contains("private"),
        "{error}"
    );
    // A response larger than the cap is an error, not a memory spike.
    let error = search(SearchChoice::DuckDuckGoAt(
        Url::parse(&server.url("/huge-search/")).unwrap(),
    ))
    .await;
    assert!(error.contains("larger than 2 MiB"), "{error}");
}
