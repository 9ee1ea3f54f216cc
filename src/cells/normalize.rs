//! Normalizations of a cells × genes [`CsrMatrix`].
//!
//! * [`Normalization::Raw`] — values unchanged (validated only).
//! * [`Normalization::Log1pCp10k`] — scanpy `normalize_total(target_sum=1e4)` followed by
//!   `log1p`: `y_ij = ln(1 + x_ij · 1e4 / Σ_k x_ik)`. A cell whose total is 0 stays all-zero
//!   (scanpy divides such rows by 1, which leaves them at 0).
//! * [`Normalization::ZScore`] — scanpy `scale(zero_center=True, max_value=None)`: per gene,
//!   over **all** cells (implicit zeros included), `z_ij = (x_ij − mean_j) / std_j`.
//!
//! # Z-score convention (matches scanpy)
//! scanpy's `_get_mean_var` applies the unbiased correction `var · n/(n−1)`, i.e. **ddof = 1**
//! (R convention), and `scale` replaces `std == 0` by 1 so that zero-variance genes become
//! `(x − mean)/1 = 0`. Here a gene is zero-variance when *all* of its values, implicit zeros
//! included, are exactly equal (detected from the column's min/max, not from a rounded variance);
//! such genes get z = 0 everywhere. With a single cell every gene is zero-variance. Statistics
//! are accumulated in f64 with a two-pass variance; results are rounded to f32.
//!
//! # Storage of z-scores
//! Z-scoring makes the matrix dense in principle: an implicit zero of gene j becomes
//! `−mean_j/std_j`, which is not 0. Rather than materialising `n_cells × n_genes` floats,
//! [`NormalizedMatrix`] keeps the **input's sparsity pattern** (`x`, holding the z-scores of the
//! stored entries) plus one value per gene, `implicit[j]`, which is the value of every entry of
//! column j that is *not* stored. The logical value of (i, j) is therefore
//! `x[i, j]` when stored, otherwise `implicit[j]` ([`NormalizedMatrix::get`],
//! [`NormalizedMatrix::to_dense`]). For `Raw`/`Log1pCp10k`, `implicit` is `None` (implicit
//! entries are 0) and `x` is an ordinary sparse matrix. Consumers that iterate only over stored
//! entries of a z-scored matrix would silently drop the `implicit` term — the weighted average
//! in [`crate::cells::weighted`] therefore never takes z-scored matrices as input; it computes
//! z-score *weights* itself from [`GeneStats`] for the genes it uses.

use std::fmt;

use anyhow::{bail, Result};

use super::matrix::{CsrMatrix, CsrView};

/// `normalize_total` target (counts per 10k).
pub const CP10K_TARGET: f64 = 1e4;

/// How to normalize a cells × genes matrix; see the module docs for exact definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Normalization {
    Raw,
    Log1pCp10k,
    ZScore,
}

crate::choices!(Normalization {
    Raw = "raw",
    Log1pCp10k = "log1p-cp10k" | "log1p_cp10k" | "log1p",
    ZScore = "zscore" | "z-score" | "scale",
});

impl Normalization {
    /// Apply to `x`. Errors (never panics) on malformed CSR, empty matrices and non-finite
    /// values; `Log1pCp10k` also rejects negative values.
    pub fn apply(&self, x: &CsrMatrix) -> Result<NormalizedMatrix> {
        validate_csr(x, "normalize")?;
        match self {
            Normalization::Raw => Ok(NormalizedMatrix {
                x: x.clone(),
                implicit: None,
            }),
            Normalization::Log1pCp10k => Ok(NormalizedMatrix {
                x: log1p_cp10k(x)?,
                implicit: None,
            }),
            Normalization::ZScore => zscore(x),
        }
    }
}

impl fmt::Display for Normalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Normalization::Raw => "raw",
            Normalization::Log1pCp10k => "log1p-cp10k",
            Normalization::ZScore => "zscore",
        })
    }
}

/// A normalized matrix: the sparse pattern of the input plus, for z-scores, the value of the
/// entries that are not stored (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedMatrix {
    pub x: CsrMatrix,
    /// Per gene (column), the value of every entry of that column that is not stored in `x`.
    /// `None` means 0 (sparse semantics).
    pub implicit: Option<Vec<f32>>,
}

impl NormalizedMatrix {
    /// Value of entries of column `j` that are not stored.
    pub fn implicit_value(&self, j: usize) -> f32 {
        self.implicit.as_ref().map_or(0.0, |v| v[j])
    }

