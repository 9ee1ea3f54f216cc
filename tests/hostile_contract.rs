//! The output contract under kill and tampering (docs/hostile-input.md), through the real binary:
//! a kill at each point of a multi-file writer (the library's `CELLTEXT_TEST_ABORT_AFTER=NAME`
//! hook aborts the process right after the part NAME is committed, as `kill -9` would) leaves the
//! old output, the new output, or a set its readers refuse by name; sciLaMA models with NaN
//! weights, transposed weights or short scaling vectors are refused; sizes in the billions are
//! refused before allocation. The static cases (overlapping paths, folders, tampered shards,
//! FIFOs) are `tests/hostile/cases/c-*`, run by `tests/hostile.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use celltext::genes::GeneEmbeddings;
use rand::{Rng, SeedableRng};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/models/ember-like"
);
const H5AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/pbmc3k_small/data.h5ad"
);

/// (exit code, None when killed by a signal; stderr)
fn run(args: &[&str], abort_after: Option<&str>) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_celltext"));
    c.arg("--quiet")
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("CELLTEXT_TEST_ABORT_AFTER")
        .env_remove("CELLTEXT_MAX_ELEMENTS");
    if let Some(name) = abort_after {
        c.env("CELLTEXT_TEST_ABORT_AFTER", name);
    }
    let o = c.output().expect("run celltext");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha(p: &Path) -> String {
    celltext::io::sha256_file(p).unwrap()
}

fn manifest(p: &Path) -> serde_json::Value {
    let m = celltext::io::manifest_path(p);
    serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap()
}

fn embed_shard(texts: &Path, out: &Path, shard: &str, abort_after: Option<&str>) -> Option<i32> {
    let args = [
        "embed",
        "-m",
        MODEL,
        "-i",
        s(texts),
        "--shard",
        shard,
        "-o",
        s(out),
    ];
    let (code, err) = run(&args, abort_after);
    if abort_after.is_none() {
        assert_eq!(code, Some(0), "{err}");
    }
    code
}

/// `embed --shard`: the `.npy` is committed first, the manifest (with the `.npy`'s sha256) last.
/// A rerun killed between the two leaves new vectors under the old manifest: `merge` refuses that
/// shard by name; killed after the manifest, the shard is complete and merges.
#[test]
fn a_shard_killed_between_its_parts_is_refused_by_merge() {
    let d = tempfile::tempdir().unwrap();
    let (t1, t2) = (d.path().join("t1.txt"), d.path().join("t2.txt"));
    std::fs::write(&t1, "hello world\ngene cell\nworld gene\ncell hello\n").unwrap();
    std::fs::write(&t2, "cell cell\nhello hello\ngene world\nworld world\n").unwrap();
    let (p1, p2) = (d.path().join("p1.npy"), d.path().join("p2.npy"));
    embed_shard(&t1, &p1, "1/2", None);
    embed_shard(&t1, &p2, "2/2", None);
    let merged = d.path().join("m.npy");
    let (code, err) = run(&["merge", s(&p1), s(&p2), "-o", s(&merged)], None);
    assert_eq!(code, Some(0), "{err}");
    // merge's manifest, written last, records the merged file's sha256
    assert_eq!(manifest(&merged)["output_sha256"], sha(&merged));
    let first_merge = std::fs::read(&merged).unwrap();

    // rerun shard 1 on other texts, killed after its .npy: old manifest, new vectors
    let old_manifest = std::fs::read(celltext::io::manifest_path(&p1)).unwrap();
    let code = embed_shard(&t2, &p1, "1/2", Some("p1.npy"));
    assert_eq!(code, None, "the fault hook kills the run");
    assert_eq!(
        std::fs::read(celltext::io::manifest_path(&p1)).unwrap(),
        old_manifest,
        "the manifest is the old one"
    );
    let m2 = d.path().join("m2.npy");
    let (code, err) = run(&["merge", s(&p1), s(&p2), "-o", s(&m2)], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("p1.npy") && err.contains("does not match its manifest"),
        "{err}"
    );
    assert!(!m2.exists() && !celltext::io::manifest_path(&m2).exists());

    // killed after its manifest (the last part): the shard is whole again, from the new run
    let code = embed_shard(&t1, &p1, "1/2", Some("p1.npy.manifest.json"));
    assert_eq!(code, None);
    let (code, err) = run(&["merge", s(&p1), s(&p2), "-o", s(&m2)], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&m2).unwrap(), first_merge);

    // a merge killed between its output and its manifest: the old manifest's sha256 tells the
    // new output apart
    embed_shard(&t2, &p1, "1/2", None);
    embed_shard(&t2, &p2, "2/2", None);
    let code = run(&["merge", s(&p1), s(&p2), "-o", s(&merged)], Some("m.npy")).0;
    assert_eq!(code, None);
    assert_ne!(std::fs::read(&merged).unwrap(), first_merge, "new vectors");
    assert_eq!(
        manifest(&merged)["output_sha256"],
        celltext::io::sha256_bytes(&first_merge)
    );
    assert_ne!(manifest(&merged)["output_sha256"], sha(&merged));
}

