//! BFCL's AST checker for its Python-language categories, rule for rule, so that a verdict
//! here is the verdict the leaderboard gives the same calls.
//!
//! Values are judged with Python's semantics, because the checker is Python: JSON integers are
//! `int`, numbers with a fraction or exponent `float`; `==` compares `bool`, `int` and `float`
//! by value (`True == 1 == 1.0`), lists item by item, dicts key by key; `x in list` is `==`
//! against each item. Where BFCL's data meets a branch of its checker that would raise in
//! Python (an answer shape the code does not expect), the call is judged wrong with a reason
//! that says so: BFCL's run would stop there.
//!
//! The rules, as the checker applies them (`ast_checker.py` in `bfcl-eval` 2026.3.23):
//! - category: `parallel` in the name → every expected call matched by a different call, in
//!   any order, taking for each expected call (in order) the first call that matches; else
//!   `multiple` in the name → exactly one call, checked against the expected function; else
//!   exactly one call, checked against the first declared function.
//! - one call: the declared function's name; every `required` parameter present; no parameter
//!   that is not declared or has no allowed values; each value's type as declared (`integer`,
//!   `float` (an `int` is taken as a `float`), `string`, `boolean`, `array` and `tuple`
//!   (lists, items checked one level deep), `dict`, `any` (a string)); a value of another
//!   type passes the type check when it has the type of the first allowed value (BFCL calls
//!   it a variable); then strings, lists of strings and dicts are compared after
//!   standardisation (the characters ` ,./-_*^` removed, lower case, `'` as `"`), other
//!   values with `==`; a left-out parameter must have `""` among its allowed values.

use serde_json::{Map, Value};

/// BFCL's verdict on a list of calls: `Ok` when valid, else the checker's reason.
pub type AstVerdict = Result<(), String>;

/// Python's type of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PyType {
    None,
    Bool,
    Int,
    Float,
    Str,
    List,
    Dict,
}

fn py_type(v: &Value) -> PyType {
    match v {
        Value::Null => PyType::None,
        Value::Bool(_) => PyType::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => PyType::Int,
        Value::Number(_) => PyType::Float,
        Value::String(_) => PyType::Str,
        Value::Array(_) => PyType::List,
        Value::Object(_) => PyType::Dict,
    }
}

fn py_name(t: PyType) -> &'static str {
    match t {
        PyType::None => "NoneType",
        PyType::Bool => "bool",
        PyType::Int => "int",
        PyType::Float => "float",
        PyType::Str => "str",
        PyType::List => "list",
        PyType::Dict => "dict",
    }
}

/// BFCL's `PYTHON_TYPE_MAPPING`.
fn declared_type(name: &str) -> Option<PyType> {
    Some(match name {
        "string" | "any" => PyType::Str,
        "integer" => PyType::Int,
        "float" => PyType::Float,
        "boolean" => PyType::Bool,
        "array" | "tuple" => PyType::List,
        "dict" => PyType::Dict,
        _ => return None,
    })
}

/// A number as Python sees it, for `==` across `bool`, `int` and `float`.
enum PyNum {
    Int(i128),
    Float(f64),
}

fn py_num(v: &Value) -> Option<PyNum> {
    match v {
        Value::Bool(b) => Some(PyNum::Int(i128::from(*b))),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(PyNum::Int(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Some(PyNum::Int(i128::from(u)))
            } else {
                n.as_f64().map(PyNum::Float)
            }
        }
        _ => None,
    }
}

/// Python's `a == b` on JSON values.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (py_num(a), py_num(b)) {
        return match (x, y) {
            (PyNum::Int(x), PyNum::Int(y)) => x == y,
            (PyNum::Float(x), PyNum::Float(y)) => x == y,
            // Python compares an int and a float exactly.
            (PyNum::Int(i), PyNum::Float(f)) | (PyNum::Float(f), PyNum::Int(i)) => {
                f.fract() == 0.0 && f.abs() < 1.8e38 && f as i128 == i
            }
        };
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// Python's `x in items`.
fn py_in(x: &Value, items: &[Value]) -> bool {
    items.iter().any(|i| py_eq(x, i))
}

/// The empty string, BFCL's marker of an optional parameter.
fn is_marker(v: &Value) -> bool {
    v.as_str() == Some("")
}

/// BFCL's `standardize_string`.
pub fn standardize(s: &str) -> String {
    s.chars()
        .filter(|c| !" ,./-_*^".contains(*c))
        .collect::<String>()
        .to_lowercase()
        .replace('\'', "\"")
}

fn standardized(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(standardize(s)),
        other => other.clone(),
    }
}

/// The items Python's `range(len(x))` / `x[i]` walks for a list (its items) or a string (its
/// characters); anything else makes the checker raise.
fn py_items(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(items) => Ok(items.clone()),
        Value::String(s) => Ok(s.chars().map(|c| Value::String(c.to_string())).collect()),
        other => Err(format!(
            "BFCL's checker cannot read {other} as a list of allowed values"
        )),
    }
}

