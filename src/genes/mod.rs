//! Summaries corpus, gene-ID mapping, the gene-embedding store and its import/export.

pub mod corpus;
pub mod import;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod pipeline;
pub mod resolver;
pub mod store;

pub use corpus::{Species, SummaryCorpus};
pub use resolver::{GeneResolver, Route};
pub use store::GeneEmbeddings;
