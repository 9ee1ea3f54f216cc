//! 2-D maps of an embedding, for plotting cells coloured by label.
//!
//! # Why PCA and not UMAP
//!
//! The map is an exact **PCA to two components**. A UMAP was considered and rejected, and the
//! rule for adding one later is written down here:
//!
//! - `umap-rs` 0.4 takes no seed (two runs give two different pictures) and, on perfectly
//!   separable clusters, kept only 44–73 % of each point's label-neighbours in 2-D;
//! - `annembed` needs a system OpenBLAS;
//! - `linfa` 0.8 pins an `sprs` version that conflicts with `umap-rs`.
//!
//! A UMAP may replace or join PCA only if it is seeded and passes the neighbour-preservation
//! test in `tests/report_plots.rs` ([`label_neighbour_preservation`] > 0.9 on separable
//! clusters), which this PCA passes. Plots built from [`Pca2d`] say "PCA" in their subtitle
//! ([`Pca2d::method_note`]) so no reader mistakes it for a UMAP.
//!
//! # Algorithm
//!
//! 1. column means (f64, in parallel over row blocks);
//! 2. the covariance `XcᵀXc / (n − 1)` of the centred data, accumulated in f64 from
//!    transposed blocks of 128 rows with rayon (only the upper triangle; `dim × dim`, so a
//!    1024-wide embedding needs 8 MiB per worker whatever the number of cells);
//! 3. a full symmetric eigen-decomposition: Householder tridiagonalisation + implicit QL
//!    (EISPACK `tred2`/`tql2`, as in JAMA). It is O(dim³) and exact to rounding, which is why
//!    it is used instead of Jacobi (several sweeps of O(dim³) each, too slow at dim = 1024) or
//!    power iteration with deflation (its accuracy depends on the eigen-gap and a tolerance);
//! 4. the two largest eigenvalues' vectors, with scikit-learn's deterministic sign convention
//!    (`svd_flip(u_based_decision=False)`): the loading with the largest |value| of each
//!    component is made positive (first such index on ties, like `np.argmax`);
//! 5. coordinates `(x − mean) · component`, explained variance (`ddof = 1`, as scikit-learn)
//!    and its ratio to the total variance (the covariance trace).
//!
//! Cost: the covariance is O(n · dim²) and the eigen-decomposition O(dim³). In the test
//! profile (opt-level 1, 2 cores) 20 000 × 384 takes about 2.6 s and 4 000 × 1024 about
//! 10 s (7 s of it the 1024-wide eigen-decomposition); release builds are several times faster.
//!
//! Checked against `sklearn.decomposition.PCA` (tests/fixtures/plots/make_pca_ref.py):
//! coordinates within 1e-4, explained-variance ratio within 1e-6.
//!
//! `pca` computes the map (through [`crate::linalg::pca`], which also holds the eigen-decomposition)
//! and `neighbours` scores how well a map keeps labels together.

mod neighbours;
mod pca;
mod trust;
mod umap;

pub use neighbours::label_neighbour_preservation;
pub use pca::{pca_2d, Pca2d};
pub use trust::{trustworthiness, Metric};
pub use umap::{umap_2d, Umap2d, UmapParams, MIN_DIST as UMAP_MIN_DIST};
