//! The embedded backend: GLM-4 on mistral.rs, in this process.
//!
//! Prompts go in as token ids. Tokens are picked by our own sampler inside a logits processor
//! (see `picker`), so the engine knows every generated id exactly, control tokens included, and
//! a seed reproduces a run. Prefix caching is on: each agent step prefills only its new tokens.
//!
//! Two mistral.rs behaviours are handled here:
//! - its prefix cache evicts only caches held on a GPU, so on CPU it grows with every request.
//!   The engine keeps its own account of what the cache holds and, past a byte budget, clears it
//!   (a request that cannot run makes mistral.rs drop every cached sequence);
//! - a sequence's cache is stored under all of its tokens although the last generated token was
//!   never run through the model. A later prompt that extends the whole sequence (every agent
//!   step does) would reuse a key/value slot that was never written. The picker therefore closes
//!   each generation with a sentinel token after the last real one, so every real token is run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mistralrs::{
    Constraint, IsqType, Model, ModelDType, NormalRequest, Request, RequestMessage, Response,
    SamplingParams, TextModelBuilder, UqffTextModelBuilder,
};
use serde_json::Value;
use tokio::sync::{RwLock, mpsc};

use crate::picker::{Picked, Picker, PickerState, Rng};
use glm_engine::{
    Engine, EngineError, EngineEvent, EventStream, FinishReason, GenerateRequest, Usage,
};

/// Which quantisation to apply while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isq {
    /// Quantise to Q4K on CPU when the f32 weights would not fit in available memory.
    Auto,
    /// Load the weights as they are (f32 on CPU, bf16 on a GPU).
    None,
    /// Quantise to this type.
    Type(IsqType),
}

impl std::str::FromStr for Isq {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = match s.to_ascii_lowercase().as_str() {
            "auto" => return Ok(Isq::Auto),
            "none" | "off" => return Ok(Isq::None),
            "q4_0" => IsqType::Q4_0,
            "q4_1" => IsqType::Q4_1,
            "q5_0" => IsqType::Q5_0,
            "q5_1" => IsqType::Q5_1,
            "q8_0" => IsqType::Q8_0,
            "q2k" => IsqType::Q2K,
            "q3k" => IsqType::Q3K,
            "q4k" => IsqType::Q4K,
            "q5k" => IsqType::Q5K,
            "q6k" => IsqType::Q6K,
            "q8k" => IsqType::Q8K,
            "hqq4" => IsqType::HQQ4,
            "hqq8" => IsqType::HQQ8,
            other => {
                return Err(format!(
                    "unknown quantisation `{other}`: use auto, none, q4_0, q4_1, q5_0, q5_1, q8_0, q2k, q3k, q4k, q5k, q6k, q8k, hqq4 or hqq8"
                ));
            }
        };
        Ok(Isq::Type(t))
    }
}

/// A lower-case name for an ISQ type, as used on the command line and in UQFF file names.
pub fn isq_name(t: IsqType) -> String {
    format!("{t:?}").to_ascii_lowercase()
}

/// How to load the embedded engine.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// A loadable model folder (see [`crate::model::prepare`]).
    pub model_dir: PathBuf,
    /// Quantisation.
    pub isq: Isq,
    /// Keep quantised weights next to the model (UQFF) so the next load does not quantise again.
    pub save_quantized: bool,
    /// Reuse the keys and values of earlier requests that share a prefix.
    pub prefix_cache: bool,
    /// Bytes of keys and values the prefix cache may hold before it is cleared; `None` picks a
    /// quarter of the memory available at load time, between 256 MiB and 8 GiB.
    pub cache_budget: Option<u64>,
    /// Let mistral.rs log its loading steps and progress bars to stderr.
    pub verbose: bool,
    /// Where the engine keeps its view of the model (see [`overlay`]) and saved quantised
    /// weights [default: `<cache dir>/engine`].
    pub work_dir: PathBuf,
}

