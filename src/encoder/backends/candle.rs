//! The candle backend: BERT forward on candle tensors (plain structs, `load` + `forward`, in the
//! style of candle-transformers' bert.rs) for any candle device and dtype.
//!
//! A batch is padded to its longest sequence: only the padded ids and the lengths go in, the
//! attention mask is built on the device in f32 (0 for tokens, −inf for
//! padding) and only then cast, so f16/bf16 never see an overflowing bias, and pooling runs on
//! the device in f32, so only [batch, hidden] f32 comes back.

use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor};

use super::layout::{self, Embeddings, Layer};
use super::{Backend, PackedBatch};
use crate::encoder::config::{Activation, BertConfig};
use crate::encoder::pooling::{self, Pooling};
use crate::encoder::weights::WeightFiles;

pub struct CandleBackend {
    emb: Embeddings,
    layers: Vec<Layer>,
    act: Activation,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    pad_id: u32,
    /// candle's CPU softmax sums f16/bf16 rows in their own precision (bf16 at 512 keys drifts
    /// to cosine 0.97 of PyTorch); its CUDA kernel sums in f32, as PyTorch does.
    softmax_in_f32: bool,
    pub device: Device,
    pub dtype: DType,
}

impl CandleBackend {
    pub fn load(
        wf: &WeightFiles,
        config: &BertConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let emb = layout::load_embeddings(wf, config, device, dtype)?;
        let layers = (0..config.num_hidden_layers)
            .map(|l| layout::load_layer(wf, config, l, device, dtype))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            emb,
            layers,
            act: config.activation()?,
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            head_dim: config.head_dim(),
            pad_id: config.pad_token_id as u32,
            softmax_in_f32: device.is_cpu() && dtype != DType::F32,
            device: device.clone(),
            dtype,
        })
    }

    /// Right-padded ids [batch·seq] and the mask [batch, seq] (u8: 1 = token); the mask is built
    /// on the device from the lengths.
    fn pad(&self, batch: &PackedBatch) -> Result<(Tensor, Tensor, usize)> {
        let (n, seq) = (batch.len(), batch.max_len());
        let dev = &self.device;
        let mut ids = vec![self.pad_id; n * seq];
        for i in 0..n {
            let s = batch.seq(i);
            ids[i * seq..i * seq + s.len()].copy_from_slice(s);
        }
        let ids = Tensor::from_vec(ids, (n * seq,), dev)?;
        let lens: Vec<u32> = batch.lens().into_iter().map(|l| l as u32).collect();
        let lens = Tensor::from_vec(lens, (n, 1), dev)?;
        let pos = Tensor::arange(0u32, seq as u32, dev)?.reshape((1, seq))?;
        let mask = pos.broadcast_lt(&lens)?;
        Ok((ids, mask, seq))
    }

    /// Token states [batch, seq, hidden] and the mask [batch, seq] for one batch, padded to its
    /// longest sequence. Padding never influences real tokens (−inf bias on padded keys).
    pub fn forward(&self, batch: &PackedBatch) -> Result<(Tensor, Tensor)> {
        let (n, h, nh, hd) = (batch.len(), self.hidden, self.heads, self.head_dim);
        let (ids, mask, seq) = self.pad(batch)?;
        let emb = self.emb.word.index_select(&ids, 0)?.reshape((n, seq, h))?;
        let pos = self.emb.position.narrow(0, 0, seq)?;
        let emb = emb
            .broadcast_add(&pos)?
            .broadcast_add(&self.emb.token_type0)?;
        let mut x = self.emb.ln.forward(&emb)?.reshape((n * seq, h))?;

        // A batch without padding (sorted batching makes most of them so) needs no mask at all.
        // Otherwise the bias is expanded once to the full score shape, shared by every layer:
        // candle's broadcasting add indexes each element through the strides, several times
        // slower than a contiguous add at [batch, heads, seq, seq].
        let padded = batch.lens().iter().any(|&l| l != seq);
        let bias = if padded {
            let zeros = Tensor::zeros((n, seq), DType::F32, &self.device)?;
            let neg = Tensor::full(f32::NEG_INFINITY, (n, seq), &self.device)?;
            let b = mask
                .where_cond(&zeros, &neg)?
                .reshape((n, 1, 1, seq))?
                .to_dtype(self.dtype)?;
            Some(b.broadcast_as((n, nh, seq, seq))?.contiguous()?)
        } else {
            None
        };
        let scale = 1.0 / (hd as f64).sqrt();

        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.reshape((n, seq, 3, nh, hd))?;
            let q = (qkv
                .narrow(2, 0, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?
                * scale)?;
            let k = qkv
                .narrow(2, 1, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?;
            let v = qkv
                .narrow(2, 2, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?;
            let mut scores = q.matmul(&k.t()?)?;
            if let Some(b) = &bias {
                scores = (scores + b)?;
            }
            let probs = if self.softmax_in_f32 {
                candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
                    .to_dtype(self.dtype)?
            } else {
                candle_nn::ops::softmax_last_dim(&scores)?
            };
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((n * seq, h))?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = layer.ln_attn.forward(&(attn + &x)?)?;
            let inter = self.activate(&layer.inter.forward(&x)?)?;
            let out = layer.out.forward(&inter)?;
            x = layer.ln_out.forward(&(out + &x)?)?;
        }
        Ok((x.reshape((n, seq, h))?, mask))
    }

    /// The word-embedding rows of `ids` ([len, hidden]): the inputs that
    /// [`forward_from_word_embeddings`](Self::forward_from_word_embeddings) starts from.
    pub fn word_embeddings(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::from_vec(ids.to_vec(), (ids.len(),), &self.device)?;
        Ok(self.emb.word.index_select(&ids, 0)?)
    }

    /// The id of the padding token ([PAD]).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token states [n, seq, hidden] of `n` unpadded sequences of one length, starting from their
    /// word embeddings `word` [n, seq, hidden] (position and token-type embeddings are added as in
    /// [`forward`](Self::forward)). Every op here has a backward pass (LayerNorm and softmax are
    /// built from differentiable primitives; the fused kernels of `forward` have none), so
    /// `Tensor::backward` on anything computed from the result gives gradients with respect to
    /// `word`: integrated gradients use it. f32 models only.
    pub fn forward_from_word_embeddings(&self, word: &Tensor) -> Result<Tensor> {
        ensure!(
            self.dtype == DType::F32,
            "gradients through the encoder need an f32 model (got {:?}); pass --dtype f32",
            self.dtype
        );
        let (n, seq, h) = word.dims3()?;
        ensure!(
            h == self.hidden,
            "word embeddings of width {h}, model hidden size {}",
            self.hidden
        );
        let (nh, hd) = (self.heads, self.head_dim);
        let max_pos = self.emb.position.dim(0)?;
        ensure!(
            seq <= max_pos,
            "a sequence of {seq} tokens is longer than the model's {max_pos} positions"
        );
        let pos = self.emb.position.narrow(0, 0, seq)?;
        let emb = word
            .broadcast_add(&pos)?
            .broadcast_add(&self.emb.token_type0)?;
        let ln = |x: &Tensor, l: &layout::LayerNorm| {
            candle_nn::ops::layer_norm_slow(x, &l.w, &l.b, l.eps)
        };
        let mut x = ln(&emb, &self.emb.ln)?.reshape((n * seq, h))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let heads = |t: &Tensor, k: usize| -> candle_core::Result<Tensor> {
            t.narrow(2, k, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()
        };
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?.reshape((n, seq, 3, nh, hd))?;
            let q = (heads(&qkv, 0)? * scale)?;
            let k = heads(&qkv, 1)?;
            let v = heads(&qkv, 2)?;
            let scores = q.matmul(&k.t()?.contiguous()?)?;
            let probs = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((n * seq, h))?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = ln(&(attn + &x)?, &layer.ln_attn)?;
            let inter = self.activate(&layer.inter.forward(&x)?)?;
            let out = layer.out.forward(&inter)?;
            x = ln(&(out + &x)?, &layer.ln_out)?;
        }
        Ok(x.reshape((n, seq, h))?)
    }

    fn activate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.act {
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }
}

impl Backend for CandleBackend {
    fn embed(&self, batch: &PackedBatch, pooling: Pooling) -> Result<Vec<f32>> {
        ensure!(!batch.is_empty(), "empty batch");
        bind_thread(&self.device)?;
        let (hidden, mask) = self.forward(batch)?;
        let pooled = pooling::pool(&hidden, &mask, pooling)?;
        Ok(pooled
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    fn is_packed(&self) -> bool {
        false
    }

    fn device_memory_used(&self) -> Option<u64> {
        device_memory_used(&self.device)
    }
}

/// Make this thread's current CUDA context the device's, so that worker threads of a multi-GPU
/// run each drive their own card.
fn bind_thread(device: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        d.cuda_stream()
            .context()
            .bind_to_thread()
            .map_err(|e| anyhow::anyhow!("CUDA: {e:?}"))?;
    }
    let _ = device;
    Ok(())
}

/// Bytes in use on the device (total − free), where the device reports it.
pub fn device_memory_used(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        let (free, total) = d.cuda_stream().context().mem_get_info().ok()?;
        return Some((total - free) as u64);
    }
    let _ = device;
    None
}

/// Number of CUDA devices the driver reports (0 without the `cuda` feature or a driver).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        use candle_core::cuda_backend::cudarc::driver::CudaContext;
        return CudaContext::device_count()
            .map(|n| n.max(0) as usize)
            .unwrap_or(0);
    }
    #[allow(unreachable_code)]
    0
}

/// The GPU's name as the driver reports it (None for the CPU, or without the `cuda` feature).
pub fn device_name(device: &Device) -> Option<String> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return d.cuda_stream().context().name().ok();
    }
    if let Device::Metal(_) = device {
        return Some("Metal GPU".into());
    }
    None
}
