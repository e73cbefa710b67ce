//! The GLM-4 -> Qwen2 mapping, checked numerically: a naive f64 forward pass of GLM-4 on the
//! original weights against a naive f64 forward pass of Qwen2 on the mapped weights, for both
//! source layouts, at positions from 0 and beyond 8K.

use std::path::Path;

use glm_engine_mistralrs::model::{Layout, SourceLayout, detect, map_to_qwen2};
use safetensors::{Dtype, SafeTensors};
use serde_json::json;

const VOCAB: usize = 300;

pub(crate) use glm_test_support::checkpoint::{
    BASE, FFN, HEAD_DIM, HEADS, HIDDEN, KV_HEADS, LAYERS, Tensors, glm4_hf_config, glm4_hf_tensors,
    write_checkpoint,
};

/// A GlmForCausalLM checkpoint's tensors.
fn glm_hf_tensors() -> Tensors {
    glm4_hf_tensors(VOCAB)
}

/// The same weights in the original ChatGLMModel names, with q/k/v fused.
fn chatglm_tensors(hf: &Tensors) -> Tensors {
    let mut t = Tensors::new();
    let get = |n: &str| hf[n].clone();
    t.insert(
        "transformer.embedding.word_embeddings.weight".into(),
        get("model.embed_tokens.weight"),
    );
    for i in 0..LAYERS {
        let hf_name = |s: &str| format!("model.layers.{i}.{s}");
        let cg = |s: &str| format!("transformer.encoder.layers.{i}.{s}");
        for kind in ["weight", "bias"] {
            let mut fused = Vec::new();
            let mut rows = 0;
            for part in ["q_proj", "k_proj", "v_proj"] {
                let (shape, data) = get(&hf_name(&format!("self_attn.{part}.{kind}")));
                rows += shape[0];
                fused.extend(data);
            }
            let shape = if kind == "weight" {
                vec![rows, HIDDEN]
            } else {
                vec![rows]
            };
            t.insert(
                cg(&format!("self_attention.query_key_value.{kind}")),
                (shape, fused),
            );
        }
        for (cg_name, hf) in [
            ("self_attention.dense.weight", "self_attn.o_proj.weight"),
            ("mlp.dense_h_to_4h.weight", "mlp.gate_up_proj.weight"),
            ("mlp.dense_4h_to_h.weight", "mlp.down_proj.weight"),
            ("input_layernorm.weight", "input_layernorm.weight"),
            (
                "post_attention_layernorm.weight",
                "post_attention_layernorm.weight",
            ),
        ] {
            t.insert(cg(cg_name), get(&hf_name(hf)));
        }
    }
    t.insert(
        "transformer.encoder.final_layernorm.weight".into(),
        get("model.norm.weight"),
    );
    t.insert(
        "transformer.output_layer.weight".into(),
        get("lm_head.weight"),
    );
    t
}

fn read_dir_tensors(dir: &Path) -> Tensors {
    let mut out = Tensors::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let bytes = std::fs::read(&path).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            for (name, view) in st.tensors() {
                assert_eq!(view.dtype(), Dtype::F32);
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                out.insert(name, (view.shape().to_vec(), data));
            }
        }
    }
    out
}

/// One layer's weights in f64, in a shared shape.
pub(crate) struct Layer {
    wq: Vec<f64>,
    bq: Vec<f64>,
    wk: Vec<f64>,
    bk: Vec<f64>,
    wv: Vec<f64>,
    bv: Vec<f64>,
    wo: Vec<f64>,
    wg: Vec<f64>,
    wu: Vec<f64>,
    wd: Vec<f64>,
    ln1: Vec<f64>,
    ln2: Vec<f64>,
}

pub(crate) struct Model {
    embed: Vec<f64>,
    layers: Vec<Layer>,
    norm: Vec<f64>,
    head: Vec<f64>,
}

fn f64s(t: &Tensors, name: &str) -> Vec<f64> {
    t.get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .1
        .iter()
        .map(|x| f64::from(*x))
        .collect()
}

