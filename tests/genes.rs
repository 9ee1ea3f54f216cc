//! Gene store: resumable embedding (bit-identical after a simulated kill), mapping on real
//! Ensembl IDs / aliases / mouse symbols, and bad summary files.

mod common;
use common::*;

use celltext::encoder::EncoderOptions;
use celltext::genes::pipeline::{
    coverage, run_genes_embed, run_genes_embed_cancellable, GenesEmbedArgs, MissingPolicy,
};
use celltext::genes::{GeneEmbeddings, Route, Species, SummaryCorpus};

fn write_subset(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let corpus = SummaryCorpus::bundled(Species::Human).unwrap();
    let mut s = String::from("symbol\ttext\n");
    // every 50th gene: a few hundred real summaries of all lengths
    for g in corpus.genes.iter().step_by(50).take(n) {
        s.push_str(&format!("{}\t{}\n", g.symbol, g.text));
    }
    let p = dir.join("summaries.tsv");
    std::fs::write(&p, s).unwrap();
    p
}

fn args(
    model: &str,
    summaries: &std::path::Path,
    out: &std::path::Path,
    stop: Option<usize>,
) -> GenesEmbedArgs {
    GenesEmbedArgs {
        model: model.into(),
        options: EncoderOptions::default(),
        species: Species::Human,
        summaries: Some(summaries.to_path_buf()),
        out: out.to_path_buf(),
        dataset_genes: None,
        missing: MissingPolicy::Skip,
        batch_tokens: 4096,
        quiet: true,
        stop_after_chunks: stop,
        chunk_texts: 48,
    }
}

#[test]
fn resume_after_kill_is_bit_identical_minilm() {
    let Some(dir) = minilm_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let summaries = write_subset(tmp.path(), 300);
    let model = dir.to_str().unwrap();

    let a = tmp.path().join("a");
    let ma = run_genes_embed(&args(model, &summaries, &a, None)).unwrap();
    assert_eq!(ma.n_genes, 300);
    assert!(
        ma.padding_fraction <= 0.05,
        "padding {}",
        ma.padding_fraction
    );

    let b = tmp.path().join("b");
    let err = run_genes_embed(&args(model, &summaries, &b, Some(2))).unwrap_err();
    assert!(format!("{err}").contains("interrupted"));
    assert!(
        !tmp.path().join("b.safetensors").exists(),
        "no final file after a kill"
    );
    assert!(tmp.path().join("b.partial").is_dir());
    let mb = run_genes_embed(&args(model, &summaries, &b, None)).unwrap();
    assert_eq!(mb.chunks_resumed, 2);
    assert!(
        !tmp.path().join("b.partial").exists(),
        "partial work removed once the store is complete"
    );
    for ext in ["safetensors", "genes.tsv"] {
        let fa = std::fs::read(tmp.path().join(format!("a.{ext}"))).unwrap();
        let fb = std::fs::read(tmp.path().join(format!("b.{ext}"))).unwrap();
        assert!(fa == fb, "{ext} differs after resume");
    }
    let store = GeneEmbeddings::load(&a).unwrap();
    assert_eq!(store.dim, 384);
    assert!(store.data.iter().all(|v| v.is_finite()));
}

#[test]
fn cancelled_job_keeps_finished_chunks_and_resumes_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let summaries = write_subset(tmp.path(), 120);
    let model = fixtures().join("models").join("ember-like");
    let run = |out: &str, check: Option<&dyn Fn() -> anyhow::Result<()>>| {
        let mut a = args(
            model.to_str().unwrap(),
            &summaries,
            &tmp.path().join(out),
            None,
        );
        a.chunk_texts = 16;
        a.batch_tokens = 512;
        run_genes_embed_cancellable(&a, check)
    };
    run("whole", None).unwrap();
    // a check that never fires changes nothing
    let m = run("checked", Some(&|| Ok(()))).unwrap();
    assert_eq!((m.n_genes, m.chunks_resumed), (120, 0));
    // a check that stops the job as soon as the first chunk is on disk
    let first = tmp.path().join("resumed.partial").join("chunk-000000.npy");
    let stop = || {
        anyhow::ensure!(!first.exists(), "stopped by the caller");
        Ok(())
    };
    let e = format!("{:#}", run("resumed", Some(&stop)).unwrap_err());
    assert!(e.contains("stopped by the caller"), "{e}");
    assert!(!tmp.path().join("resumed.safetensors").exists());
    let n_chunks = std::fs::read_dir(tmp.path().join("resumed.partial"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("chunk-")
        })
        .count();
    assert_eq!(n_chunks, 1, "the job stops before the next batch");
    let m = run("resumed", Some(&|| Ok(()))).unwrap();
    assert_eq!(m.chunks_resumed, n_chunks);
    assert!(!tmp.path().join("resumed.partial").exists());
    for name in ["checked", "resumed"] {
        for ext in ["safetensors", "genes.tsv"] {
            let want = std::fs::read(tmp.path().join(format!("whole.{ext}"))).unwrap();
            let got = std::fs::read(tmp.path().join(format!("{name}.{ext}"))).unwrap();
            assert!(
                want == got,
                "{name}.{ext} differs from the uninterrupted store"
            );
        }
    }
}

