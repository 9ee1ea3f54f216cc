//! The standard count baseline (scanpy: normalize_total → log1p → HVG seurat 2000 → scale
//! clip 10 → PCA 50) against scanpy on the bundled pbmc3k subset
//! (tests/fixtures/standard_pca/make_scanpy_ref.py): same HVG set, normalized dispersions within
//! 1e-4, PC scores equal up to sign within 1e-4 of each component's largest |score|, and the
//! same cosine-KNN predictions as scikit-learn on scanpy's PCs.

use std::path::{Path, PathBuf};

use celltext::cells::read::{read_matrix, ReadOptions};
use celltext::cells::standard_pca::{standard_pca, StandardPcaParams};
use celltext::classify::knn::{CosineKnn, Vote};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/standard_pca").join(name)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("ref.json")).unwrap()).unwrap()
}

fn labels(path: &Path) -> Vec<String> {
    let (_, obs) = celltext::cells::h5ad::read_h5ad_obs(path).unwrap();
    obs.iter()
        .find(|(k, _)| k == "label")
        .map(|(_, c)| c.to_labels())
        .unwrap()
}

#[test]
fn matches_scanpy_on_pbmc3k_subset() {
    let input = repo().join("assets/data/pbmc3k_demo.h5ad");
    let opts = ReadOptions {
        layer: Some("counts".into()),
        ..ReadOptions::default()
    };
    let m = read_matrix(&input, &opts).unwrap();
    let r = reference();
    assert_eq!(m.x.n_rows, r["n_cells"].as_u64().unwrap() as usize);
    let out = standard_pca(&m.x, &StandardPcaParams::default()).unwrap();

    let want_hvg: Vec<usize> = r["hvg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(out.genes, want_hvg, "HVG set differs from scanpy's");

    let (stats, rows, g) = celltext::io::read_npy_f32(&fixture("hvg_stats.npy")).unwrap();
    assert_eq!((rows, g), (3, m.x.n_cols));
    for j in 0..g {
        let (want, got) = (stats[2 * g + j] as f64, out.hvg.dispersions_norm[j]);
        if want.is_nan() {
            assert!(got.is_nan(), "gene {j}: scanpy NaN, celltext {got}");
        } else {
            assert!(
                (want - got).abs() <= 1e-4 * want.abs().max(1.0),
                "gene {j}: {want} vs {got}"
            );
        }
        let (want, got) = (stats[j] as f64, out.hvg.means[j]);
        assert!(
            (want - got).abs() <= 1e-6 * want.abs().max(1.0),
            "gene {j} mean: {want} vs {got}"
        );
    }

    let (pcs, n, k) = celltext::io::read_npy_f32(&fixture("pcs.npy")).unwrap();
    assert_eq!((n, k), (m.x.n_rows, 50));
    assert_eq!(out.pca.k, 50);
    let mut worst = 0.0f64;
    for c in 0..k {
        let scale = (0..n)
            .map(|i| pcs[i * k + c].abs() as f64)
            .fold(0.0, f64::max);
        let dot: f64 = (0..n)
            .map(|i| pcs[i * k + c] as f64 * out.pca.coords[i * k + c] as f64)
            .sum();
        let sign = if dot < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            let d = (pcs[i * k + c] as f64 - sign * out.pca.coords[i * k + c] as f64).abs() / scale;
            worst = worst.max(d);
        }
    }
    assert!(
        worst <= 1e-4,
        "PC scores differ from scanpy by {worst:.2e} (relative)"
    );
    let ratio: Vec<f64> = r["variance_ratio"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (c, want) in ratio.iter().enumerate() {
        let got = out.pca.explained_variance_ratio[c];
        assert!(
            (want - got).abs() <= 1e-6,
            "variance ratio {c}: {want} vs {got}"
        );
    }

    // Cosine KNN (k = 10, majority) on celltext's PCs = scikit-learn's on scanpy's PCs.
    let names = labels(&input);
    let mut classes: Vec<String> = names.clone();
    classes.sort();
    classes.dedup();
    let y: Vec<usize> = names
        .iter()
        .map(|s| classes.binary_search(s).unwrap())
        .collect();
    let test: Vec<usize> = (0..n).filter(|i| i % 5 == 0).collect();
    let train: Vec<usize> = (0..n).filter(|i| i % 5 != 0).collect();
    let rows = |idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| out.pca.coords[i * k..(i + 1) * k].to_vec())
            .collect()
    };
    let train_y: Vec<usize> = train.iter().map(|&i| y[i]).collect();
    let knn = CosineKnn::fit(&rows(&train), train.len(), k, &train_y).unwrap();
    let pred = knn
        .predict(&rows(&test), test.len(), 10, Vote::Majority)
        .unwrap();
    let want: Vec<&str> = r["test_pred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let got: Vec<&str> = pred.iter().map(|p| classes[p.label].as_str()).collect();
    assert_eq!(
        got, want,
        "KNN predictions on the standard PCs differ from scikit-learn's"
    );
}

/// `celltext cells pca` writes obsm['X_pca'] (cells × 50) into a copy of the input, and refuses
/// a bad key or zero components by name without writing anything.
#[test]
fn cells_pca_writes_obsm_and_refuses_bad_flags() {
    let input = repo().join("tests/data/pbmc3k_small/data.h5ad");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pca.h5ad");
    let run = |extra: &[&str], o: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_celltext"))
            .args(["--quiet", "cells", "pca", "-i"])
            .arg(&input)
            .args(["--layer", "counts", "-o"])
            .arg(o)
            .args(extra)
            .output()
            .unwrap()
    };
    let r = run(&[], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (data, dim) = celltext::cells::h5ad::read_obsm(&out, "X_pca").unwrap();
    assert_eq!(dim, 50);
    assert_eq!(data.len() % dim, 0);
    assert!(data.iter().all(|v| v.is_finite()));

    let bad = tmp.path().join("bad.h5ad");
    for (extra, want) in [
        (&["--key", "a/b"][..], "--key"),
        (&["--n-comps", "0"][..], "--n-comps"),
        (&["--n-top-genes", "-1"][..], "--n-top-genes"),
    ] {
        let r = run(extra, &bad);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(
            r.status.code(),
            Some(if want == "--key" { 1 } else { 2 }),
            "{err}"
        );
        assert!(err.contains(want) && !err.contains("panicked"), "{err}");
        assert!(!bad.exists(), "{extra:?} wrote an output");
    }
}
