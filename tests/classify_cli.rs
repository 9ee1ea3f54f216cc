//! `celltext classify` end to end on real data: tests/data/pbmc3k_small/data.h5ad (315 pbmc3k
//! cells, 9 labels in obs `label`, raw counts in layers['counts'], X = log1p CP10k).
//!
//! That file has no obsm embedding, so the tests first write a copy with two, both from log1p X
//! restricted to its 1,000 highest-variance genes: `X_pca`, 30 PCA scores of the z-scored genes
//! (seeded subspace iteration), and `X_rp16`, a seeded ±1 random projection to 16 dimensions (a
//! deliberately weaker second source for fusion). Reference for the `--on counts` accuracy: scikit-learn
//! `KNeighborsClassifier(metric="cosine")` on log1p-CP10k of layers['counts'] scores 0.53 (k=1),
//! 0.62 (k=5), 0.68 (k=10) in 5-fold CV; chance (majority class) is 79/315 = 0.25.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use celltext::cells::h5ad::{read_h5ad_obs, write_h5ad_with_obsm};
use celltext::cells::matrix::ObsColumn;
use celltext::cells::read::{read_matrix, ReadOptions};
use serde_json::Value;

const DATA: &str = "tests/data/pbmc3k_small/data.h5ad";

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DATA)
}

