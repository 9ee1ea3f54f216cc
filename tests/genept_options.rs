//! `celltext cells embed --idf` and `--hvg N` against NumPy + scanpy references
//! (tests/fixtures/genept_options/make_ref.py → refs.json) on the 54 real pbmc3k cells of
//! tests/data/cells_logic/ with its 200-gene, 8-d seeded embedding fixture.
//!
//! Tolerance: per cell, ‖rust − ref‖∞ ≤ 1e-5 · max(‖ref‖∞, 1e-6) (f32 output vs f64 reference);
//! IDF factors 1e-12 relative; genes used per cell, HVG counts: exact.

mod common;
use common::*;

use celltext::genes::store::GeneEmbeddings;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    root().join("tests/data/cells_logic")
}

fn refs() -> Value {
    let p = root().join("tests/fixtures/genept_options/refs.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The fixture's embeddings.json as a gene store under `dir`.
fn store(dir: &Path) -> PathBuf {
    let ej: Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("embeddings.json")).unwrap())
            .unwrap();
    let symbols: Vec<String> = ej["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let data: Vec<f32> = ej["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let dim = ej["dim"].as_u64().unwrap() as usize;
    let prefix = dir.join("store");
    GeneEmbeddings { symbols, dim, data }
        .save(
            &prefix,
            &serde_json::json!({"model": {"id": "test fixture"}}),
        )
        .unwrap();
    prefix
}

fn embed(dir: &Path, store: &Path, name: &str, args: &[String]) -> (Vec<f32>, usize, Value) {
    let out = dir.join(format!("{name}.npy"));
    let o = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(["cells", "embed", "--quiet", "--json", "-i"])
        .arg(data())
        .arg("--genes")
        .arg(store)
        .arg("-o")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let (z, _, dim) = npy(&out);
    (z, dim, report)
}

#[test]
fn idf_and_hvg_match_numpy_and_scanpy() {
    let r = refs();
    let tmp = tempfile::tempdir().unwrap();
    let st = store(tmp.path());
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let args: Vec<String> = case["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let (z, dim, report) = embed(tmp.path(), &st, name, &args);
        assert_eq!(
            report["idf"],
            Value::Bool(args.iter().any(|a| a == "--idf"))
        );
        assert_eq!(report["hvg_selected"], case["hvg_selected"], "{name}");
        let want = case["z"].as_array().unwrap();
        let used = case["n_used"].as_array().unwrap();
        assert_eq!(z.len(), want.len() * dim, "{name}");
        let mut nonzero = 0;
        for (i, w) in want.iter().enumerate() {
            let w: Vec<f64> = w
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got = &z[i * dim..(i + 1) * dim];
            let norm = w.iter().fold(0f64, |m, v| m.max(v.abs()));
            let diff = got
                .iter()
                .zip(&w)
                .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            assert!(
                diff <= 1e-5 * norm.max(1e-6),
                "{name} cell {i}: {got:?} vs {w:?}"
            );
            nonzero += usize::from(used[i].as_u64().unwrap() > 0);
        }
        // the case is not vacuous: every cell without HVG restriction, and at least 15 of the 54
        // with it (the fixture store covers 200 genes, few of them highly variable), have a vector
        let min = if args.iter().any(|a| a == "--hvg") {
            15
        } else {
            want.len()
        };
        assert!(nonzero >= min, "{name}: only {nonzero} cells embedded");
    }
}

#[test]
fn idf_factors_match_numpy() {
    let r = refs();
    let want: Vec<f64> = r["idf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let src = celltext::cells::read::read_matrix(&data(), &Default::default()).unwrap();
    let got = celltext::cells::weighted::idf_factors(&src.x.view());
    assert_eq!(got.len(), want.len());
    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "gene {j}: {a} vs {b}"
        );
    }
    // genes in (almost) every cell drop out, rare genes weigh most
    assert!(want.contains(&0.0) && want.iter().any(|&v| v > 3.0));
}

#[test]
fn idf_and_hvg_refuse_bad_use() {
    let tmp = tempfile::tempdir().unwrap();
    let st = store(tmp.path());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_celltext"))
            .args(["cells", "embed", "--quiet", "-i"])
            .arg(data())
            .arg("--genes")
            .arg(&st)
            .arg("-o")
            .arg(tmp.path().join("x.npy"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["--idf", "--aggregation", "genept"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--idf"),
        "{o:?}"
    );
    let o = run(&["--hvg", "0"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--hvg"),
        "{o:?}"
    );
}
