//! Which quantisation a load applies: the user's choice, or by default Q4K on CPU for large models.

use mistralrs::IsqType;

/// Which quantisation to apply while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isq {
    /// bf16 on a GPU; on CPU Q4K for models of `QUANTISE_FROM_PARAMS` (1B parameters) or more or when the f32
    /// weights would not fit in available memory, else f32.
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

/// The type for the FFN down projection when `t` cannot hold it: K-quants work in blocks of
/// 256 along a row, and GLM-4-9B's down projection has 13,696 columns (53.5 blocks). mistral.rs
/// would fall back to a type without a vectorised CPU kernel (Q4K to Q4_1, Q5K to Q5_0, Q6K to
/// Q5_1), which is slower than the whole rest of the layer; this picks a 32-column type that
/// has one instead, at least as precise as mistral.rs's fallback: Q8_0. (Q2K and Q3K fall back
/// to Q4_0 already, which has a kernel.)
pub fn down_projection_isq(t: IsqType, ffn: usize) -> Option<IsqType> {
    let k_quant = matches!(t, IsqType::Q4K | IsqType::Q5K | IsqType::Q6K | IsqType::Q8K);
    (k_quant && !ffn.is_multiple_of(256)).then_some(IsqType::Q8_0)
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

/// Models with at least this many parameters are quantised on CPU by default: at GLM-4-9B's
/// widths a 2,000-token prompt plus 200 generated tokens take 35 s in Q4K against 79 s in f32
/// (f32 reads the prompt sooner, Q4K decodes 6x faster; the engine benchmark's `--ttft`); small
/// models stay exact in f32.
pub const QUANTISE_FROM_PARAMS: u64 = 1_000_000_000;

/// Decides the quantisation: explicit choices stand; `Auto` picks bf16 on a GPU, and on CPU
/// Q4K for models of `QUANTISE_FROM_PARAMS` (1B parameters) or more (or whose f32 weights, plus a quarter
/// for working memory, exceed the available memory), else f32.
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
                _ if params >= QUANTISE_FROM_PARAMS => (
                    Some(IsqType::Q4K),
                    format!(
                        "q4k: {:.1} B parameters run faster quantised on CPU (use --isq none for f32, --isq q8_0 for more precision)",
                        params as f64 / 1e9
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_quantises_large_models_on_cpu_and_keeps_small_ones_exact() {
        let plenty = Some(1 << 40);
        assert_eq!(
            choose_isq(Isq::Auto, 9_400_000_000, plenty, false).0,
            Some(IsqType::Q4K)
        );
        assert_eq!(
            choose_isq(Isq::Auto, 1_000_000_000, plenty, false).0,
            Some(IsqType::Q4K)
        );
        assert_eq!(choose_isq(Isq::Auto, 999_999_999, plenty, false).0, None);
        // Too big for memory in f32, whatever its size.
        assert_eq!(
            choose_isq(Isq::Auto, 500_000_000, Some(1 << 30), false).0,
            Some(IsqType::Q4K)
        );
        assert_eq!(choose_isq(Isq::Auto, 9_400_000_000, plenty, true).0, None);
        assert_eq!(
            choose_isq(Isq::None, 9_400_000_000, Some(1 << 30), false).0,
            None
        );
        assert_eq!(
            choose_isq(Isq::Type(IsqType::Q8_0), 1, plenty, false).0,
            Some(IsqType::Q8_0)
        );
    }

    #[test]
    fn k_quants_keep_a_down_projection_they_cannot_hold_on_a_fast_type() {
        // GLM-4-9B: 13,696 = 53.5 blocks of 256.
        for t in [IsqType::Q4K, IsqType::Q5K, IsqType::Q6K, IsqType::Q8K] {
            assert_eq!(down_projection_isq(t, 13_696), Some(IsqType::Q8_0));
            assert_eq!(down_projection_isq(t, 14_336), None);
        }
        for t in [IsqType::Q4_0, IsqType::Q8_0, IsqType::Q2K, IsqType::Q3K] {
            assert_eq!(down_projection_isq(t, 13_696), None);
        }
    }
}
