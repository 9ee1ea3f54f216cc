//! Model cards, weight loading, tokenization, BERT forward, pooling and batching.

pub mod backends;
pub mod batch;
pub mod card;
pub mod config;
pub mod input;
pub mod job;
pub mod pipeline;
pub mod pooling;
pub mod pth;
pub mod resolve;
pub mod synth;
pub mod tokenizer;
pub mod weights;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

pub use backends::{Backend, BackendChoice, BackendKind, PackedBatch};
pub use batch::{PaddingStats, TokenBudgetBatcher};
pub use config::BertConfig;
pub use pooling::Pooling;
pub use resolve::ResolvedModel;
pub use tokenizer::{TextTokenizer, TokenizedText};

/// `--device cpu|cuda[:N]|metal[:N]`, or a comma-separated list of devices of one kind
/// (`cuda:0,cuda:1`), or `cuda:all` for every CUDA device the driver reports.
pub fn parse_devices(s: &str) -> Result<Vec<Device>> {
    if s.trim() == "cuda:all" {
        let n = backends::candle::cuda_device_count();
        if n == 0 {
            bail!("--device cuda:all: no CUDA device found (build with `--features cuda` and check the driver)");
        }
        return (0..n).map(|i| parse_device(&format!("cuda:{i}"))).collect();
    }
    let names: Vec<&str> = s.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        bail!("--device `{s}`: empty device name in the list");
    }
    let kinds: std::collections::BTreeSet<&str> = names
        .iter()
        .map(|n| n.split(':').next().unwrap_or(n))
        .collect();
    if kinds.len() > 1 {
        bail!("--device `{s}`: all devices must be of one kind (results are bit-identical only across devices of the same kind)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in &names {
        if !n.starts_with("cpu") && !seen.insert(*n) {
            bail!("--device `{s}`: {n} is listed twice");
        }
    }
    names.iter().map(|n| parse_device(n)).collect()
}

/// One device: `cpu`, `cuda[:N]` or `metal[:N]`.
pub fn parse_device(s: &str) -> Result<Device> {
    let (kind, idx) = match s.split_once(':') {
        Some((k, i)) => (
            k,
            i.parse::<usize>()
                .with_context(|| format!("bad device index in `{s}`"))?,
        ),
        None => (s, 0),
    };
    Ok(match kind {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(idx).with_context(|| {
            format!(
                "cannot open CUDA device {idx} (build with `--features cuda` and check the driver)"
            )
        })?,
        "metal" => Device::new_metal(idx).with_context(|| {
            format!("cannot open Metal device {idx} (build with `--features metal` on macOS)")
        })?,
        _ => bail!("unknown device `{s}`; use cpu, cuda[:N], cuda:0,cuda:1, cuda:all or metal[:N]"),
    })
}

/// A float `--dtype`: f32, f16 or bf16 (`int8` is [`EncoderOptions::set_dtype`]'s).
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "f32" | "float32" => DType::F32,
        "f16" | "float16" | "half" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        _ => bail!("unknown dtype `{s}`; use f32, f16, bf16 or int8"),
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
    /// One or more devices of one kind; batches are spread over them.
    pub devices: Vec<Device>,
    pub dtype: DType,
    /// `--dtype int8`: dynamic int8 quantization on the packed CPU backend (weights per output
    /// channel, activations per token; `dtype` stays f32 for the rest of the network).
    pub int8: bool,
    pub backend: BackendChoice,
}

impl EncoderOptions {
    /// Apply `--dtype f32|f16|bf16|int8`.
    pub fn set_dtype(&mut self, s: &str) -> Result<()> {
        if matches!(s, "int8" | "i8" | "qint8") {
            self.dtype = DType::F32;
            self.int8 = true;
        } else {
            self.dtype = parse_dtype(s)?;
            self.int8 = false;
        }
        Ok(())
    }
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            pooling: None,
            normalize: false,
            max_length: None,
            lowercase: None,
            devices: vec![Device::Cpu],
            dtype: DType::F32,
            int8: false,
            backend: BackendChoice::Auto,
        }
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
    /// `cpu` (packed CPU f32) or `candle-<device kind>`: results depend on it, the device count not.
    pub backend: String,
    /// The packed CPU backend's SIMD path (`avx2`, `generic`; `CELLTEXT_CPU` forces one); absent
    /// on candle. Shards made on different paths still merge (they differ in rounding only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_kernels: Option<String>,
    pub max_length: usize,
    pub lowercase: Option<bool>,
    pub hidden_size: usize,
}

/// Tokenizer + model workers (one per device) + pooling: the core every command embeds through.
pub struct Encoder {
    workers: Vec<Box<dyn Backend>>,
    pub config: BertConfig,
    pub tokenizer: TextTokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub identity: ModelIdentity,
    peak_device_bytes: AtomicU64,
}

/// Result of embedding a list of texts: row-major [n, dim] in input order.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub data: Vec<f32>,
    pub dim: usize,
    pub n_truncated: usize,
    pub padding: PaddingStats,
}

