//! `--long [LENGTHS]`: long prompts at their real cost. For each prompt length (default 1,024,
//! 4,096 and 16,384 tokens), a fresh process reads the prompt and writes one token, on the
//! embedded engine (`glm-agent generate`, f32) and on llama.cpp's server (f32 GGUF of the same
//! weights): the time to the first token and the process's peak resident memory, side by side,
//! with the KV cache's bytes per token for each.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Peak resident memory of `pid` so far, in bytes (`VmHWM`).
fn peak_of(pid: u32) -> u64 {
    glm_test_support::peak_rss_of(pid).unwrap_or(0)
}

/// A prompt of `n` ordinary token ids (no control tokens), the same for both engines.
fn prompt(n: usize) -> Vec<u32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 150_000) as u32 + 100
        })
        .collect()
}

/// The embedded engine in a process of its own, with `flags` (`--isq` among them): (time to
/// the first token, peak memory), or why it failed.
fn embedded(model: &Path, ids: &[u32], flags: &[&str]) -> Result<(Duration, u64), String> {
    let dir = model.parent().unwrap();
    let file = dir.join("prompt.json");
    std::fs::write(&file, serde_json::to_vec(ids).unwrap()).unwrap();
    let measured = glm_test_support::run_measured(
        Command::new(glm_test_support::glm_agent_exe())
            .args(["generate", "--max-tokens", "1", "--json"])
            .args(flags)
            .arg("--model")
            .arg(model)
            .arg("--prompt-file")
            .arg(&file)
            .arg("--cache-dir")
            .arg(dir.join(format!("cache{}", flags.join("-"))))
            .env("GLM_AGENT_CONFIG", dir.join("none.toml"))
            .env("GLM_AGENT_OFFLINE", "1"),
    );
    if !measured.output.status.success() {
        return Err(String::from_utf8_lossy(&measured.output.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_owned());
    }
    // The answer is the last line: a first quantised load writes the tokenizer with the saved
    // weights, and the tokenizers crate prints a warning on standard output when this synthetic
    // vocabulary has holes.
    let stdout = String::from_utf8_lossy(&measured.output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let answer: Value = serde_json::from_str(last).map_err(|e| {
        format!(
            "{e}: {} {}",
            String::from_utf8_lossy(&measured.output.stdout),
            String::from_utf8_lossy(&measured.output.stderr)
        )
    })?;
    let prefill = &answer["usage"]["prefill"];
    let seconds =
        prefill["secs"].as_f64().unwrap_or(0.0) + prefill["nanos"].as_f64().unwrap_or(0.0) / 1e9;
    Ok((Duration::from_secs_f64(seconds), measured.peak_rss))
}

/// llama.cpp's server on `gguf` with room for `ids`: (time to the first token by its own
/// timings, the server process's peak memory).
fn llamacpp(
    rt: &tokio::runtime::Runtime,
    packages: &Path,
    gguf: &Path,
    ids: &[u32],
) -> Result<(Duration, u64), String> {
    // Two slots share the context: room for the prompt in each.
    let (server, base) = super::llamacpp_bench::start(packages, gguf, 2 * (ids.len() + 64));
    let pid = server.0.id();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(7200))
        .build()
        .unwrap();
    let answer: Result<Value, String> = rt.block_on(async {
        let response = http
            .post(format!("{base}/completion"))
            .json(&json!({"prompt": ids, "n_predict": 1, "temperature": 0.0,
                "ignore_eos": true, "cache_prompt": false}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    });
    let peak = peak_of(pid);
    drop(server);
    let answer = answer?;
    let ms = answer["timings"]["prompt_ms"]
        .as_f64()
        .ok_or_else(|| format!("no timings: {answer}"))?;
    Ok((Duration::from_secs_f64(ms / 1e3), peak))
}

fn cell(result: &Result<(Duration, u64), String>) -> String {
    match result {
        Ok((t, peak)) => format!("{:>9.2} s {:>8.2} GB", t.as_secs_f64(), *peak as f64 / 1e9),
        Err(e) => format!("failed: {}", e.chars().take(60).collect::<String>()),
    }
}

/// The prompt lengths after `flag`, or `default`.
fn lengths(flag: &str, default: &[usize]) -> Vec<usize> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .map_or_else(
            || default.to_vec(),
            |list| list.split(',').map(|n| n.parse().unwrap()).collect(),
        )
}

/// 40 layers with GLM-4-9B's keys and values (4 heads of 128: 160 KiB a token in f32) but a
/// hidden width of 512, so the keys and values, not the weights, set the peak.
const GLM4_KV_40_LAYERS: super::Widths = super::Widths {
    hidden: 512,
    heads: 4,
    kv: 4,
    ffn: 1_376,
    layers: 40,
};

/// `--kv-dtype [LENGTHS]`: the CPU key/value cache's cost by activation dtype (`--dtype f32`,
/// `f16`, `bf16`, weights in Q4K as the 9B model loads on CPU), each length in a fresh process:
/// the time to the first token and the peak memory, side by side.
pub fn dtypes(base: std::ffi::OsString) {
    if super::built_exe().is_none() {
        return;
    }
    let lengths = lengths("--kv-dtype", &[4096, 8192]);
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("glm-4-kv-widths-40-layers");
    super::write_model(&model, &GLM4_KV_40_LAYERS);
    let w = &GLM4_KV_40_LAYERS;
    let per_token = |bytes: usize| w.layers * 2 * w.kv * (w.hidden / w.heads) * bytes;
    println!(
        "40 layers, GLM-4-9B's keys and values ({} KiB a token in f32, {} KiB in f16/bf16), hidden {}, Q4K weights",
        per_token(4) / 1024,
        per_token(2) / 1024,
        w.hidden
    );
    println!(
        "{:>8} | {:>22} | {:>22} | {:>22} | f16 vs f32: ttft, peak",
        "prompt", "f32: ttft, peak", "f16: ttft, peak", "bf16: ttft, peak"
    );
    for n in lengths {
        let ids = prompt(n);
        let runs: Vec<_> = ["f32", "f16", "bf16"]
            .iter()
            .map(|d| embedded(&model, &ids, &["--isq", "q4k", "--dtype", d]))
            .collect();
        let ratio = match (&runs[0], &runs[1]) {
            (Ok((t0, p0)), Ok((t1, p1))) => format!(
                "{:.2}x, {:.2}x",
                t1.as_secs_f64() / t0.as_secs_f64(),
                *p1 as f64 / *p0 as f64
            ),
            _ => "-".into(),
        };
        println!(
            "{n:>8} | {:>22} | {:>22} | {:>22} | {ratio}",
            cell(&runs[0]),
            cell(&runs[1]),
            cell(&runs[2])
        );
    }
}

pub fn run(base: std::ffi::OsString) {
    if super::built_exe().is_none() {
        return;
    }
    let lengths = lengths("--long", &[1024, 4096, 16_384]);
    let packages = super::llamacpp_bench::packages();
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("glm-4-9b-widths-2-layers");
    let t = Instant::now();
    super::write_model(&model, &super::GLM4_9B_2_LAYERS);
    println!(
        "wrote the 2-layer model (f32) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let gguf = dir.path().join("model-f32.gguf");
    super::llamacpp_bench::convert(&packages, &model, &gguf, false);
    let w = &super::GLM4_9B_2_LAYERS;
    let per_token = |bytes: usize| w.layers * 2 * w.kv * (w.hidden / w.heads) * bytes;
    println!(
        "KV cache per token, {} layers: embedded {} KiB (f32), llama.cpp {} KiB (f16); a 40-layer model: x20",
        w.layers,
        per_token(4) / 1024,
        per_token(2) / 1024
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "{:>8} | {:>22} | {:>22} | first token vs llama.cpp",
        "prompt", "embedded f32: ttft, peak", "llama.cpp f32: ttft, peak"
    );
    for n in lengths {
        let ids = prompt(n);
        let ours = embedded(&model, &ids, &["--isq", "none"]);
        let theirs = llamacpp(&rt, &packages, &gguf, &ids);
        let ratio = match (&ours, &theirs) {
            (Ok((a, _)), Ok((b, _))) => format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "{n:>8} | {:>22} | {:>22} | {ratio}",
            cell(&ours),
            cell(&theirs)
        );
    }
}
