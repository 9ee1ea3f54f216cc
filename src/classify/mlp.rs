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

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// LayerNorm epsilon (torch's default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Rows per forward pass at evaluation/prediction time (fixed, so results never depend on it).
const EVAL_CHUNK: usize = 1024;

/// How the (LayerNorm-ed) sources are combined before the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Fusion {
    /// Concatenate the normalised sources.
    #[default]
    Concat,
    /// Multiply each normalised source by a learned scalar gate `sigmoid(g_s)` (init 0.5), then
    /// concatenate.
    Gated,
}

/// Training configuration. See the module docs for what each knob does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Hidden layer widths (may be empty: a linear model on the normalised sources).
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden ReLU, in `[0, 1)`.
    pub dropout: f32,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a strictly lower validation loss before stopping (≥ 1).
    pub patience: usize,
    /// Fraction of each class's training cells held out for early stopping, in `[0, 1)`;
    /// 0 disables validation and early stopping.
    pub val_fraction: f32,
    /// Balanced class weights in the loss (scikit-learn's `"balanced"`).
    pub class_weights: bool,
    pub seed: u64,
    pub fusion: Fusion,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256],
            dropout: 0.1,
            lr: 1e-3,
            weight_decay: 1e-2,
            batch_size: 64,
            max_epochs: 200,
            patience: 10,
            val_fraction: 0.1,
            class_weights: false,
            seed: 0,
            fusion: Fusion::Concat,
        }
    }
}

impl MlpConfig {
    fn validate(&self) -> Result<()> {
        if !(self.dropout >= 0.0 && self.dropout < 1.0) {
            bail!("MLP dropout is {}; use a probability in [0, 1) (default 0.1)", self.dropout);
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("MLP learning rate is {}; use a positive finite value (default 1e-3)", self.lr);
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bail!("MLP weight decay is {}; use a finite value ≥ 0 (default 1e-2)", self.weight_decay);
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
            bail!("MLP hidden layer {i} has width 0; every hidden width must be ≥ 1 (default [256])");
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
        Self { name: name.into(), data, dim }
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
        .map(|&c| if c == 0 { 0.0 } else { (n as f64 / (k as f64 * c as f64)) as f32 })
        .collect()
}

/// Shape of the network (everything but the parameter values).
#[derive(Debug, Clone, PartialEq)]
struct Arch {
    sources: Vec<(String, usize)>,
    hidden: Vec<usize>,
    n_classes: usize,
    fusion: Fusion,
}

impl Arch {
    /// Parameter names and shapes, in initialisation order.
    fn params(&self) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        for (s, (_, d)) in self.sources.iter().enumerate() {
            p.push((format!("norm.{s}.weight"), vec![*d]));
            p.push((format!("norm.{s}.bias"), vec![*d]));
        }
        if self.fusion == Fusion::Gated {
            p.push(("gate".to_string(), vec![self.sources.len()]));
        }
        let mut fan_in: usize = self.sources.iter().map(|(_, d)| d).sum();
        for (i, &h) in self.hidden.iter().enumerate() {
            p.push((format!("hidden.{i}.weight"), vec![h, fan_in]));
            p.push((format!("hidden.{i}.bias"), vec![h]));
            fan_in = h;
        }
        p.push(("out.weight".to_string(), vec![self.n_classes, fan_in]));
        p.push(("out.bias".to_string(), vec![self.n_classes]));
        p
    }
}

/// A trained (or test-loaded) MLP.
pub struct TrainedMlp {
    arch: Arch,
    varmap: VarMap,
    /// The VarMap's variables in a fixed order (HashMap iteration order is not).
    vars: Vec<(String, Var)>,
    dropout: f32,
    history: TrainingHistory,
}

impl std::fmt::Debug for TrainedMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainedMlp")
            .field("sources", &self.arch.sources)
            .field("hidden", &self.arch.hidden)
            .field("n_classes", &self.arch.n_classes)
            .field("fusion", &self.arch.fusion)
            .finish_non_exhaustive()
    }
}

