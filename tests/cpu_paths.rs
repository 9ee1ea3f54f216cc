//! Every CPU kernel path and number format against the same PyTorch references
//! (tests/fixtures/minilm, made by tests/fixtures/make_fixtures.py), whatever CPU runs the tests:
//! `CELLTEXT_CPU=avx2|generic` forces a path in a child process (a path the CPU lacks is skipped).
//! Tolerances: f32 max |Δ| ≤ 1e-4 to transformers' mean-pooled output on every path; `--dtype int8`
//! worst cosine ≥ 0.995 to it (the quality gate of dynamic quantization), and the int8 paths agree
//! with each other to cosine ≥ 0.998: their integer sums are equal, but a path's f32 rounding can
//! move the next layer's activation across an 8-bit level, so they differ by quantization noise
//! (worst 0.9992 measured), not by f32 rounding.

mod common;
use common::*;

use celltext::encoder::EncoderOptions;
use std::path::Path;
use std::process::Command;

fn paths() -> Vec<&'static str> {
    let mut p = vec!["generic"];
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        p.insert(0, "avx2");
    }
    p
}

/// `celltext embed` on the fixture texts with a forced path; (vectors, manifest).
fn embed(dir: &Path, work: &Path, path: &str, dtype: &str) -> (Vec<f32>, serde_json::Value) {
    let out = work.join(format!("{path}-{dtype}.npy"));
    let run = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(["--quiet", "embed", "-m"])
        .arg(dir)
        .arg("-i")
        .arg(fixtures().join("texts.jsonl"))
        .arg("-o")
        .arg(&out)
        .args(["--dtype", dtype])
        .env("CELLTEXT_CPU", path)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{path} {dtype}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest = std::fs::read_to_string(work.join(format!("{path}-{dtype}.npy.manifest.json")));
    (
        npy(&out).0,
        serde_json::from_str(&manifest.unwrap()).unwrap(),
    )
}

fn worst_cosine(a: &[f32], b: &[f32], d: usize) -> f64 {
    a.chunks(d)
        .zip(b.chunks(d))
        .map(|(x, y)| cosine(x, y))
        .fold(1.0, f64::min)
}

#[test]
fn every_cpu_path_matches_pytorch_in_f32_and_int8() {
    let Some(dir) = minilm_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let (want, n, d) = npy(&fixtures().join("minilm/mean.npy"));
    let mut int8_outputs = vec![];
    for path in paths() {
        let (f32_out, m) = embed(&dir, work.path(), path, "f32");
        assert_eq!(f32_out.len(), n * d);
        let diff = max_abs_diff(&f32_out, &want);
        eprintln!("{path} f32: max |Δ| = {diff:e}");
        assert!(diff <= 1e-4, "{path} f32: max |Δ| {diff}");
        assert_eq!(m["model"]["cpu_kernels"], path, "{m}");
        assert_eq!(m["model"]["dtype"], "f32");

        let (q, m) = embed(&dir, work.path(), path, "int8");
        let worst = worst_cosine(&q, &want, d);
        eprintln!("{path} int8: worst cosine to PyTorch f32 = {worst:.5}");
        assert!(worst >= 0.995, "{path} int8: worst cosine {worst}");
        assert!(
            max_abs_diff(&q, &want) > 0.0,
            "int8 must not be the f32 path"
        );
        assert_eq!(m["model"]["cpu_kernels"], path, "{m}");
        assert_eq!(m["model"]["dtype"], "int8");
        int8_outputs.push(q);
    }
    for q in &int8_outputs[1..] {
        let worst = worst_cosine(q, &int8_outputs[0], d);
        assert!(worst >= 0.998, "int8 paths disagree: worst cosine {worst}");
    }
}

#[test]
fn int8_runs_in_process_and_refuses_gpu_backends() {
    let Some(dir) = minilm_dir() else { return };
    let mut opts = EncoderOptions::default();
    opts.set_dtype("int8").unwrap();
    let enc = load_dir(&dir, opts.clone());
    assert_eq!(enc.identity.dtype, "int8");
    assert_eq!(enc.identity.backend, "cpu");
    let texts = texts();
    let got = embed_all_one_batch(&enc, &texts);
    let (want, _, d) = npy(&fixtures().join("minilm/mean.npy"));
    assert!(worst_cosine(&got, &want, d) >= 0.995);

    opts.backend = celltext::encoder::BackendChoice::Candle;
    let err = celltext::encoder::Encoder::load(dir.to_str().unwrap(), &opts, true)
        .err()
        .expect("int8 on candle must be refused")
        .to_string();
    assert!(
        err.contains("--dtype int8") && err.contains("--backend cpu"),
        "{err}"
    );
    let mut bad = EncoderOptions::default();
    let err = bad.set_dtype("int4").unwrap_err().to_string();
    assert!(err.contains("int4") && err.contains("int8"), "{err}");
}
