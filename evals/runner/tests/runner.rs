//! Eval suites end to end: the built-in function-calling suite on its reference outputs and on
//! a tiny generated model, re-scoring stored traces, and the command line.

use glm_agent::Settings;
use glm_agent::engine::Sampling;
use glm_eval_runner::{BUILTIN_SUITES, CaseReport, EngineChoice, SuiteOptions, rescore, run_suite};
use glm_evals::case::{BuiltinScorer, Case, read_suite};
use glm_tools::builtins::BuiltinOptions;

use glm_test_support::tiny_encoder;

/// A built-in suite's cases.
fn suite(name: &str) -> Vec<Case> {
    let (_, text) = BUILTIN_SUITES.iter().find(|(n, _)| *n == name).unwrap();
    read_suite(text).unwrap()
}

/// Runs `cases` on their reference outputs, `jobs` at a time, writing into `out`.
async fn on_references(
    cases: &[Case],
    builtins: &BuiltinOptions,
    out: &std::path::Path,
    jobs: usize,
) -> Vec<CaseReport> {
    let (encoder, settings) = (tiny_encoder(), settings());
    let options = SuiteOptions {
        jobs,
        ..SuiteOptions::new(&encoder, builtins, &settings, out)
    };
    run_suite(cases, &EngineChoice::Reference, &options)
        .await
        .unwrap()
}

fn settings() -> Settings {
    Settings {
        max_step_tokens: 16,
        sampling: Sampling {
            greedy: true,
            ..Sampling::default()
        },
        ..Settings::default()
    }
}

#[tokio::test]
async fn the_function_calling_suite_passes_on_its_references_and_rescores() {
    let cases = suite("function_calling");
    assert!(cases.len() >= 60);
    for category in ["simple", "multiple", "irrelevance"] {
        assert!(
            cases.iter().filter(|c| c.category == category).count() >= 15,
            "{category}"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    let reports = on_references(&cases, &builtins, out.path(), 4).await;
    let failed: Vec<_> = reports.iter().filter(|r| !r.pass).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(out.path().join("report.json").exists());
    // A reference that calls with a wrong value fails, with the reason.
    let mut wrong = cases[0].clone();
    wrong.reference = vec![wrong.reference[0].replace("Oslo", "Bergen")];
    let reports = on_references(&[wrong], &builtins, out.path(), 1).await;
    assert!(!reports[0].pass);
    assert!(
        reports[0].reason.contains("Bergen"),
        "{}",
        reports[0].reason
    );
    // Re-scoring uses the cases as they are now: a changed expectation changes the verdict.
    let all = on_references(&cases[..3], &builtins, out.path(), 1).await;
    assert!(all.iter().all(|r| r.pass));
    let path = out.path().join("cases.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"Oslo\"", "\"Trondheim\"", 1)).unwrap();
    let again = rescore(out.path(), &builtins, &BuiltinScorer)
        .await
        .unwrap();
    assert!(
        !again[0].pass && again[1].pass && again[2].pass,
        "{again:#?}"
    );
}

/// The BFCL summary counts a suite's v3 category names (`simple`) as the leaderboard's
/// (`simple_python`): the built-in suite's 25 simple cases are in the headline.
#[test]
fn the_bfcl_summary_counts_the_simple_category_under_its_v3_name() {
    let report = |category: &str, pass: bool| glm_eval_runner::CaseReport {
        id: format!("{category}-{pass}"),
        category: category.into(),
        pass,
        reason: String::new(),
        steps: 1,
        generated_tokens: 1,
        prompt_tokens: 1,
        cached_tokens: 0,
        took_ms: 0,
    };
    // simple: 1 of 4 (v3 and current names together); multiple: 2 of 2.
    let reports = [
        report("simple", true),
        report("simple", false),
        report("simple", false),
        report("simple_python", false),
        report("multiple", true),
        report("multiple", true),
    ];
    let summary = glm_eval_runner::bfcl_summary(&reports);
    let get = |name: &str| summary.iter().find(|l| l.name == name).unwrap().accuracy;
    assert_eq!(get("  simple"), Some(0.25));
    assert_eq!(get("non-live AST"), Some((0.25 + 1.0) / 2.0));
}

#[test]
fn glm_agent_eval_on_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let ok = glm_test_support::glm_agent(
        &[
            "eval",
            "function_calling",
            "--engine",
            "reference",
            "--out",
            dir.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(
        table.contains("total        60/60 passed (100.0%)"),
        "{table}"
    );
    let score =
        glm_test_support::glm_agent(&["eval", "score", dir.to_str().unwrap(), "--json"], "");
    assert!(score.status.success());
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&score.stdout).unwrap();
    assert_eq!(reports.len(), 60);
    let missing =
        glm_test_support::glm_agent(&["eval", "no_such_suite", "--engine", "reference"], "");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("built-in suites: function_calling"));
}

