//! Encoder backends, split from the core as text-embeddings-inference splits them: the core
//! (tokenizer, token-budget batching, jobs, normalization) hands a backend one packed batch of
//! token ids and gets one pooled f32 vector per sequence back.
//!
//! - `cpu`: packed-weight AVX2/FMA forward on real tokens only (CPU, f32).
//! - `candle`: candle tensors on any candle device (CPU, CUDA, Metal) and dtype (f32, f16, bf16);
//!   pads each batch to its longest sequence internally and pools on the device, so only ids go
//!   in and pooled vectors come out.

pub mod candle;
pub mod cpu;
pub mod layout;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use super::pooling::Pooling;

/// One batch of tokenized texts, real tokens only: sequence `i` is `ids[offsets[i]..offsets[i+1]]`.
#[derive(Debug, Clone, Default)]
pub struct PackedBatch {
    pub ids: Vec<u32>,
    pub offsets: Vec<usize>,
}

impl PackedBatch {
    pub fn from_seqs<S: AsRef<[u32]>>(seqs: &[S]) -> Self {
        let total = seqs.iter().map(|s| s.as_ref().len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0);
        for s in seqs {
            ids.extend_from_slice(s.as_ref());
            offsets.push(ids.len());
        }
        Self { ids, offsets }
    }

    /// The sequences `seq(i)` for `i` in `rows`, in that order (a planned batch of token rows).
    pub fn gather<'a>(rows: &[usize], seq: impl Fn(usize) -> &'a [u32]) -> Self {
        Self::from_seqs(&rows.iter().map(|&i| seq(i)).collect::<Vec<_>>())
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn seq(&self, i: usize) -> &[u32] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn lens(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    pub fn max_len(&self) -> usize {
        self.offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// Tokens a padded backend computes for this batch.
    pub fn padded_tokens(&self) -> usize {
        self.len() * self.max_len()
    }
}

/// A model on one device that turns packed batches into pooled vectors.
pub trait Backend: Send + Sync {
    /// Pooled vectors, row-major [batch.len(), hidden] f32 in batch order, not normalized.
    fn embed(&self, batch: &PackedBatch, pooling: Pooling) -> Result<Vec<f32>>;
    /// True when only real tokens are computed (no padding).
    fn is_packed(&self) -> bool;
    /// Device memory in use (bytes, all processes' context included) where the device reports it.
    fn device_memory_used(&self) -> Option<u64> {
        None
    }
}

/// `--backend auto|cpu|candle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// `cpu` for CPU f32, `candle` otherwise.
    #[default]
    Auto,
    Cpu,
    Candle,
}

crate::choices!(BackendChoice { Auto = "auto", Cpu = "cpu", Candle = "candle" });

/// The backend that will actually run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Candle,
}

impl BackendChoice {
    /// Resolve `auto` and refuse combinations the packed CPU path cannot run.
    pub fn resolve(self, devices: &[Device], dtype: DType, int8: bool) -> Result<BackendKind> {
        let all_cpu = devices.iter().all(|d| d.is_cpu());
        if int8 {
            if !all_cpu || devices.len() != 1 {
                bail!("--dtype int8 runs on the packed CPU backend; give a single --device cpu (f16/bf16 are the GPU formats)");
            }
            if self == Self::Candle {
                bail!("--dtype int8 runs on the packed CPU backend; use --backend cpu (or auto)");
            }
            return Ok(BackendKind::Cpu);
        }
        match self {
            Self::Auto if all_cpu && dtype == DType::F32 && devices.len() == 1 => {
                Ok(BackendKind::Cpu)
            }
            Self::Auto | Self::Candle => Ok(BackendKind::Candle),
            Self::Cpu => {
                if !all_cpu {
                    bail!("--backend cpu runs on the CPU only; use --backend candle (or auto) with --device cuda/metal");
                }
                if dtype != DType::F32 {
                    bail!("--backend cpu computes in f32 only; use --backend candle for --dtype f16/bf16 on the CPU");
                }
                if devices.len() != 1 {
                    bail!("--backend cpu uses every core of one CPU already; give a single --device cpu");
                }
                Ok(BackendKind::Cpu)
            }
        }
    }
}

/// Short name of a device kind, for manifests: `cpu`, `cuda` or `metal`.
pub fn device_kind(d: &Device) -> &'static str {
    match d {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
