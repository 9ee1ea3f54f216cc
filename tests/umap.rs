//! UMAP and trustworthiness against umap-learn and scikit-learn
//! (tests/fixtures/umap/ref.json, written by tests/fixtures/umap/make_umap_ref.py).
//!
//! - Trustworthiness equals `sklearn.manifold.trustworthiness` on a small fixture within 1e-9
//!   (k = 5, 15; euclidean and cosine).
//! - On real pbmc3k embeddings (scanpy's PCA-50, Euclidean; GenePT-w with all-MiniLM-L6-v2,
//!   cosine; 601 cells) celltext's UMAP (seed 0) keeps trustworthiness at k = 15 at least
//!   umap-learn's mean over random_state 0..4 minus 0.02.
//! - Same seed → bit-identical coordinates; another seed → other coordinates.
//! - Separable clusters keep > 0.9 of their label-neighbours; bad input is an error.

use celltext::eval::embedding2d::{
    label_neighbour_preservation, trustworthiness, umap_2d, Metric, UmapParams,
};
use celltext::io::read_npy_f32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/umap")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("ref.json")).unwrap()).unwrap()
}

#[test]
fn trustworthiness_matches_sklearn() {
    let r = reference();
    let (x, n, d) = read_npy_f32(&dir().join("trust_x.npy")).unwrap();
    let (y, ny, dy) = read_npy_f32(&dir().join("trust_y.npy")).unwrap();
    assert_eq!((ny, dy), (n, 2));
    let y: Vec<[f32; 2]> = y.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
    for (metric, name) in [(Metric::Euclidean, "euclidean"), (Metric::Cosine, "cosine")] {
        for k in [5, 15] {
            let want = r["trust_fixture"][format!("{name}_k{k}")].as_f64().unwrap();
            let got = trustworthiness(&x, n, d, &y, k, metric).unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{name} k={k}: {got} vs sklearn {want}"
            );
        }
    }
    // Identity map of 2-D data is perfectly trustworthy.
    let x2: Vec<f32> = y.iter().flat_map(|p| *p).collect();
    let t = trustworthiness(&x2, n, 2, &y, 5, Metric::Euclidean).unwrap();
    assert!((t - 1.0).abs() < 1e-12, "{t}");
    // Errors, not panics.
    assert!(trustworthiness(&x, n, d, &y, 0, Metric::Euclidean).is_err());
    assert!(trustworthiness(&x, n, d, &y, n / 2, Metric::Euclidean).is_err());
    assert!(trustworthiness(&x, n, d, &y[1..], 5, Metric::Euclidean).is_err());
}

fn check_input(name: &str, file: PathBuf, metric: Metric) {
    let r = reference();
    let (x, n, d) = read_npy_f32(&file).unwrap();
    let params = UmapParams {
        metric,
        ..UmapParams::default()
    };
    let u = umap_2d(&x, n, d, &params).unwrap();
    let ours = trustworthiness(&x, n, d, &u.coords, 15, metric).unwrap();
    let theirs = r["inputs"][name]["umap_learn_mean"].as_f64().unwrap();
    println!("{name}: celltext UMAP trustworthiness(15) {ours:.4}, umap-learn {theirs:.4}");
    assert!(
        ours >= theirs - 0.02,
        "{name}: trustworthiness {ours} is more than 0.02 below umap-learn's {theirs}"
    );
}

#[test]
fn umap_matches_umap_learn_on_pca50() {
    check_input(
        "pca50",
        dir().join("../standard_pca/pcs.npy"),
        Metric::Euclidean,
    );
}

#[test]
fn umap_matches_umap_learn_on_genept_w() {
    check_input("genept_w", dir().join("genept_w.npy"), Metric::Cosine);
}

/// `per` points in each of `k` Gaussian clusters in `dim` dimensions.
fn clusters(k: usize, per: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..k)
        .map(|_| (0..dim).map(|_| rng.gen_range(-4.0..4.0)).collect())
        .collect();
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for (c, centre) in centres.iter().enumerate() {
        for _ in 0..per {
            x.extend(centre.iter().map(|&m| m + rng.gen_range(-0.3..0.3)));
            labels.push(c);
        }
    }
    (x, labels)
}

#[test]
fn umap_is_seeded_and_keeps_clusters() {
    let (x, labels) = clusters(8, 60, 96, 11);
    let n = labels.len();
    let p = UmapParams::default();
    let a = umap_2d(&x, n, 96, &p).unwrap();
    let b = umap_2d(&x, n, 96, &p).unwrap();
    assert_eq!(a.coords, b.coords, "same seed, different coordinates");
    let c = umap_2d(
        &x,
        n,
        96,
        &UmapParams {
            seed: 1,
            ..p.clone()
        },
    )
    .unwrap();
    assert_ne!(a.coords, c.coords, "seed has no effect");
    let score = label_neighbour_preservation(&a.coords, &labels, 10).unwrap();
    assert!(score > 0.9, "UMAP neighbour preservation {score}");
    assert!(a
        .method_note()
        .starts_with("UMAP (15 neighbours, euclidean"));
    assert_eq!(a.n_epochs, 500);

    // Errors, not panics.
    assert!(umap_2d(&[], 0, 5, &p).is_err());
    assert!(umap_2d(&[1.0; 6], 2, 3, &p).is_err());
    assert!(umap_2d(&[1.0; 9], 9, 1, &p).is_err());
    assert!(umap_2d(&[1.0; 7], 3, 3, &p).is_err());
    let mut bad = x.clone();
    bad[96 * 3 + 2] = f32::NAN;
    let err = umap_2d(&bad, n, 96, &p).unwrap_err().to_string();
    assert!(err.contains("row 3, column 2"), "{err}");
    assert!(umap_2d(
        &x,
        n,
        96,
        &UmapParams {
            n_epochs: Some(0),
            ..p.clone()
        }
    )
    .is_err());
    // Constant data: no crash, finite coordinates.
    let flat = umap_2d(&[1.0; 40], 10, 4, &p).unwrap();
    assert!(flat
        .coords
        .iter()
        .all(|q| q[0].is_finite() && q[1].is_finite()));
}
