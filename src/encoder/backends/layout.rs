//! The BERT checkpoint layout both backends read: tensor names, shapes, and Q/K/V fused into one
//! projection. Weights are stored [in, out] so `x @ w` needs no transpose per call.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use crate::encoder::config::BertConfig;
use crate::encoder::weights::WeightFiles;

pub struct Linear {
    /// [in, out], contiguous.
    pub w: Tensor,
    pub b: Tensor,
}

impl Linear {
    fn load(
        wf: &WeightFiles,
        prefix: &str,
        inp: usize,
        out: usize,
        dev: &Device,
        dt: DType,
    ) -> Result<Self> {
        let w = wf.get(&format!("{prefix}.weight"), &[out, inp], dev, dt)?;
        let b = wf.get(&format!("{prefix}.bias"), &[out], dev, dt)?;
        Ok(Self {
            w: w.t()?.contiguous()?,
            b,
        })
    }

    fn fuse(parts: &[Linear]) -> Result<Self> {
        let ws: Vec<&Tensor> = parts.iter().map(|p| &p.w).collect();
        let bs: Vec<&Tensor> = parts.iter().map(|p| &p.b).collect();
        Ok(Self {
            w: Tensor::cat(&ws, 1)?.contiguous()?,
            b: Tensor::cat(&bs, 0)?,
        })
    }

    /// x: [n, in] → [n, out]
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

pub struct LayerNorm {
    pub w: Tensor,
    pub b: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    fn load(
        wf: &WeightFiles,
        prefix: &str,
        h: usize,
        eps: f64,
        dev: &Device,
        dt: DType,
    ) -> Result<Self> {
        Ok(Self {
            w: wf.get(&format!("{prefix}.weight"), &[h], dev, dt)?,
            b: wf.get(&format!("{prefix}.bias"), &[h], dev, dt)?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

pub struct Layer {
    pub qkv: Linear,
    pub attn_out: Linear,
    pub ln_attn: LayerNorm,
    pub inter: Linear,
    pub out: Linear,
    pub ln_out: LayerNorm,
}

pub struct Embeddings {
    /// [vocab, hidden], [max_positions, hidden], [1, hidden] (token type 0: celltext embeds single texts)
    pub word: Tensor,
    pub position: Tensor,
    pub token_type0: Tensor,
    pub ln: LayerNorm,
}

pub fn load_embeddings(
    wf: &WeightFiles,
    config: &BertConfig,
    dev: &Device,
    dt: DType,
) -> Result<Embeddings> {
    let h = config.hidden_size;
    let word = wf.get(
        "embeddings.word_embeddings.weight",
        &[config.vocab_size, h],
        dev,
        dt,
    )?;
    let position = wf.get(
        "embeddings.position_embeddings.weight",
        &[config.max_position_embeddings, h],
        dev,
        dt,
    )?;
    let token_type0 = if wf.has("embeddings.token_type_embeddings.weight") {
        wf.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
            dev,
            dt,
        )?
        .narrow(0, 0, 1)?
    } else {
        Tensor::zeros((1, h), dt, dev)?
    };
    let ln = LayerNorm::load(
        wf,
        "embeddings.LayerNorm",
        h,
        config.layer_norm_eps,
        dev,
        dt,
    )?;
    Ok(Embeddings {
        word,
        position,
        token_type0,
        ln,
    })
}

/// Layer `l` of the encoder.
pub fn load_layer(
    wf: &WeightFiles,
    config: &BertConfig,
    l: usize,
    dev: &Device,
    dt: DType,
) -> Result<Layer> {
    let (h, i, eps) = (
        config.hidden_size,
        config.intermediate_size,
        config.layer_norm_eps,
    );
    let p = format!("encoder.layer.{l}");
    let q = Linear::load(wf, &format!("{p}.attention.self.query"), h, h, dev, dt)?;
    let k = Linear::load(wf, &format!("{p}.attention.self.key"), h, h, dev, dt)?;
    let v = Linear::load(wf, &format!("{p}.attention.self.value"), h, h, dev, dt)?;
    Ok(Layer {
        qkv: Linear::fuse(&[q, k, v])?,
        attn_out: Linear::load(wf, &format!("{p}.attention.output.dense"), h, h, dev, dt)?,
        ln_attn: LayerNorm::load(
            wf,
            &format!("{p}.attention.output.LayerNorm"),
            h,
            eps,
            dev,
            dt,
        )?,
        inter: Linear::load(wf, &format!("{p}.intermediate.dense"), h, i, dev, dt)?,
        out: Linear::load(wf, &format!("{p}.output.dense"), i, h, dev, dt)?,
        ln_out: LayerNorm::load(wf, &format!("{p}.output.LayerNorm"), h, eps, dev, dt)?,
    })
}
