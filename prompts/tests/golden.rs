//! Renders every `golden/*.json` and compares with `golden/*.expected.txt`, which
//! `golden/render.py` produced with the official template and Python's jinja2.

use std::fs;
use std::path::PathBuf;

use glm_prompts::{Conversation, render, render_message, render_segments};
use pretty_assertions::assert_eq;

fn cases() -> Vec<(String, Conversation, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let input = fs::read_to_string(&path).unwrap();
            let expected = fs::read_to_string(dir.join(format!("{stem}.expected.txt"))).unwrap();
            let conversation =
                Conversation::from_json(&input).unwrap_or_else(|e| panic!("{stem}: {e}"));
            out.push((stem, conversation, expected));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn renders_match_the_official_template() {
    let cases = cases();
    assert!(cases.len() >= 14, "only {} golden cases", cases.len());
    for (name, conversation, expected) in cases {
        assert_eq!(
            render(&conversation.messages, true),
            expected,
            "case {name}"
        );
    }
}

#[test]
fn json_round_trip_keeps_the_render() {
    for (name, conversation, expected) in cases() {
        let again = Conversation::from_json(&conversation.to_json()).unwrap();
        assert_eq!(render(&again.messages, true), expected, "case {name}");
    }
}

#[test]
fn appending_one_message_extends_the_prompt() {
    for (name, conversation, _) in cases() {
        let messages = &conversation.messages;
        for k in 0..messages.len() {
            let mut grown = render_segments(&messages[..k], false).to_text();
            grown.push_str(&render_message(&messages[k]).to_text());
            assert_eq!(
                grown,
                render(&messages[..=k], false),
                "case {name}, message {k}"
            );
        }
    }
}

#[test]
fn without_generation_prompt_there_is_no_trailing_assistant() {
    let (_, conversation, expected) = cases().into_iter().next().unwrap();
    let text = render(&conversation.messages, false);
    assert_eq!(format!("{text}<|assistant|>"), expected);
}

#[test]
fn bad_documents_are_errors_that_name_the_problem() {
    let cases = [
        (
            r#"{"messages": [{"role": "bot", "content": "x"}]}"#,
            "unknown variant `bot`",
        ),
        (
            r#"{"messages": [{"content": "x"}]}"#,
            "missing field `role`",
        ),
        (
            r#"{"messages": [{"role": "user", "content": 3}]}"#,
            "invalid type",
        ),
        (
            r#"{"messages": [{"role": "system", "tools": [{"type": "browser"}]}]}"#,
            "unknown variant `browser`",
        ),
        (
            r#"{"messages": [{"role": "system", "tools": [{"type": "function", "function": {"description": "d"}}]}]}"#,
            "needs a string \"name\"",
        ),
        (r#"{"messages": "#, "EOF"),
        (r#"[]"#, "expected a JSON object {\"messages\": [...]}"),
        (r#"{"msgs": []}"#, "expected a JSON object"),
    ];
    for (input, want) in cases {
        let err = Conversation::from_json(input).unwrap_err().to_string();
        assert!(err.contains(want), "{input}: {err}");
        assert!(!err.contains('\n'), "{input}: error is not one line: {err}");
    }
}

#[test]
fn null_content_and_metadata_read_as_absent() {
    let c = Conversation::from_json(
        r#"{"messages": [{"role": "user", "content": null, "metadata": null}, {"role": "user", "content": "hi"}]}"#,
    )
    .unwrap();
    assert_eq!(
        render(&c.messages, true),
        "[gMASK]<sop><|user|>\nhi<|assistant|>"
    );
}
