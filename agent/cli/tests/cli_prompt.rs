//! `glm-agent prompt render|parse`, checked against the golden files byte for byte.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use glm_test_support::{glm_agent, repo_file};

#[test]
fn render_prints_exactly_the_golden_text() {
    for case in [
        "function_roundtrip",
        "builtins",
        "multi_turn_calls",
        "plain",
    ] {
        let input = repo_file(&format!("prompts/tests/golden/{case}.json"));
        let expected = std::fs::read(repo_file(&format!(
            "prompts/tests/golden/{case}.expected.txt"
        )))
        .unwrap();
        let out = glm_agent(&["prompt", "render", &input], "");
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn render_reads_stdin() {
    let out = glm_agent(
        &["prompt", "render", "-"],
        r#"{"messages": [{"role": "user", "content": "Say hi."}]}"#,
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[gMASK]<sop><|user|>\nSay hi.<|assistant|>"
    );
}

#[test]
fn render_ids_uses_the_tokenizer_without_matching_injected_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, glm_prompts::tiny::tiny_tokenizer_json()).unwrap();
    let out = glm_agent(
        &[
            "prompt",
            "render",
            "-",
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--ids",
        ],
        r#"{"messages": [{"role": "user", "content": "a<|observation|>"}]}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap();
    let mut want = vec![151_331, 151_333, 151_336, u32::from(b'\n'), u32::from(b'a')];
    // The tiny tokenizer gives each printable byte its own value as id.
    want.extend("<|observation|>".bytes().map(u32::from));
    want.push(151_337);
    assert_eq!(ids, want);
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["prompt", "render", "/no/such/file.json"],
            "",
            "cannot read /no/such/file.json",
        ),
        (
            &["prompt", "render", "-"],
            "{not json",
            "invalid conversation",
        ),
        (
            &["prompt", "render", "-"],
            r#"{"messages": [{"role": "robot", "content": "x"}]}"#,
            "unknown variant `robot`",
        ),
        (
            &["prompt", "render", "-"],
            r#"{"msgs": []}"#,
            "expected a JSON object",
        ),
        (
            &[
                "prompt",
                "render",
                "-",
                "--tokenizer",
                "/no/tokenizer.json",
                "--ids",
            ],
            r#"{"messages": []}"#,
            "cannot load tokenizer /no/tokenizer.json",
        ),
    ];
    for (args, stdin, want) in cases {
        let out = glm_agent(args, stdin);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn parse_prints_one_json_object() {
    let cases = [
        (
            "get_weather\n{\"city\": \"Oslo\"}<|observation|>",
            json!({"kind": "call", "name": "get_weather", "arguments": {"city": "Oslo"}}),
        ),
        (
            "python\n```python\nprint(1)\n```<|observation|>",
            json!({"kind": "call", "name": "python", "arguments": {"code": "print(1)"}}),
        ),
        (
            "simple_browser\nsearch(\"q\", recency_days=2)",
            json!({"kind": "call", "name": "simple_browser",
                   "arguments": {"search": {"query": "q", "recency_days": 2}}}),
        ),
        (
            "simple_browser\nmclick([1])",
            json!({"kind": "call", "name": "simple_browser", "arguments": {"mclick": {"ids": [1]}}}),
        ),
        (
            "simple_browser\nopen_url(\"https://a.b/\")",
            json!({"kind": "call", "name": "simple_browser",
                   "arguments": {"open_url": {"url": "https://a.b/"}}}),
        ),
        (
            "\nHello.<|user|>",
            json!({"kind": "answer", "text": "Hello."}),
        ),
    ];
    for (stdin, want) in cases {
        let out = glm_agent(
            &[
                "prompt",
                "parse",
                "--tools",
                "get_weather,python,simple_browser",
            ],
            stdin,
        );
        assert!(out.status.success());
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got, want, "{stdin:?}");
    }
    let out = glm_agent(
        &["prompt", "parse", "--tools", "get_weather"],
        "get_weather\n{oops",
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["kind"], "malformed");
    assert_eq!(got["name"], "get_weather");
    assert!(got["reason"].as_str().unwrap().contains("not valid JSON"));
}
