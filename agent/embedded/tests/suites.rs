//! Every built-in suite through the embedded engine and a tiny random model.

use glm_agent::Settings;
use glm_agent::engine::Sampling;
use glm_eval_runner::{BUILTIN_SUITES, EngineChoice, SuiteOptions, rescore, run_suite};
use glm_evals::case::{BuiltinScorer, Case, read_suite};
use glm_tools::builtins::BuiltinOptions;

/// A built-in suite's cases.
fn suite(name: &str) -> Vec<Case> {
    let (_, text) = BUILTIN_SUITES.iter().find(|(n, _)| *n == name).unwrap();
    read_suite(text).unwrap()
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

/// Every suite through the embedded engine and a tiny random model: scores are noise, the
/// plumbing (traces, verdicts, token counts, re-scoring) is what is checked.
#[test]
fn every_suite_runs_on_a_tiny_generated_model() {
    use glm_eval_runner::needle_cases;
    let fixture = crate::embedded::fixture();
    let engine = crate::embedded::load(&fixture.mapped, true);
    let encoder = glm_prompts::Encoder::from_file(&fixture.mapped.join("tokenizer.json")).unwrap();
    let mut cases: Vec<Case> = suite("function_calling").into_iter().step_by(10).collect();
    cases.extend(suite("tool_use").into_iter().step_by(3));
    cases.extend(needle_cases(&encoder, &[400], &[0.0, 1.0]));
    let out = tempfile::tempdir().unwrap();
    let builtins = BuiltinOptions::new(glm_test_support::cache_dir());
    let settings = settings();
    let runtime = crate::embedded::runtime();
    let reports = runtime
        .block_on(run_suite(
            &cases,
            &EngineChoice::Shared(&engine),
            &SuiteOptions::new(&encoder, &builtins, &settings, out.path()),
        ))
        .unwrap();
    assert_eq!(reports.len(), cases.len());
    for r in &reports {
        assert!(r.steps >= 1, "{r:?}");
        assert!(
            r.generated_tokens > 0 && r.generated_tokens <= 16 * r.steps,
            "{r:?}"
        );
        assert!(r.pass || !r.reason.is_empty(), "{r:?}");
        assert!(out.path().join(format!("{}.jsonl", r.id)).exists());
    }
    let rescored = runtime
        .block_on(rescore(out.path(), &builtins, &BuiltinScorer))
        .unwrap();
    assert_eq!(rescored.len(), cases.len());
}
