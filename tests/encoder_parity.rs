//! Parity of the encoder against PyTorch / Hugging Face references committed under
//! tests/fixtures (made by tests/fixtures/make_fixtures.py). Tolerances: per-element
//! max |Δ| ≤ 1e-4 against transformers' pooled last_hidden_state; cosine ≥ 0.99999 against
//! sentence-transformers' normalized output; token ids identical.

mod common;
use common::*;

use candle_core::DType;
use celltext::encoder::{EncoderOptions, Pooling, TextTokenizer};

#[test]
fn minilm_token_ids_match_hf() {
    let Some(dir) = minilm_dir() else { return };
    let tok = TextTokenizer::from_dir(&dir, 256, None, Some(true)).unwrap();
    let expected = token_ids(&fixtures().join("minilm/token_ids.json"));
    let texts = texts();
    assert!(texts.len() >= 50);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(tok.encode(t).unwrap().ids, expected[i], "text {i}: {t:.60}");
    }
}

#[test]
fn minilm_mean_and_cls_match_transformers_in_one_mixed_batch() {
    let Some(dir) = minilm_dir() else { return };
    let texts = texts();
    let enc = load_dir(&dir, EncoderOptions::default());
    assert_eq!(
        enc.pooling,
        Pooling::Mean,
        "pooling comes from 1_Pooling/config.json"
    );
    assert_eq!(
        enc.identity.max_length, 256,
        "max length comes from sentence_bert_config.json"
    );
    let got = embed_all_one_batch(&enc, &texts);
    let (want, n, d) = npy(&fixtures().join("minilm/mean.npy"));
    assert_eq!((n, d), (texts.len(), 384));
    let diff = max_abs_diff(&got, &want);
    eprintln!("MiniLM mean pooling: max |Δ| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δ| {diff}");

    let enc = load_dir(
        &dir,
        EncoderOptions {
            pooling: Some(Pooling::Cls),
            ..Default::default()
        },
    );
    let got = embed_all_one_batch(&enc, &texts);
    let (want, _, _) = npy(&fixtures().join("minilm/cls.npy"));
    let diff = max_abs_diff(&got, &want);
    eprintln!("MiniLM CLS pooling: max |Δ| = {diff:e}");
    assert!(diff <= 1e-4, "max |Δ| {diff}");
}

#[test]
fn minilm_normalized_matches_sentence_transformers_with_token_budget_batches() {
    let Some(dir) = minilm_dir() else { return };
    let texts = texts();
    let enc = load_dir(
        &dir,
        EncoderOptions {
            normalize: true,
            ..Default::default()
        },
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // a small budget forces many batches of different shapes
    let out = enc.embed_texts(&refs, 2048, None).unwrap();
    let (want, _, d) = npy(&fixtures().join("minilm/st_normalized.npy"));
    let mut worst = 1.0f64;
    for i in 0..texts.len() {
        worst = worst.min(cosine(
            &out.data[i * d..(i + 1) * d],
            &want[i * d..(i + 1) * d],
        ));
    }
    eprintln!("MiniLM vs sentence-transformers: min cosine = {worst:.9}");
    assert!(worst >= 0.99999, "min cosine {worst}");
    assert!(max_abs_diff(&out.data, &want) <= 1e-4);
    assert!(
        out.n_truncated > 0,
        "the fixture texts include summaries longer than 256 tokens"
    );
}

fn check_fixture(name: &str, opts: EncoderOptions, expect_pooling: Pooling, reference: &str) {
    let dir = fixtures().join("models").join(name);
    let texts = texts();
    let enc = load_dir(&dir, opts);
    assert_eq!(enc.pooling, expect_pooling, "{name}");
    let expected_ids = token_ids(&dir.join("token_ids.json"));
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            enc.tokenizer.encode(t).unwrap().ids,
            expected_ids[i],
            "{name} text {i}: {t:.60}"
        );
    }
    let got = embed_all_one_batch(&enc, &texts);
    let (want, n, _) = npy(&dir.join(reference));
    assert_eq!(n, texts.len());
    let diff = max_abs_diff(&got, &want);
    eprintln!("{name} {reference}: max |Δ| = {diff:e}");
    assert!(diff <= 1e-4, "{name}: max |Δ| {diff}");
}

#[test]
fn biobert_like_legacy_pickle_cased_vocab_gamma_beta() {
    // casing comes from the vocabulary guess (no tokenizer_config.json), as for the real v1.1
    check_fixture(
        "biobert-like",
        EncoderOptions::default(),
        Pooling::Mean,
        "ref.npy",
    );
    // and explicitly, as the biobert card does
    check_fixture(
        "biobert-like",
        EncoderOptions {
            lowercase: Some(false),
            ..Default::default()
        },
        Pooling::Mean,
        "ref.npy",
    );
}

#[test]
fn scibert_like_zip_bin_uncased_vocab() {
    check_fixture(
        "scibert-like",
        EncoderOptions::default(),
        Pooling::Mean,
        "ref.npy",
    );
    check_fixture(
        "scibert-like",
        EncoderOptions {
            pooling: Some(Pooling::Max),
            ..Default::default()
        },
        Pooling::Max,
        "ref_max.npy",
    );
}

