//! The network itself: its shape ([`Arch`]), parameters, forward pass, loss, and prediction.
//! Training lives in `train.rs`; the hooks the PyTorch cross-check drives are in `test_hooks.rs`.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var, D};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Fusion, Source, SourceGate, TrainingHistory, LAYER_NORM_EPS};

/// Rows per forward pass at evaluation/prediction time (fixed, so results never depend on it).
const EVAL_CHUNK: usize = 1024;

/// Shape of the network (everything but the parameter values).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Arch {
    pub(super) sources: Vec<(String, usize)>,
    pub(super) hidden: Vec<usize>,
    pub(super) n_classes: usize,
    pub(super) fusion: Fusion,
}

impl Arch {
    /// Parameter names and shapes, in initialisation order.
    pub(super) fn params(&self) -> Vec<(String, Vec<usize>)> {
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
    pub(super) arch: Arch,
    varmap: VarMap,
    /// The VarMap's variables in a fixed order (HashMap iteration order is not).
    pub(super) vars: Vec<(String, Var)>,
    dropout: f32,
    pub(super) history: TrainingHistory,
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
pub(super) fn check_sources(sources: &[Source]) -> Result<usize> {
    if sources.is_empty() {
        bail!("the MLP needs at least one input source (--embedding)");
    }
    let mut n_cells = None;
    for (i, s) in sources.iter().enumerate() {
        if s.dim == 0 {
            bail!(
                "source '{}' has dimension 0; each source needs at least one column",
                s.name
            );
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
            bail!(
                "source name '{}' is given twice; give each --embedding once",
                s.name
            );
        }
    }
    Ok(n_cells.unwrap_or(0))
}

/// Errors if any requested row of any source holds NaN or ±inf.
pub(super) fn check_finite(sources: &[Source], idx: &[usize]) -> Result<()> {
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

pub(super) fn check_idx(idx: &[usize], n_cells: usize, what: &str) -> Result<()> {
    if let Some(&i) = idx.iter().find(|&&i| i >= n_cells) {
        bail!("{what} index {i} is out of range: the sources have {n_cells} cells");
    }
    Ok(())
}

/// Gathers rows `idx` of each source into one `[len × dim]` tensor per source.
pub(super) fn gather_rows(sources: &[Source], idx: &[usize]) -> Result<Vec<Tensor>> {
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
    pub(super) fn build(
        arch: Arch,
        dropout: f32,
        init: impl Fn(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let varmap = VarMap::new();
        let mut vars = Vec::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| anyhow::anyhow!("MLP VarMap lock poisoned"))?;
            for (name, shape) in arch.params() {
                let values = init(&name, &shape)?;
                let numel: usize = shape.iter().product();
                if values.len() != numel {
                    bail!(
                        "parameter '{name}' has {} values but shape {shape:?} needs {numel}",
                        values.len()
                    );
                }
                let var =
                    Var::from_tensor(&Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?)?;
                data.insert(name.clone(), var.clone());
                vars.push((name, var));
            }
        }
        Ok(Self {
            arch,
            varmap,
            vars,
            dropout,
            history: TrainingHistory::default(),
        })
    }

    fn var(&self, name: &str) -> &Tensor {
        // Names come from `Arch::params`, so the lookup cannot miss.
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .expect("known parameter name")
    }

    /// Forward pass to logits. `dropout_rng = Some(..)` is train mode (dropout on).
    pub(super) fn forward(
        &self,
        xs: &[Tensor],
        mut dropout_rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
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
        let mut h = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        };
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
                    let mask: Vec<f32> = (0..b * w)
                        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
                        .collect();
                    h = h.mul(&Tensor::from_vec(mask, (b, w), &Device::Cpu)?)?;
                }
            }
        }
        Ok(h.matmul(&self.var("out.weight").t()?)?
            .broadcast_add(self.var("out.bias"))?)
    }

    /// Scalar loss: mean nll, or weighted mean `Σ w_y nll / Σ w_y`.
    pub(super) fn batch_loss(
        logits: &Tensor,
        labels: &[usize],
        idx: &[usize],
        weights: Option<&[f32]>,
    ) -> Result<Tensor> {
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
    pub(super) fn evaluate(
        &self,
        sources: &[Source],
        labels: &[usize],
        idx: &[usize],
        weights: Option<&[f32]>,
    ) -> Result<(f32, f32)> {
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
            correct += chunk
                .iter()
                .zip(&pred)
                .filter(|(&i, &p)| labels[i] == p as usize)
                .count();
        }
        Ok(((num / den) as f32, correct as f32 / idx.len().max(1) as f32))
    }

    pub(super) fn gate_report(&self) -> Result<Vec<SourceGate>> {
        if self.arch.fusion != Fusion::Gated {
            return Ok(Vec::new());
        }
        let g = self.var("gate").to_vec1::<f32>()?;
        Ok(self
            .arch
            .sources
            .iter()
            .zip(g)
            .map(|((name, _), logit)| SourceGate {
                source: name.clone(),
                logit,
                gate: 1.0 / (1.0 + (-logit).exp()),
            })
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

    /// Draws every Linear weight and bias from `U(−1/√fan_in, 1/√fan_in)`, layer by layer, weight
    /// then bias, row-major (torch's `nn.Linear` default).
    pub(super) fn init_linear(&self, rng: &mut ChaCha8Rng) -> Result<()> {
        let mut fan_in: usize = self.arch.sources.iter().map(|(_, d)| d).sum();
        let mut layers: Vec<(String, usize)> = self
            .arch
            .hidden
            .iter()
            .enumerate()
            .map(|(i, &h)| (format!("hidden.{i}"), h))
            .collect();
        layers.push(("out".to_string(), self.arch.n_classes));
        for (prefix, out) in layers {
            let b = 1.0 / (fan_in as f64).sqrt();
            let w: Vec<f32> = (0..out * fan_in)
                .map(|_| rng.gen_range(-b..b) as f32)
                .collect();
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
        let t = Tensor::from_vec(values, var.shape(), &Device::Cpu).with_context(|| {
            format!(
                "wrong number of values for MLP parameter '{name}' of shape {:?}",
                var.dims()
            )
        })?;
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
            let logits = self
                .forward(&gather_rows(sources, chunk)?, None)?
                .flatten_all()?
                .to_vec1::<f32>()?;
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

    /// Eval-mode logits `[b × n_classes]` of one `[b × dim_s]` CPU tensor per source (no
    /// dropout). Differentiable with respect to the inputs: explanations backpropagate through it.
    pub fn logits(&self, xs: &[Tensor]) -> Result<Tensor> {
        if xs.len() != self.arch.sources.len() {
            bail!(
                "the MLP has {} sources but was given {} input tensors",
                self.arch.sources.len(),
                xs.len()
            );
        }
        for (x, (name, d)) in xs.iter().zip(&self.arch.sources) {
            if x.dims().len() != 2 || x.dim(1)? != *d {
                bail!("source '{name}' needs [cells × {d}], got {:?}", x.dims());
            }
        }
        self.forward(xs, None)
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
            [
                "norm.0.weight",
                "norm.0.bias",
                "norm.1.weight",
                "norm.1.bias",
                "gate",
                "hidden.0.weight",
                "hidden.0.bias",
                "out.weight",
                "out.bias"
            ]
        );
        assert_eq!(p[5].1, vec![4, 5]);
        assert_eq!(p[7].1, vec![2, 4]);
    }
}
