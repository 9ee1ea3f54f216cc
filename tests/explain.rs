//! `celltext explain`: integrated gradients checked against PyTorch and against the completeness
//! axiom, and the command end to end on the bundled pbmc3k subset.
//!
//! References: tests/fixtures/explain/make_torch_ref.py (transformers BertModel fed
//! `inputs_embeds`, fp32, CPU; a fixed seeded MLP on the mean-pooled all-MiniLM-L6-v2 output).
//! Tolerances: target logit |Δ| ≤ 1e-4; gradient w.r.t. the input word embeddings max |Δ| ≤ 1e-3
//! of the largest |gradient| of that sentence and per-token gradient norms within 1e-3 relative;
//! 32-step IG token attributions max |Δ| ≤ 1e-3 of the largest |attribution|. Completeness:
//! Σ attributions within 1 % of f(x) − f(baseline).

mod common;
use common::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use celltext::classify::mlp::{Fusion, TrainedMlp};
use celltext::encoder::backends::candle::CandleBackend;
use celltext::encoder::weights::WeightFiles;
use celltext::encoder::{Encoder, EncoderOptions, Pooling};
use celltext::explain::ig::{genept_w_ig, SentenceIg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixture(name: &str) -> PathBuf {
    fixtures().join("explain").join(name)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn reference_mlp() -> TrainedMlp {
    let m = json(&fixture("mlp.json"));
    let weights: HashMap<String, Vec<f32>> = m["weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let vals = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (k.clone(), vals)
        })
        .collect();
    TrainedMlp::from_weights(
        &[("x".to_string(), m["dim"].as_u64().unwrap() as usize)],
        &[m["hidden"][0].as_u64().unwrap() as usize],
        m["n_classes"].as_u64().unwrap() as usize,
        Fusion::Concat,
        &weights,
    )
    .unwrap()
}

fn minilm() -> Option<(Encoder, CandleBackend)> {
    let dir = minilm_dir()?;
    let enc = load_dir(&dir, EncoderOptions::default());
    let wf = WeightFiles::open(&dir).unwrap();
    let bert = CandleBackend::load(&wf, &enc.config, &Device::Cpu, DType::F32).unwrap();
    Some((enc, bert))
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
fn gradients_through_minilm_match_pytorch() {
    let Some((enc, bert)) = minilm() else { return };
    assert_eq!(enc.pooling, Pooling::Mean);
    let mlp = reference_mlp();
    let ig = SentenceIg {
        bert: &bert,
        pooling: Pooling::Mean,
        normalize: false,
        mlp: &mlp,
        chunk: 8,
    };
    let r = json(&fixture("reference.json"));
    let steps = r["steps"].as_u64().unwrap() as usize;
    let (grads, _, dim) = npy(&fixture("grads.npy"));
    let mut row = 0usize;
    let (mut worst_f, mut worst_g, mut worst_norm, mut worst_ig) = (0f32, 0f32, 0f32, 0f32);
    for s in r["sentences"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let target = s["target"].as_u64().unwrap() as usize;
        let want_ids: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = enc.tokenizer.encode(text).unwrap().ids;
        assert_eq!(ids, want_ids, "token ids of {text:?}");
        let seq = ids.len();
        let x = bert.word_embeddings(&ids).unwrap();
        let b = bert.word_embeddings(&ig.baseline_ids(&ids)).unwrap();
        for (alpha, key) in [(1.0f64, "f_alpha_1"), (0.5, "f_alpha_half")] {
            let w = ((&b + ((&x - &b).unwrap() * alpha).unwrap()).unwrap())
                .unsqueeze(0)
                .unwrap();
            let (f, g) = ig.gradient(&w, target).unwrap();
            let got = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = &grads[row * dim..(row + seq) * dim];
            row += seq;
            let df = (f[0] - s[key].as_f64().unwrap() as f32).abs();
            let scale = max_abs(want);
            let dg = max_abs_diff(&got, want) / scale;
            let dn = (0..seq)
                .map(|t| {
                    let n = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    let (a, c) = (
                        n(&got[t * dim..(t + 1) * dim]),
                        n(&want[t * dim..(t + 1) * dim]),
                    );
                    (a - c).abs() / c.max(1e-3 * scale)
                })
                .fold(0f32, f32::max);
            worst_f = worst_f.max(df);
            worst_g = worst_g.max(dg);
            worst_norm = worst_norm.max(dn);
        }
        let res = ig.attribute(&ids, target, steps, &|_| {}).unwrap();
        let want: Vec<f32> = s["ig_attributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        worst_ig = worst_ig.max(max_abs_diff(&res.attributions, &want) / max_abs(&want));
        assert!((res.f_input - s["f_input"].as_f64().unwrap() as f32).abs() <= 1e-4);
        assert!((res.f_baseline - s["f_baseline"].as_f64().unwrap() as f32).abs() <= 1e-4);
    }
    eprintln!(
        "vs PyTorch: logit max |Δ| {worst_f:e}; gradient max |Δ| / max |g| {worst_g:e}; \
         per-token gradient norm rel. {worst_norm:e}; IG attributions max |Δ| / max |a| {worst_ig:e}"
    );
    assert!(worst_f <= 1e-4, "logit |Δ| {worst_f}");
    assert!(worst_g <= 1e-3, "gradient {worst_g}");
    assert!(worst_norm <= 1e-3, "gradient norms {worst_norm}");
    assert!(worst_ig <= 1e-3, "IG attributions {worst_ig}");
}

#[test]
fn sentence_attributions_are_complete_within_one_percent() {
    let Some((enc, bert)) = minilm() else { return };
    let mlp = reference_mlp();
    let ig = SentenceIg {
        bert: &bert,
        pooling: Pooling::Mean,
        normalize: false,
        mlp: &mlp,
        chunk: 16,
    };
    let r = json(&fixture("reference.json"));
    for s in r["sentences"].as_array().unwrap() {
        let ids = enc
            .tokenizer
            .encode(s["text"].as_str().unwrap())
            .unwrap()
            .ids;
        let target = s["target"].as_u64().unwrap() as usize;
        let coarse = ig.attribute(&ids, target, 32, &|_| {}).unwrap();
        let fine = ig.attribute(&ids, target, 256, &|_| {}).unwrap();
        eprintln!(
            "f(x) − f(b) = {:.5}: relative completeness gap {:.2e} (32 steps), {:.2e} (256 steps)",
            fine.f_input - fine.f_baseline,
            coarse.relative_gap(),
            fine.relative_gap()
        );
        assert!(fine.relative_gap() <= 0.01, "gap {}", fine.relative_gap());
        // the midpoint rule's error shrinks with the steps (O(1/m²) for a smooth path)
        assert!(fine.relative_gap() < coarse.relative_gap());
    }
}

/// A seeded MLP on `dim`-d inputs: LayerNorm → Linear(6) → ReLU → Linear(3).
fn random_mlp(dim: usize, rng: &mut ChaCha8Rng) -> TrainedMlp {
    let mut r = |n: usize, s: f32| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-s..s)).collect() };
    let mut w = HashMap::new();
    w.insert(
        "norm.0.weight".into(),
        r(dim, 1.0).iter().map(|v| 1.0 + 0.3 * v).collect(),
    );
    w.insert("norm.0.bias".into(), r(dim, 0.2));
    w.insert("hidden.0.weight".into(), r(6 * dim, 0.8));
    w.insert("hidden.0.bias".into(), r(6, 0.2));
    w.insert("out.weight".into(), r(18, 0.8));
    w.insert("out.bias".into(), r(3, 0.2));
    TrainedMlp::from_weights(&[("x".into(), dim)], &[6], 3, Fusion::Concat, &w).unwrap()
}

