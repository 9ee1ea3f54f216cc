//! The exact 2-component PCA: column means and the covariance accumulated in parallel over
//! row blocks, its two leading eigenvectors with scikit-learn's sign convention, and the
//! projected coordinates (algorithm and cost in the parent module's documentation).

use crate::linalg::pca;
use anyhow::{ensure, Result};

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

/// Exact PCA of `x` (row-major, `n` rows × `dim` columns) to two components
/// ([`crate::linalg::pca`] with `k = 2`).
///
/// Errors: `n < 2`, `dim < 2`, `x.len() != n * dim`, or a non-finite value (named by row and
/// column).
pub fn pca_2d(x: &[f32], n: usize, dim: usize) -> Result<Pca2d> {
    ensure!(
        dim >= 2,
        "PCA to 2 components needs at least 2 columns (embedding dimensions), got {dim}"
    );
    ensure!(n >= 2, "PCA needs at least 2 rows (cells), got {n}");
    let p = pca(x, n, dim, 2)?;
    let coords = p.coords.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
    let [c0, c1]: [Vec<f64>; 2] = p
        .components
        .try_into()
        .map_err(|_| anyhow::anyhow!("PCA returned the wrong number of components"))?;
    Ok(Pca2d {
        coords,
        components: [c0, c1],
        mean: p.mean,
        explained_variance: [p.explained_variance[0], p.explained_variance[1]],
        explained_variance_ratio: [p.explained_variance_ratio[0], p.explained_variance_ratio[1]],
    })
}
