//! sciLaMA (Hu et al., "sciLaMA: A Single-Cell Representation Learning Framework to Leverage
//! Prior Knowledge from Large Language Models"): a paired VAE that turns static gene embeddings
//! (a celltext gene store) and an expression matrix into context-aware cell and gene embeddings.
//!
//! - Cell VAE: scaled expression `c_i` (M genes, see [`data`]) → μ, σ² (K dims) → `z_cell` →
//!   `h_cell ∈ R^{h1}`; gene VAE: static gene vector `g_j` (D dims) → μ, σ² → `z_gene` →
//!   `h_gene ∈ R^{h1}`; reconstruction `ĉ_ij = h_cell_i · h_gene_j + b_j` (as in siVAE).
//! - Optional covariates ([`covariates`]: one-hot batches, z-scored continuous values) are
//!   concatenated to the cell encoder's and the cell decoder's inputs.
//! - Several gene stores ([`stores`], `--genes A --genes B`): one gene encoder per store, their
//!   (μ, σ) fused by [`Fusion`] (average, or the precision-weighted MoE / PoE, as the reference's
//!   `fuse_latents`) into the one gene latent that the gene decoder, the alignment term and the
//!   gene KL see; the model keeps the dataset genes found in every store.
//! - Steps ([`Mode`]): the cell VAE with a linear head `W_cell`, `b` (loss Σ_j (ĉ − c)² + β·KL);
//!   the gene VAE with the cell side frozen, on `h_cell · h_gene + b` (recon + β·KL_gene); the
//!   joint step: everything but `W_cell` on recon, plus γ·Σ_j (c_ij − z_cell_i · z_gene_j − b_j)²,
//!   plus β·(KL_cell + KL_gene). `direct` runs the joint step alone, `stepwise` all three,
//!   `beta-vae` the first; β is the epoch's warm-up KL weight. Squared errors are summed over genes and averaged over cells, KL
//!   terms summed over latent dims and averaged over cells (resp. genes), as in the reference
//!   implementation (`microsoft/sciLaMA`, `loss.py`).
//! - Architecture ([`model`]): Linear → LayerNorm (no affine) → LeakyReLU(0.01) → Dropout blocks,
//!   the reference's `FCNN`; xavier-normal weights, zero biases.
//! - Each step: AdamW, minibatches reshuffled every epoch, early stopping on a seeded validation
//!   split of the cells (no dropout, full β, z drawn as in training — the reference's
//!   `validation_step` — or z = μ with `--val-latent mean`), best epoch restored.
//! - Deterministic for a seed: one `ChaCha8Rng` draws, in order, the validation split, the
//!   initial weights, and per batch the minibatch order, dropout masks and ε (on the host, so
//!   every device sees the same numbers); the validation ε come from a second stream of the same
//!   seed.
//!
//! Defaults are the reference's (`microsoft/sciLaMA`, `config.py`, `template.yaml`): hidden
//! 900,400, latent 50, dropout 0.1, `--mode direct` (the joint loss from the start), up to 500
//! epochs, learning rate 1e-3 decayed ×0.99 per epoch (their `ExponentialLR`), a KL weight that
//! stays 0 for epochs 0–25 and then rises 0.05 per epoch to β = 1 ([`ScilamaConfig::kl_weight`]), validation loss
//! at the full β, and early stopping / best-epoch selection only from the first epoch at full β
//! ([`ScilamaConfig::selection_start`]) with patience 25.

pub mod covariates;
pub mod data;
pub mod embed;
pub mod fused;
pub mod linear;
pub mod model;
pub mod model_file;
pub mod output_set;
pub mod pipeline;
pub mod stores;
pub mod train;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub use data::GeneInput;

/// `--mode`: which of the reference's training schemes runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Cell and gene VAEs trained jointly from the start (the reference's default).
    #[default]
    Direct,
    /// Cell VAE, then the gene VAE with the cell side frozen (γ = 0), then both jointly.
    Stepwise,
    /// The cell VAE alone with its linear head (no gene VAE; no contextual gene embeddings).
    BetaVae,
}

