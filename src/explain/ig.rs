//! Integrated gradients (Sundararajan et al. 2017) of one MLP logit, for the two cell
//! representations celltext classifies.
//!
//! For an input `x`, a baseline `b` and a scalar `f`, the attribution of input coordinate `i` is
//! `(x_i − b_i) · ∫₀¹ ∂f/∂x_i (b + α(x − b)) dα`. The integral is the midpoint Riemann sum over
//! `steps` points `α_k = (k + ½)/steps`; every gradient comes from candle's autograd. By the
//! completeness axiom the attributions sum to `f(x) − f(b)`; [`IgResult::gap`] is how far the
//! Riemann sum is from it (the quadrature error), reported with every explanation.
//!
//! - **Cell sentences** ([`SentenceIg`]): `x` is the sequence of input word embeddings of the
//!   sentence; `f` is the MLP logit of the mean- (or CLS-/max-) pooled encoder output, exactly the
//!   path `cells embed-sentences` + `classify --method mlp` computes, run through the candle BERT
//!   forward with autograd ([`CandleBackend::forward_from_word_embeddings`]). The baseline keeps
//!   `[CLS]` and `[SEP]` and replaces every other token's word embedding by the `[PAD]` embedding
//!   (position and token-type embeddings are added to both, as usual). A token's attribution is
//!   the sum of its attributions over the hidden dimensions.
//! - **GenePT-w** ([`genept_w_ig`]): the cell vector is `z = Σ_j p_j g_j` over the cell's top-N
//!   genes, `p_j = w_j / Σ_k w_k` (the normalised expression weights). The attribution is taken
//!   with respect to the normalised weights `p`, baseline `p = 0` (the zero vector celltext gives
//!   a cell with no mapped gene). `z` is linear in `p`, so the path `α·p` maps to `α·z` and the
//!   attribution of gene `j` is exactly `p_j g_j · ∫ ∇f(αz) dα` — the chain rule through the
//!   average needs no approximation; only the integral over the MLP is a Riemann sum, taken on
//!   points packed near the baseline ([`cubic_points`]: the MLP's input LayerNorm makes `f(αz)`
//!   change almost entirely within `α ≲ 0.01`, and stay flat after). (The raw
//!   weights `w` are no useful input: the average is homogeneous of degree 0 in `w`, so `f` is
//!   constant on the path `α·w` and every attribution would be 0.)

use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor, Var};

use crate::classify::mlp::TrainedMlp;
use crate::encoder::backends::candle::CandleBackend;
use crate::encoder::pooling::{self, Pooling};

/// Default number of interpolation steps.
pub const DEFAULT_STEPS: usize = 32;

/// Interpolation points `(k + ½)/steps`, `k = 0..steps` (midpoint rule).
pub fn midpoints(steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|k| ((k as f64 + 0.5) / steps as f64) as f32)
        .collect()
}

/// Points and weights `(α_k, dα_k)` of the midpoint rule in `u` on `α = u³`: `u_k = (k + ½)/steps`,
/// `α_k = u_k³`, `dα_k = 3u_k²/steps`. The same integral over `α ∈ [0, 1]`, with the points packed
/// near the baseline: on the GenePT-w path `f(αz)` changes almost entirely for
/// `α ≲ √(ε / var z)` (≈ 0.01), where the MLP's input LayerNorm (ε = 1e-5) turns on, and is flat
/// after it (LayerNorm is scale-invariant), so equal steps in `α` would miss the change.
pub fn cubic_points(steps: usize) -> Vec<(f32, f32)> {
    midpoints(steps)
        .into_iter()
        .map(|u| {
            let u = u as f64;
            ((u * u * u) as f32, (3.0 * u * u / steps as f64) as f32)
        })
        .collect()
}

/// Attributions of one cell and the two ends of the path.
#[derive(Debug, Clone, PartialEq)]
pub struct IgResult {
    /// One attribution per input unit (token or gene).
    pub attributions: Vec<f32>,
    /// `f(x)`: the explained logit of the cell.
    pub f_input: f32,
    /// `f(baseline)`.
    pub f_baseline: f32,
}

impl IgResult {
    /// `Σ attributions − (f(x) − f(b))`: the Riemann sum's error against the completeness axiom.
    pub fn gap(&self) -> f32 {
        let s: f64 = self.attributions.iter().map(|&a| a as f64).sum();
        (s - (self.f_input as f64 - self.f_baseline as f64)) as f32
    }