#[test]
fn ember_like_safetensors_tokenizer_json_cls_pooling() {
    check_fixture(
        "ember-like",
        EncoderOptions::default(),
        Pooling::Cls,
        "ref.npy",
    );
}

#[test]
fn half_precision_has_no_nan() {
    // The 24-layer random ember-like model amplifies rounding, so here only finiteness is checked
    // (the f16 mask-bias overflow produced NaN in stock candle); closeness is checked on MiniLM.
    let dir = fixtures().join("models").join("ember-like");
    let texts: Vec<String> = texts().into_iter().take(12).collect();
    for dtype in [DType::BF16, DType::F16] {
        let enc = load_dir(
            &dir,
            EncoderOptions {
                dtype,
                ..Default::default()
            },
        );
        let got = embed_all_one_batch(&enc, &texts);
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{dtype:?} produced NaN/inf"
        );
    }
}

#[test]
fn half_precision_minilm_stays_close() {
    let Some(dir) = minilm_dir() else { return };
    // mixed lengths in one padded batch: the mask bias must survive the cast
    let texts: Vec<String> = texts().into_iter().step_by(6).collect();
    let f32_out = embed_all_one_batch(&load_dir(&dir, EncoderOptions::default()), &texts);
    for (dtype, min_cos) in [(DType::BF16, 0.99), (DType::F16, 0.999)] {
        let enc = load_dir(
            &dir,
            EncoderOptions {
                dtype,
                ..Default::default()
            },
        );
        let got = embed_all_one_batch(&enc, &texts);
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{dtype:?} produced NaN/inf"
        );
        let d = enc.dim();
        let worst = (0..texts.len())
            .map(|i| cosine(&got[i * d..(i + 1) * d], &f32_out[i * d..(i + 1) * d]))
            .fold(1.0, f64::min);
        eprintln!("MiniLM {dtype:?} vs f32: min cosine {worst:.6}");
        assert!(worst > min_cos, "{dtype:?}: min cosine {worst}");
    }
}

#[test]
fn convert_writes_equivalent_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixtures().join("models").join("biobert-like"), &dir);
    let out = celltext::encoder::pipeline::convert(&dir).unwrap();
    assert!(out.exists());
    let texts = texts();
    // with model.safetensors present the loader prefers it over the .bin
    std::fs::remove_file(dir.join("pytorch_model.bin")).unwrap();
    let enc = load_dir(&dir, EncoderOptions::default());
    let got = embed_all_one_batch(&enc, &texts);
    let (want, _, _) = npy(&fixtures().join("models/biobert-like/ref.npy"));
    assert!(max_abs_diff(&got, &want) <= 1e-4);
}

#[test]
fn config_sizes_are_checked_against_the_weights_before_allocation() {
    // 2^60 layers used to abort in Vec::with_capacity; a huge vocabulary or width would exhaust memory
    for (field, value) in [
        ("num_hidden_layers", 1u64 << 60),
        ("num_hidden_layers", 25),
        ("vocab_size", 1_000_000_000_000),
        ("max_position_embeddings", 1 << 40),
        ("intermediate_size", 1 << 40),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        copy_dir(&fixtures().join("models").join("ember-like"), &dir);
        let path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg[field] = serde_json::json!(value);
        std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
        let resolved = celltext::encoder::resolve::resolve(dir.to_str().unwrap(), true).unwrap();
        for backend in [
            celltext::encoder::BackendChoice::Cpu,
            celltext::encoder::BackendChoice::Candle,
        ] {
            let opts = EncoderOptions {
                backend,
                ..Default::default()
            };
            let err = celltext::encoder::Encoder::load_resolved(&resolved, &opts)
                .err()
                .expect(field);
            let msg = format!("{err:#}");
            assert!(
                msg.contains(field) && msg.contains("config.json"),
                "{field}={value}: {msg}"
            );
        }
    }
}

#[test]
fn tokenizer_setup_warnings_are_returned_not_printed() {
    let models = fixtures().join("models");
    // vocab.txt without a declared casing: guessed, and the caller is told how
    let t = TextTokenizer::from_dir(&models.join("biobert-like"), 64, None, None).unwrap();
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert!(
        t.warnings[0].contains("casing not declared") && t.warnings[0].contains("--cased"),
        "{:?}",
        t.warnings
    );
    // declared on the command line: nothing to say
    let t = TextTokenizer::from_dir(&models.join("biobert-like"), 64, Some(false), None).unwrap();
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    // tokenizer.json has its own normalizer: a casing flag is ignored, and that is said
    let t = TextTokenizer::from_dir(&models.join("ember-like"), 64, Some(true), None).unwrap();
    assert!(
        t.warnings.len() == 1 && t.warnings[0].contains("--lowercase/--cased is ignored"),
        "{:?}",
        t.warnings
    );
}
