//! Weighted-average cell embeddings from gene embeddings (GenePT-w / scELMo style).
//!
//! Notation: `x_ij` is the value of gene (column) j in cell i as given (raw counts or
//! log1p-normalized — the caller chooses via [`crate::cells::normalize`]); `g_j` the gene's
//! embedding row, found through `gene_to_row[j]`. A gene is **expressed** in a cell when its
//! stored value is > 0, and **mapped** when `gene_to_row[j]` is `Some`. Only expressed genes are
//! ever used: implicit zeros contribute nothing (their weight is 0 for `Expr`/`Log1p`, and
//! `Uniform`/`ZScore` weights are defined over expressed genes only — otherwise every cell would
//! be pulled toward the mean of *all* gene vectors).
//!
//! Aggregations ([`Aggregation`]):
//!
//! * `WeightedMean { weights, top_n }` — the GenePT-w weighted mean
//!   `z_i = Σ_{j∈S_i} w_ij g_j / Σ_{j∈S_i} w_ij`, where `S_i` is the top-N **mapped** expressed
//!   genes of cell i by value (unmapped genes are skipped *before* taking the top N and counted in
//!   [`CellEmbeddings::n_unmapped`]). Ties: higher value first, then lower column index.
//!   With `top_n = All` and `weights = Expr` this is the scELMo "wa" aggregation renormalized over
//!   mapped genes.
//! * `GenePtMean` — GenePT's notebook definition, verbatim: `np.dot(X, lookup_embed) /
//!   len(gene_names)` where `gene_names` is **every column of the matrix** and genes without an
//!   embedding have a zero row in `lookup_embed`. So `z_i = Σ_{j mapped} x_ij g_j / n_cols` —
//!   the divisor is the number of genes in the dataset (not the number mapped, not the cell's
//!   total); no L2 normalization is applied.
//! * `ScElmoWa` — scELMo's `X / X.sum(axis=1)[:, None] @ lookup_embed`, verbatim:
//!   `z_i = Σ_{j mapped} x_ij g_j / Σ_{all j} x_ij` — the row sum includes unmapped genes, so
//!   `ScElmoWa = coverage_i × WeightedMean{Expr, All}`.
//!
//! Weights ([`Weights`]) for `WeightedMean`: `Expr` = `x_ij`; `Log1p` = `ln(1 + x_ij)`;
//! `ZScore` = `(x_ij − mean_j)/std_j` with mean/std of gene j over all cells of `x` (implicit
//! zeros included; scanpy convention ddof = 1, zero-variance genes → 0, see
//! [`crate::cells::normalize::GeneStats`]); `Uniform` = 1.
//!
//! Optional per-gene factors `s_j` ([`embed_cells_scaled`]) multiply the `WeightedMean` weights:
//! `w_ij · s_j` (the top-N is still chosen by value). [`idf_factors`] gives the IDF-like
//! down-weighting of ubiquitous genes, `s_j = max(0, ln(n / (1 + df_j)))` with `n` cells and
//! `df_j` the cells expressing gene j (value > 0): a gene in every cell, or in all but one, gets 0
//! and drops out; a gene in 1 % of cells gets ≈ 4.6. The `1 +` is scikit-learn's smoothing of
//! the document frequency; the clip at 0 keeps every factor non-negative, so an `Expr` weighted
//! mean stays a convex combination of gene vectors.
//!
//! A cell is flagged `empty` (zero vector, never NaN) when it has no mapped expressed gene, or
//! its divisor is 0 — for z-score weights, whose sum can cancel, when
//! `|Σ w| ≤ 1e-9 · Σ |w|`. Sums are accumulated in f64 in column order and rounded to f32.
//! Cells are processed in parallel (rayon), each from its own data only, so the result is
//! bit-identical for any thread count.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::matrix::{CsrMatrix, CsrView};
use super::normalize::{gene_stats_view, validate_csr_view, GeneStats};
use crate::genes::store::GeneEmbeddings;

/// Relative cancellation threshold for a weight sum (see module docs).
pub const WEIGHT_SUM_REL_EPS: f64 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weights {
    Expr,
    Log1p,
    ZScore,
    Uniform,
}

crate::choices!(Weights {
    Expr = "expr" | "expression",
    Log1p = "log1p",
    ZScore = "zscore" | "z-score",
    Uniform = "uniform",
});

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Weights::Expr => "expr",
            Weights::Log1p => "log1p",
            Weights::ZScore => "zscore",
            Weights::Uniform => "uniform",
        })
    }
}

