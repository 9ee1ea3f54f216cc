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
    let (rows, out) = celltext::app::experiment::run_experiment(&cfg, None, true).unwrap();
    // genept-w (none) + sentences (none, shorten:20): KNN at k ∈ {1,5,15} and one MLP row each,
    // plus the count baseline
    assert_eq!(rows.len(), 3 * 4 + 1, "{rows:#?}");
    // MLP rows are the MLP's own scores, not the KNN baseline's
    for (knn, mlp) in rows
        .iter()
        .filter(|r| r.classifier == "knn" && r.k == Some(5) && r.model != "-")
        .zip(rows.iter().filter(|r| r.classifier == "mlp"))
    {
        assert_eq!(
            (&knn.representation, &knn.ablation),
            (&mlp.representation, &mlp.ablation)
        );
        assert_ne!(knn.mean.accuracy, mlp.mean.accuracy, "{knn:?} {mlp:?}");
    }
    for r in &rows {
        assert_eq!(r.n_seeds, 2);
        assert!(r.mean.accuracy > 0.3 && r.mean.accuracy <= 1.0, "{r:?}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("genept-w") && md.contains("shorten:20") && md.contains("counts"));
    assert!(out.join("accuracy.png").exists() && out.join("accuracy.svg").exists());
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .collect();
    let n_cached = cached.len();
    // re-run: same numbers, nothing recomputed
    let (rows2, _) = celltext::app::experiment::run_experiment(&cfg, None, true).unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path().join("cache")).unwrap().count(),
        n_cached
    );
    for (a, b) in rows.iter().zip(&rows2) {
        assert_eq!(a.mean.accuracy, b.mean.accuracy);
    }
}

#[test]
fn shipped_configs_run_on_bundled_data_or_ask_for_input() {
    let dir = root().join("assets/experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg: celltext::app::experiment::ExperimentConfig =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(input) = &cfg.input {
            // a dataset every clone has, never one outside the repository
            let resolved = dir.join(input);
            assert!(
                resolved.exists(),
                "{}: input {} is not in the repository",
                path.display(),
                input.display()
            );
            let inside = resolved
                .canonicalize()
                .unwrap()
                .starts_with(root().canonicalize().unwrap());
            assert!(
                inside,
                "{}: input {} points outside the repository",
                path.display(),
                input.display()
            );
        }
    }
    assert!(n >= 3, "expected the shipped configs in {}", dir.display());
}

#[test]
fn a_config_without_input_asks_for_input() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("exp.toml");
    std::fs::write(
        &cfg,
        "name = \"t\"\nlabel = \"label\"\nout_dir = \"never-written\"\n",
    )
    .unwrap();
    let e = format!(
        "{:#}",
        celltext::app::experiment::run_experiment(&cfg, None, true).unwrap_err()
    );
    assert!(e.contains("exp.toml") && e.contains("--input"), "{e}");
    let missing = tmp.path().join("missing.h5ad");
    let e = format!(
        "{:#}",
        celltext::app::experiment::run_experiment(&cfg, Some(&missing), true).unwrap_err()
    );
    assert!(
        e.contains("missing.h5ad") && e.contains("does not exist"),
        "{e}"
    );
    assert!(!tmp.path().join("never-written").exists());
}
