//! Cell sentences (GenePT-s / Cell2Sentence style): a cell's expressed genes ranked by
//! descending expression, rendered as `prefix + genes.join(" ")`.
//!
//! * Zeros (implicit or stored) are omitted; negative values are rejected (rank raw or
//!   log-normalized data, not z-scores).
//! * Ties (equal values) are ordered by [`Ties`]: `Stable` keeps matrix column order;
//!   `Shuffle { seed }` shuffles each run of equal values with a per-cell RNG from
//!   [`cell_rng`]`(TIES_DOMAIN, seed, cell_index)`, so results do not depend on threading.
//!   (GenePT's notebook uses `np.argsort(cell)[::-1]`, whose tie order is an artefact of
//!   NumPy's unstable quicksort; `Stable` is the reproducible counterpart.)
//! * `max_genes` truncates after ranking (GenePT used 1000).
//!
//! Token budgets: [`genes_in_context`] finds, by binary search over the prefix length, the
//! largest number of leading genes whose full sentence text fits in the model's context
//! (`count(text) ≤ max_len`, special tokens included); [`token_budget`] summarizes it over cells.
//! The search assumes the token count is non-decreasing in the number of genes, which holds for
//! tokenizers that split on whitespace before sub-word tokenization (WordPiece, BPE with a
//! whitespace pre-tokenizer).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::matrix::{CsrMatrix, ExpressionMatrix};
use super::normalize::validate_csr;

/// GenePT-s prompt prefix (note the trailing space).
pub const GENEPT_S_PREFIX: &str = "A cell with genes ranked by expression: ";
/// RNG domain for tie shuffling.
pub const TIES_DOMAIN: &str = "celltext/sentences/ties/v1";

/// Per-cell deterministic RNG: key = SHA-256(domain ‖ 0x00 ‖ seed as u64 LE), ChaCha8 stream =
/// `cell_index`. Independent of thread scheduling and of other cells.
pub fn cell_rng(domain: &str, seed: u64, cell_index: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(seed.to_le_bytes());
    let key: [u8; 32] = h.finalize().into();
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(cell_index);
    rng
}

/// Order of genes with equal expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ties {
    /// Matrix column order.
    Stable,
    /// Seeded shuffle within each run of equal values.
    Shuffle { seed: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceConfig {
    /// Text placed before the gene list (GenePT-s by default; may be empty).
    pub prefix: String,
    pub max_genes: Option<usize>,
    pub ties: Ties,
}

impl Default for SentenceConfig {
    fn default() -> Self {
        SentenceConfig {
            prefix: GENEPT_S_PREFIX.to_string(),
            max_genes: None,
            ties: Ties::Stable,
        }
    }
}

/// One cell's sentence. Invariant: `text == render(&prefix, &genes)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSentence {
    pub cell_id: String,
    /// The template prefix the text starts with (kept so ablations can re-render the text).
    pub prefix: String,
    /// Gene tokens in sentence order.
    pub genes: Vec<String>,
    pub text: String,
}

impl CellSentence {
    pub fn new(cell_id: impl Into<String>, prefix: impl Into<String>, genes: Vec<String>) -> Self {
        let prefix = prefix.into();
        let text = render(&prefix, &genes);
        CellSentence {
            cell_id: cell_id.into(),
            prefix,
            genes,
            text,
        }
    }
}

/// `prefix + genes.join(" ")` (GenePT's `prompt_prefix + ' '.join(x)`).
pub fn render(prefix: &str, genes: &[impl AsRef<str>]) -> String {
    let mut s = String::with_capacity(
        prefix.len() + genes.iter().map(|g| g.as_ref().len() + 1).sum::<usize>(),
    );
    s.push_str(prefix);
    for (k, g) in genes.iter().enumerate() {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(g.as_ref());
    }
    s
}

/// Column indices of cell `i`'s expressed genes, by descending value, ties per `ties`.
/// Values must be finite and non-negative (checked by the callers).
pub fn rank_genes(x: &CsrMatrix, i: usize, ties: Ties) -> Vec<usize> {
    rank_genes_as(x, i, i as u64, ties)
}