struct Fixture {
    /// data.h5ad + obsm X_pca (30-d), X_rp16 (16-d) + obs `split` (train/test/val) and
    /// `label_partial` (20 empty labels, one singleton class).
    h5ad: PathBuf,
    /// X_pca as .npy (rows = cells in input order).
    npy: PathBuf,
    n_cells: usize,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// ±1 random projection of the `genes` columns of a CSR matrix to `dim` dimensions.
fn project(
    m: &celltext::cells::matrix::CsrMatrix,
    genes: &[usize],
    dim: usize,
    seed: u64,
) -> Vec<f32> {
    let mut pos = vec![usize::MAX; m.n_cols];
    for (p, &g) in genes.iter().enumerate() {
        pos[g] = p;
    }
    let mut s = seed;
    let r: Vec<f32> = (0..genes.len() * dim)
        .map(|_| if splitmix(&mut s) & 1 == 0 { 1.0 } else { -1.0 })
        .collect();
    let mut out = vec![0f32; m.n_rows * dim];
    for i in 0..m.n_rows {
        for (j, v) in m.row(i) {
            if pos[j] != usize::MAX {
                let rr = &r[pos[j] * dim..(pos[j] + 1) * dim];
                for (o, &w) in out[i * dim..(i + 1) * dim].iter_mut().zip(rr) {
                    *o += v * w;
                }
            }
        }
    }
    out
}

/// PCA scores (first `k` components) of the z-scored `genes` columns: seeded subspace iteration
/// on the cells × cells Gram matrix (300 rounds, modified Gram-Schmidt). Any good approximation
/// of the leading subspace serves as a test embedding; it is deterministic.
fn pca_scores(
    m: &celltext::cells::matrix::CsrMatrix,
    genes: &[usize],
    k: usize,
    seed: u64,
) -> Vec<f32> {
    let (n, g) = (m.n_rows, genes.len());
    let mut pos = vec![usize::MAX; m.n_cols];
    for (p, &j) in genes.iter().enumerate() {
        pos[j] = p;
    }
    let mut x = vec![0f64; n * g];
    for i in 0..n {
        for (j, v) in m.row(i) {
            if pos[j] != usize::MAX {
                x[i * g + pos[j]] = v as f64;
            }
        }
    }
    for c in 0..g {
        let mean = (0..n).map(|i| x[i * g + c]).sum::<f64>() / n as f64;
        let sd = ((0..n).map(|i| (x[i * g + c] - mean).powi(2)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-12);
        (0..n).for_each(|i| x[i * g + c] = (x[i * g + c] - mean) / sd);
    }
    let mut gram = vec![0f64; n * n];
    for a in 0..n {
        for b in a..n {
            let d: f64 = x[a * g..(a + 1) * g]
                .iter()
                .zip(&x[b * g..(b + 1) * g])
                .map(|(p, q)| p * q)
                .sum();
            gram[a * n + b] = d;
            gram[b * n + a] = d;
        }
    }
    let mut s = seed;
    // columns of v stored as k vectors of length n
    let mut v: Vec<Vec<f64>> = (0..k)
        .map(|_| {
            (0..n)
                .map(|_| (splitmix(&mut s) % 2001) as f64 / 1000.0 - 1.0)
                .collect()
        })
        .collect();
    for _ in 0..300 {
        for col in v.iter_mut() {
            *col = (0..n)
                .map(|a| {
                    gram[a * n..(a + 1) * n]
                        .iter()
                        .zip(col.iter())
                        .map(|(p, q)| p * q)
                        .sum()
                })
                .collect();
        }
        for c in 0..k {
            for prev in 0..c {
                let d: f64 = v[c].iter().zip(&v[prev]).map(|(p, q)| p * q).sum();
                let pv = v[prev].clone();
                v[c].iter_mut().zip(&pv).for_each(|(p, q)| *p -= d * q);
            }
            let norm = v[c].iter().map(|p| p * p).sum::<f64>().sqrt();
            v[c].iter_mut().for_each(|p| *p /= norm);
        }
    }
    let mut out = vec![0f32; n * k];
    for (c, col) in v.iter().enumerate() {
        let gv: Vec<f64> = (0..n)
            .map(|a| {
                gram[a * n..(a + 1) * n]
                    .iter()
                    .zip(col)
                    .map(|(p, q)| p * q)
                    .sum()
            })
            .collect();
        let lambda: f64 = gv.iter().zip(col).map(|(p, q)| p * q).sum();
        for i in 0..n {
            out[i * k + c] = (col[i] * lambda.max(0.0).sqrt()) as f32;
        }
    }
    out
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // CARGO_TARGET_TMPDIR outlives the test process (a static TempDir would never be removed);
        // files are written atomically, so a rerun simply replaces them.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("classify_cli");
        std::fs::create_dir_all(&dir).unwrap();
        let m = read_matrix(&data(), &ReadOptions::default()).unwrap();
        let n = m.x.n_rows;
        // highest-variance genes of log1p X
        let mut sum = vec![0f64; m.x.n_cols];
        let mut sq = vec![0f64; m.x.n_cols];
        for i in 0..n {
            for (j, v) in m.x.row(i) {
                sum[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let var: Vec<f64> = (0..m.x.n_cols)
            .map(|j| sq[j] / n as f64 - (sum[j] / n as f64).powi(2))
            .collect();
        let mut order: Vec<usize> = (0..m.x.n_cols).collect();
        order.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
        order.truncate(1000);
        let pca = pca_scores(&m.x, &order, 30, 7);
        let rp16 = project(&m.x, &order, 16, 11);
        let labels = m.obs_column("label").unwrap().to_labels();
        // split column: every 5th cell test, every 7th (not 5th) val, rest train
        let split: Vec<String> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    "test"
                } else if i % 7 == 0 {
                    "val"
                } else {
                    "train"
                }
                .to_string()
            })
            .collect();
        // partial labels: 20 cells unlabelled, one cell relabelled into a singleton class
        let mut partial = labels.clone();
        for i in (3..n).step_by(15).take(20) {
            partial[i] = String::new();
        }
        partial[1] = "Lonely".into();
        let h5ad = dir.join("with_obsm.h5ad");
        write_h5ad_with_obsm(
            &data(),
            &h5ad,
            false,
            &[
                ("X_pca".to_string(), &pca[..], 30),
                ("X_rp16".to_string(), &rp16[..], 16),
            ],
            &[
                ("split".to_string(), ObsColumn::Text(split)),
                ("label_partial".to_string(), ObsColumn::Text(partial)),
            ],
            None,
        )
        .unwrap();
        let npy = dir.join("pca_file.npy");
        celltext::io::write_npy_f32(&npy, &pca, n, 30).unwrap();
        Fixture {
            h5ad,
            npy,
            n_cells: n,
        }
    })
}

fn celltext(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(args)
        .output()
        .unwrap();
    let (code, stdout, stderr) = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !stderr.contains("panicked"),
        "panic for {args:?}:\n{stderr}"
    );
    (code, stdout, stderr)
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = celltext(args);
    assert_eq!(code, 0, "celltext {args:?} failed:\n{err}");
    out
}

