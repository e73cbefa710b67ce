//! `--file`: documents into a run, through the binary, and the worst files we can write: a file
//! over the limit, binary data named `.txt`, a PDF, a folder with a link loop and ignored files.
//! Time and peak memory of each refusal are asserted.

use std::path::Path;
use std::time::Duration;

use glm_test_support::run_measured;

use crate::cli_display::{json_events, replayed_run, text};

/// The one trace in `dir/traces`, after checking that it replays with no divergence.
fn replays_exactly(dir: &Path) -> std::path::PathBuf {
    let trace = std::fs::read_dir(dir.join("traces"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let replay = glm_test_support::glm_agent_command()
        .args(["replay", trace.to_str().unwrap()])
        .args([
            "--tokenizer",
            &glm_test_support::repo_file("evals/traces/tokenizer.json"),
        ])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&replay.stdout), text(&replay.stderr));
    assert!(replay.status.success(), "{all}");
    assert!(all.contains("no divergence"), "{all}");
    trace
}

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
    let start: serde_json::Value = json_events(&run.output.stdout).remove(0);
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
        (&pdf, "not a PDF that can be read"),
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

/// Piped standard input goes before the task like a file; an empty or closed input adds
/// nothing; an input that stays open and silent is left after a short wait, never waited on for
/// ever.
#[test]
fn piped_standard_input_is_attached_and_never_blocks() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let start_of =
        |out: &std::process::Output| -> serde_json::Value { json_events(&out.stdout).remove(0) };
    let command = || {
        let mut c = replayed_run(dir.path(), serde_json::json!(["Read.<|user|>"]), "none");
        c.args(["--json", "Summarise it."]);
        c
    };
    // Piped text.
    let mut child = command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"delta-marker from a pipe\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let start = start_of(&out);
    let task = start["task"].as_str().unwrap();
    assert!(
        task.starts_with("--- file: standard input (25 bytes) ---\ndelta-marker from a pipe"),
        "{task}"
    );
    assert!(task.ends_with("Summarise it."), "{task}");
    assert_eq!(start["documents"][0]["path"], "standard input");
    // Closed (null) input: nothing added, no wait.
    let started = std::time::Instant::now();
    let out = command().stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success());
    assert_eq!(start_of(&out)["task"], "Summarise it.");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Open and silent: the run goes on after the wait, saying so.
    let started = std::time::Instant::now();
    let mut child = command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let held = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(held);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(start_of(&out)["task"], "Summarise it.");
    assert!(
        text(&out.stderr).contains("sent nothing in 2 s"),
        "{}",
        text(&out.stderr)
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// `@path` in a chat message puts that file before the message; an `@word` that names no file
/// stays text; a file that cannot be read drops the message with why, and the chat goes on.
#[test]
fn at_paths_in_chat_attach_files() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "epsilon-marker notes\n").unwrap();
    let blob = dir.path().join("blob.txt");
    std::fs::write(&blob, b"\x00\x01binary").unwrap();
    let outputs = dir.path().join("outputs.json");
    std::fs::write(&outputs, r#"["First.<|user|>", "Second.<|user|>"]"#).unwrap();
    let mut child = glm_test_support::glm_agent_command()
        .args(["chat", "--engine", &format!("replay:{}", outputs.display())])
        .args([
            "--tokenizer",
            &glm_test_support::repo_file("evals/traces/tokenizer.json"),
        ])
        .args(["--tools", "none", "--json"])
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "read @{} and @nobody\nnow @{}\nthanks\n",
        notes.display(),
        blob.display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let start: serde_json::Value = json_events(&out.stdout).remove(0);
    let task = start["task"].as_str().unwrap();
    assert!(task.starts_with("--- file: "), "{task}");
    assert!(task.contains("epsilon-marker notes"), "{task}");
    assert!(
        task.ends_with(&format!("read @{} and @nobody", notes.display())),
        "{task}"
    );
    // The binary file: refused, that message dropped, the next one answered.
    assert!(err.contains("not sent"), "{err}");
    let answers: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "answer")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(answers, ["First.", "Second."]);
}

