//! Where the keys and values live, and how many tokens of them fit.
//!
//! On CPU mistral.rs 0.8.1 keeps every sequence's keys and values in tensors of the activation
//! dtype ([`Dtype`]: f32 by default, f16 or bf16 at half the bytes) that grow with it (the
//! prefix cache holds finished ones; see `book`). A CUDA or Metal build uses paged
//! attention instead: one pool of blocks, allocated at load for `context_tokens` tokens, in the
//! model's dtype (bf16) or, with [`KvCache::F8E4M3`], one byte per element, which is what lets a
//! 1,048,576-token window of GLM-4-9B (40 layers, 4 KV heads of 128) fit one 80 GB GPU: 40 GiB of
//! keys and values beside 17.5 GiB of bf16 weights.

use mistralrs::{MemoryGpuConfig, PagedAttentionConfig, PagedAttentionMetaBuilder, PagedCacheType};

/// The embedded engine's activation dtype (`--dtype`), which a CPU build keeps its keys and
/// values in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dtype {
    /// f32 on CPU (exact; candle's f32 matmul is its fastest there), bf16 on a GPU.
    #[default]
    Auto,
    /// 32-bit floats: 4 bytes an element.
    F32,
    /// IEEE half precision: 2 bytes, a range up to 65,504.
    F16,
    /// bfloat16, the dtype GLM-4 was trained in: 2 bytes, f32's range.
    Bf16,
}

impl std::str::FromStr for Dtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        Dtype::ALL
            .into_iter()
            .find(|d| d.name() == lower)
            .ok_or_else(|| format!("unknown dtype `{lower}`: use auto, f32, f16 or bf16"))
    }
}

impl Dtype {
    /// Every dtype, in the order the help lists them.
    const ALL: [Dtype; 4] = [Dtype::Auto, Dtype::F32, Dtype::F16, Dtype::Bf16];

    /// The dtype this build loads with.
    pub fn resolved(self) -> Dtype {
        match self {
            Dtype::Auto if crate::isq::uses_gpu() => Dtype::Bf16,
            Dtype::Auto => Dtype::F32,
            other => other,
        }
    }

    /// Bytes of one element.
    pub fn bytes(self) -> u64 {
        match self.resolved() {
            Dtype::F32 | Dtype::Auto => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Auto => "auto",
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// The element type of the paged key/value cache (`--kv-cache-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCache {
    /// The model's activation dtype: bf16 on a GPU, f32 on CPU.
    #[default]
    Auto,
    /// FP8 (E4M3) on a GPU build with paged attention: half of bf16's bytes.
    F8E4M3,
}

impl std::str::FromStr for KvCache {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(KvCache::Auto),
            "f8e4m3" | "fp8" => Ok(KvCache::F8E4M3),
            other => Err(format!(
                "unknown key/value cache type `{other}`: use auto or f8e4m3"
            )),
        }
    }
}

