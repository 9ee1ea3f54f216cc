//! Pooling token states into one vector per text.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Cls,
    Mean,
    Max,
}

impl std::str::FromStr for Pooling {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            "max" => Ok(Self::Max),
            _ => bail!("unknown pooling `{s}`; use cls, mean or max"),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cls => "cls",
            Self::Mean => "mean",
            Self::Max => "max",
        })
    }
}

/// Pooling declared by a sentence-transformers `1_Pooling/config.json`, if the directory has one.
pub fn pooling_from_sentence_transformers(dir: &Path) -> Result<Option<Pooling>> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let flag = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    Ok(if flag("pooling_mode_cls_token") {
        Some(Pooling::Cls)
    } else if flag("pooling_mode_mean_tokens") {
        Some(Pooling::Mean)
    } else if flag("pooling_mode_max_tokens") {
        Some(Pooling::Max)
    } else {
        bail!(
            "{}: no supported pooling mode is true (celltext supports cls, mean, max); pass --pooling",
            path.display()
        )
    })
}

/// Pool `hidden` [batch, seq, dim] with `mask` [batch, seq] (1 = token, 0 = padding).
/// Computed in f32 whatever the model dtype, so f16 sums cannot overflow.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    let hidden = hidden.to_dtype(DType::F32)?;
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean => {
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            sum.broadcast_div(&count)
        }
        Pooling::Max => {
            // Padding gets -inf so it never wins the max.
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let neg = ((m.ones_like()? - &m)? * -1e30f64)?;
            hidden.broadcast_add(&neg)?.max(D::Minus2)
        }
    }
}

/// L2-normalize rows; zero rows stay zero.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    x.broadcast_div(&norm)
}