impl EmbeddedConfig {
    /// Defaults for `model_dir`: automatic quantisation, UQFF saved, prefix cache on.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            model_dir: model_dir.into(),
            isq: Isq::Auto,
            save_quantized: true,
            prefix_cache: true,
            cache_budget: None,
            verbose: false,
            work_dir: glm_engine::paths::cache_dir(None, |k| std::env::var(k).ok()).join("engine"),
        }
    }
}

/// What loading decided, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The quantisation in effect (`None` for full precision).
    pub isq: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
    /// Whether quantised weights were read from a saved UQFF file.
    pub from_saved: bool,
    /// The prefix-cache budget in bytes.
    pub cache_budget: u64,
    /// How long loading took.
    pub took: Duration,
}

/// Shape facts read from the model's config.json.
#[derive(Debug, Clone, Copy)]
struct Shape {
    vocab_size: usize,
    kv_bytes_per_token: u64,
    params: u64,
}

impl Shape {
    fn read(dir: &Path) -> Result<Shape, EngineError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EngineError::fatal(format!("cannot read {}: {e}", path.display())))?;
        let c: Value = serde_json::from_str(&text)
            .map_err(|e| EngineError::fatal(format!("{}: {e}", path.display())))?;
        let dims = crate::model::Dims::of(&c);
        if dims.vocab == 0 || dims.layers == 0 || dims.hidden == 0 {
            return Err(EngineError::fatal(format!(
                "{}: vocab_size, num_hidden_layers and hidden_size are required",
                path.display()
            )));
        }
        let (layers, kv_heads, head_dim) = (
            dims.layers as u64,
            dims.kv_heads() as u64,
            dims.head_dim() as u64,
        );
        Ok(Shape {
            vocab_size: dims.vocab,
            // Keys and values, every layer, f32 on CPU.
            kv_bytes_per_token: 2 * layers * kv_heads * head_dim * 4,
            params: dims.params(),
        })
    }
}

/// Memory available to this process, from /proc/meminfo (None elsewhere).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Whether this build runs the model on a GPU.
pub fn uses_gpu() -> bool {
    cfg!(any(feature = "cuda", feature = "metal"))
}

/// Decides the quantisation: explicit choices stand; `Auto` picks Q4K on CPU when the f32
/// weights (plus a quarter for working memory) exceed the available memory.
pub fn choose_isq(
    isq: Isq,
    params: u64,
    available: Option<u64>,
    gpu: bool,
) -> (Option<IsqType>, String) {
    match isq {
        Isq::Type(t) => (Some(t), format!("{} as asked", isq_name(t))),
        Isq::None => (None, "full precision as asked".into()),
        Isq::Auto if gpu => (None, "bf16 on the GPU".into()),
        Isq::Auto => {
            let f32_bytes = params * 4;
            match available {
                Some(avail) if f32_bytes + f32_bytes / 4 > avail => (
                    Some(IsqType::Q4K),
                    format!(
                        "q4k: the f32 weights need about {:.1} GB and {:.1} GB is available (use --isq none to load f32 anyway)",
                        f32_bytes as f64 / 1e9,
                        avail as f64 / 1e9
                    ),
                ),
                _ => (
                    None,
                    format!(
                        "f32: the weights need about {:.1} GB, which fits",
                        f32_bytes as f64 / 1e9
                    ),
                ),
            }
        }
    }
}

/// The engine's account of what mistral.rs's prefix cache holds.
#[derive(Debug, Default)]
struct CacheBook {
    /// Cached sequences (prompt + generated + sentinel) and their lengths in tokens.
    entries: HashMap<Vec<u32>, usize>,
    tokens: u64,
    resets: u64,
}

impl CacheBook {
    /// The prompt tokens a new request will find cached: the longest shared prefix, less the
    /// sentinel, and none when the prompt adds nothing to a cached sequence.
    fn cached_for(&self, prompt: &[u32]) -> usize {
        let mut best = 0;
        for key in self.entries.keys() {
            let shared = key.iter().zip(prompt).take_while(|(a, b)| a == b).count();
            best = best.max(shared);
        }
        if best >= prompt.len() { 0 } else { best }
    }