/// The allowed values of one parameter, which BFCL's data gives as a list.
fn allowed_list(v: &Value) -> Result<&[Value], String> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("BFCL's checker cannot read {v} as a list of allowed values"))
}

/// `type_checker`: (valid, is_variable).
fn type_check(
    value: &Value,
    allowed: &[Value],
    expected: PyType,
    nested: Option<PyType>,
) -> Result<(bool, bool), String> {
    let answer_type = allowed.iter().find(|a| !is_marker(a)).map(py_type);
    let is_variable = answer_type.is_some_and(|t| t != expected);
    if py_type(value) == expected {
        let Some(nested) = nested else {
            return Ok((true, is_variable));
        };
        for item in allowed {
            let mut fits = true;
            if let Value::Array(inner) = item {
                let values = value.as_array().map(Vec::as_slice).unwrap_or_default();
                for v in values {
                    if !type_check(v, inner, nested, None)?.0 {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                return Ok((true, is_variable));
            }
        }
        return Ok((false, is_variable));
    }
    if answer_type == Some(py_type(value)) {
        return Ok((true, true));
    }
    Ok((false, is_variable))
}

fn string_check(param: &str, value: &str, allowed: &[Value]) -> AstVerdict {
    let want: Vec<String> = allowed
        .iter()
        .filter_map(Value::as_str)
        .map(standardize)
        .collect();
    if want.contains(&standardize(value)) {
        Ok(())
    } else {
        Err(format!(
            "invalid value for `{param}`: {value:?}, expected one of {}",
            Value::from(allowed.to_vec())
        ))
    }
}

fn list_check(param: &str, value: &[Value], allowed: &[Value]) -> AstVerdict {
    let got = Value::Array(value.iter().map(standardized).collect());
    let mut want = Vec::new();
    for a in allowed {
        want.push(Value::Array(
            py_items(a)?.iter().map(standardized).collect(),
        ));
    }
    if py_in(&got, &want) {
        Ok(())
    } else {
        Err(format!(
            "invalid value for `{param}`: {}, expected one of {}",
            Value::from(value.to_vec()),
            Value::from(allowed.to_vec())
        ))
    }
}

fn dict_check(param: &str, value: &Map<String, Value>, allowed: &[Value]) -> AstVerdict {
    let mut reason = format!("`{param}`: no allowed dict matches");
    for candidate in allowed {
        if is_marker(candidate) {
            continue;
        }
        let Value::Object(want) = candidate else {
            return Err(format!(
                "BFCL's checker cannot read {candidate} as an allowed dict for `{param}`"
            ));
        };
        let mut fits = true;
        for (key, v) in value {
            let Some(options) = want.get(key) else {
                reason = format!("unexpected dict key `{key}` in `{param}`");
                fits = false;
                break;
            };
            let options: Vec<Value> = py_items(options)?.iter().map(standardized).collect();
            if !py_in(&standardized(v), &options) {
                reason = format!("invalid value for `{param}`.`{key}`: {v}");
                fits = false;
                break;
            }
        }
        for (key, options) in want {
            if value.contains_key(key) {
                continue;
            }
            let optional = match options {
                Value::Array(items) => items.iter().any(is_marker),
                // `"" in some_string` is always true in Python.
                Value::String(_) => true,
                Value::Object(o) => o.contains_key(""),
                other => {
                    return Err(format!(
                        "BFCL's checker cannot read {other} as allowed values of `{param}`.`{key}`"
                    ));
                }
            };
            if !optional {
                reason = format!("missing dict key `{key}` in `{param}`");
                fits = false;
                break;
            }
        }
        if fits {
            return Ok(());
        }
    }
    Err(reason)
}

fn list_dict_check(param: &str, value: &[Value], allowed: &[Value]) -> AstVerdict {
    let mut reason = format!("`{param}`: no allowed list of dicts matches");
    for candidate in allowed {
        let items = match candidate {
            Value::Object(o) => {
                // `len(dict)` then `dict[i]` with an int: BFCL's checker raises unless the
                // lengths differ.
                if o.len() == value.len() {
                    return Err(format!(
                        "BFCL's checker cannot index {candidate} as a list for `{param}`"
                    ));
                }
                reason = format!("wrong number of dicts in `{param}`");
                continue;
            }
            other => py_items(other)?,
        };
        if items.len() != value.len() {
            reason = format!("wrong number of dicts in `{param}`");
            continue;
        }
        let mut fits = true;
        for (got, want) in value.iter().zip(&items) {
            let Value::Object(got) = got else {
                return Err(format!(
                    "BFCL's checker cannot read {got} as a dict in `{param}`"
                ));
            };
            if let Err(why) = dict_check(param, got, std::slice::from_ref(want)) {
                reason = why;
                fits = false;
                break;
            }
        }
        if fits {
            return Ok(());
        }
    }
    Err(reason)
}

/// `simple_function_checker`: one call (`name`, `args`) against one declared function and one
/// possible answer (`{function: {param: [allowed]}}`, whose name is not looked at).
pub fn check_call(function: &Value, name: &str, args: &Value, answer: &Value) -> AstVerdict {
    let possible = answer
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_object)
        .ok_or_else(|| format!("BFCL's checker cannot read the possible answer {answer}"))?;
    let expected_name = function["name"]
        .as_str()
        .ok_or("BFCL's checker needs the function's name")?;
    if name != expected_name {
        return Err(format!(
            "function `{expected_name}` not found in the output (called `{name}`)"
        ));
    }
    let Value::Object(given) = args else {
        return Err(format!("BFCL's checker cannot read the arguments {args}"));
    };
    let properties = function["parameters"]["properties"]
        .as_object()
        .ok_or("BFCL's checker needs the function's parameter properties")?;
    let required = function["parameters"]["required"]
        .as_array()
        .ok_or("BFCL's checker needs the function's required parameters")?;
    for r in required {
        let r = r.as_str().unwrap_or_default();
        if !given.contains_key(r) {
            return Err(format!("missing required parameter `{r}`"));
        }
    }
    for (param, value) in given {
        let (Some(details), Some(allowed)) = (properties.get(param), possible.get(param)) else {
            return Err(format!("unexpected parameter `{param}`"));
        };
        check_param(param, value, details, allowed_list(allowed)?)?;
    }
    for (param, allowed) in possible {
        if !given.contains_key(param) && !py_in(&Value::from(""), allowed_list(allowed)?) {
            return Err(format!(
                "parameter `{param}` not given and not marked as optional"
            ));
        }
    }
    Ok(())
}

/// One parameter's type and value.
fn check_param(param: &str, value: &Value, details: &Value, allowed: &[Value]) -> AstVerdict {
    let description = details["type"].as_str().unwrap_or_default();
    let expected = declared_type(description).ok_or_else(|| {
        format!("BFCL's checker does not know the type {description:?} of `{param}`")
    })?;
    let nested = if matches!(description, "array" | "tuple") {
        let inner = details["items"]["type"].as_str().unwrap_or_default();
        Some(declared_type(inner).ok_or_else(|| {
            format!("BFCL's checker does not know the item type {inner:?} of `{param}`")
        })?)
    } else {
        None
    };
    // Python's int is taken where a float is declared.
    let value = match (description, value) {
        ("float", Value::Number(n)) if n.is_i64() || n.is_u64() => {
            n.as_f64().map_or_else(|| value.clone(), Value::from)
        }
        _ => value.clone(),
    };
    let (valid, is_variable) = type_check(&value, allowed, expected, nested)?;
    if !valid {
        return Err(format!(
            "`{param}` should be of type {description}, got {} ({value})",
            py_name(py_type(&value))
        ));
    }
    if !is_variable {
        match (&value, expected, nested) {
            (Value::Object(map), PyType::Dict, _) => return dict_check(param, map, allowed),
            (Value::Array(items), PyType::List, Some(PyType::Dict)) => {
                return list_dict_check(param, items, allowed);
            }
            (Value::String(s), PyType::Str, _) => return string_check(param, s, allowed),
            (Value::Array(items), PyType::List, _) => return list_check(param, items, allowed),
            _ => {}
        }
    }
    if py_in(&value, allowed) {
        Ok(())
    } else {
        Err(format!(
            "invalid value for `{param}`: {value}, expected one of {}",
            Value::from(allowed.to_vec())
        ))
    }
}

/// `find_description`: the declared function of that name.
fn find<'a>(functions: &'a [Value], name: &str) -> Result<&'a Value, String> {
    functions
        .iter()
        .find(|f| f["name"] == name)
        .ok_or_else(|| format!("BFCL's checker finds no declared function `{name}`"))
}

