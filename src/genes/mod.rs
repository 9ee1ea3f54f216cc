//! Summaries corpus, gene-ID mapping and the gene-embedding store.

pub mod corpus;
pub mod resolver;
pub mod store;

pub use corpus::{Species, SummaryCorpus};
pub use resolver::{GeneResolver, Route};
pub use store::GeneEmbeddings;
