//! `celltext experiment` end to end on real cells (315 pbmc3k cells) with real MiniLM weights:
//! results table shape, cache reuse on a re-run, seeded reproducibility.

mod common;
use celltext::classify::pipeline::{run_classify, ClassifyArgs, FeatureSpace, Method};
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
baselines = ["pca"]
fusions = ["pca+genept-w", "pca+sentences", "pca+genept-w+sentences"]
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
    let (rows, out) = celltext::experiment::run_experiment(&cfg, None, true).unwrap();
    // genept-w (none) + sentences (none, shorten:20) + the PCA-50 baseline: KNN at k ∈ {1,5,15}
    // and one MLP row each, plus the three fused MLP rows
    assert_eq!(rows.len(), 4 * 4 + 3, "{rows:#?}");
    let pca = celltext::experiment::PCA_REPRESENTATION;
    let find = |repr: &str, clf: &str, k: Option<usize>| {
        rows.iter()
            .find(|r| r.representation == repr && r.classifier == clf && r.k == k)
            .unwrap_or_else(|| panic!("no row {repr} {clf} {k:?} in {rows:#?}"))
    };
    // the baseline rows are `classify --on counts` (KNN and MLP), seed for seed
    for (method, k) in [(Method::Knn, Some(5)), (Method::Mlp, None)] {
        let mut accs = vec![];
        for seed in [0, 1] {
            let mut a =
                ClassifyArgs::new(root().join("tests/data/pbmc3k_small/data.h5ad"), "label");
            a.method = method;
            a.on = FeatureSpace::Counts;
            a.layer = Some("counts".into());
            a.ks = k.map(|k| vec![k]);
            a.seed = seed;
            a.quiet = true;
            let r = run_classify(&a).unwrap();
            accs.push(
                r.results
                    .iter()
                    .find(|x| x.primary)
                    .unwrap()
                    .scores
                    .accuracy,
            );
        }
        let want = (accs[0] + accs[1]) / 2.0;
        let got = find(pca, &method.to_string(), k).mean.accuracy;
        assert!(
            (got - want).abs() < 1e-12,
            "{method:?}: {got} vs classify --on counts {want}"
        );
    }
    // each fusion is one MLP row of its own (the fused arm), not a copy of a single source
    for f in ["pca+genept-w", "pca+sentences", "pca+genept-w+sentences"] {
        let r = find(f, "mlp", None);
        let model = dir.display().to_string();
        assert_eq!(
            (&r.model, r.ablation.as_str(), r.n_seeds),
            (&model, "none", 2)
        );
    }
    let accs: Vec<f64> = ["pca+genept-w", "pca+sentences", "pca+genept-w+sentences"]
        .iter()
        .map(|f| find(f, "mlp", None).mean.accuracy)
        .collect();
    assert!(
        accs.iter()
            .any(|&a| a != find(pca, "mlp", None).mean.accuracy),
        "{accs:?}"
    );
    // MLP rows are the MLP's own scores, not the KNN baseline's
    for (knn, mlp) in
        rows.iter()
            .filter(|r| r.classifier == "knn" && r.k == Some(5) && r.model != "-")
            .zip(rows.iter().filter(|r| {
                r.classifier == "mlp" && r.model != "-" && !r.representation.contains('+')
            }))
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
    assert!(md.contains("genept-w") && md.contains("shorten:20") && md.contains("pca-50"));
    assert!(md.contains("pca+genept-w+sentences"));
    assert!(out.join("accuracy.png").exists() && out.join("accuracy.svg").exists());
    let cached: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .collect();
    let n_cached = cached.len();
    // re-run: same numbers, nothing recomputed
    let (rows2, _) = celltext::experiment::run_experiment(&cfg, None, true).unwrap();
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
        let cfg: celltext::experiment::ExperimentConfig =
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
        celltext::experiment::run_experiment(&cfg, None, true).unwrap_err()
    );
    assert!(e.contains("exp.toml") && e.contains("--input"), "{e}");
    let missing = tmp.path().join("missing.h5ad");
    let e = format!(
        "{:#}",
        celltext::experiment::run_experiment(&cfg, Some(&missing), true).unwrap_err()
    );
    assert!(
        e.contains("missing.h5ad") && e.contains("does not exist"),
        "{e}"
    );
    assert!(!tmp.path().join("never-written").exists());
}

#[test]
fn baselines_and_fusions_are_validated_by_name() {
    let path = std::path::Path::new("exp.toml");
    let base = "name = \"t\"\nlabel = \"label\"\n";
    for (extra, want) in [
        (
            "baselines = [\"umap\"]\n",
            "`baselines`: unknown value `umap`",
        ),
        ("dtype = \"f16\"\n", "`dtype`: unknown value `f16`"),
        ("fusions = [\"genept-w+pca\"]\n", "must start with `pca+`"),
        ("fusions = [\"pca\"]\n", "must start with `pca+`"),
        ("fusions = [\"pca+hvg\"]\n", "`hvg` is unknown or repeated"),
        (
            "fusions = [\"pca+genept-w+genept-w\"]\n",
            "unknown or repeated",
        ),
        (
            "representations = [\"genept-w\"]\nfusions = [\"pca+sentences\"]\n",
            "needs `sentences` in `representations`",
        ),
        (
            "ablations = [\"shuffle-all\"]\nfusions = [\"pca+sentences\"]\n",
            "add \"none\" to `ablations`",
        ),
    ] {
        let e = celltext::experiment::parse_config(&format!("{base}{extra}"), path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("exp.toml") && e.contains(want), "{extra}: {e}");
    }
    let ok = "fusions = [\"pca+genept-w\", \"pca+sentences\", \"pca+genept-w+sentences\"]\nbaselines = [\"pca\"]\ndtype = \"int8\"\n";
    celltext::experiment::parse_config(&format!("{base}{ok}"), path).unwrap();
}
