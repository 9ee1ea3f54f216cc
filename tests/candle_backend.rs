//! The candle backend, forced on the CPU, against the same committed PyTorch references as the
//! packed CPU backend (f32: max |Δ| ≤ 1e-4; sentence-transformers cosine ≥ 0.99999), against the
//! packed backend itself (max |Δ| ≤ 1e-4), and in f16/bf16 against PyTorch run in the same dtype
//! (tests/fixtures/make_half_refs.py: cosine ≥ 0.999 f16, ≥ 0.99 bf16, no NaN/inf), including a
//! 512-token sequence and one batch of a 5-token and a 512-token sequence. Also: the multi-device
//! scheduler (two candle-CPU workers) keeps order and is bit-identical to one worker.

mod common;
use common::*;

use candle_core::{DType, Device};
use celltext::encoder::{BackendChoice, Encoder, EncoderOptions, PackedBatch, Pooling};

fn candle_opts() -> EncoderOptions {
    EncoderOptions {
        backend: BackendChoice::Candle,
        ..Default::default()
    }
}

fn ids_batch(enc: &Encoder, ids: &[Vec<u32>]) -> Vec<f32> {
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    enc.embed_tokenized(&seqs).unwrap()
}

fn min_cosine(a: &[f32], b: &[f32], d: usize) -> f64 {
    a.chunks_exact(d)
        .zip(b.chunks_exact(d))
        .map(|(x, y)| cosine(x, y))
        .fold(1.0, f64::min)
}

