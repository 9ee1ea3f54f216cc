//! sciLaMA (Hu et al., "sciLaMA: A Single-Cell Representation Learning Framework to Leverage
//! Prior Knowledge from Large Language Models"): a paired VAE that turns static gene embeddings
//! (a celltext gene store) and an expression matrix into context-aware cell and gene embeddings.
//!
//! - Cell VAE: scaled expression `c_i` (M genes, see [`data`]) → μ, σ² (K dims) → `z_cell` →
//!   `h_cell ∈ R^{h1}`; gene VAE: static gene vector `g_j` (D dims) → μ, σ² → `z_gene` →
//!   `h_gene ∈ R^{h1}`; reconstruction `ĉ_ij = h_cell_i · h_gene_j + b_j` (as in siVAE).
//! - Step 1 trains the cell VAE with a linear head `W_cell`, `b` (loss Σ_j (ĉ − c)² + β·KL);
//!   step 2 freezes it and trains the gene VAE on `h_cell · h_gene + b` (recon + β·KL_gene);
//!   step 3 trains everything but `W_cell` on recon, plus γ·Σ_j (c_ij − z_cell_i · z_gene_j − b_j)²,
//!   plus β·(KL_cell + KL_gene). Squared errors are summed over genes and averaged over cells, KL
//!   terms summed over latent dims and averaged over cells (resp. genes), as in the reference
//!   implementation (`microsoft/sciLaMA`, `loss.py`).
//! - Architecture ([`model`]): Linear → LayerNorm (no affine) → LeakyReLU(0.01) → Dropout blocks,
//!   the reference's `FCNN`; xavier-normal weights, zero biases.
//! - Each step: AdamW, minibatches reshuffled every epoch, early stopping on a seeded validation
//!   split of the cells (loss in eval mode: z = μ, no dropout), best epoch restored.
//! - Deterministic for a seed: one `ChaCha8Rng` draws, in order, the validation split, the
//!   initial weights, and per batch the minibatch order, dropout masks and ε (on the host, so
//!   every device sees the same numbers).
//!
//! Defaults differ from the reference's `template.yaml` (hidden 900,400, latent 50, constant
//! learning rate, KL warm-up, patience 25, up to 500 epochs) where the issue or CPU training time
//! asks: hidden 256,128, latent 40, β = 1 from the start, patience 10, up to 100 epochs per step.

pub mod data;
pub mod model;
pub mod pipeline;
pub mod train;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use data::GeneInput;
pub use model::{Arch, Network, Stage};
pub use train::{fit, EpochLog, Trained};

#[cfg(feature = "cli")]
fn parse_hidden(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{p}` is not a width; use e.g. 256,128"))
        })
        .collect()
}

/// Model and training settings (also the `celltext scilama train` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ScilamaConfig {
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_hidden, default_value = "256,128", help = "Encoder hidden widths (decoders mirror them)"))]
    pub hidden: std::vec::Vec<usize>,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 40, help = "Latent dimension K")
    )]
    pub latent: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 1.0, help = "KL weight β")
    )]
    pub beta: f64,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.05,
            help = "Latent alignment weight γ (joint step)"
        )
    )]
    pub gamma: f64,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 0.1, help = "Dropout after each hidden block")
    )]
    pub dropout: f32,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 1e-4, help = "Added to exp(logvar)")
    )]
    pub var_eps: f64,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 1e-3, help = "AdamW learning rate")
    )]
    pub lr: f64,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 0.0, help = "AdamW weight decay")
    )]
    pub weight_decay: f64,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 128, help = "Cells per minibatch")
    )]
    pub batch_size: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 100, help = "Maximum epochs per training step")
    )]
    pub epochs: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 10, help = "Early-stopping patience in epochs")
    )]
    pub patience: usize,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.1,
            help = "Fraction of cells held out for early stopping (0: none)"
        )
    )]
    pub val_fraction: f32,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0,
            help = "Seed for the split, weights, batches, dropout and noise"
        )
    )]
    pub seed: u64,
}

impl Default for ScilamaConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256, 128],
            latent: 40,
            beta: 1.0,
            gamma: 0.05,
            dropout: 0.1,
            var_eps: 1e-4,
            lr: 1e-3,
            weight_decay: 0.0,
            batch_size: 128,
            epochs: 100,
            patience: 10,
            val_fraction: 0.1,
            seed: 0,
        }
    }
}

impl ScilamaConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.epochs == 0 || self.patience == 0 {
            bail!("--batch-size, --epochs and --patience must be ≥ 1");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            bail!(
                "--val-fraction must be in [0, 1), got {}",
                self.val_fraction
            );
        }
        if self.lr.is_nan()
            || self.lr <= 0.0
            || self.beta < 0.0
            || self.gamma < 0.0
            || self.var_eps < 0.0
        {
            bail!("--lr must be > 0 and --beta, --gamma, --var-eps ≥ 0");
        }
        Ok(())
    }
}