/// A run whose tool outputs overflow a small `--context-tokens` cuts the oldest ones (the
/// latest kept whole), finishes, and replays exactly with its cuts; a document larger than the
/// window stops the run before any generation, with the counts (exit 2).
#[test]
fn a_full_context_cuts_old_tool_outputs_and_a_document_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let call = |c: char| format!("python\nprint('{c}' * 2000)<|observation|>");
    let outputs = serde_json::json!([call('a'), call('b'), call('c'), "Done.<|user|>"]);
    let run = replayed_run(dir.path(), outputs, "python")
        .args(["--context-tokens", "4000", "--json", "print them"])
        .output()
        .unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    let events: Vec<serde_json::Value> = json_events(&run.stdout);
    let cuts: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "cut").collect();
    assert!(!cuts.is_empty(), "{err}");
    for cut in &cuts {
        assert!(cut["after"].as_u64() < cut["before"].as_u64(), "{cut}");
    }
    for model in events.iter().filter(|e| e["event"] == "model") {
        let prompt = model["prompt_tokens"].as_u64().unwrap();
        assert!(prompt + 256 <= 4000, "{model}");
    }
    // The last prompt holds the newest output whole and a note where the oldest was.
    let trace = replays_exactly(dir.path());
    // Resumed, it goes on from the prompt after the last cut and its answer.
    let last = events.iter().rfind(|e| e["event"] == "model").unwrap();
    let resumed = replayed_run(dir.path(), serde_json::json!(["Ok.<|user|>"]), "python")
        .args(["--resume", trace.to_str().unwrap(), "--json", "and now?"])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let start: serde_json::Value = json_events(&resumed.stdout).remove(0);
    assert_eq!(
        start["resumed"].as_array().unwrap().len() as u64,
        last["prompt_tokens"].as_u64().unwrap() + last["ids"].as_array().unwrap().len() as u64
    );

    // A document larger than the window: refused before the first model turn.
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "word ".repeat(2_000)).unwrap();
    let run = replayed_run(dir.path(), serde_json::json!(["Never.<|user|>"]), "none")
        .args(["--context-tokens", "1000", "--json", "--file"])
        .arg(&big)
        .arg("summarise")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
    let out = text(&run.stdout);
    assert!(!out.contains("\"event\":\"model\""), "{out}");
    assert!(out.contains("of the 1000-token context window"), "{out}");
}

/// A PDF's text goes in as a document (a PDF written here, and real ones where the machine has
/// them); a PDF bomb (a stream that inflates to 1.5 GiB from 1.5 MB) is refused in little time,
/// its extraction bounded to 1 GiB in a child process, the command's own memory small.
#[test]
fn pdfs_are_read_and_a_pdf_bomb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("pdfs");
    let status = std::process::Command::new("python3")
        .arg(format!(
            "{}/tests/documents/make_pdfs.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(&made)
        .status()
        .unwrap();
    assert!(status.success());
    let run = run_with(dir.path(), &[&made.join("text.pdf")]);
    let err = text(&run.output.stderr);
    assert!(run.output.status.success(), "{err}");
    let start: serde_json::Value = json_events(&run.output.stdout).remove(0);
    let task = start["task"].as_str().unwrap();
    assert!(
        task.contains("The zeta-marker line of a PDF.\nA second line."),
        "{task}"
    );
    assert_eq!(start["documents"][0]["bytes"], 634);
    // Real PDFs, where this machine has them (Debian's documentation).
    for real in [
        "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
        "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
    ] {
        let path = Path::new(real);
        if !path.exists() {
            println!("{real}: not on this machine");
            continue;
        }
        let run = run_with(dir.path(), &[path]);
        let task = text(&run.output.stdout);
        println!("{real}: {:?}, {} bytes of events", run.elapsed, task.len());
        assert!(run.output.status.success(), "{}", text(&run.output.stderr));
        assert!(task.len() > 20_000, "{real}");
    }
    let run = run_with(dir.path(), &[&made.join("bomb.pdf")]);
    let err = text(&run.output.stderr);
    println!(
        "bomb.pdf: {:?}, peak {} MB",
        run.elapsed,
        run.peak_rss >> 20
    );
    assert_eq!(run.output.status.code(), Some(2), "{err}");
    assert!(err.contains("could not be read within 1024 MiB"), "{err}");
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    assert!(run.peak_rss < 200 << 20, "{} MB", run.peak_rss >> 20);
}

/// When cutting tool outputs is not enough (the model's own turns fill the window), the model
/// writes a summary and the run goes on from the task, the summary and the latest exchange; the
/// trace replays exactly with its compaction.
#[test]
fn a_conversation_that_outgrows_the_window_is_compacted_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let call = |c: char| {
        format!(
            "python\nprint(len('{}'))<|observation|>",
            c.to_string().repeat(1200)
        )
    };
    let outputs = serde_json::json!([
        call('a'),
        call('b'),
        "Counted the a's and the b's: 1200 each. Left: nothing.<|user|>",
        "Done.<|user|>"
    ]);
    let run = replayed_run(dir.path(), outputs, "python")
        .args(["--context-tokens", "3000", "--json", "count them"])
        .output()
        .unwrap();
    let err = text(&run.stderr);
    assert!(run.status.success(), "{err}");
    let events: Vec<serde_json::Value> = json_events(&run.stdout);
    let compacts: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "compact").collect();
    assert_eq!(compacts.len(), 2, "{err}");
    assert!(compacts[0]["summary"].is_null());
    assert_eq!(
        compacts[1]["summary"],
        "Counted the a's and the b's: 1200 each. Left: nothing."
    );
    let answer = events.iter().find(|e| e["event"] == "answer").unwrap();
    assert_eq!(answer["text"], "Done.");
    for model in events.iter().filter(|e| e["event"] == "model") {
        assert!(model["prompt_tokens"].as_u64().unwrap() <= 3000, "{model}");
    }
    // The last prompt: the task, the summary and the latest exchange, not the first call.
    let last = events.iter().rfind(|e| e["event"] == "model").unwrap();
    let ids: Vec<u32> = serde_json::from_value(last["prompt_delta"].clone()).unwrap();
    let encoder = glm_test_support::tiny_encoder();
    let prompt = encoder.decode(&ids).unwrap();
    assert!(prompt.contains("count them"), "{prompt}");
    assert!(prompt.contains("Summary of the work so far"), "{prompt}");
    assert!(prompt.contains(&"b".repeat(1200)), "{prompt}");
    assert!(!prompt.contains(&"a".repeat(1200)), "{prompt}");
    replays_exactly(dir.path());
}

