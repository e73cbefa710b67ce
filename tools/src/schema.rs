//! JSON schemas for tool parameters, normalised to the plain JSON Schema GLM-4 was trained on.
//!
//! schemars writes draft 2020-12 with `$schema`, `title`, `$defs` and `$ref`, nullable types as
//! `["string", "null"]` and `anyOf` wrappers, and Rust-specific formats (`uint32`). The model
//! saw plain schemas: `type`, `description`, `enum`, `properties`, `items`, `required`. This
//! module inlines references, unwraps single-variant unions, drops `null` alternatives (an
//! optional parameter is one that is not `required`), fills in `type`, and orders keys readably.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// Keys kept, in the order they are written.
const KEY_ORDER: [&str; 17] = [
    "type",
    "description",
    "enum",
    "const",
    "format",
    "properties",
    "items",
    "required",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
];

/// Keys kept after [`KEY_ORDER`].
const TRAILING_KEYS: [&str; 4] = ["default", "examples", "oneOf", "anyOf"];

/// Formats that only restate the Rust integer or float width.
const RUST_FORMATS: [&str; 12] = [
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "float", "double",
];

/// How deep `$ref`s are followed; deeper (recursive) references become `{"type": "object"}`.
const MAX_REF_DEPTH: usize = 8;

/// The most schema nodes one normalised schema may have: inlining `$ref`s can multiply a
/// schema (eight properties referring to the next definition, eight deep, are 16.7 million
/// nodes from a few KB); past this, what is left becomes `{"type": "object"}`.
const MAX_NODES: usize = 20_000;

/// The normalised parameter schema of `T`.
pub fn parameters_schema<T: JsonSchema>() -> Value {
    let root = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>();
    normalize(root.as_value())
}

/// Normalises any schema value (see the module docs).
pub fn normalize(root: &Value) -> Value {
    let defs = root
        .get("$defs")
        .or_else(|| root.get("definitions"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut left = MAX_NODES;
    let mut out = clean(root, &defs, 0, &mut left);
    if let Value::Object(map) = &mut out {
        let union = map.contains_key("oneOf") || map.contains_key("anyOf");
        map.entry("type").or_insert_with(|| "object".into());
        if map.get("type") == Some(&Value::from("object")) && !union {
            map.entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    reorder(out)
}

fn clean(schema: &Value, defs: &Map<String, Value>, depth: usize, left: &mut usize) -> Value {
    if *left == 0 {
        return serde_json::json!({"type": "object"});
    }
    *left -= 1;
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if let Some(Value::String(reference)) = map.get("$ref") {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) if depth < MAX_REF_DEPTH => {
                let mut inlined = clean(target, defs, depth + 1, left);
                // A description next to the `$ref` describes this use; it wins.
                if let (Value::Object(out), Some(desc)) = (&mut inlined, map.get("description")) {
                    out.insert("description".into(), desc.clone());
                }
                reorder(inlined)
            }
            _ => serde_json::json!({"type": "object"}),
        };
    }
    for union in ["anyOf", "oneOf"] {
        if let Some(Value::Array(variants)) = map.get(union) {
            let kept: Vec<&Value> = variants.iter().filter(|v| !is_null_schema(v)).collect();
            if let [only] = kept.as_slice() {
                let mut merged = clean(only, defs, depth, left);
                if let Value::Object(out) = &mut merged {
                    for (key, value) in map {
                        if key != union && !out.contains_key(key) {
                            out.insert(key.clone(), clean(value, defs, depth, left));
                        }
                    }
                }
                return clean(&merged, defs, depth, left);
            }
        }
    }
    let mut out = Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), clean(v, defs, depth, left)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" => clean(value, defs, depth, left),
            "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .map(|vs| vs.iter().map(|v| clean(v, defs, depth, left)).collect())
                    .unwrap_or_default(),
            ),
            "type" => strip_null_type(value),
            "format" if value.as_str().is_some_and(|f| RUST_FORMATS.contains(&f)) => continue,
            "default" if value.is_null() => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if let Some(t) = infer_type(&out).filter(|_| !out.contains_key("type")) {
        out.insert("type".into(), t.into());
    }
    reorder(Value::Object(out))
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type") == Some(&Value::from("null")) || v.get("const") == Some(&Value::Null)
}

fn strip_null_type(value: &Value) -> Value {
    match value {
        Value::Array(types) => {
            let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            match kept.as_slice() {
                [one] => one.clone(),
                _ => Value::Array(kept),
            }
        }
        other => other.clone(),
    }
}

fn infer_type(map: &Map<String, Value>) -> Option<&'static str> {
    if map.contains_key("properties") {
        return Some("object");
    }
    if map.contains_key("items") {
        return Some("array");
    }
    let sample = map
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
        .or_else(|| map.get("const"))?;
    Some(match sample {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => return None,
    })
}

/// Keeps the known keys, in [`KEY_ORDER`] then [`TRAILING_KEYS`] order.
fn reorder(value: Value) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    let mut out = Map::new();
    for key in KEY_ORDER.iter().chain(TRAILING_KEYS.iter()) {
        if let Some(v) = map.remove(*key) {
            out.insert((*key).to_owned(), v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn refs_nullables_and_noise_are_normalised() {
        let raw = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "description": "Unit."},
                "count": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "default": null},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["tags"],
            "$defs": {"Unit": {"title": "Unit", "type": "string", "enum": ["c", "f"]}}
        });
        assert_eq!(
            normalize(&raw),
            json!({
                "type": "object",
                "properties": {
                    "unit": {"type": "string", "description": "Unit.", "enum": ["c", "f"]},
                    "count": {"type": "integer", "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["tags"]
            })
        );
    }

    #[test]
    fn recursive_refs_stop() {
        let raw = json!({
            "type": "object",
            "properties": {"node": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
        });
        let out = normalize(&raw);
        let mut depth = 0;
        let mut cur = &out["properties"]["node"];
        while let Some(next) = cur.get("properties").and_then(|p| p.get("next")) {
            cur = next;
            depth += 1;
        }
        assert!(depth <= MAX_REF_DEPTH);
        assert_eq!(cur["type"], "object");
    }

    #[test]
    fn inlined_references_are_bounded() {
        // Each definition has eight properties referring to the next: 8^8 nodes inlined.
        let mut defs = serde_json::Map::new();
        for level in 0..9 {
            let props: serde_json::Map<String, Value> = (0..8)
                .map(|p| {
                    let target = format!("#/$defs/d{}", level + 1);
                    (format!("p{p}"), serde_json::json!({"$ref": target}))
                })
                .collect();
            defs.insert(
                format!("d{level}"),
                serde_json::json!({"type": "object", "properties": props}),
            );
        }
        let raw = serde_json::json!({"$ref": "#/$defs/d0", "$defs": defs});
        assert!(raw.to_string().len() < 10_000);
        let started = std::time::Instant::now();
        let out = normalize(&raw);
        let nodes = out.to_string().matches("\"type\"").count();
        assert!(nodes <= MAX_NODES + 1, "{nodes} nodes");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
