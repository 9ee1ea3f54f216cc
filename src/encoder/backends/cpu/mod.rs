//! The CPU backend: f32 BERT forward on padding-free ("packed") sequences on plain slices.
//!
//! All real tokens of a batch sit back to back in one [T, hidden] matrix; projections are
//! `sgemm::linear` calls with bias, residual and GELU fused in, attention runs per sequence
//! (`packed::packed_attention`), LayerNorm is one parallel pass. Buffers live in a workspace
//! reused across layers and batches: fresh multi-MB allocations per op cost ~5 % in page faults.

pub mod attention;
pub mod features;
pub mod kernels;
pub mod qgemm;
pub mod sgemm;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

use super::layout;
use super::{Backend, PackedBatch};
use crate::encoder::config::{Activation, BertConfig};
use crate::encoder::pooling::{pool_packed, Pooling};
use crate::encoder::weights::WeightFiles;
use qgemm::QuantizedWeights;
use sgemm::{linear, Act, PackedWeights};

/// A linear layer: [in, out] weights (packed f32, or int8 for `--dtype int8`) and bias.
pub struct Dense {
    pub w: Weights,
    pub b: Vec<f32>,
}

pub enum Weights {
    F32(PackedWeights),
    Int8(QuantizedWeights),
}

impl Dense {
    fn n(&self) -> usize {
        match &self.w {
            Weights::F32(w) => w.n(),
            Weights::Int8(w) => w.n(),
        }
    }

    /// out [m, n] = act(x [m, in] · W + b (+ residual)).
    fn forward(&self, x: &[f32], m: usize, residual: Option<&[f32]>, act: Act, out: &mut [f32]) {
        match &self.w {
            Weights::F32(w) => linear(x, m, w, &self.b, residual, act, out),
            Weights::Int8(w) => qgemm::linear(x, m, w, &self.b, residual, act, out),
        }
    }
}

pub struct Norm {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub eps: f32,
}

pub struct CpuLayer {
    pub qkv: Dense,
    pub attn_out: Dense,
    pub ln_attn: Norm,
    pub inter: Dense,
    pub out: Dense,
    pub ln_out: Norm,
}

#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    tmp: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
}

pub struct CpuBert {
    /// [vocab, hidden], [max_pos, hidden], [hidden] (token type 0)
    pub word: Vec<f32>,
    pub position: Vec<f32>,
    pub token_type0: Vec<f32>,
    pub ln_emb: Norm,
    pub layers: Vec<CpuLayer>,
    pub act: Activation,
    pub hidden: usize,
    pub heads: usize,
    pub head_dim: usize,
    workspace: Mutex<Workspace>,
}

/// `v` as an n-element buffer; capacity is kept, so after the first batch this allocates nothing.
fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

impl CpuBert {
    /// Load and pack layer by layer: each layer's tensors are dropped as soon as they are packed,
    /// so a large checkpoint is never resident twice (Ember-sized: 1.3 GiB → weights + workspace).
    /// `int8`: quantize every encoder-layer linear weight (dynamic quantization, see `qgemm`);
    /// embeddings, LayerNorm, attention and pooling stay f32.
    pub fn load(wf: &WeightFiles, config: &BertConfig, int8: bool) -> Result<Self> {
        let (dev, dt) = (&Device::Cpu, DType::F32);
        let emb = layout::load_embeddings(wf, config, dev, dt)?;
        let layers = (0..config.num_hidden_layers)
            .map(|l| pack_layer(layout::load_layer(wf, config, l, dev, dt)?, int8))
            .collect::<Result<Vec<_>>>()?;
        let embeddings = [
            flat_f32(&emb.word)?,
            flat_f32(&emb.position)?,
            flat_f32(&emb.token_type0)?,
        ];
        Self::new(config, embeddings, to_norm(emb.ln)?, layers)
    }

