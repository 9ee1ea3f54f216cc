//! Trustworthiness of a 2-D map (scikit-learn's `sklearn.manifold.trustworthiness`), and the
//! input-space distances shared with the UMAP.

use anyhow::{bail, ensure, Result};
use rayon::prelude::*;

/// Distance between cells in the input embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `‖a − b‖₂`.
    Euclidean,
    /// `1 − a·b / (‖a‖ ‖b‖)` (1 when exactly one vector is zero, 0 when both are).
    Cosine,
}

impl Metric {
    /// `"euclidean"` or `"cosine"`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }
}

/// Rows of `x` in f64, prepared for [`Prepared::dist`] (unit length for cosine; a zero row
/// stays zero and is flagged).
pub(super) struct Prepared {
    rows: Vec<f64>,
    zero: Vec<bool>,
    dim: usize,
    metric: Metric,
}

impl Prepared {
    /// Checks the shape and that every value is finite (named by row and column).
    pub(super) fn new(x: &[f32], n: usize, dim: usize, metric: Metric) -> Result<Self> {
        ensure!(dim >= 1, "2-D map: the embedding has no columns");
        ensure!(
            x.len() == n * dim,
            "2-D map: {} values for {n} rows × {dim} columns",
            x.len()
        );
        if let Some(p) = x.iter().position(|v| !v.is_finite()) {
            bail!(
                "2-D map: row {}, column {} of the embedding is {} (not finite); drop or impute that cell",
                p / dim,
                p % dim,
                x[p]
            );
        }
        let mut rows: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut zero = vec![false; n];
        if metric == Metric::Cosine {
            for (r, z) in rows.chunks_exact_mut(dim).zip(zero.iter_mut()) {
                let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm > 0.0 {
                    r.iter_mut().for_each(|v| *v /= norm);
                } else {
                    *z = true;
                }
            }
        }
        Ok(Prepared {
            rows,
            zero,
            dim,
            metric,
        })
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// Distance between rows `i` and `j`.
    pub(super) fn dist(&self, i: usize, j: usize) -> f64 {
        let (a, b) = (self.row(i), self.row(j));
        match self.metric {
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
                .sqrt(),
            Metric::Cosine => match (self.zero[i], self.zero[j]) {
                (true, true) => 0.0,
                (true, false) | (false, true) => 1.0,
                _ => (1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>()).max(0.0),
            },
        }
    }
}

/// The other points ordered by distance to `i` (ties by lower index).
pub(super) fn order_by_distance(p: &Prepared, n: usize, i: usize) -> Vec<(f64, usize)> {
    let mut d: Vec<(f64, usize)> = (0..n)
        .filter(|&j| j != i)
        .map(|j| (p.dist(i, j), j))
        .collect();
    d.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d
}

/// Trustworthiness of the 2-D map `y` of `x` (`n` rows × `dim`) at `k` neighbours, as
/// `sklearn.manifold.trustworthiness(x, y, n_neighbors=k, metric=...)`:
///
/// `T = 1 − 2 / (n k (2n − 3k − 1)) · Σᵢ Σ_{j ∈ N_k^map(i)} max(0, r(i, j) − k)`,
///
/// where `N_k^map(i)` are the `k` nearest neighbours of `i` in the map (Euclidean) and
/// `r(i, j)` is the rank of `j` among `i`'s neighbours in the input space (1 = nearest).
/// 1.0 means no point in the map has a neighbour that was not a neighbour in the input.
/// Ties are broken by the lower index (scikit-learn leaves them to `argsort`). O(n² · dim).
///
/// Errors: shapes that disagree, a non-finite value, `k == 0` or `k ≥ n / 2` (scikit-learn's
/// limit).
pub fn trustworthiness(
    x: &[f32],
    n: usize,
    dim: usize,
    y: &[[f32; 2]],
    k: usize,
    metric: Metric,
) -> Result<f64> {
    ensure!(
        y.len() == n,
        "trustworthiness: the map has {} points for {n} rows",
        y.len()
    );
    ensure!(k >= 1, "trustworthiness: k must be at least 1");
    ensure!(
        2 * k < n,
        "trustworthiness: k = {k} must be below n / 2 = {}; pass a smaller k",
        n as f64 / 2.0
    );
    if let Some(i) = y
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        bail!("trustworthiness: map point {i} is not finite: {:?}", y[i]);
    }
    let p = Prepared::new(x, n, dim, metric)?;
    let penalty: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rank = vec![0usize; n];
            for (r, &(_, j)) in order_by_distance(&p, n, i).iter().enumerate() {
                rank[j] = r + 1;
            }
            let yi = y[i];
            let mut near: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let dx = (y[j][0] - yi[0]) as f64;
                    let dy = (y[j][1] - yi[1]) as f64;
                    (dx * dx + dy * dy, j)
                })
                .collect();
            near.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            near[..k]
                .iter()
                .map(|&(_, j)| rank[j].saturating_sub(k) as f64)
                .sum::<f64>()
        })
        .sum();
    let (nf, kf) = (n as f64, k as f64);
    Ok(1.0 - penalty * 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0)))
}