    /// [`gap`](Self::gap) relative to `|f(x) − f(b)|`.
    pub fn relative_gap(&self) -> f32 {
        let d = (self.f_input as f64 - self.f_baseline as f64).abs();
        (self.gap().abs() as f64 / d.max(1e-12)) as f32
    }
}

/// Most interpolation steps (`--steps`): far above the defaults (32, 1024), far below a size
/// whose points alone would not fit in memory.
pub const MAX_STEPS: usize = 1 << 20;

pub fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        bail!("--steps must be at least 1 (default {DEFAULT_STEPS})");
    }
    if steps > MAX_STEPS {
        bail!(
            "--steps {steps}: at most {MAX_STEPS} interpolation steps (the defaults are 32 for              sentences and 1024 for genept-w; more add nothing measurable)"
        );
    }
    Ok(())
}

fn check_target(mlp: &TrainedMlp, target: usize) -> Result<()> {
    ensure!(
        target < mlp.n_classes(),
        "class {target} out of range: the MLP has {} classes",
        mlp.n_classes()
    );
    ensure!(
        mlp.sources().len() == 1,
        "explanations need an MLP on one source, this one has {}",
        mlp.sources().len()
    );
    Ok(())
}

/// Logit `target` of each row of `x` [rows × dim].
fn target_logits(mlp: &TrainedMlp, x: &Tensor, target: usize) -> Result<Tensor> {
    let x = x.to_device(&Device::Cpu)?;
    Ok(mlp.logits(&[x])?.narrow(1, target, 1)?.squeeze(1)?)
}

/// Integrated gradients of the MLP logit `target` with respect to the normalised top-N weights of
/// one GenePT-w cell (see the module docs). `genes` holds the cell's gene vectors row-major
/// [`weights.len()` × dim], `weights` the raw weights `w_j` (> 0); attributions are per gene.
pub fn genept_w_ig(
    mlp: &TrainedMlp,
    genes: &[f32],
    weights: &[f32],
    target: usize,
    steps: usize,
) -> Result<IgResult> {
    check_steps(steps)?;
    check_target(mlp, target)?;
    let dim = mlp.sources()[0].1;
    let n = weights.len();
    ensure!(
        genes.len() == n * dim,
        "{} gene values for {n} genes of dimension {dim}",
        genes.len()
    );
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    ensure!(
        n > 0 && total > 0.0,
        "a cell without mapped expressed genes has nothing to attribute"
    );
    let p: Vec<f64> = weights.iter().map(|&w| w as f64 / total).collect();
    let mut z = vec![0f64; dim];
    for (j, pj) in p.iter().enumerate() {
        for (a, g) in z.iter_mut().zip(&genes[j * dim..(j + 1) * dim]) {
            *a += pj * *g as f64;
        }
    }
    let z: Vec<f32> = z.iter().map(|&v| v as f32).collect();
    let zt = Tensor::from_vec(z.clone(), (1, dim), &Device::Cpu)?;
    let (alphas, w): (Vec<f32>, Vec<f32>) = cubic_points(steps).into_iter().unzip();
    let alphas = Tensor::from_vec(alphas, (steps, 1), &Device::Cpu)?;
    let path = Var::from_tensor(&alphas.broadcast_mul(&zt)?)?;
    let s = target_logits(mlp, path.as_tensor(), target)?.sum_all()?;
    let grads = s.backward()?;
    let w = Tensor::from_vec(w, (steps, 1), &Device::Cpu)?;
    let g = grads
        .get(path.as_tensor())
        .map(|g| g.broadcast_mul(&w)?.sum(0))
        .transpose()?
        .unwrap_or(Tensor::zeros(dim, DType::F32, &Device::Cpu)?)
        .to_vec1::<f32>()?;
    let attributions = (0..n)
        .map(|j| {
            let dot: f64 = genes[j * dim..(j + 1) * dim]
                .iter()
                .zip(&g)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            (p[j] * dot) as f32
        })
        .collect();
    let ends = Tensor::from_vec([z, vec![0f32; dim]].concat(), (2, dim), &Device::Cpu)?;
    let f = target_logits(mlp, &ends, target)?.to_vec1::<f32>()?;
    Ok(IgResult {
        attributions,
        f_input: f[0],
        f_baseline: f[1],
    })
}

/// Integrated gradients through the encoder for the MLP on cell-sentence embeddings.
pub struct SentenceIg<'a> {
    pub bert: &'a CandleBackend,
    pub pooling: Pooling,
    pub normalize: bool,
    pub mlp: &'a TrainedMlp,
    /// Interpolation points per forward/backward pass (memory: activations of this many copies
    /// of the sentence are kept for the backward pass).
    pub chunk: usize,
}

