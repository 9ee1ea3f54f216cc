//! Pooling token states into one vector per text.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How token states become one vector (`--pooling cls|mean|max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Cls,
    Mean,
    Max,
}

crate::choices!(Pooling { Cls = "cls", Mean = "mean", Max = "max" });

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
    let Some(v) = super::config::optional_json(&path)? else {
        return Ok(None);
    };
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

/// Pool packed token states `states` [Σ lens, dim] (sequences back to back) into [lens.len(), dim].
/// Means are summed in f64.
pub fn pool_packed(states: &[f32], dim: usize, lens: &[usize], pooling: Pooling) -> Vec<f32> {
    let mut out = vec![0f32; lens.len() * dim];
    let mut off = 0;
    for (b, &len) in lens.iter().enumerate() {
        let rows = &states[off * dim..(off + len) * dim];
        let o = &mut out[b * dim..(b + 1) * dim];
        match pooling {
            Pooling::Cls => o.copy_from_slice(&rows[..dim]),
            Pooling::Mean => {
                let mut acc = vec![0f64; dim];
                for r in rows.chunks_exact(dim) {
                    for (a, v) in acc.iter_mut().zip(r) {
                        *a += *v as f64;
                    }
                }
                let n = len.max(1) as f64;
                for (o, a) in o.iter_mut().zip(&acc) {
                    *o = (*a / n) as f32;
                }
            }
            Pooling::Max => {
                o.fill(f32::NEG_INFINITY);
                for r in rows.chunks_exact(dim) {
                    for (o, v) in o.iter_mut().zip(r) {
                        *o = o.max(*v);
                    }
                }
            }
        }
        off += len;
    }
    out
}

/// L2-normalize each `dim`-wide row in place (norm in f64); zero rows stay zero.
pub fn l2_normalize_rows(v: &mut [f32], dim: usize) {
    for row in v.chunks_exact_mut(dim) {
        let n = row
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        for x in row.iter_mut() {
            *x = (*x as f64 / n) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn packed_pooling_by_hand() {
        // two sequences of 2 and 1 tokens, dim 2
        let states = [1.0, -2.0, 3.0, 4.0, -5.0, 6.0];
        assert_eq!(
            pool_packed(&states, 2, &[2, 1], Pooling::Cls),
            vec![1.0, -2.0, -5.0, 6.0]
        );
        assert_eq!(
            pool_packed(&states, 2, &[2, 1], Pooling::Mean),
            vec![2.0, 1.0, -5.0, 6.0]
        );
        assert_eq!(
            pool_packed(&states, 2, &[2, 1], Pooling::Max),
            vec![3.0, 4.0, -5.0, 6.0]
        );
        let mut v = vec![3.0, 4.0, 0.0, 0.0];
        l2_normalize_rows(&mut v, 2);
        assert_eq!(v, vec![0.6, 0.8, 0.0, 0.0]);
    }
}
