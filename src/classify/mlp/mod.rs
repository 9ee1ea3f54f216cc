//! Multi-layer perceptron on frozen embeddings, with multi-source fusion (candle-nn, CPU, f32).
//!
//! # Architecture
//!
//! For sources `s = 0..S` (each a row-major `[n_cells × dim_s]` matrix, see [`Source`]):
//!
//! 1. **Per-source LayerNorm** over that source's `dim_s` features: biased variance, `eps = 1e-5`,
//!    learned affine (`norm.{s}.weight` initialised to 1, `norm.{s}.bias` to 0) — exactly
//!    `torch.nn.LayerNorm(dim_s)`. This puts sources of different scales (an encoder's unit
//!    vectors, `X_pca`, `X_scVI`, …) on one footing before they are mixed.
//! 2. **Fusion** ([`Fusion`]):
//!    - [`Fusion::Concat`]: the normalised sources are concatenated, in the order given.
//!    - [`Fusion::Gated`]: normalised source `s` is first multiplied by a learned scalar gate
//!      `sigmoid(g_s)` (parameter `gate`, shape `[S]`, initialised to 0, i.e. gate 0.5), then
//!      concatenated. The learned gates are reported in [`TrainingHistory::gates`]; a source that
//!      does not help tends to get a smaller gate than one that does. (The gate is a scalar per
//!      source, so it cannot be absorbed by the LayerNorm affine of *another* source; note it can
//!      partly trade off against that source's own LayerNorm scale and the first Linear layer, so
//!      read gates as relative, not absolute, importances.)
//! 3. **Hidden layers**: for each width `h` in [`MlpConfig::hidden`],
//!    `Linear(h) → ReLU → Dropout(p)` (`hidden.{i}.weight` `[h × in]`, `hidden.{i}.bias`).
//! 4. **Output**: `Linear(n_classes)` (`out.weight`, `out.bias`) giving logits. There is no
//!    softmax layer: the softmax lives only inside the loss (log-softmax + gather) and in the
//!    confidence reported by [`TrainedMlp::predict`].
//!
//! # Training
//!
//! - **Validation split**: [`MlpConfig::val_fraction`] of the training cells, stratified by class
//!   and seeded: a class with `n ≥ 2` training cells gives `clamp(round(n × f), 1, n − 1)` cells
//!   (chosen by shuffling that class's cells with the run's `ChaCha8Rng`, classes in index order)
//!   to validation; a class with one cell keeps it for fitting. `val_fraction = 0` means no
//!   validation set: the model trains for exactly `max_epochs` epochs with no early stopping.
//!   Early stopping never looks at the training loss.
//! - **Loss**: cross-entropy on logits. With [`MlpConfig::class_weights`], class `c` gets weight
//!   `n / (k · count_c)` counted over all training cells given to [`TrainedMlp::fit`]
//!   (scikit-learn's `class_weight="balanced"`, `k` = number of classes present; absent classes
//!   get 0), and the loss is PyTorch's weighted mean `Σ w_{y_i}·nll_i / Σ w_{y_i}`. The
//!   validation loss uses the same weights.
//! - **Optimiser**: `candle_nn::AdamW` (betas 0.9/0.999, eps 1e-8, decoupled weight decay applied
//!   to every parameter, as `torch.optim.AdamW(model.parameters())` does), minibatches of
//!   [`MlpConfig::batch_size`] reshuffled every epoch (the last batch may be smaller).
//! - **Early stopping**: after each epoch the validation loss (eval mode, no dropout) is computed;
//!   a strictly lower value than the best so far makes this epoch the best and snapshots every
//!   parameter. Training stops after `patience` epochs without improvement, and the best epoch's
//!   parameters are restored (also when `max_epochs` is reached first).
//!
//! # Determinism
//!
//! One `ChaCha8Rng::seed_from_u64(seed)` drives, in this order, the validation carve, the weight
//! initialisation (torch's `nn.Linear` default: `U(−1/√fan_in, 1/√fan_in)` for weight and bias,
//! layer by layer, weight then bias, row-major), and then each epoch's minibatch shuffle and
//! dropout masks (inverted dropout: keep with probability `1 − p`, scale by `1/(1 − p)`).
//! candle's own RNG-based initialisers and `candle_nn::ops::dropout` are not used. Everything
//! runs on the CPU in f32 with no thread-count-dependent reductions, so the same inputs and seed
//! give bit-identical weights, history and predictions.