fn expect_error(args: &[&str], needles: &[&str]) -> String {
    let (code, _, err) = celltext(args);
    assert_ne!(code, 0, "expected failure for {args:?}");
    for n in needles {
        assert!(err.contains(n), "stderr for {args:?} lacks `{n}`:\n{err}");
    }
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn obs_text(path: &Path, name: &str) -> Vec<String> {
    let (_, obs) = read_h5ad_obs(path).unwrap();
    obs.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("obs column {name} missing"))
        .1
        .to_labels()
}

fn assert_files(dir: &Path, stems: &[&str]) {
    for f in ["report.json", "report.md"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for stem in stems {
        for ext in ["png", "svg"] {
            let p = dir.join(format!("{stem}.{ext}"));
            let len = std::fs::metadata(&p)
                .unwrap_or_else(|_| panic!("{} missing", p.display()))
                .len();
            assert!(len > 1000, "{} is only {len} bytes", p.display());
        }
    }
}

/// The Python-free invariant: report.json accuracy == fraction of obs `celltext_split == test`
/// cells whose `celltext_pred` equals their label.
fn check_accuracy_invariant(output: &Path, report: &Value, label: &str) {
    let pred = obs_text(output, "celltext_pred");
    let split = obs_text(output, "celltext_split");
    let truth = obs_text(output, label);
    let test: Vec<usize> = (0..split.len()).filter(|&i| split[i] == "test").collect();
    assert!(!test.is_empty());
    let hits = test.iter().filter(|&&i| pred[i] == truth[i]).count();
    let acc = report["summary"]["accuracy"].as_f64().unwrap();
    assert!(
        (acc - hits as f64 / test.len() as f64).abs() < 1e-12,
        "report {acc} vs obs {hits}/{}",
        test.len()
    );
}

/// `--on counts` defaults to scanpy's standard PCA baseline; the MLP runs on it and fuses it
/// with an embedding.
#[test]
fn counts_default_to_the_standard_pca_baseline_and_fuse() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "--label",
        "label",
        "--on",
        "counts",
        "--layer",
        "counts",
        "--report",
        s(&rep),
        "--quiet",
    ]);
    let r = read_report(&rep);
    let text = r.to_string();
    assert!(text.contains("PCA-50 (2000 HVG, layers/counts)"), "{text}");
    assert!(text.contains("scanpy's standard baseline"), "{text}");
    let acc = r["summary"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.6, "PCA-50 KNN accuracy {acc} (chance 0.25)");
    let rep2 = tmp.path().join("rep2");
    ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "--label",
        "label",
        "--on",
        "counts",
        "--layer",
        "counts",
        "-e",
        "X_rp16",
        "--method",
        "mlp",
        "--report",
        s(&rep2),
        "--quiet",
    ]);
    let text = read_report(&rep2).to_string();
    assert!(text.contains("X_rp16") && text.contains("PCA-50"), "{text}");
}

