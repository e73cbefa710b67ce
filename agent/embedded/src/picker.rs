//! Token choice for the embedded engine.
//!
//! The embedded engine does its own sampling: a logits processor sees each step's logits and the
//! sequence so far, picks the next token with our sampler and seed, and masks every other token,
//! so mistral.rs's argmax takes exactly our pick. That gives the exact generated ids (mistral.rs
//! reports text, and drops control tokens from it), reproducible sampling under a seed, the raw
//! logits when a caller asks for them, and a place to end a generation on our terms.

use std::sync::Mutex;

use glm_engine::Sampling;

/// A small deterministic generator (SplitMix64): enough for sampling, reproducible by seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The index of the largest value (the first on ties); `None` when every value is NaN or -inf
/// or the slice is empty.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() || v == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Picks a token from `logits` under `sampling`; tokens in `banned` are never picked.
pub fn pick(logits: &[f32], sampling: &Sampling, rng: &mut Rng, banned: &[u32]) -> Option<u32> {
    let allowed = |i: usize| !banned.contains(&(i as u32));
    if sampling.greedy || sampling.temperature <= 1e-5 {
        let mut masked: Vec<f32> = logits.to_vec();
        for &b in banned {
            if let Some(v) = masked.get_mut(b as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        return argmax(&masked).map(|i| i as u32);
    }
    let t = f64::from(sampling.temperature);
    let mut candidates: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|&(i, v)| allowed(i) && v.is_finite())
        .map(|(i, &v)| (i, f64::from(v) / t))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    // Tokens more than 40 nats below the best carry less than e^-40 of the mass each (under
    // 1e-12 over GLM-4's whole vocabulary): dropped before sorting, which keeps a step cheap.
    let best = candidates
        .iter()
        .map(|c| c.1)
        .fold(f64::NEG_INFINITY, f64::max);
    candidates.retain(|c| c.1 >= best - 40.0);
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = sampling.top_k.filter(|&k| k > 0) {
        candidates.truncate(k as usize);
    }
    let max = candidates[0].1;
    let mut probs: Vec<f64> = candidates.iter().map(|(_, v)| (v - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    let top_p = f64::from(sampling.top_p);
    if top_p > 0.0 && top_p < 1.0 {
        let mut mass = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            mass += p;
            if mass >= top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        candidates.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut r = rng.next_f64();
    for ((id, _), p) in candidates.iter().zip(&probs) {
        if r < *p {
            return Some(*id as u32);
        }
        r -= p;
    }
    candidates.last().map(|(id, _)| *id as u32)
}

/// What the picker reports for each step.
#[derive(Debug, Clone)]
pub enum Picked {
    /// A generated token, with the step's logits when they were asked for.
    Token {
        /// The token id.
        id: u32,
        /// The logits the token was picked from.
        logits: Option<Vec<f32>>,
    },
    /// The closing sentinel the engine forced after the last real token.
    Sentinel,
}

/// The per-request state of a picker.
#[derive(Debug)]
pub struct PickerState {
    /// The request's sampling settings.
    pub sampling: Sampling,
    /// The generator.
    pub rng: Rng,
    /// Ids that end a generation.
    pub stop_ids: Vec<u32>,
    /// The generation must begin with one of these sequences (none: free).
    pub starts_with: Vec<Vec<u32>>,
    /// The grammar a structured answer must follow (none: free).
    pub grammar: Option<crate::grammar::Grammar>,
    /// The most tokens to generate.
    pub max_new: usize,
    /// The prompt's length: the context beyond it is what was generated.
    pub prompt_len: usize,
    /// The token forced to close the sequence after its last real token, so the last real
    /// token is run through the model (and its keys and values cached) like every other.
    pub sentinel: u32,
    /// Ids picked so far.
    pub picked: Vec<u32>,
    /// Whether the sentinel was forced.
    pub closed: bool,
    /// Keep each step's logits.
    pub capture_logits: bool,
    /// Whether the caller went away: the sequence is closed at the next step.
    pub cancelled: bool,
    /// Where picks go.
    pub events: Option<tokio::sync::mpsc::UnboundedSender<Picked>>,
    /// A context that did not match the picks: mistral.rs changed the sequence under us.
    pub mismatch: Option<String>,
}

impl PickerState {
    /// Picks the next token for `context` (prompt plus generated so far) from `logits`.
    pub fn step(&mut self, logits: &[f32], context: &[u32]) -> u32 {
        let generated = context.get(self.prompt_len..).unwrap_or(&[]);
        if generated != self.picked.as_slice() && self.mismatch.is_none() {
            self.mismatch = Some(format!(
                "the engine's sequence ({} tokens) does not match the prompt ({}) plus the picked tokens ({})",
                context.len(),
                self.prompt_len,
                self.picked.len()
            ));
        }
        let finished = self
            .picked
            .last()
            .is_some_and(|last| self.stop_ids.contains(last))
            || self.picked.len() >= self.max_new
            || self.cancelled
            || self.mismatch.is_some();
        if finished {
            self.closed = true;
            self.send(Picked::Sentinel);
            return self.sentinel;
        }
        let masked = match (self.allowed_next(), self.grammar.as_mut()) {
            (Some(allowed), _) => {
                let mut masked = vec![f32::NEG_INFINITY; logits.len()];
                for &a in &allowed {
                    if let (Some(m), Some(&v)) =
                        (masked.get_mut(a as usize), logits.get(a as usize))
                    {
                        *m = v;
                    }
                }
                Some(masked)
            }
            (None, Some(grammar)) => match grammar.mask(logits) {
                Ok(masked) => Some(masked),
                Err(e) => {
                    self.mismatch = Some(format!("the answer's grammar failed: {e}"));
                    self.closed = true;
                    self.send(Picked::Sentinel);
                    return self.sentinel;
                }
            },
            (None, None) => None,
        };
        let id = pick(
            masked.as_deref().unwrap_or(logits),
            &self.sampling,
            &mut self.rng,
            &[self.sentinel],
        )
        .unwrap_or(self.sentinel);
        if id == self.sentinel {
            // Every logit was NaN or -inf: nothing can be picked.
            self.mismatch = Some("the model produced no finite logits".into());
            self.closed = true;
            self.send(Picked::Sentinel);
            return id;
        }
        self.picked.push(id);
        if let Some(Err(e)) = self.grammar.as_mut().map(|g| g.consume(id)) {
            self.mismatch = Some(format!("the answer's grammar failed: {e}"));
        }
        let logits = self.capture_logits.then(|| logits.to_vec());
        self.send(Picked::Token { id, logits });
        id
    }

    /// The ids the next pick may take while [`PickerState::starts_with`] is not yet met; `None`
    /// when any id may follow.
    pub fn allowed_next(&self) -> Option<Vec<u32>> {
        let k = self.picked.len();
        let done = |c: &Vec<u32>| c.len() <= k && self.picked[..c.len()] == c[..];
        if self.starts_with.is_empty() || self.starts_with.iter().any(done) {
            return None;
        }
        let mut next: Vec<u32> = self
            .starts_with
            .iter()
            .filter(|c| c.len() > k && c[..k] == self.picked[..])
            .map(|c| c[k])
            .collect();
        next.sort_unstable();
        next.dedup();
        (!next.is_empty()).then_some(next)
    }

    fn send(&mut self, picked: Picked) {
        if let Some(tx) = &self.events
            && tx.send(picked).is_err()
        {
            self.cancelled = true;
        }
    }
}

/// The logits processor handed to mistral.rs with each request.
#[derive(Debug)]
pub struct Picker(pub Mutex<PickerState>);

impl mistralrs::CustomLogitsProcessor for Picker {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let values: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let id = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .step(&values, context);
        let mut forced = vec![f32::NEG_INFINITY; values.len()];
        if let Some(v) = forced.get_mut(id as usize) {
            *v = 0.0;
        }
        mistralrs::Tensor::from_vec(forced, values.len(), logits.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_p: f32, top_k: Option<u32>) -> Sampling {
        Sampling {
            temperature,
            top_p,
            top_k,
            seed: None,
            greedy: false,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_skips_banned() {
        let mut rng = Rng::new(1);
        let greedy = Sampling {
            greedy: true,
            ..Sampling::default()
        };
        assert_eq!(pick(&[0.0, 3.0, 3.0, 1.0], &greedy, &mut rng, &[]), Some(1));
        assert_eq!(
            pick(&[0.0, 3.0, 3.0, 1.0], &greedy, &mut rng, &[1]),
            Some(2)
        );
        assert_eq!(
            pick(&[f32::NAN, f32::NEG_INFINITY], &greedy, &mut rng, &[]),
            None
        );
    }

    #[test]
    fn sampling_follows_the_distribution_and_its_seed() {
        // Two tokens, probabilities 0.75 / 0.25 at temperature 1.
        let logits = [0.0f32, (1.0f32 / 3.0).ln()];
        let s = sampling(1.0, 1.0, None);
        let mut rng = Rng::new(7);
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| pick(&logits, &s, &mut rng, &[]) == Some(1))
            .count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| pick(&logits, &s, &mut rng, &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn top_p_and_top_k_cut_the_tail() {
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut rng = Rng::new(11);
        let top_k = sampling(1.0, 1.0, Some(1));
        assert!((0..200).all(|_| pick(&logits, &top_k, &mut rng, &[]) == Some(0)));
        // p(0) = 0.644, p(0) + p(1) = 0.881: top_p 0.8 keeps two tokens.
        let top_p = sampling(1.0, 0.8, None);
        let seen: std::collections::BTreeSet<_> = (0..2000)
            .filter_map(|_| pick(&logits, &top_p, &mut rng, &[]))
            .collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }

    fn picker_state(max_new: usize) -> PickerState {
        PickerState {
            sampling: Sampling {
                greedy: true,
                ..Sampling::default()
            },
            rng: Rng::new(0),
            stop_ids: vec![3],
            starts_with: Vec::new(),
            grammar: None,
            max_new,
            prompt_len: 2,
            sentinel: 9,
            picked: vec![],
            closed: false,
            capture_logits: false,
            cancelled: false,
            events: None,
            mismatch: None,
        }
    }

    #[test]
    fn the_sentinel_follows_a_stop_or_the_length_limit() {
        let new = picker_state;
        let stop = [0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 99.0];
        let mut s = new(10);
        assert_eq!(s.step(&stop, &[1, 2]), 3, "the sentinel is never picked");
        assert_eq!(s.step(&stop, &[1, 2, 3]), 9);
        assert!(s.closed && s.mismatch.is_none());
        let other = [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut s = new(2);
        assert_eq!(s.step(&other, &[1, 2]), 0);
        assert_eq!(s.step(&other, &[1, 2, 0]), 0);
        assert_eq!(s.step(&other, &[1, 2, 0, 0]), 9);
        assert_eq!(s.picked, vec![0, 0]);
        let mut s = new(5);
        s.step(&other, &[1, 2]);
        assert_eq!(s.step(&other, &[1, 2, 7]), 9, "a foreign context ends it");
        assert!(s.mismatch.is_some());
    }

    #[test]
    fn a_required_start_is_followed_then_decoding_is_free() {
        let mut s = PickerState {
            starts_with: vec![vec![4, 5], vec![4, 6, 7], vec![8]],
            grammar: None,
            ..picker_state(10)
        };
        // Token 0 is by far the likeliest everywhere.
        let logits = [9.0, 0.0, 0.0, 0.0, 1.0, 0.5, 2.0, 0.0, 0.5, 0.0];
        let mut context = vec![1, 2];
        for _ in 0..5 {
            let id = s.step(&logits, &context);
            context.push(id);
        }
        assert_eq!(s.picked, vec![4, 6, 7, 0, 0]);
        // A constraint no logit allows ends the generation with an error, never a foreign id.
        let mut s = PickerState {
            starts_with: vec![vec![5]],
            grammar: None,
            ..picker_state(10)
        };
        let mut blocked = logits;
        blocked[5] = f32::NEG_INFINITY;
        assert_eq!(s.step(&blocked, &[1, 2]), 9);
        assert!(s.picked.is_empty() && s.mismatch.is_some());
    }
}