/// How many mapped expressed genes per cell enter the weighted mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopN {
    N(usize),
    All,
}

impl fmt::Display for TopN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopN::N(n) => write!(f, "{n}"),
            TopN::All => f.write_str("all"),
        }
    }
}

impl FromStr for TopN {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") {
            return Ok(TopN::All);
        }
        match t.parse::<usize>() {
            Ok(n) if n > 0 => Ok(TopN::N(n)),
            _ => bail!("invalid top-N '{s}'; expected a positive integer or 'all'"),
        }
    }
}

/// Aggregation rule; see the module docs for exact formulas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    WeightedMean { weights: Weights, top_n: TopN },
    GenePtMean,
    ScElmoWa,
}

/// Cell vectors plus per-cell diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct CellEmbeddings {
    pub dim: usize,
    /// Row-major `[n_cells × dim]`.
    pub data: Vec<f32>,
    /// Fraction of the cell's total expression (Σ of its values) on mapped genes; 0 when the
    /// cell's total is 0.
    pub coverage: Vec<f32>,
    /// Expressed genes with an embedding.
    pub n_mapped: Vec<usize>,
    /// Expressed genes without an embedding (skipped).
    pub n_unmapped: Vec<usize>,
    /// Genes that entered the sum (≤ top-N for `WeightedMean`, `n_mapped` otherwise).
    pub n_used: Vec<usize>,
    /// No mapped expressed gene or a zero divisor: the row is all zeros.
    pub empty: Vec<bool>,
}

