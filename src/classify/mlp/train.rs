//! [`TrainedMlp::fit`]: the seeded validation carve, AdamW minibatch training and early stopping
//! described in the module docs.

use anyhow::{bail, Result};
use candle_core::Var;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::training::{adamw, epoch_batches, seeded_rng, EarlyStopping};

use super::network::{check_finite, check_idx, check_sources, gather_rows, Arch};
use super::{balanced_class_weights, MlpConfig, Source, TrainedMlp, TrainingHistory};

/// Stratified, seeded validation carve (see module docs). Returns (fit, val), each sorted.
fn carve_validation(
    train_idx: &[usize],
    labels: &[usize],
    n_classes: usize,
    frac: f32,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    if frac <= 0.0 {
        let mut fit = train_idx.to_vec();
        fit.sort_unstable();
        return (fit, Vec::new());
    }
    let mut by_class = vec![Vec::new(); n_classes];
    for &i in train_idx {
        by_class[labels[i]].push(i);
    }
    let (mut fit, mut val) = (Vec::new(), Vec::new());
    for mut cells in by_class {
        let n = cells.len();
        if n < 2 {
            fit.extend(cells);
            continue;
        }
        cells.sort_unstable();
        cells.shuffle(rng);
        let n_val = ((n as f64 * frac as f64).round() as usize).clamp(1, n - 1);
        val.extend_from_slice(&cells[..n_val]);
        fit.extend_from_slice(&cells[n_val..]);
    }
    fit.sort_unstable();
    val.sort_unstable();
    (fit, val)
}

