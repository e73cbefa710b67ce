//! The real Berkeley Function Calling Leaderboard: `glm-agent eval convert-bfcl` on the
//! `bfcl-eval` package's data (downloaded from PyPI, pinned by sha256, cached), and verdicts
//! that agree with BFCL's own AST checker on the ground truth and on mutations of it.
//!
//! `evals/bfcl/differential.py` writes the answers (the ground truth and wrong values, missing
//! and unexpected arguments, wrong names and types, nested changes, parallel calls dropped,
//! doubled, swapped and reordered) as reference model turns and judges each with BFCL's
//! `ast_checker`; `glm-agent eval --engine reference` runs the same turns through the loop,
//! the parser and the runner's parallel-call collection, and scores them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use glm_test_support::{cache_dir, glm_agent, repo_file};
use serde_json::Value;

/// The unpacked package's data folder, fetched on first use.
fn bfcl_data() -> String {
    let cache = cache_dir().join("bfcl");
    let out = Command::new("python3")
        .arg(repo_file("evals/bfcl/differential.py"))
        .arg("fetch")
        .arg(&cache)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "fetching bfcl-eval from PyPI failed (python3 with pip and access to pypi.org are \
         needed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Questions of one turn in a question file, counted here without the converter.
fn single_turn_questions(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["question"].as_array().map(Vec::len) == Some(1)
        })
        .count()
}

#[test]
fn bfcl_converts_every_single_turn_category_and_judges_as_its_checker_does() {
    let data = bfcl_data();
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bfcl.jsonl");
    let out = glm_agent(
        &[
            "eval",
            "convert-bfcl",
            &data,
            "--out",
            suite.to_str().unwrap(),
        ],
        "",
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    print!("{log}");

    // Every category converts exactly its file's single-turn questions (Java and JavaScript
    // ones are counted as skipped).
    let text = std::fs::read_to_string(&suite).unwrap();
    let mut converted: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        *converted
            .entry(case["category"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for category in glm_evals::bfcl::SINGLE_TURN {
        let file = Path::new(&data).join(format!("BFCL_v4_{category}.json"));
        let questions = single_turn_questions(&file);
        assert!(questions > 0, "{category}");
        let got = converted.get(*category).copied().unwrap_or(0);
        if category.contains("java") {
            assert_eq!(got, 0, "{category}");
            assert!(
                log.contains(&format!("skipped: {questions} Java and JavaScript")),
                "{category}: {log}"
            );
        } else {
            assert_eq!(got, questions, "{category}");
        }
    }

    // BFCL's verdicts on the ground truth and its mutations.
    let answers = dir.path().join("answers.jsonl");
    let made = Command::new("python3")
        .arg(repo_file("evals/bfcl/differential.py"))
        .arg("answers")
        .arg(cache_dir().join("bfcl"))
        .arg(&suite)
        .arg(&answers)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    print!("{}", String::from_utf8_lossy(&made.stdout));
    let verdicts: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("answers.jsonl.verdicts.json")).unwrap(),
    )
    .unwrap();

    // Ours, through the loop and the runner.
    let started = std::time::Instant::now();
    let report = glm_agent(
        &[
            "eval",
            answers.to_str().unwrap(),
            "--engine",
            "reference",
            "--json",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        report.status.code(),
        Some(5),
        "some answers are wrong, so the run exits 5: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let reports: Vec<Value> = serde_json::from_slice(&report.stdout).unwrap();
    println!(
        "{} answers judged in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    let mut by_category: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for r in &reports {
        let id = r["id"].as_str().unwrap();
        let bfcl = &verdicts[id];
        let (valid, ours) = (
            bfcl["valid"].as_bool().unwrap(),
            r["pass"].as_bool().unwrap(),
        );
        let entry = by_category
            .entry(bfcl["category"].as_str().unwrap().to_owned())
            .or_default();
        entry.0 += 1;
        entry.1 += usize::from(valid == ours);
        entry.2 += usize::from(valid);
        if valid != ours {
            disagreements.push(format!(
                "{id} ({}): BFCL {valid}, ours {ours}: {}",
                bfcl["label"], r["reason"]
            ));
        }
    }
    assert_eq!(
        reports.len(),
        verdicts.as_object().unwrap().len(),
        "every answer was judged"
    );
    println!("category                 answers  valid  agree");
    for (category, (n, agree, valid)) in &by_category {
        println!(
            "{category:<24} {n:>7} {valid:>6} {:>6.2}%",
            100.0 * *agree as f64 / *n as f64
        );
    }
    for d in disagreements.iter().take(20) {
        println!("  {d}");
    }
    for (category, (n, agree, _)) in &by_category {
        assert!(
            *agree as f64 >= 0.999 * *n as f64,
            "{category}: {agree}/{n} verdicts agree with BFCL's checker"
        );
    }
    assert_eq!(by_category.len(), glm_evals::bfcl::SINGLE_TURN.len() - 2);
}
