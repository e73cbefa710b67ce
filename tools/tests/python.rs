//! The python tool as the model sees it. Needs the runtime (`glm-agent setup python`).

use std::time::Duration;

use glm_prompts::{Parsed, parse};
use glm_tools::python::{Limits, PythonConfig, PythonTool};
use glm_tools::{ToolContext, ToolRegistry};
use pretty_assertions::assert_eq;

fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("GLM_AGENT_CACHE")
        .map(Into::into)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| {
                    std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache")
                });
            base.join("glm-agent")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notebook_calls_through_the_registry() {
    let registry = ToolRegistry::new().with(PythonTool::new(PythonConfig {
        cache: cache_dir(),
        offline: true,
        limits: Limits {
            deadline: Duration::from_secs(3),
            ..Limits::default()
        },
    }));
    let run_dir = tempfile::tempdir().unwrap();
    let ctx = ToolContext::new(run_dir.path());
    let run = async |output: &str| {
        let Parsed::Call(call) = parse(output, &registry.declared()) else {
            panic!("not a call: {output}");
        };
        registry.call(&call, &ctx).await.unwrap()
    };
    assert_eq!(
        run("python\n```python\nx = 6\nx * 7\n```<|observation|>")
            .await
            .text(),
        "42"
    );
    let timeout = run("python\nx = 0\nwhile True:\n    pass").await.text();
    assert_eq!(
        timeout,
        "Execution timed out after 3 s; the notebook was restored to its state after the last cell that finished."
    );
    assert_eq!(run("python\nx").await.text(), "6");
    let out = run("python\n_ = open('/mnt/data/a.txt', 'w').write('abc')").await;
    assert_eq!(out.text(), "");
    assert_eq!(
        out.observations[0].files,
        vec![run_dir.path().join("data/a.txt")]
    );
    assert_eq!(out.observations[0].to_message().content, "(no output)");
    let err = run("python\nraise ValueError('bad')").await.text();
    assert!(err.ends_with("ValueError: bad"), "{err}");
}

#[tokio::test]
async fn offline_without_the_runtime_says_what_to_run() {
    let empty = tempfile::tempdir().unwrap();
    let err = glm_tools::python::setup(empty.path(), true, &|_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("run `glm-agent setup python`"), "{text}");
    let tool = ToolRegistry::new().with(PythonTool::new(PythonConfig {
        cache: empty.path().to_path_buf(),
        offline: true,
        limits: Limits::default(),
    }));
    let Parsed::Call(call) = parse("python\nprint(1)", &tool.declared()) else {
        panic!("not a call");
    };
    let err = tool
        .call(&call, &ToolContext::new(empty.path()))
        .await
        .unwrap_err();
    // The model is told (the run goes on without python), with what to run.
    assert_eq!(err.recovery(), glm_tools::Recovery::Model);
    assert!(
        err.to_string().contains("python is unavailable here"),
        "{err}"
    );
    assert!(err.to_string().contains("glm-agent setup python"), "{err}");
}