/// A store for the first 300 of the fixture's genes (8 dims).
fn make_store(dir: &Path) -> PathBuf {
    let src = celltext::cells::read::open_matrix(Path::new(H5AD), &Default::default()).unwrap();
    let symbols: Vec<String> = src.genes()[..300].to_vec();
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

fn train(store: &Path, out: &Path, seed: &str, abort_after: Option<&str>) -> Option<i32> {
    let args = [
        "scilama",
        "train",
        "-i",
        H5AD,
        "--genes",
        s(store),
        "--hvg",
        "100",
        "--hidden",
        "16",
        "--latent",
        "4",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--seed",
        seed,
        "-o",
        s(out),
    ];
    let (code, err) = run(&args, abort_after);
    if abort_after.is_none() {
        assert_eq!(code, Some(0), "{err}");
    }
    code
}

fn scilama_embed(model: &Path, store: &Path, out: &Path) -> (Option<i32>, String) {
    run(
        &[
            "scilama",
            "embed",
            "--model",
            s(model),
            "--genes",
            s(store),
            "--genes-out",
            s(out),
        ],
        None,
    )
}

/// `scilama train` writes a set (cells, gene store, losses, model); the model's manifest is the
/// set's marker: removed first, written last with every part's sha256. A kill at any part leaves
/// no marker, and `scilama embed` refuses the model by name; a model from another run under the
/// marker is refused by its sha256.
#[test]
fn scilama_sets_survive_kills_as_old_new_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let store = make_store(d.path());
    let out = d.path().join("a.npy");
    let model = d.path().join("a.scilama_model.safetensors");
    let marker = celltext::io::manifest_path(&model);
    train(&store, &out, "0", None);
    let m = manifest(&model);
    let parts: Vec<&str> = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    for want in [
        "a.npy",
        "a.npy.manifest.json",
        "a.scilama_genes.safetensors",
        "a.scilama_genes.genes.tsv",
        "a.scilama_genes.manifest.json",
        "a.scilama_losses.tsv",
        "a.scilama_losses.tsv.manifest.json",
        "a.scilama_model.safetensors",
    ] {
        assert!(parts.contains(&want), "{want} not in {parts:?}");
    }
    let proj = d.path().join("proj");
    let (code, err) = scilama_embed(&model, &store, &proj);
    assert_eq!(code, Some(0), "{err}");

    for part in [
        "a.npy",
        "a.scilama_genes.manifest.json",
        "a.scilama_losses.tsv.manifest.json",
        "a.scilama_model.safetensors",
    ] {
        assert_eq!(train(&store, &out, "1", Some(part)), None, "{part}");
        assert!(!marker.exists(), "killed after {part}: no marker");
        let (code, err) = scilama_embed(&model, &store, &d.path().join("p2"));
        assert_eq!(code, Some(1), "{part}: {err}");
        assert!(
            err.contains("a.scilama_model.safetensors.manifest.json") && err.contains("missing"),
            "{err}"
        );
    }
    // the run completes: the new set is whole
    train(&store, &out, "1", None);
    let new_model = std::fs::read(&model).unwrap();
    assert_eq!(scilama_embed(&model, &store, &proj).0, Some(0));

    // another run's model under this marker: refused by sha256
    let other = d.path().join("b.npy");
    train(&store, &other, "2", None);
    std::fs::copy(d.path().join("b.scilama_model.safetensors"), &model).unwrap();
    let (code, err) = scilama_embed(&model, &store, &d.path().join("p3"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not match its manifest"), "{err}");
    std::fs::write(&model, new_model).unwrap();
}

/// Rewrites `model` with `edit` applied to its tensors (name → (shape, values)) and its manifest
/// record updated, so only the model's own validation can catch the change.
fn tamper_model(
    model: &Path,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
) -> Vec<u8> {
    let original = std::fs::read(model).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&original).unwrap();
    let meta = meta.metadata().clone();
    let st = safetensors::SafeTensors::deserialize(&original).unwrap();
    let mut ts: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, t.shape().to_vec(), v)
        })
        .collect();
    edit(&mut ts);
    let bytes: Vec<Vec<u8>> = ts
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = ts
        .iter()
        .zip(&bytes)
        .map(|((n, sh, _), b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, sh.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let new = safetensors::serialize(views, meta).unwrap();
    std::fs::write(model, &new).unwrap();
    let mp = celltext::io::manifest_path(model);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    for p in m["parts"].as_array_mut().unwrap() {
        if p["file"] == "a.scilama_model.safetensors" {
            *p = celltext::outputs::part_record(model).unwrap();
        }
    }
    std::fs::write(&mp, serde_json::to_vec(&m).unwrap()).unwrap();
    original
}

#[test]
fn broken_scilama_models_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let store = make_store(d.path());
    let out = d.path().join("a.npy");
    let model = d.path().join("a.scilama_model.safetensors");
    train(&store, &out, "0", None);
    type Edit = Box<dyn FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "NaN weight",
            Box::new(|ts| {
                let t = ts.iter_mut().find(|t| t.0 == "gene_enc.mu.weight").unwrap();
                t.2[3] = f32::NAN;
            }),
            vec!["gene_enc.mu.weight", "NaN", "element 3", "finite"],
        ),
        (
            "inf scale",
            Box::new(|ts| {
                let t = ts.iter_mut().find(|t| t.0 == "scaling.std").unwrap();
                t.2[0] = f32::INFINITY;
            }),
            vec!["scaling.std", "inf"],
        ),
        (
            "transposed weight",
            Box::new(|ts| {
                let t = ts.iter_mut().find(|t| t.0 == "gene_enc.mu.weight").unwrap();
                t.1.reverse();
            }),
            vec!["gene_enc.mu.weight", "shape", "declares"],
        ),
        (
            "short scaling vector",
            Box::new(|ts| {
                let t = ts.iter_mut().find(|t| t.0 == "scaling.mean").unwrap();
                t.2.truncate(t.2.len() - 3);
                t.1 = vec![t.2.len()];
            }),
            vec!["scaling.mean", "shape"],
        ),
    ];
    for (what, edit, needles) in cases {
        let original = tamper_model(&model, edit);
        let proj = d.path().join("proj");
        let (code, err) = scilama_embed(&model, &store, &proj);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        for n in needles {
            assert!(err.contains(n), "{what}: {n:?} not in {err}");
        }
        assert!(!proj.with_extension("safetensors").exists(), "{what}");
        std::fs::write(&model, original).unwrap();
        let mp = celltext::io::manifest_path(&model);
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
        for p in m["parts"].as_array_mut().unwrap() {
            if p["file"] == "a.scilama_model.safetensors" {
                *p = celltext::outputs::part_record(&model).unwrap();
            }
        }
        std::fs::write(&mp, serde_json::to_vec(&m).unwrap()).unwrap();
    }
    // the untampered model still projects
    assert_eq!(
        scilama_embed(&model, &store, &d.path().join("ok")).0,
        Some(0)
    );
}

