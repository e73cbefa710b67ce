//! The embedded backend: GLM-4 on mistral.rs, in this process.
//!
//! Prompts go in as token ids. Tokens are picked by our own sampler inside a logits processor
//! (see `picker`), so the engine knows every generated id exactly, control tokens included, and
//! a seed reproduces a run. Prefix caching is on: each agent step prefills only its new tokens.
//!
//! Two mistral.rs behaviours are handled here:
//! - its prefix cache evicts only caches held on a GPU, so on CPU it grows with every request.
//!   The engine keeps its own account of what the cache holds and, past a byte budget, clears it
//!   (a request that cannot run makes mistral.rs drop every cached sequence). A GPU build's
//!   paged pool (see `kv`) is fixed at load and evicts its own blocks: it is never cleared;
//! - a sequence's cache is stored under all of its tokens although the last generated token was
//!   never run through the model. A later prompt that extends the whole sequence (every agent
//!   step does) would reuse a key/value slot that was never written. The picker therefore closes
//!   each generation with a sentinel token after the last real one, so every real token is run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mistralrs::{
    Constraint, IsqType, Model, NormalRequest, Request, RequestMessage, Response, SamplingParams,
};
use tokio::sync::{RwLock, mpsc};

use crate::book::CacheBook;
use crate::config::{EmbeddedConfig, LoadReport, Shape};
use crate::isq::{available_memory, choose_isq, down_projection_isq, isq_name, uses_gpu};
use crate::kv::{Dtype, PagedPool, uses_paged_attention};
use crate::load::build;
use crate::overlay::{overlay, sentinel_for};
use crate::picker::{Picked, Picker, PickerState, Rng};
use glm_engine::{Cause, EngineError, GenerateRequest, Usage};

/// The paged pool's tokens when neither the caller nor the model's config.json gives a window.
const DEFAULT_POOL_TOKENS: usize = 32_768;

/// How a request ended.
pub(crate) struct RunEnd {
    pub(crate) usage: Usage,
    pub(crate) stopped: bool,
}

struct Loaded {
    model: Arc<Model>,
}

/// What requests share: the loaded model. Generations hold it for reading, all at once (mistral.rs
/// batches them); a cache reset or a restart takes it for writing and so waits for them.
struct Inner {
    loaded: Option<Loaded>,
    restarts: u64,
}