/// Load an encoder for a pipeline and pass its setup warnings (a guessed casing, an ignored
/// casing flag) to [`crate::progress::warn`].
pub fn load_encoder(model: &str, options: &EncoderOptions, quiet: bool) -> Result<Encoder> {
    let enc = Encoder::load(model, options, quiet)?;
    for w in &enc.tokenizer.warnings {
        crate::progress::warn(quiet, w);
    }
    Ok(enc)
}

impl Encoder {
    /// Resolve `spec` (directory, card name or hub id) and load tokenizer + weights.
    pub fn load(spec: &str, opts: &EncoderOptions, quiet: bool) -> Result<Self> {
        let resolved = resolve::resolve(spec, quiet)?;
        Self::load_resolved(&resolved, opts)
    }

    pub fn load_resolved(resolved: &ResolvedModel, opts: &EncoderOptions) -> Result<Self> {
        let dir = &resolved.dir;
        ensure!(!opts.devices.is_empty(), "no device given");
        let kind = opts.backend.resolve(&opts.devices, opts.dtype, opts.int8)?;
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let card = resolved.card.as_ref();
        let st_max = sentence_transformers_max_len(dir)?;
        let max_length = opts
            .max_length
            .or(st_max)
            .or_else(|| card.and_then(|c| c.max_length))
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let tokenizer = TextTokenizer::from_dir(
            dir,
            max_length,
            opts.lowercase,
            card.and_then(|c| c.lowercase),
        )?;
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
        wf.check_config(&config, &dir.join("config.json"))?;
        let loading = || format!("loading weights from {}", dir.display());
        let workers: Vec<Box<dyn Backend>> = match kind {
            BackendKind::Cpu => vec![Box::new(
                backends::cpu::CpuBert::load(&wf, &config, opts.int8).with_context(loading)?,
            )],
            BackendKind::Candle => opts
                .devices
                .iter()
                .map(|d| {
                    backends::candle::CandleBackend::load(&wf, &config, d, opts.dtype)
                        .map(|b| Box::new(b) as Box<dyn Backend>)
                        .with_context(loading)
                })
                .collect::<Result<_>>()?,
        };
        let backend = match kind {
            BackendKind::Cpu => "cpu".to_string(),
            BackendKind::Candle => format!("candle-{}", backends::device_kind(&opts.devices[0])),
        };
        let identity = ModelIdentity {
            id: resolved.id.clone(),
            revision: resolved.revision.clone(),
            dir: dir.display().to_string(),
            weights_sha256: wf.sha256()?,
            pooling,
            normalize: opts.normalize,
            dtype: if opts.int8 {
                "int8".into()
            } else {
                dtype_name(opts.dtype).into()
            },
            backend,
            cpu_kernels: (kind == BackendKind::Cpu)
                .then(|| backends::cpu::features::simd_path().name().to_string()),
            max_length,
            lowercase: tokenizer.lowercase,
            hidden_size: config.hidden_size,
        };
        Ok(Self {
            workers,
            config,
            tokenizer,
            pooling,
            normalize: opts.normalize,
            identity,
            peak_device_bytes: AtomicU64::new(0),
        })
    }

    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Number of devices batches are spread over.
    pub fn n_workers(&self) -> usize {
        self.workers.len()
    }

    /// Padding actually computed for a batch plan: none on a packed backend (only real tokens
    /// are processed), the plan's padding otherwise.
    pub fn processed_padding(&self, plan: PaddingStats) -> PaddingStats {
        if self.workers[0].is_packed() {
            PaddingStats {
                real_tokens: plan.real_tokens,
                padded_tokens: plan.real_tokens,
            }
        } else {
            plan
        }
    }

