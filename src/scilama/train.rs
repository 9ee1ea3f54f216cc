//! The fit: the steps of `--mode` (direct: joint only; stepwise: cell VAE, gene VAE with the cell
//! side frozen, joint; beta-vae: cell VAE only), each with its own AdamW (learning rate ×
//! `lr_decay` per epoch), the KL warm-up, and early stopping on the validation cells from the
//! first epoch at full β (their loss with sampled latents by default, as the reference's),
//! restoring the best epoch before the next step.
//!
//! Loss sums stay on the device during an epoch and are read back once at its end (one host round
//! trip per epoch, not per minibatch); the validation loss is one forward pass per minibatch of
//! validation cells (sampled latents, as the reference's validation batches) or one full-batch
//! pass (`--val-latent mean`).

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use serde::Serialize;

use super::model::{Arch, Network, Noise, Side, Stage, Weights};
use super::{ScilamaConfig, ValLatent};
use crate::training::{adamw, epoch_batches, seeded_rng, EarlyStopping};

/// Rows per chunk when evaluating or embedding.
const EVAL_CHUNK: usize = 1024;

/// One epoch of one step.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    pub stage: Stage,
    pub epoch: usize,
    /// The KL weight of this epoch (warm-up).
    pub kl_weight: f32,
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

/// Rows `idx` of `x` and of the covariates `c`.
fn rows(x: &Tensor, c: Option<&Tensor>, idx: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    Ok((
        x.index_select(idx, 0)?,
        c.map(|c| c.index_select(idx, 0)).transpose()?,
    ))
}

/// Validation loss over `idx` without dropout, the mean over chunks of `chunk` cells weighted by
/// their size (summed on the device): z = μ (`sample` None), or z drawn from `sample`
/// (`--val-latent sample`), where the chunks are minibatches as the reference's validation
/// batches are, each drawing its own cell and gene ε.
fn val_loss(
    net: &Network,
    stage: Stage,
    (x, c, g): (&Tensor, Option<&Tensor>, &[Tensor]),
    w: Weights,
    (idx, chunk): (&[usize], usize),
    mut sample: Option<&mut rand_chacha::ChaCha8Rng>,
) -> Result<f32> {
    let mut sum: Option<Tensor> = None;
    for chunk in idx.chunks(chunk) {
        let (xb, cb) = rows(x, c, &idx_tensor(chunk, &net.device)?)?;
        let mut noise = match sample.as_deref_mut() {
            Some(rng) => Noise::Sample(rng),
            None => Noise::Eval,
        };
        let l = (net.loss(stage, &xb, cb.as_ref(), g, w, &mut noise)?.total * chunk.len() as f64)?;
        sum = Some(match sum {
            Some(s) => (s + l)?,
            None => l,
        });
    }
    let sum = sum
        .expect("validation split is not empty")
        .to_scalar::<f32>()? as f64;
    Ok((sum / idx.len() as f64) as f32)
}

/// Trains on the scaled cells `x` (`[n × M]`, row-major) with covariates `cov` (`[n × C]`, empty
/// for none) and the gene inputs of each store `stores` (`(values, D_k)`: `[M × D_k]` row-major,
/// the same genes in the same order; two or more are fused by `cfg.fusion`). `on_epoch` sees
/// every epoch as it finishes (for progress display).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    x: &[f32],
    n_cells: usize,
    cov: &[f32],
    stores: &[(&[f32], usize)],
    cfg: &ScilamaConfig,
    device: &Device,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<Trained> {
    let (m, n_cov) = check_inputs(x, n_cells, cov, stores, cfg)?;
    let arch = Arch {
        n_genes: m,
        gene_dim: stores[0].1,
        more_gene_dims: stores[1..].iter().map(|s| s.1).collect(),
        fusion: (stores.len() > 1).then_some(cfg.fusion),
        hidden: cfg.hidden.clone(),
        latent: cfg.latent,
        dropout: cfg.dropout,
        var_eps: cfg.var_eps,
        n_cov,
    };
    // one generator for the split, the initial weights, the minibatch order and the noise, drawn
    // in that order (the seed reproduces the run)
    let mut rng = seeded_rng(cfg.seed);
    let (fit_idx, val_idx) = carve(n_cells, cfg.val_fraction, &mut rng);
    let net = Network::xavier(arch, device, &mut rng)?;
    let data = FitData {
        x: Tensor::from_slice(x, (n_cells, m), device)?,
        genes: stores
            .iter()
            .map(|(g, d)| Ok(Tensor::from_slice(g, (m, *d), device)?))
            .collect::<Result<Vec<_>>>()?,
        cov: if n_cov > 0 {
            Some(Tensor::from_slice(cov, (n_cells, n_cov), device)?)
        } else {
            None
        },
        fit_idx,
        val_idx,
    };
    // the validation noise has its own stream, so `--val-latent` changes when training stops
    // but not what the training steps draw
    let mut val_rng = seeded_rng(cfg.seed);
    val_rng.set_stream(1);
    let mut history = Vec::new();
    let mut best_epochs = Vec::new();
    for &stage in cfg.mode.stages() {
        let rngs = (&mut rng, &mut val_rng);
        let best = fit_stage(&net, stage, &data, cfg, rngs, &mut history, on_epoch)?;
        best_epochs.push((stage, best));
    }
    Ok(Trained {
        net,
        history,
        best_epochs,
        fit_idx: data.fit_idx,
        val_idx: data.val_idx,
    })
}

