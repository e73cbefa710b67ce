//! Parser cases: what the model writes -> what the agent does.

use glm_prompts::{DeclaredTools, Parsed, parse};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn tools() -> DeclaredTools {
    DeclaredTools::from_names(["get_weather", "python", "simple_browser", "no_args"])
}

fn check(output: &str, want: Value) {
    assert_eq!(
        parse(output, &tools()).to_json(),
        want,
        "output: {output:?}"
    );
}

fn malformed(output: &str, name: &str, reason_part: &str) {
    match parse(output, &tools()) {
        Parsed::Malformed(m) => {
            assert_eq!(m.name, name, "output: {output:?}");
            assert!(m.reason.contains(reason_part), "{output:?}: {}", m.reason);
        }
        other => panic!("{output:?}: expected malformed, got {other:?}"),
    }
}

#[test]
fn answers() {
    check("Hello!", json!({"kind": "answer", "text": "Hello!"}));
    check(
        "\nIt is sunny.<|user|>",
        json!({"kind": "answer", "text": "It is sunny."}),
    );
    check("", json!({"kind": "answer", "text": ""}));
    check(
        "\n  Done. \n<|endoftext|>",
        json!({"kind": "answer", "text": "Done."}),
    );
}

#[test]
fn a_tool_name_in_prose_is_an_answer() {
    check(
        "I will use get_weather to check.\n{\"city\": \"Oslo\"}",
        json!({"kind": "answer", "text": "I will use get_weather to check.\n{\"city\": \"Oslo\"}"}),
    );
    check(
        "python is a great language\nprint(1)",
        json!({"kind": "answer", "text": "python is a great language\nprint(1)"}),
    );
    check(
        "get_weather {\"city\": \"Oslo\"}",
        json!({"kind": "answer", "text": "get_weather {\"city\": \"Oslo\"}"}),
    );
}

#[test]
fn an_undeclared_tool_is_an_answer() {
    check(
        "delete_files\n{\"path\": \"/\"}<|observation|>",
        json!({"kind": "answer", "text": "delete_files\n{\"path\": \"/\"}"}),
    );
}

#[test]
fn function_calls() {
    let want =
        json!({"kind": "call", "name": "get_weather", "arguments": {"city": "北京", "units": "c"}});
    check(
        "get_weather\n{\"city\": \"北京\", \"units\": \"c\"}<|observation|>",
        want.clone(),
    );
    check(
        "get_weather\n  {\"city\": \"北京\", \"units\": \"c\"}  \n\n",
        want.clone(),
    );
    check(
        "get_weather\n```json\n{\"city\": \"北京\", \"units\": \"c\"}\n```",
        want.clone(),
    );
    check(
        "get_weather\n```\n{\"city\": \"北京\", \"units\": \"c\"}\n```<|observation|>",
        want.clone(),
    );
    check(
        " get_weather \n{\"city\": \"北京\", \"units\": \"c\"}",
        want.clone(),
    );
    check(
        "get_weather\r\n{\"city\": \"北京\", \"units\": \"c\"}",
        want,
    );
    check(
        "no_args\n{}<|observation|>",
        json!({"kind": "call", "name": "no_args", "arguments": {}}),
    );
}

#[test]
fn json_inside_a_fence_may_contain_fences() {
    check(
        "get_weather\n```json\n{\"city\": \"```Oslo```\"}\n```",
        json!({"kind": "call", "name": "get_weather", "arguments": {"city": "```Oslo```"}}),
    );
}

#[test]
fn text_then_assistant_then_call_uses_the_call() {
    check(
        "Let me check the weather.<|assistant|>get_weather\n{\"city\": \"Oslo\"}<|observation|>",
        json!({"kind": "call", "name": "get_weather", "arguments": {"city": "Oslo"}}),
    );
    check(
        "get_weather\n{\"city\": \"Oslo\"}<|assistant|>\nActually, it is sunny.",
        json!({"kind": "answer", "text": "Actually, it is sunny."}),
    );
}