/// The needle suite at lengths beyond the window is refused before any case runs, with the
/// counts; within it the cases run with the window as their limit.
#[test]
fn needle_lengths_beyond_the_window_are_refused_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let eval = |lengths: &str| {
        glm_test_support::glm_agent_command()
            .args(["eval", "needle", "--engine", "reference", "--depths", "0.5"])
            .args(["--lengths", lengths, "--context-tokens", "2048"])
            .arg("--out")
            .arg(dir.path().join(format!("out-{lengths}")))
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .output()
            .unwrap()
    };
    let refused = eval("512,4096");
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("4096 tokens and the answer do not fit the 2048-token context window"),
        "{err}"
    );
    assert!(err.contains("run lengths up to 1792"), "{err}");
    let ran = eval("512,1024");
    assert!(ran.status.success(), "{}", text(&ran.stderr));
}

/// `--dtype`: the tiny model runs on the embedded engine with half-precision activations, and
/// the bytes its keys and values take a token (the meter's, recorded in the trace) halve; bf16
/// with weights left in full precision, which candle cannot multiply on CPU, is refused at load
/// with what to do.
#[test]
fn half_precision_activations_halve_the_key_value_bytes_a_token_takes() {
    let dir = tempfile::tempdir().unwrap();
    let model = crate::cli_serve::tiny_model();
    let run = |dtype: &str, isq: &str| {
        glm_test_support::glm_agent_command()
            .args(["run", "--tools", "none", "--max-steps", "1"])
            .args(["--max-step-tokens", "4", "--use-serve", "false", "--json"])
            .args(["--isq", isq, "--dtype", dtype])
            .arg("--model")
            .arg(model)
            .arg("Hello")
            .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
            .env("GLM_AGENT_CACHE", dir.path().join("cache"))
            .env("GLM_AGENT_TRACE_DIR", dir.path().join("traces"))
            .env("GLM_AGENT_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let per_token = |dtype: &str, isq: &str| {
        let out = run(dtype, isq);
        let events = json_events(&out.stdout);
        // The run may end at its step budget (exit 3); it must have generated.
        assert!(
            events.iter().any(|e| e["event"] == "model"),
            "{dtype}: {}",
            text(&out.stderr)
        );
        events[0]["model"]["kv_bytes_per_token"].as_u64().unwrap()
    };
    let f32 = per_token("f32", "none");
    assert!(f32 > 0);
    assert_eq!(per_token("auto", "none"), f32);
    assert_eq!(per_token("f16", "none") * 2, f32);
    assert_eq!(per_token("bf16", "q8_0") * 2, f32);
    if !glm_engine_mistralrs::uses_gpu() {
        let out = run("bf16", "none");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(4), "{all}");
        assert!(
            all.contains("--dtype f16") && all.contains("--isq"),
            "{all}"
        );
        assert!(!all.contains("\"event\":\"model\""), "{all}");
    }
}

/// A first quantised load saves the weights with the tokenizer, and the tokenizers crate prints a
/// warning on standard output for a vocabulary with holes (the tiny model's has): it goes to
/// standard error, and `--json` output stays one JSON value.
#[test]
fn what_libraries_print_while_loading_stays_out_of_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.json");
    std::fs::write(&prompt, "[1, 2, 3]").unwrap();
    let out = glm_test_support::glm_agent_command()
        .args(["generate", "--isq", "q8_0", "--max-tokens", "2", "--json"])
        .arg("--model")
        .arg(&glm_test_support::checkpoint::tiny_glm4().dir)
        .arg("--prompt-file")
        .arg(&prompt)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .env("GLM_AGENT_OFFLINE", "1")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("OrderedVocab"),
        "the library printed nothing: {err}"
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert!(answer["usage"].is_object(), "{answer}");
}