pub(crate) fn glm_model(t: &Tensors) -> Model {
    let layers = (0..LAYERS)
        .map(|i| {
            let g = |s: &str| f64s(t, &format!("model.layers.{i}.{s}"));
            let gate_up = g("mlp.gate_up_proj.weight");
            Layer {
                wq: g("self_attn.q_proj.weight"),
                bq: g("self_attn.q_proj.bias"),
                wk: g("self_attn.k_proj.weight"),
                bk: g("self_attn.k_proj.bias"),
                wv: g("self_attn.v_proj.weight"),
                bv: g("self_attn.v_proj.bias"),
                wo: g("self_attn.o_proj.weight"),
                wg: gate_up[..FFN * HIDDEN].to_vec(),
                wu: gate_up[FFN * HIDDEN..].to_vec(),
                wd: g("mlp.down_proj.weight"),
                ln1: g("input_layernorm.weight"),
                ln2: g("post_attention_layernorm.weight"),
            }
        })
        .collect();
    Model {
        embed: f64s(t, "model.embed_tokens.weight"),
        layers,
        norm: f64s(t, "model.norm.weight"),
        head: f64s(t, "lm_head.weight"),
    }
}

fn qwen_model(t: &Tensors) -> Model {
    let layers = (0..LAYERS)
        .map(|i| {
            let g = |s: &str| f64s(t, &format!("model.layers.{i}.{s}"));
            Layer {
                wq: g("self_attn.q_proj.weight"),
                bq: g("self_attn.q_proj.bias"),
                wk: g("self_attn.k_proj.weight"),
                bk: g("self_attn.k_proj.bias"),
                wv: g("self_attn.v_proj.weight"),
                bv: g("self_attn.v_proj.bias"),
                wo: g("self_attn.o_proj.weight"),
                wg: g("mlp.gate_proj.weight"),
                wu: g("mlp.up_proj.weight"),
                wd: g("mlp.down_proj.weight"),
                ln1: g("input_layernorm.weight"),
                ln2: g("post_attention_layernorm.weight"),
            }
        })
        .collect();
    Model {
        embed: f64s(t, "model.embed_tokens.weight"),
        layers,
        norm: f64s(t, "model.norm.weight"),
        head: f64s(t, "lm_head.weight"),
    }
}

pub(crate) fn matvec(w: &[f64], x: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let cols = x.len();
    w.chunks_exact(cols)
        .enumerate()
        .map(|(r, row)| {
            row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + bias.map_or(0.0, |b| b[r])
        })
        .collect()
}

pub(crate) fn rmsnorm(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + 1e-5).sqrt();
    x.iter().zip(w).map(|(v, g)| v * inv * g).collect()
}

/// GLM-4: the first half of the head rotates in interleaved pairs, frequency base^(-2j/(d/2)).
pub(crate) fn rope_glm(head: &mut [f64], pos: f64) {
    let rotary = HEAD_DIM / 2;
    for j in 0..rotary / 2 {
        let angle = pos * BASE.powf(-(2.0 * j as f64) / rotary as f64);
        let (s, c) = angle.sin_cos();
        let (a, b) = (head[2 * j], head[2 * j + 1]);
        head[2 * j] = a * c - b * s;
        head[2 * j + 1] = b * c + a * s;
    }
}

