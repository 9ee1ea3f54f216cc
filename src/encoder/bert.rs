//! BERT encoder forward pass (plain structs, `load` + `forward`, in the style of
//! candle-transformers' bert.rs), with a fused QKV projection and an f32-built attention mask so
//! f16/bf16 never see an overflowing bias.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::config::{Activation, BertConfig};
use super::cpu_bert::{CpuBert, CpuLayer, Dense, Norm};
use super::sgemm::PackedWeights;
use super::weights::WeightFiles;

struct Linear {
    /// [in, out], contiguous: `x @ w` needs no transpose per call.
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn load(wf: &WeightFiles, prefix: &str, inp: usize, out: usize, dev: &Device, dt: DType) -> Result<Self> {
        let w = wf.get(&format!("{prefix}.weight"), &[out, inp], dev, dt)?;
        let b = wf.get(&format!("{prefix}.bias"), &[out], dev, dt)?;
        Ok(Self { w: w.t()?.contiguous()?, b })
    }
    fn fuse(parts: &[Linear]) -> Result<Self> {
        let ws: Vec<&Tensor> = parts.iter().map(|p| &p.w).collect();
        let bs: Vec<&Tensor> = parts.iter().map(|p| &p.b).collect();
        Ok(Self { w: Tensor::cat(&ws, 1)?.contiguous()?, b: Tensor::cat(&bs, 0)? })
    }
    /// x: [n, in] → [n, out]
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(wf: &WeightFiles, prefix: &str, h: usize, eps: f64, dev: &Device, dt: DType) -> Result<Self> {
        Ok(Self {
            w: wf.get(&format!("{prefix}.weight"), &[h], dev, dt)?,
            b: wf.get(&format!("{prefix}.bias"), &[h], dev, dt)?,
            eps: eps as f32,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    ln_attn: LayerNorm,
    inter: Linear,
    out: Linear,
    ln_out: LayerNorm,
}

/// Tensor (candle) model for GPU / half precision, with padded batches.
struct TensorBert {
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    ln_emb: LayerNorm,
    layers: Vec<Layer>,
}

enum Imp {
    Tensors(TensorBert),
    /// CPU f32: packed weights, padding-free forward (`cpu_bert`).
    Cpu(CpuBert),
}

pub struct BertModel {
    imp: Imp,
    act: Activation,
    pub config: BertConfig,
    pub device: Device,
    pub dtype: DType,
}

impl BertModel {
    pub fn load(wf: &WeightFiles, config: &BertConfig, device: &Device, dtype: DType) -> Result<Self> {
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let (dev, dt) = (device, dtype);
        let word = wf.get("embeddings.word_embeddings.weight", &[config.vocab_size, h], dev, dt)?;
        let position =
            wf.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h], dev, dt)?;
        let token_type0 = if wf.has("embeddings.token_type_embeddings.weight") {
            wf.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h], dev, dt)?
                .narrow(0, 0, 1)?
        } else {
            Tensor::zeros((1, h), dt, dev)?
        };
        let ln_emb = LayerNorm::load(wf, "embeddings.LayerNorm", h, eps, dev, dt)?;
        // CPU f32: each layer is packed as soon as it is read and its tensors dropped, so a large
        // checkpoint is never resident twice (Ember-sized: 2.8 GiB → weights + workspace)
        let cpu = device.is_cpu() && dtype == DType::F32;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        let mut cpu_layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = Linear::load(wf, &format!("{p}.attention.self.query"), h, h, dev, dt)?;
            let k = Linear::load(wf, &format!("{p}.attention.self.key"), h, h, dev, dt)?;
            let v = Linear::load(wf, &format!("{p}.attention.self.value"), h, h, dev, dt)?;
            let layer = Layer {
                qkv: Linear::fuse(&[q, k, v])?,
                attn_out: Linear::load(wf, &format!("{p}.attention.output.dense"), h, h, dev, dt)?,
                ln_attn: LayerNorm::load(wf, &format!("{p}.attention.output.LayerNorm"), h, eps, dev, dt)?,
                inter: Linear::load(wf, &format!("{p}.intermediate.dense"), h, i, dev, dt)?,
                out: Linear::load(wf, &format!("{p}.output.dense"), i, h, dev, dt)?,
                ln_out: LayerNorm::load(wf, &format!("{p}.output.LayerNorm"), h, eps, dev, dt)?,
            };
            if cpu {
                cpu_layers.push(to_cpu_layer(layer)?);
            } else {
                layers.push(layer);
            }
        }
        let imp = if cpu {
            Imp::Cpu(CpuBert::new(config, [flat_f32(&word)?, flat_f32(&position)?, flat_f32(&token_type0)?], to_norm(ln_emb)?, cpu_layers)?)
        } else {
            Imp::Tensors(TensorBert { word, position, token_type0, ln_emb, layers })
        };
        Ok(Self {
            imp,
            act: config.activation()?,
            config: config.clone(),
            device: device.clone(),
            dtype,
        })
    }

    /// Token states [batch, seq, hidden] for right-padded `ids` [batch][seq] with `lens[b]` real
    /// tokens each. Padding tokens never influence real ones (mask bias −inf on their keys).
    pub fn forward(&self, ids: &[u32], batch: usize, seq: usize, lens: &[usize]) -> Result<Tensor> {
        let h = self.config.hidden_size;
        let nh = self.config.num_attention_heads;
        let hd = self.config.head_dim();
        anyhow::ensure!(ids.len() == batch * seq && lens.len() == batch, "internal: batch shape mismatch");
        let Imp::Tensors(m) = &self.imp else { anyhow::bail!("internal: padded forward on the packed CPU model") };
        anyhow::ensure!(
            seq <= self.config.max_position_embeddings,
            "sequence of {seq} tokens exceeds max_position_embeddings {}",
            self.config.max_position_embeddings
        );
        let ids_t = Tensor::from_slice(ids, (batch * seq,), &self.device)?;
        let emb = m.word.index_select(&ids_t, 0)?.reshape((batch, seq, h))?;
        let pos = m.position.narrow(0, 0, seq)?;
        let emb = emb.broadcast_add(&pos)?.broadcast_add(&m.token_type0)?;
        let mut x = m.ln_emb.forward(&emb)?.reshape((batch * seq, h))?;

        // Mask bias built in f32 (0 for tokens, −inf for padding) and only then cast: building
        // it as (1−mask)·f32::MIN in the model dtype overflows to NaN in f16/bf16.
        let mut bias = vec![0f32; batch * seq];
        for (b, &len) in lens.iter().enumerate() {
            for v in &mut bias[b * seq + len..(b + 1) * seq] {
                *v = f32::NEG_INFINITY;
            }
        }
        let bias = Tensor::from_vec(bias, (batch, 1, 1, seq), &self.device)?.to_dtype(self.dtype)?;
        let scale = 1.0 / (hd as f64).sqrt();

        for layer in &m.layers {
            let qkv = layer.qkv.forward(&x)?.reshape((batch, seq, 3, nh, hd))?;
            let q = (qkv.narrow(2, 0, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()? * scale)?;
            let k = qkv.narrow(2, 1, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
            let v = qkv.narrow(2, 2, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
            let scores = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, h))?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = layer.ln_attn.forward(&(attn + &x)?)?;
            let inter = self.activate(&layer.inter.forward(&x)?)?;
            let out = layer.out.forward(&inter)?;
            x = layer.ln_out.forward(&(out + &x)?)?;
        }
        Ok(x.reshape((batch, seq, h))?)
    }

    /// Whether the padding-free path applies (CPU, f32).
    pub fn can_pack(&self) -> bool {
        matches!(self.imp, Imp::Cpu(_))
    }

    /// Token states [T, hidden] (row-major) for the sequences `seqs` packed back to back
    /// (T = Σ lengths), with padding-free attention (see `cpu_bert`). CPU f32 only.
    pub fn forward_packed(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        match &self.imp {
            Imp::Cpu(m) => m.forward(seqs),
            Imp::Tensors(_) => anyhow::bail!("internal: packed forward needs the CPU f32 model"),
        }
    }

    fn activate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.act {
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}

fn flat_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn to_norm(n: LayerNorm) -> Result<Norm> {
    Ok(Norm { w: flat_f32(&n.w)?, b: flat_f32(&n.b)?, eps: n.eps })
}

/// Re-lay one loaded layer for the CPU path: weights packed for `sgemm`, tensors dropped.
fn to_cpu_layer(l: Layer) -> Result<CpuLayer> {
    let dense = |l: Linear| -> Result<Dense> {
        let (k, n) = l.w.dims2()?;
        Ok(Dense { w: PackedWeights::pack(&flat_f32(&l.w)?, k, n), b: flat_f32(&l.b)? })
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

/// Right-pad token id lists into one [batch, seq] buffer with the model's pad id.
pub fn pad_batch(seqs: &[&[u32]], pad_id: u32) -> (Vec<u32>, usize, Vec<usize>) {
    let seq = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; seqs.len() * seq];
    let mut lens = Vec::with_capacity(seqs.len());
    for (b, s) in seqs.iter().enumerate() {
        ids[b * seq..b * seq + s.len()].copy_from_slice(s);
        lens.push(s.len());
    }
    (ids, seq, lens)
}

/// Mask [batch, seq] of 1 (token) / 0 (padding).
pub fn mask_tensor(lens: &[usize], seq: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut m = vec![0u8; lens.len() * seq];
    for (b, &l) in lens.iter().enumerate() {
        for v in &mut m[b * seq..b * seq + l] {
            *v = 1;
        }
    }
    Tensor::from_vec(m, (lens.len(), seq), device)
}