/// `--latent` / `--hidden` in the billions are refused by name before anything is allocated.
#[test]
fn huge_scilama_sizes_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let store = make_store(d.path());
    for (flag, value) in [("--latent", "3000000000"), ("--hidden", "4000000000,2")] {
        let out = d.path().join("a.npy");
        let mut args = vec![
            "scilama",
            "train",
            "-i",
            H5AD,
            "--genes",
            s(&store),
            "--hvg",
            "100",
            "--epochs",
            "1",
            "-o",
            s(&out),
        ];
        args.extend([flag, value]);
        let (code, err) = run(&args, None);
        assert_eq!(code, Some(1), "{flag}: {err}");
        assert!(
            err.contains(&format!("{flag} {value}")) && err.contains("CELLTEXT_MAX_ELEMENTS"),
            "{err}"
        );
        assert!(!out.exists());
    }
}

/// `synth-model` builds its folder under a temp name and commits it by one rename: killed inside
/// the build, the old folder is intact; the next run removes the dead run's temp folder.
#[test]
fn synth_model_killed_mid_write_keeps_the_old_folder() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m");
    let args = |seed: &'static str| {
        vec![
            "synth-model".to_string(),
            "--shape".into(),
            "minilm".into(),
            "--tokenizer-from".into(),
            MODEL.into(),
            "--seed".into(),
            seed.into(),
            "-o".into(),
            out.to_str().unwrap().to_string(),
        ]
    };
    let a = args("1");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_eq!(run(&a, None).0, Some(0));
    let weights = sha(&out.join("model.safetensors"));
    let b = args("2");
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    assert_eq!(run(&b, Some("model.safetensors")).0, None);
    assert_eq!(
        sha(&out.join("model.safetensors")),
        weights,
        "old folder intact"
    );
    let leftovers = || {
        std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "m")
            .collect::<Vec<_>>()
    };
    // the killed run's temp folder and its lock file (taken over by the next run)
    let left = leftovers();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().any(|n| n.ends_with(".tmp")), "{left:?}");
    assert_eq!(run(&b, None).0, Some(0));
    assert_ne!(sha(&out.join("model.safetensors")), weights);
    assert!(leftovers().is_empty(), "{:?}", leftovers());
}