#[test]
fn resume_refuses_partial_work_from_other_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let summaries = write_subset(tmp.path(), 120);
    let model = fixtures().join("models").join("ember-like");
    let out = tmp.path().join("s");
    let mut a = args(model.to_str().unwrap(), &summaries, &out, Some(1));
    a.chunk_texts = 16;
    assert!(run_genes_embed(&a).is_err());
    let mut b = args(model.to_str().unwrap(), &summaries, &out, None);
    b.chunk_texts = 16;
    b.options.normalize = true;
    let e = format!("{:#}", run_genes_embed(&b).unwrap_err());
    assert!(
        e.contains("s.partial") && e.contains("different run"),
        "{e}"
    );
}

#[test]
fn missing_policies_on_dataset_genes() {
    let tmp = tempfile::tempdir().unwrap();
    let summaries = write_subset(tmp.path(), 40);
    let model = fixtures().join("models").join("ember-like");
    let corpus = SummaryCorpus::from_file(&summaries).unwrap();
    // NKG7 has no RefSeq summary but a full name; ZZZ_NOT_A_GENE has neither
    let ds: Vec<String> = vec![
        corpus.genes[0].symbol.clone(),
        "NKG7".into(),
        "ZZZ_NOT_A_GENE".into(),
    ];
    for (policy, n_genes, n_missing) in [
        (MissingPolicy::Skip, 40, 2),
        (MissingPolicy::Zero, 42, 0),
        (MissingPolicy::FallbackName, 41, 1),
    ] {
        let out = tmp.path().join(format!("{policy:?}"));
        let mut a = args(model.to_str().unwrap(), &summaries, &out, None);
        a.dataset_genes = Some(ds.clone());
        a.missing = policy;
        let m = run_genes_embed(&a).unwrap();
        assert_eq!(
            (m.n_genes, m.dataset_genes_without_summary.len()),
            (n_genes, n_missing),
            "{policy:?}"
        );
        let store = GeneEmbeddings::load(&out).unwrap();
        if policy == MissingPolicy::Zero {
            let i = store.symbols.iter().position(|s| s == "NKG7").unwrap();
            assert!(store.row(i).iter().all(|v| *v == 0.0));
        }
        if policy == MissingPolicy::FallbackName {
            assert_eq!(m.n_fallback_name, 1);
            assert!(store.symbols.contains(&"NKG7".to_string()));
        }
    }
}

#[test]
fn cellbench_ensembl_ids_map_to_their_symbols() {
    let text =
        std::fs::read_to_string(root().join("tests/data/genes/cellbench_genes_600.tsv")).unwrap();
    let rows: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    let corpus = SummaryCorpus::bundled(Species::Human).unwrap();
    let symbols: Vec<String> = corpus.genes.iter().map(|g| g.symbol.clone()).collect();
    let ensembl: Vec<String> = rows.iter().map(|(_, e)| e.clone()).collect();
    let (mapped, cov) = coverage(&symbols, &ensembl, Species::Human, false, None).unwrap();
    let by = |r: Route| cov.by_route.iter().find(|(x, _)| *x == r).unwrap().1;
    assert_eq!(by(Route::Exact), 0);
    let via_ensembl = by(Route::Ensembl);
    // which symbols have summaries decides coverage; every hit must agree with CellBench's symbol
    let mut agree = 0;
    let mut hits = 0;
    for ((sym, _), m) in rows.iter().zip(&mapped) {
        if let Some(i) = m {
            hits += 1;
            if &symbols[*i] == sym {
                agree += 1;
            }
        }
    }
    eprintln!("CellBench Ensembl → symbol: {hits}/{} mapped ({via_ensembl} via Ensembl), {agree} agree with CellBench's symbol", rows.len());
    assert!(via_ensembl >= 250, "{via_ensembl}");
    assert!(agree as f64 >= 0.97 * hits as f64, "{agree}/{hits}");
    // with versions appended the result is the same
    let versioned: Vec<String> = ensembl.iter().map(|e| format!("{e}.5")).collect();
    let (mapped2, _) = coverage(&symbols, &versioned, Species::Human, false, None).unwrap();
    assert_eq!(mapped, mapped2);
}

