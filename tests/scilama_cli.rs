//! `celltext scilama train | embed` end to end on 60 real pbmc3k cells × 400 genes with a seeded
//! random gene store: outputs, shapes, determinism, projection of the training cells, the
//! gene-input baselines and error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

use celltext::cells::h5ad::read_obsm;
use celltext::cells::matrix::ObsColumn;
use celltext::genes::GeneEmbeddings;
use rand::{Rng, SeedableRng};

const INPUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/pbmc3k_sub/dense.h5ad"
);

fn celltext(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(args)
        .output()
        .expect("run celltext")
}

/// A store for the first 300 of the fixture's genes (8 dims), plus 5 genes it lacks.
fn make_store(dir: &Path) -> PathBuf {
    let src = celltext::cells::read::open_matrix(Path::new(INPUT), &Default::default()).unwrap();
    let genes = src.genes().to_vec();
    let mut symbols: Vec<String> = genes[..300].to_vec();
    symbols.extend((0..5).map(|i| format!("NOTAGENE{i}")));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let data = (0..symbols.len() * 8)
        .map(|_| rng.gen::<f32>() - 0.5)
        .collect();
    let store = GeneEmbeddings {
        symbols,
        dim: 8,
        data,
    };
    let prefix = dir.join("store");
    store
        .save(&prefix, &serde_json::json!({"test": true}))
        .unwrap();
    prefix
}

/// `scilama train` of `input` at the tests' small sizes (3 epochs), progress and warnings shown.
fn train_input(input: &Path, store: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "scilama",
        "train",
        "-i",
        input.to_str().unwrap(),
        "--genes",
        store.to_str().unwrap(),
        "--hvg",
        "200",
        "--hidden",
        "32,16",
        "--latent",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    celltext(&args)
}

fn train(store: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--quiet", "--mode", "stepwise"];
    args.extend_from_slice(extra);
    train_input(Path::new(INPUT), store, out, &args)
}

/// The fixture, changed by `edit` (which returns the obs columns to write), at `dir/NAME`.
fn write_fixture(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut celltext::cells::matrix::ExpressionMatrix) -> Vec<(String, ObsColumn)>,
) -> PathBuf {
    use celltext::cells::h5ad::{write_new_h5ad, NewH5ad};
    let mut m = celltext::cells::pipeline::read_normalized(
        Path::new(INPUT),
        &Default::default(),
        celltext::cells::pipeline::InputNorm::Raw,
        true,
    )
    .unwrap();
    let obs = edit(&mut m);
    let out = dir.join(name);
    let new = NewH5ad {
        cell_ids: &m.cell_ids,
        genes: &m.genes,
        obs: &obs,
        x: Some(&m.x),
    };
    write_new_h5ad(&out, &new, &[], None).unwrap();
    out
}

/// The fixture with obs columns `platform` (text: p1, p2, p3 by cell index mod 3) and `depth`
/// (each cell's total count), written to `dir/NAME`; `drop` leaves a column out, `rename` changes
/// one cell's platform.
fn with_covariates(
    dir: &Path,
    name: &str,
    drop: Option<&str>,
    rename: Option<(usize, &str)>,
) -> PathBuf {
    write_fixture(dir, name, |m| {
        let n = m.cell_ids.len();
        let mut platform: Vec<String> = (0..n).map(|i| format!("p{}", i % 3 + 1)).collect();
        if let Some((i, v)) = rename {
            platform[i] = v.into();
        }
        let depth: Vec<f64> = (0..n)
            .map(|i| m.x.row(i).map(|(_, v)| v as f64).sum())
            .collect();
        let mut obs = vec![
            ("platform".to_string(), ObsColumn::Text(platform)),
            ("depth".to_string(), ObsColumn::Number(depth)),
        ];
        obs.retain(|(k, _)| Some(k.as_str()) != drop);
        obs
    })
}