    /// Logical value at (cell `i`, gene `j`). Panics if out of bounds (programmer error).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        let (a, b) = (self.x.indptr[i], self.x.indptr[i + 1]);
        match self.x.indices[a..b].binary_search(&(j as u32)) {
            Ok(k) => self.x.data[a + k],
            Err(_) => self.implicit_value(j),
        }
    }

    /// Dense row-major `[n_rows × n_cols]` copy.
    pub fn to_dense(&self) -> Vec<f32> {
        let (n, m) = (self.x.n_rows, self.x.n_cols);
        let mut out = Vec::with_capacity(n * m);
        for _ in 0..n {
            match &self.implicit {
                Some(v) => out.extend_from_slice(v),
                None => out.extend(std::iter::repeat_n(0.0f32, m)),
            }
        }
        for i in 0..n {
            for (j, v) in self.x.row(i) {
                out[i * m + j] = v;
            }
        }
        out
    }
}

/// Per-gene mean and standard deviation over all cells (implicit zeros included), scanpy
/// convention (ddof = 1). `std[j] == 0.0` marks a zero-variance gene.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneStats {
    pub n_cells: usize,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl GeneStats {
    /// Z-score of value `v` of gene `j`; 0 for zero-variance genes.
    #[inline]
    pub fn z(&self, j: usize, v: f64) -> f64 {
        let s = self.std[j];
        if s == 0.0 {
            0.0
        } else {
            (v - self.mean[j]) / s
        }
    }
}

/// Mean and std (ddof = 1) of every gene; see the module docs for the zero-variance rule.
pub fn gene_stats(x: &CsrMatrix) -> Result<GeneStats> {
    gene_stats_view(&x.view())
}