/// Qwen2: all dims rotate in pairs (i, i + d/2), frequency theta^(-2i/d), theta = base².
fn rope_qwen(head: &mut [f64], pos: f64) {
    let half = HEAD_DIM / 2;
    for i in 0..half {
        let angle = pos * (BASE * BASE).powf(-(2.0 * i as f64) / HEAD_DIM as f64);
        let (s, c) = angle.sin_cos();
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

/// Logits at every position of `tokens`, the first token at position `start`.
pub(crate) fn forward(
    m: &Model,
    tokens: &[usize],
    start: usize,
    rope: fn(&mut [f64], f64),
) -> Vec<Vec<f64>> {
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|t| m.embed[t * HIDDEN..(t + 1) * HIDDEN].to_vec())
        .collect();
    for l in &m.layers {
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        let mut qs = Vec::new();
        for (p, x) in xs.iter().enumerate() {
            let h = rmsnorm(x, &l.ln1);
            let pos = (start + p) as f64;
            let mut q = matvec(&l.wq, &h, Some(&l.bq));
            let mut k = matvec(&l.wk, &h, Some(&l.bk));
            q.chunks_exact_mut(HEAD_DIM).for_each(|hd| rope(hd, pos));
            k.chunks_exact_mut(HEAD_DIM).for_each(|hd| rope(hd, pos));
            qs.push(q);
            ks.push(k);
            vs.push(matvec(&l.wv, &h, Some(&l.bv)));
        }
        for p in 0..xs.len() {
            let mut attn = vec![0.0; HEADS * HEAD_DIM];
            for h in 0..HEADS {
                let kv = h / (HEADS / KV_HEADS);
                let q = &qs[p][h * HEAD_DIM..(h + 1) * HEAD_DIM];
                let scores: Vec<f64> = (0..=p)
                    .map(|t| {
                        q.iter()
                            .zip(&ks[t][kv * HEAD_DIM..(kv + 1) * HEAD_DIM])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (HEAD_DIM as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for (t, e) in exps.iter().enumerate() {
                    for d in 0..HEAD_DIM {
                        attn[h * HEAD_DIM + d] += e / sum * vs[t][kv * HEAD_DIM + d];
                    }
                }
            }
            let o = matvec(&l.wo, &attn, None);
            xs[p].iter_mut().zip(&o).for_each(|(x, y)| *x += y);
            let h2 = rmsnorm(&xs[p], &l.ln2);
            let g = matvec(&l.wg, &h2, None);
            let u = matvec(&l.wu, &h2, None);
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = matvec(&l.wd, &a, None);
            xs[p].iter_mut().zip(&d).for_each(|(x, y)| *x += y);
        }
    }
    xs.iter()
        .map(|x| matvec(&m.head, &rmsnorm(x, &m.norm), None))
        .collect()
}

/// The naive f64 forward pass one token at a time, keeping keys and values: logits of any
/// position of a long sequence without recomputing the prefix.
pub(crate) struct Incremental<'a> {
    m: &'a Model,
    ks: Vec<Vec<Vec<f64>>>,
    vs: Vec<Vec<Vec<f64>>>,
    pub(crate) pos: usize,
}

impl<'a> Incremental<'a> {
    pub(crate) fn new(m: &'a Model) -> Self {
        Incremental {
            m,
            ks: vec![Vec::new(); m.layers.len()],
            vs: vec![Vec::new(); m.layers.len()],
            pos: 0,
        }
    }

    /// Feeds `token` at the next position; returns the logits for the token after it when
    /// `want` (the vocabulary projection dominates the cost).
    pub(crate) fn step(&mut self, token: usize, want: bool) -> Option<Vec<f64>> {
        let m = self.m;
        let mut x = m.embed[token * HIDDEN..(token + 1) * HIDDEN].to_vec();
        let pos = self.pos as f64;
        for (li, l) in m.layers.iter().enumerate() {
            let h = rmsnorm(&x, &l.ln1);
            let mut q = matvec(&l.wq, &h, Some(&l.bq));
            let mut k = matvec(&l.wk, &h, Some(&l.bk));
            q.chunks_exact_mut(HEAD_DIM)
                .for_each(|hd| rope_glm(hd, pos));
            k.chunks_exact_mut(HEAD_DIM)
                .for_each(|hd| rope_glm(hd, pos));
            self.ks[li].push(k);
            self.vs[li].push(matvec(&l.wv, &h, Some(&l.bv)));
            let (ks, vs) = (&self.ks[li], &self.vs[li]);
            let mut attn = vec![0.0; HEADS * HEAD_DIM];
            for hh in 0..HEADS {
                let kv = hh / (HEADS / KV_HEADS);
                let qh = &q[hh * HEAD_DIM..(hh + 1) * HEAD_DIM];
                let scores: Vec<f64> = ks
                    .iter()
                    .map(|kt| {
                        qh.iter()
                            .zip(&kt[kv * HEAD_DIM..(kv + 1) * HEAD_DIM])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (HEAD_DIM as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for (t, e) in exps.iter().enumerate() {
                    let w = e / sum;
                    let vt = &vs[t][kv * HEAD_DIM..(kv + 1) * HEAD_DIM];
                    for d in 0..HEAD_DIM {
                        attn[hh * HEAD_DIM + d] += w * vt[d];
                    }
                }
            }
            let o = matvec(&l.wo, &attn, None);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h2 = rmsnorm(&x, &l.ln2);
            let g = matvec(&l.wg, &h2, None);
            let u = matvec(&l.wu, &h2, None);
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = matvec(&l.wd, &a, None);
            x.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
        }
        self.pos += 1;
        want.then(|| matvec(&m.head, &rmsnorm(&x, &m.norm), None))
    }
}

pub(crate) fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn hf_config() -> serde_json::Value {
    glm4_hf_config(VOCAB)
}

#[test]
fn mapped_weights_compute_what_glm4_computes() {
    let dir = tempfile::tempdir().unwrap();
    let hf = glm_hf_tensors();
    let src = dir.path().join("glm-hf");
    write_checkpoint(&src, &hf, hf_config());
    let (layout, config) = detect(&src).unwrap();
    assert_eq!(layout, Layout::Mapped(SourceLayout::GlmHf));
    let dest = dir.path().join("cache/mapped");
    let mut calls = 0;
    map_to_qwen2(
        &src,
        &dest,
        SourceLayout::GlmHf,
        &config,
        &mut |done, total| {
            calls += 1;
            assert!(done <= total);
        },
    )
    .unwrap();
    assert!(calls > 0);
    let mapped = read_dir_tensors(&dest);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"], json!(["Qwen2ForCausalLM"]));
    assert_eq!(cfg["rope_theta"], json!(1e16));
    assert_eq!(cfg["num_key_value_heads"], json!(KV_HEADS));
    assert!(dest.join("tokenizer.json").exists());
    assert_eq!(
        detect(&dest).unwrap().0,
        Layout::Native("Qwen2ForCausalLM".into())
    );

    let tokens: Vec<usize> = (0..256).map(|i| (i * 37 + 11) % VOCAB).collect();
    let glm = glm_model(&hf);
    let qwen = qwen_model(&mapped);
    for start in [0, 8_192, 100_000] {
        let a = forward(
            &glm,
            &tokens[..if start == 0 { 256 } else { 64 }],
            start,
            rope_glm,
        );
        let b = forward(&qwen, &tokens[..a.len()], start, rope_qwen);
        let diff = max_diff(&a, &b);
        assert!(
            diff < 1e-4,
            "start {start}: max |logit difference| {diff:e}"
        );
        let argmax = |v: &Vec<f64>| {
            v.iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .map(|(i, _)| i)
        };
        assert!(a.iter().zip(&b).all(|(x, y)| argmax(x) == argmax(y)));
    }
    // Without the permutation the logits do differ: the check can fail.
    let unmapped = forward(&glm, &tokens[..32], 0, rope_qwen);
    assert!(max_diff(&unmapped, &forward(&glm, &tokens[..32], 0, rope_glm)) > 1e-3);
}

#[test]
fn the_original_layout_maps_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let hf = glm_hf_tensors();
    let hf_src = dir.path().join("glm-hf");
    write_checkpoint(&hf_src, &hf, hf_config());
    let cg_src = dir.path().join("chatglm");
    let cg_config = json!({"architectures": ["ChatGLMModel"], "padded_vocab_size": VOCAB, "hidden_size": HIDDEN,
        "ffn_hidden_size": FFN, "num_layers": LAYERS, "num_attention_heads": HEADS, "multi_query_attention": true,
        "multi_query_group_num": KV_HEADS, "kv_channels": HEAD_DIM, "rope_ratio": 10_000, "layernorm_epsilon": 1e-5,
        "seq_length": 1_048_576, "add_qkv_bias": true});
    write_checkpoint(&cg_src, &chatglm_tensors(&hf), cg_config);
    let (layout, config) = detect(&cg_src).unwrap();
    assert_eq!(layout, Layout::Mapped(SourceLayout::ChatGlm));
    map_to_qwen2(
        &cg_src,
        &dir.path().join("from-chatglm"),
        SourceLayout::ChatGlm,
        &config,
        &mut |_, _| {},
    )
    .unwrap();
    let (_, config) = detect(&hf_src).unwrap();
    map_to_qwen2(
        &hf_src,
        &dir.path().join("from-hf"),
        SourceLayout::GlmHf,
        &config,
        &mut |_, _| {},
    )
    .unwrap();
    let a = read_dir_tensors(&dir.path().join("from-chatglm"));
    let b = read_dir_tensors(&dir.path().join("from-hf"));
    assert_eq!(a.len(), b.len());
    for (name, tensor) in &b {
        assert_eq!(a.get(name), Some(tensor), "{name}");
    }
}

#[test]
fn a_failed_mapping_leaves_nothing_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut hf = glm_hf_tensors();
    hf.remove("model.layers.1.mlp.down_proj.weight");
    let src = dir.path().join("broken");
    write_checkpoint(&src, &hf, hf_config());
    let (_, config) = detect(&src).unwrap();
    let dest = dir.path().join("cache/mapped");
    let err = map_to_qwen2(&src, &dest, SourceLayout::GlmHf, &config, &mut |_, _| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("no tensor model.layers.1.mlp.down_proj.weight"),
        "{err}"
    );
    assert!(!dest.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    std::fs::remove_file(src.join("tokenizer.json")).unwrap();
    let err = map_to_qwen2(&src, &dest, SourceLayout::GlmHf, &config, &mut |_, _| {}).unwrap_err();
    assert!(
        err.to_string().contains("THUDM/glm-4-9b-chat-1m-hf"),
        "{err}"
    );
}

#[test]
fn model_prepare_maps_once_and_prints_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("glm-4-tiny-hf");
    write_checkpoint(&src, &glm_hf_tensors(), hf_config());
    let cache = dir.path().join("cache");
    let args = [
        "model",
        "prepare",
        src.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    let first = glm_test_support::glm_agent(&args, "");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let path = String::from_utf8(first.stdout).unwrap();
    assert!(
        path.starts_with(cache.join("models/glm-4-tiny-hf-qwen2-").to_str().unwrap()),
        "{path}"
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("Mapped in"));
    let second = glm_test_support::glm_agent(&args, "");
    assert_eq!(String::from_utf8(second.stdout).unwrap(), path);
    assert!(
        !String::from_utf8_lossy(&second.stderr).contains("Mapped in"),
        "reused"
    );
    let missing = glm_test_support::glm_agent(
        &["model", "prepare", "THUDM/glm-4-9b-chat-1m-hf", "--offline"],
        "",
    );
    // Not a usage mistake: the model cannot be had (exit 4, as an engine failure).
    assert_eq!(missing.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("hf download THUDM/glm-4-9b-chat-1m-hf")
    );
    // A folder that is not there is named as missing, not as "not a repo id".
    let absent = glm_test_support::glm_agent(&["model", "prepare", "./no/such/glm-4"], "");
    let err = String::from_utf8_lossy(&absent.stderr);
    assert!(err.contains("./no/such/glm-4 does not exist"), "{err}");
}

/// A Hugging Face-like file server: `/{repo}/resolve/main/{file}` with ranges, ETag and commit
/// headers, 404 for anything else.
fn fake_hub(repo: &'static str, dir: &Path) -> String {
    let dir = dir.to_path_buf();
    let (base, _) = glm_test_support::http::serve_bytes(move |req, _| {
        let prefix = format!("/{repo}/resolve/main/");
        let Some(file) = req.path.strip_prefix(&prefix) else {
            return (404, vec![], Vec::new());
        };
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            return (404, vec![], Vec::new());
        };
        let size = bytes.len();
        let (start, end) = req
            .headers
            .iter()
            .find(|(k, _)| k == "range")
            .and_then(|(_, v)| v.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| {
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().unwrap_or(size - 1);
                (a, b.min(size - 1))
            })
            .unwrap_or((0, size - 1));
        let headers = vec![
            ("ETag", format!("\"{:x}-{size}\"", file.len())),
            (
                "X-Repo-Commit",
                "0123456789abcdef0123456789abcdef01234567".into(),
            ),
            ("Content-Range", format!("bytes {start}-{end}/{size}")),
        ];
        (206, headers, bytes[start..=end].to_vec())
    });
    base
}

#[test]
fn model_prepare_downloads_a_repo_once_then_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("served");
    write_checkpoint(&src, &glm_hf_tensors(), hf_config());
    let endpoint = fake_hub("org/glm-4-tiny-hf", &src);
    let hf_home = dir.path().join("hf");
    let cache = dir.path().join("cache");
    let prepare = |offline: bool| {
        let mut args = vec![
            "model",
            "prepare",
            "org/glm-4-tiny-hf",
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        if offline {
            args.push("--offline");
        }
        glm_test_support::glm_agent_command()
            .args(&args)
            .env("HF_HOME", &hf_home)
            .env("HF_ENDPOINT", &endpoint)
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap()
    };
    let first = prepare(false);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let folder = String::from_utf8(first.stdout).unwrap();
    assert!(
        folder.contains("glm-4-tiny-hf") || folder.contains("qwen2"),
        "{folder}"
    );
    assert!(hf_home.join("hub/models--org--glm-4-tiny-hf").is_dir());
    let second = prepare(true);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(String::from_utf8(second.stdout).unwrap(), folder);
    // Another repo, offline: a clear error that says what to download.
    let missing = glm_test_support::glm_agent_command()
        .args(["model", "prepare", "org/other", "--offline"])
        .env("HF_HOME", &hf_home)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("hf download org/other"), "{err}");
}
