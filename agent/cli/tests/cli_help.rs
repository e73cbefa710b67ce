//! Every command explains itself and shows an example.

use glm_test_support::glm_agent;

/// Every command path, found by walking `--help` output.
fn command_paths() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = glm_agent(&args, "");
        let help = String::from_utf8(out.stdout).unwrap();
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
                continue;
            }
            if in_commands {
                let Some(name) = line
                    .split_whitespace()
                    .next()
                    .filter(|_| line.starts_with("  "))
                else {
                    break;
                };
                if name != "help" {
                    let mut child = path.clone();
                    child.push(name.to_owned());
                    todo.push(child);
                }
            }
        }
        found.push(path);
    }
    found
}

#[test]
fn every_command_has_a_one_line_summary_and_an_example() {
    let paths = command_paths();
    assert!(paths.len() >= 4, "commands found: {paths:?}");
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = glm_agent(&args, "");
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        let first = help.lines().next().unwrap_or("");
        assert!(first.len() > 20, "{args:?}: summary line {first:?}");
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
    }
}

#[test]
fn unknown_commands_are_usage_errors() {
    let out = glm_agent(&["frobnicate"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// Runs glm-agent with `args` and nothing installed; asserts it is refused as a usage error
/// (exit 2) within 10 s, before the Python runtime is installed. Returns standard error.
fn refused_before_slow_work(dir: &std::path::Path, args: &[&str]) -> String {
    let started = std::time::Instant::now();
    let out = glm_test_support::glm_agent_command()
        .args(args)
        .env("GLM_AGENT_CACHE", dir.join("cache"))
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    // Nothing was installed or started: the Python runtime would take minutes.
    assert!(!dir.join("cache/python").exists(), "{args:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{args:?}"
    );
    err
}

#[test]
fn a_misspelt_engine_is_a_usage_error_before_any_slow_work() {
    let dir = tempfile::tempdir().unwrap();
    for engine in ["opneai:http://127.0.0.1:9", "openai:127.0.0.1:9", "replay:"] {
        let err = refused_before_slow_work(
            dir.path(),
            &["run", "--engine", engine, "--tools", "python", "t"],
        );
        assert!(err.contains("--engine"), "{engine}: {err}");
    }
}

#[test]
fn a_key_value_cache_this_build_cannot_keep_is_a_usage_error_before_any_slow_work() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = glm_engine_mistralrs::uses_paged_attention();
    let mut cases = vec![
        (
            "--kv-cache-type",
            "int4",
            "unknown key/value cache type `int4`",
        ),
        ("--dtype", "f8", "unknown dtype `f8`"),
    ];
    if !gpu {
        cases.push(("--kv-cache-type", "f8e4m3", "--features cuda"));
    }
    for (flag, kv, says) in cases {
        for command in [
            &["run", "--tools", "python", "t"][..],
            &["serve", "--port", "0"],
        ] {
            let mut args = command.to_vec();
            args.extend([flag, kv, "--model", "/nonexistent/model"]);
            let err = refused_before_slow_work(dir.path(), &args);
            assert!(err.contains(flag) && err.contains(says), "{err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    // Another engine ignores it.
    let out = glm_test_support::glm_agent_command()
        .args([
            "run",
            "--tools",
            "none",
            "--engine",
            "replay:/nonexistent.json",
        ])
        .args(["--kv-cache-type", "f8e4m3", "t"])
        .env("GLM_AGENT_CACHE", dir.path().join("cache"))
        .env("GLM_AGENT_CONFIG", dir.path().join("config.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("--kv-cache-type"), "{err}");
}