/// [`rank_genes`] of row `i` drawing ties from the RNG stream of cell `cell_index` (its row in
/// the whole dataset when `x` holds one shard's rows).
pub fn rank_genes_as(x: &CsrMatrix, i: usize, cell_index: u64, ties: Ties) -> Vec<usize> {
    let mut entries: Vec<(usize, f32)> = x.row(i).filter(|&(_, v)| v > 0.0).collect();
    entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Ties::Shuffle { seed } = ties {
        let mut rng = cell_rng(TIES_DOMAIN, seed, cell_index);
        let mut a = 0;
        while a < entries.len() {
            let mut b = a + 1;
            while b < entries.len() && entries[b].1 == entries[a].1 {
                b += 1;
            }
            if b - a > 1 {
                entries[a..b].shuffle(&mut rng);
            }
            a = b;
        }
    }
    entries.into_iter().map(|(j, _)| j).collect()
}

/// Sentences for every cell of `x` (cells × genes) with `cell_ids` (rows) and `genes` (columns).
pub fn build_sentences(
    x: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    cfg: &SentenceConfig,
) -> Result<Vec<CellSentence>> {
    build_sentences_from(x, cell_ids, genes, cfg, 0)
}

/// [`build_sentences`] for rows that start at row `first_cell` of the dataset (a shard): each
/// cell draws from its dataset-wide RNG stream, so shards give the sentences of one run.
pub fn build_sentences_from(
    x: &CsrMatrix,
    cell_ids: &[String],
    genes: &[String],
    cfg: &SentenceConfig,
    first_cell: u64,
) -> Result<Vec<CellSentence>> {
    validate_csr(x, "cell sentences")?;
    if cell_ids.len() != x.n_rows {
        bail!(
            "cell sentences: {} cell ids for {} matrix rows",
            cell_ids.len(),
            x.n_rows
        );
    }
    if genes.len() != x.n_cols {
        bail!(
            "cell sentences: {} gene names for {} matrix columns",
            genes.len(),
            x.n_cols
        );
    }
    if let Some(k) = x.data.iter().position(|&v| v < 0.0) {
        bail!(
            "cell sentences rank expression and need non-negative values, found {} at gene column {} \
             ({}); use raw or log-normalized data, not z-scores",
            x.data[k],
            x.indices[k],
            genes[x.indices[k] as usize]
        );
    }
    if cfg.max_genes == Some(0) {
        bail!("cell sentences: max_genes must be at least 1 (or unset)");
    }
    Ok((0..x.n_rows)
        .into_par_iter()
        .map(|i| {
            let mut order = rank_genes_as(x, i, first_cell + i as u64, cfg.ties);
            if let Some(m) = cfg.max_genes {
                order.truncate(m);
            }
            let names = order.into_iter().map(|j| genes[j].clone()).collect();
            CellSentence::new(cell_ids[i].clone(), cfg.prefix.clone(), names)
        })
        .collect())
}

/// [`build_sentences`] on an [`ExpressionMatrix`].
pub fn sentences_for(m: &ExpressionMatrix, cfg: &SentenceConfig) -> Result<Vec<CellSentence>> {
    build_sentences(&m.x, &m.cell_ids, &m.genes, cfg)
}

#[derive(Serialize)]
struct JsonlLine<'a> {
    id: &'a str,
    text: &'a str,
}