mod network;
mod test_hooks;
mod train;

pub use network::TrainedMlp;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// LayerNorm epsilon (torch's default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// How the (LayerNorm-ed) sources are combined before the MLP (`--fusion concat|gated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Fusion {
    /// Concatenate the normalised sources.
    #[default]
    Concat,
    /// Multiply each normalised source by a learned scalar gate `sigmoid(g_s)` (init 0.5), then
    /// concatenate.
    Gated,
}

crate::choices!(Fusion { Concat = "concat", Gated = "gated" });

/// Training configuration. See the module docs for what each knob does.
///
/// It is also the `celltext classify` MLP flags (`--hidden`, `--dropout`, …): the `help` texts
/// below are theirs, and the clap defaults (hidden from `--help`, whose texts state them) are
/// [`MlpConfig::default`]'s. Fields are in flag order, which is also their order in report.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct MlpConfig {
    /// Hidden layer widths (may be empty: a linear model on the normalised sources).
    // `std::vec::Vec`: one `--hidden 256,128` value parsed whole, not a repeatable flag.
    #[cfg_attr(feature = "cli", arg(long, value_parser = parse_hidden, default_value = "256", hide_default_value = true,
          help = "MLP hidden widths, e.g. 256,128 (`none` = linear) [default 256]"))]
    pub hidden: std::vec::Vec<usize>,
    /// Dropout probability after each hidden ReLU, in `[0, 1)`.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().dropout, hide_default_value = true, help = "MLP dropout [default 0.1]"))]
    pub dropout: f32,
    /// AdamW learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().lr, hide_default_value = true, help = "MLP learning rate (AdamW) [default 1e-3]"))]
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().weight_decay, hide_default_value = true, help = "MLP weight decay [default 1e-2]"))]
    pub weight_decay: f64,
    #[cfg_attr(feature = "cli", arg(long = "epochs", value_name = "EPOCHS", default_value_t = MlpConfig::default().max_epochs, hide_default_value = true,
          help = "MLP maximum epochs [default 200]"))]
    pub max_epochs: usize,
    /// Epochs without a strictly lower validation loss before stopping (≥ 1).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().patience, hide_default_value = true,
          help = "MLP early-stopping patience in epochs [default 10]"))]
    pub patience: usize,
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().batch_size, hide_default_value = true, help = "MLP minibatch size [default 64]"))]
    pub batch_size: usize,
    /// Fraction of each class's training cells held out for early stopping, in `[0, 1)`;
    /// 0 disables validation and early stopping.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = MlpConfig::default().val_fraction, hide_default_value = true,
          help = "MLP: fraction of training cells held out for early stopping [default 0.1]"))]
    pub val_fraction: f32,
    /// Balanced class weights in the loss (scikit-learn's `"balanced"`).
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "MLP: balanced class weights in the loss")
    )]
    pub class_weights: bool,
    /// `celltext classify` sets it from its own `--seed`.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub seed: u64,
    /// `celltext classify` sets it from its own `--fusion`.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub fusion: Fusion,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256],
            dropout: 0.1,
            lr: 1e-3,
            weight_decay: 1e-2,
            max_epochs: 200,
            patience: 10,
            batch_size: 64,
            val_fraction: 0.1,
            class_weights: false,
            seed: 0,
            fusion: Fusion::Concat,
        }
    }
}

/// `--hidden 256,128` (`none` for no hidden layer: a linear model).
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    crate::classify::parse_positive_list("--hidden", s, "256,128")
}

impl MlpConfig {
    fn validate(&self) -> Result<()> {
        if !(self.dropout >= 0.0 && self.dropout < 1.0) {
            bail!(
                "MLP dropout is {}; use a probability in [0, 1) (default 0.1)",
                self.dropout
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!(
                "MLP learning rate is {}; use a positive finite value (default 1e-3)",
                self.lr
            );
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bail!(
                "MLP weight decay is {}; use a finite value ≥ 0 (default 1e-2)",
                self.weight_decay
            );
        }
        if self.batch_size == 0 {
            bail!("MLP batch size is 0; use at least 1 (default 64)");
        }
        if self.max_epochs == 0 {
            bail!("MLP max epochs is 0; use at least 1 (default 200)");
        }
        if self.patience == 0 {
            bail!("MLP patience is 0; use at least 1 epoch (default 10)");
        }
        if !(self.val_fraction >= 0.0 && self.val_fraction < 1.0) {
            bail!(
                "MLP validation fraction is {}; use a value in [0, 1) (default 0.1; 0 disables early stopping)",
                self.val_fraction
            );
        }
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            bail!(
                "MLP hidden layer {i} has width 0; every hidden width must be ≥ 1 (default [256])"
            );
        }
        Ok(())
    }
}

