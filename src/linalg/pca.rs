//! Exact PCA to `k` components: column means and a second-moment matrix accumulated in f64 in
//! parallel over row blocks, a full symmetric eigen-decomposition, scikit-learn's sign
//! convention, and the projected coordinates.
//!
//! Which matrix is decomposed depends on the shape: the `dim × dim` covariance `XcᵀXc/(n−1)`
//! when there are at least as many rows as columns, otherwise the `n × n` Gram matrix
//! `XcXcᵀ/(n−1)` (same non-zero eigenvalues; components recovered as `Xcᵀu/√((n−1)λ)`), so a
//! 600-cell × 2,000-gene matrix costs a 600³ decomposition, not a 2,000³ one.

use super::eigen::symmetric_eigen;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;

/// Rows per block when accumulating the covariance.
const BLOCK_ROWS: usize = 128;

/// Input element type: f32 embeddings, or f64 where the extra precision decides the trailing
/// components (scaled expression, whose tail eigenvalues are close together).
pub trait Element: Copy + Send + Sync + std::fmt::Debug {
    fn to_f64(self) -> f64;
}
impl Element for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Element for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// A `k`-component PCA of a row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Number of components.
    pub k: usize,
    /// Row-major `n × k` scores (coordinates), in input order.
    pub coords: Vec<f32>,
    /// The `k` unit-length components (loadings), each `dim` long.
    pub components: Vec<Vec<f64>>,
    /// Column means that were subtracted (`dim` long).
    pub mean: Vec<f64>,
    /// Variance along each component (`ddof = 1`, scikit-learn's `explained_variance_`).
    pub explained_variance: Vec<f64>,
    /// `explained_variance / total variance`; 0.0 when the data have no variance.
    pub explained_variance_ratio: Vec<f64>,
}

/// Exact PCA of `x` (row-major, `n` rows × `dim` columns) to `k` components.
///
/// Sign convention: scikit-learn's `svd_flip(u_based_decision=False)` — the loading with the
/// largest |value| of each component is positive (first such index on ties, like `np.argmax`).
///
/// Errors: `n < 2`, `k == 0`, `k > min(n, dim)`, a shape mismatch, or a non-finite value
/// (named by row and column).
pub fn pca<T: Element>(x: &[T], n: usize, dim: usize, k: usize) -> Result<Pca> {
    ensure!(n >= 2, "PCA needs at least 2 rows (cells), got {n}");
    ensure!(k >= 1, "PCA needs at least 1 component");
    ensure!(
        k <= n.min(dim),
        "PCA to {k} components needs at least {k} rows and {k} columns, got {n} × {dim}"
    );
    ensure!(
        x.len() == n * dim,
        "PCA input has {} values, expected n {} × dim {} = {}",
        x.len(),
        n,
        dim,
        n * dim
    );
    if let Some(pos) = x.iter().position(|v| !v.to_f64().is_finite()) {
        bail!(
            "PCA input has a non-finite value {} at row {}, column {}; drop or repair that cell first",
            x[pos].to_f64(),
            pos / dim,
            pos % dim
        );
    }
    let mean = column_means(x, n, dim);
    let denom = (n - 1) as f64;
    let (explained_variance, mut components, total_var) = if n >= dim {
        let mut cov = centred_gram_upper(x, dim, &mean);
        symmetrize_scaled(&mut cov, dim, denom);
        let total_var: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        let (values, vectors) = symmetric_eigen(cov, dim)?;
        let mut ev = Vec::with_capacity(k);
        let mut comps = Vec::with_capacity(k);
        for c in 0..k {
            let idx = dim - 1 - c;
            ev.push(values[idx].max(0.0));
            comps.push(
                (0..dim)
                    .map(|r| vectors[r * dim + idx])
                    .collect::<Vec<f64>>(),
            );
        }
        (ev, comps, total_var)
    } else {
        let xc = centred_rows(x, dim, &mean);
        let mut gram = row_gram_upper(&xc, n, dim);
        symmetrize_scaled(&mut gram, n, denom);
        let total_var: f64 = (0..n).map(|i| gram[i * n + i]).sum();
        let (values, vectors) = symmetric_eigen(gram, n)?;
        let mut ev = Vec::with_capacity(k);
        let mut comps = Vec::with_capacity(k);
        for c in 0..k {
            let idx = n - 1 - c;
            let lambda = values[idx].max(0.0);
            ev.push(lambda);
            // v = Xcᵀ u / ‖Xcᵀ u‖ (= /√((n−1)λ) up to rounding; normalizing directly also
            // covers λ ≈ 0).
            let mut v = vec![0.0f64; dim];
            for r in 0..n {
                let u = vectors[r * n + idx];
                let row = &xc[r * dim..(r + 1) * dim];
                for (a, &b) in v.iter_mut().zip(row) {
                    *a += u * b;
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|a| *a /= norm);
            }
            comps.push(v);
        }
        (ev, comps, total_var)
    };
    for v in components.iter_mut() {
        let mut best = 0;
        for (j, val) in v.iter().enumerate() {
            if val.abs() > v[best].abs() {
                best = j;
            }
        }
        if v[best] < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
    }
    let explained_variance_ratio = explained_variance
        .iter()
        .map(|&v| if total_var > 0.0 { v / total_var } else { 0.0 })
        .collect();
    let coords: Vec<f32> = x
        .par_chunks(dim)
        .flat_map_iter(|row| {
            let centred: Vec<f64> = row
                .iter()
                .zip(&mean)
                .map(|(&v, &m)| v.to_f64() - m)
                .collect();
            components
                .iter()
                .map(|comp| dot(&centred, comp) as f32)
                .collect::<Vec<f32>>()
        })
        .collect();
    Ok(Pca {
        k,
        coords,
        components,
        mean,
        explained_variance,
        explained_variance_ratio,
    })
}