/// Write `{"id": cell_id, "text": text}` per line, atomically (temp file in the same directory,
/// fsync, rename). The directory must exist.
pub fn write_jsonl(path: &Path, sentences: &[CellSentence]) -> Result<()> {
    path.file_name()
        .with_context(|| format!("output path {} has no file name", path.display()))?;
    let write = || -> Result<()> {
        super::require_output_dir(path)?;
        crate::io::atomic_write_with(path, |tmp| {
            let f = fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = BufWriter::new(f);
            for s in sentences {
                serde_json::to_writer(
                    &mut w,
                    &JsonlLine {
                        id: &s.cell_id,
                        text: &s.text,
                    },
                )?;
                w.write_all(b"\n")?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            Ok(())
        })
    };
    write().with_context(|| format!("writing cell sentences to {}", path.display()))
}

/// Counts tokens the way the encoder will see them.
pub trait TokenCounter: Sync {
    /// Number of tokens of `text`, special tokens included, **without truncation**.
    fn count(&self, text: &str) -> usize;
    /// The model's maximum sequence length (special tokens included).
    fn max_len(&self) -> usize;
}

/// Largest `k` such that `render(prefix, &genes[..k])` fits in `counter.max_len()` tokens
/// (0 when even the bare prefix does not fit). O(log n) calls to `count`.
pub fn genes_in_context(
    prefix: &str,
    genes: &[impl AsRef<str>],
    counter: &dyn TokenCounter,
) -> usize {
    let max = counter.max_len();
    let fits = |k: usize| counter.count(&render(prefix, &genes[..k])) <= max;
    if fits(genes.len()) {
        return genes.len();
    }
    if !fits(0) {
        return 0;
    }
    // Invariant: fits(lo), !fits(hi).
    let (mut lo, mut hi) = (0usize, genes.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Summary statistics of a per-cell count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    /// Mean of the two middle values for an even number of cells.
    pub median: f64,
    pub min: usize,
    pub max: usize,
}

impl Summary {
    pub fn of(values: &[usize]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
        };
        Some(Summary {
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// How much of each cell sentence fits in the model's context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenBudget {
    pub max_len: usize,
    /// Per cell: genes that fit.
    pub in_context: Vec<usize>,
    /// Per cell: genes in the sentence.
    pub n_genes: Vec<usize>,
    /// Summary of `in_context`.
    pub summary: Summary,
    /// Cells whose sentence does not fit entirely.
    pub n_truncated: usize,
}

/// Per-cell in-context gene counts and their summary (parallel over cells).
pub fn token_budget(sentences: &[CellSentence], counter: &dyn TokenCounter) -> Result<TokenBudget> {
    if sentences.is_empty() {
        bail!("token budget: no cell sentences");
    }
    if counter.max_len() == 0 {
        bail!("token budget: the model's max length is 0");
    }
    let in_context: Vec<usize> = sentences
        .par_iter()
        .map(|s| genes_in_context(&s.prefix, &s.genes, counter))
        .collect();
    let n_genes: Vec<usize> = sentences.iter().map(|s| s.genes.len()).collect();
    let n_truncated = in_context
        .iter()
        .zip(&n_genes)
        .filter(|(a, b)| a < b)
        .count();
    let summary = Summary::of(&in_context).expect("non-empty");
    Ok(TokenBudget {
        max_len: counter.max_len(),
        in_context,
        n_genes,
        summary,
        n_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word plus 2 specials.
    struct Words(usize);
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count() + 2
        }
        fn max_len(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn binary_search_matches_linear() {
        let genes: Vec<String> = (0..37).map(|k| format!("G{k}")).collect();
        for max in 0..50 {
            let c = Words(max);
            let linear = (0..=genes.len())
                .filter(|&k| c.count(&render("a b: ", &genes[..k])) <= max)
                .max()
                .unwrap_or(0);
            assert_eq!(genes_in_context("a b: ", &genes, &c), linear, "max {max}");
        }
    }

    #[test]
    fn ranking_and_ties() {
        let x = CsrMatrix {
            n_rows: 1,
            n_cols: 5,
            indptr: vec![0, 5],
            indices: vec![0, 1, 2, 3, 4],
            data: vec![1.0, 3.0, 0.0, 1.0, 1.0],
        };
        assert_eq!(rank_genes(&x, 0, Ties::Stable), vec![1, 0, 3, 4]);
        let s = rank_genes(&x, 0, Ties::Shuffle { seed: 7 });
        assert_eq!(s[0], 1);
        let mut rest = s[1..].to_vec();
        rest.sort();
        assert_eq!(rest, vec![0, 3, 4]);
        assert_eq!(s, rank_genes(&x, 0, Ties::Shuffle { seed: 7 }));
    }

    #[test]
    fn summary_even_median() {
        let s = Summary::of(&[4, 1, 3, 2]).unwrap();
        assert_eq!((s.mean, s.median, s.min, s.max), (2.5, 2.5, 1, 4));
    }
}
