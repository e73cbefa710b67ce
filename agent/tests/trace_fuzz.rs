//! Fuzzing trace reading and replay: arbitrary bytes and mutations of the recorded corpus
//! never make `Trace::read` or `replay` panic or hang; they give a trace, a report or an error.
//!
//! `PROPTEST_CASES=20000 cargo test --release -p glm-agent --test all -- trace_fuzz` runs longer.

use glm_agent::replay::replay;
use glm_agent::trace::Trace;
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(glm_test_support::repo_file("evals/traces"));
    let mut traces: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    traces.sort();
    traces
}

/// One way to damage a trace.
#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Cut(usize),
    Splice(usize, Vec<u8>),
    DuplicateLine(usize),
    DropLine(usize),
    Number(usize, i64),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Flip(at, b)),
        any::<usize>().prop_map(Damage::Cut),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(at, bytes)| Damage::Splice(at, bytes)),
        any::<usize>().prop_map(Damage::DuplicateLine),
        any::<usize>().prop_map(Damage::DropLine),
        (any::<usize>(), any::<i64>()).prop_map(|(at, n)| Damage::Number(at, n)),
    ]
}

fn apply(trace: &[u8], damages: &[Damage]) -> Vec<u8> {
    let mut t = trace.to_vec();
    for d in damages {
        let len = t.len().max(1);
        match d {
            Damage::Flip(at, b) => {
                if let Some(x) = t.get_mut(at % len) {
                    *x ^= *b;
                }
            }
            Damage::Cut(at) => t.truncate(at % len),
            Damage::Splice(at, bytes) => {
                let at = at % len;
                t.splice(at.min(t.len())..at.min(t.len()), bytes.iter().copied());
            }
            Damage::DuplicateLine(n) | Damage::DropLine(n) => {
                let mut lines: Vec<Vec<u8>> =
                    t.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = n % lines.len();
                if matches!(d, Damage::DuplicateLine(_)) {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                } else {
                    lines.remove(i);
                }
                t = lines.join(&b'\n');
            }
            Damage::Number(at, n) => {
                // Replace the digits at a position with another number (ids, steps, sizes).
                if t.is_empty() {
                    continue;
                }
                let at = at % len;
                let start = (0..=at.min(t.len().saturating_sub(1)))
                    .rev()
                    .find(|&i| !t.get(i).is_some_and(u8::is_ascii_digit))
                    .map_or(0, |i| i + 1);
                let end = (start..t.len())
                    .find(|&i| !t[i].is_ascii_digit())
                    .unwrap_or(t.len());
                t.splice(start..end, n.to_string().into_bytes());
            }
        }
    }
    t
}

fn read_and_replay(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let Ok(trace) = Trace::read(&path) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let work = dir.path().join("work");
    let started = std::time::Instant::now();
    let _ = rt.block_on(replay(
        &trace,
        glm_test_support::tiny_encoder(),
        None,
        &work,
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// 64 cases each, or `PROPTEST_CASES`.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: glm_test_support::fuzz_cases(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_and_replay(&bytes);
    }

    #[test]
    fn damaged_corpus_traces_are_read_and_replayed_without_panic(
        which in any::<usize>(),
        damages in proptest::collection::vec(damage(), 1..6),
    ) {
        let corpus = corpus();
        let trace = &corpus[which % corpus.len()];
        read_and_replay(&apply(trace, &damages));
    }
}
