//! `config.json` for BERT-family encoders. Old checkpoints (BioBERT v1.1) omit `layer_norm_eps`,
//! `pad_token_id` and `model_type`, so every field but `vocab_size` has BERT's default.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A JSON file a model folder may hold (`tokenizer_config.json`, `1_Pooling/config.json`, …):
/// `None` when absent; present but unreadable or not JSON is an error naming it.
pub fn optional_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{}: invalid JSON", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Activation {
    /// Exact erf GELU (`gelu` in transformers).
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_inter() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_maxpos() -> usize {
    512
}
fn d_types() -> usize {
    2
}
fn d_eps() -> f64 {
    1e-12
}
fn d_posemb() -> String {
    "absolute".into()
}

/// Upper bounds for config sizes (far above any BERT: base has 12 layers, 768 wide, 30k
/// tokens, 512 positions), so a corrupt value is refused before it sizes an allocation.
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 16;
const MAX_VOCAB: usize = 1 << 24;
const MAX_POSITIONS: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_maxpos")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "d_posemb")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read model config", path.display()))?;
        let cfg: BertConfig = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a valid BERT config.json (needs at least `vocab_size`)",
                path.display()
            )
        })?;
        cfg.validate()
            .with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    pub fn activation(&self) -> Result<Activation> {
        Activation::parse(&self.hidden_act).with_context(|| {
            format!(
                "unsupported activation `hidden_act: \"{}\"`; supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu",
                self.hidden_act
            )
        })
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn validate(&self) -> Result<()> {
        self.activation()?;
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            bail!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if self.position_embedding_type != "absolute" {
            bail!(
                "unsupported position_embedding_type \"{}\"; only \"absolute\" BERT position embeddings are implemented",
                self.position_embedding_type
            );
        }
        if let Some(t) = &self.model_type {
            if t != "bert" && !t.is_empty() {
                bail!("model_type \"{t}\" is not supported: celltext runs BERT encoders (model_type \"bert\")");
            }
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            bail!("vocab_size, hidden_size and num_hidden_layers must be positive");
        }
        // Sizes that allocate: bounded here, before any weight is read, and checked against the
        // weight shapes by `WeightFiles::check_config` before any layer is built.
        for (field, value, max) in [
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("num_attention_heads", self.num_attention_heads, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH * 8),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
            ("type_vocab_size", self.type_vocab_size, MAX_VOCAB),
        ] {
            if value == 0 || value > max {
                bail!(
                    "`{field}` is {value}, outside 1..={max}; this is not the config of a BERT \
                     encoder (corrupt or hand-edited config.json?)"
                );
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            bail!(
                "`layer_norm_eps` is {}; it must be a small positive number (BERT uses 1e-12)",
                self.layer_norm_eps
            );
        }
        if self.pad_token_id >= self.vocab_size {
            bail!(
                "`pad_token_id` {} is outside the vocabulary (vocab_size {})",
                self.pad_token_id,
                self.vocab_size
            );
        }
        Ok(())
    }
}
