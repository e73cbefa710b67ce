//! The needle-in-a-haystack suite: long-context retrieval at chosen lengths and depths.

use glm_evals::case::Case;
use glm_prompts::Encoder;

use crate::report::CaseReport;

/// Filler sentences for the needle-in-a-haystack suite (varied so the model cannot skip them).
const HAY: &[&str] = &[
    "The river bends twice before it reaches the old mill.",
    "Merchants in the square argued about the price of wool.",
    "A light rain fell on the terraces through most of the afternoon.",
    "The library kept its oldest maps in a cedar cabinet.",
    "Children raced paper boats along the gutter by the bakery.",
    "Engineers surveyed the northern slope for a new road.",
    "The choir rehearsed the same hymn until the lamps were lit.",
    "Fishing boats returned early because of the wind.",
];

/// Cases for the long-context suite: for each length (the prompt's size in tokens, as `encoder`
/// counts them, within a sentence) and depth (0 = start, 1 = end), a haystack with one needle
/// and a question about it.
pub fn needle_cases(encoder: &Encoder, lengths: &[usize], depths: &[f64]) -> Vec<Case> {
    let question =
        "What is the secret code of the day mentioned in the text above? Answer with the code.";
    let mut cases = Vec::new();
    for &length in lengths {
        // Sentences until the text is about `length` tokens.
        let mut sentences: Vec<&str> = Vec::new();
        let mut tokens = 0;
        let per: Vec<usize> = HAY
            .iter()
            .map(|s| {
                encoder
                    .encode_text(&format!("{s} "))
                    .map(|t| t.len())
                    .unwrap_or(12)
            })
            .collect();
        // The question, the needle and the chat template take the rest.
        let overhead = encoder
            .encode_text(&format!(
                "{question} The secret code of the day is 0000-00."
            ))
            .map(|t| t.len())
            .unwrap_or(40)
            + 8;
        while tokens + overhead < length {
            let i = sentences.len() % HAY.len();
            sentences.push(HAY[i]);
            tokens += per[i];
        }
        for &depth in depths {
            let code = format!(
                "{}-{}",
                1000 + length % 9000,
                (depth * 100.0).round() as u32 + 17
            );
            let needle = format!("The secret code of the day is {code}.");
            let at = ((sentences.len() as f64) * depth.clamp(0.0, 1.0)).round() as usize;
            let mut text: Vec<&str> = sentences.clone();
            text.insert(at.min(text.len()), &needle);
            cases.push(Case {
                id: format!("needle_{length}_{}", (depth * 100.0).round() as u32),
                category: format!("{length}"),
                system: None,
                messages: Vec::new(),
                task: format!("{}\n\n{question}", text.join(" ")),
                functions: Vec::new(),
                builtins: Vec::new(),
                check: glm_evals::case::Check::Contains { text: code.clone() },
                reference: vec![format!("The code is {code}.<|user|>")],
            });
        }
    }
    cases
}

/// The needle suite's results as a grid: a row per length, a column per depth.
pub fn needle_grid(reports: &[CaseReport], lengths: &[usize], depths: &[f64]) -> String {
    let mut out = format!("{:>10}", "tokens");
    for d in depths {
        out.push_str(&format!(" {:>6}", format!("{:.0}%", d * 100.0)));
    }
    out.push('\n');
    for &l in lengths {
        out.push_str(&format!("{l:>10}"));
        for d in depths {
            let id = format!("needle_{l}_{}", (d * 100.0).round() as u32);
            let cell = match reports.iter().find(|r| r.id == id) {
                Some(r) if r.pass => "pass",
                Some(_) => "FAIL",
                None => "-",
            };
            out.push_str(&format!(" {cell:>6}"));
        }
        out.push('\n');
    }
    out
}