/// [`gene_stats`] of a borrowed matrix.
pub fn gene_stats_view(x: &CsrView) -> Result<GeneStats> {
    validate_csr_view(x, "gene statistics")?;
    let (n, m) = (x.n_rows, x.n_cols);
    let mut sum = vec![0f64; m];
    let mut nnz = vec![0usize; m];
    let mut min = vec![f32::INFINITY; m];
    let mut max = vec![f32::NEG_INFINITY; m];
    for (&j, &v) in x.indices.iter().zip(x.data.iter()) {
        let j = j as usize;
        sum[j] += v as f64;
        nnz[j] += 1;
        min[j] = min[j].min(v);
        max[j] = max[j].max(v);
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    // Second pass: Σ (x − mean)² over stored entries, plus the implicit zeros' (0 − mean)².
    let mut ss = vec![0f64; m];
    for (&j, &v) in x.indices.iter().zip(x.data.iter()) {
        let d = v as f64 - mean[j as usize];
        ss[j as usize] += d * d;
    }
    let std = (0..m)
        .map(|j| {
            let has_implicit = nnz[j] < n;
            let constant = nnz[j] == 0 || (min[j] == max[j] && (!has_implicit || min[j] == 0.0));
            if constant || n < 2 {
                0.0
            } else {
                let total = ss[j] + (n - nnz[j]) as f64 * mean[j] * mean[j];
                (total / (n - 1) as f64).sqrt()
            }
        })
        .collect();
    Ok(GeneStats {
        n_cells: n,
        mean,
        std,
    })
}

/// scanpy `normalize_total(target_sum=1e4)` + `log1p` (natural log), same sparsity pattern,
/// computed in f64 (the standard baseline's scanpy-exact f32 twin is
/// [`crate::cells::standard_pca::normalize_total_log1p`]).
pub fn log1p_cp10k(x: &CsrMatrix) -> Result<CsrMatrix> {
    validate_csr(x, "log1p-cp10k")?;
    if let Some(k) = x.data.iter().position(|&v| v < 0.0) {
        let i = x.indptr.partition_point(|&p| p <= k) - 1;
        bail!(
            "log1p-cp10k needs non-negative counts, found {} at cell {i}, gene column {}; \
             pass raw counts (not scaled data)",
            x.data[k],
            x.indices[k]
        );
    }
    let mut out = x.clone();
    for i in 0..x.n_rows {
        let (a, b) = (x.indptr[i], x.indptr[i + 1]);
        let total: f64 = x.data[a..b].iter().map(|&v| v as f64).sum();
        let factor = if total > 0.0 {
            CP10K_TARGET / total
        } else {
            1.0
        };
        for k in a..b {
            out.data[k] = (x.data[k] as f64 * factor).ln_1p() as f32;
        }
    }
    Ok(out)
}

/// Per-gene z-score (scanpy `scale` without clipping), stored as pattern + implicit values.
pub fn zscore(x: &CsrMatrix) -> Result<NormalizedMatrix> {
    let stats = gene_stats(x)?;
    let mut out = x.clone();
    for (k, (&j, &v)) in x.indices.iter().zip(&x.data).enumerate() {
        out.data[k] = stats.z(j as usize, v as f64) as f32;
    }
    let implicit = (0..x.n_cols).map(|j| stats.z(j, 0.0) as f32).collect();
    Ok(NormalizedMatrix {
        x: out,
        implicit: Some(implicit),
    })
}

/// Structural and value checks shared by the cells modules: consistent CSR arrays, strictly
/// increasing in-bounds column indices, at least one cell and one gene, finite values.
pub fn validate_csr(x: &CsrMatrix, what: &str) -> Result<()> {
    validate_csr_view(&x.view(), what)
}

/// [`validate_csr`] of a borrowed matrix.
pub fn validate_csr_view(x: &CsrView, what: &str) -> Result<()> {
    if x.n_rows == 0 || x.n_cols == 0 {
        bail!(
            "{what}: empty expression matrix ({} cells × {} genes); nothing to process",
            x.n_rows,
            x.n_cols
        );
    }
    if x.indptr.len() != x.n_rows + 1 {
        bail!(
            "{what}: CSR indptr has {} entries, expected n_rows + 1 = {}",
            x.indptr.len(),
            x.n_rows + 1
        );
    }
    if x.indices.len() != x.data.len() {
        bail!(
            "{what}: CSR indices ({}) and data ({}) differ in length",
            x.indices.len(),
            x.data.len()
        );
    }
    if x.indptr[0] != 0 || x.indptr[x.n_rows] != x.data.len() {
        bail!(
            "{what}: CSR indptr must start at 0 and end at nnz = {} (got {}..{})",
            x.data.len(),
            x.indptr[0],
            x.indptr[x.n_rows]
        );
    }
    for i in 0..x.n_rows {
        let (a, b) = (x.indptr[i], x.indptr[i + 1]);
        if a > b {
            bail!("{what}: CSR indptr decreases at row {i}");
        }
        let mut prev: Option<u32> = None;
        for &j in &x.indices[a..b] {
            if j as usize >= x.n_cols {
                bail!(
                    "{what}: column index {j} out of range (n_cols = {}) in cell {i}",
                    x.n_cols
                );
            }
            if prev.is_some_and(|p| p >= j) {
                bail!("{what}: column indices of cell {i} are not strictly increasing");
            }
            prev = Some(j);
        }
        for (&j, &v) in x.indices[a..b].iter().zip(&x.data[a..b]) {
            if !v.is_finite() {
                bail!("{what}: non-finite value {v} at cell {i}, gene column {j}; clean the input matrix");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n_rows: usize, n_cols: usize, rows: &[&[(u32, f32)]]) -> CsrMatrix {
        let mut indptr = vec![0];
        let (mut indices, mut data) = (vec![], vec![]);
        for r in rows {
            for &(j, v) in *r {
                indices.push(j);
                data.push(v);
            }
            indptr.push(indices.len());
        }
        CsrMatrix {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    #[test]
    fn zscore_hand_computed() {
        // gene 0: [1, 0, 2] mean 1, var_ddof1 = (0+1+1)/2 = 1 → z = [0, -1, 1]
        // gene 1: [0, 0, 0] → zero variance → 0; gene 2: [5, 5, 5] → constant → 0
        let x = m(
            3,
            3,
            &[&[(0, 1.0), (2, 5.0)], &[(2, 5.0)], &[(0, 2.0), (2, 5.0)]],
        );
        let z = Normalization::ZScore.apply(&x).unwrap();
        let d = z.to_dense();
        assert_eq!(d, vec![0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(z.get(1, 0), -1.0);
    }

    #[test]
    fn log1p_zero_row_stays_zero() {
        let x = m(2, 2, &[&[(0, 1.0), (1, 3.0)], &[]]);
        let y = log1p_cp10k(&x).unwrap();
        assert!((y.data[0] - (2500f64).ln_1p() as f32).abs() < 1e-6);
        assert!((y.data[1] - (7500f64).ln_1p() as f32).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_input() {
        let empty = CsrMatrix {
            n_rows: 0,
            n_cols: 3,
            indptr: vec![0],
            indices: vec![],
            data: vec![],
        };
        assert!(Normalization::Raw.apply(&empty).is_err());
        let nan = m(1, 2, &[&[(0, f32::NAN)]]);
        assert!(Normalization::Log1pCp10k.apply(&nan).is_err());
        let neg = m(1, 2, &[&[(0, -1.0)]]);
        assert!(Normalization::Log1pCp10k.apply(&neg).is_err());
        use crate::choice::parse_choice;
        assert!(parse_choice::<Normalization>("normalization", "bogus", true).is_err());
        assert_eq!(
            parse_choice::<Normalization>("normalization", "log1p", true).ok(),
            Some(Normalization::Log1pCp10k)
        );
    }
}