/// GLM-4 (or any model mistral.rs loads) running in this process.
pub struct EmbeddedEngine {
    pub(crate) config: EmbeddedConfig,
    pub(crate) shape: Shape,
    isq: Option<IsqType>,
    /// The FFN down projection's type when it differs from `isq`.
    down: Option<IsqType>,
    sentinel: u32,
    served: PathBuf,
    budget: u64,
    /// A GPU build's paged key/value pool, fixed at load.
    paged: Option<PagedPool>,
    pub(crate) tokenizer: Arc<tokenizers::Tokenizer>,
    /// Grammars of structured answers over the tokenizer's vocabulary.
    grammars: crate::grammar::Grammars,
    inner: RwLock<Inner>,
    /// The prefix-cache account, held only to read or update it.
    book: Arc<Mutex<CacheBook>>,
    /// Requests that may run at once (see [`EmbeddedConfig::max_sequences`]).
    sequences: tokio::sync::Semaphore,
    pub(crate) report: LoadReport,
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

impl EmbeddedEngine {
    /// Loads the model in `config.model_dir`. Loading a 9B model takes a while; quantising it
    /// the first time takes longer (the quantised weights are saved for the next load).
    pub async fn load(config: EmbeddedConfig) -> Result<EmbeddedEngine, EngineError> {
        let started = Instant::now();
        let dir = &config.model_dir;
        config
            .kv_cache
            .check()
            .map_err(|m| EngineError::new(Cause::Invalid, m))?;
        let shape = Shape::read(dir, config.kv_cache, config.dtype)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| {
            EngineError::new(
                Cause::Invalid,
                format!("cannot load {}: {e}", tok_path.display()),
            )
        })?;
        let sentinel = sentinel_for(&tokenizer)?;
        let available = available_memory();
        let (isq, mut reason) = choose_isq(config.isq, shape.params, available, uses_gpu());
        if isq.is_none() && !uses_gpu() && config.dtype.resolved() == Dtype::Bf16 {
            return Err(EngineError::new(
                Cause::Invalid,
                "bf16 activations on CPU need quantised weights (candle has no CPU bf16 matmul): \
                 add --isq q8_0 (or q4k), or use --dtype f16",
            ));
        }
        let down = isq.and_then(|t| down_projection_isq(t, shape.ffn));
        if let Some(d) = down {
            reason.push_str(&format!(
                "; FFN down projection in {} ({} columns is not a multiple of 256)",
                isq_name(d),
                shape.ffn
            ));
        }
        // A paged pool is allocated once at its full size and evicts within itself: the account
        // never clears it.
        let paged = uses_paged_attention().then(|| {
            PagedPool::new(
                config
                    .context_tokens
                    .or(shape.context)
                    .unwrap_or(DEFAULT_POOL_TOKENS),
                config.kv_cache,
            )
        });
        let budget = match (paged, config.cache_budget) {
            (Some(pool), _) => pool.tokens as u64 * shape.kv_bytes_per_token,
            (None, Some(b)) => b,
            (None, None) => available
                .map(|a| a / 4)
                .unwrap_or(1 << 30)
                .clamp(256 << 20, 8 << 30),
        };
        let served = overlay(&config.model_dir, &config.work_dir, sentinel)?;
        let (model, from_saved) = build(&config, &served, isq, down, paged).await?;
        let report = LoadReport {
            isq: isq.map(isq_name),
            down_isq: down.map(isq_name),
            reason,
            from_saved,
            cache_budget: budget,
            paged: paged.map(|p| (p.tokens, p.kv.element_name(config.dtype))),
            took: started.elapsed(),
        };
        let max_sequences = config.max_sequences.max(1);
        let tokenizer = Arc::new(tokenizer);
        Ok(EmbeddedEngine {
            config,
            shape,
            isq,
            down,
            sentinel,
            served,
            budget,
            paged,
            grammars: crate::grammar::Grammars::new(tokenizer.clone()),
            tokenizer,
            inner: RwLock::new(Inner {
                loaded: Some(Loaded {
                    model: Arc::new(model),
                }),
                restarts: 0,
            }),
            book: Arc::new(Mutex::new(CacheBook::default())),
            sequences: tokio::sync::Semaphore::new(max_sequences),
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
        let restarts = self.inner.read().await.restarts;
        let book = self.book();
        EmbeddedStats {
            cached_tokens: book.tokens,
            cached_sequences: book.entries.len(),
            cache_resets: book.resets,
            restarts,
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
        logits.ok_or_else(|| EngineError::new(Cause::Internal, "the engine picked no token"))
    }

    /// Clears mistral.rs's prefix cache: a request whose only token is outside the vocabulary
    /// fails in the model's forward pass, and mistral.rs drops every cached sequence when a
    /// forward pass fails.
    async fn clear_cache(&self, inner: &Inner) -> Result<(), EngineError> {
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
                self.book().clear();
                Ok(())
            }
            None => Err(dead("no answer to the cache reset")),
        }
    }