/// Checks the sources agree on the number of cells and returns it.
fn check_sources(sources: &[Source]) -> Result<usize> {
    if sources.is_empty() {
        bail!("the MLP needs at least one input source (--embedding)");
    }
    let mut n_cells = None;
    for (i, s) in sources.iter().enumerate() {
        if s.dim == 0 {
            bail!("source '{}' has dimension 0; each source needs at least one column", s.name);
        }
        if s.data.len() % s.dim != 0 {
            bail!(
                "source '{}' has {} values, not a multiple of its dimension {}; pass a row-major [n_cells × dim] matrix",
                s.name,
                s.data.len(),
                s.dim
            );
        }
        let n = s.data.len() / s.dim;
        match n_cells {
            None => n_cells = Some(n),
            Some(n0) if n0 != n => bail!(
                "source '{}' has {n} rows but source '{}' has {n0}; every --embedding must have one row per cell, in the same order",
                s.name,
                sources[0].name
            ),
            _ => {}
        }
        if sources[..i].iter().any(|o| o.name == s.name) {
            bail!("source name '{}' is given twice; give each --embedding once", s.name);
        }
    }
    Ok(n_cells.unwrap_or(0))
}

/// Errors if any requested row of any source holds NaN or ±inf.
fn check_finite(sources: &[Source], idx: &[usize]) -> Result<()> {
    for s in sources {
        for &i in idx {
            let row = &s.data[i * s.dim..(i + 1) * s.dim];
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                bail!(
                    "source '{}' has a non-finite value ({}) at cell {i}, column {j}; remove or impute such cells before training",
                    s.name,
                    row[j]
                );
            }
        }
    }
    Ok(())
}

fn check_idx(idx: &[usize], n_cells: usize, what: &str) -> Result<()> {
    if let Some(&i) = idx.iter().find(|&&i| i >= n_cells) {
        bail!("{what} index {i} is out of range: the sources have {n_cells} cells");
    }
    Ok(())
}

/// Stratified, seeded validation carve (see module docs). Returns (fit, val), each sorted.
fn carve_validation(train_idx: &[usize], labels: &[usize], n_classes: usize, frac: f32, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<usize>) {
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

/// Gathers rows `idx` of each source into one `[len × dim]` tensor per source.
fn gather_rows(sources: &[Source], idx: &[usize]) -> Result<Vec<Tensor>> {
    sources
        .iter()
        .map(|s| {
            let mut buf = Vec::with_capacity(idx.len() * s.dim);
            for &i in idx {
                buf.extend_from_slice(&s.data[i * s.dim..(i + 1) * s.dim]);
            }
            Ok(Tensor::from_vec(buf, (idx.len(), s.dim), &Device::Cpu)?)
        })
        .collect()
}

fn targets(labels: &[usize], idx: &[usize]) -> Result<Tensor> {
    let t: Vec<u32> = idx.iter().map(|&i| labels[i] as u32).collect();
    Ok(Tensor::from_vec(t, idx.len(), &Device::Cpu)?)
}

/// Per-sample negative log-likelihood `[b]` from logits `[b × k]` (log-softmax + gather).
fn per_sample_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?)
}

impl TrainedMlp {
    fn build(arch: Arch, dropout: f32, init: impl Fn(&str, &[usize]) -> Result<Vec<f32>>) -> Result<Self> {
        let varmap = VarMap::new();
        let mut vars = Vec::new();
        {
            let mut data = varmap.data().lock().map_err(|_| anyhow::anyhow!("MLP VarMap lock poisoned"))?;
            for (name, shape) in arch.params() {
                let values = init(&name, &shape)?;
                let numel: usize = shape.iter().product();
                if values.len() != numel {
                    bail!("parameter '{name}' has {} values but shape {shape:?} needs {numel}", values.len());
                }
                let var = Var::from_tensor(&Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?)?;
                data.insert(name.clone(), var.clone());
                vars.push((name, var));
            }
        }
        Ok(Self { arch, varmap, vars, dropout, history: TrainingHistory::default() })
    }

