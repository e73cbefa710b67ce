//! The Berkeley Function Calling Leaderboard's published data (the `bfcl-eval` package's
//! `data/` folder, Apache-2.0) as eval cases, judged as BFCL's own checker judges them
//! ([`ast`]).
//!
//! A question file `BFCL_v<N>_<category>.json` has one JSON object per line: `id`, `question`
//! (turns, each a list of chat messages) and `function` (declarations whose parameter types use
//! Python names: `dict`, `float`, `tuple`, `any`). The file of the same name under
//! `possible_answer/` gives, per id, `ground_truth`: one `{function: {argument: [allowed
//! values]}}` per expected call, `""` marking an optional argument. Irrelevance and relevance
//! categories have no answers: the right behaviour is not to call, or to call.
//!
//! Categories are taken by their exact names ([`SINGLE_TURN`]); `simple`, `java` and
//! `javascript` are v3's names of `simple_python`, `simple_java` and `simple_javascript`. A case keeps the declarations in BFCL's types for the
//! checker and offers the model the same functions in JSON Schema types.

pub mod ast;

use std::path::Path;

use serde_json::{Map, Value};

use crate::case::{Case, Check, Turn};

/// A category's name as [`SINGLE_TURN`] spells it: v3's `simple`, `java` and `javascript` are
/// `simple_python`, `simple_java` and `simple_javascript`; every other name is itself.
pub fn category_name(name: &str) -> &str {
    match name {
        "simple" => "simple_python",
        "java" => "simple_java",
        "javascript" => "simple_javascript",
        other => other,
    }
}

/// BFCL's single-turn categories that are judged on the abstract syntax or on relevance.
pub const SINGLE_TURN: &[&str] = &[
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "irrelevance",
    "live_irrelevance",
    "live_relevance",
];

/// Why BFCL's data could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum BfclError {
    /// The data folder cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// No file holds the category.
    #[error(
        "{data}: no BFCL_v*_{category}.json; categories here: {present} (is this the bfcl_eval/data folder?)"
    )]
    UnknownCategory {
        /// The data folder.
        data: String,
        /// The category asked for.
        category: String,
        /// The single-turn categories the folder has.
        present: String,
    },
    /// A line of a file is not JSON.
    #[error("{file} line {line}: {message}")]
    Json {
        /// The file at fault.
        file: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

/// One category's conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The category, as BFCL names it.
    pub category: String,
    /// The question file it came from.
    pub file: String,
    /// The cases, converted, in the file's order.
    pub cases: Vec<Case>,
    /// Questions not converted, with why (grouped reasons and counts).
    pub skipped: Vec<(String, usize)>,
}

impl Converted {
    /// How many questions were skipped.
    pub fn skipped_count(&self) -> usize {
        self.skipped.iter().map(|(_, n)| n).sum()
    }
}

/// JSON Schema types for BFCL's Python type names, recursively (what the model is offered).
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

/// The category a file name holds: `BFCL_v4_simple_python.json` → (4, `simple_python`).
fn file_category(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("BFCL_v")?.strip_suffix(".json")?;
    let (version, category) = rest.split_once('_')?;
    Some((version.parse().ok()?, category))
}

/// The question file of `category` among `names` (a folder's file names): the exact name, in
/// the newest layout that has it; `simple` and `simple_python` stand for each other.
pub fn category_file<'a>(names: &'a [String], category: &str) -> Option<&'a str> {
    // v3 names the three simple categories `simple`, `java` and `javascript`.
    let (python, java, javascript) = (
        ["simple_python", "simple"],
        ["simple_java", "java"],
        ["simple_javascript", "javascript"],
    );
    let wanted: &[&str] = match category {
        "simple" | "simple_python" => &python,
        "simple_java" | "java" => &java,
        "simple_javascript" | "javascript" => &javascript,
        _ => std::slice::from_ref(&category),
    };
    names
        .iter()
        .filter_map(|n| file_category(n).map(|(v, c)| (v, c, n.as_str())))
        .filter(|(_, c, _)| wanted.contains(c))
        .max_by_key(|(v, _, _)| *v)
        .map(|(_, _, n)| n)
}

/// The single-turn categories a folder holds, in [`SINGLE_TURN`] order.
pub fn categories_present(names: &[String]) -> Vec<&'static str> {
    SINGLE_TURN
        .iter()
        .copied()
        .filter(|c| category_file(names, c).is_some())
        .collect()
}

fn json_lines(file: &str, text: &str) -> Result<Vec<Value>, BfclError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| BfclError::Json {
                file: file.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// A question's one turn as a case's system prompt, earlier messages and task; `Err` says why
/// it cannot be one.
fn conversation(question: &Value) -> Result<(Option<String>, Vec<Turn>, String), &'static str> {
    let turns = question.as_array().ok_or("no question turns")?;
    let [turn] = turns.as_slice() else {
        return Err("several turns (multi-turn)");
    };
    let messages = turn
        .as_array()
        .ok_or("a turn that is not a list of messages")?;
    let mut system = Vec::new();
    let mut history = Vec::new();
    for m in messages {
        let role = m["role"].as_str().unwrap_or_default();
        let content = m["content"].as_str().ok_or("a message without text")?;
        match role {
            "system" if history.is_empty() => system.push(content.to_owned()),
            "user" | "assistant" => history.push(Turn {
                role: role.to_owned(),
                content: content.to_owned(),
            }),
            _ => return Err("a message of another role"),
        }
    }
    match history.pop() {
        Some(last) if last.role == "user" => {
            let system = (!system.is_empty()).then(|| system.join("\n\n"));
            Ok((system, history, last.content))
        }
        _ => Err("the turn does not end with the user"),
    }
}