    /// Records a cached sequence. mistral.rs grows a sequence's key/value buffers 512 tokens
    /// at a time, so that is what an entry holds.
    fn add(&mut self, seq: Vec<u32>) {
        let held = seq.len().div_ceil(512) * 512;
        if self.entries.insert(seq, held).is_none() {
            self.tokens += held as u64;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.tokens = 0;
        self.resets += 1;
    }
}

/// How a request ended.
struct RunEnd {
    usage: Usage,
    stopped: bool,
}

struct Loaded {
    model: Arc<Model>,
}

struct Inner {
    loaded: Option<Loaded>,
    book: CacheBook,
    restarts: u64,
}

/// GLM-4 (or any model mistral.rs loads) running in this process.
pub struct EmbeddedEngine {
    config: EmbeddedConfig,
    shape: Shape,
    isq: Option<IsqType>,
    sentinel: u32,
    served: PathBuf,
    budget: u64,
    tokenizer: Arc<tokenizers::Tokenizer>,
    inner: RwLock<Inner>,
    report: LoadReport,
    next_id: std::sync::atomic::AtomicUsize,
}

/// Engine statistics, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedStats {
    /// Token slots the prefix cache holds, by the engine's account.
    pub cached_tokens: u64,
    /// Sequences the prefix cache holds.
    pub cached_sequences: usize,
    /// Times the cache was cleared for exceeding its budget.
    pub cache_resets: u64,
    /// Times the engine was restarted after it died.
    pub restarts: u64,
}

fn sentinel_for(tokenizer: &tokenizers::Tokenizer) -> Result<u32, EngineError> {
    // `[MASK]` is a GLM-4 control token that never follows an assistant turn.
    for name in ["[MASK]", "<|endoftext|>"] {
        if let Some(id) = tokenizer.token_to_id(name) {
            return Ok(id);
        }
    }
    Err(EngineError::fatal(
        "the tokenizer has neither [MASK] nor <|endoftext|>: not a GLM-4 tokenizer",
    ))
}