/// A synthetic model written before config.json recorded `celltext_command` (it records
/// `celltext_synthetic_seed` only) is replaced by `synth-model` and by `device-check` (both go
/// through `write_random_bert`) when the folder holds nothing but a synthetic model's files; a
/// folder with anything else in it is still refused and left untouched.
#[test]
fn an_older_synthetic_model_folder_is_replaced_and_a_foreign_one_refused() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("m");
    let synth = |seed: &str| {
        run(
            &[
                "synth-model",
                "--shape",
                "minilm",
                "--tokenizer-from",
                MODEL,
                "--seed",
                seed,
                "-o",
                s(&out),
            ],
            None,
        )
    };
    assert_eq!(synth("1").0, Some(0));
    // as an older version left it: no `celltext_command`, weights never written (killed)
    let cfg_path = out.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("celltext_command");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    std::fs::remove_file(out.join("model.safetensors")).unwrap();
    let (code, err) = synth("2");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.join("model.safetensors").is_file());
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(cfg["celltext_command"], "synth-model");
    assert_eq!(cfg["celltext_synthetic_seed"], 2);
    // the same old config beside a file synth-model never writes: refused, nothing touched
    let mut old = cfg.clone();
    old.as_object_mut().unwrap().remove("celltext_command");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let weights = sha(&out.join("model.safetensors"));
    let (code, err) = synth("3");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--out")
            && err.contains("holds other files")
            && err.contains("new (or empty) folder"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(sha(&out.join("model.safetensors")), weights);
}

/// A `--batch-key` column that exists but holds no value is an error naming it (exit 1), not a
/// string inside report.json.
#[test]
fn an_empty_batch_key_column_is_an_error() {
    use celltext::cells::matrix::ObsColumn;
    let d = tempfile::tempdir().unwrap();
    let h5 = d.path().join("b.h5ad");
    let n = celltext::cells::read::open_matrix(Path::new(H5AD), &Default::default())
        .unwrap()
        .n_cells();
    let mut once = Some(vec![0f32; n]);
    celltext::cells::h5ad::write_h5ad_with_obsm_blocks(
        Path::new(H5AD),
        &h5,
        ("X_dummy", 1),
        &mut || Ok(once.take()),
        &[("batch".to_string(), ObsColumn::Number(vec![f64::NAN; n]))],
        None,
    )
    .unwrap();
    let report = d.path().join("rep");
    let (code, err) = run(
        &[
            "classify",
            "-i",
            s(&h5),
            "--label",
            "label",
            "--on",
            "counts",
            "--batch-key",
            "batch",
            "--report",
            s(&report),
        ],
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--batch-key batch") && err.contains("holds no value"),
        "{err}"
    );
    assert!(!report.exists());
}