#[test]
fn text_after_the_stop_token_is_ignored() {
    check(
        "get_weather\n{\"city\": \"Oslo\"}<|observation|>\n{\"temp\": 3}<|assistant|>python\nx",
        json!({"kind": "call", "name": "get_weather", "arguments": {"city": "Oslo"}}),
    );
}

#[test]
fn broken_function_arguments_are_malformed() {
    malformed(
        "get_weather\n{\"city\": \"Oslo\"",
        "get_weather",
        "not valid JSON",
    );
    malformed("get_weather\n{city: Oslo}", "get_weather", "not valid JSON");
    malformed(
        "get_weather\n{\"city\": \"Oslo\"} thanks",
        "get_weather",
        "not valid JSON",
    );
    malformed(
        "get_weather\n[\"Oslo\"]",
        "get_weather",
        "must be a JSON object, got an array",
    );
    malformed("get_weather\n\"Oslo\"", "get_weather", "got a string");
    malformed(
        "get_weather<|observation|>",
        "get_weather",
        "has no arguments",
    );
    malformed("get_weather\n   \n", "get_weather", "has no arguments");
    malformed(
        "get_weather\n```json\n{\"a\": }\n```",
        "get_weather",
        "not valid JSON",
    );
}

#[test]
fn python_calls() {
    let want = |code: &str| json!({"kind": "call", "name": "python", "arguments": {"code": code}});
    check("python\nprint(1 + 1)<|observation|>", want("print(1 + 1)"));
    check(
        "python\n```python\nimport math\nmath.pi\n```<|observation|>",
        want("import math\nmath.pi"),
    );
    check("python\n```py\nx = 1\n```", want("x = 1"));
    check(
        "python\n```python\ndoc = \"\"\"\n```\ncode\n```\n\"\"\"\nprint(doc)\n```",
        want("doc = \"\"\"\n```\ncode\n```\n\"\"\"\nprint(doc)"),
    );
    check(
        "python\n```python\nx = 2\n```\nThis prints two.",
        want("x = 2"),
    );
    check(
        "python\n    for i in range(2):\n        print(i)",
        want("for i in range(2):\n        print(i)"),
    );
    malformed("python\n", "python", "no code");
    malformed("python\n```python\n```", "python", "no code");
}

#[test]
fn browser_calls() {
    check(
        "simple_browser\nsearch(\"GLM-4 release date\", recency_days=7)<|observation|>",
        json!({"kind": "call", "name": "simple_browser",
               "arguments": {"search": {"query": "GLM-4 release date", "recency_days": 7}}}),
    );
    check(
        "simple_browser\nsearch(\"rust wasm\")",
        json!({"kind": "call", "name": "simple_browser",
               "arguments": {"search": {"query": "rust wasm", "recency_days": null}}}),
    );
    check(
        "simple_browser\nmclick([0, 3, 5])<|observation|>",
        json!({"kind": "call", "name": "simple_browser", "arguments": {"mclick": {"ids": [0, 3, 5]}}}),
    );
    check(
        "simple_browser\nopen_url(\"https://example.com/a?b=1&c='d'\")",
        json!({"kind": "call", "name": "simple_browser",
               "arguments": {"open_url": {"url": "https://example.com/a?b=1&c='d'"}}}),
    );
    malformed(
        "simple_browser\nclick(3)",
        "simple_browser",
        "unknown function `click`",
    );
    malformed(
        "simple_browser\nsearch(GLM)",
        "simple_browser",
        "expected a string",
    );
    malformed(
        "simple_browser\nmclick([1, \"two\"])",
        "simple_browser",
        "must be integers",
    );
    malformed(
        "simple_browser\n",
        "simple_browser",
        "expected a function call",
    );
}

#[test]
fn declared_tools_come_from_the_conversation() {
    let conversation =
        glm_prompts::Conversation::from_json(include_str!("golden/all_tool_kinds.json")).unwrap();
    let tools = DeclaredTools::from_messages(&conversation.messages);
    assert_eq!(
        tools.names().collect::<Vec<_>>(),
        ["simple_browser", "get_weather", "python"]
    );
    // cogview is rendered but not run, so its "calls" are answers.
    assert!(matches!(parse("cogview\na cat", &tools), Parsed::Answer(_)));
}
