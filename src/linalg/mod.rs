//! Dense linear algebra the higher layers share: a symmetric eigen-decomposition and an exact
//! PCA. Lowest layer: imports nothing else from the crate.

mod eigen;
mod pca;

pub use pca::{pca, Element, Pca};