    fn new(
        config: &BertConfig,
        embeddings: [Vec<f32>; 3],
        ln_emb: Norm,
        layers: Vec<CpuLayer>,
    ) -> Result<Self> {
        let [word, position, token_type0] = embeddings;
        let h = config.hidden_size;
        Ok(Self {
            word,
            position,
            token_type0,
            ln_emb,
            layers,
            act: config.activation()?,
            hidden: h,
            heads: config.num_attention_heads,
            head_dim: config.head_dim(),
            workspace: Mutex::new(Workspace::default()),
        })
    }

    /// Token states [T, hidden] (row-major) for `seqs` packed back to back, T = Σ lengths.
    /// Ids and lengths are checked once, by the encoder core (`Encoder::check_batch`).
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let t: usize = lens.iter().sum();
        let mut guard = self.workspace.lock().unwrap_or_else(|e| e.into_inner());
        let ws = &mut *guard;
        let mut x = std::mem::take(&mut ws.x);
        let mut tmp = std::mem::take(&mut ws.tmp);

        // embeddings: word + position + token type 0, then LayerNorm
        {
            let xs = sized(&mut x, t * h);
            let mut rows: Vec<(&[u32], &mut [f32])> = Vec::with_capacity(seqs.len());
            let mut rest = xs;
            for s in seqs {
                let (a, b) = rest.split_at_mut(s.len() * h);
                rows.push((s, a));
                rest = b;
            }
            rows.into_par_iter().for_each(|(s, block)| {
                for (p, (&id, row)) in s.iter().zip(block.chunks_exact_mut(h)).enumerate() {
                    let wv = &self.word[id as usize * h..][..h];
                    let pv = &self.position[p * h..][..h];
                    for (((o, w), q), tt) in row.iter_mut().zip(wv).zip(pv).zip(&self.token_type0) {
                        *o = w + q + tt;
                    }
                    layer_norm_row(row, &self.ln_emb);
                }
            });
        }

        for layer in &self.layers {
            let qkv = sized(&mut ws.qkv, t * 3 * h);
            layer.qkv.forward(&x, t, None, Act::None, qkv);
            let ctx = sized(&mut ws.ctx, t * h);
            attention::packed_attention(qkv, &lens, self.heads, self.head_dim, ctx);
            let y = sized(&mut tmp, t * h);
            layer.attn_out.forward(ctx, t, Some(&x), Act::None, y);
            layer_norm(y, h, &layer.ln_attn);
            std::mem::swap(&mut x, &mut tmp);

            let i = layer.inter.n();
            let inter = sized(&mut ws.inter, t * i);
            let fused = if self.act == Activation::Gelu {
                Act::GeluErf
            } else {
                Act::None
            };
            layer.inter.forward(&x, t, None, fused, inter);
            if fused == Act::None {
                activate(inter, self.act);
            }
            let y = sized(&mut tmp, t * h);
            layer.out.forward(inter, t, Some(&x), Act::None, y);
            layer_norm(y, h, &layer.ln_out);
            std::mem::swap(&mut x, &mut tmp);
        }
        let out = x[..t * h].to_vec();
        ws.x = x;
        ws.tmp = tmp;
        Ok(out)
    }
}

impl Backend for CpuBert {
    fn embed(&self, batch: &PackedBatch, pooling: Pooling) -> Result<Vec<f32>> {
        let seqs: Vec<&[u32]> = (0..batch.len()).map(|i| batch.seq(i)).collect();
        let states = self.forward(&seqs)?;
        Ok(pool_packed(&states, self.hidden, &batch.lens(), pooling))
    }

    fn is_packed(&self) -> bool {
        true
    }
}

fn flat_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn to_norm(n: layout::LayerNorm) -> Result<Norm> {
    Ok(Norm {
        w: flat_f32(&n.w)?,
        b: flat_f32(&n.b)?,
        eps: n.eps,
    })
}

