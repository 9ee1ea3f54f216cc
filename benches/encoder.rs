//! Encoder throughput bench: `cargo bench --bench encoder -- [options]`.
//!
//! Workloads (issue: make the CPU encoder fast):
//!   minilm          all-MiniLM-L6-v2 (real weights) on real gene summaries
//!   biobert-shaped  12×768, vocab 28,996, seeded random weights, on the same summaries
//!   ember-shaped    24×1024, 16 heads, seeded random weights, on cell sentences (≤ 512 tokens)
//!   bert-base-shaped  12×768, `celltext synth-model --shape bert-base` (seeded random weights,
//!                   MiniLM's bert-base-uncased tokenizer, CLS pooling), on cell sentences (≤ 512)
//! `--model DIR` replaces any workload's model (e.g. a `celltext synth-model` folder).
//! Reports tokens/s, sequences/s, padding, peak RSS, model FLOP/s and that as a fraction of the
//! f32 GEMM rate of the same run through the encoder's own kernel (`encoder::backends::cpu::sgemm`, 2048³). `--gemm-shapes`
//! prints that kernel's rate at each workload's linear-layer shapes. With `--plan-out` it writes the
//! exact texts and batches for `benches/pytorch_twin.py` and `benches/onnx_twin.py`; with
//! `--vectors-out` the pooled vectors of the last timed run (.npy, rows in text order), which the
//! peers' cosines are measured against.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use celltext::encoder::{resolve, Encoder, EncoderOptions, TokenBudgetBatcher};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Opts {
    workload: String,
    model: Option<String>,
    texts: Option<PathBuf>,
    n: usize,
    repeats: usize,
    batch_tokens: usize,
    plan_out: Option<PathBuf>,
    vectors_out: Option<PathBuf>,
    gemm: bool,
    gemm_shapes: bool,
    json: bool,
    dtype: String,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        workload: "minilm".into(),
        model: None,
        texts: None,
        n: 1000,
        repeats: 3,
        batch_tokens: 8192,
        plan_out: None,
        vectors_out: None,
        gemm: false,
        gemm_shapes: false,
        json: false,
        dtype: "f32".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--workload" => o.workload = val()?,
            "--model" => o.model = Some(val()?),
            "--texts" => o.texts = Some(val()?.into()),
            "--n" => o.n = val()?.parse()?,
            "--repeats" => o.repeats = val()?.parse()?,
            "--batch-tokens" => o.batch_tokens = val()?.parse()?,
            "--plan-out" => o.plan_out = Some(val()?.into()),
            "--vectors-out" => o.vectors_out = Some(val()?.into()),
            "--gemm" => o.gemm = true,
            "--gemm-shapes" => o.gemm_shapes = true,
            "--json" => o.json = true,
            "--dtype" => o.dtype = val()?,
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Sustained f32 GEMM rate through the encoder's own linear-layer kernel (`encoder::sgemm`,
/// the path every projection takes), best of 5 at an [m, k]·[k, n] shape (2048³ for the table).
/// The encoder's own GEMM rate at [m, k] × [k, n], best of 5: f32 (`sgemm`) or, with `int8`,
/// the dynamic-quantization kernel (`qgemm`, activation quantization included), in G(FL)OP/s.
fn gemm_gflops(m: usize, k: usize, n: usize, int8: bool) -> f64 {
    use celltext::encoder::backends::cpu::{qgemm, sgemm};
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104729) % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let b = vec![0f32; n];
    let mut out = vec![0f32; m * n];
    let run: Box<dyn Fn(&mut [f32])> = if int8 {
        let qw = qgemm::QuantizedWeights::quantize(&w, k, n);
        Box::new(move |o| qgemm::linear(&x, m, &qw, &b, None, sgemm::Act::None, o))
    } else {
        let pw = sgemm::PackedWeights::pack(&w, k, n);
        Box::new(move |o| sgemm::linear(&x, m, &pw, &b, None, sgemm::Act::None, o))
    };
    run(&mut out);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        run(&mut out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// A BERT checkpoint with seeded random weights (safetensors) and a vocab.txt cut to `vocab`.
fn synthetic_model(
    dir: &Path,
    layers: usize,
    hidden: usize,
    heads: usize,
    inter: usize,
    vocab: usize,
    minilm: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let cfg = serde_json::json!({"vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": inter, "hidden_act": "gelu", "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "model_type": "bert", "pad_token_id": 0});
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
    // vocab: MiniLM's (bert-base-uncased) first `vocab` entries; tokens past the cut become [UNK]
    let v = std::fs::read_to_string(minilm.join("vocab.txt"))
        .context("MiniLM vocab.txt (run scripts/fetch_minilm.sh)")?;
    let cut: Vec<&str> = v.lines().take(vocab).collect();
    std::fs::write(dir.join("vocab.txt"), cut.join("\n") + "\n")?;
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true}"#,
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut tensors = std::collections::HashMap::new();
    let mut add =
        |name: String, shape: Vec<usize>, rng: &mut rand_chacha::ChaCha8Rng| -> Result<()> {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.05f32..0.05)).collect();
            tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
            Ok(())
        };
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![vocab, hidden],
        &mut rng,
    )?;
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![512, hidden],
        &mut rng,
    )?;
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, hidden],
        &mut rng,
    )?;
    let mut lns = vec!["embeddings.LayerNorm".to_string()];
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for (m, o, i) in [
            ("attention.self.query", hidden, hidden),
            ("attention.self.key", hidden, hidden),
            ("attention.self.value", hidden, hidden),
            ("attention.output.dense", hidden, hidden),
            ("intermediate.dense", inter, hidden),
            ("output.dense", hidden, inter),
        ] {
            add(format!("{p}.{m}.weight"), vec![o, i], &mut rng)?;
            add(format!("{p}.{m}.bias"), vec![o], &mut rng)?;
        }
        lns.push(format!("{p}.attention.output.LayerNorm"));
        lns.push(format!("{p}.output.LayerNorm"));
    }
    for ln in lns {
        tensors.insert(
            format!("{ln}.weight"),
            Tensor::ones(hidden, DType::F32, &Device::Cpu)?,
        );
        tensors.insert(
            format!("{ln}.bias"),
            Tensor::zeros(hidden, DType::F32, &Device::Cpu)?,
        );
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

fn main() -> Result<()> {
    let o = parse()?;
    if o.gemm_shapes {
        // the linear-layer shapes of the three workloads at an 8192-token batch
        for (m, k, n) in [
            (8192, 384, 1152),
            (8192, 384, 384),
            (8192, 384, 1536),
            (8192, 1536, 384),
            (8192, 768, 2304),
            (8192, 768, 3072),
            (8192, 3072, 768),
            (8192, 1024, 4096),
            (4096, 1024, 1024),
        ] {
            println!(
                "{m}x{k}x{n}\tf32 {:.1} GFLOP/s\tint8 {:.1} GOP/s\t{}",
                gemm_gflops(m, k, n, false),
                gemm_gflops(m, k, n, true),
                celltext::encoder::backends::cpu::features::simd_path().name()
            );
        }
        return Ok(());
    }
    let minilm =
        resolve::resolve("minilm", true).context("MiniLM weights: run scripts/fetch_minilm.sh")?;
    let tmp = std::env::temp_dir().join("celltext-bench-models");
    let (model_dir, default_texts): (PathBuf, &str) = match o.workload.as_str() {
        "minilm" => (
            o.model
                .clone()
                .map(PathBuf::from)
                .unwrap_or(minilm.dir.clone()),
            "summaries",
        ),
        _ if o.model.is_some() => (
            PathBuf::from(o.model.clone().unwrap_or_default()),
            if o.workload == "minilm" || o.workload == "biobert-shaped" {
                "summaries"
            } else {
                "sentences"
            },
        ),
        "bert-base-shaped" => {
            let d = tmp.join("bert-base-shaped");
            if !d.join("model.safetensors").exists() {
                celltext::encoder::synth::write_random_bert(
                    &d,
                    celltext::encoder::synth::Shape::named("bert-base")?,
                    &minilm.dir,
                    celltext::encoder::Pooling::Cls,
                    0,
                )?;
            }
            (d, "sentences")
        }
        "biobert-shaped" => {
            let d = tmp.join("biobert-shaped");
            if !d.join("model.safetensors").exists() {
                synthetic_model(&d, 12, 768, 12, 3072, 28_996, &minilm.dir)?;
            }
            (d, "summaries")
        }
        "ember-shaped" => {
            let d = tmp.join("ember-shaped");
            if !d.join("model.safetensors").exists() {
                synthetic_model(&d, 24, 1024, 16, 4096, 30_522, &minilm.dir)?;
            }
            (d, "sentences")
        }
        w => anyhow::bail!(
            "unknown workload {w}; use minilm, biobert-shaped, bert-base-shaped or ember-shaped"
        ),
    };
    let texts: Vec<String> = match &o.texts {
        Some(p) => celltext::encoder::input::read_texts(p)?.into_iter().map(|r| r.text).take(o.n).collect(),
        None if default_texts == "summaries" => {
            let c = celltext::genes::SummaryCorpus::bundled(celltext::genes::Species::Human)?;
            c.genes.into_iter().map(|g| g.text).take(o.n).collect()
        }
        None => anyhow::bail!("workload {} needs --texts FILE (cell sentences JSONL, e.g. from `celltext cells sentences`)", o.workload),
    };
    let resolved = resolve::resolve(model_dir.to_str().unwrap(), true)?;
    let max_length = if o.workload == "minilm" {
        None
    } else {
        Some(512)
    };
    let enc = Encoder::load_resolved(&resolved, &{
        let mut opts = EncoderOptions {
            max_length,
            ..Default::default()
        };
        opts.set_dtype(&o.dtype)?;
        opts
    })?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let toks = enc.tokenizer.encode_batch(&refs)?;
    let lengths: Vec<usize> = toks.iter().map(|t| t.ids.len()).collect();
    let (batches, padding) = TokenBudgetBatcher::new(o.batch_tokens, 512).batches(&lengths);
    if let Some(p) = &o.plan_out {
        let plan = serde_json::json!({"texts": texts, "batches": batches, "model_dir": model_dir, "tokenizer_dir": model_dir,
            "max_length": enc.identity.max_length, "pooling": enc.pooling.to_string(), "workload": o.workload});
        std::fs::write(p, serde_json::to_string(&plan)?)?;
    }
    let cfg = &enc.config;
    let (h, i, l) = (
        cfg.hidden_size as f64,
        cfg.intermediate_size as f64,
        cfg.num_hidden_layers as f64,
    );
    // useful model FLOPs: real tokens only (the CPU path computes no padding); 2·params per
    // token for the projections plus 4·len·hidden per token per layer for QKᵀ and PV
    let mut flops = 0f64;
    for &len in &lengths {
        let len = len as f64;
        flops += len * l * (2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * len * h);
    }
    let _ = enc.embed_texts(&refs[..refs.len().min(64)], o.batch_tokens, None)?; // warm-up
    let mut secs = vec![];
    let mut last = None;
    for _ in 0..o.repeats {
        let t = Instant::now();
        let out = enc.embed_texts(&refs, o.batch_tokens, None)?;
        secs.push(t.elapsed().as_secs_f64());
        assert_eq!(out.data.len(), texts.len() * enc.dim());
        last = Some(out);
    }
    if let (Some(p), Some(out)) = (&o.vectors_out, &last) {
        celltext::io::write_npy_f32(p, &out.data, texts.len(), enc.dim())?;
    }
    secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = secs[secs.len() / 2];
    let gemm = if o.gemm {
        Some(gemm_gflops(2048, 2048, 2048, enc.identity.dtype == "int8"))
    } else {
        None
    };
    let model_gflops = flops / med / 1e9;
    let row = serde_json::json!({
        "impl": "celltext", "workload": o.workload, "texts": texts.len(), "batches": batches.len(),
        "threads": rayon::current_num_threads(), "seconds": med, "runs": secs,
        "tokens": padding.real_tokens, "tokens_per_s": padding.real_tokens as f64 / med,
        "seqs_per_s": texts.len() as f64 / med, "padding_fraction": enc.processed_padding(padding.clone()).padding_fraction(),
        "batch_plan_padding_fraction": padding.padding_fraction(),
        "peak_rss_mib": peak_rss_mib(), "model_gflops": model_gflops, "gemm_gflops": gemm,
        "fraction_of_gemm_peak": gemm.map(|g| model_gflops / g), "gemm_kernel": celltext::encoder::backends::cpu::sgemm::kernel_name(),
        "dtype": enc.identity.dtype, "cpu_kernels": enc.identity.cpu_kernels,
    });
    if o.json {
        println!("{row}");
    } else {
        println!("{}", serde_json::to_string_pretty(&row)?);
    }
    Ok(())
}
