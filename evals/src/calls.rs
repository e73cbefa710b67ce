//! Matching a model's function calls against expected ones on the abstract syntax, the way the
//! Berkeley Function Calling Leaderboard's AST checker does: the function name, every required
//! argument present, no argument the function does not take, each value of the declared type
//! and among the allowed values, and a list of calls matched in any order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One expected call: the function and, per argument, the values that count as right. An
/// argument whose allowed values include `""` may be left out (BFCL's marker for optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedCall {
    /// The function's name.
    pub name: String,
    /// Allowed values per argument.
    #[serde(default)]
    pub args: Map<String, Value>,
}

/// Why a call does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Another function was called.
    #[error("called `{got}`, expected `{expected}`")]
    Name {
        /// Expected name.
        expected: String,
        /// Called name.
        got: String,
    },
    /// A required argument is missing.
    #[error("`{0}` is required and missing")]
    Missing(String),
    /// An argument the function does not take, or that no expected value allows.
    #[error("unexpected argument `{0}`")]
    Unexpected(String),
    /// A value of the wrong type.
    #[error("`{arg}` should be of type {expected}, got {got}")]
    Type {
        /// The argument.
        arg: String,
        /// The declared type.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A value not among the allowed ones.
    #[error("`{arg}` = {got} is not one of {allowed}")]
    Value {
        /// The argument.
        arg: String,
        /// What was given.
        got: String,
        /// The allowed values.
        allowed: String,
    },
    /// A different number of calls.
    #[error("{got} call(s), expected {expected}")]
    Count {
        /// Expected.
        expected: usize,
        /// Made.
        got: usize,
    },
    /// Some expected call has no matching call.
    #[error("no call matches expected call {index} (`{name}`): {reason}")]
    Unmatched {
        /// Its index in the expected list.
        index: usize,
        /// Its function.
        name: String,
        /// The closest reason.
        reason: String,
    },
}

/// BFCL's string normalisation: lower case, without spaces and the punctuation `,./-_*^`.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !",./-_*^".contains(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `got` has the schema type `ty`; an integer counts as a number (BFCL's one coercion).
fn has_type(got: &Value, ty: &str) -> bool {
    match ty {
        "number" | "float" => got.is_number(),
        "integer" => got.is_i64() || got.is_u64(),
        "string" => got.is_string(),
        "boolean" => got.is_boolean(),
        "array" | "tuple" => got.is_array(),
        "object" | "dict" => got.is_object(),
        _ => true,
    }
}

/// Whether two values are equal under BFCL's rules: numbers by value (2 == 2.0), strings
/// normalised, lists element by element, objects key by key.
pub fn same_value(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => normalise(a) == normalise(b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_value(v, w)))
        }
        (a, b) => a == b,
    }
}

fn is_optional_marker(v: &Value) -> bool {
    v.as_str() == Some("")
}

/// Checks one call against one expectation, given the function's JSON schema (`parameters`).
pub fn match_call(
    expected: &ExpectedCall,
    name: &str,
    args: &Value,
    parameters: &Value,
) -> Result<(), Mismatch> {
    if name != expected.name {
        return Err(Mismatch::Name {
            expected: expected.name.clone(),
            got: name.to_owned(),
        });
    }
    let empty = Map::new();
    let given = args.as_object().unwrap_or(&empty);
    let properties = parameters["properties"].as_object().unwrap_or(&empty);
    let required: Vec<&str> = parameters["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for r in &required {
        if !given.contains_key(*r) {
            return Err(Mismatch::Missing((*r).to_owned()));
        }
    }
    for (arg, got) in given {
        let Some(allowed) = expected.args.get(arg) else {
            return Err(Mismatch::Unexpected(arg.clone()));
        };
        if let Some(ty) = properties.get(arg).and_then(|p| p["type"].as_str())
            && !has_type(got, ty)
        {
            return Err(Mismatch::Type {
                arg: arg.clone(),
                expected: ty.to_owned(),
                got: type_name(got).to_owned(),
            });
        }
        let choices: Vec<&Value> = match allowed {
            Value::Array(list) => list.iter().filter(|v| !is_optional_marker(v)).collect(),
            one => vec![one],
        };
        if !choices.iter().any(|want| same_value(want, got)) {
            return Err(Mismatch::Value {
                arg: arg.clone(),
                got: got.to_string(),
                allowed: Value::Array(choices.into_iter().cloned().collect()).to_string(),
            });
        }
    }
    // Expected arguments left out must be optional.
    for (arg, allowed) in &expected.args {
        let optional = allowed
            .as_array()
            .is_some_and(|l| l.iter().any(is_optional_marker));
        if !given.contains_key(arg) && !optional {
            return Err(Mismatch::Missing(arg.clone()));
        }
    }
    Ok(())
}