impl EmbeddedEngine {
    /// Loads the model in `config.model_dir`. Loading a 9B model takes a while; quantising it
    /// the first time takes longer (the quantised weights are saved for the next load).
    pub async fn load(config: EmbeddedConfig) -> Result<EmbeddedEngine, EngineError> {
        let started = Instant::now();
        let dir = &config.model_dir;
        let shape = Shape::read(dir)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| EngineError::fatal(format!("cannot load {}: {e}", tok_path.display())))?;
        let sentinel = sentinel_for(&tokenizer)?;
        let available = available_memory();
        let (isq, reason) = choose_isq(config.isq, shape.params, available, uses_gpu());
        let budget = config.cache_budget.unwrap_or_else(|| {
            available
                .map(|a| a / 4)
                .unwrap_or(1 << 30)
                .clamp(256 << 20, 8 << 30)
        });
        let served = overlay(&config.model_dir, &config.work_dir, sentinel)?;
        let (model, from_saved) = build(&config, &served, isq).await?;
        let report = LoadReport {
            isq: isq.map(isq_name),
            reason,
            from_saved,
            cache_budget: budget,
            took: started.elapsed(),
        };
        Ok(EmbeddedEngine {
            config,
            shape,
            isq,
            sentinel,
            served,
            budget,
            tokenizer: Arc::new(tokenizer),
            inner: RwLock::new(Inner {
                loaded: Some(Loaded {
                    model: Arc::new(model),
                }),
                book: CacheBook::default(),
                restarts: 0,
            }),
            report,
            next_id: std::sync::atomic::AtomicUsize::new(1),
        })
    }

    /// What loading decided.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// Cache and restart counters.
    pub async fn stats(&self) -> EmbeddedStats {
        let inner = self.inner.read().await;
        EmbeddedStats {
            cached_tokens: inner.book.tokens,
            cached_sequences: inner.book.entries.len(),
            cache_resets: inner.book.resets,
            restarts: inner.restarts,
        }
    }

    /// The logits the model gives for the token after `prompt`, computed by mistral.rs.
    pub async fn next_token_logits(&self, prompt: &[u32]) -> Result<Vec<f32>, EngineError> {
        let (mut rx, run) = self.start(GenerateRequest::greedy(prompt.to_vec(), 1), true);
        let mut logits = None;
        let result = run.await.map(|_| ());
        while let Ok(p) = rx.try_recv() {
            if let Picked::Token {
                logits: Some(l), ..
            } = p
            {
                logits = Some(l);
            }
        }
        result?;
        logits.ok_or_else(|| EngineError::fatal("the engine picked no token"))
    }

    /// Clears mistral.rs's prefix cache: a request whose only token is outside the vocabulary
    /// fails in the model's forward pass, and mistral.rs drops every cached sequence when a
    /// forward pass fails.
    async fn clear_cache(&self, inner: &mut Inner) -> Result<(), EngineError> {
        let Some(loaded) = &inner.loaded else {
            return Ok(());
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let mut params = SamplingParams::deterministic();
        params.max_len = Some(1);
        let request = NormalRequest::new_simple(
            RequestMessage::CompletionTokens(vec![self.shape.vocab_size as u32 + 7]),
            params,
            tx,
            self.next_id(),
            None,
            None,
        );
        let sender = loaded
            .model
            .inner()
            .get_sender(None)
            .map_err(|e| dead(&e.to_string()))?;
        sender
            .send(Request::Normal(Box::new(request)))
            .await
            .map_err(|_| dead("the request channel is closed"))?;
        // Any answer (an error is expected) means the engine handled it.
        match rx.recv().await {
            Some(_) => {
                inner.book.clear();
                Ok(())
            }
            None => Err(dead("no answer to the cache reset")),
        }
    }

    fn next_id(&self) -> usize {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts a request: returns the channel of picks and a future that drives the request to
    /// its end and yields the usage.
    fn start(
        &self,
        request: GenerateRequest,
        capture_logits: bool,
    ) -> (
        mpsc::UnboundedReceiver<Picked>,
        impl std::future::Future<Output = Result<RunEnd, EngineError>> + Send + '_,
    ) {
        let (picks_tx, picks_rx) = mpsc::unbounded_channel();
        let fut = async move {
            if request.prompt.is_empty() {
                return Err(EngineError::fatal("the prompt is empty"));
            }
            if let Some(bad) = request
                .prompt
                .iter()
                .find(|&&id| id as usize >= self.shape.vocab_size)
            {
                return Err(EngineError::fatal(format!(
                    "token id {bad} is outside the model's vocabulary ({} ids)",
                    self.shape.vocab_size
                )));
            }
            self.ensure_loaded().await?;
            let mut inner = self.inner.write().await;
            if self.config.prefix_cache
                && inner.book.tokens * self.shape.kv_bytes_per_token > self.budget
            {
                self.clear_cache(&mut inner).await?;
            }
            let cached = if self.config.prefix_cache {
                inner.book.cached_for(&request.prompt)
            } else {
                0
            };
            let Some(loaded) = &inner.loaded else {
                return Err(dead("the engine is not loaded"));
            };
            let model = loaded.model.clone();
            let seed = request.sampling.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            });
            let max_new = request.max_new_tokens.max(1) as usize;
            let picker = Arc::new(Picker(Mutex::new(PickerState {
                sampling: request.sampling.clone(),
                rng: Rng::new(seed),
                stop_ids: request.stop_ids.clone(),
                max_new,
                prompt_len: request.prompt.len(),
                sentinel: self.sentinel,
                picked: Vec::new(),
                closed: false,
                capture_logits,
                cancelled: false,
                events: Some(picks_tx),
                mismatch: None,
            })));
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let mut params = SamplingParams::deterministic();
            params.max_len = Some(max_new + 1);
            // No stop tokens: the sentinel, the model's only end-of-sequence token, ends it.
            let mut normal = NormalRequest::new_simple(
                RequestMessage::CompletionTokens(request.prompt.clone()),
                params,
                tx,
                self.next_id(),
                None,
                None,
            );
            normal.constraint = Constraint::None;
            normal.logits_processors = Some(vec![picker.clone()]);
            let sender = model
                .inner()
                .get_sender(None)
                .map_err(|e| dead(&e.to_string()))?;
            let started = Instant::now();
            if sender
                .send(Request::Normal(Box::new(normal)))
                .await
                .is_err()
            {
                inner.loaded = None;
                return Err(dead("the request channel is closed"));
            }
            let outcome = loop {
                match rx.recv().await {
                    Some(Response::CompletionDone(done)) => break Ok(done.usage),
                    Some(Response::CompletionModelError(msg, _)) => {
                        break Err(EngineError::fatal(format!("the model failed: {msg}")));
                    }
                    Some(Response::InternalError(e)) => {
                        break Err(EngineError::fatal(format!("engine error: {e}")));
                    }
                    Some(Response::ValidationError(e)) => {
                        break Err(EngineError::fatal(format!(
                            "the engine refused the request: {e}"
                        )));
                    }
                    Some(_) => continue,
                    None => break Err(dead("the engine stopped answering")),
                }
            };
            let (picked, closed, mismatch) = {
                let s = picker.0.lock().unwrap_or_else(|p| p.into_inner());
                (s.picked.clone(), s.closed, s.mismatch.clone())
            };
            let done_usage = match outcome {
                Ok(u) => u,
                Err(e) => {
                    if e.retryable {
                        inner.loaded = None;
                    } else {
                        // A failed forward pass also empties mistral.rs's cache.
                        inner.book.clear();
                    }
                    return Err(e);
                }
            };
            if let Some(m) = mismatch {
                inner.book.clear();
                return Err(EngineError::fatal(m));
            }
            if self.config.prefix_cache {
                let mut key = request.prompt.clone();
                key.extend(&picked);
                if closed {
                    key.push(self.sentinel);
                }
                inner.book.add(key);
            }
            let elapsed = started.elapsed();
            let prefill = Duration::from_secs_f32(done_usage.total_prompt_time_sec.max(0.0));
            let usage = Usage {
                prompt_tokens: request.prompt.len(),
                cached_prompt_tokens: Some(cached),
                generated_tokens: picked.len(),
                prefill,
                decode: elapsed.saturating_sub(prefill),
            };
            let stopped = picked
                .last()
                .is_some_and(|id| request.stop_ids.contains(id));
            Ok(RunEnd { usage, stopped })
        };
        (picks_rx, fut)
    }

    async fn ensure_loaded(&self) -> Result<(), EngineError> {
        if self.inner.read().await.loaded.is_some() {
            return Ok(());
        }
        let mut inner = self.inner.write().await;
        if inner.loaded.is_none() {
            let (model, _) = build(&self.config, &self.served, self.isq).await?;
            inner.loaded = Some(Loaded {
                model: Arc::new(model),
            });
            inner.book = CacheBook {
                resets: inner.book.resets,
                ..CacheBook::default()
            };
            inner.restarts += 1;
        }
        Ok(())
    }

    /// Makes mistral.rs's engine thread panic, as a bug in it would (for tests of recovery):
    /// the request's logits processor panics inside the engine's step.
    #[doc(hidden)]
    pub async fn simulate_engine_panic(&self) {
        struct Boom;
        impl mistralrs::CustomLogitsProcessor for Boom {
            fn apply(
                &self,
                _: &mistralrs::Tensor,
                _: &[u32],
            ) -> mistralrs::Result<mistralrs::Tensor> {
                panic!("simulated engine failure")
            }
        }
        let inner = self.inner.write().await;
        let Some(loaded) = &inner.loaded else {
            return;
        };
        let Ok(sender) = loaded.model.inner().get_sender(None) else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let mut params = SamplingParams::deterministic();
        params.max_len = Some(1);
        let mut request = NormalRequest::new_simple(
            RequestMessage::CompletionTokens(vec![1, 2, 3]),
            params,
            tx,
            self.next_id(),
            None,
            None,
        );
        request.logits_processors = Some(vec![Arc::new(Boom)]);
        if sender
            .send(Request::Normal(Box::new(request)))
            .await
            .is_ok()
        {
            // Wait for the answer or for the channel to close with the thread.
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        }
    }
}

