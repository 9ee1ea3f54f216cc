//! Training utilities shared by every model trained with candle autograd (the classify MLP and
//! sciLaMA): seeding, device selection, the AdamW optimiser, per-epoch minibatch order, seeded
//! Gaussian draws, parameter snapshots and early stopping on a validation loss.
//!
//! Every random choice goes through one `ChaCha8Rng` drawn on the host, so a seed gives the same
//! minibatches, dropout masks and noise on every device.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The run's random stream.
pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `--device cpu|cuda[:N]|metal[:N]` for one training run.
pub fn device(name: &str) -> Result<Device> {
    crate::encoder::parse_device(name)
}

/// `torch.optim.AdamW(params, lr, weight_decay)` (betas 0.9/0.999, eps 1e-8, decoupled decay).
pub fn adamw(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<crate::adamw::AdamW> {
    crate::adamw::AdamW::new(vars, lr, weight_decay)
}

/// Reshuffles `order` in place for a new epoch and returns its minibatches (the last may be
/// smaller).
pub fn epoch_batches<'a>(
    order: &'a mut [usize],
    batch_size: usize,
    rng: &mut ChaCha8Rng,
) -> std::slice::Chunks<'a, usize> {
    order.shuffle(rng);
    order.chunks(batch_size.max(1))
}

/// `n` standard-normal draws (Box–Muller on two uniforms each, so no extra crate is needed).
pub fn normal_vec(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// Copies of the current values of `vars`.
pub fn snapshot(vars: &[Var]) -> Result<Vec<Tensor>> {
    vars.iter().map(|v| Ok(v.as_tensor().copy()?)).collect()
}

/// Sets `vars` back to a [`snapshot`].
pub fn restore(vars: &[Var], snap: &[Tensor]) -> Result<()> {
    for (v, t) in vars.iter().zip(snap) {
        v.set(t)?;
    }
    Ok(())
}

/// Early stopping on a validation loss: an epoch whose loss is strictly lower than the best so far
/// becomes the best and snapshots the parameters; training stops after `patience` epochs without
/// improvement. [`EarlyStopping::restore_best`] puts the best epoch's parameters back.
pub struct EarlyStopping {
    patience: usize,
    best: Option<(f32, usize, Vec<Tensor>)>,
}

impl EarlyStopping {
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best: None,
        }
    }

    /// Records epoch `epoch`'s validation loss; returns true when training should stop.
    pub fn observe(&mut self, epoch: usize, val_loss: f32, vars: &[Var]) -> Result<bool> {
        let improved = self.best.as_ref().is_none_or(|(b, _, _)| val_loss < *b);
        if improved {
            self.best = Some((val_loss, epoch, snapshot(vars)?));
            return Ok(false);
        }
        Ok(epoch - self.best.as_ref().map_or(0, |b| b.1) >= self.patience)
    }

    /// The best epoch so far, if any epoch was observed.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.as_ref().map(|b| b.1)
    }

    /// Restores the best epoch's parameters into `vars`; returns that epoch (None: nothing seen).
    pub fn restore_best(&self, vars: &[Var]) -> Result<Option<usize>> {
        match &self.best {
            Some((_, epoch, snap)) => {
                restore(vars, snap)?;
                Ok(Some(*epoch))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_are_seeded_and_standard() {
        let a = normal_vec(20_001, &mut seeded_rng(3));
        assert_eq!(a, normal_vec(20_001, &mut seeded_rng(3)));
        assert_ne!(a, normal_vec(20_001, &mut seeded_rng(4)));
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        // 20k draws: sd of the mean ≈ 0.007, of the variance ≈ 0.01
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch() -> Result<()> {
        let v = Var::new(&[0f32], &Device::Cpu)?;
        let vars = [v.clone()];
        let mut es = EarlyStopping::new(2);
        let losses = [3.0, 2.0, 2.5, 2.0, 1.0];
        let mut stopped = None;
        for (epoch, &l) in losses.iter().enumerate() {
            v.set(&Tensor::new(&[epoch as f32], &Device::Cpu)?)?;
            if es.observe(epoch, l, &vars)? {
                stopped = Some(epoch);
                break;
            }
        }
        // epoch 1 is best; 2.5 and an equal 2.0 are not improvements → stop at epoch 3
        assert_eq!(stopped, Some(3));
        assert_eq!(es.restore_best(&vars)?, Some(1));
        assert_eq!(v.as_tensor().to_vec1::<f32>()?, vec![1.0]);
        Ok(())
    }
}