impl KvCache {
    /// The element type in this build, with activations in `dtype`.
    pub fn element_name(self, dtype: Dtype) -> &'static str {
        match (self, uses_paged_attention()) {
            (KvCache::F8E4M3, true) => "f8e4m3",
            _ => dtype.resolved().name(),
        }
    }

    /// Bytes of one key or value element in this build, with activations in `dtype`.
    pub fn element_bytes(self, dtype: Dtype) -> u64 {
        match (self, uses_paged_attention()) {
            (KvCache::F8E4M3, true) => 1,
            // The activations' dtype otherwise (`check` refuses FP8 without paged attention).
            _ => dtype.bytes(),
        }
    }

    /// Refuses what this build cannot do, with what to do instead.
    pub fn check(self) -> Result<(), String> {
        if self == KvCache::F8E4M3 && !uses_paged_attention() {
            return Err(
                "an FP8 key/value cache (f8e4m3) needs paged attention, which mistral.rs has only on a GPU build \
                 (cargo install --path agent/cli --profile dist --features cuda); this build keeps keys and values \
                 in the activation dtype on the CPU: use --kv-cache-type auto, and --dtype f16 for half f32's bytes"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Whether this build keeps keys and values in a paged pool (a CUDA or Metal build).
pub fn uses_paged_attention() -> bool {
    mistralrs::paged_attn_supported()
}

/// Bytes of keys and values one token takes: every layer's keys and values.
pub fn kv_bytes_per_token(
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    kv: KvCache,
    dtype: Dtype,
) -> u64 {
    2 * (layers * kv_heads * head_dim) as u64 * kv.element_bytes(dtype)
}

/// Paged attention's pool: `context_tokens` tokens (at least one block) in blocks of 32, the
/// largest block mistral.rs's kernels take, of `kv`'s type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PagedPool {
    pub(crate) block_size: usize,
    pub(crate) tokens: usize,
    pub(crate) kv: KvCache,
}

impl PagedPool {
    pub(crate) fn new(context_tokens: usize, kv: KvCache) -> PagedPool {
        PagedPool {
            block_size: 32,
            tokens: context_tokens.max(32),
            kv,
        }
    }

    /// Refuses a request the pool cannot hold: its prompt, its most generated tokens and the
    /// closing sentinel (a sequence longer than the pool would wait for blocks forever).
    pub(crate) fn admits(self, prompt: usize, max_new: usize) -> Result<(), String> {
        let need = prompt.saturating_add(max_new).saturating_add(1);
        if need > self.tokens {
            return Err(format!(
                "the prompt ({prompt} tokens) and up to {max_new} generated need {need} tokens of keys and values; \
                 the paged pool holds {}: raise --context-tokens (the pool is allocated at load) or shorten the prompt",
                self.tokens
            ));
        }
        Ok(())
    }

    /// mistral.rs's configuration of the pool.
    pub(crate) fn config(self) -> Result<PagedAttentionConfig, String> {
        PagedAttentionMetaBuilder::default()
            .with_block_size(self.block_size)
            .with_gpu_memory(MemoryGpuConfig::ContextSize(self.tokens))
            .with_paged_cache_type(match self.kv {
                KvCache::Auto => PagedCacheType::Auto,
                KvCache::F8E4M3 => PagedCacheType::F8E4M3,
            })
            .build()
            .map_err(|e| format!("paged attention: {e:#}"))
    }
}

/// The first GPU's memory in bytes, as `nvidia-smi` reports it (`None` without one).
pub fn gpu_memory() -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mib: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(mib << 20)
}

/// The tokens of keys and values that `memory` bytes hold beside `weights` bytes of weights,
/// keeping a tenth of the memory (and at least 1 GiB) for activations and the runtime.
pub fn tokens_held(memory: u64, weights: u64, per_token: u64) -> u64 {
    let spare = (memory / 10).max(1 << 30);
    memory.saturating_sub(weights).saturating_sub(spare) / per_token.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_named() {
        assert_eq!("auto".parse::<KvCache>(), Ok(KvCache::Auto));
        assert_eq!("F8E4M3".parse::<KvCache>(), Ok(KvCache::F8E4M3));
        assert_eq!("fp8".parse::<KvCache>(), Ok(KvCache::F8E4M3));
        let err = "int4".parse::<KvCache>().unwrap_err();
        assert!(err.contains("`int4`") && err.contains("f8e4m3"), "{err}");
        assert_eq!(KvCache::Auto.element_name(Dtype::F16), "f16");
        let auto = KvCache::Auto.element_name(Dtype::Auto);
        assert_eq!(
            auto,
            if crate::isq::uses_gpu() {
                "bf16"
            } else {
                "f32"
            }
        );
        assert_eq!("BF16".parse::<Dtype>(), Ok(Dtype::Bf16));
        let err = "f8".parse::<Dtype>().unwrap_err();
        assert!(err.contains("`f8`") && err.contains("bf16"), "{err}");
    }

    #[test]
    fn a_million_tokens_of_glm4_9b_take_40_gib_in_fp8_on_a_gpu_and_160_on_cpu() {
        // GLM-4-9B-Chat-1M: 40 layers, 4 key/value heads (multi_query_group_num) of 128
        // (kv_channels).
        let window = 1_048_576u64;
        let per = |kv| kv_bytes_per_token(40, 4, 128, kv, Dtype::Auto);
        if uses_paged_attention() {
            assert_eq!(per(KvCache::F8E4M3) * window, 40 << 30);
            assert_eq!(per(KvCache::Auto) * window, 80 << 30);
            assert_eq!(KvCache::F8E4M3.check(), Ok(()));
        } else {
            assert_eq!(per(KvCache::Auto), 160 << 10);
            assert_eq!(per(KvCache::F8E4M3) * window, 160 << 30);
            // f16 or bf16 activations halve them on CPU.
            assert_eq!(
                kv_bytes_per_token(40, 4, 128, KvCache::Auto, Dtype::F16),
                80 << 10
            );
            assert_eq!(
                kv_bytes_per_token(40, 4, 128, KvCache::Auto, Dtype::Bf16),
                80 << 10
            );
            assert_eq!(
                kv_bytes_per_token(40, 4, 128, KvCache::Auto, Dtype::F32),
                160 << 10
            );
            let err = KvCache::F8E4M3.check().unwrap_err();
            assert!(err.contains("--features cuda"), "{err}");
        }
        assert_eq!(KvCache::Auto.check(), Ok(()));
    }

    #[test]
    fn an_80_gb_gpu_holds_the_whole_window_in_fp8_beside_bf16_weights() {
        let fp8 = 2 * 40 * 4 * 128; // bytes per token at one byte an element
        let weights = 9_400_000_000u64 * 2; // GLM-4-9B in bf16
        let h100 = 80u64 * 1000 * 1000 * 1000;
        let held = tokens_held(h100, weights, fp8);
        assert!(held >= 1_048_576, "{held}");
        // In bf16 the same card holds about half.
        assert!(tokens_held(h100, weights, fp8 * 2) < 1_048_576);
        // Weights larger than the card hold nothing, and nothing divides by zero.
        assert_eq!(tokens_held(1 << 30, 2 << 30, fp8), 0);
        assert!(tokens_held(1 << 40, 0, 0) > 0);
    }

    #[test]
    fn the_paged_pool_is_the_context_asked_for_in_the_type_asked_for() {
        let pool = PagedPool::new(1_048_576, KvCache::F8E4M3);
        assert_eq!((pool.block_size, pool.tokens), (32, 1_048_576));
        assert_eq!(pool.kv, KvCache::F8E4M3);
        assert!(pool.config().is_ok());
        // Less than a block is a block.
        assert_eq!(PagedPool::new(3, KvCache::Auto).tokens, 32);
    }

    #[test]
    fn a_request_longer_than_the_pool_is_refused_with_the_counts() {
        let pool = PagedPool::new(4096, KvCache::F8E4M3);
        assert_eq!(pool.admits(4000, 95), Ok(()));
        let err = pool.admits(4000, 96).unwrap_err();
        assert!(
            err.contains("4000 tokens") && err.contains("4097") && err.contains("4096"),
            "{err}"
        );
        assert!(err.contains("--context-tokens"), "{err}");
        assert!(pool.admits(usize::MAX, usize::MAX).is_err());
    }
}
