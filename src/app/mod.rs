//! Library side of each CLI subcommand: main.rs parses arguments and calls these.

pub mod cells_pca;
pub mod classify;
pub mod demo;
pub mod device_check;
pub mod embed;
pub mod experiment;
pub mod explain;
pub mod numbers;

pub use crate::encoder::load_encoder;
