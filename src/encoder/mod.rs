//! Model cards, weight loading, tokenization, BERT forward, pooling and batching.

pub mod batch;
pub mod bert;
pub mod card;
pub mod config;
pub mod cpu_bert;
pub mod cpu_kernels;
pub mod input;
pub mod job;
pub mod packed;
pub mod pooling;
pub mod pth;
pub mod resolve;
pub mod sgemm;
pub mod tokenizer;
pub mod weights;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::Serialize;
use std::path::Path;

pub use batch::{PaddingStats, TokenBudgetBatcher};
pub use bert::BertModel;
pub use config::BertConfig;
pub use pooling::Pooling;
pub use resolve::ResolvedModel;
pub use tokenizer::{TextTokenizer, TokenizedText};

/// `--device cpu|cuda[:N]|metal[:N]`.
pub fn parse_device(s: &str) -> Result<Device> {
    let (kind, idx) = match s.split_once(':') {
        Some((k, i)) => (k, i.parse::<usize>().with_context(|| format!("bad device index in `{s}`"))?),
        None => (s, 0),
    };
    Ok(match kind {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(idx).with_context(|| {
            format!("cannot open CUDA device {idx} (build with `--features cuda` and check the driver)")
        })?,
        "metal" => Device::new_metal(idx)
            .with_context(|| format!("cannot open Metal device {idx} (build with `--features metal` on macOS)"))?,
        _ => bail!("unknown device `{s}`; use cpu, cuda[:N] or metal[:N]"),
    })
}

/// `--dtype f32|f16|bf16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" | "float32" => DType::F32,
        "f16" | "float16" | "half" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        _ => bail!("unknown dtype `{s}`; use f32, f16 or bf16"),
    })
}

pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// How to load an encoder; `None` fields fall back to the checkpoint, then the card, then BERT defaults.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    pub pooling: Option<Pooling>,
    pub normalize: bool,
    pub max_length: Option<usize>,
    pub lowercase: Option<bool>,
    pub device: Device,
    pub dtype: DType,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self { pooling: None, normalize: false, max_length: None, lowercase: None, device: Device::Cpu, dtype: DType::F32 }
    }
}

/// Everything a manifest needs to say which model made a vector.
#[derive(Debug, Clone, Serialize)]
pub struct ModelIdentity {
    pub id: String,
    pub revision: String,
    pub dir: String,
    pub weights_sha256: String,
    pub pooling: Pooling,
    pub normalize: bool,
    pub dtype: String,
    pub max_length: usize,
    pub lowercase: Option<bool>,
    pub hidden_size: usize,
}

pub struct Encoder {
    pub model: BertModel,
    pub tokenizer: TextTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub identity: ModelIdentity,
    pad_id: u32,
}

/// Result of embedding a list of texts: row-major [n, dim] in input order.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub data: Vec<f32>,
    pub dim: usize,
    pub n_truncated: usize,
    pub padding: PaddingStats,
}

impl Encoder {
    /// Resolve `spec` (directory, card name or hub id) and load tokenizer + weights.
    pub fn load(spec: &str, opts: &EncoderOptions, quiet: bool) -> Result<Self> {
        let resolved = resolve::resolve(spec, quiet)?;
        Self::load_resolved(&resolved, opts)
    }

    pub fn load_resolved(resolved: &ResolvedModel, opts: &EncoderOptions) -> Result<Self> {
        let dir = &resolved.dir;
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let card = resolved.card.as_ref();
        let max_length = opts
            .max_length
            .or_else(|| sentence_transformers_max_len(dir))
            .or_else(|| card.and_then(|c| c.max_length))
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let tokenizer = TextTokenizer::from_dir(dir, max_length, opts.lowercase, card.and_then(|c| c.lowercase))?;
        let vocab = tokenizer.vocab_size();
        if vocab > config.vocab_size {
            bail!(
                "{}: tokenizer has {vocab} tokens but config.json vocab_size is {}; tokenizer and weights do not match",
                dir.display(),
                config.vocab_size
            );
        }
        let pooling = match opts.pooling {
            Some(p) => p,
            None => pooling::pooling_from_sentence_transformers(dir)?
                .or_else(|| card.and_then(|c| c.pooling))
                .unwrap_or(Pooling::Mean),
        };
        let wf = weights::WeightFiles::open(dir)?;
        let model = BertModel::load(&wf, &config, &opts.device, opts.dtype)
            .with_context(|| format!("loading weights from {}", dir.display()))?;
        let identity = ModelIdentity {
            id: resolved.id.clone(),
            revision: resolved.revision.clone(),
            dir: dir.display().to_string(),
            weights_sha256: wf.sha256()?,
            pooling,
            normalize: opts.normalize,
            dtype: dtype_name(opts.dtype).into(),
            max_length,
            lowercase: tokenizer.lowercase,
            hidden_size: config.hidden_size,
        };
        let pad_id = config.pad_token_id as u32;
        Ok(Self { model, tokenizer, pooling, normalize: opts.normalize, identity, pad_id })
    }