#[test]
fn auto_picks_packed_cpu_for_f32_and_candle_otherwise() {
    let dir = fixtures().join("models/ember-like");
    assert_eq!(
        load_dir(&dir, EncoderOptions::default()).identity.backend,
        "cpu"
    );
    assert_eq!(load_dir(&dir, candle_opts()).identity.backend, "candle-cpu");
    let half = EncoderOptions {
        dtype: DType::F16,
        ..Default::default()
    };
    assert_eq!(load_dir(&dir, half).identity.backend, "candle-cpu");
    // the packed path refuses what it cannot run, with the fix in the message
    let resolved = celltext::encoder::resolve::resolve(dir.to_str().unwrap(), true).unwrap();
    let bad = EncoderOptions {
        dtype: DType::BF16,
        backend: BackendChoice::Cpu,
        ..Default::default()
    };
    let err = Encoder::load_resolved(&resolved, &bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--backend candle"), "{err}");
}

#[test]
fn minilm_candle_matches_transformers_and_the_packed_backend() {
    let Some(dir) = minilm_dir() else { return };
    let texts = texts();
    let candle = load_dir(&dir, candle_opts());
    let packed = load_dir(&dir, EncoderOptions::default());
    let got = embed_all_one_batch(&candle, &texts);
    let (want, n, d) = npy(&fixtures().join("minilm/mean.npy"));
    assert_eq!((n, d), (64, 384));
    let diff = max_abs_diff(&got, &want);
    eprintln!("candle-cpu MiniLM mean vs transformers: max |Δ| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δ| {diff}");
    let vs_packed = max_abs_diff(&got, &embed_all_one_batch(&packed, &texts));
    eprintln!("candle-cpu vs packed cpu: max |Δ| = {vs_packed:e}");
    assert!(vs_packed <= 1e-4, "max |Δ| {vs_packed}");

    let cls = load_dir(
        &dir,
        EncoderOptions {
            pooling: Some(Pooling::Cls),
            ..candle_opts()
        },
    );
    let (want, _, _) = npy(&fixtures().join("minilm/cls.npy"));
    let diff = max_abs_diff(&embed_all_one_batch(&cls, &texts), &want);
    assert!(diff <= 1e-4, "CLS max |Δ| {diff}");
}

#[test]
fn minilm_candle_normalized_matches_sentence_transformers_in_budget_batches() {
    let Some(dir) = minilm_dir() else { return };
    let texts = texts();
    let enc = load_dir(
        &dir,
        EncoderOptions {
            normalize: true,
            ..candle_opts()
        },
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = enc.embed_texts(&refs, 2048, None).unwrap();
    let (want, _, d) = npy(&fixtures().join("minilm/st_normalized.npy"));
    let worst = min_cosine(&out.data, &want, d);
    eprintln!("candle-cpu MiniLM vs sentence-transformers: min cosine = {worst:.9}");
    assert!(worst >= 0.99999, "min cosine {worst}");
    assert!(max_abs_diff(&out.data, &want) <= 1e-4);
    // the padded backend reports the padding it computed (the packed one reports none)
    assert!(out.padding.padded_tokens > out.padding.real_tokens);
    let lengths: Vec<usize> = texts
        .iter()
        .map(|t| enc.tokenizer.encode(t).unwrap().ids.len())
        .collect();
    let (_, plan) = celltext::encoder::TokenBudgetBatcher::new(2048, 512).batches(&lengths);
    assert_eq!(out.padding, plan);
}

fn check_fixture(name: &str, pooling: Option<Pooling>, reference: &str) {
    let dir = fixtures().join("models").join(name);
    let texts = texts();
    let enc = load_dir(
        &dir,
        EncoderOptions {
            pooling,
            ..candle_opts()
        },
    );
    let (want, n, _) = npy(&dir.join(reference));
    assert_eq!(n, texts.len());
    // token-budget batches (little padding: one 64-text padded batch of these 24-layer fixtures
    // costs a minute on two cores); padding inside a batch is covered by the MiniLM tests
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = enc.embed_texts(&refs, 4096, None).unwrap().data;
    let diff = max_abs_diff(&got, &want);
    eprintln!("candle-cpu {name} {reference}: max |Δ| = {diff:e}");
    assert!(diff <= 1e-4, "{name}: max |Δ| {diff}");
}

#[test]
fn biobert_scibert_ember_shaped_fixtures_on_candle() {
    check_fixture("biobert-like", None, "ref.npy");
    check_fixture("scibert-like", None, "ref.npy");
    check_fixture("scibert-like", Some(Pooling::Max), "ref_max.npy");
    check_fixture("ember-like", None, "ref.npy");
}

#[derive(serde::Deserialize)]
struct LongIds {
    long_text_index: usize,
    long: Vec<u32>,
    short_text: String,
    short: Vec<u32>,
}

#[test]
fn minilm_half_precision_matches_pytorch_in_the_same_dtype() {
    let Some(dir) = minilm_dir() else { return };
    let half = fixtures().join("minilm/half");
    let ids: LongIds =
        serde_json::from_str(&std::fs::read_to_string(half.join("long_ids.json")).unwrap())
            .unwrap();
    let ids64 = token_ids(&fixtures().join("minilm/token_ids.json"));
    let texts = texts();
    for (dtype, name, min_cos) in [(DType::F16, "f16", 0.999), (DType::BF16, "bf16", 0.99)] {
        let enc = load_dir(
            &dir,
            EncoderOptions {
                dtype,
                max_length: Some(512),
                ..Default::default()
            },
        );
        assert_eq!(enc.identity.backend, "candle-cpu");
        // the 512-token inputs are our own tokenization of the same texts
        assert_eq!(
            enc.tokenizer
                .encode(&texts[ids.long_text_index])
                .unwrap()
                .ids,
            ids.long
        );
        assert_eq!(
            enc.tokenizer.encode(&ids.short_text).unwrap().ids,
            ids.short
        );
        assert_eq!((ids.long.len(), ids.short.len()), (512, 5));
        let d = enc.dim();
        for (what, got) in [
            ("mean64", ids_batch(&enc, &ids64)),
            ("long", ids_batch(&enc, std::slice::from_ref(&ids.long))),
            (
                "mixed",
                ids_batch(&enc, &[ids.short.clone(), ids.long.clone()]),
            ),
        ] {
            let (want, n, _) = npy(&half.join(format!("{name}_{what}.npy")));
            assert_eq!(got.len(), n * d);
            assert!(got.iter().all(|v| v.is_finite()), "{name} {what}: NaN/inf");
            let worst = min_cosine(&got, &want, d);
            eprintln!("candle-cpu MiniLM {name} vs PyTorch {name} ({what}): min cosine {worst:.6}, max |Δ| {:e}", max_abs_diff(&got, &want));
            assert!(worst >= min_cos, "{name} {what}: min cosine {worst}");
        }
    }
}

#[test]
fn two_workers_keep_order_and_match_one_worker_bit_for_bit() {
    let dir = fixtures().join("models/scibert-like");
    let one = load_dir(&dir, candle_opts());
    let two = load_dir(
        &dir,
        EncoderOptions {
            devices: vec![Device::Cpu, Device::Cpu],
            ..candle_opts()
        },
    );
    assert_eq!(two.n_workers(), 2);
    let texts = texts();
    let toks: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| one.tokenizer.encode(t).unwrap().ids)
        .collect();
    // many small batches of different shapes, so both workers take several, in any order
    let batches: Vec<PackedBatch> = toks.chunks(3).map(PackedBatch::from_seqs).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let a = one.embed_batches(&batches, &|_| {}).unwrap();
    let b = two
        .embed_batches(&batches, &|n| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(
        done.into_inner(),
        texts.len(),
        "progress counts every text once"
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // and through the text API with its token-budget batching
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(
        one.embed_texts(&refs, 512, None).unwrap().data,
        two.embed_texts(&refs, 512, None).unwrap().data
    );
}

#[test]
fn bad_ids_and_lengths_are_refused_before_any_device_sees_them() {
    let dir = fixtures().join("models/ember-like");
    for opts in [EncoderOptions::default(), candle_opts()] {
        let enc = load_dir(&dir, opts);
        let err = enc
            .embed_tokenized(&[&[2, 999_999, 3]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the model's vocabulary"), "{err}");
        let long = vec![5u32; 513];
        let err = enc.embed_tokenized(&[&long]).unwrap_err().to_string();
        assert!(err.contains("max_position_embeddings"), "{err}");
    }
}

#[test]
fn device_lists_parse_and_refuse_mixtures() {
    use celltext::encoder::parse_devices;
    assert_eq!(parse_devices("cpu").unwrap().len(), 1);
    assert_eq!(parse_devices("cpu,cpu").unwrap().len(), 2);
    assert!(parse_devices("cpu,cuda:0")
        .unwrap_err()
        .to_string()
        .contains("one kind"));
    assert!(parse_devices("cpu,")
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(parse_devices("tpu")
        .unwrap_err()
        .to_string()
        .contains("unknown device"));
}

#[test]
fn device_check_dry_run_on_the_cpu_prints_the_full_report() {
    let Some(minilm) = minilm_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let args = celltext::app::device_check::DeviceCheckArgs {
        device: "cpu".into(),
        minilm,
        // the tiny Ember-shaped fixture stands in for the 335M-parameter checkpoint
        ember: Some(fixtures().join("models/ember-like")),
        work: work.path().to_path_buf(),
        n_summaries: Some(12),
        n_sentences: Some(2),
        sentences: None,
        prepare_only: false,
        batch_tokens: 4096,
        seed: 0,
        quiet: true,
    };
    let r = celltext::app::device_check::run_device_check(&args).unwrap();
    // precision: 3 dtypes × (summaries, 512-token sentences, 5 + 512 batch), all close and finite
    assert_eq!(r.precision.len(), 9);
    for p in &r.precision {
        let floor = match p.dtype.as_str() {
            "f32" => 0.99999,
            "f16" => 0.999,
            _ => 0.99,
        };
        assert!(p.all_finite && p.min_cosine >= floor, "{p:?}");
    }
    // throughput: packed CPU + candle f32/f16/bf16 for both workloads, with real token counts
    assert_eq!(r.throughput.len(), 8);
    assert!(r
        .throughput
        .iter()
        .all(|t| t.real_tokens > 0 && t.tokens_per_second > 0.0));
    assert!(r
        .throughput
        .iter()
        .filter(|t| t.backend == "cpu")
        .all(|t| t.padding_fraction == 0.0));
    let text = celltext::app::device_check::format_report(&r);
    assert!(
        text.contains("Precision") && text.contains("Throughput") && text.contains("candle-cpu"),
        "{text}"
    );
    assert!(work.path().join("report.json").exists());
    assert_eq!(
        std::fs::read_to_string(work.path().join("sentences.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn device_check_and_synth_model_refuse_bad_input_clearly() {
    let Some(minilm) = minilm_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    // sentences too short for the 512-token precision rows: refused, naming the option to fix
    let short = work.path().join("short.jsonl");
    std::fs::write(
        &short,
        "{\"text\": \"A cell with genes ranked by expression: CD3E CD2\"}\n",
    )
    .unwrap();
    let args = celltext::app::device_check::DeviceCheckArgs {
        device: "cpu".into(),
        minilm: minilm.clone(),
        ember: Some(fixtures().join("models/ember-like")),
        work: work.path().join("w"),
        n_summaries: Some(2),
        n_sentences: Some(1),
        sentences: Some(short),
        prepare_only: false,
        batch_tokens: 4096,
        seed: 0,
        quiet: true,
    };
    let err = format!(
        "{:#}",
        celltext::app::device_check::run_device_check(&args).unwrap_err()
    );
    assert!(
        err.contains("expected 512") && err.contains("--sentences"),
        "{err}"
    );
    // an empty sentences file names the file
    let empty = work.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let args = celltext::app::device_check::DeviceCheckArgs {
        sentences: Some(empty),
        ..args
    };
    let err = format!(
        "{:#}",
        celltext::app::device_check::run_device_check(&args).unwrap_err()
    );
    assert!(err.contains("empty.txt") && err.contains("empty"), "{err}");

    use celltext::encoder::synth::{write_random_bert, Shape};
    let err = Shape::named("gpt-9").unwrap_err().to_string();
    assert!(
        err.contains("unknown shape") && err.contains("ember-v1"),
        "{err}"
    );
    let not_a_model = work.path().join("nothing");
    std::fs::create_dir_all(&not_a_model).unwrap();
    let err = format!(
        "{:#}",
        write_random_bert(
            &work.path().join("out"),
            Shape::named("minilm").unwrap(),
            &not_a_model,
            Pooling::Mean,
            0
        )
        .unwrap_err()
    );
    assert!(
        err.contains("config.json") && err.contains("tokenizer source"),
        "{err}"
    );
}

#[test]
fn synth_model_is_seeded_and_loads() {
    let work = tempfile::tempdir().unwrap();
    let shape = celltext::encoder::synth::Shape {
        layers: 2,
        hidden: 32,
        heads: 4,
        intermediate: 64,
    };
    let tok = fixtures().join("models/ember-like");
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    celltext::encoder::synth::write_random_bert(&a, shape, &tok, Pooling::Cls, 7).unwrap();
    celltext::encoder::synth::write_random_bert(&b, shape, &tok, Pooling::Cls, 7).unwrap();
    let bytes = |d: &std::path::Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "same seed, same bytes");
    let enc = load_dir(&a, EncoderOptions::default());
    assert_eq!(
        (enc.pooling, enc.dim(), enc.config.num_hidden_layers),
        (Pooling::Cls, 32, 2)
    );
    let v = embed_all_one_batch(&enc, &texts()[..4]);
    assert!(v.iter().all(|x| x.is_finite()));
}
