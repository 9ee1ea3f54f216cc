//! Sentence ablations, following the protocol of "Towards Applying Large Language Models to
//! Complement Single-Cell Foundation Models" (Palayew, Wang, Bader 2025; the scMPT paper). Every
//! ablation is a pure function of `(sentence, ablation, seed, cell_index, token counter)`:
//! randomness comes from [`cell_rng`]`(ABLATION_DOMAIN, seed, cell_index)` — one ChaCha8 stream
//! per cell — so results are reproducible and independent of threading.
//!
//! Let `genes` be the sentence's gene list and `k` the number of leading genes that fit in the
//! model's context ([`genes_in_context`] on the sentence's prefix + genes, special tokens
//! included).
//!
//! | ablation | result |
//! |---|---|
//! | `none` | unchanged |
//! | `hash` | every gene → first 10 lowercase hex chars of SHA-256(symbol as UTF-8); same gene → same token everywhere |
//! | `hash-instance` | every occurrence → a fresh random 10-hex-char token (5 random bytes) |
//! | `shuffle-all` | uniform shuffle of the full list |
//! | `shuffle-in-context` | shuffle `genes[..k]`, keep `genes[k..]` after them unchanged |
//! | `shuffle-top10` | shuffle `genes[..m]`, `m = ceil(k / 10)`, raised to 2 when `k ≥ 2` (a 1-gene shuffle would be a no-op), the rest unchanged |
//! | `hash+shuffle-in-context` | `hash`, then `shuffle-in-context` with `k` recomputed on the hashed text |
//! | `shorten:p` | keep `genes[..r]`, `r = round(k · p / 100)` (half away from zero), at least 1 when `k ≥ 1`; genes beyond the context are dropped too |
//!
//! Shuffles are Fisher–Yates (`rand::seq::SliceRandom::shuffle`) and may by chance return the
//! identity permutation. The prefix is kept; the text is re-rendered.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::sentences::{cell_rng, genes_in_context, CellSentence, TokenCounter};

/// RNG domain for ablations.
pub const ABLATION_DOMAIN: &str = "celltext/ablation/v1";
/// Length of hashed / random gene tokens.
pub const HASH_LEN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ablation {
    None,
    Hash,
    HashInstance,
    ShuffleAll,
    ShuffleInContext,
    ShuffleTop10,
    HashShuffleInContext,
    /// Keep the top `pct` % (1..=100) of in-context genes.
    Shorten(u8),
}

impl Ablation {
    pub const VALID: &'static str = "none, hash, hash-instance, shuffle-all, shuffle-in-context, \
        shuffle-top10, hash+shuffle-in-context, shorten:<pct> with pct in 1..=100 (protocol: \
        shorten:10, shorten:20, shorten:50)";

    /// The ablations of the protocol, in a fixed order.
    pub fn protocol() -> Vec<Ablation> {
        vec![
            Ablation::None,
            Ablation::Hash,
            Ablation::HashInstance,
            Ablation::ShuffleAll,
            Ablation::ShuffleInContext,
            Ablation::ShuffleTop10,
            Ablation::HashShuffleInContext,
            Ablation::Shorten(10),
            Ablation::Shorten(20),
            Ablation::Shorten(50),
        ]
    }

    /// Whether [`apply`] needs a token counter for this ablation.
    pub fn needs_counter(&self) -> bool {
        matches!(
            self,
            Ablation::ShuffleInContext
                | Ablation::ShuffleTop10
                | Ablation::HashShuffleInContext
                | Ablation::Shorten(_)
        )
    }
}

impl fmt::Display for Ablation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ablation::None => f.write_str("none"),
            Ablation::Hash => f.write_str("hash"),
            Ablation::HashInstance => f.write_str("hash-instance"),
            Ablation::ShuffleAll => f.write_str("shuffle-all"),
            Ablation::ShuffleInContext => f.write_str("shuffle-in-context"),
            Ablation::ShuffleTop10 => f.write_str("shuffle-top10"),
            Ablation::HashShuffleInContext => f.write_str("hash+shuffle-in-context"),
            Ablation::Shorten(p) => write!(f, "shorten:{p}"),
        }
    }
}

impl FromStr for Ablation {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "none" => Ablation::None,
            "hash" => Ablation::Hash,
            "hash-instance" => Ablation::HashInstance,
            "shuffle-all" => Ablation::ShuffleAll,
            "shuffle-in-context" => Ablation::ShuffleInContext,
            "shuffle-top10" => Ablation::ShuffleTop10,
            "hash+shuffle-in-context" => Ablation::HashShuffleInContext,
            _ => match t.strip_prefix("shorten:").map(|p| p.parse::<u8>()) {
                Some(Ok(p)) if (1..=100).contains(&p) => Ablation::Shorten(p),
                _ => bail!("unknown ablation '{s}'; valid values: {}", Self::VALID),
            },
        })
    }
}

/// First [`HASH_LEN`] lowercase hex chars of SHA-256(symbol).
pub fn hash_gene(symbol: &str) -> String {
    let d = Sha256::digest(symbol.as_bytes());
    let mut h = hex::encode(d);
    h.truncate(HASH_LEN);
    h
}

