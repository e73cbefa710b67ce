//! Properties over generated inputs: no panics anywhere, and calls round-trip byte for byte.

use glm_prompts::{BrowserCall, Conversation, DeclaredTools, Parsed, parse, render_message};
use proptest::prelude::*;

fn tools() -> DeclaredTools {
    DeclaredTools::from_names(["get_weather", "python", "simple_browser"])
}

/// Strings built from pieces a model (or an attacker) is likely to produce.
fn model_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("get_weather".to_owned()),
        Just("python".to_owned()),
        Just("simple_browser".to_owned()),
        Just("<|assistant|>".to_owned()),
        Just("<|observation|>".to_owned()),
        Just("<|user|>".to_owned()),
        Just("\n".to_owned()),
        Just("```".to_owned()),
        Just("```json\n".to_owned()),
        Just("search(\"".to_owned()),
        Just("mclick([".to_owned()),
        Just("open_url(".to_owned()),
        Just("{\"city\": ".to_owned()),
        Just("}".to_owned()),
        Just("\\".to_owned()),
        Just("【0†".to_owned()),
        "[ -~]{0,8}",
        "\\PC{0,4}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn parse_never_panics_on_any_string(s in "\\PC*") {
        let _ = parse(&s, &tools());
        let _ = BrowserCall::parse(&s);
        let _ = Conversation::from_json(&s);
    }

    #[test]
    fn parse_never_panics_on_model_like_text(s in model_like()) {
        let _ = parse(&s, &tools());
        let _ = BrowserCall::parse(&s);
    }

    #[test]
    fn a_parsed_call_renders_back_to_the_bytes_the_model_wrote(s in model_like()) {
        let last = s.split("<|observation|>").next().unwrap_or("");
        let last = last.split("<|user|>").next().unwrap_or("");
        let last = last.rsplit("<|assistant|>").next().unwrap_or("");
        let written = match parse(&s, &tools()) {
            Parsed::Call(call) => Some(call.written),
            Parsed::Malformed(bad) if !bad.written.body.is_empty() => Some(bad.written),
            Parsed::Malformed(_) | Parsed::Answer(_) => None,
        };
        if let Some(written) = written {
            let rendered = render_message(&written.to_message()).to_text();
            prop_assert_eq!(rendered, format!("<|assistant|>{last}"));
        }
    }

    #[test]
    fn browser_calls_round_trip_through_their_source(
        query in "\\PC{1,20}", days in proptest::option::of(0u32..400),
        ids in prop::collection::vec(0u32..100, 1..6), url in "[ -~]{1,30}",
    ) {
        prop_assume!(!query.trim().is_empty() && !url.trim().is_empty());
        for call in [
            BrowserCall::Search { query: query.clone(), recency_days: days },
            BrowserCall::Mclick { ids: ids.clone() },
            BrowserCall::OpenUrl { url: url.clone() },
        ] {
            prop_assert_eq!(BrowserCall::parse(&call.to_source()), Ok(call));
        }
    }
}
