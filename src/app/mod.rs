//! Library side of each CLI subcommand: main.rs parses arguments and calls these.

pub mod cells;
pub mod cells_pca;
pub mod classify;
pub mod demo;
pub mod device_check;
pub mod embed;
pub mod experiment;
pub mod explain;
pub mod genes;
pub mod merge;
pub mod numbers;
pub mod scilama;
pub mod value_enum;

use crate::encoder::{Encoder, EncoderOptions};

/// Load an encoder for a subcommand and show its setup warnings (a guessed casing, an ignored
/// casing flag) on stderr unless `quiet`: the library returns them, the command decides.
pub fn load_encoder(model: &str, options: &EncoderOptions, quiet: bool) -> anyhow::Result<Encoder> {
    let enc = Encoder::load(model, options, quiet)?;
    if !quiet {
        for w in &enc.tokenizer.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(enc)
}
