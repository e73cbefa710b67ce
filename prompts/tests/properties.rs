//! Properties over generated inputs: no panics anywhere, and calls round-trip byte for byte.

use glm_prompts::{
    BrowserCall, Conversation, DeclaredTools, Parsed, Segment, Segments, SpecialToken, parse,
    render_message,
};
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

/// Spelled control tokens read the plain way: at each step, the earliest token anywhere in the
/// rest of the text (quadratic, but obviously right).
fn spelled_by_search(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next = SpecialToken::ALL
            .iter()
            .filter_map(|t| rest.find(t.as_str()).map(|at| (at, *t)))
            .min_by_key(|(at, _)| *at);
        let Some((at, token)) = next else {
            out.push(Segment::Text(rest.to_owned()));
            break;
        };
        if at > 0 {
            out.push(Segment::Text(rest[..at].to_owned()));
        }
        out.push(Segment::Control(token));
        rest = &rest[at + token.as_str().len()..];
    }
    out
}

/// Text dense in control tokens, their prefixes and their first characters.
fn spelled_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<|user|>".to_owned()),
        Just("<|assistant|>".to_owned()),
        Just("<|endoftext|>".to_owned()),
        Just("[gMASK]".to_owned()),
        Just("[MASK]".to_owned()),
        Just("<sop>".to_owned()),
        Just("<|use".to_owned()),
        Just("[gMA".to_owned()),
        Just("<".to_owned()),
        Just("[".to_owned()),
        Just("|".to_owned()),
        "[ -~]{0,6}",
        "\\PC{0,3}",
    ];
    prop::collection::vec(piece, 0..32).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn spelled_tokens_are_read_as_the_plain_search_reads_them(s in spelled_like()) {
        prop_assert_eq!(Segments::from_spelled(&s).0, spelled_by_search(&s));
    }

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