fn expected_name(answer: &Value) -> &str {
    answer
        .as_object()
        .and_then(|o| o.keys().next())
        .map_or("", String::as_str)
}

fn same_count(made: usize, expected: usize) -> AstVerdict {
    if made == expected {
        Ok(())
    } else {
        Err(format!(
            "wrong number of calls: {made} made, {expected} expected"
        ))
    }
}

/// `ast_checker` for a Python-language category: `calls` (name and arguments, in the order
/// made) against `answers` (BFCL's `ground_truth` list), with the case's declared
/// `functions` in BFCL's own types.
pub fn check(
    category: &str,
    functions: &[Value],
    calls: &[(String, Value)],
    answers: &[Value],
) -> AstVerdict {
    if category.contains("parallel") {
        same_count(calls.len(), answers.len())?;
        let mut matched = vec![false; calls.len()];
        for (i, answer) in answers.iter().enumerate() {
            let function = find(functions, expected_name(answer))?;
            let mut last = Err(String::new());
            for (index, (name, args)) in calls.iter().enumerate() {
                if matched[index] {
                    continue;
                }
                last = check_call(function, name, args, answer);
                if last.is_ok() {
                    matched[index] = true;
                    break;
                }
            }
            if let Err(why) = last {
                return Err(format!("no call matches expected call {i}: {why}"));
            }
        }
        return Ok(());
    }
    if category.contains("multiple") {
        same_count(calls.len(), answers.len())?;
        let answer = answers.first().ok_or("BFCL's checker needs an answer")?;
        let function = find(functions, expected_name(answer))?;
        let (name, args) = &calls[0];
        return check_call(function, name, args, answer);
    }
    same_count(calls.len(), 1)?;
    let function = functions.first().ok_or("BFCL's checker needs a function")?;
    let answer = answers.first().ok_or("BFCL's checker needs an answer")?;
    check_call(function, &calls[0].0, &calls[0].1, answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function() -> Value {
        json!({"name": "f", "parameters": {"type": "dict", "properties": {
            "s": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "float"},
            "l": {"type": "array", "items": {"type": "string"}},
            "d": {"type": "dict", "properties": {}},
            "ld": {"type": "array", "items": {"type": "dict"}}
        }, "required": ["s"]}})
    }

    fn one(args: Value, answer: Value) -> AstVerdict {
        check(
            "simple_python",
            &[function()],
            &[("f".into(), args)],
            &[json!({ "f": answer })],
        )
    }

    #[test]
    fn python_equality_and_membership() {
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(2), &json!(2.0)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert_eq!(standardize("New York, 'NY'"), "newyork\"ny\"");
        // Tabs are not among the removed characters.
        assert_eq!(standardize("a\tb"), "a\tb");
    }

    #[test]
    fn a_variable_of_the_answers_type_passes_the_type_check() {
        // Declared string, ground truth `true`: BFCL takes `true` (a variable).
        assert_eq!(one(json!({"s": true}), json!({"s": [true]})), Ok(()));
        assert!(one(json!({"s": 1}), json!({"s": [true]})).is_err());
    }

    #[test]
    fn ints_are_floats_but_floats_are_not_ints() {
        assert_eq!(
            one(json!({"s": "a", "x": 2}), json!({"s": ["a"], "x": [2.0]})),
            Ok(())
        );
        assert!(one(json!({"s": "a", "n": 2.0}), json!({"s": ["a"], "n": [2]})).is_err());
    }

    #[test]
    fn optional_markers_and_empty_lists() {
        let answer = json!({"s": ["a"], "l": ["", ["x"]]});
        assert_eq!(one(json!({"s": "a"}), answer.clone()), Ok(()));
        // `""` among a list parameter's answers admits the empty list.
        assert_eq!(one(json!({"s": "a", "l": []}), answer.clone()), Ok(()));
        assert_eq!(one(json!({"s": "a", "l": ["X"]}), answer.clone()), Ok(()));
        assert!(one(json!({"s": "a", "l": ["y"]}), answer).is_err());
    }

    #[test]
    fn dicts_and_lists_of_dicts() {
        let answer = json!({"s": ["a"], "d": [{"k": ["V"], "o": [""]}], "ld": [[{"k": [1]}], ""]});
        assert_eq!(
            one(json!({"s": "a", "d": {"k": "v"}}), answer.clone()),
            Ok(())
        );
        assert!(one(json!({"s": "a", "d": {"k": "v", "z": 1}}), answer.clone()).is_err());
        assert!(one(json!({"s": "a", "d": {"o": "v"}}), answer.clone()).is_err());
        assert_eq!(
            one(
                json!({"s": "a", "d": {"k": "v"}, "ld": [{"k": 1}]}),
                answer.clone()
            ),
            Ok(())
        );
        assert!(one(json!({"s": "a", "d": {"k": "v"}, "ld": [{"k": 2}]}), answer).is_err());
    }

    #[test]
    fn parallel_calls_match_greedily_in_any_order() {
        let answers = vec![json!({"f": {"s": ["a"]}}), json!({"f": {"s": ["b"]}})];
        let calls = |a: &str, b: &str| {
            vec![
                ("f".to_owned(), json!({"s": a})),
                ("f".to_owned(), json!({"s": b})),
            ]
        };
        assert_eq!(
            check("parallel", &[function()], &calls("b", "a"), &answers),
            Ok(())
        );
        assert!(check("parallel", &[function()], &calls("a", "a"), &answers).is_err());
        assert!(check("parallel", &[function()], &calls("a", "b")[..1], &answers).is_err());
    }
}
