//! Expected function calls of a case, judged on the abstract syntax by BFCL's checker rules
//! ([`crate::bfcl::ast`]): the case's JSON Schema declarations are read as BFCL's types, one
//! expected call is checked against the function of its name, several are matched in any
//! order.

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

impl ExpectedCall {
    /// The call as one entry of BFCL's `ground_truth`: `{name: {argument: [allowed]}}`.
    pub fn to_ground_truth(&self) -> Value {
        let args: Map<String, Value> = self
            .args
            .iter()
            .map(|(k, v)| match v {
                Value::Array(_) => (k.clone(), v.clone()),
                one => (k.clone(), Value::Array(vec![one.clone()])),
            })
            .collect();
        let mut call = Map::new();
        call.insert(self.name.clone(), Value::Object(args));
        Value::Object(call)
    }
}

/// A function declaration in JSON Schema types as BFCL declares it: `object` is `dict`,
/// `number` is `float`, a property without a type is `any`, and `required` is always there.
pub fn bfcl_declaration(function: &Value) -> Value {
    fn types(schema: &Value) -> Value {
        let Value::Object(map) = schema else {
            return schema.clone();
        };
        let mut out = map.clone();
        if let Some(t) = map.get("type").and_then(Value::as_str) {
            let bfcl = match t {
                "object" => "dict",
                "number" => "float",
                other => other,
            };
            out.insert("type".into(), bfcl.into());
        }
        if let Some(Value::Object(props)) = map.get("properties") {
            let props: Map<String, Value> = props
                .iter()
                .map(|(k, v)| {
                    let mut v = types(v);
                    if let Value::Object(o) = &mut v {
                        o.entry("type").or_insert_with(|| "any".into());
                    }
                    (k.clone(), v)
                })
                .collect();
            out.insert("properties".into(), Value::Object(props));
        }
        if let Some(items) = map.get("items") {
            out.insert("items".into(), types(items));
        }
        Value::Object(out)
    }
    let mut f = function.clone();
    if let Value::Object(o) = &mut f {
        let mut parameters = types(o.get("parameters").unwrap_or(&Value::Null));
        if let Value::Object(p) = &mut parameters {
            p.entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            p.entry("required")
                .or_insert_with(|| Value::Array(Vec::new()));
        }
        o.insert("parameters".into(), parameters);
    }
    f
}

/// Passes when no call was made (irrelevance).
pub fn no_call(calls: &[(String, Value)]) -> Result<(), String> {
    match calls.first() {
        None => Ok(()),
        Some((name, _)) => Err(format!("called `{name}`; no call was expected")),
    }
}

/// Judges `calls` against `expected` with BFCL's checker: one expected call is checked
/// against the function of its name, several are matched in any order.
pub fn check_calls(
    expected: &[ExpectedCall],
    calls: &[(String, Value)],
    functions: &[Value],
) -> Result<(), String> {
    if expected.is_empty() {
        return no_call(calls);
    }
    if calls.is_empty() {
        return Err("no function was called".into());
    }
    let declared: Vec<Value> = functions.iter().map(bfcl_declaration).collect();
    let truth: Vec<Value> = expected.iter().map(ExpectedCall::to_ground_truth).collect();
    let category = if expected.len() > 1 {
        "parallel"
    } else {
        "multiple"
    };
    crate::bfcl::ast::check(category, &declared, calls, &truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn functions() -> Vec<Value> {
        vec![json!({"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "threshold": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city"]
        }})]
    }

    fn expected(args: Value) -> Vec<ExpectedCall> {
        vec![ExpectedCall {
            name: "get_weather".into(),
            args: args.as_object().unwrap().clone(),
        }]
    }

    fn weather(e: &[ExpectedCall], args: Value) -> Result<(), String> {
        check_calls(e, &[("get_weather".into(), args)], &functions())
    }

    #[test]
    fn names_required_and_unexpected_arguments() {
        let e = expected(json!({"city": ["Oslo"], "days": [3, ""]}));
        assert_eq!(weather(&e, json!({"city": "Oslo"})), Ok(()));
        let other = check_calls(
            &e,
            &[("get_forecast".into(), json!({"city": "Oslo"}))],
            &functions(),
        );
        assert!(other.unwrap_err().contains("not found"));
        assert!(
            weather(&e, json!({"days": 3}))
                .unwrap_err()
                .contains("city")
        );
        assert!(
            weather(&e, json!({"city": "Oslo", "unit": "c"}))
                .unwrap_err()
                .contains("unexpected")
        );
    }

    #[test]
    fn declarations_take_bfcl_types() {
        let f = bfcl_declaration(&functions()[0]);
        assert_eq!(f["parameters"]["type"], "dict");
        assert_eq!(f["parameters"]["properties"]["threshold"]["type"], "float");
        let bare = bfcl_declaration(&json!({"name": "f", "parameters": {"type": "object",
            "properties": {"x": {}}}}));
        assert_eq!(bare["parameters"]["required"], json!([]));
        assert_eq!(bare["parameters"]["properties"]["x"]["type"], "any");
    }

    #[test]
    fn types_with_the_int_to_float_rule() {
        let e = expected(json!({"city": ["Oslo"], "threshold": [2.0, ""], "days": [2, ""]}));
        assert_eq!(weather(&e, json!({"city": "Oslo", "threshold": 2})), Ok(()));
        assert!(weather(&e, json!({"city": "Oslo", "days": 2.0})).is_err());
        assert!(weather(&e, json!({"city": "Oslo", "threshold": "2"})).is_err());
    }

    #[test]
    fn strings_are_standardised_and_lists_kept_in_order() {
        let e = expected(json!({"city": ["New York", "NYC"], "tags": [["a", "b"], ""]}));
        assert_eq!(weather(&e, json!({"city": "new-york"})), Ok(()));
        assert_eq!(
            weather(&e, json!({"city": "NYC", "tags": ["A", "b"]})),
            Ok(())
        );
        assert!(weather(&e, json!({"city": "NYC", "tags": ["b", "a"]})).is_err());
    }

    #[test]
    fn several_calls_match_in_any_order() {
        let mut want = expected(json!({"city": ["Oslo"]}));
        want.extend(expected(json!({"city": ["Paris"]})));
        let call = |c: &str| ("get_weather".to_owned(), json!({ "city": c }));
        assert_eq!(
            check_calls(&want, &[call("Paris"), call("Oslo")], &functions()),
            Ok(())
        );
        assert!(check_calls(&want, &[call("Oslo"), call("Oslo")], &functions()).is_err());
        assert!(check_calls(&want, &[call("Oslo")], &functions()).is_err());
        assert_eq!(check_calls(&[], &[], &functions()), Ok(()));
    }
}
