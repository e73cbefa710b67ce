//! Converting the Berkeley Function Calling Leaderboard's published data (the `bfcl-eval`
//! package's `data/` folder, Apache-2.0) into eval cases, so the real benchmark runs here.
//!
//! A question file has one JSON object per line: `id`, `question` (turns of chat messages) and
//! `function` (declarations whose parameter types use Python names: `dict`, `float`, `tuple`,
//! `any`). The matching file under `possible_answer/` gives, per id, `ground_truth`: a list of
//! `{function: {argument: [allowed values]}}`, `""` marking an optional argument. Irrelevance
//! categories have no answers: the right behaviour is not to call.

use serde_json::{Map, Value};

use crate::calls::ExpectedCall;
use crate::case::{Case, Check};

/// JSON Schema types for BFCL's Python type names, recursively.
pub fn schema_types(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if k == "type" {
                    match v.as_str() {
                        Some("dict") => out.insert(k.clone(), "object".into()),
                        Some("float") => out.insert(k.clone(), "number".into()),
                        Some("tuple") => out.insert(k.clone(), "array".into()),
                        Some("any") => None,
                        _ => out.insert(k.clone(), v.clone()),
                    };
                } else {
                    out.insert(k.clone(), schema_types(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_types).collect()),
        other => other.clone(),
    }
}

/// The user's words of the first turn.
fn task_of(question: &Value) -> Option<String> {
    let turn = question.get(0)?;
    let texts: Vec<&str> = turn
        .as_array()?
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// Converts one category: `questions` and `answers` are the two files' text (`answers` is
/// empty for irrelevance categories). Cases that cannot be expressed (several turns, no user
/// text) are skipped and counted.
pub fn convert(
    category: &str,
    questions: &str,
    answers: &str,
) -> Result<(Vec<Case>, usize), String> {
    let mut truth: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for (i, line) in answers.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("answers line {}: {e}", i + 1))?;
        if let Some(id) = v["id"].as_str() {
            truth.insert(id.to_owned(), v["ground_truth"].clone());
        }
    }
    let irrelevance = category.contains("irrelevance");
    let mut cases = Vec::new();
    let mut skipped = 0;
    for (i, line) in questions.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("questions line {}: {e}", i + 1))?;
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let turns = v["question"].as_array().map_or(0, Vec::len);
        let Some(task) = task_of(&v["question"]).filter(|_| turns == 1) else {
            skipped += 1;
            continue;
        };
        let functions: Vec<Value> = v["function"]
            .as_array()
            .map(|f| f.iter().map(schema_types).collect())
            .unwrap_or_default();
        let check = if irrelevance {
            Check::NoCall
        } else {
            let Some(Value::Array(calls)) = truth.get(&id) else {
                skipped += 1;
                continue;
            };
            let mut expected = Vec::new();
            for call in calls {
                let Some((name, args)) = call.as_object().and_then(|o| o.iter().next()) else {
                    continue;
                };
                expected.push(ExpectedCall {
                    name: name.clone(),
                    args: args.as_object().cloned().unwrap_or_default(),
                });
            }
            Check::Calls { calls: expected }
        };
        cases.push(Case {
            id,
            category: category.to_owned(),
            messages: Vec::new(),
            task,
            functions,
            builtins: Vec::new(),
            check,
            reference: Vec::new(),
        });
    }
    Ok((cases, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn questions_and_answers_become_cases() {
        let q = json!({"id": "simple_0", "question": [[{"role": "user", "content": "Area of a triangle, base 10, height 5?"}]],
            "function": [{"name": "calculate_triangle_area", "description": "Area.", "parameters": {"type": "dict",
                "properties": {"base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"}},
                "required": ["base", "height"]}}]});
        let a = json!({"id": "simple_0", "ground_truth": [{"calculate_triangle_area": {"base": [10], "height": [5.0], "unit": ["units", ""]}}]});
        let multi_turn = json!({"id": "simple_1", "question": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], "function": []});
        let (cases, skipped) =
            convert("simple", &format!("{q}\n{multi_turn}\n"), &format!("{a}\n")).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(cases.len(), 1);
        let c = &cases[0];
        assert_eq!(c.functions[0]["parameters"]["type"], "object");
        assert_eq!(
            c.functions[0]["parameters"]["properties"]["height"]["type"],
            "number"
        );
        let Check::Calls { calls } = &c.check else {
            panic!("{:?}", c.check)
        };
        assert_eq!(calls[0].name, "calculate_triangle_area");
        assert_eq!(calls[0].args["unit"], json!(["units", ""]));
        let (irr, _) = convert("irrelevance", &format!("{q}\n"), "").unwrap();
        assert_eq!(irr[0].check, Check::NoCall);
    }
}
