//! `--shard I/N` + `celltext merge` through the binary: the merged outputs of `genes embed`,
//! `cells embed`, `cells embed-sentences` and `embed` equal one unsharded run (vectors bit for
//! bit, manifests less the timing fields), and missing, doubled or mismatched shards are refused
//! by file name. Small seeded Ember-like fixture model, 315 pbmc3k cells, no Python needed.

mod common;
use common::*;

use celltext::cells::h5ad::{read_h5ad_obs, read_obsm, read_uns_string};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(args: &[&str]) {
    let (code, err) = run(args);
    assert_eq!(code, 0, "celltext {args:?}\n{err}");
}

fn refused(args: &[&str], needles: &[&str]) {
    let (code, err) = run(args);
    assert_eq!(code, 1, "celltext {args:?}: exit {code}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(
            err.contains(n),
            "celltext {args:?}: stderr lacks {n:?}:\n{err}"
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn model() -> PathBuf {
    fixtures().join("models").join("ember-like")
}

fn h5ad() -> PathBuf {
    root().join("tests/data/pbmc3k_small/data.h5ad")
}

fn summaries() -> PathBuf {
    root().join("tests/data/shard/pbmc3k_top10_summaries.tsv")
}

/// A manifest less the timing fields `merge` documents as run fields.
fn without_timing(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    for k in celltext::merge::RUN_FIELDS {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

fn same_manifest(a: &Path, b: &Path) {
    let ra = std::fs::read_to_string(a).unwrap();
    let rb = std::fs::read_to_string(b).unwrap();
    assert_eq!(without_timing(&ra), without_timing(&rb), "{a:?} vs {b:?}");
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run `args` with `--shard i/n -o DIR/stem.i.npy` for every shard; return the shard paths.
fn shards(dir: &Path, stem: &str, n: usize, args: &[&str], out_flag: &str) -> Vec<PathBuf> {
    (1..=n)
        .map(|i| {
            let p = dir.join(format!("{stem}.{i}-of-{n}.npy"));
            let shard = format!("{i}/{n}");
            let mut a = args.to_vec();
            a.extend(["--shard", &shard, out_flag, s(&p)]);
            ok(&a);
            p
        })
        .collect()
}

fn merge(shards: &[PathBuf], out: &Path) {
    let mut a = vec!["merge"];
    a.extend(shards.iter().map(|p| s(p)));
    a.extend(["-o", s(out)]);
    ok(&a);
}

#[test]
fn sharded_runs_merge_to_the_unsharded_outputs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (m, sum, input) = (model(), summaries(), h5ad());

    // genes embed: 3 shards → the same store
    let genes = ["genes", "embed", "-m", s(&m), "--summaries", s(&sum)];
    let one = d.join("one");
    let mut a = genes.to_vec();
    a.extend(["--out", s(&one)]);
    ok(&a);
    let parts = shards(d, "genes", 3, &genes, "--out");
    // the same store name in another folder (the manifest records the file names)
    let merged = d.join("m").join("one");
    // any order: merge sorts the shards by row range
    merge(
        &[parts[2].clone(), parts[0].clone(), parts[1].clone()],
        &merged,
    );
    for ext in ["safetensors", "genes.tsv"] {
        assert_eq!(
            bytes(&d.join(format!("one.{ext}"))),
            bytes(&d.join(format!("m/one.{ext}"))),
            "store .{ext}"
        );
    }
    same_manifest(&d.join("one.manifest.json"), &d.join("m/one.manifest.json"));

    // cells embed (GenePT-w): 3 shards → the same h5ad and npy
    let cells = [
        "cells",
        "embed",
        "-i",
        s(&input),
        "--layer",
        "counts",
        "--genes",
        s(&one),
    ];
    for out in ["one.h5ad", "one.npy"] {
        let o = d.join(out);
        let mut a = cells.to_vec();
        a.extend(["-o", s(&o)]);
        ok(&a);
    }
    let parts = shards(d, "gw", 3, &cells, "-o");
    merge(&parts, &d.join("gw.h5ad"));
    merge(&parts, &d.join("gw.npy"));
    assert_eq!(bytes(&d.join("one.npy")), bytes(&d.join("gw.npy")));
    same_manifest(
        &d.join("one.npy.manifest.json"),
        &d.join("gw.npy.manifest.json"),
    );
    same_h5ad(&d.join("one.h5ad"), &d.join("gw.h5ad"), "genept_w");

    // cells embed-sentences: 4 shards (ties shuffled per cell with its dataset-wide stream)
    let sent = [
        "cells",
        "embed-sentences",
        "-i",
        s(&input),
        "--layer",
        "counts",
        "-m",
        s(&m),
        "--max-genes",
        "24",
        "--ablation",
        "shuffle-top10",
        "--seed",
        "3",
    ];
    let o = d.join("sent.h5ad");
    let mut a = sent.to_vec();
    a.extend(["-o", s(&o)]);
    ok(&a);
    let parts = shards(d, "sent", 4, &sent, "-o");
    merge(&parts, &d.join("sent-merged.h5ad"));
    same_h5ad(
        &d.join("sent.h5ad"),
        &d.join("sent-merged.h5ad"),
        "sentences",
    );

    // embed: 2 shards of a text file → the same .npy
    let texts = fixtures().join("texts.jsonl");
    let emb = ["embed", "-m", s(&m), "-i", s(&texts)];
    let o = d.join("texts.npy");
    let mut a = emb.to_vec();
    a.extend(["-o", s(&o)]);
    ok(&a);
    let parts = shards(d, "texts", 2, &emb, "-o");
    merge(&parts, &d.join("texts-merged.npy"));
    assert_eq!(
        bytes(&d.join("texts.npy")),
        bytes(&d.join("texts-merged.npy"))
    );
    same_manifest(
        &d.join("texts.npy.manifest.json"),
        &d.join("texts-merged.npy.manifest.json"),
    );
}

/// obsm, obs and the manifest (uns and sidecar, less timing) of two h5ad outputs are equal.
fn same_h5ad(a: &Path, b: &Path, name: &str) {
    let key = format!("X_celltext_{name}");
    let (va, da) = read_obsm(a, &key).unwrap();
    let (vb, db) = read_obsm(b, &key).unwrap();
    assert_eq!(da, db);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(bits(&va) == bits(&vb), "obsm['{key}'] differs");
    let ua = read_uns_string(a, &format!("celltext_{name}")).unwrap();
    let ub = read_uns_string(b, &format!("celltext_{name}")).unwrap();
    assert_eq!(without_timing(&ua), without_timing(&ub));
    let (ia, oa) = read_h5ad_obs(a).unwrap();
    let (ib, ob) = read_h5ad_obs(b).unwrap();
    assert_eq!(ia, ib);
    assert_eq!(format!("{oa:?}"), format!("{ob:?}"), "obs columns");
    let side = |p: &Path| PathBuf::from(format!("{}.manifest.json", p.display()));
    same_manifest(&side(a), &side(b));
}

#[test]
fn all_cell_statistics_are_refused_with_shard_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("x.npy");
    let input = h5ad();
    for extra in [&["--hvg", "10"][..], &["--idf"], &["--weights", "zscore"]] {
        let mut a = vec![
            "cells",
            "embed",
            "-i",
            s(&input),
            "--genes",
            "no-such-store",
            "--shard",
            "1/2",
            "-o",
            s(&out),
        ];
        a.extend_from_slice(extra);
        refused(&a, &["--shard 1/2", "unsharded"]);
        assert!(!out.exists());
    }
}

#[test]
fn missing_doubled_and_mismatched_shards_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (store, input) = (d.join("store"), h5ad());
    let pickle = fixtures().join("gene_interop/lists_p4.pkl");
    ok(&["genes", "import", s(&pickle), "--out", s(&store)]);
    let cells = [
        "cells",
        "embed",
        "-i",
        s(&input),
        "--layer",
        "counts",
        "--genes",
        s(&store),
    ];
    let p = shards(d, "gw", 3, &cells, "-o");
    let out = d.join("out.npy");
    let o = s(&out);

    refused(
        &["merge", s(&p[0]), s(&p[2]), "-o", o],
        &[
            "rows 105..210 are missing",
            "gw.1-of-3.npy",
            "gw.3-of-3.npy",
        ],
    );
    refused(
        &["merge", s(&p[0]), s(&p[1]), "-o", o],
        &["rows 210..315 are missing", "gw.2-of-3.npy"],
    );
    refused(
        &["merge", s(&p[0]), s(&p[1]), s(&p[1]), s(&p[2]), "-o", o],
        &["rows 105..210 are covered twice", "gw.2-of-3.npy"],
    );
    // a shard of another split overlaps
    let four = shards(d, "gw4", 4, &cells, "-o");
    refused(
        &["merge", s(&p[0]), s(&p[1]), s(&p[2]), s(&four[3]), "-o", o],
        &["gw4.4-of-4.npy", "4/4", "gw.1-of-3.npy"],
    );
    // a shard run with other parameters
    let mut other = cells.to_vec();
    other.extend(["--top-n", "5"]);
    let q = shards(d, "top5", 3, &other, "-o");
    refused(
        &["merge", s(&p[0]), s(&q[1]), s(&p[2]), "-o", o],
        &[
            "gw.1-of-3.npy",
            "top5.2-of-3.npy",
            "different runs",
            "aggregation",
        ],
    );
    // not a shard output; a shard whose vectors were lost
    let whole = d.join("whole.npy");
    let mut a = cells.to_vec();
    a.extend(["-o", s(&whole)]);
    ok(&a);
    refused(
        &["merge", s(&whole), "-o", o],
        &["whole.npy", "not a shard output"],
    );
    std::fs::remove_file(&p[1]).unwrap();
    refused(
        &["merge", s(&p[0]), s(&p[1]), s(&p[2]), "-o", o],
        &["gw.2-of-3.npy", "no such shard output"],
    );
    assert!(!out.exists(), "nothing written on refusal");

    // --shard writes a .npy; bad I/N values are refused by clap
    let (xh, xn) = (d.join("x.h5ad"), d.join("x.npy"));
    let mut a = cells.to_vec();
    a.extend(["--shard", "1/2", "-o", s(&xh)]);
    refused(&a, &["x.h5ad", "--shard 1/2", ".npy", "celltext merge"]);
    let mut a = cells.to_vec();
    a.extend(["--shard", "3/2", "-o", s(&xn)]);
    let (code, err) = run(&a);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("I/N"), "{err}");
}