    /// Padding actually computed for a batch plan: none on the packed CPU path (only real
    /// tokens are processed), the plan's padding on the padded path.
    pub fn processed_padding(&self, plan: PaddingStats) -> PaddingStats {
        if self.model.can_pack() {
            PaddingStats { real_tokens: plan.real_tokens, padded_tokens: plan.real_tokens }
        } else {
            plan
        }
    }

    pub fn dim(&self) -> usize {
        self.model.hidden_size()
    }

    /// One forward pass over already-tokenized texts; returns [n, dim] row-major f32.
    pub fn embed_tokenized(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        if self.model.can_pack() {
            return self.embed_packed(batch);
        }
        let (ids, seq, lens) = bert::pad_batch(batch, self.pad_id);
        let hidden = self.model.forward(&ids, batch.len(), seq, &lens)?;
        let mask = bert::mask_tensor(&lens, seq, &self.model.device)?;
        let mut pooled = pooling::pool(&hidden, &mask, self.pooling)?;
        if self.normalize {
            pooled = pooling::l2_normalize(&pooled)?;
        }
        let v: Vec<f32> = pooled.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        if v.iter().any(|x| !x.is_finite()) {
            bail!(
                "the model produced non-finite values (dtype {}); try --dtype f32",
                self.identity.dtype
            );
        }
        Ok(v)
    }

    /// CPU f32: padding-free forward, then pooling per sequence on the packed states.
    fn embed_packed(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        let flat = self.model.forward_packed(batch)?;
        let d = self.dim();
        let mut out = vec![0f32; batch.len() * d];
        let mut off = 0;
        for (b, s) in batch.iter().enumerate() {
            let rows = &flat[off * d..(off + s.len()) * d];
            let o = &mut out[b * d..(b + 1) * d];
            match self.pooling {
                Pooling::Cls => o.copy_from_slice(&rows[..d]),
                Pooling::Mean => {
                    let mut acc = vec![0f64; d];
                    for r in rows.chunks_exact(d) {
                        for (a, v) in acc.iter_mut().zip(r) {
                            *a += *v as f64;
                        }
                    }
                    let n = s.len().max(1) as f64;
                    for (o, a) in o.iter_mut().zip(&acc) {
                        *o = (*a / n) as f32;
                    }
                }
                Pooling::Max => {
                    o.fill(f32::NEG_INFINITY);
                    for r in rows.chunks_exact(d) {
                        for (o, v) in o.iter_mut().zip(r) {
                            *o = o.max(*v);
                        }
                    }
                }
            }
            if self.normalize {
                let n = o.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt().max(1e-12);
                for v in o.iter_mut() {
                    *v = (*v as f64 / n) as f32;
                }
            }
            off += s.len();
        }
        if out.iter().any(|x| !x.is_finite()) {
            bail!("the model produced non-finite values");
        }
        Ok(out)
    }

    /// Tokenize and embed `texts` in token-budget batches, reporting progress per text.
    pub fn embed_texts(
        &self,
        texts: &[&str],
        batch_tokens: usize,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Embedded> {
        let toks = self.tokenizer.encode_batch(texts)?;
        let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
        let (batches, padding) = TokenBudgetBatcher::new(batch_tokens, 512).batches(&lengths);
        let dim = self.dim();
        let mut data = vec![0f32; texts.len() * dim];
        for b in &batches {
            let seqs: Vec<&[u32]> = b.iter().map(|&i| toks[i].ids.as_slice()).collect();
            let out = self.embed_tokenized(&seqs)?;
            for (k, &i) in b.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(&out[k * dim..(k + 1) * dim]);
            }
            if let Some(pb) = progress {
                pb.inc(b.len() as u64);
            }
        }
        let n_truncated = toks.iter().filter(|t| t.truncated).count();
        let padding = self.processed_padding(padding);
        Ok(Embedded { data, dim, n_truncated, padding })
    }
}

/// `max_seq_length` from a sentence-transformers `sentence_bert_config.json`.
fn sentence_transformers_max_len(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("max_seq_length")?.as_u64().map(|x| x as usize)
}