/// `fit`'s inputs checked (shapes agree, every value finite): the number of genes `M` and of
/// covariate columns `C`.
fn check_inputs(
    x: &[f32],
    n_cells: usize,
    cov: &[f32],
    stores: &[(&[f32], usize)],
    cfg: &ScilamaConfig,
) -> Result<(usize, usize)> {
    cfg.validate()?;
    if n_cells < 2 || !x.len().is_multiple_of(n_cells) {
        bail!("sciLaMA needs at least 2 cells and a full [cells × genes] matrix");
    }
    let m = x.len() / n_cells;
    if stores.is_empty() {
        bail!("sciLaMA needs at least one gene store's inputs");
    }
    for (k, (g, gene_dim)) in stores.iter().enumerate() {
        if g.len() != m * gene_dim {
            bail!(
                "gene inputs of store {} have {} values, {m} genes × {gene_dim} dims need {}",
                k + 1,
                g.len(),
                m * gene_dim
            );
        }
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("sciLaMA input value {i} is not finite; check the expression matrix");
    }
    for (k, (g, _)) in stores.iter().enumerate() {
        if let Some(i) = g.iter().position(|v| !v.is_finite()) {
            bail!(
                "gene input value {i} of store {} is not finite; check the gene store",
                k + 1
            );
        }
    }
    if !cov.len().is_multiple_of(n_cells) {
        bail!(
            "{} covariate values for {n_cells} cells: need a full [cells × columns] matrix",
            cov.len()
        );
    }
    let n_cov = cov.len() / n_cells;
    if let Some(i) = cov.iter().position(|v| !v.is_finite()) {
        bail!("covariate value {i} is not finite; check the --covariate-key columns");
    }
    Ok((m, n_cov))
}

/// The training data on the device and the fit / validation split.
struct FitData {
    /// Scaled cells `[n × M]`.
    x: Tensor,
    /// Covariates `[n × C]`, `None` without any.
    cov: Option<Tensor>,
    /// Each store's gene inputs `[M × D_k]`.
    genes: Vec<Tensor>,
    fit_idx: Vec<usize>,
    val_idx: Vec<usize>,
}

