//! `glm-agent tools list|call` against a page served on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use glm_test_support::glm_agent;

/// Serves one fixed HTML page to every request, on a background thread.
fn serve_page(html: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    format!("http://{addr}")
}

const PAGE: &str = "<html><head><title>Local page</title></head><body><nav>menu</nav>\
<h1>Hello</h1><p>A <a href=\"/next\">next page</a>.</p></body></html>";

#[test]
fn list_shows_every_tool_with_its_schema() {
    let out = glm_agent(&["tools", "list"], "");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("python\n  Run Python in a stateful notebook"),
        "{text}"
    );
    assert!(
        text.contains("\n\nsimple_browser\n  Search the web"),
        "{text}"
    );
    let out = glm_agent(&["tools", "list", "--json"], "");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["name"], "python");
    assert_eq!(
        json[0]["parameters"]["required"],
        serde_json::json!(["code"])
    );
    assert_eq!(json[1]["name"], "simple_browser");
    assert_eq!(
        json[1]["parameters"]["oneOf"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn call_prints_the_page_as_the_model_sees_it() {
    let base = serve_page(PAGE);
    let args = format!("open_url(\"{base}/x\")");
    let out = glm_agent(
        &[
            "tools",
            "call",
            "simple_browser",
            &args,
            "--allow-host",
            "127.0.0.1",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let host = "127.0.0.1";
    assert_eq!(
        text,
        format!(
            "【0†Local page†{host}】\nURL: {base}/x\n\n# Hello\n\nA 【1†next page†{host}】.\n\nVisible: 0% - 100%\n"
        )
    );
}

#[test]
fn call_without_allow_host_refuses_with_a_reason() {
    let base = serve_page(PAGE);
    let args = format!("open_url(\"{base}/x\")");
    let out = glm_agent(&["tools", "call", "simple_browser", &args], "");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Error: `simple_browser` failed: refused to connect to 127.0.0.1: it is a loopback address"),
        "{text}"
    );
    assert!(text.contains("--allow-host 127.0.0.1"));
    assert!(out.stderr.is_empty());
}

#[test]
fn bad_calls() {
    let out = glm_agent(&["tools", "call", "no_such_tool", "{}"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown tool `no_such_tool`; available: python, simple_browser")
    );

    let out = glm_agent(&["tools", "call", "simple_browser", "-"], "fetch(1)");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Error: the simple_browser call does not parse: unknown function `fetch`"),
        "{text}"
    );

    let out = glm_agent(&["tools", "list", "--search", "bing"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown search backend `bing`"));
}

#[test]
fn python_call_prints_the_notebook_output() {
    let out = glm_agent(&["tools", "call", "python", "print(1+1)"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "2\n");
    let out = glm_agent(
        &["tools", "call", "python", "-"],
        "import sys\nsys.version_info[:2]",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "(3, 15)\n");
}
