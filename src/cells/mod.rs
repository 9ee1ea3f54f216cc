//! Expression matrices, normalization, weighted-average cell embeddings, cell sentences, ablations.
pub mod matrix;
pub mod normalize;
pub mod weighted;
pub mod sentences;
pub mod ablation;
pub mod source;
pub mod text;
pub mod read;
pub mod mtx;
pub mod dense;
#[cfg(feature = "h5ad")]
pub mod h5ad;
