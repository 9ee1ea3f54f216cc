//! Cosine KNN, MLP and fusion classifiers on frozen embeddings.
pub mod knn;
pub mod split;
pub mod mlp;