fn dead(why: &str) -> EngineError {
    EngineError::transient(format!(
        "the embedded engine stopped ({why}); it is restarted for the next request"
    ))
}

/// The folder mistral.rs loads: links to the model's files, with the generation settings
/// rewritten so that the model's only end-of-sequence token is `sentinel`. The engine decides
/// where a generation stops (the picker closes it with the sentinel after a stop token), so
/// every real token, the stop token included, is run through the model and cached. Saved
/// quantised weights live here too, never in the user's model folder.
pub fn overlay(model_dir: &Path, work_dir: &Path, sentinel: u32) -> Result<PathBuf, EngineError> {
    use std::hash::{Hash, Hasher};
    let io = |what: &Path, e: std::io::Error| {
        EngineError::fatal(format!("preparing {}: {e}", what.display()))
    };
    let source = std::fs::canonicalize(model_dir).map_err(|e| io(model_dir, e))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let dir = work_dir.join(format!("{name}-{:016x}", hasher.finish()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let rewritten = ["generation_config.json", "tokenizer_config.json"];
    for entry in std::fs::read_dir(&source).map_err(|e| io(&source, e))? {
        let entry = entry.map_err(|e| io(&source, e))?;
        let file_name = entry.file_name();
        let target = entry.path();
        if !target.is_file() || rewritten.iter().any(|r| file_name == *r) {
            continue;
        }
        // Made under a private name and renamed over the old link: loads can run at once.
        let link = dir.join(&file_name);
        let fresh = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            file_name.to_string_lossy(),
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&fresh);
        link_file(&target, &fresh).map_err(|e| io(&fresh, e))?;
        std::fs::rename(&fresh, &link).map_err(|e| io(&link, e))?;
    }
    let sentinel_text = "[MASK]";
    let generation = serde_json::json!({ "eos_token_id": [sentinel] });
    write_atomic(&dir.join("generation_config.json"), &generation.to_string())
        .map_err(|e| io(&dir, e))?;
    let mut tokenizer_config: Value = std::fs::read_to_string(source.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = tokenizer_config.as_object_mut() {
        map.insert("eos_token".into(), sentinel_text.into());
    }
    write_atomic(
        &dir.join("tokenizer_config.json"),
        &tokenizer_config.to_string(),
    )
    .map_err(|e| io(&dir, e))?;
    Ok(dir)
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let fresh = path.with_extension(format!(
        "{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&fresh, text)?;
    std::fs::rename(&fresh, path)
}

#[cfg(unix)]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn link_file(target: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::hard_link(target, link).or_else(|_| std::fs::copy(target, link).map(|_| ()))
}

/// Builds a mistral.rs model, reading saved quantised weights when there are some.
async fn build(
    config: &EmbeddedConfig,
    dir: &Path,
    isq: Option<IsqType>,
) -> Result<(Model, bool), EngineError> {
    let id = dir.to_string_lossy().into_owned();
    let saved = isq.map(|t| {
        let file = PathBuf::from("uqff").join(format!("{}-0.uqff", isq_name(t)));
        (t, dir.join(&file).exists(), file)
    });
    let mut builder = match &saved {
        Some((_, true, file)) => UqffTextModelBuilder::new(&id, vec![file.clone()]).into_inner(),
        _ => TextModelBuilder::new(&id),
    }
    .with_max_num_seqs(4);
    builder = if uses_gpu() {
        builder.with_dtype(ModelDType::BF16)
    } else {
        builder.with_force_cpu().with_dtype(ModelDType::F32)
    };
    builder = builder.with_prefix_cache_n(if config.prefix_cache { Some(16) } else { None });
    if config.verbose {
        builder = builder.with_logging();
    }
    let mut from_saved = false;
    match saved {
        Some((_, true, _)) => from_saved = true,
        Some((t, false, _)) => {
            builder = builder.with_isq(t);
            if config.save_quantized && std::fs::create_dir_all(dir.join("uqff")).is_ok() {
                builder =
                    builder.write_uqff(dir.join("uqff").join(format!("{}.uqff", isq_name(t))));
            }
        }
        None => {}
    }
    let model = builder.build().await.map_err(|e| {
        EngineError::fatal(format!(
            "mistral.rs could not load {}: {e:#}",
            dir.display()
        ))
    })?;
    Ok((model, from_saved))
}

impl Engine for EmbeddedEngine {
    fn describe(&self) -> String {
        format!(
            "embedded:{} isq={}",
            self.config.model_dir.display(),
            self.report.isq.as_deref().unwrap_or("none")
        )
    }

    fn generate(&self, request: GenerateRequest) -> EventStream<'_> {
        let (picks, run) = self.start(request, false);
        let state = StreamState {
            picks: Some(picks),
            run: Some(Box::pin(run)),
            decoder: Decoder::new(self.tokenizer.clone()),
            queue: std::collections::VecDeque::new(),
        };
        Box::pin(futures::stream::unfold(state, |mut s| async move {
            s.next().await.map(|item| (item, s))
        }))
    }
}

type RunFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunEnd, EngineError>> + Send + 'a>>;

struct StreamState<'a> {
    picks: Option<mpsc::UnboundedReceiver<Picked>>,
    run: Option<RunFuture<'a>>,
    decoder: Decoder,
    queue: std::collections::VecDeque<Result<EngineEvent, EngineError>>,
}

impl StreamState<'_> {
    async fn next(&mut self) -> Option<Result<EngineEvent, EngineError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            let run = self.run.as_mut()?;
            let picks = self.picks.as_mut();
            tokio::select! {
                biased;
                pick = async {
                    match picks {
                        Some(p) => p.recv().await,
                        None => std::future::pending().await,
                    }
                } => match pick {
                    Some(Picked::Token { id, .. }) => {
                        let text = self.decoder.push(id);
                        return Some(Ok(EngineEvent::Delta { ids: vec![id], text }));
                    }
                    Some(Picked::Sentinel) => {}
                    None => self.picks = None,
                },
                result = run => {
                    self.run = None;
                    let end = match result {
                        Ok(end) => end,
                        Err(e) => return Some(Err(e)),
                    };
                    // Picks still queued come before the end.
                    let mut ids = Vec::new();
                    let mut text = String::new();
                    if let Some(p) = self.picks.as_mut() {
                        while let Ok(pick) = p.try_recv() {
                            if let Picked::Token { id, .. } = pick {
                                ids.push(id);
                                text.push_str(&self.decoder.push(id));
                            }
                        }
                    }
                    text.push_str(&self.decoder.flush());
                    if !ids.is_empty() || !text.is_empty() {
                        self.queue.push_back(Ok(EngineEvent::Delta { ids, text }));
                    }
                    let reason = if end.stopped { FinishReason::Stop } else { FinishReason::Length };
                    self.queue.push_back(Ok(EngineEvent::Finished { reason, usage: end.usage }));
                }
            }
        }
    }
}

/// Turns ids into text as they come, control tokens visible, never splitting a character.
pub struct Decoder {
    tokenizer: Arc<tokenizers::Tokenizer>,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl Decoder {
    /// A decoder with nothing decoded yet.
    pub fn new(tokenizer: Arc<tokenizers::Tokenizer>) -> Self {
        Decoder {
            tokenizer,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, false).unwrap_or_default()
    }

    /// Adds one id; returns the text it completes (empty while a character is still partial).
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let after = self.decode(&self.ids[self.prefix..]);
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.starts_with(&before)
        {
            let delta = after[before.len()..].to_owned();
            self.prefix = self.read;
            self.read = self.ids.len();
            delta
        } else {
            String::new()
        }
    }

    /// The text still held back (a partial character at the end).
    pub fn flush(&mut self) -> String {
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let after = self.decode(&self.ids[self.prefix..]);
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        after
            .strip_prefix(&before)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}