/// One step of `--mode` (`stage`): epochs with its own AdamW until `--epochs` or early stopping,
/// each logged to `history` and `on_epoch`; restores and returns the best epoch (the last without
/// a validation set).
fn fit_stage(
    net: &Network,
    stage: Stage,
    data: &FitData,
    cfg: &ScilamaConfig,
    (rng, val_rng): (&mut rand_chacha::ChaCha8Rng, &mut rand_chacha::ChaCha8Rng),
    history: &mut Vec<EpochLog>,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<usize> {
    let start = cfg.selection_start();
    // the stepwise gene step trains without the latent alignment term (reference: γ = 0)
    let gamma = if stage == Stage::Gene { 0.0 } else { cfg.gamma };
    let vars = net.trainable(stage);
    let mut opt = adamw(vars.clone(), cfg.lr, cfg.weight_decay)?;
    let mut stopping = EarlyStopping::new(cfg.patience);
    let mut order = data.fit_idx.clone();
    let mut last = 0;
    for epoch in 0..cfg.epochs {
        opt.set_learning_rate(cfg.lr * cfg.lr_decay.powi(epoch as i32));
        let kl_weight = cfg.kl_weight(epoch);
        let w = Weights {
            beta: kl_weight,
            gamma,
        };
        let sums = train_epoch(
            net,
            stage,
            data,
            w,
            &mut opt,
            &mut order,
            cfg.batch_size,
            rng,
        )?;
        let nf = data.fit_idx.len() as f64;
        if !sums[0].is_finite() {
            bail!(
                "sciLaMA {} loss became {} at epoch {epoch}; lower --lr",
                stage.name(),
                sums[0]
            );
        }
        let vl = if data.val_idx.is_empty() {
            f32::NAN
        } else {
            // validation at the full KL weight, as the reference's validation_step
            let vw = Weights {
                beta: cfg.beta,
                gamma,
            };
            let tensors = (&data.x, data.cov.as_ref(), data.genes.as_slice());
            let sampled = cfg.val_latent == ValLatent::Sample;
            let chunk = if sampled { cfg.batch_size } else { EVAL_CHUNK };
            let sample = sampled.then_some(&mut *val_rng);
            val_loss(net, stage, tensors, vw, (&data.val_idx, chunk), sample)?
        };
        let log = EpochLog {
            stage,
            epoch,
            kl_weight: kl_weight as f32,
            train_loss: (sums[0] as f64 / nf) as f32,
            train_recon: (sums[1] as f64 / nf) as f32,
            train_kl: (sums[2] as f64 / nf) as f32,
            val_loss: vl,
        };
        on_epoch(&log);
        history.push(log);
        last = epoch;
        if !data.val_idx.is_empty() && epoch >= start && stopping.observe(epoch, vl, &vars)? {
            break;
        }
    }
    Ok(stopping.restore_best(&vars)?.unwrap_or(last))
}

/// One pass over the fit cells in a fresh shuffled `order`, one optimizer step per minibatch:
/// the sums of (loss, recon, KL) × batch size, kept on the device until the end and read back
/// once.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    net: &Network,
    stage: Stage,
    data: &FitData,
    w: Weights,
    opt: &mut crate::adamw::AdamW,
    order: &mut [usize],
    batch_size: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<Vec<f32>> {
    let mut sums: Option<Tensor> = None;
    for batch in epoch_batches(order, batch_size, rng) {
        let (xb, cb) = rows(&data.x, data.cov.as_ref(), &idx_tensor(batch, &net.device)?)?;
        let l = net.loss(
            stage,
            &xb,
            cb.as_ref(),
            &data.genes,
            w,
            &mut Noise::Rng(&mut *rng),
        )?;
        opt.backward_step(&l.total)?;
        let s = (Tensor::stack(&[&l.total, &l.recon, &l.kl], 0)?.detach() * batch.len() as f64)?;
        sums = Some(match sums {
            Some(a) => (a + s)?,
            None => s,
        });
    }
    Ok(sums
        .expect("the fit split is not empty")
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

impl Network {
    /// Cell μ of every row of `x` (`[n × M]`, covariates `cov` `[n × C]`), host row-major
    /// `[n × K]`.
    pub fn embed_cells(&self, x: &[f32], cov: &[f32], n: usize) -> Result<Vec<f32>> {
        let m = self.arch.n_genes;
        let t = Tensor::from_slice(x, (n, m), &self.device)?;
        if cov.len() != n * self.arch.n_cov {
            bail!(
                "{} covariate values for {n} cells × {} columns",
                cov.len(),
                self.arch.n_cov
            );
        }
        let c = if self.arch.n_cov > 0 {
            Some(Tensor::from_slice(cov, (n, self.arch.n_cov), &self.device)?)
        } else {
            None
        };
        self.embed(Side::Cell, &[t], c.as_ref(), EVAL_CHUNK)
    }

    /// Gene μ (fused over the stores as in training) of `n` genes, given each store's vectors of
    /// them (`gs[k]`: `[n × D_k]` row-major, the same genes in the same order), host row-major
    /// `[n × K]`.
    pub fn embed_genes(&self, gs: &[&[f32]], n: usize) -> Result<Vec<f32>> {
        let dims = self.arch.gene_dims();
        if gs.len() != dims.len() {
            bail!(
                "{} gene stores' vectors for a model with {} gene store(s)",
                gs.len(),
                dims.len()
            );
        }
        let ts = gs
            .iter()
            .zip(&dims)
            .map(|(g, &d)| Ok(Tensor::from_slice(g, (n, d), &self.device)?))
            .collect::<Result<Vec<_>>>()?;
        self.embed(Side::Gene, &ts, None, EVAL_CHUNK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::normal_vec;

    fn tiny_arch(dropout: f32) -> Arch {
        Arch {
            n_genes: 4,
            gene_dim: 3,
            more_gene_dims: Vec::new(),
            fusion: None,
            hidden: vec![5],
            latent: 2,
            dropout,
            var_eps: 1e-4,
            n_cov: 0,
        }
    }

    fn tiny_data(n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut r = seeded_rng(11);
        (normal_vec(n * 4, &mut r), normal_vec(4 * 3, &mut r))
    }

    /// `--val-latent sample`: the validation loss is the training loss with ε drawn from the
    /// validation RNG (cell ε, then gene ε) and no dropout, even in a model trained with dropout;
    /// `mean` is the eval loss (z = μ).
    #[test]
    fn validation_samples_latents_without_dropout() -> Result<()> {
        let dev = Device::Cpu;
        let net = Network::xavier(tiny_arch(0.5), &dev, &mut seeded_rng(0))?;
        let (x, g) = tiny_data(6);
        let x = Tensor::from_vec(x, (6, 4), &dev)?;
        let g = vec![Tensor::from_vec(g, (4, 3), &dev)?];
        let w = Weights {
            beta: 1.0,
            gamma: 0.05,
        };
        let idx = [0usize, 2, 5];
        let xb = x.index_select(&idx_tensor(&idx, &dev)?, 0)?;
        let total = |noise: &mut Noise| -> Result<f32> {
            Ok(net
                .loss(Stage::Joint, &xb, None, &g, w, noise)?
                .total
                .to_scalar::<f32>()?)
        };
        let data = (&x, None, g.as_slice());
        let mean = val_loss(&net, Stage::Joint, data, w, (&idx, EVAL_CHUNK), None)?;
        assert!((mean - total(&mut Noise::Eval)?).abs() <= 1e-6 * mean.abs());

        let sampled = val_loss(
            &net,
            Stage::Joint,
            data,
            w,
            (&idx, EVAL_CHUNK),
            Some(&mut seeded_rng(7)),
        )?;
        let mut r = seeded_rng(7);
        let eps_cell = Tensor::from_vec(normal_vec(3 * 2, &mut r), (3, 2), &dev)?;
        let eps_gene = Tensor::from_vec(normal_vec(4 * 2, &mut r), (4, 2), &dev)?;
        let given = total(&mut Noise::Given([eps_cell, eps_gene].into()))?;
        assert!(
            (sampled - given).abs() <= 1e-5 * given.abs(),
            "sampled {sampled} vs given ε {given}"
        );
        assert!(
            (sampled - mean).abs() > 1e-3 * mean.abs(),
            "{sampled} vs {mean}"
        );

        // in minibatches of 2 (cells 0, 2 then 5), each drawing its cell ε then its gene ε,
        // weighted by size
        let chunked = val_loss(
            &net,
            Stage::Joint,
            data,
            w,
            (&idx, 2),
            Some(&mut seeded_rng(7)),
        )?;
        let mut r = seeded_rng(7);
        let mut part = |rows: &[usize]| -> Result<f32> {
            let n = rows.len();
            let xr = x.index_select(&idx_tensor(rows, &dev)?, 0)?;
            let eps_cell = Tensor::from_vec(normal_vec(n * 2, &mut r), (n, 2), &dev)?;
            let eps_gene = Tensor::from_vec(normal_vec(4 * 2, &mut r), (4, 2), &dev)?;
            let noise = &mut Noise::Given([eps_cell, eps_gene].into());
            Ok(net
                .loss(Stage::Joint, &xr, None, &g, w, noise)?
                .total
                .to_scalar::<f32>()?)
        };
        let expected = (2.0 * part(&[0, 2])? + part(&[5])?) / 3.0;
        assert!(
            (chunked - expected).abs() <= 1e-5 * expected.abs(),
            "chunked {chunked} vs {expected}"
        );
        Ok(())
    }

    /// The validation noise has its own stream: `--val-latent` changes the validation losses
    /// (and so when training stops), never the training steps.
    #[test]
    fn val_latent_leaves_the_training_draws_alone() -> Result<()> {
        let (x, g) = tiny_data(20);
        let run = |val_latent| -> Result<Vec<EpochLog>> {
            let cfg = ScilamaConfig {
                hidden: vec![5],
                latent: 2,
                epochs: 3,
                batch_size: 8,
                val_fraction: 0.25,
                val_latent,
                ..ScilamaConfig::default()
            };
            let t = fit(&x, 20, &[], &[(&g, 3)], &cfg, &Device::Cpu, &mut |_| {})?;
            Ok(t.history)
        };
        let (sample, mean) = (run(ValLatent::Sample)?, run(ValLatent::Mean)?);
        assert_eq!(sample.len(), 3);
        for (s, m) in sample.iter().zip(&mean) {
            assert_eq!(s.train_loss.to_bits(), m.train_loss.to_bits());
            assert!(s.val_loss.is_finite() && m.val_loss.is_finite());
            assert_ne!(s.val_loss.to_bits(), m.val_loss.to_bits());
        }
        // and the sampled validation is reproducible for the seed
        let again = run(ValLatent::Sample)?;
        let bits = |h: &[EpochLog]| h.iter().map(|e| e.val_loss.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&sample), bits(&again));
        Ok(())
    }

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
