//! Seeded random BERT checkpoints of a named shape, for speed and precision checks of large
//! encoders without downloading them (`celltext synth-model`). The weights are random, so the
//! vectors mean nothing; shapes, tokenizer and file format are the real model's.

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;

use super::config::BertConfig;
use crate::io::atomic_write;

/// Shape of a synthetic checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub intermediate: usize,
}

impl Shape {
    /// The shape of a known model family: `ember-v1` (BERT-large, 24×1024), `biobert`/`scibert`
    /// (BERT-base, 12×768), `minilm` (6×384).
    pub fn named(name: &str) -> Result<Self> {
        Ok(match name {
            "ember-v1" | "bert-large" => Self { layers: 24, hidden: 1024, heads: 16, intermediate: 4096 },
            "biobert" | "scibert" | "bert-base" => Self { layers: 12, hidden: 768, heads: 12, intermediate: 3072 },
            "minilm" => Self { layers: 6, hidden: 384, heads: 12, intermediate: 1536 },
            _ => bail!("unknown shape `{name}`; use ember-v1, bert-large, biobert, scibert, bert-base or minilm"),
        })
    }
}

/// Tokenizer files copied from the tokenizer source directory when present.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Write `config.json`, `model.safetensors` (f32, weights ~ U(±0.02·√3), i.e. std 0.02 as BERT's
/// initializer; LayerNorm γ = 1, β = 0; biases 0), the tokenizer of `tokenizer_from`, and a
/// sentence-transformers pooling config to `out`. The same seed gives the same bytes. The folder is
/// written whole under a temp name and committed by one rename ([`crate::outputs::atomic_dir_with`]);
/// it must not overlap `tokenizer_from` and, if it exists, be empty or an earlier synthetic model.
pub fn write_random_bert(
    out: &Path,
    shape: Shape,
    tokenizer_from: &Path,
    pooling: super::Pooling,
    seed: u64,
) -> Result<()> {
    crate::outputs::check_apart(&[out], &[tokenizer_from])?;
    if !earlier_synthetic_model(out) {
        crate::outputs::check_replaceable_dir(out, "--out", "config.json", Some("synth-model"))?;
    }
    let _lock = crate::outputs::OutputLock::acquire(out)?;
    crate::outputs::atomic_dir_with(out, |tmp| {
        write_model_files(tmp, shape, tokenizer_from, pooling, seed)
    })
}

/// Whether `dir` is a synthetic model written before config.json recorded `celltext_command`:
/// its config.json records `celltext_synthetic_seed` (which only this writer adds) and the
/// folder holds nothing but the files this writer makes, so replacing it loses nothing else.
fn earlier_synthetic_model(dir: &Path) -> bool {
    let Some(config) = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    if config.get("celltext_synthetic_seed").is_none() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        match name.as_str() {
            "1_Pooling" => std::fs::read_dir(e.path()).is_ok_and(|sub| {
                sub.flatten().all(|f| {
                    f.file_name() == "config.json" && f.file_type().is_ok_and(|t| t.is_file())
                })
            }),
            "config.json" | "model.safetensors" => is_file,
            n => is_file && TOKENIZER_FILES.contains(&n),
        }
    })
}

fn write_model_files(
    out: &Path,
    shape: Shape,
    tokenizer_from: &Path,
    pooling: super::Pooling,
    seed: u64,
) -> Result<()> {
    if shape.heads == 0 || !shape.hidden.is_multiple_of(shape.heads) {
        bail!(
            "hidden size {} is not divisible by {} heads",
            shape.hidden,
            shape.heads
        );
    }
    let src_cfg =
        BertConfig::from_file(&tokenizer_from.join("config.json")).with_context(|| {
            format!(
                "{}: the tokenizer source must be a BERT model directory",
                tokenizer_from.display()
            )
        })?;
    let vocab = src_cfg.vocab_size;
    std::fs::create_dir_all(out.join("1_Pooling"))
        .with_context(|| format!("{}: cannot create", out.display()))?;
    for f in TOKENIZER_FILES {
        let p = tokenizer_from.join(f);
        if p.exists() {
            let bytes =
                std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
            atomic_write(&out.join(f), &bytes)?;
        }
    }
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "vocab_size": vocab,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "celltext_synthetic_seed": seed,
        "celltext_command": "synth-model",
    });
    atomic_write(
        &out.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    let p = |m: super::Pooling| pooling == m;
    let pool = serde_json::json!({
        "word_embedding_dimension": shape.hidden,
        "pooling_mode_cls_token": p(super::Pooling::Cls),
        "pooling_mode_mean_tokens": p(super::Pooling::Mean),
        "pooling_mode_max_tokens": p(super::Pooling::Max),
    });
    atomic_write(
        &out.join("1_Pooling/config.json"),
        serde_json::to_string_pretty(&pool)?.as_bytes(),
    )?;

    let tensors = tensor_list(shape, vocab);
    // Each tensor draws from its own stream (seed, index), so generation parallelizes and the
    // bytes do not depend on the thread count.
    let data: Vec<Vec<u8>> = tensors
        .par_iter()
        .enumerate()
        .map(|(k, (name, dims))| {
            let n: usize = dims.iter().product();
            let vals: Vec<f32> = if name.ends_with("LayerNorm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(k as u64 + 1);
                let a = 0.02f32 * 3f32.sqrt();
                (0..n).map(|_| rng.gen_range(-a..a)).collect()
            };
            vals.iter().flat_map(|v| v.to_le_bytes()).collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dims), bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))
        })
        .collect::<Result<_>>()?;
    crate::io::write_safetensors(&out.join("model.safetensors"), &views, None)
}

/// Every tensor of a BERT encoder under its checkpoint name, in a fixed order.
fn tensor_list(s: Shape, vocab: usize) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (s.hidden, s.intermediate);
    let mut t = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![vocab, h],
        ),
        ("embeddings.position_embeddings.weight".into(), vec![512, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            t.push((format!("{p}.{name}.weight"), vec![out, inp]));
            t.push((format!("{p}.{name}.bias"), vec![out]));
        }
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{p}.{ln}.weight"), vec![h]));
            t.push((format!("{p}.{ln}.bias"), vec![h]));
        }
    }
    t
}
