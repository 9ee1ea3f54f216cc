//! celltext: text encoders as single-cell biology instruments, fully offline.
//!
//! Data flows one way: files → matrices/texts → encoder → vectors → classifiers → reports.
//! Lower layers never import higher ones (`encoder` knows nothing of cells; `cells` nothing of `classify`).

pub mod adamw;
#[cfg(feature = "cli")]
pub mod app;
pub mod cells;
pub mod checksum;
pub mod choice;
pub mod classify;
pub mod encoder;
pub mod eval;
pub mod experiment;
pub mod explain;
pub mod genes;
pub mod io;
pub mod limits;
pub mod linalg;
pub mod merge;
pub mod outputs;
pub mod pickle;
pub mod progress;
pub mod scilama;
pub mod shard;
pub mod training;