crate::choices!(Mode {
    Direct = "direct",
    Stepwise = "stepwise",
    BetaVae = "beta-vae" | "beta_vae",
});

impl Mode {
    /// The training steps this mode runs, in order.
    pub fn stages(self) -> &'static [Stage] {
        match self {
            Mode::Direct => &[Stage::Joint],
            Mode::Stepwise => &[Stage::Cell, Stage::Gene, Stage::Joint],
            Mode::BetaVae => &[Stage::Cell],
        }
    }
}
/// `--val-latent`: the cell and gene latents of the validation pass that early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValLatent {
    /// z drawn from N(μ, σ²) as in training, without dropout (the reference's
    /// `validation_step`, which runs the encoders' `rsample` in eval mode).
    #[default]
    Sample,
    /// z = μ: a smoother validation loss, so training usually runs longer.
    Mean,
}

crate::choices!(ValLatent {
    Sample = "sample",
    Mean = "mean",
});

/// Models saved before `--val-latent` existed were trained with z = μ in validation.
fn val_latent_before_the_flag() -> ValLatent {
    ValLatent::Mean
}

pub use model::{Arch, Fusion, Network, Stage};
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
    #[cfg_attr(feature = "cli", arg(long, default_value = "direct", value_parser = crate::choice::value_enum::<Mode>(), help = "Training scheme: direct (joint from the start; contextual genes, but cells can lose fine types: docs/scilama.md), stepwise (cell, gene, joint) or beta-vae (the cell VAE alone: keeps cell types, no gene embeddings)"))]
    #[serde(default)]
    pub mode: Mode,
    #[cfg_attr(feature = "cli", arg(long, default_value = "average", value_parser = crate::choice::value_enum::<Fusion>(), help = "How the gene latents of several --genes stores are fused: average (mean of the stores' μ and of their σ) or moe / poe, which both take the precision-weighted mean (μ = Σ μ_k/(σ_k²+1e-8) / Σ 1/(σ_k²+1e-8), σ² = 1 / Σ 1/(σ_k²+1e-8)) as the reference computes both; unused with one store"))]
    #[serde(default)]
    pub fusion: Fusion,
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_hidden, default_value = "900,400", help = "Encoder hidden widths (decoders mirror them)"))]
    pub hidden: std::vec::Vec<usize>,
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 50, help = "Latent dimension K")
    )]
    pub latent: usize,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 1.0,
            help = "KL weight β reached after the warm-up"
        )
    )]
    pub beta: f64,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 25,
            help = "KL weight is 0 for epochs 0..=N of each step"
        )
    )]
    #[serde(default)]
    pub kl_warmup_epochs: usize,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.05,
            help = "KL weight added per epoch after that, up to β (0: β from the first epoch)"
        )
    )]
    #[serde(default)]
    pub kl_warmup_rate: f64,
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
        arg(
            long,
            default_value_t = 0.99,
            help = "Learning rate multiplied by this after every epoch (1: constant)"
        )
    )]
    #[serde(default = "one")]
    pub lr_decay: f64,
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
        arg(long, default_value_t = 500, help = "Maximum epochs per training step")
    )]
    pub epochs: usize,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 25,
            help = "Early-stopping patience in epochs, counted from the first epoch at full β"
        )
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
    #[cfg_attr(feature = "cli", arg(long, default_value = "sample", value_parser = crate::choice::value_enum::<ValLatent>(), help = "Latents of the validation pass early stopping watches: sample (z ~ N(μ, σ²), no dropout, as the reference) or mean (z = μ; smoother, trains longer)"))]
    #[serde(default = "val_latent_before_the_flag")]
    pub val_latent: ValLatent,
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

fn one() -> f64 {
    1.0
}

