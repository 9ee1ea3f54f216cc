//! What `celltext explain` takes: [`ExplainArgs`] is both the library's argument struct and the
//! subcommand's clap flags (under the `cli` feature).

use std::path::PathBuf;

use serde::Serialize;

use crate::classify::mlp::MlpConfig;

/// Which MLP input is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExplainOn {
    /// Cell sentences through the encoder (`cells embed-sentences`).
    Sentences,
    /// GenePT-w cell vectors (`cells embed`), needs --genes.
    GeneptW,
}

crate::choices!(ExplainOn { Sentences = "sentences", GeneptW = "genept-w" });

/// Everything `celltext explain` takes (the doc comments are the `--help` texts).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ExplainArgs {
    /// Input .h5ad (or any matrix celltext reads) with the labels in obs.
    #[cfg_attr(feature = "cli", arg(long, short = 'i'))]
    pub input: PathBuf,
    /// h5ad: read layers/NAME instead of X (point it at raw counts, e.g. counts).
    #[cfg_attr(feature = "cli", arg(long))]
    pub layer: Option<String>,
    /// h5ad: gene symbols from this var column (CELLxGENE: feature_name).
    #[cfg_attr(feature = "cli", arg(long))]
    pub gene_symbols_key: Option<String>,
    /// obs column with the cell-type labels (empty / NaN labels are left out).
    #[cfg_attr(feature = "cli", arg(long))]
    pub label: String,
    /// Encoder: model directory, card name (minilm, …) or hub id.
    #[cfg_attr(feature = "cli", arg(long, short = 'm'))]
    pub model: Option<String>,
    /// sentences (cell sentences through the encoder) or genept-w (needs --genes).
    #[cfg_attr(feature = "cli", arg(long, default_value = "sentences", ignore_case = true, value_parser = crate::choice::value_enum::<ExplainOn>()))]
    pub on: ExplainOn,
    /// --on genept-w: gene store from `celltext genes embed`.
    #[cfg_attr(feature = "cli", arg(long))]
    pub genes: Option<PathBuf>,
    /// --on genept-w: genes per cell in the weighted mean.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 100))]
    pub top_n: usize,
    /// Test cells explained per class (correctly predicted first, in cell order).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10))]
    pub cells_per_class: usize,
    /// Interpolation steps of integrated gradients (midpoint rule) [default 32 for sentences,
    /// 1024 for genept-w: its steps cost one MLP pass each, and it needs them to be complete].
    #[cfg_attr(feature = "cli", arg(long))]
    pub steps: Option<usize>,
    /// Interpolation points per forward/backward pass through the encoder (memory vs speed).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 8))]
    pub chunk: usize,
    /// Genes listed per class.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 10))]
    pub top: usize,
    /// TSV of marker genes (header `cell_type<TAB>gene`), e.g. assets/markers/pbmc3k_markers.tsv.
    #[cfg_attr(feature = "cli", arg(long))]
    pub markers: Option<PathBuf>,
    /// Seed of the split, the MLP and the sentences' tie shuffle (as in classify).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Fraction of each class's labelled cells held out for testing (as in classify).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = crate::classify::split::DEFAULT_TEST_FRACTION))]
    pub test_fraction: f64,
    #[cfg_attr(feature = "cli", command(flatten))]
    pub mlp: MlpConfig,
    /// Output folder (explain.tsv, report.md, report.json, manifest.json).
    #[cfg_attr(feature = "cli", arg(long, short = 'o'))]
    pub out: PathBuf,
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip)]
    pub quiet: bool,
}
