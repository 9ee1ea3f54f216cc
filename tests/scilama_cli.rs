//! `celltext scilama train | embed` end to end on 60 real pbmc3k cells × 400 genes with a seeded
//! random gene store: outputs, shapes, determinism, projection of the training cells, the
//! gene-input baselines and error messages.

use std::path::{Path, PathBuf};
use std::process::Command;

use celltext::cells::h5ad::read_obsm;
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

fn train(store: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--quiet",
        "scilama",
        "train",
        "-i",
        INPUT,
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