#[test]
fn knn_on_counts_sweep_table_output_and_invariant() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let out_h5ad = tmp.path().join("out.h5ad");
    let input = data();
    let before = celltext::io::sha256_file(&input).unwrap();
    let stdout = ok(&[
        "classify",
        "-i",
        s(&input),
        "--label",
        "label",
        "--on",
        "counts",
        "--baseline",
        "log1p-all",
        "--layer",
        "counts",
        "--k",
        "10,1,3,5,25,50,100,500",
        "--report",
        s(&rep),
        "--output",
        s(&out_h5ad),
        "--quiet",
    ]);
    assert_eq!(
        celltext::io::sha256_file(&input).unwrap(),
        before,
        "the input was modified"
    );
    // Table II layout: rows = k, columns accuracy / weighted F1 / macro F1 / kappa
    assert!(
        stdout.contains("| k | accuracy | weighted F1 | macro F1 | kappa |"),
        "{stdout}"
    );
    for k in [1, 3, 5, 10, 25, 50, 100] {
        assert!(
            stdout.contains(&format!("\n| {k} | 0.")),
            "no row for k = {k}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("\n| 500 |"));
    assert!(stdout.contains("Skipped k = 500"), "{stdout}");
    let r = read_report(&rep);
    assert_eq!(r["k_sweep"]["skipped"], serde_json::json!([500]));
    assert_eq!(r["k_sweep"]["predict_k"], 10);
    let rows = r["k_sweep"]["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["k"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 3, 5, 10, 25, 50, 100]
    );
    let acc10 = rows[3]["scores"]["accuracy"].as_f64().unwrap();
    assert!(
        acc10 > 0.6,
        "k = 10 accuracy {acc10} (sklearn 5-fold CV: 0.68; chance 0.25)"
    );
    assert_eq!(
        r["summary"]["accuracy"].as_f64().unwrap(),
        acc10,
        "predictions use the first listed k"
    );
    assert_eq!(r["summary"]["k"], 10);
    assert_eq!(r["manifest"]["input_sha256"].as_str().unwrap(), before);
    assert_eq!(r["n_labelled"], 315);
    assert_eq!(
        r["manifest"]["split"]["test"].as_array().unwrap().len()
            + r["manifest"]["split"]["train"].as_array().unwrap().len(),
        315
    );
    assert!(r["quality"][0]["metrics"]["kmeans_ari"].as_f64().is_some());
    assert_files(
        &rep,
        &["confusion", "embedding", "embedding_umap", "k_sweep"],
    );
    // output h5ad: obs columns, predictions for every cell, invariant
    let pred = obs_text(&out_h5ad, "celltext_pred");
    let conf = read_h5ad_obs(&out_h5ad)
        .unwrap()
        .1
        .into_iter()
        .find(|(n, _)| n == "celltext_conf")
        .unwrap()
        .1;
    let split = obs_text(&out_h5ad, "celltext_split");
    assert_eq!(pred.len(), f.n_cells);
    assert!(pred.iter().all(|p| !p.is_empty()));
    match conf {
        ObsColumn::Number(v) => assert!(v.iter().all(|&c| c > 0.0 && c <= 1.0)),
        _ => panic!("celltext_conf is not numeric"),
    }
    assert_eq!(split.iter().filter(|s| *s == "test").count(), 64);
    assert_eq!(split.iter().filter(|s| *s == "train").count(), 251);
    check_accuracy_invariant(&out_h5ad, &r, "label");
}

#[test]
fn knn_embedding_output_keeps_input_and_json_matches_report() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let out_h5ad = tmp.path().join("pred.h5ad");
    let before = celltext::io::sha256_file(&f.h5ad).unwrap();
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--vote",
        "distance",
        "--report",
        s(&rep),
        "-o",
        s(&out_h5ad),
        "--json",
        "--quiet",
    ]);
    assert_eq!(
        celltext::io::sha256_file(&f.h5ad).unwrap(),
        before,
        "the input was modified"
    );
    let printed: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(
        printed,
        read_report(&rep),
        "--json output differs from report.json"
    );
    let acc = printed["summary"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "accuracy {acc}");
    assert_eq!(printed["k_sweep"]["rows"].as_array().unwrap().len(), 1);
    assert_files(&rep, &["confusion", "embedding", "embedding_umap"]);
    let svg = std::fs::read_to_string(rep.join("embedding_umap.svg")).unwrap();
    assert!(
        svg.contains("UMAP (15 neighbours, cosine"),
        "UMAP subtitle missing"
    );
    assert!(
        !rep.join("k_sweep.png").exists(),
        "a single k is not a sweep"
    );
    let (_, obs) = read_h5ad_obs(&out_h5ad).unwrap();
    let names: Vec<&str> = obs.iter().map(|(n, _)| n.as_str()).collect();
    for c in ["label", "celltext_pred", "celltext_conf", "celltext_split"] {
        assert!(names.contains(&c), "{c} missing from {names:?}");
    }
    check_accuracy_invariant(&out_h5ad, &printed, "label");
    // the same embedding from a file gives the same scores
    let rep2 = tmp.path().join("rep2");
    ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "--embedding-file",
        s(&f.npy),
        "--label",
        "label",
        "--vote",
        "distance",
        "--report",
        s(&rep2),
        "--quiet",
    ]);
    let r2 = read_report(&rep2);
    assert_eq!(r2["results"][0]["scores"], printed["results"][0]["scores"]);
    assert_eq!(r2["manifest"]["features"][0]["kind"], "file");
}