/// Re-lay one loaded layer for this backend: weights packed for `sgemm`, tensors dropped.
fn pack_layer(l: layout::Layer, int8: bool) -> Result<CpuLayer> {
    let dense = |l: layout::Linear| -> Result<Dense> {
        let (k, n) = l.w.dims2()?;
        let w = flat_f32(&l.w)?;
        Ok(Dense {
            w: if int8 {
                Weights::Int8(QuantizedWeights::quantize(&w, k, n))
            } else {
                Weights::F32(PackedWeights::pack(&w, k, n))
            },
            b: flat_f32(&l.b)?,
        })
    };
    Ok(CpuLayer {
        qkv: dense(l.qkv)?,
        attn_out: dense(l.attn_out)?,
        ln_attn: to_norm(l.ln_attn)?,
        inter: dense(l.inter)?,
        out: dense(l.out)?,
        ln_out: to_norm(l.ln_out)?,
    })
}

fn activate(v: &mut [f32], act: Activation) {
    v.par_chunks_mut(1 << 14).for_each(|c| {
        for x in c.iter_mut() {
            *x = match act {
                Activation::Gelu => sgemm::gelu_scalar(*x),
                Activation::GeluTanh => {
                    let u = 0.797_884_6 * (*x + 0.044_715 * *x * *x * *x);
                    0.5 * *x * (1.0 + u.tanh())
                }
                Activation::Relu => x.max(0.0),
                Activation::Silu => *x / (1.0 + (-*x).exp()),
            }
        }
    });
}

/// LayerNorm over each `h`-wide row of `v`, in place, rows in parallel.
pub fn layer_norm(v: &mut [f32], h: usize, n: &Norm) {
    let rows_per_task = (16384 / h).max(1);
    v.par_chunks_mut(rows_per_task * h).for_each(|c| {
        for row in c.chunks_exact_mut(h) {
            layer_norm_row(row, n);
        }
    });
}

/// Two-pass mean/variance with 8 partial sums (lets the compiler vectorize; a serial f32 sum
/// would not, and its rounding is no better).
#[inline]
fn layer_norm_row(row: &mut [f32], n: &Norm) {
    let h = row.len() as f32;
    let sum8 = |f: &dyn Fn(f32) -> f32| -> f32 {
        let mut acc = [0f32; 8];
        let mut it = row.chunks_exact(8);
        for c in &mut it {
            for (a, v) in acc.iter_mut().zip(c) {
                *a += f(*v);
            }
        }
        let tail: f32 = it.remainder().iter().map(|v| f(*v)).sum();
        acc.iter().sum::<f32>() + tail
    };
    let mean = sum8(&|v| v) / h;
    let var = sum8(&|v| (v - mean) * (v - mean)) / h;
    let inv = 1.0 / (var + n.eps).sqrt();
    for ((x, w), b) in row.iter_mut().zip(&n.w).zip(&n.b) {
        *x = (*x - mean) * inv * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn layer_norm_matches_f64() {
        let h = 37;
        let v: Vec<f32> = (0..h * 3)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.37 + 100.0)
            .collect();
        let n = Norm {
            w: (0..h).map(|i| 0.5 + i as f32 * 0.01).collect(),
            b: (0..h).map(|i| i as f32 * -0.02).collect(),
            eps: 1e-12,
        };
        let mut got = v.clone();
        layer_norm(&mut got, h, &n);
        for r in 0..3 {
            let row: Vec<f64> = v[r * h..(r + 1) * h].iter().map(|&x| x as f64).collect();
            let mean = row.iter().sum::<f64>() / h as f64;
            let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / h as f64;
            for j in 0..h {
                let want = (row[j] - mean) / (var + 1e-12).sqrt() * n.w[j] as f64 + n.b[j] as f64;
                assert!(
                    (got[r * h + j] as f64 - want).abs() < 1e-4,
                    "{} vs {want}",
                    got[r * h + j]
                );
            }
        }
    }
}