impl TrainedMlp {
    /// Trains on cells `train_idx` (a validation part is carved from them; see module docs).
    pub fn fit(
        sources: &[Source],
        labels: &[usize],
        n_classes: usize,
        train_idx: &[usize],
        cfg: &MlpConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let n_cells = check_sources(sources)?;
        if n_classes < 2 {
            bail!("the MLP needs at least 2 classes, got {n_classes}");
        }
        if labels.len() != n_cells {
            bail!(
                "got {} labels for {n_cells} cells; pass one label per cell (row) of the sources",
                labels.len()
            );
        }
        if train_idx.is_empty() {
            bail!("the MLP training set is empty; pass at least one labelled training cell");
        }
        check_idx(train_idx, n_cells, "training cell")?;
        {
            let mut seen = vec![false; n_cells];
            for &i in train_idx {
                if std::mem::replace(&mut seen[i], true) {
                    bail!("training cell {i} is listed twice; pass each training cell once");
                }
            }
        }
        if let Some(&i) = train_idx.iter().find(|&&i| labels[i] >= n_classes) {
            bail!("cell {i} has label {} but there are only {n_classes} classes (labels must be < n_classes)", labels[i]);
        }
        check_finite(sources, train_idx)?;

        let mut rng = seeded_rng(cfg.seed);
        let (fit_idx, val_idx) =
            carve_validation(train_idx, labels, n_classes, cfg.val_fraction, &mut rng);
        if cfg.val_fraction > 0.0 && val_idx.is_empty() {
            bail!(
                "validation fraction {} leaves no validation cells ({} training cells, no class with ≥ 2); \
                 add training cells or set val_fraction to 0 to train for max_epochs without early stopping",
                cfg.val_fraction,
                train_idx.len()
            );
        }
        let train_labels: Vec<usize> = train_idx.iter().map(|&i| labels[i]).collect();
        let class_weights = if cfg.class_weights {
            balanced_class_weights(&train_labels, n_classes)
        } else {
            vec![1.0; n_classes]
        };
        let weights = cfg.class_weights.then_some(class_weights.as_slice());

        let arch = Arch {
            sources: sources.iter().map(|s| (s.name.clone(), s.dim)).collect(),
            hidden: cfg.hidden.clone(),
            n_classes,
            fusion: cfg.fusion,
        };
        // LayerNorm weight 1, everything else 0, then the Linear layers drawn in documented order.
        let mut model = Self::build(arch, cfg.dropout, |name, shape| {
            let numel: usize = shape.iter().product();
            let one = name.starts_with("norm.") && name.ends_with(".weight");
            Ok(vec![if one { 1.0 } else { 0.0 }; numel])
        })?;
        model.init_linear(&mut rng)?;

        let vars: Vec<Var> = model.vars.iter().map(|(_, v)| v.clone()).collect();
        let mut opt = adamw(vars.clone(), cfg.lr, cfg.weight_decay)?;

        let mut history = TrainingHistory {
            fit_idx: fit_idx.clone(),
            val_idx: val_idx.clone(),
            class_weights: class_weights.clone(),
            ..TrainingHistory::default()
        };
        let mut stopping = EarlyStopping::new(cfg.patience);
        let mut order = fit_idx.clone();
        for epoch in 0..cfg.max_epochs {
            let mut loss_sum = 0f64;
            for batch in epoch_batches(&mut order, cfg.batch_size, &mut rng) {
                let xs = gather_rows(sources, batch)?;
                let logits = model.forward(&xs, Some(&mut rng))?;
                let loss = Self::batch_loss(&logits, labels, batch, weights)?;
                opt.backward_step(&loss)?;
                let l = loss.to_scalar::<f32>()?;
                if !l.is_finite() {
                    bail!("MLP training loss became {l} at epoch {epoch}; lower the learning rate");
                }
                loss_sum += l as f64 * batch.len() as f64;
            }
            history
                .train_loss
                .push((loss_sum / fit_idx.len() as f64) as f32);
            if val_idx.is_empty() {
                history.best_epoch = epoch;
                continue;
            }
            let (vl, va) = model.evaluate(sources, labels, &val_idx, weights)?;
            history.val_loss.push(vl);
            history.val_accuracy.push(va);
            if stopping.observe(epoch, vl, &vars)? {
                history.stopped_early = epoch + 1 < cfg.max_epochs;
                break;
            }
        }
        if let Some(epoch) = stopping.restore_best(&vars)? {
            history.best_epoch = epoch;
        }
        history.gates = model.gate_report()?;
        model.history = history;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn validation_carve_is_stratified_seeded_and_disjoint() {
        // class 0: 30 cells, class 1: 5, class 2: 1, class 3: 2; only even cells are training cells.
        let mut labels = Vec::new();
        for (c, n) in [(0usize, 30usize), (1, 5), (2, 1), (3, 2)] {
            for _ in 0..n {
                labels.push(c);
                labels.push(c);
            }
        }
        let train: Vec<usize> = (0..labels.len()).step_by(2).collect();
        let carve = |seed| {
            carve_validation(
                &train,
                &labels,
                4,
                0.1,
                &mut ChaCha8Rng::seed_from_u64(seed),
            )
        };
        let (fit, val) = carve(1);
        let count = |idx: &[usize], c| idx.iter().filter(|&&i| labels[i] == c).count();
        // clamp(round(n·0.1), 1, n−1): 30 → 3, 5 → 1 (round 0.5 → 1), 1 → 0, 2 → 1
        assert_eq!([0, 1, 2, 3].map(|c| count(&val, c)), [3, 1, 0, 1]);
        assert_eq!([0, 1, 2, 3].map(|c| count(&fit, c)), [27, 4, 1, 1]);
        let mut all: Vec<usize> = fit.iter().chain(&val).cloned().collect();
        all.sort_unstable();
        assert_eq!(all, train);
        assert!(fit.windows(2).all(|w| w[0] < w[1]) && val.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(carve(1), (fit.clone(), val.clone()));
        assert_ne!(carve(2).1, val);
        // fraction 0: everything is fit
        let (fit0, val0) =
            carve_validation(&train, &labels, 4, 0.0, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!((fit0, val0), (train.clone(), vec![]));
    }
}