    fn var(&self, name: &str) -> &Tensor {
        // Names come from `Arch::params`, so the lookup cannot miss.
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_tensor()).expect("known parameter name")
    }

    /// Forward pass to logits. `dropout_rng = Some(..)` is train mode (dropout on).
    fn forward(&self, xs: &[Tensor], mut dropout_rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(xs.len());
        let gates = match self.arch.fusion {
            Fusion::Gated => Some(candle_nn::ops::sigmoid(self.var("gate"))?),
            Fusion::Concat => None,
        };
        for (s, x) in xs.iter().enumerate() {
            let d = x.dim(1)? as f64;
            let mean = (x.sum_keepdim(1)? / d)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = (xc.sqr()?.sum_keepdim(1)? / d)?;
            let xn = xc.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?;
            let mut y = xn
                .broadcast_mul(self.var(&format!("norm.{s}.weight")))?
                .broadcast_add(self.var(&format!("norm.{s}.bias")))?;
            if let Some(g) = &gates {
                y = y.broadcast_mul(&g.narrow(0, s, 1)?)?;
            }
            parts.push(y);
        }
        let mut h = if parts.len() == 1 { parts.pop().expect("one part") } else { Tensor::cat(&parts, 1)? };
        for i in 0..self.arch.hidden.len() {
            h = h
                .matmul(&self.var(&format!("hidden.{i}.weight")).t()?)?
                .broadcast_add(self.var(&format!("hidden.{i}.bias")))?
                .relu()?;
            if let Some(rng) = dropout_rng.as_deref_mut() {
                if self.dropout > 0.0 {
                    let p = self.dropout;
                    let scale = 1.0 / (1.0 - p);
                    let (b, w) = h.dims2()?;
                    let mask: Vec<f32> = (0..b * w).map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale }).collect();
                    h = h.mul(&Tensor::from_vec(mask, (b, w), &Device::Cpu)?)?;
                }
            }
        }
        Ok(h.matmul(&self.var("out.weight").t()?)?.broadcast_add(self.var("out.bias"))?)
    }

    /// Scalar loss: mean nll, or weighted mean `Σ w_y nll / Σ w_y`.
    fn batch_loss(logits: &Tensor, labels: &[usize], idx: &[usize], weights: Option<&[f32]>) -> Result<Tensor> {
        let t = targets(labels, idx)?;
        match weights {
            None => Ok(candle_nn::loss::cross_entropy(logits, &t)?),
            Some(w) => {
                let nll = per_sample_nll(logits, &t)?;
                let wy: Vec<f32> = idx.iter().map(|&i| w[labels[i]]).collect();
                let wsum: f64 = wy.iter().map(|&v| v as f64).sum();
                if wsum <= 0.0 {
                    bail!("the class weights of this batch sum to {wsum}; every labelled class needs a positive weight");
                }
                let wy = Tensor::from_vec(wy, idx.len(), &Device::Cpu)?;
                Ok((nll.mul(&wy)?.sum_all()? / wsum)?)
            }
        }
    }

    /// Eval-mode loss (same weighting as training) and accuracy over `idx`, in fixed chunks.
    fn evaluate(&self, sources: &[Source], labels: &[usize], idx: &[usize], weights: Option<&[f32]>) -> Result<(f32, f32)> {
        let (mut num, mut den, mut correct) = (0f64, 0f64, 0usize);
        for chunk in idx.chunks(EVAL_CHUNK) {
            let logits = self.forward(&gather_rows(sources, chunk)?, None)?;
            let nll = per_sample_nll(&logits, &targets(labels, chunk)?)?.to_vec1::<f32>()?;
            for (k, &i) in chunk.iter().enumerate() {
                let w = weights.map_or(1.0, |w| w[labels[i]] as f64);
                num += w * nll[k] as f64;
                den += w;
            }
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            correct += chunk.iter().zip(&pred).filter(|(&i, &p)| labels[i] == p as usize).count();
        }
        Ok(((num / den) as f32, correct as f32 / idx.len().max(1) as f32))
    }

    fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.vars.iter().map(|(_, v)| Ok(v.as_tensor().copy()?)).collect()
    }

    fn restore(&self, snap: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.vars.iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }

    fn gate_report(&self) -> Result<Vec<SourceGate>> {
        if self.arch.fusion != Fusion::Gated {
            return Ok(Vec::new());
        }
        let g = self.var("gate").to_vec1::<f32>()?;
        Ok(self
            .arch
            .sources
            .iter()
            .zip(g)
            .map(|((name, _), logit)| SourceGate { source: name.clone(), logit, gate: 1.0 / (1.0 + (-logit).exp()) })
            .collect())
    }

    fn check_predict_sources(&self, sources: &[Source]) -> Result<usize> {
        let n = check_sources(sources)?;
        let got: Vec<(String, usize)> = sources.iter().map(|s| (s.name.clone(), s.dim)).collect();
        if got != self.arch.sources {
            bail!(
                "the MLP was trained on sources {:?} (name, dim) but was given {:?}; pass the same --embedding sources in the same order",
                self.arch.sources,
                got
            );
        }
        Ok(n)
    }

    /// Trains on cells `train_idx` (a validation part is carved from them; see module docs).
    pub fn fit(sources: &[Source], labels: &[usize], n_classes: usize, train_idx: &[usize], cfg: &MlpConfig) -> Result<Self> {
        cfg.validate()?;
        let n_cells = check_sources(sources)?;
        if n_classes < 2 {
            bail!("the MLP needs at least 2 classes, got {n_classes}");
        }
        if labels.len() != n_cells {
            bail!("got {} labels for {n_cells} cells; pass one label per cell (row) of the sources", labels.len());
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

        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let (fit_idx, val_idx) = carve_validation(train_idx, labels, n_classes, cfg.val_fraction, &mut rng);
        if cfg.val_fraction > 0.0 && val_idx.is_empty() {
            bail!(
                "validation fraction {} leaves no validation cells ({} training cells, no class with ≥ 2); \
                 add training cells or set val_fraction to 0 to train for max_epochs without early stopping",
                cfg.val_fraction,
                train_idx.len()
            );
        }
        let train_labels: Vec<usize> = train_idx.iter().map(|&i| labels[i]).collect();
        let class_weights =
            if cfg.class_weights { balanced_class_weights(&train_labels, n_classes) } else { vec![1.0; n_classes] };
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
        let mut opt = AdamW::new(
            vars,
            ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() },
        )?;

        let mut history = TrainingHistory {
            fit_idx: fit_idx.clone(),
            val_idx: val_idx.clone(),
            class_weights: class_weights.clone(),
            ..TrainingHistory::default()
        };
        let mut best: Option<(f32, usize, Vec<Tensor>)> = None;
        let mut order = fit_idx.clone();
        for epoch in 0..cfg.max_epochs {
            order.shuffle(&mut rng);
            let mut loss_sum = 0f64;
            for batch in order.chunks(cfg.batch_size) {
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
            history.train_loss.push((loss_sum / fit_idx.len() as f64) as f32);
            if val_idx.is_empty() {
                history.best_epoch = epoch;
                continue;
            }
            let (vl, va) = model.evaluate(sources, labels, &val_idx, weights)?;
            history.val_loss.push(vl);
            history.val_accuracy.push(va);
            let improved = best.as_ref().map_or(true, |(b, _, _)| vl < *b);
            if improved {
                best = Some((vl, epoch, model.snapshot()?));
            } else if epoch - best.as_ref().map_or(0, |b| b.1) >= cfg.patience {
                history.stopped_early = epoch + 1 < cfg.max_epochs;
                break;
            }
        }
        if let Some((_, epoch, snap)) = best {
            model.restore(&snap)?;
            history.best_epoch = epoch;
        }
        history.gates = model.gate_report()?;
        model.history = history;
        Ok(model)
    }

    /// Draws every Linear weight and bias from `U(−1/√fan_in, 1/√fan_in)`, layer by layer, weight
    /// then bias, row-major (torch's `nn.Linear` default).
    fn init_linear(&self, rng: &mut ChaCha8Rng) -> Result<()> {
        let mut fan_in: usize = self.arch.sources.iter().map(|(_, d)| d).sum();
        let mut layers: Vec<(String, usize)> =
            self.arch.hidden.iter().enumerate().map(|(i, &h)| (format!("hidden.{i}"), h)).collect();
        layers.push(("out".to_string(), self.arch.n_classes));
        for (prefix, out) in layers {
            let b = 1.0 / (fan_in as f64).sqrt();
            let w: Vec<f32> = (0..out * fan_in).map(|_| rng.gen_range(-b..b) as f32).collect();
            let bias: Vec<f32> = (0..out).map(|_| rng.gen_range(-b..b) as f32).collect();
            self.set_param(&format!("{prefix}.weight"), w)?;
            self.set_param(&format!("{prefix}.bias"), bias)?;
            fan_in = out;
        }
        Ok(())
    }

    fn set_param(&self, name: &str, values: Vec<f32>) -> Result<()> {
        let (_, var) = self
            .vars
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("the MLP has no parameter '{name}'"))?;
        let t = Tensor::from_vec(values, var.shape(), &Device::Cpu)
            .with_context(|| format!("wrong number of values for MLP parameter '{name}' of shape {:?}", var.dims()))?;
        var.set(&t)?;
        Ok(())
    }

    /// (predicted class, softmax confidence of that class) for each cell in `idx`. Ties in the
    /// logits go to the lowest class index.
    pub fn predict(&self, sources: &[Source], idx: &[usize]) -> Result<Vec<(usize, f32)>> {
        let n_cells = self.check_predict_sources(sources)?;
        check_idx(idx, n_cells, "prediction cell")?;
        check_finite(sources, idx)?;
        let k = self.arch.n_classes;
        let mut out = Vec::with_capacity(idx.len());
        for chunk in idx.chunks(EVAL_CHUNK) {
            let logits = self.forward(&gather_rows(sources, chunk)?, None)?.flatten_all()?.to_vec1::<f32>()?;
            for row in logits.chunks(k) {
                let (mut best, mut max) = (0usize, row[0]);
                for (c, &v) in row.iter().enumerate().skip(1) {
                    if v > max {
                        best = c;
                        max = v;
                    }
                }
                let z: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
                out.push((best, (1.0 / z) as f32));
            }
        }
        Ok(out)
    }

    pub fn history(&self) -> &TrainingHistory {
        &self.history
    }

    pub fn n_classes(&self) -> usize {
        self.arch.n_classes
    }

    /// Source names and dimensions the model expects, in order.
    pub fn sources(&self) -> &[(String, usize)] {
        &self.arch.sources
    }

    /// The candle VarMap holding the parameters (names as in the module docs).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    // ---------------------------------------------------------------------------------------
    // Test hooks: the PyTorch cross-check drives the real forward/loss/optimiser code with given
    // weights. Not part of the public API.
    // ---------------------------------------------------------------------------------------

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
        let arch = Arch { sources: sources.to_vec(), hidden: hidden.to_vec(), n_classes, fusion };
        let names: Vec<String> = arch.params().into_iter().map(|(n, _)| n).collect();
        if let Some(extra) = weights.keys().find(|k| !names.contains(k)) {
            bail!("unknown MLP parameter '{extra}'; expected {names:?}");
        }
        Self::build(arch, 0.0, |name, _| weights.get(name).cloned().with_context(|| format!("missing MLP parameter '{name}'")))
    }

    /// Current parameter values by name.
    #[doc(hidden)]
    pub fn weights_for_test(&self) -> Result<BTreeMap<String, Vec<f32>>> {
        self.vars.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?))).collect()
    }

    /// Eval-mode logits, row-major `[idx.len() × n_classes]`.
    #[doc(hidden)]
    pub fn logits_for_test(&self, sources: &[Source], idx: &[usize]) -> Result<Vec<f32>> {
        Ok(self.forward(&gather_rows(sources, idx)?, None)?.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The training loss on one batch (eval mode), optionally class-weighted.
    #[doc(hidden)]
    pub fn loss_for_test(&self, sources: &[Source], labels: &[usize], idx: &[usize], class_weights: Option<&[f32]>) -> Result<f32> {
        let logits = self.forward(&gather_rows(sources, idx)?, None)?;
        Ok(Self::batch_loss(&logits, labels, idx, class_weights)?.to_scalar::<f32>()?)
    }

    /// Eval-mode loss over `idx` computed the way validation loss is (chunked, f64 accumulation).
    #[doc(hidden)]
    pub fn eval_loss_for_test(&self, sources: &[Source], labels: &[usize], idx: &[usize], class_weights: Option<&[f32]>) -> Result<f32> {
        Ok(self.evaluate(sources, labels, idx, class_weights)?.0)
    }

    /// Gradients of the batch loss (no dropout) by parameter name.
    #[doc(hidden)]
    pub fn grads_for_test(&self, sources: &[Source], labels: &[usize], idx: &[usize], class_weights: Option<&[f32]>) -> Result<BTreeMap<String, Vec<f32>>> {
        let logits = self.forward(&gather_rows(sources, idx)?, None)?;
        let grads = Self::batch_loss(&logits, labels, idx, class_weights)?.backward()?;
        self.vars
            .iter()
            .map(|(n, v)| {
                let g = grads.get(v.as_tensor()).with_context(|| format!("no gradient for '{n}'"))?;
                Ok((n.clone(), g.flatten_all()?.to_vec1::<f32>()?))
            })
            .collect()
    }

    /// `steps` AdamW steps (fresh optimiser state, no dropout) on one batch, as training does.
    /// Returns the loss before each step.
    #[doc(hidden)]
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
        let mut opt = AdamW::new(vars, ParamsAdamW { lr, weight_decay, ..ParamsAdamW::default() })?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let carve = |seed| carve_validation(&train, &labels, 4, 0.1, &mut ChaCha8Rng::seed_from_u64(seed));
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
        let (fit0, val0) = carve_validation(&train, &labels, 4, 0.0, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!((fit0, val0), (train.clone(), vec![]));
    }

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
        assert_eq!((c.batch_size, c.max_epochs, c.patience, c.val_fraction), (64, 200, 10, 0.1));
        assert!(!c.class_weights);
        assert_eq!(c.fusion, Fusion::Concat);
        assert!(c.validate().is_ok());
        for bad in [
            MlpConfig { val_fraction: 1.0, ..c.clone() },
            MlpConfig { patience: 0, ..c.clone() },
            MlpConfig { max_epochs: 0, ..c.clone() },
            MlpConfig { lr: 0.0, ..c.clone() },
            MlpConfig { hidden: vec![8, 0], ..c.clone() },
            MlpConfig { dropout: f32::NAN, ..c.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn param_names_and_shapes() {
        let arch = Arch {
            sources: vec![("a".into(), 3), ("b".into(), 2)],
            hidden: vec![4],
            n_classes: 2,
            fusion: Fusion::Gated,
        };
        let p = arch.params();
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["norm.0.weight", "norm.0.bias", "norm.1.weight", "norm.1.bias", "gate", "hidden.0.weight", "hidden.0.bias", "out.weight", "out.bias"]
        );
        assert_eq!(p[5].1, vec![4, 5]);
        assert_eq!(p[7].1, vec![2, 4]);
    }
}
