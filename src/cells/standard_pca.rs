//! The count baseline single-cell users actually run — scanpy's standard pipeline:
//! `normalize_total(target_sum=1e4)` → `log1p` → `highly_variable_genes(flavor="seurat",
//! n_top_genes=2000)` → subset → `scale(max_value=10)` → `pca(n_comps=50)`.
//!
//! Arithmetic follows scanpy's own so the gene set and scores match it: per-cell totals summed
//! in f64 and stored as f32, values divided (not multiplied) by `total / 1e4` in f32, `log1p`
//! in f32 (cells with no counts stay 0, as scanpy's `allow_divide_by_zero=False`); scaling
//! subtracts the mean and divides by the unbiased sd in f64 (sd 0 → 1), clips to
//! ±`max_value`, keeps f64, and the PCA is exact ([`crate::linalg::pca`]). Tested against scanpy on the
//! bundled pbmc3k subset (tests/fixtures/standard_pca/).

use anyhow::{ensure, Context, Result};

use super::hvg::{highly_variable_seurat, HighlyVariable};
use super::matrix::CsrMatrix;
use super::normalize::validate_csr;
use crate::linalg::{pca, Pca};

/// Parameters of the standard pipeline (defaults = scanpy's tutorial values).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StandardPcaParams {
    pub target_sum: f32,
    pub n_top_genes: usize,
    pub max_value: f64,
    pub n_comps: usize,
}

impl Default for StandardPcaParams {
    fn default() -> Self {
        StandardPcaParams {
            target_sum: 1e4,
            n_top_genes: 2000,
            max_value: 10.0,
            n_comps: 50,
        }
    }
}

/// The pipeline's result: which genes were used and the PCA of the scaled matrix.
#[derive(Debug, Clone)]
pub struct StandardPca {
    pub hvg: HighlyVariable,
    /// Column indices of the highly variable genes, ascending.
    pub genes: Vec<usize>,
    pub pca: Pca,
}

/// scanpy's `normalize_total(target_sum)` + `log1p` on raw counts, same sparsity pattern.
/// Not [`crate::cells::normalize::log1p_cp10k`]: this one repeats scanpy's float32 arithmetic
/// (divide by `total / target_sum` in f32), so the HVG set matches scanpy's exactly.
pub fn normalize_total_log1p(x: &CsrMatrix, target_sum: f32) -> Result<CsrMatrix> {
    validate_csr(x, "normalize_total")?;
    if let Some(k) = x.data.iter().position(|&v| v < 0.0 || !v.is_finite()) {
        let i = x.indptr.partition_point(|&p| p <= k) - 1;
        anyhow::bail!(
            "normalize_total needs non-negative finite counts, found {} at cell {i}, gene column {}; \
             pass raw counts (not scaled data)",
            x.data[k],
            x.indices[k]
        );
    }
    let mut out = x.clone();
    for i in 0..x.n_rows {
        let (a, b) = (x.indptr[i], x.indptr[i + 1]);
        let total = x.data[a..b].iter().map(|&v| v as f64).sum::<f64>() as f32;
        let factor = total / target_sum;
        for k in a..b {
            let v = if factor != 0.0 {
                x.data[k] / factor
            } else {
                x.data[k]
            };
            out.data[k] = v.ln_1p();
        }
    }
    Ok(out)
}

/// scanpy's `scale(max_value)` of the columns `genes` of `x` (log-normalized), densified
/// row-major `n × genes.len()` in f64 (the PCA's trailing components need it: f32 storage moves
/// them by up to 1e-3 where eigenvalues are 0.1 % apart).
pub fn scale_columns(x: &CsrMatrix, genes: &[usize], max_value: f64) -> Vec<f64> {
    let (n, m) = (x.n_rows, genes.len());
    let mut pos = vec![usize::MAX; x.n_cols];
    for (p, &j) in genes.iter().enumerate() {
        pos[j] = p;
    }
    let mut sum = vec![0.0f64; m];
    let mut sum_sq = vec![0.0f64; m];
    for (&j, &v) in x.indices.iter().zip(&x.data) {
        let p = pos[j as usize];
        if p != usize::MAX {
            sum[p] += v as f64;
            sum_sq[p] += (v * v) as f64;
        }
    }
    let nf = n as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / nf).collect();
    let sd: Vec<f64> = (0..m)
        .map(|p| {
            let var = (sum_sq[p] / nf - mean[p] * mean[p]) * (nf / (nf - 1.0));
            let sd = var.sqrt();
            if sd == 0.0 {
                1.0
            } else {
                sd
            }
        })
        .collect();
    let mut out = vec![0f64; n * m];
    for i in 0..n {
        let row = &mut out[i * m..(i + 1) * m];
        let mut dense = vec![0f32; m];
        for (j, v) in x.row(i) {
            let p = pos[j];
            if p != usize::MAX {
                dense[p] = v;
            }
        }
        for p in 0..m {
            let z = (dense[p] as f64 - mean[p]) / sd[p];
            row[p] = z.clamp(-max_value, max_value);
        }
    }
    out
}

/// Runs the whole pipeline on raw counts (cells × genes).
///
/// `n_comps` is lowered to `min(cells, genes) − 1` when the data are smaller (scanpy's rule for
/// its default); the caller can read the number used from `pca.k`.
pub fn standard_pca(counts: &CsrMatrix, params: &StandardPcaParams) -> Result<StandardPca> {
    ensure!(params.n_comps >= 1, "--n-comps must be at least 1");
    ensure!(
        params.max_value > 0.0,
        "scale max_value must be positive, got {}",
        params.max_value
    );
    let logged = normalize_total_log1p(counts, params.target_sum)?;
    let hvg = highly_variable_seurat(&logged, params.n_top_genes)?;
    let genes = hvg.indices();
    ensure!(
        genes.len() >= 2,
        "only {} highly variable gene(s) found: every other gene is constant across cells; \
         PCA needs at least 2",
        genes.len()
    );
    let n = counts.n_rows;
    let scaled = scale_columns(&logged, &genes, params.max_value);
    let k = params.n_comps.min(n.min(genes.len()) - 1).max(1);
    let pca = pca(&scaled, n, genes.len(), k).context("PCA of the scaled highly variable genes")?;
    Ok(StandardPca { hvg, genes, pca })
}