#[test]
fn mlp_writes_report_files_and_history() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--method",
        "mlp",
        "--hidden",
        "64,32",
        "--epochs",
        "60",
        "--patience",
        "8",
        "--k",
        "5,1,10",
        "--class-weights",
        "--report",
        s(&rep),
        "--quiet",
    ]);
    assert!(stdout.contains("## KNN baseline k sweep"), "{stdout}");
    assert!(stdout.contains("## MLP training"), "{stdout}");
    assert_files(
        &rep,
        &["confusion", "embedding", "embedding_umap", "k_sweep"],
    );
    let r = read_report(&rep);
    assert_eq!(r["method"], "mlp");
    let acc = r["summary"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "MLP accuracy {acc}");
    let h = &r["results"][0]["training"][0];
    let epochs = h["train_loss"].as_array().unwrap().len();
    assert!((1..=60).contains(&epochs));
    assert!(!h["val_idx"].as_array().unwrap().is_empty());
    assert_eq!(
        r["manifest"]["parameters"]["mlp"]["hidden"],
        serde_json::json!([64, 32])
    );
    assert_eq!(r["manifest"]["parameters"]["mlp"]["class_weights"], true);
    for key in [
        "silhouette_cosine",
        "calinski_harabasz",
        "davies_bouldin",
        "kmeans_ari",
        "kmeans_nmi",
    ] {
        assert!(r["quality"][0]["metrics"][key].is_number(), "quality {key}");
    }
}

#[test]
fn fusion_reports_each_source_and_fused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "-e",
        "X_rp16",
        "--label",
        "label",
        "--method",
        "mlp",
        "--fusion",
        "gated",
        "--hidden",
        "32",
        "--epochs",
        "40",
        "--report",
        s(&rep),
        "--quiet",
    ]);
    for row in [
        "| X_pca | 0.",
        "| X_rp16 | 0.",
        "| **fused: X_pca + X_rp16 (gated)** | 0.",
    ] {
        assert!(stdout.contains(row), "no row `{row}`:\n{stdout}");
    }
    let r = read_report(&rep);
    let res = r["results"].as_array().unwrap();
    assert_eq!(res.len(), 3);
    assert_eq!(
        res.iter()
            .map(|a| a["primary"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        vec![false, false, true]
    );
    let gates = res[2]["training"][0]["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 2);
    assert_eq!(
        r["quality"].as_array().unwrap().len(),
        3,
        "quality of each source and of the concat"
    );
    assert_files(&rep, &["confusion", "embedding", "sources"]);
    // KNN with two embeddings: L2-normalized concat, said so
    let out = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "-e",
        "X_rp16",
        "--label",
        "label",
        "--quiet",
    ]);
    assert!(
        out.contains("| **fused: X_pca + X_rp16 (L2-normalized concat)** | 0."),
        "{out}"
    );
    assert!(out.contains("each source is L2-normalized"), "{out}");
}

#[test]
fn split_column_with_val() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let out_h5ad = tmp.path().join("o.h5ad");
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--split-column",
        "split",
        "--k",
        "5",
        "--report",
        s(&rep),
        "-o",
        s(&out_h5ad),
        "--quiet",
    ]);
    assert!(stdout.contains("from obs column `split`"), "{stdout}");
    assert!(stdout.contains("Validation cells"), "{stdout}");
    let r = read_report(&rep);
    let n = f.n_cells;
    let n_test = (0..n).filter(|i| i % 5 == 0).count();
    let n_val = (0..n).filter(|i| i % 5 != 0 && i % 7 == 0).count();
    assert_eq!(r["manifest"]["split"]["kind"], "column");
    assert_eq!(r["manifest"]["split"]["column"], "split");
    assert_eq!(
        r["manifest"]["split"]["n_test"],
        serde_json::json!([n_test])
    );
    assert_eq!(r["manifest"]["split"]["n_val"], n_val);
    assert_eq!(r["results"][0]["test"]["n_samples"], n_test);
    assert_eq!(r["results"][0]["val"]["n_samples"], n_val);
    assert_eq!(
        obs_text(&out_h5ad, "celltext_split"),
        obs_text(&f.h5ad, "split")
    );
    check_accuracy_invariant(&out_h5ad, &r, "label");
}