/// One input source: row-major `[n_cells × dim]` f32 (an encoder output or any `obsm` key).
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub name: String,
    pub data: &'a [f32],
    pub dim: usize,
}

impl<'a> Source<'a> {
    pub fn new(name: impl Into<String>, data: &'a [f32], dim: usize) -> Self {
        Self {
            name: name.into(),
            data,
            dim,
        }
    }
}

/// A learned gate of [`Fusion::Gated`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceGate {
    pub source: String,
    /// The raw parameter `g_s`.
    pub logit: f32,
    /// `sigmoid(g_s)`, the multiplier applied to the normalised source.
    pub gate: f32,
}

/// What happened during [`TrainedMlp::fit`]. Per-epoch vectors are indexed by epoch (0-based).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingHistory {
    /// Mean training loss over each epoch's minibatches (train mode, with dropout; each batch
    /// weighted by its number of cells).
    pub train_loss: Vec<f32>,
    /// Validation loss after each epoch (eval mode); empty when `val_fraction = 0`.
    pub val_loss: Vec<f32>,
    /// Validation accuracy after each epoch; empty when `val_fraction = 0`.
    pub val_accuracy: Vec<f32>,
    /// Epoch (0-based) whose parameters the model holds: lowest validation loss (first such), or
    /// the last epoch without validation.
    pub best_epoch: usize,
    /// Whether training stopped before `max_epochs` because validation loss stopped improving.
    pub stopped_early: bool,
    /// Learned gates of the restored model (empty for [`Fusion::Concat`]).
    pub gates: Vec<SourceGate>,
    /// Cells (indices into the sources) used for gradient steps.
    pub fit_idx: Vec<usize>,
    /// Cells held out for early stopping.
    pub val_idx: Vec<usize>,
    /// Per-class loss weights used (all 1 without class weighting).
    pub class_weights: Vec<f32>,
}

/// Balanced class weights `n / (k · count_c)` (scikit-learn `compute_class_weight("balanced")`,
/// `k` = number of classes present); classes absent from `labels` get 0.
pub fn balanced_class_weights(labels: &[usize], n_classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        if l < n_classes {
            counts[l] += 1;
        }
    }
    let n: usize = counts.iter().sum();
    let k = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (n as f64 / (k as f64 * c as f64)) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_match_sklearn_formula() {
        // sklearn: compute_class_weight("balanced", classes=[0, 2], y=[0,0,0,2]) = [4/(2·3), 4/(2·1)]
        let w = balanced_class_weights(&[0, 0, 0, 2], 3);
        assert_eq!(w, vec![4.0 / 6.0, 0.0, 2.0]);
    }

    #[test]
    fn default_config_is_the_documented_one() {
        let c = MlpConfig::default();
        assert_eq!(c.hidden, vec![256]);
        assert_eq!((c.dropout, c.lr, c.weight_decay), (0.1, 1e-3, 1e-2));
        assert_eq!(
            (c.batch_size, c.max_epochs, c.patience, c.val_fraction),
            (64, 200, 10, 0.1)
        );
        assert!(!c.class_weights);
        assert_eq!(c.fusion, Fusion::Concat);
        assert!(c.validate().is_ok());
        for bad in [
            MlpConfig {
                val_fraction: 1.0,
                ..c.clone()
            },
            MlpConfig {
                patience: 0,
                ..c.clone()
            },
            MlpConfig {
                max_epochs: 0,
                ..c.clone()
            },
            MlpConfig {
                lr: 0.0,
                ..c.clone()
            },
            MlpConfig {
                hidden: vec![8, 0],
                ..c.clone()
            },
            MlpConfig {
                dropout: f32::NAN,
                ..c.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