impl SentenceIg<'_> {
    /// Logit `target` of each sentence whose word embeddings are `word` [n, seq, hidden].
    fn f(&self, word: &Tensor, target: usize) -> Result<Tensor> {
        let (n, seq, _) = word.dims3()?;
        let hidden = self.bert.forward_from_word_embeddings(word)?;
        let mask = Tensor::ones((n, seq), DType::U8, word.device())?;
        let mut v = pooling::pool(&hidden, &mask, self.pooling)?;
        if self.normalize {
            let norm = v.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
            v = v.broadcast_div(&norm)?;
        }
        target_logits(self.mlp, &v, target)
    }

    /// The logit `target` of each sentence whose word embeddings are `word` [n, seq, hidden], and
    /// its gradient with respect to `word` (same shape).
    pub fn gradient(&self, word: &Tensor, target: usize) -> Result<(Vec<f32>, Tensor)> {
        let x = Var::from_tensor(word)?;
        let f = self.f(x.as_tensor(), target)?;
        let grads = f.sum_all()?.backward()?;
        let g = match grads.get(x.as_tensor()) {
            Some(g) => g.clone(),
            None => x.as_tensor().zeros_like()?,
        };
        Ok((f.to_vec1::<f32>()?, g))
    }

    /// The baseline ids of `ids`: `[CLS]` (first) and `[SEP]` (last) kept, the rest `[PAD]`.
    pub fn baseline_ids(&self, ids: &[u32]) -> Vec<u32> {
        let n = ids.len();
        ids.iter()
            .enumerate()
            .map(|(i, &t)| {
                if i == 0 || i + 1 == n {
                    t
                } else {
                    self.bert.pad_id()
                }
            })
            .collect()
    }

    /// Per-token attributions of the MLP logit `target` for the token ids `ids` of one sentence
    /// (with its special tokens), against [`baseline_ids`](Self::baseline_ids).
    /// `on_chunk(k)` is called after each forward/backward pass over `k` interpolation points.
    pub fn attribute(
        &self,
        ids: &[u32],
        target: usize,
        steps: usize,
        on_chunk: &dyn Fn(usize),
    ) -> Result<IgResult> {
        check_steps(steps)?;
        check_target(self.mlp, target)?;
        ensure!(self.chunk > 0, "interpolation chunk must be at least 1");
        ensure!(ids.len() >= 2, "a sentence needs at least [CLS] and [SEP]");
        let dev = &self.bert.device;
        let seq = ids.len();
        let x = self.bert.word_embeddings(ids)?;
        let b = self.bert.word_embeddings(&self.baseline_ids(ids))?;
        let d = (&x - &b)?;
        let h = x.dim(1)?;
        let mut gsum = Tensor::zeros((seq, h), DType::F32, dev)?;
        for alphas in midpoints(steps).chunks(self.chunk) {
            let c = alphas.len();
            let a = Tensor::from_vec(alphas.to_vec(), (c, 1, 1), dev)?;
            let path = a
                .broadcast_mul(&d.unsqueeze(0)?)?
                .broadcast_add(&b.unsqueeze(0)?)?;
            let (_, g) = self.gradient(&path, target)?;
            gsum = (gsum + g.sum(0)?)?;
            on_chunk(c);
        }
        let attributions = ((gsum / steps as f64)? * &d)?
            .sum(1)?
            .to_device(&Device::Cpu)?
            .to_vec1::<f32>()?;
        let ends = Tensor::stack(&[&x, &b], 0)?;
        let f = self.f(&ends, target)?.to_vec1::<f32>()?;
        Ok(IgResult {
            attributions,
            f_input: f[0],
            f_baseline: f[1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoints_are_centred_in_equal_cells() {
        assert_eq!(midpoints(1), vec![0.5]);
        assert_eq!(midpoints(4), vec![0.125, 0.375, 0.625, 0.875]);
        let m = midpoints(32);
        let mean: f64 = m.iter().map(|&a| a as f64).sum::<f64>() / 32.0;
        assert!((mean - 0.5).abs() < 1e-7);
    }

    #[test]
    fn gap_is_sum_minus_difference() {
        let r = IgResult {
            attributions: vec![1.0, 2.0, -0.5],
            f_input: 3.0,
            f_baseline: 0.4,
        };
        assert!((r.gap() - (2.5 - 2.6)).abs() < 1e-6);
        assert!((r.relative_gap() - 0.1 / 2.6).abs() < 1e-6);
    }
}
