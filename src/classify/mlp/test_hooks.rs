//! Test hooks: the PyTorch cross-check (tests/mlp.rs) drives the real forward pass, loss and
//! optimiser with given weights through these. Hidden from the docs; not part of the public API.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::network::{gather_rows, Arch};
use super::{Fusion, Source, TrainedMlp};

impl TrainedMlp {
    /// Builds a model with the given parameter values (names as in the module docs; shapes
    /// `[out × in]` for Linear weights, as in torch).
    #[doc(hidden)]
    pub fn from_weights(
        sources: &[(String, usize)],
        hidden: &[usize],
        n_classes: usize,
        fusion: Fusion,
        weights: &HashMap<String, Vec<f32>>,
    ) -> Result<Self> {
        let arch = Arch {
            sources: sources.to_vec(),
            hidden: hidden.to_vec(),
            n_classes,
            fusion,
        };
        let names: Vec<String> = arch.params().into_iter().map(|(n, _)| n).collect();
        if let Some(extra) = weights.keys().find(|k| !names.contains(k)) {
            bail!("unknown MLP parameter '{extra}'; expected {names:?}");
        }
        Self::build(arch, 0.0, |name, _| {
            weights
                .get(name)
                .cloned()
                .with_context(|| format!("missing MLP parameter '{name}'"))
        })
    }

    /// Current parameter values by name.
    #[doc(hidden)]
    pub fn weights_for_test(&self) -> Result<BTreeMap<String, Vec<f32>>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect()
    }

    /// Eval-mode logits, row-major `[idx.len() × n_classes]`.
    #[doc(hidden)]
    pub fn logits_for_test(&self, sources: &[Source], idx: &[usize]) -> Result<Vec<f32>> {
        Ok(self
            .forward(&gather_rows(sources, idx)?, None)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// The training loss on one batch (eval mode), optionally class-weighted.
    #[doc(hidden)]
    pub fn loss_for_test(
        &self,
        sources: &[Source],
        labels: &[usize],
        idx: &[usize],
        class_weights: Option<&[f32]>,
    ) -> Result<f32> {
        let logits = self.forward(&gather_rows(sources, idx)?, None)?;
        Ok(Self::batch_loss(&logits, labels, idx, class_weights)?.to_scalar::<f32>()?)
    }

    /// Eval-mode loss over `idx` computed the way validation loss is (chunked, f64 accumulation).
    #[doc(hidden)]
    pub fn eval_loss_for_test(
        &self,
        sources: &[Source],
        labels: &[usize],
        idx: &[usize],
        class_weights: Option<&[f32]>,
    ) -> Result<f32> {
        Ok(self.evaluate(sources, labels, idx, class_weights)?.0)
    }

    /// Gradients of the batch loss (no dropout) by parameter name.
    #[doc(hidden)]
    pub fn grads_for_test(
        &self,
        sources: &[Source],
        labels: &[usize],
        idx: &[usize],
        class_weights: Option<&[f32]>,
    ) -> Result<BTreeMap<String, Vec<f32>>> {
        let logits = self.forward(&gather_rows(sources, idx)?, None)?;
        let grads = Self::batch_loss(&logits, labels, idx, class_weights)?.backward()?;
        self.vars
            .iter()
            .map(|(n, v)| {
                let g = grads
                    .get(v.as_tensor())
                    .with_context(|| format!("no gradient for '{n}'"))?;
                Ok((n.clone(), g.flatten_all()?.to_vec1::<f32>()?))
            })
            .collect()
    }

    /// `steps` AdamW steps (fresh optimiser state, no dropout) on one batch, as training does.
    /// Returns the loss before each step.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn train_steps_for_test(
        &mut self,
        sources: &[Source],
        labels: &[usize],
        idx: &[usize],
        class_weights: Option<&[f32]>,
        lr: f64,
        weight_decay: f64,
        steps: usize,
    ) -> Result<Vec<f32>> {
        let vars: Vec<Var> = self.vars.iter().map(|(_, v)| v.clone()).collect();
        let mut opt = AdamW::new(
            vars,
            ParamsAdamW {
                lr,
                weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        let xs = gather_rows(sources, idx)?;
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            let logits = self.forward(&xs, None)?;
            let loss = Self::batch_loss(&logits, labels, idx, class_weights)?;
            opt.backward_step(&loss)?;
            losses.push(loss.to_scalar::<f32>()?);
        }
        Ok(losses)
    }
}