#[test]
fn genept_w_attributions_are_complete_and_scale_free() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let dim = 12;
    for case in 0..5 {
        let mlp = random_mlp(dim, &mut rng);
        let n = 3 + case * 4;
        let genes: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let w: Vec<f32> = (0..n)
            .map(|_| rng.gen_range(1.0..50.0f32).round())
            .collect();
        for target in 0..3 {
            let r = genept_w_ig(&mlp, &genes, &w, target, 32).unwrap();
            let fine = genept_w_ig(&mlp, &genes, &w, target, 16384).unwrap();
            eprintln!(
                "GenePT-w case {case} target {target}: relative completeness gap {:.2e} (32 steps), {:.2e} (16384 steps), f(x) − f(b) {:.3e}",
                r.relative_gap(),
                fine.relative_gap(),
                fine.f_input - fine.f_baseline
            );
            // f(x) is the MLP at the weighted mean, f(b) at the zero vector
            let total: f64 = w.iter().map(|&v| v as f64).sum();
            let z: Vec<f32> = (0..dim)
                .map(|d| {
                    (0..n)
                        .map(|j| w[j] as f64 * genes[j * dim + d] as f64)
                        .sum::<f64>()
                        / total
                })
                .map(|v| v as f32)
                .collect();
            let at = |v: Vec<f32>| {
                let t = Tensor::from_vec(v, (1, dim), &Device::Cpu).unwrap();
                mlp.logits(&[t]).unwrap().to_vec2::<f32>().unwrap()[0][target]
            };
            assert!((r.f_input - at(z)).abs() <= 1e-5);
            assert!((r.f_baseline - at(vec![0.0; dim])).abs() <= 1e-6);
            assert!(
                fine.relative_gap() <= 0.01,
                "case {case} target {target}: gap {}",
                fine.relative_gap()
            );
            // the attributions depend on the weights only through w / Σw
            let w10: Vec<f32> = w.iter().map(|v| v * 10.0).collect();
            let r10 = genept_w_ig(&mlp, &genes, &w10, target, 32).unwrap();
            assert!(max_abs_diff(&r.attributions, &r10.attributions) <= 1e-5);
        }
    }
}