#[tokio::test]
async fn the_tool_use_suite_runs_python_and_the_browser_on_the_fixture_site() {
    let cases = suite("tool_use");
    let out = tempfile::tempdir().unwrap();
    let mut builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    builtins.offline = true;
    let reports = on_references(&cases, &builtins, out.path(), 2).await;
    let failed: Vec<_> = reports.iter().filter(|r| !r.pass).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // The tools really ran: the observations hold what python printed and what the page says.
    let observed = |id: &str| {
        glm_agent::trace::Trace::read(&out.path().join(format!("{id}.jsonl")))
            .unwrap()
            .events
            .iter()
            .filter_map(|e| match e {
                glm_agent::Event::Observation { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(observed("py_squares").contains("338350"));
    assert!(
        observed("web_population").contains("131577"),
        "{}",
        observed("web_population")
    );
    assert!(observed("web_and_python").contains("280480"));
    // A Python check sees the run's files: a run that writes the wrong file fails it.
    let mut wrong = cases.iter().find(|c| c.id == "py_file").unwrap().clone();
    wrong.reference[0] = wrong.reference[0].replace("range(1, 11)", "range(1, 10)");
    let reports = on_references(&[wrong], &builtins, out.path(), 1).await;
    assert!(!reports[0].pass);
    assert!(reports[0].reason.contains("False"), "{}", reports[0].reason);
}

#[tokio::test]
async fn needle_cases_have_the_asked_length_and_depth() {
    use glm_eval_runner::{needle_cases, needle_grid};
    let encoder = tiny_encoder();
    let cases = needle_cases(&encoder, &[600, 3000], &[0.0, 0.5, 1.0]);
    assert_eq!(cases.len(), 6);
    let out = tempfile::tempdir().unwrap();
    let builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    let reports = on_references(&cases, &builtins, out.path(), 1).await;
    assert!(reports.iter().all(|r| r.pass));
    for r in &reports {
        let target: usize = r.category.parse().unwrap();
        let got = r.prompt_tokens;
        assert!(
            got.abs_diff(target) < 80,
            "{}: {got} tokens for {target}",
            r.id
        );
    }
    // The needle sits where asked.
    let at =
        |c: &Case| c.task.find("secret code of the day is").unwrap() as f64 / c.task.len() as f64;
    assert!(at(&cases[3]) < 0.05 && (at(&cases[4]) - 0.5).abs() < 0.05 && at(&cases[5]) > 0.9);
    let grid = needle_grid(&reports, &[600, 3000], &[0.0, 0.5, 1.0]);
    assert!(grid.contains("      3000   pass   pass   pass"), "{grid}");
}

#[test]
fn bfcl_data_converts_into_a_suite_that_runs() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("possible_answer")).unwrap();
    let f = json!({"name": "get_area", "description": "Area of a circle.", "parameters": {"type": "dict",
        "properties": {"radius": {"type": "float"}, "unit": {"type": "string"}}, "required": ["radius"]}});
    let q = |id: &str, text: &str| {
        json!({"id": id, "question": [[{"role": "user", "content": text}]], "function": [f]})
            .to_string()
    };
    std::fs::write(
        data.join("BFCL_v3_simple.json"),
        q("simple_0", "Area of a circle of radius 2?") + "\n",
    )
    .unwrap();
    std::fs::write(
        data.join("possible_answer/BFCL_v3_simple.json"),
        json!({"id": "simple_0", "ground_truth": [{"get_area": {"radius": [2.0], "unit": ["", "m"]}}]}).to_string() + "\n",
    )
    .unwrap();
    std::fs::write(
        data.join("BFCL_v3_irrelevance.json"),
        q("irrelevance_0", "Who wrote Hamlet?") + "\n",
    )
    .unwrap();
    let suite = dir.path().join("bfcl.jsonl");
    let out = glm_test_support::glm_agent(
        &[
            "eval",
            "convert-bfcl",
            data.to_str().unwrap(),
            "--categories",
            "simple,irrelevance",
            "--out",
            suite.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = read_suite(&std::fs::read_to_string(&suite).unwrap()).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].functions[0]["parameters"]["type"], "object");
    // Scored like any suite: a right call passes, an integer radius is accepted as a float.
    let result = glm_evals::case::RunResult {
        first_calls: vec![("get_area".into(), json!({"radius": 2}))],
        ..Default::default()
    };
    use glm_evals::case::Scorer;
    assert!(
        glm_evals::case::BuiltinScorer
            .score(&cases[0], &result)
            .pass
    );
    let missing =
        glm_test_support::glm_agent(&["eval", "convert-bfcl", dir.path().to_str().unwrap()], "");
    assert_eq!(missing.status.code(), Some(2));
}

/// A scorer of one's own judges runs in place of the built-in checks.
#[tokio::test]
async fn a_custom_scorer_judges_the_runs() {
    use glm_evals::case::{RunResult, Scorer, Verdict};
    struct ShortAnswers;
    impl Scorer for ShortAnswers {
        fn score(&self, _: &Case, result: &RunResult) -> Verdict {
            let n = result.answer.as_deref().map_or(0, str::len);
            Verdict {
                pass: n > 0 && n < 60,
                reason: format!("{n} characters"),
            }
        }
    }
    let cases: Vec<Case> = suite("function_calling")
        .into_iter()
        .filter(|c| c.category == "irrelevance")
        .collect();
    let out = tempfile::tempdir().unwrap();
    let builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    let settings = settings();
    let encoder = tiny_encoder();
    let options = SuiteOptions {
        scorer: &ShortAnswers,
        ..SuiteOptions::new(&encoder, &builtins, &settings, out.path())
    };
    let reports = run_suite(&cases, &EngineChoice::Reference, &options)
        .await
        .unwrap();
    assert!(
        reports
            .iter()
            .all(|r| r.pass && r.reason == "47 characters"),
        "{reports:#?}"
    );
}

/// A case can start from earlier turns: they are in the prompt, before the task.
#[tokio::test]
async fn a_case_with_earlier_turns() {
    let case: Case = serde_json::from_value(serde_json::json!({
        "id": "history", "category": "chat",
        "messages": [
            {"role": "user", "content": "My favourite number is 7."},
            {"role": "assistant", "content": "Noted: 7."}
        ],
        "task": "What is my favourite number?",
        "check": {"kind": "contains", "text": "7"},
        "reference": ["It is 7.<|user|>"]
    }))
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    let settings = settings();
    let encoder = tiny_encoder();
    let options = SuiteOptions::new(&encoder, &builtins, &settings, out.path());
    let reports = on_references(std::slice::from_ref(&case), &builtins, out.path(), 1).await;
    assert!(reports[0].pass, "{:?}", reports[0]);
    let trace = glm_agent::trace::Trace::read(&out.path().join("history.jsonl")).unwrap();
    let prompt = trace
        .events
        .iter()
        .find_map(|e| match e {
            glm_agent::Event::Model { prompt_delta, .. } => Some(prompt_delta.clone()),
            _ => None,
        })
        .unwrap();
    let text = encoder.decode(&prompt).unwrap();
    let earlier = text.find("My favourite number is 7.").unwrap();
    let reply = text.find("<|assistant|>\nNoted: 7.").unwrap();
    let task = text.find("What is my favourite number?").unwrap();
    assert!(earlier < reply && reply < task, "{text}");
    let mut bad = case;
    bad.messages[0].role = "robot".into();
    let err = run_suite(&[bad], &EngineChoice::Reference, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`robot`"), "{err}");
}
