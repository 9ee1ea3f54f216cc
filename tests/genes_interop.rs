//! Gene-store interop: `genes import` of GenePT pickles and sciLaMA-style parquet, and
//! `genes export --format parquet`, against fixtures and values written by Python
//! (`tests/fixtures/gene_interop/make_gene_interop_fixtures.py`: pickle, numpy, pandas/pyarrow).

mod common;
use common::*;

use celltext::genes::pipeline::{run_genes_import, GenesImportArgs};
use celltext::genes::GeneEmbeddings;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    fixtures().join("gene_interop")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn celltext(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Rows of a fixture family as f32 (JSON numbers are the exact float32 values).
fn family(e: &Value, name: &str) -> Vec<Vec<f32>> {
    let genes = e["genes"].as_array().unwrap();
    genes
        .iter()
        .map(|g| {
            e[name][g.as_str().unwrap()]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn genes(e: &Value) -> Vec<String> {
    e["genes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

fn import(file: &str, out: &Path) -> celltext::genes::pipeline::GenesImportManifest {
    run_genes_import(&GenesImportArgs {
        input: dir().join(file),
        out: out.to_path_buf(),
        format: None,
        source_name: Some("fixture".into()),
    })
    .unwrap_or_else(|e| panic!("{file}: {e:#}"))
}

fn assert_store(store: &GeneEmbeddings, e: &Value, fam: &str, what: &str) {
    assert_eq!(store.symbols, genes(e), "{what}: gene order");
    assert_eq!(store.dim, 8, "{what}");
    for (i, want) in family(e, fam).iter().enumerate() {
        // exact: f32 values copied, f64 values rounded to nearest like numpy's astype(float32)
        let got = store.row(i);
        assert!(
            got.iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: row {i} {got:?} != {want:?}"
        );
    }
}

#[test]
fn pickles_import_exactly() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    for (file, fam, layout) in [
        (
            "lists_p4.pkl",
            "f64_family_as_f32",
            "dict of list of Python floats",
        ),
        (
            "f64_p4.pkl",
            "f64_family_as_f32",
            "dict of numpy float64 array",
        ),
        ("f32_p5.pkl", "f32_family", "dict of numpy float32 array"),
        ("f32_p2.pkl", "f32_family", "dict of numpy float32 array"),
        (
            "f32_p2_numpy1.pkl",
            "f32_family",
            "dict of numpy float32 array",
        ),
    ] {
        let out = tmp.path().join(file.replace('.', "_"));
        let m = import(file, &out);
        assert_eq!(
            (m.n_genes, m.dim, m.dtype.as_str(), m.source.layout.as_str()),
            (20, 8, "f32", layout),
            "{file}"
        );
        assert_eq!(
            m.source.sha256,
            e["sha256"][file].as_str().unwrap(),
            "{file}: sha256 vs Python hashlib"
        );
        assert_store(&GeneEmbeddings::load(&out).unwrap(), &e, fam, file);
        let man = GeneEmbeddings::manifest(&out).unwrap().unwrap();
        assert_eq!(man["command"], "genes import");
        assert_eq!(man["model"]["id"], "imported");
        assert_eq!(man["model"]["encoder"], "unknown");
        assert_eq!(man["source"]["format"], "pickle");
        assert_eq!(man["source"]["name"], "fixture");
        assert!(man["source"]["path"].as_str().unwrap().ends_with(file));
    }
}

#[test]
fn parquet_imports_exactly() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    for (file, fam, layout) in [
        (
            "f32.parquet",
            "f32_family",
            "parquet `gene_id` + `embedding` list<float>",
        ),
        (
            "f64.parquet",
            "f64_family_as_f32",
            "parquet `symbol` + `embedding` list<double>",
        ),
        (
            "wide.parquet",
            "f64_family_as_f32",
            "parquet wide: `gene` + 8 double columns",
        ),
    ] {
        let out = tmp.path().join(file.replace('.', "_"));
        let m = import(file, &out);
        assert_eq!(m.source.layout, layout, "{file}");
        assert_eq!(
            m.source.sha256,
            e["sha256"][file].as_str().unwrap(),
            "{file}"
        );
        assert_store(&GeneEmbeddings::load(&out).unwrap(), &e, fam, file);
    }
}

/// A Python with pandas + pyarrow (`CELLTEXT_PYTHON`, else `python3`), if there is one.
fn python_with_pandas() -> Option<String> {
    let configured = std::env::var("CELLTEXT_PYTHON").ok();
    for py in configured.as_deref().into_iter().chain(["python3"]) {
        let ok = Command::new(py)
            .args(["-c", "import pandas, pyarrow"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Some(py.to_string());
        }
    }
    None
}

/// `genes import` of the f32 fixture pickle into DIR/s, through the binary.
fn imported_f32_store(dir_: &Path) -> PathBuf {
    let store = dir_.join("s");
    let (ok, _, err) = celltext(&[
        "--quiet",
        "genes",
        "import",
        dir().join("f32_p5.pkl").to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    store
}

#[test]
fn export_parquet_round_trip() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let store = imported_f32_store(tmp.path());
    let pq = tmp.path().join("out.parquet");
    let (ok, out, err) = celltext(&[
        "--json",
        "genes",
        "export",
        "--store",
        store.to_str().unwrap(),
        "--format",
        "parquet",
        "--out",
        pq.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            r["n_genes"].as_u64(),
            r["dim"].as_u64(),
            r["format"].as_str()
        ),
        (Some(20), Some(8), Some("parquet"))
    );

    // pandas reads what we wrote: gene_id strings and float32 lists, exact, plus the manifest
    match python_with_pandas() {
        Some(py) => {
            let script = r#"
import json, sys
import pandas as pd, pyarrow.parquet as pq
df = pd.read_parquet(sys.argv[1])
meta = pq.read_metadata(sys.argv[1]).metadata
print(json.dumps({"columns": list(df.columns), "genes": df["gene_id"].tolist(),
                  "dtype": str(df["embedding"].iloc[0].dtype),
                  "rows": [[float(x) for x in v] for v in df["embedding"]],
                  "arrow_type": str(pq.read_schema(sys.argv[1]).field("embedding").type),
                  "manifest_command": json.loads(meta[b"celltext.manifest"])["command"]}))
"#;
            let o = Command::new(&py).args(["-c", script, pq.to_str().unwrap()]).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let got: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(got["columns"], serde_json::json!(["gene_id", "embedding"]));
            assert_eq!(got["genes"], e["genes"]);
            assert_eq!(got["dtype"], "float32");
            assert!(got["arrow_type"].as_str().unwrap().starts_with("list<element: float"), "{}", got["arrow_type"]);
            assert_eq!(got["manifest_command"], "genes import");
            let want = family(&e, "f32_family");
            for (i, row) in got["rows"].as_array().unwrap().iter().enumerate() {
                let row: Vec<f32> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                assert_eq!(row, want[i], "pandas row {i}");
            }
        }
        None => eprintln!("SKIPPED (pandas part): no python with pandas + pyarrow; the Rust round trip still runs"),
    }

    // and importing the export gives back the same store, bit for bit
    let again = tmp.path().join("again");
    let m = import_path(&pq, &again);
    assert_eq!(
        m.source.layout,
        "parquet `gene_id` + `embedding` list<float>"
    );
    let (a, b) = (
        GeneEmbeddings::load(&store).unwrap(),
        GeneEmbeddings::load(&again).unwrap(),
    );
    assert_eq!(a.symbols, b.symbols);
    assert!(
        a.data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits())
            && a.data.len() == b.data.len()
    );
    assert_eq!(
        std::fs::read(tmp.path().join("s.safetensors")).unwrap(),
        std::fs::read(tmp.path().join("again.safetensors")).unwrap(),
        "identical store files"
    );
}

fn import_path(p: &Path, out: &Path) -> celltext::genes::pipeline::GenesImportManifest {
    run_genes_import(&GenesImportArgs {
        input: p.to_path_buf(),
        out: out.to_path_buf(),
        format: None,
        source_name: None,
    })
    .unwrap()
}

#[test]
fn bad_inputs_fail_with_the_file_gene_and_fix() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let marker = common::payload_target(&std::fs::read(dir().join("bad_evil.pkl")).unwrap());
    assert!(
        marker.ends_with("celltext_gene_import_pwned"),
        "payload target {}",
        marker.display()
    );
    let _ = std::fs::remove_file(&marker);
    let ragged = e["ragged_gene"].as_str().unwrap();
    let nan = e["nan_gene"].as_str().unwrap();
    let dup = e["dup_gene"].as_str().unwrap();
    let first = e["genes"][0].as_str().unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "bad_ragged.pkl",
            vec![format!(
                "gene `{ragged}` has 7 values but `{first}` (the first gene) has 8"
            )],
        ),
        (
            "bad_nan.pkl",
            vec![format!(
                "gene `{nan}` has a non-finite value (NaN) at position 3"
            )],
        ),
        (
            "bad_evil.pkl",
            vec![
                "refusing to unpickle global 'posix.system'".into(),
                "may be malicious".into(),
            ],
        ),
        (
            "bad_bigendian.pkl",
            vec!["big-endian".into(), "astype('<f4')".into()],
        ),
        (
            "bad_dup.parquet",
            vec![format!("gene `{dup}` appears more than once")],
        ),
        (
            "bad_no_gene.parquet",
            vec![
                "no gene column".into(),
                "`gene_id`".into(),
                "columns found: `name`, `embedding`".into(),
            ],
        ),
        (
            "bad_no_embedding.parquet",
            vec![
                "`vec`".into(),
                "columns found: `gene_id`, `vec`".into(),
                "`embedding`".into(),
            ],
        ),
        (
            "bad_zstd.parquet",
            vec!["compressed with ZSTD".into(), "compression='snappy'".into()],
        ),
    ];
    for (file, needles) in cases {
        let (ok, _, err) = celltext(&[
            "genes",
            "import",
            dir().join(file).to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok, "{file} must fail");
        assert!(!err.contains("panicked"), "{file}: {err}");
        assert!(
            err.contains(file),
            "{file}: error must name the file: {err}"
        );
        for n in needles {
            assert!(err.contains(&n), "{file}: stderr lacks `{n}`:\n{err}");
        }
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{file}: nothing written on failure"
        );
    }
    assert!(!marker.exists(), "the evil pickle ran code");

    // unknown extension, --format override, missing file, truncated pickle
    let odd = tmp.path().join("vectors.bin");
    std::fs::copy(dir().join("f32_p5.pkl"), &odd).unwrap();
    let (ok, _, err) = celltext(&[
        "genes",
        "import",
        odd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("vectors.bin") && err.contains("--format pickle|parquet"),
        "{err}"
    );
    let (ok, _, err) = celltext(&[
        "genes",
        "import",
        odd.to_str().unwrap(),
        "--format",
        "pickle",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = celltext(&[
        "genes",
        "import",
        odd.to_str().unwrap(),
        "--format",
        "parquet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("vectors.bin") && err.contains("parquet"),
        "{err}"
    );
    let cut = tmp.path().join("cut.pkl");
    let bytes = std::fs::read(dir().join("lists_p4.pkl")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = celltext(&[
        "genes",
        "import",
        cut.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("cut.pkl") && err.contains("truncated") && !err.contains("panicked"),
        "{err}"
    );
    let (ok, _, err) = celltext(&[
        "genes",
        "import",
        "/nonexistent/x.pkl",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("/nonexistent/x.pkl"), "{err}");
}

/// An imported store works downstream: `cells embed` (GenePT-w, all store genes) on real pbmc3k
/// counts equals NumPy's weighted average computed from the same vectors.
#[test]
fn imported_store_embeds_cells() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("genept");
    let (ok, out, err) = celltext(&[
        "--json",
        "genes",
        "import",
        dir().join("f32_p5.pkl").to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
        "--source-name",
        "GenePT fixture",
    ]);
    assert!(ok, "{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (m["n_genes"].as_u64(), m["source"]["name"].as_str()),
        (Some(20), Some("GenePT fixture"))
    );
    let (ok, out, err) = celltext(&[
        "genes",
        "import",
        dir().join("f32_p5.pkl").to_str().unwrap(),
        "--out",
        store.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("genept.safetensors")
            && out.contains("genes      20 × 8")
            && out.contains("numpy float32 array"),
        "{out}"
    );

    let npy = tmp.path().join("cells.npy");
    let tenx = root().join("tests/data/pbmc3k_sub/tenx");
    let (ok, out, err) = celltext(&[
        "--json",
        "--quiet",
        "cells",
        "embed",
        "-i",
        tenx.to_str().unwrap(),
        "--genes",
        store.to_str().unwrap(),
        "--top-n",
        "all",
        "--weights",
        "expr",
        "-o",
        npy.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["store_manifest"]["command"], "genes import");
    let cov = &r["gene_coverage"];
    assert_eq!(
        cov["n_genes"].as_u64().unwrap() - cov["n_unmatched"].as_u64().unwrap(),
        20,
        "the 20 store genes map: {cov}"
    );
    let (got, n, d) = npy_read(&npy);
    let want = &e["cells_f32_store"];
    assert_eq!((n as u64, d), (want["n_cells"].as_u64().unwrap(), 8));
    let mut worst = 0f64;
    for (i, row) in want["values"].as_array().unwrap().iter().enumerate() {
        for (j, v) in row.as_array().unwrap().iter().enumerate() {
            let (a, b) = (got[i * d + j] as f64, v.as_f64().unwrap());
            worst = worst.max((a - b).abs() / b.abs().max(1e-3));
        }
    }
    assert!(worst <= 1e-5, "max relative error vs NumPy {worst}");
}

fn npy_read(p: &Path) -> (Vec<f32>, usize, usize) {
    npy(p)
}

/// Corrupted fixtures (every byte, two ways) give errors or vectors, never a panic or a hang.
#[test]
fn byte_flips_never_panic() {
    use celltext::genes::import::{load_pickle_vectors, to_store};
    use celltext::genes::parquet::load_parquet_vectors;
    let tmp = tempfile::tempdir().unwrap();
    for file in ["lists_p4.pkl", "f32_p5.pkl", "f32_p2.pkl", "f32.parquet"] {
        let orig = std::fs::read(dir().join(file)).unwrap();
        let p = tmp.path().join(file);
        let mut n_err = 0;
        for i in 0..orig.len() {
            for v in [0xff, orig[i] ^ 0x01] {
                let mut b = orig.clone();
                b[i] = v;
                std::fs::write(&p, &b).unwrap();
                let r = if file.ends_with(".pkl") {
                    load_pickle_vectors(&p)
                } else {
                    load_parquet_vectors(&p)
                };
                if r.and_then(|v| to_store(v, &p)).is_err() {
                    n_err += 1;
                }
            }
        }
        assert!(n_err > 0, "{file}: corruption never detected");
    }
}

/// The rows of an exported TSV store: (name, values).
fn read_tsv_store(path: &Path) -> Vec<(String, Vec<f32>)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            let g = f.next().unwrap().to_string();
            (g, f.map(|v| v.parse::<f32>().unwrap()).collect())
        })
        .collect()
}

/// `genes export --genes LIST`: only the store rows the names map onto (exact, case-insensitive,
/// alias and Ensembl routes), each once, in store order, values exact; a subset .npy is refused
/// (it would hold no gene names); a parquet subset imports back to the same rows.
#[test]
fn export_subset_keeps_the_rows_the_genes_map_onto() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let store = imported_f32_store(tmp.path());
    // EDF1 by its alias MBF1, CCNI by Ensembl ID (versioned), VIM twice, lyz in lower case, and
    // one name no table knows
    let list = tmp.path().join("genes.txt");
    std::fs::write(
        &list,
        "VIM\nMBF1\nENSG00000118816.14\nlyz\nVIM\nNOT_A_GENE_X\nRPL11\n",
    )
    .unwrap();
    let export_with = |format: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "genes",
            "export",
            "--store",
            store.to_str().unwrap(),
            "--genes",
            list.to_str().unwrap(),
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        celltext(&args)
    };
    let export = |format: &str, out: &Path| export_with(format, out, &[]);
    let tsv = tmp.path().join("sub.tsv");
    let (ok, out, err) = export("tsv", &tsv);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["n_genes"].as_u64(), Some(5), "{out}");
    assert_eq!(r["subset"]["n_genes"].as_u64(), Some(7), "{out}");
    assert_eq!(
        r["subset"]["unmatched"],
        serde_json::json!(["NOT_A_GENE_X"])
    );
    let all = genes(&e);
    let rows = family(&e, "f32_family");
    let want: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|g| ["RPL11", "VIM", "LYZ", "CCNI", "EDF1"].contains(g))
        .collect();
    let got = read_tsv_store(&tsv);
    assert_eq!(
        got.iter().map(|(g, _)| g.as_str()).collect::<Vec<_>>(),
        want,
        "store order, each gene once"
    );
    for (g, v) in &got {
        let i = all.iter().position(|a| a == g).unwrap();
        assert_eq!(v, &rows[i], "{g}: exact values");
    }

    let npy = tmp.path().join("sub.npy");
    let (ok, _, err) = export("npy", &npy);
    assert!(!ok && err.contains("tsv or parquet"), "{err}");
    assert!(!npy.exists());

    // the gene list is an input: never written over
    let before = std::fs::read(&list).unwrap();
    let (ok, _, err) = export("tsv", &list);
    assert!(!ok && err.contains("never writes over its inputs"), "{err}");
    assert_eq!(std::fs::read(&list).unwrap(), before);

    std::fs::write(&list, "NOT_A_GENE_X\nNOR_THIS_ONE\n").unwrap();
    let none = tmp.path().join("none.tsv");
    let (ok, _, err) = export("tsv", &none);
    assert!(
        !ok && err.contains("none of the 2 genes") && err.contains("--species"),
        "{err}"
    );
    assert!(!none.exists());
    std::fs::write(
        &list,
        "VIM\nMBF1\nENSG00000118816.14\nlyz\nVIM\nNOT_A_GENE_X\nRPL11\n",
    )
    .unwrap();

    if cfg!(feature = "parquet") {
        let pq = tmp.path().join("sub.parquet");
        let (ok, _, err) = export("parquet", &pq);
        assert!(ok, "{err}");
        let back = tmp.path().join("back");
        let (ok, _, err) = celltext(&[
            "--quiet",
            "genes",
            "import",
            pq.to_str().unwrap(),
            "--out",
            back.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let g = GeneEmbeddings::load(&back).unwrap();
        assert_eq!(g.symbols, want);
        for (k, s) in g.symbols.iter().enumerate() {
            let i = all.iter().position(|a| a == s).unwrap();
            assert_eq!(g.row(k), rows[i].as_slice(), "{s}");
        }
    }

    // --row-names input: the same rows and values, each named as the list names it (the alias
    // MBF1, the versioned Ensembl ID, lower-case lyz); the store's own symbols otherwise
    let named = tmp.path().join("named.tsv");
    let (ok, _, err) = export_with("tsv", &named, &["--row-names", "input"]);
    assert!(ok, "{err}");
    fn as_input(g: &str) -> &str {
        match g {
            "EDF1" => "MBF1",
            "CCNI" => "ENSG00000118816.14",
            "LYZ" => "lyz",
            other => other,
        }
    }
    let got_named = read_tsv_store(&named);
    assert_eq!(
        got_named
            .iter()
            .map(|(g, _)| g.as_str())
            .collect::<Vec<_>>(),
        want.iter().map(|g| as_input(g)).collect::<Vec<_>>()
    );
    for ((_, a), (_, b)) in got_named.iter().zip(&got) {
        assert_eq!(a, b);
    }
    // without a list there is nothing to name rows by
    let (ok, _, err) = celltext(&[
        "genes",
        "export",
        "--store",
        store.to_str().unwrap(),
        "--row-names",
        "input",
        "--out",
        tmp.path().join("x.tsv").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--row-names input"), "{err}");
    // an unknown spelling is named with the accepted ones
    let (ok, _, err) = export_with("tsv", &named, &["--row-names", "symbol"]);
    assert!(
        !ok && err.contains("unknown --row-names 'symbol'; use store or input"),
        "{err}"
    );
}