/// Checks a list of calls against a list of expectations in any order: each expected call must
/// match a different call. `parameters(name)` gives a function's schema.
pub fn match_calls(
    expected: &[ExpectedCall],
    calls: &[(String, Value)],
    parameters: &dyn Fn(&str) -> Value,
) -> Result<(), Mismatch> {
    if expected.len() != calls.len() {
        return Err(Mismatch::Count {
            expected: expected.len(),
            got: calls.len(),
        });
    }
    // Small lists: try every assignment by backtracking.
    fn assign(
        expected: &[ExpectedCall],
        calls: &[(String, Value)],
        used: &mut Vec<bool>,
        at: usize,
        parameters: &dyn Fn(&str) -> Value,
        reasons: &mut Vec<Option<Mismatch>>,
    ) -> bool {
        let Some(want) = expected.get(at) else {
            return true;
        };
        for (i, (name, args)) in calls.iter().enumerate() {
            if used[i] {
                continue;
            }
            match match_call(want, name, args, &parameters(name)) {
                Ok(()) => {
                    used[i] = true;
                    if assign(expected, calls, used, at + 1, parameters, reasons) {
                        return true;
                    }
                    used[i] = false;
                }
                Err(m) => {
                    if reasons[at].is_none() || matches!(reasons[at], Some(Mismatch::Name { .. })) {
                        reasons[at] = Some(m);
                    }
                }
            }
        }
        false
    }
    let mut used = vec![false; calls.len()];
    let mut reasons = vec![None; expected.len()];
    if assign(expected, calls, &mut used, 0, parameters, &mut reasons) {
        return Ok(());
    }
    let index = reasons.iter().position(Option::is_some).unwrap_or(0);
    Err(Mismatch::Unmatched {
        index,
        name: expected[index].name.clone(),
        reason: reasons[index].as_ref().map_or_else(
            || "taken by another expected call".to_owned(),
            ToString::to_string,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "threshold": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city"]
        })
    }

    fn expected(args: Value) -> ExpectedCall {
        ExpectedCall {
            name: "get_weather".into(),
            args: args.as_object().unwrap().clone(),
        }
    }

    /// Matches a call to `get_weather` with `args` against `e`.
    fn weather(e: &ExpectedCall, args: &Value) -> Result<(), Mismatch> {
        match_call(e, "get_weather", args, &schema())
    }

    #[test]
    fn names_required_and_unexpected_arguments() {
        let e = expected(json!({"city": ["Oslo"], "days": [3, ""]}));
        assert_eq!(weather(&e, &json!({"city": "Oslo"})), Ok(()));
        assert!(matches!(
            match_call(&e, "get_forecast", &json!({"city": "Oslo"}), &schema()),
            Err(Mismatch::Name { .. })
        ));
        assert_eq!(
            weather(&e, &json!({"days": 3})),
            Err(Mismatch::Missing("city".into()))
        );
        assert_eq!(
            weather(&e, &json!({"city": "Oslo", "unit": "c"})),
            Err(Mismatch::Unexpected("unit".into()))
        );
    }

    #[test]
    fn optional_arguments_may_be_left_out_but_not_wrong() {
        let e = expected(json!({"city": ["Oslo"], "days": [3, ""], "unit": ["c"]}));
        assert_eq!(
            weather(&e, &json!({"city": "Oslo"})),
            Err(Mismatch::Missing("unit".into())),
            "unit has no optional marker"
        );
        let e = expected(json!({"city": ["Oslo"], "days": [3, ""]}));
        assert!(matches!(
            weather(&e, &json!({"city": "Oslo", "days": 4})),
            Err(Mismatch::Value { .. })
        ));
    }

    #[test]
    fn types_with_the_integer_to_number_coercion() {
        let e = expected(json!({"city": ["Oslo"], "threshold": [2.0, ""], "days": [2, ""]}));
        // An integer where a number is declared is fine, and 2 == 2.0.
        assert_eq!(
            weather(&e, &json!({"city": "Oslo", "threshold": 2})),
            Ok(())
        );
        // A float where an integer is declared is not, nor a string for a number.
        assert!(matches!(
            weather(&e, &json!({"city": "Oslo", "days": 2.0})),
            Err(Mismatch::Type { .. })
        ));
        assert!(matches!(
            weather(&e, &json!({"city": "Oslo", "threshold": "2"})),
            Err(Mismatch::Type { .. })
        ));
    }

    #[test]
    fn strings_are_compared_normalised_and_lists_in_order() {
        let e = expected(json!({"city": ["New York", "NYC"], "tags": [["a", "b"], ""]}));
        assert_eq!(weather(&e, &json!({"city": "new-york"})), Ok(()));
        assert_eq!(
            weather(&e, &json!({"city": "NYC", "tags": ["A", "b"]})),
            Ok(())
        );
        assert!(matches!(
            weather(&e, &json!({"city": "NYC", "tags": ["b", "a"]})),
            Err(Mismatch::Value { .. })
        ));
    }

    #[test]
    fn several_calls_match_in_any_order() {
        let want = vec![
            expected(json!({"city": ["Oslo"]})),
            expected(json!({"city": ["Paris"]})),
        ];
        let params = |_: &str| schema();
        let calls = vec![
            ("get_weather".to_owned(), json!({"city": "Paris"})),
            ("get_weather".to_owned(), json!({"city": "Oslo"})),
        ];
        assert_eq!(match_calls(&want, &calls, &params), Ok(()));
        let twice = vec![
            ("get_weather".to_owned(), json!({"city": "Oslo"})),
            ("get_weather".to_owned(), json!({"city": "Oslo"})),
        ];
        assert!(matches!(
            match_calls(&want, &twice, &params),
            Err(Mismatch::Unmatched { index: 1, .. })
        ));
        assert!(matches!(
            match_calls(&want, &calls[..1], &params),
            Err(Mismatch::Count {
                expected: 2,
                got: 1
            })
        ));
        // Irrelevance: no call expected, none made.
        assert_eq!(match_calls(&[], &[], &params), Ok(()));
    }
}
