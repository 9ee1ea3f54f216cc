//! Library side of each CLI subcommand: main.rs parses arguments and calls these.

pub mod embed;
pub mod cells;
pub mod classify;
pub mod genes;
pub mod demo;
pub mod device_check;
pub mod experiment;
pub mod value_enum;
