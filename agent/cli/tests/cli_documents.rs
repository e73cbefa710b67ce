//! `--file`: documents into a run, through the binary, and the worst files we can write: a file
//! over the limit, binary data named `.txt`, a PDF, a folder with a link loop and ignored files.
//! Time and peak memory of each refusal are asserted.

use std::path::Path;
use std::time::Duration;

use glm_test_support::run_measured;

use crate::cli_display::{replayed_run, text};

fn run_with(dir: &Path, files: &[&Path]) -> glm_test_support::Measured {
    let mut command = replayed_run(dir, serde_json::json!(["Read.<|user|>"]), "none");
    command.arg("--json");
    for file in files {
        command.arg("--file").arg(file);
    }
    command.arg("Summarise the files.");
    run_measured(&mut command)
}

/// A folder's text files (its .gitignore honoured, a binary file left out, a link loop not
/// followed) and an HTML page through the reader go before the task, each under a header; the
/// trace's start names each file with its size and sha256.
#[test]
fn files_and_folders_go_before_the_task_and_into_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("notes.md"), "alpha-marker notes\n").unwrap();
    std::fs::write(docs.join(".gitignore"), "secret.txt\n").unwrap();
    std::fs::write(docs.join("secret.txt"), "secret-marker\n").unwrap();
    std::fs::write(docs.join("sub/code.rs"), "fn beta_marker() {}\n").unwrap();
    std::fs::write(docs.join("sub/blob.bin"), b"\x00\x01\x02binary").unwrap();
    std::os::unix::fs::symlink(&docs, docs.join("sub/loop")).unwrap();
    let page = dir.path().join("page.html");
    std::fs::write(
        &page,
        "<html><head><title>Gamma page</title></head><body><nav>menu</nav><article><h1>Gamma page</h1><p>The gamma-marker paragraph of the article.</p></article></body></html>",
    )
    .unwrap();
    let run = run_with(dir.path(), &[&docs, &page]);
    let err = text(&run.output.stderr);
    assert!(run.output.status.success(), "{err}");
    assert!(err.contains("1 files left out"), "{err}");
    let start: serde_json::Value =
        serde_json::from_str(text(&run.output.stdout).lines().next().unwrap()).unwrap();
    let task = start["task"].as_str().unwrap();
    assert!(task.starts_with("--- file: "), "{task}");
    for want in [
        "alpha-marker",
        "fn beta_marker()",
        "gamma-marker paragraph",
        "Gamma page",
    ] {
        assert!(task.contains(want), "{want} in {task}");
    }
    assert!(!task.contains("secret-marker"), "{task}");
    assert!(!task.contains("<p>"), "{task}");
    assert!(task.ends_with("\n\nSummarise the files."), "{task}");
    let documents = start["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 3, "{documents:?}");
    let notes = documents
        .iter()
        .find(|d| d["path"].as_str().unwrap().ends_with("notes.md"))
        .unwrap();
    assert_eq!(notes["bytes"], 19);
    assert_eq!(notes["sha256"].as_str().unwrap().len(), 64);
}

/// Each hostile file is refused with a message saying what to do, quickly and without reading
/// it whole.
#[test]
fn hostile_files_are_refused_quickly_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.txt");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(40 << 30).unwrap(); // 40 GiB, sparse
    let binary = dir.path().join("data.txt");
    std::fs::write(&binary, [b'a', 0, b'b', 0xff, 0xfe]).unwrap();
    let pdf = dir.path().join("paper.pdf");
    std::fs::write(&pdf, b"%PDF-1.7\n").unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    for (file, says) in [
        (&huge, "over the 32 MiB"),
        (&binary, "binary data, not text"),
        (&pdf, "PDF is not read yet"),
        (&latin1, "not UTF-8 text"),
    ] {
        let run = run_with(dir.path(), &[file]);
        let err = text(&run.output.stderr);
        println!(
            "{}: {:?}, peak {} MB",
            file.display(),
            run.elapsed,
            run.peak_rss >> 20
        );
        assert_eq!(run.output.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{says} in {err}");
        assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
        assert!(run.peak_rss < 200 << 20, "{} MB", run.peak_rss >> 20);
    }
}