impl Default for ScilamaConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Direct,
            fusion: Fusion::Average,
            hidden: vec![900, 400],
            latent: 50,
            beta: 1.0,
            kl_warmup_epochs: 25,
            kl_warmup_rate: 0.05,
            gamma: 0.05,
            dropout: 0.1,
            var_eps: 1e-4,
            lr: 1e-3,
            lr_decay: 0.99,
            weight_decay: 0.0,
            batch_size: 128,
            epochs: 500,
            patience: 25,
            val_fraction: 0.1,
            val_latent: ValLatent::Sample,
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
        let finite = [
            self.lr,
            self.beta,
            self.gamma,
            self.var_eps,
            self.kl_warmup_rate,
            self.lr_decay,
        ];
        if finite.iter().any(|v| !v.is_finite())
            || self.lr <= 0.0
            || self.beta < 0.0
            || self.gamma < 0.0
            || self.var_eps < 0.0
            || self.kl_warmup_rate < 0.0
        {
            bail!(
                "--lr must be > 0 and --beta, --gamma, --var-eps, --kl-warmup-rate finite and ≥ 0"
            );
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            bail!("--lr-decay must be in (0, 1], got {}", self.lr_decay);
        }
        Ok(())
    }

    /// The KL weight of `epoch` (0-based) within a step, the reference's `_get_kl_weight` with
    /// `beta_start` 0: 0 while `epoch ≤ --kl-warmup-epochs`, then `rate · (epoch − warmup)`
    /// capped at β. `--kl-warmup-rate 0` means no warm-up: β from the first epoch.
    pub fn kl_weight(&self, epoch: usize) -> f64 {
        if self.kl_warmup_rate <= 0.0 {
            return self.beta;
        }
        if epoch <= self.kl_warmup_epochs {
            return 0.0;
        }
        (self.kl_warmup_rate * (epoch - self.kl_warmup_epochs) as f64).min(self.beta)
    }

    /// The first epoch at which early stopping counts and the best epoch may be chosen (the
    /// reference's `first_epoch_beta_reached`: `ceil(warmup + β / rate)`; 0 without warm-up).
    /// A step that ends before it keeps its last epoch.
    pub fn selection_start(&self) -> usize {
        if self.kl_warmup_rate <= 0.0 {
            return 0;
        }
        (self.kl_warmup_epochs as f64 + self.beta / self.kl_warmup_rate).ceil() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_schedule_matches_hand_computation() {
        // reference defaults: 0 through epoch 25, then +0.05 per epoch, 1 from epoch 45 on
        let cfg = ScilamaConfig::default();
        let want = [
            (0, 0.0),
            (1, 0.0),
            (25, 0.0),
            (26, 0.05),
            (27, 0.10),
            (35, 0.50),
            (44, 0.95),
            (45, 1.0),
            (46, 1.0),
            (499, 1.0),
        ];
        for (epoch, w) in want {
            assert!(
                (cfg.kl_weight(epoch) - w).abs() < 1e-12,
                "epoch {epoch}: {} vs {w}",
                cfg.kl_weight(epoch)
            );
        }
        // ceil(25 + 1 / 0.05) = 45: the first epoch at full β
        assert_eq!(cfg.selection_start(), 45);
        // a lower β is reached earlier and caps the weight
        let half = ScilamaConfig {
            beta: 0.5,
            ..cfg.clone()
        };
        assert!((half.kl_weight(34) - 0.45).abs() < 1e-12);
        assert_eq!(half.kl_weight(36), 0.5);
        assert_eq!(half.selection_start(), 35);
        // rate 0: β from the first epoch, selection from the first epoch
        let flat = ScilamaConfig {
            kl_warmup_rate: 0.0,
            beta: 0.7,
            ..cfg
        };
        assert_eq!((flat.kl_weight(0), flat.kl_weight(30)), (0.7, 0.7));
        assert_eq!(flat.selection_start(), 0);
    }

    #[test]
    fn modes_run_the_reference_steps() {
        assert_eq!(Mode::default(), Mode::Direct);
        assert_eq!(Mode::Direct.stages(), &[Stage::Joint]);
        assert_eq!(
            Mode::Stepwise.stages(),
            &[Stage::Cell, Stage::Gene, Stage::Joint]
        );
        assert_eq!(Mode::BetaVae.stages(), &[Stage::Cell]);
    }
}