/// Number of genes `shuffle-top10` shuffles given `k` in-context genes.
pub fn top10_len(k: usize) -> usize {
    if k < 2 {
        k
    } else {
        k.div_ceil(10).max(2)
    }
}

/// Number of genes `shorten:pct` keeps given `k` in-context genes.
pub fn shorten_len(k: usize, pct: u8) -> usize {
    if k == 0 {
        return 0;
    }
    // round half away from zero of k·pct/100, exact in integers.
    ((k * pct as usize + 50) / 100).clamp(1, k)
}

fn need<'a>(counter: Option<&'a dyn TokenCounter>, ab: &Ablation) -> Result<&'a dyn TokenCounter> {
    counter.ok_or_else(|| {
        anyhow::anyhow!(
            "ablation '{ab}' needs a token counter (the model's tokenizer and max length)"
        )
    })
}

/// Apply `ablation` to one sentence. `cell_index` selects the cell's RNG stream.
pub fn apply(
    s: &CellSentence,
    ablation: &Ablation,
    seed: u64,
    cell_index: u64,
    counter: Option<&dyn TokenCounter>,
) -> Result<CellSentence> {
    let mut rng = cell_rng(ABLATION_DOMAIN, seed, cell_index);
    let genes: Vec<String> = match *ablation {
        Ablation::None => s.genes.clone(),
        Ablation::Hash => s.genes.iter().map(|g| hash_gene(g)).collect(),
        Ablation::HashInstance => s
            .genes
            .iter()
            .map(|_| {
                let b: [u8; HASH_LEN / 2] = rng.gen();
                hex::encode(b)
            })
            .collect(),
        Ablation::ShuffleAll => {
            let mut g = s.genes.clone();
            g.shuffle(&mut rng);
            g
        }
        Ablation::ShuffleInContext => {
            let k = genes_in_context(&s.prefix, &s.genes, need(counter, ablation)?);
            let mut g = s.genes.clone();
            g[..k].shuffle(&mut rng);
            g
        }
        Ablation::ShuffleTop10 => {
            let k = genes_in_context(&s.prefix, &s.genes, need(counter, ablation)?);
            let mut g = s.genes.clone();
            g[..top10_len(k)].shuffle(&mut rng);
            g
        }
        Ablation::HashShuffleInContext => {
            let c = need(counter, ablation)?;
            let mut g: Vec<String> = s.genes.iter().map(|g| hash_gene(g)).collect();
            let k = genes_in_context(&s.prefix, &g, c);
            g[..k].shuffle(&mut rng);
            g
        }
        Ablation::Shorten(p) => {
            if !(1..=100).contains(&p) {
                bail!("shorten percentage must be in 1..=100, got {p}");
            }
            let k = genes_in_context(&s.prefix, &s.genes, need(counter, ablation)?);
            s.genes[..shorten_len(k, p)].to_vec()
        }
    };
    Ok(CellSentence::new(
        s.cell_id.clone(),
        s.prefix.clone(),
        genes,
    ))
}

/// Apply `ablation` to every sentence; sentence `i` uses RNG stream `i` (parallel, deterministic).
pub fn apply_all(
    sentences: &[CellSentence],
    ablation: &Ablation,
    seed: u64,
    counter: Option<&dyn TokenCounter>,
) -> Result<Vec<CellSentence>> {
    apply_all_from(sentences, ablation, seed, counter, 0)
}

/// [`apply_all`] for sentences that start at cell `first_cell` of the dataset (a shard):
/// sentence `i` uses RNG stream `first_cell + i`, as in one run over all cells.
pub fn apply_all_from(
    sentences: &[CellSentence],
    ablation: &Ablation,
    seed: u64,
    counter: Option<&dyn TokenCounter>,
    first_cell: u64,
) -> Result<Vec<CellSentence>> {
    if ablation.needs_counter() {
        need(counter, ablation)?;
    }
    sentences
        .par_iter()
        .enumerate()
        .map(|(i, s)| apply(s, ablation, seed, first_cell + i as u64, counter))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trip() {
        for a in Ablation::protocol() {
            assert_eq!(a.to_string().parse::<Ablation>().unwrap(), a);
        }
        let e = "shorten:0".parse::<Ablation>().unwrap_err().to_string();
        assert!(e.contains("shuffle-top10") && e.contains("shorten:"), "{e}");
        assert!("shuffle".parse::<Ablation>().is_err());
        assert!("shorten:101".parse::<Ablation>().is_err());
    }

    #[test]
    fn lengths() {
        assert_eq!(
            (
                top10_len(0),
                top10_len(1),
                top10_len(2),
                top10_len(20),
                top10_len(21)
            ),
            (0, 1, 2, 2, 3)
        );
        assert_eq!(
            (
                shorten_len(0, 10),
                shorten_len(3, 10),
                shorten_len(15, 10),
                shorten_len(25, 10)
            ),
            (0, 1, 2, 3)
        );
        assert_eq!(shorten_len(7, 50), 4);
        assert_eq!(hash_gene("CD3E").len(), 10);
    }
}
