//! Sandbox figures: compile, cached load, session start, per-cell overhead, a CPU-bound workload
//! against native `python3`, and memory per session.
//!
//!     cargo run --release -- setup python
//!     cargo bench -p glm-sandbox --bench python            # add `-- --compile` to time a compile
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use glm_sandbox::{Limits, Python, Runtime, sha256_file};

fn cache_dir() -> PathBuf {
    std::env::var_os("GLM_AGENT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            base.join("glm-agent")
        })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

const WORKLOAD: &str = "import time\n_t = time.perf_counter()\ns = 0\nfor i in range(3_000_000):\n    s += i * i % 7\nprint(time.perf_counter() - _t)";

fn main() {
    let cache = cache_dir();
    if std::env::args().any(|a| a == "--compile") {
        // A scratch cache that shares the installed runtime but has no compiled module.
        let scratch = tempfile::tempdir().unwrap();
        let runtime = Runtime::locate(&cache).expect("run `glm-agent setup python` first");
        std::fs::create_dir_all(scratch.path().join("python")).unwrap();
        std::os::unix::fs::symlink(&runtime.dir, Runtime::dir_in(scratch.path())).unwrap();
        let t = Instant::now();
        Python::load(scratch.path(), &mut || {}).unwrap();
        println!(
            "compile (python-snapshot.wasm, 104 MB)   {:>10.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let compiled = glm_sandbox::compiled_module_path(&cache).unwrap();
    let t = Instant::now();
    sha256_file(&compiled).unwrap();
    let hash_time = t.elapsed();
    let t = Instant::now();
    let python = Python::load(&cache, &mut || {
        panic!("not compiled: run `glm-agent setup python`")
    })
    .unwrap();
    let load = t.elapsed();
    println!(
        "cached module load (incl. sha256 check)  {:>12}   (a separate sha256 pass: {})",
        ms(load),
        ms(hash_time)
    );

    let dir = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let t = Instant::now();
    let mut session = python
        .session(&dir.path().join("data"), limits.clone())
        .unwrap();
    println!(
        "session start (instantiate + init)       {:>12}",
        ms(t.elapsed())
    );
    println!(
        "linear memory at start                   {:>9} MiB",
        session.memory_bytes() >> 20
    );

    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        session.run_cell("pass").unwrap();
    }
    println!(
        "trivial cell, mean of {n}                 {:>12}",
        ms(t.elapsed() / n)
    );

    let out = session.run_cell(WORKLOAD).unwrap().output;
    let sandboxed: f64 = out.trim().parse().unwrap();
    let native = Command::new("python3")
        .arg("-c")
        .arg(WORKLOAD)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    match native {
        Some(native) => println!(
            "CPU loop (3M iterations)                 sandbox {:.2} s, native python3 {:.2} s, ratio {:.2}x",
            sandboxed,
            native,
            sandboxed / native
        ),
        None => println!(
            "CPU loop (3M iterations)                 sandbox {sandboxed:.2} s (no python3 found)"
        ),
    }

    let t = Instant::now();
    session.run_cell("import numpy, pandas").unwrap();
    println!(
        "import numpy, pandas (first time)        {:>12}",
        ms(t.elapsed())
    );
    println!(
        "linear memory after numpy+pandas         {:>9} MiB",
        session.memory_bytes() >> 20
    );
    session
        .run_cell("import matplotlib.pyplot as plt\nplt.plot(range(10))\nNone")
        .unwrap();
    let peak = session.memory_bytes();
    println!(
        "linear memory after a plot               {:>9} MiB (x2 with the rollback snapshot)",
        peak >> 20
    );
}