#[test]
fn train_writes_everything_deterministically_and_embed_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let out = dir.path().join("a.h5ad");
    let o = train(&store, &out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (z, dim) = read_obsm(&out, "X_scilama").unwrap();
    assert_eq!((z.len(), dim), (60 * 8, 8));
    assert!(z.iter().all(|v| v.is_finite()));
    for side in [
        "a.h5ad.manifest.json",
        "a.scilama_genes.safetensors",
        "a.scilama_genes.genes.tsv",
        "a.scilama_genes.manifest.json",
        "a.scilama_model.safetensors",
        "a.scilama_model.safetensors.manifest.json",
        "a.scilama_losses.tsv",
    ] {
        assert!(dir.path().join(side).exists(), "{side} missing");
    }
    let genes = GeneEmbeddings::load(&dir.path().join("a.scilama_genes")).unwrap();
    assert_eq!((genes.len(), genes.dim), (200, 8));
    // --hvg 200: scanpy's seurat-flavor HVGs among the 300 store genes, the same set
    // (tests/fixtures/scilama/make_hvg_ref.py)
    let want = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scilama/hvg_200_of_300.txt"
    ))
    .unwrap();
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(genes.symbols, want);
    let losses = std::fs::read_to_string(dir.path().join("a.scilama_losses.tsv")).unwrap();
    assert_eq!(losses.lines().count(), 1 + 3 * 3, "{losses}");
    for step in ["cell", "gene", "joint"] {
        assert!(losses.lines().any(|l| l.starts_with(step)));
    }

    // same seed → identical embedding; another seed → a different one
    let b = dir.path().join("b.h5ad");
    assert!(train(&store, &b, &[]).status.success());
    assert_eq!(read_obsm(&b, "X_scilama").unwrap().0, z);
    let c = dir.path().join("c.h5ad");
    assert!(train(&store, &c, &["--seed", "1"]).status.success());
    assert_ne!(read_obsm(&c, "X_scilama").unwrap().0, z);

    // projecting the training cells through the saved model gives the training embedding
    let p = dir.path().join("p.h5ad");
    let model = dir.path().join("a.scilama_model.safetensors");
    let o = celltext(&[
        "--quiet",
        "scilama",
        "embed",
        "--model",
        model.to_str().unwrap(),
        "-i",
        INPUT,
        "-o",
        p.to_str().unwrap(),
        "--genes",
        store.to_str().unwrap(),
        "--genes-out",
        dir.path().join("proj").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_obsm(&p, "X_scilama").unwrap().0, z);
    let proj = GeneEmbeddings::load(&dir.path().join("proj")).unwrap();
    assert_eq!((proj.len(), proj.dim), (305, 8));
    let row = |s: &GeneEmbeddings, g: &str| {
        s.row(s.symbols.iter().position(|x| x == g).unwrap())
            .to_vec()
    };
    assert_eq!(
        row(&proj, &genes.symbols[0]),
        row(&genes, &genes.symbols[0])
    );
}

#[test]
fn gene_input_baselines_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let mut seen = Vec::new();
    for mode in ["self", "random", "shuffled"] {
        let out = dir.path().join(format!("{mode}.h5ad"));
        let o = train(&store, &out, &["--gene-input", mode]);
        assert!(
            o.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let z = read_obsm(&out, "X_scilama").unwrap().0;
        assert!(
            !seen.contains(&z),
            "{mode} gave the same embedding as another mode"
        );
        seen.push(z);
    }
}