impl CellEmbeddings {
    pub fn n_cells(&self) -> usize {
        self.empty.len()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn n_empty(&self) -> usize {
        self.empty.iter().filter(|&&e| e).count()
    }
}

struct CellMeta {
    coverage: f32,
    n_mapped: usize,
    n_unmapped: usize,
    n_used: usize,
    empty: bool,
}

/// Embed every cell of `x` (cells × genes). `gene_to_row[j]` is the row of `emb` holding the
/// vector of column j, or `None` when the gene has no embedding.
pub fn embed_cells(
    x: &CsrMatrix,
    gene_to_row: &[Option<usize>],
    emb: &GeneEmbeddings,
    agg: &Aggregation,
) -> Result<CellEmbeddings> {
    embed_cells_view(&x.view(), gene_to_row, emb, agg)
}

/// [`embed_cells`] over a borrowed matrix (the Python module passes scipy buffers in place).
pub fn embed_cells_view(
    x: &CsrView,
    gene_to_row: &[Option<usize>],
    emb: &GeneEmbeddings,
    agg: &Aggregation,
) -> Result<CellEmbeddings> {
    embed_cells_scaled(x, gene_to_row, emb, agg, None)
}

/// [`embed_cells_view`] with per-gene weight factors `scale[j]` (one per column, finite, ≥ 0)
/// multiplying the `WeightedMean` weights; `None` is all ones. See the module docs.
pub fn embed_cells_scaled(
    x: &CsrView,
    gene_to_row: &[Option<usize>],
    emb: &GeneEmbeddings,
    agg: &Aggregation,
    scale: Option<&[f64]>,
) -> Result<CellEmbeddings> {
    validate_csr_view(x, "weighted average").context("invalid expression matrix")?;
    validate_inputs(x, gene_to_row, emb, agg)?;
    if let Some(s) = scale {
        if s.len() != x.n_cols {
            bail!(
                "gene weight factors: {} values for {} gene columns; give one per column",
                s.len(),
                x.n_cols
            );
        }
        if let Some(j) = s.iter().position(|v| !v.is_finite() || *v < 0.0) {
            bail!(
                "gene weight factor of column {j} is {}; factors must be finite and ≥ 0",
                s[j]
            );
        }
        if !matches!(agg, Aggregation::WeightedMean { .. }) {
            bail!("gene weight factors (IDF) apply to the weighted mean only, not {agg:?}");
        }
    }
    let stats: Option<GeneStats> = match agg {
        Aggregation::WeightedMean {
            weights: Weights::ZScore,
            ..
        } => Some(gene_stats_view(x)?),
        _ => None,
    };
    let dim = emb.dim;
    let mut data = vec![0f32; x.n_rows * dim];
    let metas: Vec<CellMeta> = data
        .par_chunks_mut(dim)
        .enumerate()
        .map_init(
            || (Vec::<(usize, f32, usize)>::new(), vec![0f64; dim]),
            |(cand, acc), (i, out)| {
                embed_one(
                    x,
                    i,
                    gene_to_row,
                    emb,
                    agg,
                    (stats.as_ref(), scale),
                    cand,
                    acc,
                    out,
                )
            },
        )
        .collect();
    let mut res = CellEmbeddings {
        dim,
        data,
        coverage: Vec::with_capacity(metas.len()),
        n_mapped: Vec::with_capacity(metas.len()),
        n_unmapped: Vec::with_capacity(metas.len()),
        n_used: Vec::with_capacity(metas.len()),
        empty: Vec::with_capacity(metas.len()),
    };
    for m in metas {
        res.coverage.push(m.coverage);
        res.n_mapped.push(m.n_mapped);
        res.n_unmapped.push(m.n_unmapped);
        res.n_used.push(m.n_used);
        res.empty.push(m.empty);
    }
    Ok(res)
}

fn validate_inputs(
    x: &CsrView,
    gene_to_row: &[Option<usize>],
    emb: &GeneEmbeddings,
    agg: &Aggregation,
) -> Result<()> {
    if gene_to_row.len() != x.n_cols {
        bail!(
            "gene_to_row has {} entries but the matrix has {} gene columns; build the mapping \
             from the same matrix's gene list",
            gene_to_row.len(),
            x.n_cols
        );
    }
    if emb.dim == 0 {
        bail!("gene embeddings have dimension 0");
    }
    if emb.data.len() != emb.symbols.len() * emb.dim {
        bail!(
            "gene embeddings: data has {} floats, expected {} symbols × dim {} = {}",
            emb.data.len(),
            emb.symbols.len(),
            emb.dim,
            emb.symbols.len() * emb.dim
        );
    }
    let mut checked = vec![false; emb.len()];
    for (j, r) in gene_to_row.iter().enumerate() {
        if let Some(r) = *r {
            if r >= emb.len() {
                bail!(
                    "gene_to_row[{j}] = {r} but the embedding store has only {} rows",
                    emb.len()
                );
            }
            if !checked[r] {
                checked[r] = true;
                if emb.row(r).iter().any(|v| !v.is_finite()) {
                    bail!(
                        "gene embedding row {r} ('{}') contains a non-finite value",
                        emb.symbols[r]
                    );
                }
            }
        }
    }
    if let Some(k) = x.data.iter().position(|&v| v < 0.0) {
        bail!(
            "weighted average expects non-negative expression (raw or log1p-normalized), found {} \
             at gene column {}; pass the un-scaled matrix and use Weights::ZScore for z-score \
             weighting",
            x.data[k],
            x.indices[k]
        );
    }
    match agg {
        Aggregation::WeightedMean {
            top_n: TopN::N(0), ..
        } => bail!("top-N must be at least 1"),
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn embed_one(
    x: &CsrView,
    i: usize,
    gene_to_row: &[Option<usize>],
    emb: &GeneEmbeddings,
    agg: &Aggregation,
    (stats, scale): (Option<&GeneStats>, Option<&[f64]>),
    cand: &mut Vec<(usize, f32, usize)>,
    acc: &mut [f64],
    out: &mut [f32],
) -> CellMeta {
    cand.clear();
    acc.iter_mut().for_each(|a| *a = 0.0);
    let (mut total, mut mapped_total) = (0f64, 0f64);
    let mut n_unmapped = 0usize;
    for (j, v) in x.row(i) {
        if v <= 0.0 {
            continue; // stored zero: not expressed
        }
        total += v as f64;
        match gene_to_row[j] {
            Some(r) => {
                mapped_total += v as f64;
                cand.push((j, v, r));
            }
            None => n_unmapped += 1,
        }
    }
    let n_mapped = cand.len();
    let coverage = if total > 0.0 {
        (mapped_total / total) as f32
    } else {
        0.0
    };

    let (divisor, n_used, ok) = match *agg {
        Aggregation::WeightedMean { weights, top_n } => {
            if let TopN::N(n) = top_n {
                if n < cand.len() {
                    // Higher value first, then lower column index — a total order, so the chosen
                    // set is unique; then restore column order for a fixed summation order.
                    cand.select_nth_unstable_by(n - 1, |a, b| {
                        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
                    });
                    cand.truncate(n);
                    cand.sort_unstable_by_key(|c| c.0);
                }
            }
            let (mut wsum, mut wabs) = (0f64, 0f64);
            for &(j, v, r) in cand.iter() {
                let v = v as f64;
                let w = match weights {
                    Weights::Expr => v,
                    Weights::Log1p => v.ln_1p(),
                    Weights::ZScore => stats.expect("stats computed for z-score weights").z(j, v),
                    Weights::Uniform => 1.0,
                } * scale.map_or(1.0, |s| s[j]);
                wsum += w;
                wabs += w.abs();
                for (a, &g) in acc.iter_mut().zip(emb.row(r)) {
                    *a += w * g as f64;
                }
            }
            let ok = !cand.is_empty() && wabs > 0.0 && wsum.abs() > WEIGHT_SUM_REL_EPS * wabs;
            (wsum, cand.len(), ok)
        }
        Aggregation::GenePtMean | Aggregation::ScElmoWa => {
            for &(_, v, r) in cand.iter() {
                for (a, &g) in acc.iter_mut().zip(emb.row(r)) {
                    *a += v as f64 * g as f64;
                }
            }
            let divisor = if matches!(agg, Aggregation::GenePtMean) {
                x.n_cols as f64
            } else {
                total
            };
            (divisor, cand.len(), !cand.is_empty() && divisor > 0.0)
        }
    };
    if ok {
        for (o, a) in out.iter_mut().zip(acc.iter()) {
            *o = (a / divisor) as f32;
        }
    } else {
        out.iter_mut().for_each(|o| *o = 0.0);
    }
    CellMeta {
        coverage,
        n_mapped,
        n_unmapped,
        n_used: if ok { n_used } else { 0 },
        empty: !ok,
    }
}

/// IDF-like factors of every gene column: `max(0, ln(n_rows / (1 + df_j)))`, `df_j` the rows
/// with a value > 0 in column j (see the module docs).
pub fn idf_factors(x: &CsrView) -> Vec<f64> {
    let mut df = vec![0usize; x.n_cols];
    for (&j, &v) in x.indices.iter().zip(x.data.iter()) {
        if v > 0.0 {
            df[j as usize] += 1;
        }
    }
    let n = x.n_rows as f64;
    df.iter()
        .map(|&d| (n / (1.0 + d as f64)).ln().max(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb() -> GeneEmbeddings {
        GeneEmbeddings {
            symbols: vec!["A".into(), "B".into(), "C".into()],
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        }
    }

    #[test]
    fn hand_computed_top_n_and_skip() {
        // cell 0: genes [A=3, X(unmapped)=9, B=1, C=3]; cell 1: only X.
        // columns: 0=A, 1=X, 2=B, 3=C
        let x = CsrMatrix {
            n_rows: 2,
            n_cols: 4,
            indptr: vec![0, 4, 5],
            indices: vec![0, 1, 2, 3, 1],
            data: vec![3.0, 9.0, 1.0, 3.0, 2.0],
        };
        let g2r = vec![Some(0), None, Some(1), Some(2)];
        let e = emb();
        // top-1 with tie between A (col 0) and C (col 3) at 3.0 → lower column wins → A.
        let r = embed_cells(
            &x,
            &g2r,
            &e,
            &Aggregation::WeightedMean {
                weights: Weights::Expr,
                top_n: TopN::N(1),
            },
        )
        .unwrap();
        assert_eq!(r.row(0), &[1.0, 0.0]);
        assert_eq!((r.n_mapped[0], r.n_unmapped[0], r.n_used[0]), (3, 1, 1));
        assert!((r.coverage[0] - 7.0 / 16.0).abs() < 1e-7);
        assert!(r.empty[1] && r.row(1) == [0.0, 0.0] && r.coverage[1] == 0.0);
        // top-2 → A, C: (3·[1,0] + 3·[1,1]) / 6 = [1, 0.5]
        let r = embed_cells(
            &x,
            &g2r,
            &e,
            &Aggregation::WeightedMean {
                weights: Weights::Expr,
                top_n: TopN::N(2),
            },
        )
        .unwrap();
        assert_eq!(r.row(0), &[1.0, 0.5]);
        // GenePT: (3·[1,0] + 1·[0,1] + 3·[1,1]) / 4 = [1.5, 1.0]
        let r = embed_cells(&x, &g2r, &e, &Aggregation::GenePtMean).unwrap();
        assert_eq!(r.row(0), &[1.5, 1.0]);
        // scELMo: / 16
        let r = embed_cells(&x, &g2r, &e, &Aggregation::ScElmoWa).unwrap();
        assert_eq!(r.row(0), &[6.0 / 16.0, 4.0 / 16.0]);
    }
}