/// Fills the lower triangle from the upper one and divides by `denom`.
fn symmetrize_scaled(m: &mut [f64], dim: usize, denom: f64) {
    for i in 0..dim {
        for j in i..dim {
            let v = m[i * dim + j] / denom;
            m[i * dim + j] = v;
            m[j * dim + i] = v;
        }
    }
}

fn column_means<T: Element>(x: &[T], n: usize, dim: usize) -> Vec<f64> {
    let sums = x
        .par_chunks(BLOCK_ROWS * dim)
        .map(|block| {
            let mut s = vec![0.0f64; dim];
            for row in block.chunks_exact(dim) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v.to_f64();
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

fn centred_rows<T: Element>(x: &[T], dim: usize, mean: &[f64]) -> Vec<f64> {
    x.par_chunks(dim)
        .flat_map_iter(|row| row.iter().zip(mean).map(|(&v, &m)| v.to_f64() - m))
        .collect()
}

/// Upper triangle (row-major `n × n`, `j >= i` filled) of `Xc Xcᵀ` for centred rows `xc`.
fn row_gram_upper(xc: &[f64], n: usize, dim: usize) -> Vec<f64> {
    let rows: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let a = &xc[i * dim..(i + 1) * dim];
            let mut out = vec![0.0f64; n];
            for j in i..n {
                out[j] = dot(a, &xc[j * dim..(j + 1) * dim]);
            }
            out
        })
        .collect();
    rows.concat()
}

/// Upper triangle (row-major `dim × dim`, `j >= i` filled) of `XcᵀXc`, Xc = x − mean.
fn centred_gram_upper<T: Element>(x: &[T], dim: usize, mean: &[f64]) -> Vec<f64> {
    x.par_chunks(BLOCK_ROWS * dim)
        .fold(
            || (vec![0.0f64; dim * dim], vec![0.0f64; dim * BLOCK_ROWS]),
            |(mut acc, mut t), block| {
                let b = block.len() / dim;
                // Transposed, centred block: t[i * b + r] = x[r][i] - mean[i].
                for (r, row) in block.chunks_exact(dim).enumerate() {
                    for i in 0..dim {
                        t[i * b + r] = row[i].to_f64() - mean[i];
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths (covariance for n ≥ dim, Gram for n < dim) give the same scores up to sign
    /// on the same data, transposed shapes aside: here a 6 × 4 matrix and its first 3 rows.
    #[test]
    fn gram_and_covariance_paths_agree() {
        let x: Vec<f32> = (0..24)
            .map(|i| ((i * 7 % 11) as f32) - 0.3 * i as f32)
            .collect();
        // n = 6 ≥ dim = 4: covariance path; pad to dim 8 with zero columns: Gram path (6 < 8).
        let a = pca(&x, 6, 4, 3).unwrap();
        let mut padded = vec![0f32; 6 * 8];
        for r in 0..6 {
            padded[r * 8..r * 8 + 4].copy_from_slice(&x[r * 4..r * 4 + 4]);
        }
        let b = pca(&padded, 6, 8, 3).unwrap();
        for c in 0..3 {
            assert!((a.explained_variance[c] - b.explained_variance[c]).abs() < 1e-9);
            for r in 0..6 {
                let (u, v) = (a.coords[r * 3 + c], b.coords[r * 3 + c]);
                assert!((u - v).abs() < 1e-4, "row {r} comp {c}: {u} vs {v}");
            }
        }
    }
}
