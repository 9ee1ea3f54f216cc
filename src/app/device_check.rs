//! `celltext device-check`: what a GPU (or any candle device) gives, in one offline command.
//!
//! Precision: the candle backend on the device in f32/f16/bf16 against the packed CPU f32
//! backend, with real weights (MiniLM): gene summaries, 512-token cell sentences (max length
//! 512) and a batch that mixes a 5-token and a 512-token sequence. (A seeded random 24-layer
//! model amplifies rounding far beyond a trained one, so it is timed, not used for precision.) Throughput: every human summary (MiniLM) and 512-token cell sentences
//! (Ember-shaped), forward only (texts tokenized beforehand), with padding fraction and device
//! memory. The texts are written beside the report so `scripts/torch_speed.py` can time PyTorch
//! on exactly the same inputs.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cells::read::ReadOptions;
use crate::cells::sentences::{build_sentences, SentenceConfig, Ties};
use crate::encoder::backends::{candle as candle_backend, device_kind};
use crate::encoder::synth::{write_random_bert, Shape};
use crate::encoder::{
    dtype_name, parse_devices, BackendChoice, Encoder, EncoderOptions, PackedBatch, Pooling,
};
use crate::genes::{Species, SummaryCorpus};
use crate::io::{write_json, TOOL_VERSION};

const DEMO_H5AD: &[u8] = include_bytes!("../../assets/data/pbmc3k_demo.h5ad");

