//! `torch.optim.AdamW` (decoupled weight decay) for candle `Var`s.
//!
//! candle_nn's AdamW runs ~14 tensor ops per parameter per step, each a pass into fresh memory;
//! for sciLaMA's ~3.5M parameters at every minibatch that is a visible share of a CPU step. On
//! the CPU in f32 the update here is one pass per parameter with the moments kept as host
//! vectors; on other devices (or dtypes) it is candle_nn's AdamW, and `fused_matches_candle`
//! checks the two against each other.
//!
//! Per element, at step t: m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
//! θ = θ·(1 − lr·λ) − lr · (m / (1 − β1ᵗ)) / (sqrt(v / (1 − β2ᵗ)) + ε).

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

pub enum AdamW {
    Fused(Fused),
    Candle(candle_nn::AdamW),
}

pub struct Fused {
    /// Each parameter with its first and second moments.
    vars: Vec<(Var, Vec<f32>, Vec<f32>)>,
    params: ParamsAdamW,
    step_t: i32,
}

impl AdamW {
    /// betas 0.9/0.999, eps 1e-8 (torch's defaults), learning rate `lr`, decay `weight_decay`.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let params = ParamsAdamW {
            lr,
            weight_decay,
            ..ParamsAdamW::default()
        };
        let cpu_f32 = vars
            .iter()
            .all(|v| matches!(v.device(), Device::Cpu) && v.dtype() == DType::F32);
        Ok(if cpu_f32 {
            let vars = vars
                .into_iter()
                .map(|v| {
                    let n = v.elem_count();
                    (v, vec![0f32; n], vec![0f32; n])
                })
                .collect();
            AdamW::Fused(Fused {
                vars,
                params,
                step_t: 0,
            })
        } else {
            AdamW::Candle(candle_nn::AdamW::new(vars, params)?)
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            AdamW::Fused(f) => f.params.lr = lr,
            AdamW::Candle(c) => c.set_learning_rate(lr),
        }
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        match self {
            AdamW::Fused(f) => f.step(grads),
            AdamW::Candle(c) => Ok(c.step(grads)?),
        }
    }

    /// Gradients of `loss`, then [`AdamW::step`].
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        self.step(&loss.backward()?)
    }
}

impl Fused {
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let (b1, b2) = (p.beta1 as f32, p.beta2 as f32);
        let scale_m = (1.0 / (1.0 - p.beta1.powi(self.step_t))) as f32;
        let scale_v = (1.0 / (1.0 - p.beta2.powi(self.step_t))) as f32;
        let (lr, decay, eps) = (
            p.lr as f32,
            (1.0 - p.lr * p.weight_decay) as f32,
            p.eps as f32,
        );
        for (var, m, v) in self.vars.iter_mut() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut theta = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            theta
                .par_chunks_mut(CHUNK)
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .for_each(|(((t, m), v), g)| {
                    for k in 0..t.len() {
                        m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                        v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                        let step = (m[k] * scale_m) / ((v[k] * scale_v).sqrt() + eps);
                        t[k] = t[k] * decay - lr * step;
                    }
                });
            var.set(&Tensor::from_vec(theta, var.shape(), var.device())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps of a small least-squares fit with weight decay: the fused update and
    /// candle_nn's AdamW give the same parameters (1e-6 relative to the largest).
    #[test]
    fn fused_matches_candle() -> Result<()> {
        let mut rng = crate::training::seeded_rng(5);
        let x = Tensor::from_vec(
            crate::training::normal_vec(40 * 7, &mut rng),
            (40, 7),
            &Device::Cpu,
        )?;
        let y = Tensor::from_vec(
            crate::training::normal_vec(40 * 3, &mut rng),
            (40, 3),
            &Device::Cpu,
        )?;
        let w0 = crate::training::normal_vec(7 * 3, &mut rng);
        let run = |fused: bool| -> Result<Vec<f32>> {
            let w = Var::from_vec(w0.clone(), (7, 3), &Device::Cpu)?;
            let mut opt = AdamW::new(vec![w.clone()], 0.05, 0.1)?;
            if !fused {
                let params = ParamsAdamW {
                    lr: 0.05,
                    weight_decay: 0.1,
                    ..ParamsAdamW::default()
                };
                opt = AdamW::Candle(candle_nn::AdamW::new(vec![w.clone()], params)?);
            }
            assert_eq!(matches!(opt, AdamW::Fused(_)), fused);
            for step in 0..3 {
                opt.set_learning_rate(0.05 * 0.9f64.powi(step));
                let loss = (x.matmul(w.as_tensor())? - &y)?.sqr()?.sum_all()?;
                opt.backward_step(&loss)?;
            }
            Ok(w.as_tensor().flatten_all()?.to_vec1::<f32>()?)
        };
        let (a, b) = (run(true)?, run(false)?);
        let scale = b.iter().fold(0f32, |s, v| s.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |s, (p, q)| s.max((p - q).abs()));
        assert!(worst / scale < 1e-6, "worst {worst}, scale {scale}");
        assert!(
            a.iter().zip(&w0).any(|(p, q)| (p - q).abs() > 1e-3),
            "no step taken"
        );
        Ok(())
    }
}
