//! JSON text exactly as Python's `json.dumps(value, ensure_ascii=False, indent=N)` writes it.
//!
//! The official template prints tool schemas with Jinja's `tojson(indent=4)`, which transformers
//! and vLLM implement with `json.dumps`. Matching it byte for byte needs Python's separators,
//! string escapes (only `"`, `\` and control characters; non-ASCII and `<>&'` stay as they are)
//! and float spelling (`1.0`, `1e-07`, `1e+16`).

use std::fmt::Write;

use serde_json::{Map, Number, Value};

/// Writes `value` as `json.dumps(value, ensure_ascii=False, indent=indent)` would.
pub fn dumps_indent(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(indent), 0);
    out
}

/// Writes `value` as `json.dumps(value, ensure_ascii=False)` would: one line, `", "` between
/// items and `": "` after keys.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None, 0);
    out
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, indent, depth + 1);
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, indent, depth),
    }
}

/// [`dumps_indent`] for an object given as a map.
pub fn dumps_object_indent(map: &Map<String, Value>, indent: usize) -> String {
    let mut out = String::new();
    write_object(&mut out, map, Some(indent), 0);
    out
}

fn write_object(out: &mut String, map: &Map<String, Value>, indent: Option<usize>, depth: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        separator(out, i, indent, depth + 1);
        write_string(out, key);
        out.push_str(": ");
        write_value(out, item, indent, depth + 1);
    }
    newline(out, indent, depth);
    out.push('}');
}

fn separator(out: &mut String, index: usize, indent: Option<usize>, depth: usize) {
    if index > 0 {
        out.push(',');
        if indent.is_none() {
            out.push(' ');
        }
    }
    newline(out, indent, depth);
}

fn newline(out: &mut String, indent: Option<usize>, depth: usize) {
    if let Some(indent) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent * depth));
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.push_str(&python_float_repr(f));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in -4..16 (with a `.0` on integral values), else `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde[-]X`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Position of the decimal point relative to the start of `digits`.
    let point = exp + 1;
    let body = if !(-4 < point && point <= 16) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.abs())
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_are_spelled_like_python() {
        let cases = [
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(f), want, "{f:e}");
        }
    }

    #[test]
    fn empty_containers_and_nesting() {
        let v = json!({"a": [], "b": {}, "c": [1, {"d": null}]});
        assert_eq!(
            dumps_indent(&v, 4),
            "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n        1,\n        {\n            \"d\": null\n        }\n    ]\n}"
        );
    }

    #[test]
    fn one_line_form() {
        let v = json!({"temp_c": 23, "desc": "sunny", "list": [1, 2.5, {}], "e": []});
        assert_eq!(
            dumps(&v),
            r#"{"temp_c": 23, "desc": "sunny", "list": [1, 2.5, {}], "e": []}"#
        );
    }

    #[test]
    fn strings_escape_only_what_python_escapes() {
        let v = json!("<a href='x'>&\"\\\n\t\u{1}\u{7f}é😀");
        assert_eq!(
            dumps_indent(&v, 4),
            "\"<a href='x'>&\\\"\\\\\\n\\t\\u0001\u{7f}é😀\""
        );
    }
}
