//! 2-D maps of an embedding, for plotting cells coloured by label.
//!
//! # PCA and UMAP
//!
//! Two maps: an exact **PCA to two components** ([`pca_2d`]) and a seeded **UMAP**
//! ([`umap_2d`]). The UMAP is written here, not taken from a crate, because none passed:
//! `umap-rs` 0.4 takes no seed (two runs give two different pictures) and, on perfectly
//! separable clusters, kept only 44–73 % of each point's label-neighbours in 2-D; `annembed`
//! needs a system OpenBLAS; `linfa` 0.8 pins an `sprs` version that conflicts with `umap-rs`.
//!
//! The UMAP follows umap-learn 0.5 step by step: exact kNN (the point itself plus the
//! `n_neighbors − 1` nearest, Euclidean or cosine, ties by index); `smooth_knn_dist`
//! (rho = nearest non-zero distance, sigma by bisection to `log2(k)`, floored at 1e-3 of the
//! mean distance); membership strengths and the fuzzy union `A + Aᵀ − A∘Aᵀ`; edges weaker than
//! `max / n_epochs` dropped; `a`, `b` = umap-learn's fit for min_dist 0.1, spread 1; PCA
//! initialisation scaled to 10 with 1e-4 seeded noise, each axis rescaled to [0, 10]; 500
//! epochs (200 above 10 000 points) of SGD with `epochs_per_sample`, 5 negative samples, learning
//! rate 1 decaying linearly, gradient clip 4. The SGD is a single-threaded loop driven by one
//! `ChaCha8Rng`, so a seed gives bit-identical coordinates. Cost: the kNN is O(n² · dim).
//!
//! Neighbour preservation is measured by [`trustworthiness`] (scikit-learn's definition, equal
//! to `sklearn.manifold.trustworthiness` within 1e-9). At k = 15 on the 601 bundled pbmc3k cells
//! (tests/umap.rs, references by tests/fixtures/umap/make_umap_ref.py; AMD EPYC Zen 3, 2 cores,
//! AVX2/FMA, 2026-11-26, `cargo test --test umap -- --nocapture`):
//!
//! | input (metric)                   | celltext (seed 0) | umap-learn 0.5.12 (seeds 0–4, mean) |
//! |----------------------------------|-------------------|-------------------------------------|
//! | scanpy PCA-50 (euclidean)        | 0.8035            | 0.8028                              |
//! | GenePT-w, MiniLM (cosine)        | 0.9573            | 0.9553                              |
//!
//! Both maps keep > 0.9 of each point's label-neighbours on separable clusters
//! ([`label_neighbour_preservation`]). Plots say "PCA" or "UMAP" in their subtitle
//! ([`Pca2d::method_note`], [`Umap2d::method_note`]).
//!
//! # PCA algorithm
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
//! `pca` computes the PCA map (through [`crate::linalg::pca`], which also holds the eigen-decomposition)
//! `umap` the UMAP, `trust` its trustworthiness and `neighbours` how well a map keeps labels
//! together.

mod neighbours;
mod pca;
mod trust;
mod umap;

pub use neighbours::label_neighbour_preservation;
pub use pca::{pca_2d, Pca2d};
pub use trust::{trustworthiness, Metric};
pub use umap::{umap_2d, Umap2d, UmapParams, MIN_DIST as UMAP_MIN_DIST};