/// A full disk (the library's `CELLTEXT_TEST_DISK_FULL=NAME` hook: the part NAME's temp file is
/// /dev/full) fails the run with exit 1 and leaves old-or-refused, as a kill does.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_leaves_old_or_refused() {
    let full = |args: &[&str], name: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_celltext"))
            .arg("--quiet")
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("CELLTEXT_TEST_DISK_FULL", name)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let d = tempfile::tempdir().unwrap();
    // a shard whose manifest cannot be written: new vectors, old manifest, refused by merge
    let (t1, t2) = (d.path().join("t1.txt"), d.path().join("t2.txt"));
    std::fs::write(&t1, "hello world\ngene cell\nworld gene\ncell hello\n").unwrap();
    std::fs::write(&t2, "cell cell\nhello hello\ngene world\nworld world\n").unwrap();
    let (p1, p2) = (d.path().join("p1.npy"), d.path().join("p2.npy"));
    embed_shard(&t1, &p1, "1/2", None);
    embed_shard(&t1, &p2, "2/2", None);
    let args = [
        "embed",
        "-m",
        MODEL,
        "-i",
        s(&t2),
        "--shard",
        "1/2",
        "-o",
        s(&p1),
    ];
    let (code, err) = full(&args, "p1.npy.manifest.json");
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = run(
        &["merge", s(&p1), s(&p2), "-o", s(&d.path().join("m.npy"))],
        None,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("p1.npy") && err.contains("does not match its manifest"),
        "{err}"
    );

    // a sciLaMA run that cannot write its losses: no marker, the model is refused
    let store = make_store(d.path());
    let out = d.path().join("a.npy");
    train(&store, &out, "0", None);
    let model = d.path().join("a.scilama_model.safetensors");
    let args = [
        "scilama",
        "train",
        "-i",
        H5AD,
        "--genes",
        s(&store),
        "--hvg",
        "100",
        "--hidden",
        "16",
        "--latent",
        "4",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--seed",
        "1",
        "-o",
        s(&out),
    ];
    let (code, err) = full(&args, "a.scilama_losses.tsv");
    assert_eq!(code, Some(1), "{err}");
    let (code, err) = scilama_embed(&model, &store, &d.path().join("p"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing"), "{err}");
}

/// `cells embed` into an .h5ad: the manifest, written last, records the h5ad's sha256, so a run
/// killed between the two renames leaves a pair that `verify_output` refuses by name; the next
/// whole run makes them one again.
#[test]
fn an_h5ad_output_killed_before_its_manifest_is_refused() {
    use celltext::cells::output::verify_output;
    let d = tempfile::tempdir().unwrap();
    let store = make_store(d.path());
    let out = d.path().join("cells.h5ad");
    let embed = |top_n: &str, abort_after: Option<&str>| {
        let args = [
            "cells",
            "embed",
            "-i",
            H5AD,
            "--genes",
            s(&store),
            "--top-n",
            top_n,
            "-o",
            s(&out),
        ];
        run(&args, abort_after)
    };
    let (code, err) = embed("50", None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(manifest(&out)["output_sha256"], sha(&out));
    verify_output(&out).unwrap();

    let old_manifest = std::fs::read(celltext::io::manifest_path(&out)).unwrap();
    let old_h5ad = std::fs::read(&out).unwrap();
    assert_eq!(
        embed("20", Some("cells.h5ad")).0,
        None,
        "the fault hook kills the run"
    );
    assert_eq!(
        std::fs::read(celltext::io::manifest_path(&out)).unwrap(),
        old_manifest,
        "the manifest is the old one"
    );
    assert_ne!(
        std::fs::read(&out).unwrap(),
        old_h5ad,
        "the h5ad is the new one"
    );
    let err = verify_output(&out).unwrap_err().to_string();
    assert!(
        err.contains("cells.h5ad") && err.contains("different runs"),
        "{err}"
    );

    let (code, err) = embed("20", None);
    assert_eq!(code, Some(0), "{err}");
    verify_output(&out).unwrap();
}