fn celltext(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn small_h5ad() -> String {
    root()
        .join("tests/data/pbmc3k_small/data.h5ad")
        .display()
        .to_string()
}

fn markers() -> String {
    root()
        .join("assets/markers/pbmc3k_markers.tsv")
        .display()
        .to_string()
}

fn check_report(dir: &Path, top: usize) -> serde_json::Value {
    let r = json(&dir.join("report.json"));
    let classes = r["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 9, "the 9 pbmc3k labels");
    let tsv = std::fs::read_to_string(dir.join("explain.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 1 + 9 * top);
    for c in classes {
        assert_eq!(c["top_genes"].as_array().unwrap().len(), top);
        assert!(c["marker_hits"].as_u64().is_some(), "{c}");
    }
    let m = json(&dir.join("manifest.json"));
    assert_eq!(m["command"], "explain");
    assert_eq!(m["files"].as_array().unwrap().len(), 3);
    assert!(std::fs::read_to_string(dir.join("report.md"))
        .unwrap()
        .contains("marker hits"));
    r
}

#[test]
fn explain_genept_w_on_the_pbmc3k_subset() {
    let tmp = tempfile::tempdir().unwrap();
    // a seeded store over every gene of the subset (the attributions need no real vectors)
    let symbols: Vec<String> =
        std::fs::read_to_string(root().join("tests/data/pbmc3k_small/genes.tsv"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
    let dim = 16;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let store = celltext::genes::store::GeneEmbeddings {
        data: (0..symbols.len() * dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect(),
        symbols,
        dim,
    };
    let prefix = tmp.path().join("store");
    store
        .save(
            &prefix,
            &serde_json::json!({"model": {"id": "seeded test vectors"}}),
        )
        .unwrap();
    let out = tmp.path().join("ex");
    let (code, stdout, stderr) = celltext(&[
        "explain",
        "--quiet",
        "-i",
        &small_h5ad(),
        "--layer",
        "counts",
        "--label",
        "label",
        "--on",
        "genept-w",
        "--genes",
        prefix.to_str().unwrap(),
        "--cells-per-class",
        "3",
        "--top",
        "5",
        "--markers",
        &markers(),
        "--epochs",
        "30",
        "--steps",
        "8192",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| class |"), "{stdout}");
    let r = check_report(&out, 5);
    // completeness on real cells (the report states the gap of every cell)
    assert!(
        r["max_relative_gap"].as_f64().unwrap() <= 0.01,
        "{}",
        r["max_relative_gap"]
    );
    let cells = r["cells"].as_array().unwrap();
    assert!(cells.len() >= 9 && cells.len() <= 27);

    // bad inputs are refused by name
    let (code, _, stderr) = celltext(&[
        "explain",
        "-i",
        &small_h5ad(),
        "--label",
        "label",
        "--on",
        "genept-w",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--genes"), "{stderr}");
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, "type\tgene\nB\tMS4A1\n").unwrap();
    let (code, _, stderr) = celltext(&[
        "explain",
        "-i",
        &small_h5ad(),
        "--label",
        "label",
        "--on",
        "genept-w",
        "--genes",
        prefix.to_str().unwrap(),
        "--markers",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad.tsv") && stderr.contains("cell_type"),
        "{stderr}"
    );
}

#[test]
fn explain_sentences_on_the_pbmc3k_subset() {
    let Some(dir) = minilm_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ex");
    let (code, stdout, stderr) = celltext(&[
        "explain",
        "--quiet",
        "-i",
        &small_h5ad(),
        "--layer",
        "counts",
        "--label",
        "label",
        "-m",
        dir.to_str().unwrap(),
        "--on",
        "sentences",
        "--cells-per-class",
        "1",
        "--steps",
        "4",
        "--top",
        "3",
        "--markers",
        &markers(),
        "--epochs",
        "30",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| class |"), "{stdout}");
    let r = check_report(&out, 3);
    assert_eq!(r["cells"].as_array().unwrap().len(), 9);
    for c in r["cells"].as_array().unwrap() {
        assert!(c["n_genes"].as_u64().unwrap() > 10, "{c}");
        // the recorded gap is that of the recorded sum and logits (4 steps are coarse)
        let v = |k: &str| c[k].as_f64().unwrap();
        let d = v("f_input") - v("f_baseline");
        let gap = (v("attribution_sum") - d).abs() / d.abs();
        assert!(
            (gap - v("relative_gap")).abs() <= 1e-3 * gap.max(1.0),
            "{c}"
        );
    }
}
