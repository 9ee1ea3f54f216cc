//! `celltext experiment` end to end on real cells (315 pbmc3k cells) with real MiniLM weights:
//! results table shape, cache reuse on a re-run, seeded reproducibility.

mod common;
use common::*;

#[test]
fn small_experiment_runs_caches_and_reproduces() {
    let Some(dir) = minilm_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("exp.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"name = "t"
input = "{input}"
layer = "counts"
label = "label"
models = ["{model}"]
representations = ["genept-w", "sentences"]
ablations = ["none", "shorten:20"]
classifiers = ["knn", "mlp"]
k = 5
k_sweep = [1, 5, 15]
seeds = [0, 1]
top_n = "10"
max_genes = 40
counts_baseline = true
cache_dir = "{cache}"
out_dir = "{out}"
"#,
            input = root().join("tests/data/pbmc3k_small/data.h5ad").display(),
            model = dir.display(),
            cache = tmp.path().join("cache").display(),
            out = tmp.path().join("out").display(),
        ),
    )
    .unwrap();
    let (rows, out) = celltext::app::experiment::run_experiment(&cfg, true).unwrap();
    // genept-w (none) + sentences (none, shorten:20): KNN at k ∈ {1,5,15} and one MLP row each,
    // plus the count baseline
    assert_eq!(rows.len(), 3 * 4 + 1, "{rows:#?}");
    // MLP rows are the MLP's own scores, not the KNN baseline's
    for (knn, mlp) in rows.iter().filter(|r| r.classifier == "knn" && r.k == Some(5) && r.model != "-").zip(rows.iter().filter(|r| r.classifier == "mlp")) {
        assert_eq!((&knn.representation, &knn.ablation), (&mlp.representation, &mlp.ablation));
        assert_ne!(knn.mean.accuracy, mlp.mean.accuracy, "{knn:?} {mlp:?}");
    }
    for r in &rows {
        assert_eq!(r.n_seeds, 2);
        assert!(r.mean.accuracy > 0.3 && r.mean.accuracy <= 1.0, "{r:?}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("genept-w") && md.contains("shorten:20") && md.contains("counts"));
    assert!(out.join("accuracy.png").exists() && out.join("accuracy.svg").exists());
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("cache")).unwrap().collect();
    let n_cached = cached.len();
    // re-run: same numbers, nothing recomputed
    let (rows2, _) = celltext::app::experiment::run_experiment(&cfg, true).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path().join("cache")).unwrap().count(), n_cached);
    for (a, b) in rows.iter().zip(&rows2) {
        assert_eq!(a.mean.accuracy, b.mean.accuracy);
    }
}
