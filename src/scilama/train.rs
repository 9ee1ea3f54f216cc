//! The three-step fit: cell VAE, gene VAE (cell side frozen), joint — each with its own AdamW and
//! early stopping on the validation cells, restoring the best epoch before the next step.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::model::{Arch, Network, Noise, Stage, Weights};
use super::ScilamaConfig;
use crate::training::{adamw, epoch_batches, seeded_rng, EarlyStopping};

/// Rows per chunk when evaluating or embedding.
const EVAL_CHUNK: usize = 1024;

/// One epoch of one step.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub stage: Stage,
    pub epoch: usize,
    pub train_loss: f32,
    pub train_recon: f32,
    pub train_kl: f32,
    /// NaN when there is no validation set.
    pub val_loss: f32,
}

/// A trained model and how it got there.
pub struct Trained {
    pub net: Network,
    pub history: Vec<EpochLog>,
    /// Best (restored) epoch of each step, in step order.
    pub best_epochs: Vec<(Stage, usize)>,
    pub fit_idx: Vec<usize>,
    pub val_idx: Vec<usize>,
}

/// Seeded validation carve: `clamp(round(n·f), 1, n − 1)` cells (none when `f = 0`), each part
/// sorted.
fn carve(n: usize, frac: f32, rng: &mut rand_chacha::ChaCha8Rng) -> (Vec<usize>, Vec<usize>) {
    let mut all: Vec<usize> = (0..n).collect();
    if frac <= 0.0 {
        return (all, Vec::new());
    }
    all.shuffle(rng);
    let n_val = ((n as f64 * frac as f64).round() as usize).clamp(1, n - 1);
    let mut val = all[..n_val].to_vec();
    let mut fit = all[n_val..].to_vec();
    val.sort_unstable();
    fit.sort_unstable();
    (fit, val)
}

fn idx_tensor(idx: &[usize], device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Ok(Tensor::from_vec(v, idx.len(), device)?)
}

/// Eval-mode loss over `idx` (z = μ, no dropout), chunk results weighted by chunk size.
fn val_loss(
    net: &Network,
    stage: Stage,
    x: &Tensor,
    g: &Tensor,
    w: Weights,
    idx: &[usize],
) -> Result<f32> {
    let mut sum = 0f64;
    for chunk in idx.chunks(EVAL_CHUNK) {
        let xb = x.index_select(&idx_tensor(chunk, &net.device)?, 0)?;
        let l = net.loss(stage, &xb, g, w, &mut Noise::Eval)?;
        sum += l.total.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok((sum / idx.len() as f64) as f32)
}

/// Trains on the scaled cells `x` (`[n × M]`, row-major) with gene inputs `g` (`[M × D]`).
/// `on_epoch` sees every epoch as it finishes (for progress display).
pub fn fit(
    x: &[f32],
    n_cells: usize,
    g: &[f32],
    gene_dim: usize,
    cfg: &ScilamaConfig,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<Trained> {
    cfg.validate()?;
    if n_cells < 2 || !x.len().is_multiple_of(n_cells) {
        bail!("sciLaMA needs at least 2 cells and a full [cells × genes] matrix");
    }
    let m = x.len() / n_cells;
    if g.len() != m * gene_dim {
        bail!(
            "gene inputs have {} values, {m} genes × {gene_dim} dims need {}",
            g.len(),
            m * gene_dim
        );
    }
    if let Some(i) = x.iter().chain(g).position(|v| !v.is_finite()) {
        bail!("sciLaMA input value {i} is not finite; check the expression matrix and gene store");
    }
    let arch = Arch {
        n_genes: m,
        gene_dim,
        hidden: cfg.hidden.clone(),
        latent: cfg.latent,
        dropout: cfg.dropout,
        var_eps: cfg.var_eps,
    };
    let mut rng = seeded_rng(cfg.seed);
    let (fit_idx, val_idx) = carve(n_cells, cfg.val_fraction, &mut rng);
    let net = Network::xavier(arch, device, &mut rng)?;
    let xt = Tensor::from_slice(x, (n_cells, m), device)?;
    let gt = Tensor::from_slice(g, (m, gene_dim), device)?;
    let w = Weights {
        beta: cfg.beta,
        gamma: cfg.gamma,
    };
    let mut history = Vec::new();
    let mut best_epochs = Vec::new();
    for stage in [Stage::Cell, Stage::Gene, Stage::Joint] {
        let vars = net.trainable(stage);
        let mut opt = adamw(vars.clone(), cfg.lr, cfg.weight_decay)?;
        let mut stopping = EarlyStopping::new(cfg.patience);
        let mut order = fit_idx.clone();
        for epoch in 0..cfg.epochs {
            let (mut tl, mut tr, mut tk) = (0f64, 0f64, 0f64);
            for batch in epoch_batches(&mut order, cfg.batch_size, &mut rng) {
                let xb = xt.index_select(&idx_tensor(batch, device)?, 0)?;
                let l = net.loss(stage, &xb, &gt, w, &mut Noise::Rng(&mut rng))?;
                opt.backward_step(&l.total)?;
                let total = l.total.to_scalar::<f32>()?;
                if !total.is_finite() {
                    bail!(
                        "sciLaMA {} loss became {total} at epoch {epoch}; lower --lr",
                        stage.name()
                    );
                }
                let b = batch.len() as f64;
                tl += total as f64 * b;
                tr += l.recon.to_scalar::<f32>()? as f64 * b;
                tk += l.kl.to_scalar::<f32>()? as f64 * b;
            }
            let nf = fit_idx.len() as f64;
            let vl = if val_idx.is_empty() {
                f32::NAN
            } else {
                val_loss(&net, stage, &xt, &gt, w, &val_idx)?
            };
            let log = EpochLog {
                stage,
                epoch,
                train_loss: (tl / nf) as f32,
                train_recon: (tr / nf) as f32,
                train_kl: (tk / nf) as f32,
                val_loss: vl,
            };
            on_epoch(&log);
            history.push(log);
            if !val_idx.is_empty() && stopping.observe(epoch, vl, &vars)? {
                break;
            }
        }
        let best = stopping
            .restore_best(&vars)?
            .unwrap_or(cfg.epochs.saturating_sub(1));
        best_epochs.push((stage, best));
    }
    Ok(Trained {
        net,
        history,
        best_epochs,
        fit_idx,
        val_idx,
    })
}

impl Network {
    /// Cell μ of every row of `x` (`[n × M]`), host row-major `[n × K]`.
    pub fn embed_cells(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let m = self.arch.n_genes;
        let t = Tensor::from_slice(x, (n, m), &self.device)?;
        self.embed("cell", &t, EVAL_CHUNK)
    }

    /// Gene μ of every row of `g` (`[M' × D]`), host row-major `[M' × K]`.
    pub fn embed_genes(&self, g: &[f32], n: usize) -> Result<Vec<f32>> {
        let t = Tensor::from_slice(g, (n, self.arch.gene_dim), &self.device)?;
        self.embed("gene", &t, EVAL_CHUNK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_is_seeded_disjoint_and_sized() {
        let (f, v) = carve(50, 0.1, &mut seeded_rng(1));
        assert_eq!(v.len(), 5);
        assert_eq!(f.len(), 45);
        let mut all: Vec<usize> = f.iter().chain(&v).cloned().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(carve(50, 0.1, &mut seeded_rng(1)).1, v);
        assert_ne!(carve(50, 0.1, &mut seeded_rng(2)).1, v);
        assert_eq!(carve(3, 0.0, &mut seeded_rng(1)), (vec![0, 1, 2], vec![]));
    }
}