/// The first allowed value of one argument, `None` when it may be left out (BFCL's `""`
/// marker on an argument that is not required). A dict's allowed values are themselves per
/// key, as are those of a list of dicts.
fn first_allowed(allowed: &Value, declared: &Value, required: bool) -> Option<Value> {
    let items = allowed.as_array()?;
    let marker = |v: &&Value| v.as_str() == Some("");
    if !required && items.iter().any(|v| marker(&v)) {
        return None;
    }
    // A required argument whose only allowed value is the marker: `""` itself matches it.
    let first = items.iter().find(|v| !marker(v)).or(items.first())?;
    let nested = |v: &Value| match v {
        Value::Object(per_key) => Value::Object(
            per_key
                .iter()
                .filter_map(|(k, allowed)| {
                    first_allowed(allowed, &Value::Null, false).map(|v| (k.clone(), v))
                })
                .collect(),
        ),
        other => other.clone(),
    };
    match (declared["type"].as_str(), first) {
        (Some("dict"), v) => Some(nested(v)),
        (Some("array"), Value::Array(list)) if declared["items"]["type"] == "dict" => {
            Some(Value::Array(list.iter().map(nested).collect()))
        }
        (_, v) => Some(v.clone()),
    }
}

/// The model output that makes one expected call: the first allowed value of each argument,
/// optional arguments left out. BFCL's answers sometimes contradict the declarations: an
/// argument the function does not declare allowed as optional (left out here), a required one
/// marked optional (given here, since BFCL's checker asks for required arguments first; as
/// `""` when that is all it allows).
fn reference_call(answer: &Value, functions: &[Value]) -> Option<String> {
    let (name, args) = answer.as_object()?.iter().next()?;
    let parameters = functions
        .iter()
        .find(|f| f["name"] == name.as_str())
        .map(|f| f["parameters"].clone())
        .unwrap_or(Value::Null);
    let required = |arg: &str| {
        parameters["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == arg))
    };
    let mut chosen = Map::new();
    for (arg, allowed) in args.as_object()? {
        if let Some(v) = first_allowed(allowed, &parameters["properties"][arg], required(arg)) {
            chosen.insert(arg.clone(), v);
        }
    }
    Some(format!("{name}\n{}<|observation|>", Value::Object(chosen)))
}

/// What a model that calls in a relevance case could write: the first function, no arguments.
fn relevance_call(functions: &[Value]) -> Option<String> {
    let name = functions.first()?["name"].as_str()?;
    Some(format!("{name}\n{{}}<|observation|>"))
}

/// Converts one category: `questions` and `answers` are its two files' text (`answers` is
/// empty for irrelevance and relevance categories).
pub fn convert(
    category: &str,
    file: &str,
    questions: &str,
    answers: &str,
) -> Result<Converted, BfclError> {
    let mut truth: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for v in json_lines(&format!("possible_answer/{file}"), answers)? {
        if let Some(id) = v["id"].as_str() {
            truth.insert(id.to_owned(), v["ground_truth"].clone());
        }
    }
    let category = category_name(category);
    let relevance = category.contains("relevance");
    let mut converted = Converted {
        category: category.to_owned(),
        file: file.to_owned(),
        cases: Vec::new(),
        skipped: Vec::new(),
    };
    let mut skip = |why: &str| match converted.skipped.iter_mut().find(|(w, _)| w == why) {
        Some((_, n)) => *n += 1,
        None => converted.skipped.push((why.to_owned(), 1)),
    };
    let mut cases = Vec::new();
    for v in json_lines(file, questions)? {
        if category.contains("java") {
            // Java and JavaScript answers are strings BFCL converts with its own parsers of
            // those languages' literals; those checks are not reproduced here.
            skip("Java and JavaScript checks are not reproduced");
            continue;
        }
        let (system, messages, task) = match conversation(&v["question"]) {
            Ok(c) => c,
            Err(why) => {
                skip(why);
                continue;
            }
        };
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let declared: Vec<Value> = v["function"].as_array().cloned().unwrap_or_default();
        let ground_truth = if relevance {
            Vec::new()
        } else {
            match truth.get(&id) {
                Some(Value::Array(calls)) if !calls.is_empty() => calls.clone(),
                _ => {
                    skip("no possible answer");
                    continue;
                }
            }
        };
        let mut reference: Vec<String> = ground_truth
            .iter()
            .filter_map(|a| reference_call(a, &declared))
            .collect();
        if relevance && !category.contains("irrelevance") {
            reference.extend(relevance_call(&declared));
        }
        if category.contains("parallel") {
            reference.push("All the calls are made.".into());
        }
        if category.contains("irrelevance") {
            reference.push("None of the functions I have can do that.".into());
        }
        cases.push(Case {
            id,
            category: category.to_owned(),
            system,
            messages,
            task,
            functions: declared.iter().map(schema_types).collect(),
            builtins: Vec::new(),
            check: Check::Bfcl {
                category: category.to_owned(),
                functions: declared,
                ground_truth,
            },
            reference,
        });
    }
    converted.cases = cases;
    Ok(converted)
}

/// Converts `categories` (every single-turn category present when empty) from BFCL's `data/`
/// folder.
pub fn convert_folder(data: &Path, categories: &[String]) -> Result<Vec<Converted>, BfclError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BfclError::Io { path, source }
    };
    let names: Vec<String> = std::fs::read_dir(data)
        .map_err(io(data))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let wanted: Vec<String> = if categories.is_empty() {
        categories_present(&names)
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        categories.to_vec()
    };
    let mut out = Vec::new();
    for category in &wanted {
        let known = SINGLE_TURN.contains(&category.as_str())
            || ["simple", "java", "javascript"].contains(&category.as_str());
        let file = category_file(&names, category).filter(|_| known);
        let Some(file) = file else {
            return Err(BfclError::UnknownCategory {
                data: data.display().to_string(),
                category: category.clone(),
                present: categories_present(&names).join(", "),
            });
        };
        let path = data.join(file);
        let questions = std::fs::read_to_string(&path).map_err(io(&path))?;
        let answers_path = data.join("possible_answer").join(file);
        let answers = match std::fs::read_to_string(&answers_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(&answers_path)(e)),
        };
        out.push(convert(category, file, &questions, &answers)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn categories_are_found_by_their_exact_names() {
        let names: Vec<String> = [
            "BFCL_v4_simple_python.json",
            "BFCL_v4_live_simple.json",
            "BFCL_v4_multiple.json",
            "BFCL_v4_parallel_multiple.json",
            "BFCL_v4_irrelevance.json",
            "BFCL_v4_live_irrelevance.json",
            "BFCL_v3_simple.json",
            "README.md",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            category_file(&names, "simple"),
            Some("BFCL_v4_simple_python.json")
        );
        assert_eq!(
            category_file(&names, "multiple"),
            Some("BFCL_v4_multiple.json")
        );
        assert_eq!(
            category_file(&names, "irrelevance"),
            Some("BFCL_v4_irrelevance.json")
        );
        assert_eq!(category_file(&names, "parallel"), None);
        let v3: Vec<String> = vec!["BFCL_v3_simple.json".into()];
        assert_eq!(
            category_file(&v3, "simple_python"),
            Some("BFCL_v3_simple.json")
        );
    }

    #[test]
    fn questions_and_answers_become_cases() {
        let q = json!({"id": "simple_python_0", "question": [[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Area of a triangle, base 10, height 5?"}]],
            "function": [{"name": "calculate_triangle_area", "description": "Area.", "parameters": {"type": "dict",
                "properties": {"base": {"type": "integer"}, "height": {"type": "float"}, "unit": {"type": "string"}},
                "required": ["base", "height"]}}]});
        let a = json!({"id": "simple_python_0", "ground_truth": [{"calculate_triangle_area": {"base": [10], "height": [5.0], "unit": ["units", ""]}}]});
        let multi_turn = json!({"id": "simple_python_1", "question": [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]], "function": []});
        let got = convert(
            "simple",
            "BFCL_v4_simple_python.json",
            &format!("{q}\n{multi_turn}\n"),
            &format!("{a}\n"),
        )
        .unwrap();
        assert_eq!(
            got.skipped,
            vec![("several turns (multi-turn)".to_owned(), 1)]
        );
        assert_eq!(got.cases.len(), 1);
        let c = &got.cases[0];
        assert_eq!(c.category, "simple_python");
        assert_eq!(c.system.as_deref(), Some("Be brief."));
        assert_eq!(c.functions[0]["parameters"]["type"], "object");
        assert_eq!(
            c.functions[0]["parameters"]["properties"]["height"]["type"],
            "number"
        );
        let Check::Bfcl {
            functions,
            ground_truth,
            ..
        } = &c.check
        else {
            panic!("{:?}", c.check)
        };
        assert_eq!(
            functions[0]["parameters"]["properties"]["height"]["type"],
            "float"
        );
        assert_eq!(ground_truth.len(), 1);
        assert_eq!(
            c.reference,
            vec!["calculate_triangle_area\n{\"base\":10,\"height\":5.0}<|observation|>"]
        );
        let irr = convert(
            "irrelevance",
            "BFCL_v4_irrelevance.json",
            &format!("{q}\n"),
            "",
        )
        .unwrap();
        assert!(
            matches!(&irr.cases[0].check, Check::Bfcl { ground_truth, .. } if ground_truth.is_empty())
        );
    }
}
