//! The exact 2-component PCA: column means and the covariance accumulated in parallel over
//! row blocks, its two leading eigenvectors with scikit-learn's sign convention, and the
//! projected coordinates (algorithm and cost in the parent module's documentation).

use super::eigen::symmetric_eigen;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;

/// Rows per block when accumulating the covariance.
const BLOCK_ROWS: usize = 128;

/// A 2-component PCA of an embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca2d {
    /// One `[pc1, pc2]` per input row, in input order.
    pub coords: Vec<[f32; 2]>,
    /// The two unit-length components (loadings), each `dim` long; sign convention above.
    pub components: [Vec<f64>; 2],
    /// Column means that were subtracted (`dim` long).
    pub mean: Vec<f64>,
    /// Variance along each component (`ddof = 1`, scikit-learn's `explained_variance_`).
    pub explained_variance: [f64; 2],
    /// `explained_variance / total variance` (scikit-learn's `explained_variance_ratio_`);
    /// 0.0 when the data have no variance at all.
    pub explained_variance_ratio: [f64; 2],
}

impl Pca2d {
    /// Subtitle for a scatter plot, e.g. `"PCA (explained variance 41.2 %, 9.8 %)"`.
    pub fn method_note(&self) -> String {
        format!(
            "PCA (explained variance {:.1} %, {:.1} %)",
            100.0 * self.explained_variance_ratio[0],
            100.0 * self.explained_variance_ratio[1]
        )
    }
}

/// Exact PCA of `x` (row-major, `n` rows × `dim` columns) to two components.
///
/// Errors: `n < 2`, `dim < 2`, `x.len() != n * dim`, or a non-finite value (named by row and
/// column).
pub fn pca_2d(x: &[f32], n: usize, dim: usize) -> Result<Pca2d> {
    ensure!(n >= 2, "PCA needs at least 2 rows (cells), got {n}");
    ensure!(
        dim >= 2,
        "PCA to 2 components needs at least 2 columns (embedding dimensions), got {dim}"
    );
    ensure!(
        x.len() == n * dim,
        "PCA input has {} values, expected n {} × dim {} = {}",
        x.len(),
        n,
        dim,
        n * dim
    );
    if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "PCA input has a non-finite value {} at row {}, column {}; drop or repair that cell first",
            x[pos],
            pos / dim,
            pos % dim
        );
    }

    let mean = column_means(x, n, dim);
    let mut cov = centred_gram_upper(x, n, dim, &mean);
    let denom = (n - 1) as f64;
    // Fill the lower triangle and scale.
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / denom;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    let total_var: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();

    let (eigenvalues, vectors) = symmetric_eigen(cov, dim)?;
    // Ascending order: the two largest are the last two.
    let mut components: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut explained_variance = [0.0; 2];
    for (c, idx) in [dim - 1, dim - 2].into_iter().enumerate() {
        let mut v: Vec<f64> = (0..dim).map(|r| vectors[r * dim + idx]).collect();
        let mut best = 0;
        for (j, val) in v.iter().enumerate() {
            if val.abs() > v[best].abs() {
                best = j;
            }
        }
        if v[best] < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        components[c] = v;
        explained_variance[c] = eigenvalues[idx].max(0.0);
    }
    let explained_variance_ratio = if total_var > 0.0 {
        [
            explained_variance[0] / total_var,
            explained_variance[1] / total_var,
        ]
    } else {
        [0.0, 0.0]
    };

    let coords: Vec<[f32; 2]> = x
        .par_chunks(dim)
        .map(|row| {
            let mut out = [0.0f64; 2];
            for (c, comp) in components.iter().enumerate() {
                out[c] = row
                    .iter()
                    .zip(&mean)
                    .zip(comp)
                    .map(|((&v, &m), &w)| (v as f64 - m) * w)
                    .sum();
            }
            [out[0] as f32, out[1] as f32]
        })
        .collect();

    Ok(Pca2d {
        coords,
        components,
        mean,
        explained_variance,
        explained_variance_ratio,
    })
}

fn column_means(x: &[f32], n: usize, dim: usize) -> Vec<f64> {
    let sums = x
        .par_chunks(BLOCK_ROWS * dim)
        .map(|block| {
            let mut s = vec![0.0f64; dim];
            for row in block.chunks_exact(dim) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            s
        })
        .reduce(
            || vec![0.0f64; dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sums.into_iter().map(|s| s / n as f64).collect()
}

/// Upper triangle (row-major `dim × dim`, `j >= i` filled) of `XcᵀXc`, Xc = x − mean.
fn centred_gram_upper(x: &[f32], _n: usize, dim: usize, mean: &[f64]) -> Vec<f64> {
    x.par_chunks(BLOCK_ROWS * dim)
        .fold(
            || (vec![0.0f64; dim * dim], vec![0.0f64; dim * BLOCK_ROWS]),
            |(mut acc, mut t), block| {
                let b = block.len() / dim;
                // Transposed, centred block: t[i * b + r] = x[r][i] - mean[i].
                for (r, row) in block.chunks_exact(dim).enumerate() {
                    for i in 0..dim {
                        t[i * b + r] = row[i] as f64 - mean[i];
                    }
                }
                for i in 0..dim {
                    let ti = &t[i * b..(i + 1) * b];
                    let acc_row = &mut acc[i * dim..(i + 1) * dim];
                    for j in i..dim {
                        acc_row[j] += dot(ti, &t[j * b..(j + 1) * b]);
                    }
                }
                (acc, t)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0.0f64; dim * dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        s[0] += x[0] * y[0];
        s[1] += x[1] * y[1];
        s[2] += x[2] * y[2];
        s[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}