/// What `celltext device-check` takes; the doc comments are the flags' `--help` texts (`cpu` is
/// a CPU dry run of the same report).
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceCheckArgs {
    /// cuda, cuda:N, metal or cpu.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// all-MiniLM-L6-v2 directory (real weights).
    #[arg(long, default_value = "models-local/all-MiniLM-L6-v2")]
    pub minilm: PathBuf,
    /// Ember-v1-shaped directory (default: a seeded one is written under --work).
    #[arg(long)]
    pub ember: Option<PathBuf>,
    /// Working directory: texts, the synthetic checkpoint, report.json.
    #[arg(long, default_value = "celltext-device-check")]
    pub work: PathBuf,
    /// Summaries to time (default: all 15,136 on a GPU, 64 on the CPU).
    #[arg(long)]
    pub n_summaries: Option<usize>,
    /// 512-token cell sentences to time (default: 2,048 on a GPU, 2 on the CPU).
    #[arg(long)]
    pub n_sentences: Option<usize>,
    /// Cell sentences to time (JSONL with `text`, or one per line; default: the bundled pbmc3k
    /// cells, which need the h5ad feature).
    #[arg(long)]
    pub sentences: Option<PathBuf>,
    /// Only write the texts under --work, then stop (to run elsewhere with --sentences).
    #[arg(long)]
    pub prepare_only: bool,
    /// Padded tokens per batch.
    #[arg(long, default_value_t = 16384)]
    pub batch_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress output (the CLI's global `--quiet`).
    #[arg(skip)]
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct PrecisionRow {
    pub model: String,
    pub texts: String,
    pub dtype: String,
    pub n: usize,
    pub min_cosine: f64,
    pub max_abs_diff: f64,
    pub all_finite: bool,
}

#[derive(Debug, Serialize)]
pub struct SpeedRow {
    pub model: String,
    pub workload: String,
    pub backend: String,
    pub dtype: String,
    pub n_texts: usize,
    pub real_tokens: usize,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub padding_fraction: f64,
    pub peak_device_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DeviceReport {
    pub tool: String,
    pub device: String,
    pub device_name: String,
    pub batch_tokens: usize,
    pub minilm_dir: String,
    pub ember_dir: String,
    /// JSONL files of the timed texts, in order (for the PyTorch comparison).
    pub summaries_jsonl: String,
    pub sentences_jsonl: String,
    pub precision: Vec<PrecisionRow>,
    pub throughput: Vec<SpeedRow>,
}

pub fn run_device_check(args: &DeviceCheckArgs) -> Result<DeviceReport> {
    let devices = parse_devices(&args.device)?;
    let device = devices[0].clone();
    let on_cpu = device.is_cpu();
    check_paths(args)?;
    std::fs::create_dir_all(&args.work)
        .with_context(|| format!("{}: cannot create", args.work.display()))?;
    let say = |m: &str| {
        if !args.quiet {
            eprintln!("▶ {m}");
        }
    };

    let (summaries, sentences) = timed_texts(args, on_cpu)?;
    let summaries_jsonl = args.work.join("summaries.jsonl");
    let sentences_jsonl = args.work.join("sentences.jsonl");
    write_jsonl(&summaries_jsonl, &summaries)?;
    write_jsonl(&sentences_jsonl, &sentences)?;

    let mut report = DeviceReport {
        tool: TOOL_VERSION.into(),
        device: args.device.clone(),
        device_name: device_name(&device),
        batch_tokens: args.batch_tokens,
        minilm_dir: args.minilm.to_string_lossy().into(),
        ember_dir: String::new(),
        summaries_jsonl: summaries_jsonl.to_string_lossy().into(),
        sentences_jsonl: sentences_jsonl.to_string_lossy().into(),
        precision: vec![],
        throughput: vec![],
    };
    if args.prepare_only {
        say(&format!("texts written under {}", args.work.display()));
        return Ok(report);
    }
    let ember = ember_checkpoint(args, &say)?;
    report.ember_dir = ember.to_string_lossy().to_string();

    let minilm = &report.minilm_dir;
    let mut precision = short_text_precision(minilm, &device, &summaries, &say)?;
    precision.extend(long_text_precision(
        minilm, &device, &sentences, on_cpu, &say,
    )?);
    report.precision = precision;

    // Throughput, forward only.
    let plans: [(&str, &str, &str, &[String]); 2] = [
        (
            "MiniLM-L6 (real weights)",
            minilm,
            "human gene summaries",
            &summaries,
        ),
        (
            "Ember-v1-shaped (seeded)",
            &report.ember_dir,
            "512-token cell sentences",
            &sentences,
        ),
    ];
    let mut throughput = vec![];
    for (model, dir, workload, texts) in plans {
        throughput.extend(throughput_rows(
            args, &devices, model, dir, workload, texts, &say,
        )?);
    }
    report.throughput = throughput;
    write_json(&args.work.join("report.json"), &report)?;
    Ok(report)
}

/// The output contract: what is written under --work may not be or hold an input.
fn check_paths(args: &DeviceCheckArgs) -> Result<()> {
    let w = |f: &str| args.work.join(f);
    let outs = [
        w("summaries.jsonl"),
        w("sentences.jsonl"),
        w("report.json"),
        w("ember-v1-shaped"),
    ];
    let outs: Vec<&Path> = outs
        .iter()
        .filter(|p| args.ember.is_none() || !p.ends_with("ember-v1-shaped"))
        .map(|p| p.as_path())
        .collect();
    let mut ins: Vec<&Path> = vec![&args.minilm];
    ins.extend(args.ember.as_deref());
    ins.extend(args.sentences.as_deref());
    crate::outputs::check_apart(&outs, &ins)?;
    if let Some(n) = args.n_sentences {
        crate::limits::check_elements(
            &format!("--n-sentences {n} (512-token sentences)"),
            n as u128 * 512,
        )?;
    }
    Ok(())
}

/// The timed texts: bundled human summaries, and cell sentences of the bundled pbmc3k cells (or
/// `--sentences`, cycled to `--n-sentences`).
fn timed_texts(args: &DeviceCheckArgs, on_cpu: bool) -> Result<(Vec<String>, Vec<String>)> {
    let corpus = SummaryCorpus::bundled(Species::Human)?;
    let n_sum = args
        .n_summaries
        .unwrap_or(if on_cpu { 64 } else { corpus.genes.len() })
        .min(corpus.genes.len());
    let summaries: Vec<String> = corpus
        .genes
        .iter()
        .take(n_sum)
        .map(|g| g.text.clone())
        .collect();
    let n_sent = args
        .n_sentences
        .unwrap_or(if on_cpu { 2 } else { 2048 })
        .max(1);
    let sentences = match &args.sentences {
        Some(p) => {
            let recs = crate::encoder::input::read_texts(p)?;
            recs.into_iter()
                .map(|r| r.text)
                .cycle()
                .take(n_sent)
                .collect()
        }
        None => cell_sentences(&args.work, n_sent)?,
    };
    Ok((summaries, sentences))
}

/// `--ember`, or a seeded Ember-v1-shaped checkpoint under `--work` (written once).
fn ember_checkpoint(args: &DeviceCheckArgs, say: &dyn Fn(&str)) -> Result<PathBuf> {
    if let Some(d) = &args.ember {
        return Ok(d.clone());
    }
    let d = args.work.join("ember-v1-shaped");
    if !d.join("model.safetensors").exists() {
        say("writing a seeded Ember-v1-shaped checkpoint (24 × 1024, 335M parameters)");
        write_random_bert(
            &d,
            Shape::named("ember-v1")?,
            &args.minilm,
            Pooling::Cls,
            args.seed,
        )?;
    }
    Ok(d)
}

/// The dtypes candle is checked and timed in.
const CHECKED_DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

fn load_encoder(
    model: &str,
    backend: BackendChoice,
    devices: Vec<Device>,
    dtype: DType,
    max_length: Option<usize>,
) -> Result<Encoder> {
    let opts = EncoderOptions {
        devices,
        dtype,
        backend,
        max_length,
        ..Default::default()
    };
    Encoder::load(model, &opts, true)
}

/// Precision against the packed CPU f32 backend: MiniLM on up to 64 summaries.
fn short_text_precision(
    minilm: &str,
    device: &Device,
    summaries: &[String],
    say: &dyn Fn(&str),
) -> Result<Vec<PrecisionRow>> {
    say("precision: MiniLM on 64 summaries, candle on the device vs the CPU f32 backend");
    let probe: Vec<String> = summaries.iter().take(64).cloned().collect();
    let probe_label = format!("{} summaries", probe.len());
    let reference = {
        let enc = load_encoder(
            minilm,
            BackendChoice::Cpu,
            vec![Device::Cpu],
            DType::F32,
            None,
        )?;
        embed_one_batch(&enc, &probe)?
    };
    let mut rows = vec![];
    for dt in CHECKED_DTYPES {
        let enc = load_encoder(
            minilm,
            BackendChoice::Candle,
            vec![device.clone()],
            dt,
            None,
        )?;
        rows.push(compare(
            "MiniLM-L6 (real weights)",
            &probe_label,
            dt,
            &embed_one_batch(&enc, &probe)?,
            &reference,
            enc.dim(),
        ));
    }
    Ok(rows)
}

/// Precision at max length 512: 512-token sentences, and a batch of a 5- and a 512-token text.
fn long_text_precision(
    minilm: &str,
    device: &Device,
    sentences: &[String],
    on_cpu: bool,
    say: &dyn Fn(&str),
) -> Result<Vec<PrecisionRow>> {
    say("precision: MiniLM at max length 512 on 512-token sentences and a 5 + 512-token batch");
    let long: Vec<String> = sentences
        .iter()
        .take(if on_cpu { 2 } else { 4 })
        .cloned()
        .collect();
    let mixed = vec!["T cell marker".to_string(), sentences[0].clone()];
    let long_label = format!("{} × 512-token sentences", long.len());
    let load512 = |backend: BackendChoice, devs: Vec<Device>, dtype: DType| {
        load_encoder(minilm, backend, devs, dtype, Some(512))
    };
    let (ref_long, ref_mixed) = {
        let enc = load512(BackendChoice::Cpu, vec![Device::Cpu], DType::F32)?;
        let lens: Vec<usize> = enc
            .tokenizer
            .encode_batch(&mixed.iter().map(String::as_str).collect::<Vec<_>>())?
            .iter()
            .map(|t| t.ids.len())
            .collect();
        if lens[1] < 512 {
            bail!(
                "cell sentences are {} tokens, expected 512 (truncated); give longer --sentences",
                lens[1]
            );
        }
        (
            embed_one_batch(&enc, &long)?,
            embed_one_batch(&enc, &mixed)?,
        )
    };
    let mut rows = vec![];
    for dt in CHECKED_DTYPES {
        let enc = load512(BackendChoice::Candle, vec![device.clone()], dt)?;
        let d = enc.dim();
        rows.push(compare(
            "MiniLM-L6 (real weights)",
            &long_label,
            dt,
            &embed_one_batch(&enc, &long)?,
            &ref_long,
            d,
        ));
        rows.push(compare(
            "MiniLM-L6 (real weights)",
            "5 + 512-token batch",
            dt,
            &embed_one_batch(&enc, &mixed)?,
            &ref_mixed,
            d,
        ));
    }
    Ok(rows)
}

/// Forward-only throughput of one model on one workload: candle in each checked dtype, and on a
/// CPU device the packed CPU f32 backend first.
fn throughput_rows(
    args: &DeviceCheckArgs,
    devices: &[Device],
    model: &str,
    dir: &str,
    workload: &str,
    texts: &[String],
    say: &dyn Fn(&str),
) -> Result<Vec<SpeedRow>> {
    let device = &devices[0];
    let mut runs: Vec<(BackendChoice, DType)> = CHECKED_DTYPES
        .iter()
        .map(|&d| (BackendChoice::Candle, d))
        .collect();
    if device.is_cpu() {
        runs.insert(0, (BackendChoice::Cpu, DType::F32));
    }
    let mut rows = vec![];
    for (backend, dt) in runs {
        say(&format!(
            "throughput: {model}, {workload}, {} {}",
            backend_label(backend, device),
            dtype_name(dt)
        ));
        let devs = if backend == BackendChoice::Cpu {
            vec![Device::Cpu]
        } else {
            devices.to_vec()
        };
        let enc = load_encoder(dir, backend, devs, dt, None)?;
        rows.push(time_forward(
            &enc,
            model,
            workload,
            texts,
            args.batch_tokens,
            args.quiet,
        )?);
    }
    Ok(rows)
}

fn backend_label(b: BackendChoice, device: &Device) -> String {
    match b {
        BackendChoice::Cpu => "cpu".into(),
        _ => format!("candle-{}", device_kind(device)),
    }
}

/// Cell sentences (genes by descending count) of the bundled pbmc3k cells; beyond the 601 cells,
/// ties are reshuffled with a new seed each round so texts differ.
fn cell_sentences(work: &Path, n: usize) -> Result<Vec<String>> {
    let path = work.join("pbmc3k_demo.h5ad");
    crate::io::atomic_write(&path, DEMO_H5AD)?;
    let read = ReadOptions {
        layer: Some("counts".into()),
        ..Default::default()
    };
    let m = crate::cells::read::read_matrix(&path, &read)?;
    let mut out = Vec::with_capacity(n);
    let mut round = 0u64;
    while out.len() < n {
        let cfg = SentenceConfig {
            ties: Ties::Shuffle { seed: round },
            ..Default::default()
        };
        let s = build_sentences(&m.x, &m.cell_ids, &m.genes, &cfg)?;
        out.extend(s.into_iter().map(|c| c.text).take(n - out.len()));
        round += 1;
    }
    Ok(out)
}

fn write_jsonl(path: &Path, texts: &[String]) -> Result<()> {
    let mut s = String::new();
    for (i, t) in texts.iter().enumerate() {
        s.push_str(&serde_json::to_string(
            &serde_json::json!({"id": i, "text": t}),
        )?);
        s.push('\n');
    }
    crate::io::atomic_write(path, s.as_bytes())
}

/// All texts as one batch (mixed lengths, so padding is exercised on padded backends).
fn embed_one_batch(enc: &Encoder, texts: &[String]) -> Result<Vec<f32>> {
    let toks = enc
        .tokenizer
        .encode_batch(&texts.iter().map(String::as_str).collect::<Vec<_>>())?;
    let seqs: Vec<&[u32]> = toks.iter().map(|t| t.ids.as_slice()).collect();
    enc.embed_tokenized(&seqs)
}

fn compare(
    model: &str,
    texts: &str,
    dt: DType,
    got: &[f32],
    want: &[f32],
    dim: usize,
) -> PrecisionRow {
    let mut min_cos = 1.0f64;
    let mut max_abs = 0.0f64;
    for (g, w) in got.chunks_exact(dim).zip(want.chunks_exact(dim)) {
        let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
        let ng: f64 = g.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        let nw: f64 = w.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        min_cos = min_cos.min(dot / (ng * nw).max(1e-30));
        for (a, b) in g.iter().zip(w) {
            max_abs = max_abs.max((*a as f64 - *b as f64).abs());
        }
    }
    PrecisionRow {
        model: model.into(),
        texts: texts.into(),
        dtype: dtype_name(dt).into(),
        n: got.len() / dim,
        min_cosine: min_cos,
        max_abs_diff: max_abs,
        all_finite: got.iter().all(|v| v.is_finite()),
    }
}

/// Tokenize, plan token-budget batches, warm up on the first batch, then time the forward passes.
fn time_forward(
    enc: &Encoder,
    model: &str,
    workload: &str,
    texts: &[String],
    batch_tokens: usize,
    quiet: bool,
) -> Result<SpeedRow> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (toks, plan, padding) = enc.plan_batches(&refs, batch_tokens)?;
    let batches: Vec<PackedBatch> = plan
        .iter()
        .map(|b| PackedBatch::gather(b, |i| toks[i].ids.as_slice()))
        .collect();
    enc.embed_batches(&batches[..1], &|_| {})?;
    let pb = crate::progress::bar(texts.len() as u64, "texts", quiet);
    let t0 = Instant::now();
    enc.embed_batches(&batches, &|n| pb.inc(n as u64))?;
    let seconds = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let padding = enc.processed_padding(padding);
    Ok(SpeedRow {
        model: model.into(),
        workload: workload.into(),
        backend: enc.identity.backend.clone(),
        dtype: enc.identity.dtype.clone(),
        n_texts: texts.len(),
        real_tokens: padding.real_tokens,
        seconds,
        tokens_per_second: padding.real_tokens as f64 / seconds.max(1e-9),
        padding_fraction: padding.padding_fraction(),
        peak_device_mib: enc
            .peak_device_memory()
            .map(|b| b as f64 / (1024.0 * 1024.0)),
    })
}

/// A human-readable device name: the GPU's, or the CPU model and core count.
pub fn device_name(device: &Device) -> String {
    if let Some(n) = candle_backend::device_name(device) {
        return n;
    }
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, {cores} cores")
}

/// The report as aligned text tables.
pub fn format_report(r: &DeviceReport) -> String {
    let mut s = format!(
        "{} device check on {} ({})\n\n",
        r.tool, r.device, r.device_name
    );
    s.push_str("Precision: candle backend on the device vs the packed CPU f32 backend\n");
    s.push_str(&format!(
        "{:<26} {:<24} {:<5} {:>4} {:>12} {:>11} {:>7}\n",
        "model", "texts", "dtype", "n", "min cosine", "max |Δ|", "finite"
    ));
    for p in &r.precision {
        s.push_str(&format!(
            "{:<26} {:<24} {:<5} {:>4} {:>12.7} {:>11.2e} {:>7}\n",
            p.model,
            p.texts,
            p.dtype,
            p.n,
            p.min_cosine,
            p.max_abs_diff,
            if p.all_finite { "yes" } else { "NO" }
        ));
    }
    s.push_str(&format!(
        "\nThroughput: forward passes only, token-budget batches of {} padded tokens\n",
        r.batch_tokens
    ));
    s.push_str(&format!(
        "{:<26} {:<26} {:<13} {:<5} {:>6} {:>9} {:>8} {:>10} {:>8} {:>9}\n",
        "model",
        "workload",
        "backend",
        "dtype",
        "texts",
        "tokens",
        "seconds",
        "tokens/s",
        "padding",
        "peak MiB"
    ));
    for t in &r.throughput {
        s.push_str(&format!(
            "{:<26} {:<26} {:<13} {:<5} {:>6} {:>9} {:>8.2} {:>10.0} {:>7.1}% {:>9}\n",
            t.model,
            t.workload,
            t.backend,
            t.dtype,
            t.n_texts,
            t.real_tokens,
            t.seconds,
            t.tokens_per_second,
            100.0 * t.padding_fraction,
            t.peak_device_mib
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}
