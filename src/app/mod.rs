//! The CLI-only subcommands: `demo` and `device-check` run other pipelines and print their own
//! tables (nothing a library caller needs), and `numbers` is a clap helper. Every other pipeline
//! is a library function (`genes::pipeline`, `cells::pipeline`, `classify::pipeline`, …).

pub mod demo;
pub mod device_check;
pub mod numbers;

pub use crate::encoder::load_encoder;