    /// Highest device memory in use seen after any batch so far (bytes; CUDA only).
    pub fn peak_device_memory(&self) -> Option<u64> {
        match self.peak_device_bytes.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    /// One batch of already-tokenized texts; returns [n, dim] row-major f32.
    pub fn embed_tokenized(&self, batch: &[&[u32]]) -> Result<Vec<f32>> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let mut out = self.embed_batches(&[PackedBatch::from_seqs(batch)], &|_| {})?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Embed `batches` in order, spread over the workers (one thread per device, each taking the
    /// next unclaimed batch). Every batch is computed whole by one worker, so results are
    /// bit-identical to a single device of the same kind. `on_batch(n)` is called as each
    /// batch of `n` texts finishes.
    pub fn embed_batches(
        &self,
        batches: &[PackedBatch],
        on_batch: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f32>>> {
        for b in batches {
            self.check_batch(b)?;
        }
        if self.workers.len() == 1 || batches.len() <= 1 {
            let w = &self.workers[0];
            return batches
                .iter()
                .map(|b| {
                    let v = self.run_one(w.as_ref(), b)?;
                    on_batch(b.len());
                    Ok(v)
                })
                .collect();
        }
        let next = AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let slots: Mutex<Vec<Option<Result<Vec<f32>>>>> =
            Mutex::new((0..batches.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for w in &self.workers {
                let (next, failed, slots) = (&next, &failed, &slots);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= batches.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = self.run_one(w.as_ref(), &batches[i]);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    } else {
                        on_batch(batches[i].len());
                    }
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
        // the first error in batch order, else every batch's vectors in order
        let mut out = Vec::with_capacity(batches.len());
        for s in slots {
            match s {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        ensure!(out.len() == batches.len(), "a device worker stopped early");
        Ok(out)
    }

    /// One batch on one worker, then normalization and the finiteness check, done once here.
    fn run_one(&self, worker: &dyn Backend, batch: &PackedBatch) -> Result<Vec<f32>> {
        let mut v = worker.embed(batch, self.pooling)?;
        ensure!(
            v.len() == batch.len() * self.dim(),
            "backend returned {} values for {} texts",
            v.len(),
            batch.len()
        );
        if self.normalize {
            pooling::l2_normalize_rows(&mut v, self.dim());
        }
        if v.iter().any(|x| !x.is_finite()) {
            bail!(
                "the model produced non-finite values (dtype {}); try --dtype f32",
                self.identity.dtype
            );
        }
        if let Some(b) = worker.device_memory_used() {
            self.peak_device_bytes.fetch_max(b, Ordering::Relaxed);
        }
        Ok(v)
    }

    /// Ids inside the vocabulary and lengths inside the position table, checked before any device
    /// sees them (an out-of-range id on a GPU reads garbage instead of failing).
    fn check_batch(&self, batch: &PackedBatch) -> Result<()> {
        let max = self.config.max_position_embeddings;
        for (i, len) in batch.lens().into_iter().enumerate() {
            ensure!(len > 0, "text {i} of a batch has no tokens");
            ensure!(
                len <= max,
                "sequence of {len} tokens exceeds max_position_embeddings {max}"
            );
        }
        if let Some(bad) = batch
            .ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            bail!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.config.vocab_size
            );
        }
        Ok(())
    }

    /// Tokenize `texts` and plan token-budget batches (length-sorted, sequences ≤ 512 tokens):
    /// the tokens, each batch's text rows, and the padding a padded backend would add.
    pub fn plan_batches(
        &self,
        texts: &[&str],
        batch_tokens: usize,
    ) -> Result<(Vec<TokenizedText>, Vec<Vec<usize>>, PaddingStats)> {
        let toks = self.tokenizer.encode_batch(texts)?;
        let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
        let (plan, padding) = TokenBudgetBatcher::new(batch_tokens, 512).batches(&lengths);
        Ok((toks, plan, padding))
    }

    /// Tokenize and embed `texts` in token-budget batches, reporting progress per text.
    pub fn embed_texts(
        &self,
        texts: &[&str],
        batch_tokens: usize,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Embedded> {
        self.embed_texts_cancellable(texts, batch_tokens, progress, None)
    }

    /// [`Encoder::embed_texts`]; with `check`, it is called before each round of batches (one
    /// batch per device) and its error stops the work: a caller's interrupt (the Python module's
    /// Ctrl-C). Each batch is still computed whole by one worker, so the vectors are the same.
    pub fn embed_texts_cancellable(
        &self,
        texts: &[&str],
        batch_tokens: usize,
        progress: Option<&indicatif::ProgressBar>,
        check: Option<&dyn Fn() -> Result<()>>,
    ) -> Result<Embedded> {
        let (toks, plan, padding) = self.plan_batches(texts, batch_tokens)?;
        let dim = self.dim();
        let batches: Vec<PackedBatch> = plan
            .iter()
            .map(|b| PackedBatch::gather(b, |i| toks[i].ids.as_slice()))
            .collect();
        let on_batch = |n: usize| {
            if let Some(pb) = progress {
                pb.inc(n as u64);
            }
        };
        let out = match check {
            None => self.embed_batches(&batches, &on_batch)?,
            Some(check) => {
                let mut out = Vec::with_capacity(batches.len());
                for round in batches.chunks(self.workers.len().max(1)) {
                    check()?;
                    out.extend(self.embed_batches(round, &on_batch)?);
                }
                out
            }
        };
        let mut data = vec![0f32; texts.len() * dim];
        for (b, rows) in plan.iter().zip(&out) {
            for (k, &i) in b.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(&rows[k * dim..(k + 1) * dim]);
            }
        }
        let n_truncated = toks.iter().filter(|t| t.truncated).count();
        let padding = self.processed_padding(padding);
        Ok(Embedded {
            data,
            dim,
            n_truncated,
            padding,
        })
    }
}

/// `max_seq_length` from a sentence-transformers `sentence_bert_config.json` (none when the file
/// is absent; a file that is there but unreadable is an error naming it).
fn sentence_transformers_max_len(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join("sentence_bert_config.json");
    let Some(v) = config::optional_json(&path)? else {
        return Ok(None);
    };
    match v.get("max_seq_length") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) if n > 0 => Ok(Some(n as usize)),
            _ => bail!(
                "{}: `max_seq_length` is {x}; expected a positive integer",
                path.display()
            ),
        },
    }
}