    fn next_id(&self) -> usize {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The cache account (a poisoned lock still holds a usable account).
    fn book(&self) -> std::sync::MutexGuard<'_, CacheBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a request: returns the channel of picks and a future that drives the request to
    /// its end and yields the usage. Requests run concurrently, as sequences mistral.rs batches.
    pub(crate) fn start(
        &self,
        request: GenerateRequest,
        capture_logits: bool,
    ) -> (
        mpsc::UnboundedReceiver<Picked>,
        impl std::future::Future<Output = Result<RunEnd, EngineError>> + Send + '_,
    ) {
        let (picks_tx, picks_rx) = mpsc::unbounded_channel();
        let fut = async move {
            self.validate(&request)?;
            let grammar = match &request.structured {
                Some(s) => Some(self.grammars.compile(s, &request.stop_ids)?),
                None => None,
            };
            let _slot = self
                .sequences
                .acquire()
                .await
                .map_err(|_| dead("the engine is closing"))?;
            self.ensure_loaded().await?;
            self.keep_cache_in_budget().await?;
            let inner = self.inner.read().await;
            let Some(loaded) = &inner.loaded else {
                return Err(dead("the engine is not loaded"));
            };
            let model = loaded.model.clone();
            let cached = if self.config.prefix_cache {
                self.book().cached_for(&request.prompt)
            } else {
                0
            };
            let picker = self.picker(&request, capture_logits, picks_tx, grammar);
            let started = Instant::now();
            let outcome = self.drive(&model, &request, picker.clone()).await;
            drop(inner);
            let (picked, closed, mismatch) = {
                let s = picker.0.lock().unwrap_or_else(|p| p.into_inner());
                (s.picked.clone(), s.closed, s.mismatch.clone())
            };
            let done_usage = match outcome {
                Ok(u) => u,
                Err(e) => {
                    if e.retryable() {
                        self.mark_dead(&model).await;
                    } else {
                        // A failed forward pass also empties mistral.rs's cache.
                        self.book().clear();
                    }
                    return Err(e);
                }
            };
            if let Some(m) = mismatch {
                self.book().clear();
                return Err(EngineError::new(Cause::Internal, m));
            }
            if self.config.prefix_cache {
                let mut key = request.prompt.clone();
                key.extend(&picked);
                if closed {
                    key.push(self.sentinel);
                }
                self.book().add(key);
            }
            let elapsed = started.elapsed();
            let prefill = Duration::from_secs_f32(done_usage.total_prompt_time_sec.max(0.0));
            let usage = Usage {
                prompt_tokens: request.prompt.len(),
                // A paged pool's block cache evicts on its own: what it reused is not known here.
                cached_prompt_tokens: self.paged.is_none().then_some(cached),
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

    /// Refuses prompts the model cannot run before they reach mistral.rs (a failed forward
    /// pass would drop every cached sequence).
    fn validate(&self, request: &GenerateRequest) -> Result<(), EngineError> {
        if request.prompt.is_empty() {
            return Err(EngineError::new(Cause::Invalid, "the prompt is empty"));
        }
        if let Some(pool) = self.paged {
            pool.admits(request.prompt.len(), request.max_new_tokens as usize)
                .map_err(|m| EngineError::new(Cause::ContextExceeded, m))?;
        }
        if let Some(bad) = request
            .prompt
            .iter()
            .find(|&&id| id as usize >= self.shape.vocab_size)
        {
            return Err(EngineError::new(
                Cause::Invalid,
                format!(
                    "token id {bad} is outside the model's vocabulary ({} ids)",
                    self.shape.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// Clears the prefix cache when the account is over budget, once the requests in flight
    /// are done.
    async fn keep_cache_in_budget(&self) -> Result<(), EngineError> {
        let over = || self.book().tokens * self.shape.kv_bytes_per_token > self.budget;
        if !self.config.prefix_cache || self.paged.is_some() || !over() {
            return Ok(());
        }
        let inner = self.inner.write().await;
        if over() {
            self.clear_cache(&inner).await?;
        }
        Ok(())
    }

    /// The sampler of one request.
    fn picker(
        &self,
        request: &GenerateRequest,
        capture_logits: bool,
        events: mpsc::UnboundedSender<Picked>,
        grammar: Option<crate::grammar::Grammar>,
    ) -> Arc<Picker> {
        let seed = request.sampling.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        Arc::new(Picker(Mutex::new(PickerState {
            sampling: request.sampling.clone(),
            rng: Rng::new(seed),
            stop_ids: request.stop_ids.clone(),
            starts_with: request.starts_with.clone(),
            grammar,
            max_new: request.max_new_tokens.max(1) as usize,
            prompt_len: request.prompt.len(),
            sentinel: self.sentinel,
            picked: Vec::new(),
            closed: false,
            capture_logits,
            cancelled: false,
            events: Some(events),
            mismatch: None,
        })))
    }

    /// Sends the request to mistral.rs and waits for its end.
    async fn drive(
        &self,
        model: &Model,
        request: &GenerateRequest,
        picker: Arc<Picker>,
    ) -> Result<mistralrs::Usage, EngineError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut params = SamplingParams::deterministic();
        params.max_len = Some(request.max_new_tokens.max(1) as usize + 1);
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
        if sender
            .send(Request::Normal(Box::new(normal)))
            .await
            .is_err()
        {
            return Err(dead("the request channel is closed"));
        }
        // mistral.rs's engine thread panics when a response cannot be delivered, so the answers
        // are read to the end by a task of their own: a caller that goes away (a cancelled
        // stream) closes its picks channel, the picker ends the sequence at its next step, and
        // this task takes the last answers.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // When the caller is gone, the sequence mistral.rs cached is still put in the account.
        let account = self.config.prefix_cache.then(|| {
            (
                self.book.clone(),
                request.prompt.clone(),
                picker.clone(),
                self.sentinel,
            )
        });
        tokio::spawn(async move {
            let outcome = loop {
                match rx.recv().await {
                    Some(Response::CompletionDone(done)) => break Ok(done.usage),
                    Some(Response::CompletionModelError(msg, _)) => {
                        break Err(EngineError::new(
                            Cause::Internal,
                            format!("the model failed: {msg}"),
                        ));
                    }
                    Some(Response::InternalError(e)) => {
                        break Err(EngineError::new(
                            Cause::Internal,
                            format!("engine error: {e}"),
                        ));
                    }
                    Some(Response::ValidationError(e)) => {
                        break Err(EngineError::new(
                            Cause::Invalid,
                            format!("the engine refused the request: {e}"),
                        ));
                    }
                    Some(_) => continue,
                    None => break Err(dead("the engine stopped answering")),
                }
            };
            let finished = outcome.is_ok();
            if done_tx.send(outcome).is_err()
                && finished
                && let Some((book, mut key, picker, sentinel)) = account
            {
                let (picked, closed) = {
                    let s = picker.0.lock().unwrap_or_else(|p| p.into_inner());
                    (s.picked.clone(), s.closed)
                };
                key.extend(picked);
                if closed {
                    key.push(sentinel);
                }
                book.lock().unwrap_or_else(|p| p.into_inner()).add(key);
            }
        });
        done_rx
            .await
            .unwrap_or_else(|_| Err(dead("the engine stopped answering")))
    }

    /// Drops a model whose engine thread died, so the next request loads a fresh one.
    async fn mark_dead(&self, model: &Arc<Model>) {
        let mut inner = self.inner.write().await;
        if inner
            .loaded
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(&l.model, model))
        {
            inner.loaded = None;
        }
    }

    async fn ensure_loaded(&self) -> Result<(), EngineError> {
        if self.inner.read().await.loaded.is_some() {
            return Ok(());
        }
        let mut inner = self.inner.write().await;
        if inner.loaded.is_none() {
            let (model, _) =
                build(&self.config, &self.served, self.isq, self.down, self.paged).await?;
            inner.loaded = Some(Loaded {
                model: Arc::new(model),
            });
            let mut book = self.book();
            *book = CacheBook {
                resets: book.resets,
                ..CacheBook::default()
            };
            inner.restarts += 1;
        }
        Ok(())
    }

    /// Makes mistral.rs's engine thread panic, as a bug in it would (for tests of recovery):
    /// the request's logits processor panics inside the engine's step. Built only with the
    /// `fault-injection` feature, which the crate's own tests turn on.
    #[cfg(feature = "fault-injection")]
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
    EngineError::new(
        Cause::Overloaded,
        format!("the embedded engine stopped ({why}); it is restarted for the next request"),
    )
}