#[test]
fn bad_inputs_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let o = train(&store, &dir.path().join("x.csv"), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must end in .h5ad"));
    let o = train(&store, &dir.path().join("y.h5ad"), &["--hidden", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--hidden"));
    let empty = GeneEmbeddings {
        symbols: vec!["NOTAGENE".into(), "NOTAGENE2".into()],
        dim: 2,
        data: vec![0.0; 4],
    };
    let ep = dir.path().join("empty");
    empty.save(&ep, &serde_json::json!({})).unwrap();
    let o = train(&ep, &dir.path().join("z.h5ad"), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("in the gene store"));
}

fn embed_cells(model: &Path, input: &Path, out: &Path) -> std::process::Output {
    embed_cells_with(model, input, out, &["--quiet"])
}

/// `scilama embed` of `input` with `extra` flags (warnings shown unless `--quiet` is one).
fn embed_cells_with(
    model: &Path,
    input: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "scilama",
        "embed",
        "--model",
        model.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    celltext(&args)
}

#[test]
fn covariates_round_trip_and_unknown_or_missing_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let input = with_covariates(dir.path(), "cov.h5ad", None, None);
    let out = dir.path().join("a.h5ad");
    // the default mode (direct) with a categorical and a continuous covariate, dropout 0
    let o = train_input(
        &input,
        &store,
        &out,
        &[
            "--quiet",
            "--dropout",
            "0",
            "--batch-key",
            "platform",
            "--covariate-key",
            "depth",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (z, dim) = read_obsm(&out, "X_scilama").unwrap();
    assert_eq!((z.len(), dim), (60 * 8, 8));
    // with --batch-key the HVGs are chosen within the batches: scanpy's `batch_key` selection
    // (tests/fixtures/scilama/make_hvg_ref.py), which differs from the plain one here
    let genes = GeneEmbeddings::load(&dir.path().join("a.scilama_genes")).unwrap();
    let want = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scilama/hvg_batch_200_of_300.txt"
    ))
    .unwrap();
    let mut want: Vec<&str> = want.lines().collect();
    want.sort_unstable();
    let mut got: Vec<&str> = genes.symbols.iter().map(|s| s.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, want);
    let manifest = std::fs::read_to_string(dir.path().join("a.h5ad.manifest.json")).unwrap();
    assert!(
        manifest.contains("\"hvg_within_batches\": true"),
        "{manifest}"
    );
    let losses = std::fs::read_to_string(dir.path().join("a.scilama_losses.tsv")).unwrap();
    assert_eq!(losses.lines().count(), 1 + 3, "{losses}");
    assert!(losses.lines().skip(1).all(|l| l.starts_with("joint\t")));

    // the model records the encoding: categories in sorted order, depth's mean and ddof-0 std
    let model = dir.path().join("a.scilama_model.safetensors");
    let lm = celltext::scilama::model_file::load_model(&model, &candle_core::Device::Cpu).unwrap();
    assert_eq!(lm.net.arch.n_cov, 4);
    let cov = &lm.covariates;
    assert_eq!(cov.categorical[0].key, "platform");
    assert_eq!(cov.categorical[0].categories, vec!["p1", "p2", "p3"]);
    let m = celltext::cells::pipeline::read_normalized(
        &input,
        &Default::default(),
        celltext::cells::pipeline::InputNorm::Raw,
        true,
    )
    .unwrap();
    let depth: Vec<f64> = (0..60)
        .map(|i| m.x.row(i).map(|(_, v)| v as f64).sum())
        .collect();
    let mean = depth.iter().sum::<f64>() / 60.0;
    let sd = (depth.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 60.0).sqrt();
    assert_eq!(cov.continuous[0].key, "depth");
    assert!((cov.continuous[0].mean - mean).abs() <= 1e-9 * mean);
    assert!((cov.continuous[0].std - sd).abs() <= 1e-9 * sd);

    // projecting the training cells reproduces the training embedding exactly
    let p = dir.path().join("p.h5ad");
    let o = embed_cells(&model, &input, &p);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_obsm(&p, "X_scilama").unwrap().0, z);

    // the covariates matter: the same cells under other platforms embed differently
    let shifted = with_covariates(dir.path(), "shifted.h5ad", None, Some((0, "p2")));
    let ps = dir.path().join("ps.h5ad");
    assert!(embed_cells(&model, &shifted, &ps).status.success());
    let zs = read_obsm(&ps, "X_scilama").unwrap().0;
    assert_ne!(
        zs[..8],
        z[..8],
        "cell 0 moved from p1 to p2 but its embedding did not change"
    );
    assert_eq!(zs[8..], z[8..]);

    // a depth far outside the training range embeds, with a warning in the manifest
    let far = write_fixture(dir.path(), "far.h5ad", |m| {
        let n = m.cell_ids.len();
        let platform = (0..n).map(|i| format!("p{}", i % 3 + 1)).collect();
        let depth = (0..n).map(|i| if i == 5 { 1e9 } else { 1000.0 }).collect();
        vec![
            ("platform".to_string(), ObsColumn::Text(platform)),
            ("depth".to_string(), ObsColumn::Number(depth)),
        ]
    });
    let pf = dir.path().join("pf.h5ad");
    assert!(embed_cells(&model, &far, &pf).status.success());
    let manifest = std::fs::read_to_string(dir.path().join("pf.h5ad.manifest.json")).unwrap();
    assert!(
        manifest.contains("obs column `depth` lies over 10 training standard deviations")
            && manifest.contains("for 1 of 60 cells"),
        "{manifest}"
    );

    // an unseen category and a missing column are refused by name
    let unknown = with_covariates(dir.path(), "unknown.h5ad", None, Some((4, "p9")));
    let o = embed_cells(&model, &unknown, &dir.path().join("u.h5ad"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`platform` holds `p9`"), "{err}");
    assert!(err.contains("p1, p2, p3"), "{err}");
    let missing = with_covariates(dir.path(), "missing.h5ad", Some("depth"), None);
    let o = embed_cells(&model, &missing, &dir.path().join("m.h5ad"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no column `depth`"), "{err}");
    // training on a column that is not there names it too
    let o = celltext(&[
        "--quiet",
        "scilama",
        "train",
        "-i",
        INPUT,
        "--genes",
        store.to_str().unwrap(),
        "--batch-key",
        "platform",
        "-o",
        dir.path().join("x.h5ad").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no column `platform`"));
}

/// The fixture with a `platform` column (p1, p2, p3, or "" — missing — for the cells in
/// `missing`), its counts times `scale`, and every gene from index `keep_genes` on renamed so no
/// store or model knows it.
fn variant(dir: &Path, name: &str, missing: &[usize], scale: f32, keep_genes: usize) -> PathBuf {
    write_fixture(dir, name, |m| {
        let platform: Vec<String> = (0..m.cell_ids.len())
            .map(|i| {
                if missing.contains(&i) {
                    String::new()
                } else {
                    format!("p{}", i % 3 + 1)
                }
            })
            .collect();
        m.x.data.iter_mut().for_each(|v| *v *= scale);
        for (j, g) in m.genes.iter_mut().enumerate().skip(keep_genes) {
            *g = format!("UNKNOWN{j}");
        }
        vec![("platform".to_string(), ObsColumn::Text(platform))]
    })
}

/// Inputs that would silently give a wrong answer are named: a batch column with missing
/// values (at train and at embed), a normalized matrix (a warning kept in the manifest), and a
/// dataset that lacks most of the model's genes (refused below --min-gene-fraction).
#[test]
fn missing_batches_normalized_input_and_missing_genes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let train_on =
        |input: &Path, out: &Path| train_input(input, &store, out, &["--batch-key", "platform"]);
    let holes = variant(dir.path(), "holes.h5ad", &[4, 7], 1.0, usize::MAX);
    let o = train_on(&holes, &dir.path().join("h.h5ad"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`platform` (--batch-key) has no value") && err.contains("2 of 60 cells"),
        "{err}"
    );
    assert!(!dir.path().join("h.h5ad").exists());

    // a matrix with non-integer values trains, with a warning on stderr and in the manifest
    let halved = variant(dir.path(), "halved.h5ad", &[], 0.5, usize::MAX);
    let o = train_on(&halved, &dir.path().join("a.h5ad"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: ") && err.contains("non-integer values"),
        "{err}"
    );
    let manifest = std::fs::read_to_string(dir.path().join("a.h5ad.manifest.json")).unwrap();
    assert!(
        manifest.contains("\"warnings\"") && manifest.contains("--layer counts"),
        "{manifest}"
    );

    // embedding: a missing batch is named as missing
    let model = dir.path().join("a.scilama_model.safetensors");
    let holes_half = variant(dir.path(), "holes_half.h5ad", &[9], 0.5, usize::MAX);
    let o = embed_cells(&model, &holes_half, &dir.path().join("e.h5ad"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no value (missing, empty or NaN) for cell"),
        "{err}"
    );

    // a dataset with only its first 60 genes known holds under half of the model's 200
    let few = variant(dir.path(), "few.h5ad", &[], 0.5, 60);
    let e = dir.path().join("few.out.h5ad");
    let o = embed_cells(&model, &few, &e);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("of the model's 200 genes are in this dataset")
            && err.contains("--gene-symbols-key")
            && err.contains("--min-gene-fraction"),
        "{err}"
    );
    assert!(!e.exists());
    let o = embed_cells_with(&model, &few, &e, &["--min-gene-fraction", "1.5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("--min-gene-fraction 1.5: give a share between 0 and 1"),
        "{err}"
    );
    assert!(!e.exists());
    let o = embed_cells_with(&model, &few, &e, &["--min-gene-fraction", "0.01"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("of the model's 200 genes found"), "{said}");
    // the manifest records the species the genes were read as; embed refuses another
    assert!(manifest.contains("\"species\": \"human\""), "{manifest}");
    let o = embed_cells_with(
        &model,
        &halved,
        &dir.path().join("mouse.h5ad"),
        &["--species", "mouse"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("trained on human gene names") && err.contains("pass --species human"),
        "{err}"
    );
}

#[test]
fn a_one_cell_batch_is_named_when_genes_are_chosen_within_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let input = with_covariates(dir.path(), "one.h5ad", None, Some((0, "p9")));
    let out = dir.path().join("a.h5ad");
    let o = celltext(&[
        "--quiet",
        "scilama",
        "train",
        "-i",
        input.to_str().unwrap(),
        "--genes",
        store.to_str().unwrap(),
        "--hvg",
        "200",
        "--batch-key",
        "platform",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("one.h5ad") && err.contains("platform = p9") && err.contains("--hvg 0"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn model_with_wrong_covariate_lengths_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = make_store(dir.path());
    let input = with_covariates(dir.path(), "cov.h5ad", None, None);
    let out = dir.path().join("a.h5ad");
    let o = celltext(&[
        "--quiet",
        "scilama",
        "train",
        "-i",
        input.to_str().unwrap(),
        "--genes",
        store.to_str().unwrap(),
        "--hvg",
        "200",
        "--hidden",
        "16",
        "--latent",
        "4",
        "--epochs",
        "1",
        "--batch-key",
        "platform",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.path().join("a.scilama_model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    // one category fewer than the encoder's input has columns for
    let mut cov: serde_json::Value = serde_json::from_str(&meta["covariates"]).unwrap();
    cov["categorical"][0]["categories"] = serde_json::json!(["p1", "p2"]);
    meta.insert("covariates".into(), cov.to_string());
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().collect();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    let err = match celltext::scilama::model_file::load_model(&bad, &candle_core::Device::Cpu) {
        Ok(_) => panic!("a model whose covariates disagree with its architecture was loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("describes 2 covariate columns"), "{err}");
    assert!(err.contains("takes 3"), "{err}");
}

/// A second store, of other genes than [`make_store`]'s (the fixture's genes 50..350) and another
/// width (5 dims), made by another (named) encoder.
fn make_second_store(dir: &Path) -> PathBuf {
    let src = celltext::cells::read::open_matrix(Path::new(INPUT), &Default::default()).unwrap();
    let symbols: Vec<String> = src.genes()[50..350].to_vec();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let data = (0..symbols.len() * 5)
        .map(|_| rng.gen::<f32>() - 0.5)
        .collect();
    let store = GeneEmbeddings {
        symbols,
        dim: 5,
        data,
    };
    let prefix = dir.join("store_b");
    store
        .save(
            &prefix,
            &serde_json::json!({"model": {"id": "second-encoder"}}),
        )
        .unwrap();
    prefix
}

fn embed_genes(model: &Path, stores: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec![
        "--quiet".to_string(),
        "scilama".into(),
        "embed".into(),
        "--model".into(),
        model.display().to_string(),
        "--genes-out".into(),
        out.display().to_string(),
    ];
    for s in stores {
        args.extend(["--genes".into(), s.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    celltext(&args)
}

#[test]
fn two_gene_stores_are_fused_recorded_and_checked_at_embed() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_store(dir.path());
    let b = make_second_store(dir.path());
    let b_arg = b.to_str().unwrap();
    let out = dir.path().join("two.h5ad");
    let o = train(&a, &out, &["--genes", b_arg, "--fusion", "moe"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (z, dim) = read_obsm(&out, "X_scilama").unwrap();
    assert_eq!((z.len(), dim), (60 * 8, 8));

    // the model's genes are in both stores (the fixture's genes 50..300), --hvg 200 of them
    let src = celltext::cells::read::open_matrix(Path::new(INPUT), &Default::default()).unwrap();
    let in_both: Vec<String> = src.genes()[50..300].to_vec();
    let genes = GeneEmbeddings::load(&dir.path().join("two.scilama_genes")).unwrap();
    assert_eq!((genes.len(), genes.dim), (200, 8));
    assert!(genes.symbols.iter().all(|g| in_both.contains(g)));

    // the model records both stores in --genes order, one encoder each, and the fusion
    let model = dir.path().join("two.scilama_model.safetensors");
    let lm = celltext::scilama::model_file::load_model(&model, &candle_core::Device::Cpu).unwrap();
    assert_eq!(lm.net.arch.gene_dims(), vec![8, 5]);
    assert_eq!(lm.net.arch.fusion, Some(celltext::scilama::Fusion::Moe));
    let stores = lm.stores.as_ref().expect("the store record");
    assert_eq!(stores.len(), 2);
    assert_eq!(stores[0].path, a.display().to_string());
    assert_eq!(stores[1].path, b.display().to_string());
    assert_eq!(stores[1].encoder.as_deref(), Some("second-encoder"));
    for name in [
        "gene_enc0.0.weight",
        "gene_enc1.0.weight",
        "gene_dec.0.weight",
    ] {
        assert!(lm.net.var(name).is_ok(), "{name}");
    }
    assert_eq!(lm.net.var("gene_enc1.0.weight").unwrap().dims(), [32, 5]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("two.h5ad.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["fusion"], "moe");
    assert_eq!(manifest["gene_stores"].as_array().unwrap().len(), 2);

    // the same cells and stores through the saved model: the training embeddings, cells and genes
    let p = dir.path().join("p.h5ad");
    let o = embed_cells(&model, Path::new(INPUT), &p);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(read_obsm(&p, "X_scilama").unwrap().0, z);
    let proj = dir.path().join("proj");
    let o = embed_genes(&model, &[&a, &b], &proj);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let proj = GeneEmbeddings::load(&proj).unwrap();
    assert_eq!(
        proj.symbols, in_both,
        "the genes of store 1 that store 2 has"
    );
    for g in &genes.symbols {
        let row = |s: &GeneEmbeddings| {
            s.row(s.symbols.iter().position(|x| x == g).unwrap())
                .to_vec()
        };
        assert_eq!(row(&proj), row(&genes), "{g}");
    }

    // another fusion trains another model; one store alone another still
    let avg = dir.path().join("avg.h5ad");
    assert!(train(&a, &avg, &["--genes", b_arg]).status.success());
    assert_ne!(read_obsm(&avg, "X_scilama").unwrap().0, z);
    let lm_avg = celltext::scilama::model_file::load_model(
        &dir.path().join("avg.scilama_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        lm_avg.net.arch.fusion,
        Some(celltext::scilama::Fusion::Average)
    );
    let one = dir.path().join("one.h5ad");
    assert!(train(&a, &one, &[]).status.success());
    assert_ne!(read_obsm(&one, "X_scilama").unwrap().0, z);
}

#[test]
fn stores_that_disagree_or_are_missing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_store(dir.path());
    let b = make_second_store(dir.path());
    let out = dir.path().join("two.h5ad");
    let o = train(&a, &out, &["--genes", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.path().join("two.scilama_model.safetensors");
    let proj = dir.path().join("proj");

    // a store missing at embed: the model's stores are named, in order
    let o = embed_genes(&model, &[&a], &proj);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trained with 2 gene stores"), "{err}");
    assert!(err.contains("--genes was given 1 time"), "{err}");
    assert!(err.contains("[2] `") && err.contains("5 dims"), "{err}");
    // the stores in the other order
    let o = embed_genes(&model, &[&b, &a], &proj);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not match the model's gene store 1"),
        "{err}"
    );
    // a store of the right width from another encoder
    // (genes 300 and 301 of the fixture: none of them in the first store)
    let src = celltext::cells::read::open_matrix(Path::new(INPUT), &Default::default()).unwrap();
    let other = GeneEmbeddings {
        symbols: src.genes()[300..302].to_vec(),
        dim: 5,
        data: vec![0.1; 10],
    };
    let op = dir.path().join("other");
    other
        .save(&op, &serde_json::json!({"model": {"id": "third-encoder"}}))
        .unwrap();
    let o = embed_genes(&model, &[&a, &op], &proj);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("encoder third-encoder"), "{err}");
    assert!(err.contains("encoder second-encoder"), "{err}");
    // two stores for a one-store model
    let single = dir.path().join("one.h5ad");
    assert!(train(&a, &single, &[]).status.success());
    let o = embed_genes(
        &dir.path().join("one.scilama_model.safetensors"),
        &[&a, &b],
        &proj,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trained with 1 gene store"), "{err}");
    assert!(!proj.with_extension("safetensors").exists());

    // training: stores that share under 2 of the dataset's genes, named with what each lacks
    let o = train(
        &a,
        &dir.path().join("x.h5ad"),
        &["--genes", op.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("in every gene store"), "{err}");
    assert!(
        err.contains("store 1 `") && err.contains("lacks 100 of the dataset's 400 genes"),
        "{err}"
    );
    assert!(err.contains("store 2 `"), "{err}");
    // a gene-input baseline replaces the store, so it takes one
    let o = train(
        &a,
        &dir.path().join("y.h5ad"),
        &["--genes", b.to_str().unwrap(), "--gene-input", "self"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--gene-input self") && err.contains("one --genes store, not 2"),
        "{err}"
    );

    // a several-store model whose store record is gone (or disagrees with its encoders)
    let bytes = std::fs::read(&model).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().collect();
    let mut stores: serde_json::Value = serde_json::from_str(&meta["gene_stores"]).unwrap();
    stores[1]["dim"] = serde_json::json!(6);
    for (name, value, said) in [
        ("gone", None, "`gene_stores` is missing"),
        ("wrong", Some(stores.to_string()), "widths [8,6]"),
    ] {
        let mut meta = meta.clone();
        match value {
            Some(v) => meta.insert("gene_stores".into(), v),
            None => meta.remove("gene_stores"),
        };
        let bad = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(
            &bad,
            safetensors::serialize(tensors.clone(), Some(meta)).unwrap(),
        )
        .unwrap();
        let err = match celltext::scilama::model_file::load_model(&bad, &candle_core::Device::Cpu) {
            Ok(_) => panic!("{name}: a model whose store record disagrees with it was loaded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("gene encoders of widths [8,5]"), "{err}");
        assert!(err.contains(said), "{err}");
    }
}