#[test]
fn romanov_mouse_symbols_map_directly_or_by_ortholog() {
    let names: Vec<String> =
        std::fs::read_to_string(root().join("tests/data/genes/romanov_mouse_genes_400.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    let human: Vec<String> = SummaryCorpus::bundled(Species::Human)
        .unwrap()
        .genes
        .into_iter()
        .map(|g| g.symbol)
        .collect();
    let (_, without) = coverage(&human, &names, Species::Mouse, false, None).unwrap();
    let (_, with) = coverage(&human, &names, Species::Mouse, true, None).unwrap();
    let orth = with
        .by_route
        .iter()
        .find(|(r, _)| *r == Route::Ortholog)
        .unwrap()
        .1;
    eprintln!("Romanov mouse → human summaries: {} unmatched without orthologs, {} with ({orth} via ortholog)", without.n_unmatched, with.n_unmatched);
    assert!(orth > 0 && with.n_unmatched < without.n_unmatched);
    let mouse: Vec<String> = SummaryCorpus::bundled(Species::Mouse)
        .unwrap()
        .genes
        .into_iter()
        .map(|g| g.symbol)
        .collect();
    let (_, own) = coverage(&mouse, &names, Species::Mouse, false, None).unwrap();
    assert!(own.n_unmatched < names.len() / 2, "{}", own.n_unmatched);
}

#[test]
fn cli_genes_coverage_and_bad_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"CD3E\": \"T cell\",\n \"CD3E\": \"again\"}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args([
            "genes",
            "embed",
            "-m",
            fixtures().join("models/ember-like").to_str().unwrap(),
            "--summaries",
            bad.to_str().unwrap(),
            "--out",
            tmp.path().join("s").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("bad.json")
            && err.contains("line 2")
            && err.contains("appears twice"),
        "{err}"
    );
}

/// A store whose manifest records mouse genes is refused for data read as human (the default
/// `--species`) by `genes coverage` and `cells embed`, naming the fix; `--species mouse` and
/// `--orthologs` are accepted.
#[test]
fn cli_refuses_a_store_of_the_other_species() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["Cd3e", "Lyz2", "Actb", "Ms4a1"].map(String::from).to_vec();
    let store = GeneEmbeddings {
        symbols: names.clone(),
        dim: 2,
        data: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.5],
    };
    let prefix = tmp.path().join("mouse_store");
    store
        .save(&prefix, &serde_json::json!({"species": "mouse"}))
        .unwrap();
    let list = tmp.path().join("genes.txt");
    std::fs::write(&list, names.join("\n")).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--quiet",
            "genes",
            "coverage",
            "--store",
            prefix.to_str().unwrap(),
            "--genes",
            list.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_celltext"))
            .args(&args)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("mouse_store: a mouse gene store")
            && err.contains("pass --species mouse"),
        "{err}"
    );
    assert!(run(&["--species", "mouse"]).status.success());
    assert!(run(&["--orthologs"]).status.success());
    let csv = tmp.path().join("cells.csv");
    std::fs::write(&csv, "cell,Cd3e,Lyz2,Actb,Ms4a1\nc1,3,0,5,1\nc2,0,4,2,0\n").unwrap();
    let embed = |species: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_celltext"))
            .args([
                "--quiet",
                "cells",
                "embed",
                "-i",
                csv.to_str().unwrap(),
                "--genes",
                prefix.to_str().unwrap(),
                "--species",
                species,
                "-o",
                tmp.path().join(format!("{species}.npy")).to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = embed("human");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a mouse gene store"));
    let out = embed("mouse");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