#[test]
fn kfold_reports_mean_and_sd() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let out_h5ad = tmp.path().join("o.h5ad");
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--folds",
        "3",
        "--k",
        "5,15",
        "--report",
        s(&rep),
        "-o",
        s(&out_h5ad),
        "--quiet",
    ]);
    assert!(stdout.contains("3-fold cross-validation"), "{stdout}");
    assert!(stdout.contains(" ± "), "{stdout}");
    let r = read_report(&rep);
    let a = &r["results"][0];
    assert_eq!(a["fold_scores"].as_array().unwrap().len(), 3);
    let accs: Vec<f64> = a["fold_scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["accuracy"].as_f64().unwrap())
        .collect();
    let mean = accs.iter().sum::<f64>() / 3.0;
    let sd = (accs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((a["scores"]["accuracy"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!((a["sd"]["accuracy"].as_f64().unwrap() - sd).abs() < 1e-12);
    // every labelled cell is tested exactly once: pooled report covers all 315
    assert_eq!(a["test"]["n_samples"], 315);
    let folds = r["manifest"]["split"]["fold_test"].as_array().unwrap();
    assert_eq!(
        folds
            .iter()
            .map(|f| f.as_array().unwrap().len())
            .sum::<usize>(),
        315
    );
    assert_eq!(
        r["k_sweep"]["rows"][0]["fold_scores"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let split = obs_text(&out_h5ad, "celltext_split");
    for (fi, fold) in folds.iter().enumerate() {
        for i in fold.as_array().unwrap() {
            assert_eq!(
                split[i.as_u64().unwrap() as usize],
                format!("fold{}", fi + 1)
            );
        }
    }
    assert_files(
        &rep,
        &["confusion", "embedding", "embedding_umap", "k_sweep"],
    );
}

#[test]
fn empty_labels_and_singleton_classes() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let out_h5ad = tmp.path().join("o.h5ad");
    let stdout = ok(&[
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label_partial",
        "--report",
        s(&rep),
        "-o",
        s(&out_h5ad),
        "--quiet",
    ]);
    let r = read_report(&rep);
    assert_eq!(r["n_unlabelled"], 20);
    assert_eq!(r["n_labelled"], f.n_cells - 20);
    assert_eq!(r["small_classes"], serde_json::json!(["Lonely"]));
    assert!(stdout.contains("20 cells have an empty label"), "{stdout}");
    assert!(stdout.contains("'Lonely' (1 cell)"), "{stdout}");
    let split = obs_text(&out_h5ad, "celltext_split");
    let labels = obs_text(&out_h5ad, "label_partial");
    assert_eq!(split.iter().filter(|s| *s == "unlabeled").count(), 20);
    for (s, l) in split.iter().zip(&labels) {
        assert_eq!(s == "unlabeled", l.is_empty());
    }
    assert_eq!(split[1], "train", "a singleton class stays in training");
    assert!(
        obs_text(&out_h5ad, "celltext_pred")
            .iter()
            .all(|p| !p.is_empty()),
        "unlabelled cells get predictions too"
    );
    check_accuracy_invariant(&out_h5ad, &r, "label_partial");
}

#[test]
fn same_seed_same_report() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let rep = tmp.path().join(name);
        ok(&[
            "classify",
            "-i",
            s(&f.h5ad),
            "-e",
            "X_pca",
            "--label",
            "label",
            "--method",
            "mlp",
            "--hidden",
            "32",
            "--epochs",
            "30",
            "--k",
            "3,7",
            "--seed",
            seed,
            "--report",
            s(&rep),
            "--quiet",
        ]);
        read_report(&rep)
    };
    let (a, b, c) = (run("a", "5"), run("b", "5"), run("c", "6"));
    for key in ["summary", "results", "k_sweep", "quality"] {
        assert_eq!(
            a[key], b[key],
            "{key} differs between two runs with the same seed"
        );
    }
    assert_eq!(a["manifest"]["split"], b["manifest"]["split"]);
    assert_ne!(
        a["manifest"]["split"]["test"], c["manifest"]["split"]["test"],
        "another seed, another split"
    );
}

#[test]
fn errors_name_the_problem_without_panicking() {
    let f = fixture();
    let h = s(&f.h5ad);
    let err = expect_error(
        &["classify", "-i", h, "-e", "X_pca", "--label", "cell_type"],
        &[
            "obs column 'cell_type' not found",
            "available columns:",
            "label",
            "seurat_cluster",
        ],
    );
    assert!(err.contains("split"), "{err}");
    expect_error(
        &["classify", "-i", h, "-e", "X_umap", "--label", "label"],
        &[
            "obsm/X_umap not found",
            "available obsm keys: X_pca, X_rp16",
        ],
    );
    expect_error(
        &[
            "classify",
            "-i",
            s(&data()),
            "-e",
            "X_pca",
            "--label",
            "label",
        ],
        &["obsm/X_pca not found", "no obsm entries"],
    );
    expect_error(
        &[
            "classify", "-i", h, "-e", "X_pca", "--label", "label", "--k", "5,abc",
        ],
        &["--k", "'abc' is not a positive integer"],
    );
    expect_error(
        &[
            "classify", "-i", h, "-e", "X_pca", "--label", "label", "--k", "0",
        ],
        &["--k", "0 is not allowed"],
    );
    expect_error(
        &[
            "classify", "-i", h, "-e", "X_pca", "--label", "label", "--k", "5000",
        ],
        &["larger than the training set"],
    );
    expect_error(
        &[
            "classify", "-i", h, "-e", "X_pca", "--label", "label", "--vote", "weighted",
        ],
        &["majority or distance"],
    );
    expect_error(
        &["classify", "-i", h, "--label", "label"],
        &["--embedding KEY"],
    );
    expect_error(
        &[
            "classify",
            "-i",
            h,
            "-e",
            "X_pca",
            "--label",
            "label",
            "--split-column",
            "label",
        ],
        &["--split-column label", "train, test or val"],
    );
    expect_error(
        &[
            "classify", "-i", h, "-e", "X_pca", "--label", "label", "-o", h,
        ],
        &["refusing to modify the input"],
    );
    expect_error(
        &[
            "classify",
            "-i",
            h,
            "--on",
            "counts",
            "--baseline",
            "log1p-all",
            "--method",
            "mlp",
            "--label",
            "label",
        ],
        &["--baseline log1p-all is for --method knn alone"],
    );
    let bad_npy = f.h5ad.parent().unwrap().join("short.npy");
    celltext::io::write_npy_f32(&bad_npy, &[0.0; 20], 10, 2).unwrap();
    expect_error(
        &[
            "classify",
            "-i",
            h,
            "--embedding-file",
            s(&bad_npy),
            "--label",
            "label",
        ],
        &["has 10 rows but the input has 315 cells"],
    );
}

#[test]
fn in_place_writes_into_the_input_copy() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy.h5ad");
    std::fs::copy(&f.h5ad, &copy).unwrap();
    ok(&[
        "classify",
        "-i",
        s(&copy),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--in-place",
        "--quiet",
    ]);
    let split = obs_text(&copy, "celltext_split");
    assert_eq!(split.len(), f.n_cells);
    assert_eq!(
        obs_text(&copy, "label"),
        obs_text(&f.h5ad, "label"),
        "existing obs columns are kept"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temp file left behind"
    );
}

#[test]
fn batch_key_draws_the_umap_again_coloured_by_batch() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let base = [
        "classify",
        "-i",
        s(&f.h5ad),
        "-e",
        "X_pca",
        "--label",
        "label",
        "--quiet",
    ];
    let mut args = base.to_vec();
    args.extend(["--batch-key", "seurat_cluster", "--report", s(&rep)]);
    ok(&args);
    assert_files(&rep, &["embedding_umap", "embedding_umap_batch"]);
    let files = read_report(&rep)["files"].to_string();
    assert!(files.contains("embedding_umap_batch.svg"), "{files}");
    let svg = std::fs::read_to_string(rep.join("embedding_umap_batch.svg")).unwrap();
    assert!(
        svg.contains("colored by seurat_cluster"),
        "batch title missing"
    );
    // the same map as the label-coloured one: identical subtitle (method, seed, subset)
    let by_label = std::fs::read_to_string(rep.join("embedding_umap.svg")).unwrap();
    assert!(
        svg.contains("UMAP (15 neighbours, cosine")
            && by_label.contains("UMAP (15 neighbours, cosine")
    );
    // without --batch-key: no batch map
    let rep2 = tmp.path().join("rep2");
    let mut args = base.to_vec();
    args.extend(["--report", s(&rep2)]);
    ok(&args);
    assert!(rep2.join("embedding_umap.svg").exists());
    assert!(!rep2.join("embedding_umap_batch.svg").exists());
    // a batch column that does not exist: an error naming it and the columns that exist, before
    // any report is written
    let rep3 = tmp.path().join("rep3");
    let mut args = base.to_vec();
    args.extend(["--batch-key", "no_such_column", "--report", s(&rep3)]);
    expect_error(
        &args,
        &[
            "--batch-key no_such_column",
            "obs column 'no_such_column' not found",
            "available columns",
            "label",
        ],
    );
    assert!(!rep3.exists());
}
