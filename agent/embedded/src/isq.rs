//! Which quantisation a load applies: the user's choice, or Q4K on CPU when f32 does not fit.

use mistralrs::IsqType;

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
