//! Hostile conditions for writers, through the binary: a second writer on the same output, a
//! store mixed from two writes, a full disk under `classify --report`, temps left by killed runs,
//! file modes, `--name` and negative numbers, control characters in gene symbols.

mod common;
use common::*;

use celltext::outputs::OutputLock;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .arg("--quiet")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args, &[]);
    assert_eq!(code, 0, "celltext {args:?}\n{err}");
    out
}

/// Exit 1 or 2 (never a panic), stderr holding every needle.
fn refused(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let (code, _, err) = run(args, env);
    assert!(
        code == 1 || code == 2,
        "celltext {args:?}: exit {code}\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(
            err.contains(n),
            "celltext {args:?}: stderr lacks {n:?}:\n{err}"
        );
    }
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn pickle() -> PathBuf {
    fixtures().join("gene_interop").join("lists_p4.pkl")
}

fn parquet() -> PathBuf {
    fixtures().join("gene_interop").join("f32.parquet")
}

fn h5ad() -> PathBuf {
    root().join("tests/data/pbmc3k_small/data.h5ad")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_writer_fails_naming_the_first_and_leaves_the_output_intact() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    let before = std::fs::read(t.path().join("store.safetensors")).unwrap();
    let pid = format!("PID {}", std::process::id());

    // this test process holds each output's lock, as a running writer would
    let report = t.path().join("rep");
    let npy = t.path().join("cells.npy");
    let export = t.path().join("genes.tsv");
    let sentences = t.path().join("s.jsonl");
    let cases: Vec<(PathBuf, Vec<String>)> = vec![
        (
            store.clone(),
            vec!["genes", "import", s(&parquet()), "--out", s(&store)]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
        (
            export.clone(),
            [
                "genes",
                "export",
                "--store",
                s(&store),
                "--format",
                "tsv",
                "--out",
                s(&export),
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            npy.clone(),
            [
                "cells",
                "embed",
                "-i",
                s(&h5ad()),
                "--genes",
                s(&store),
                "-o",
                s(&npy),
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            sentences.clone(),
            ["cells", "sentences", "-i", s(&h5ad()), "-o", s(&sentences)]
                .map(String::from)
                .to_vec(),
        ),
        (
            report.clone(),
            [
                "classify",
                "-i",
                s(&h5ad()),
                "--label",
                "label",
                "--on",
                "counts",
                "--report",
                s(&report),
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    for (out, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lock = OutputLock::acquire(out).unwrap();
        refused(&args, &[], &[&pid, s(out), "another celltext process"]);
        drop(lock);
        ok(&args);
    }
    assert_ne!(
        before,
        std::fs::read(t.path().join("store.safetensors")).unwrap(),
        "the second import ran once the lock was free"
    );
    let left: Vec<String> = names(t.path())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "no lock files or temps left: {left:?}");
}

/// Two real processes importing different files into one store at once: whatever the timing,
/// every run either succeeds or fails naming the other's PID, and the store that remains is
/// exactly one of the two inputs.
#[test]
fn racing_imports_never_mix_the_store() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let want_a = {
        ok(&[
            "genes",
            "import",
            s(&pickle()),
            "--out",
            s(&t.path().join("a")),
        ]);
        celltext::genes::GeneEmbeddings::load(&t.path().join("a")).unwrap()
    };
    let want_b = {
        ok(&[
            "genes",
            "import",
            s(&parquet()),
            "--out",
            s(&t.path().join("b")),
        ]);
        celltext::genes::GeneEmbeddings::load(&t.path().join("b")).unwrap()
    };
    for _ in 0..6 {
        let spawn = |input: &Path| {
            Command::new(env!("CARGO_BIN_EXE_celltext"))
                .args(["--quiet", "genes", "import", s(input), "--out", s(&store)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(&pickle()), spawn(&parquet()));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || (out.status.code() == Some(1) && err.contains("PID ")),
                "{err}"
            );
        }
        let got = celltext::genes::GeneEmbeddings::load(&store).unwrap();
        assert!(
            (got.symbols == want_a.symbols && got.data == want_a.data)
                || (got.symbols == want_b.symbols && got.data == want_b.data),
            "the store must be one of the two imports"
        );
    }
}

#[test]
fn a_store_mixed_from_two_writes_is_refused_by_every_reader() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    ok(&["genes", "import", s(&pickle()), "--out", s(&a)]);
    ok(&["genes", "import", s(&parquet()), "--out", s(&b)]);
    // what a writer killed between renames used to leave: new vectors, old symbols and manifest
    std::fs::copy(
        t.path().join("b.safetensors"),
        t.path().join("a.safetensors"),
    )
    .unwrap();
    let genes = t.path().join("genes.txt");
    std::fs::write(&genes, "RPL11\nTMSB10\n").unwrap();
    let npy = t.path().join("c.npy");
    let needles = [
        "a.safetensors",
        "does not match",
        "a.manifest.json",
        "--out",
    ];
    refused(
        &["genes", "coverage", "--store", s(&a), "--genes", s(&genes)],
        &[],
        &needles,
    );
    refused(
        &[
            "cells",
            "embed",
            "-i",
            s(&h5ad()),
            "--genes",
            s(&a),
            "-o",
            s(&npy),
        ],
        &[],
        &needles,
    );
    refused(
        &[
            "genes",
            "export",
            "--store",
            s(&a),
            "--format",
            "tsv",
            "--out",
            s(&npy),
        ],
        &[],
        &needles,
    );
    assert!(!npy.exists());
    // killed after the old manifest was removed
    std::fs::remove_file(t.path().join("a.manifest.json")).unwrap();
    refused(
        &["genes", "coverage", "--store", s(&a), "--genes", s(&genes)],
        &[],
        &["a.manifest.json: missing", "celltext genes import"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn classify_report_on_a_full_disk_keeps_the_old_report() {
    let t = tempfile::tempdir().unwrap();
    let rep = t.path().join("rep");
    let input = h5ad();
    let args = [
        "classify",
        "-i",
        s(&input),
        "--label",
        "label",
        "--on",
        "counts",
        "--report",
        s(&rep),
    ];
    ok(&args);
    let before = std::fs::read(rep.join("report.json")).unwrap();
    let files_before = names(&rep);
    for full in ["confusion.png", "embedding.svg", "report.md", "report.json"] {
        let err = refused(
            &args,
            &[("CELLTEXT_TEST_DISK_FULL", full)],
            &[full, "No space left on device"],
        );
        assert!(
            !err.contains("BackendError") && !err.contains("Os {"),
            "{err}"
        );
        assert_eq!(std::fs::read(rep.join("report.json")).unwrap(), before);
        assert_eq!(names(&rep), files_before, "old report kept whole");
        assert_eq!(names(t.path()), ["rep"], "no partial folder left");
    }
    // a folder of other files is never replaced
    let other = t.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let mut a = args.to_vec();
    *a.last_mut().unwrap() = s(&other);
    refused(&a, &[], &["--report", "no report.json"]);
    assert_eq!(names(&other), ["notes.txt"]);
}

#[test]
fn stale_temps_of_killed_runs_go_after_a_successful_rerun() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let rep = t.path().join("rep");
    // PID 2147483632 cannot exist (above pid_max)
    let stale = [
        ".store.safetensors.2147483632-0.tmp.safetensors",
        ".store.genes.tsv.2147483632-3.tmp.tsv",
        ".store.manifest.json.2147483632-4.tmp.json",
        ".store.celltext-lock",
    ];
    for f in stale {
        std::fs::write(t.path().join(f), b"left by kill -9").unwrap();
    }
    std::fs::create_dir(t.path().join(".rep.2147483632-1.tmp")).unwrap();
    std::fs::write(t.path().join(".rep.2147483632-1.tmp/report.md"), "x").unwrap();
    std::fs::write(
        t.path().join(".unrelated.2147483632-0.tmp"),
        "not ours to judge",
    )
    .unwrap();
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    ok(&[
        "classify",
        "-i",
        s(&h5ad()),
        "--label",
        "label",
        "--on",
        "counts",
        "--report",
        s(&rep),
    ]);
    assert_eq!(
        names(t.path()),
        [
            ".unrelated.2147483632-0.tmp",
            "rep",
            "store.genes.tsv",
            "store.manifest.json",
            "store.safetensors"
        ]
    );
}

#[cfg(unix)]
#[test]
fn outputs_get_the_default_mode_and_replacements_keep_theirs() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    let st = t.path().join("store.safetensors");
    let tsv = t.path().join("store.genes.tsv");
    // the test runs under some umask; a new safetensors file gets the same mode as a new tsv
    // (a 0600 tempfile used to be renamed into place)
    assert_eq!(mode(&st), mode(&tsv));
    assert_ne!(mode(&st), 0o600);
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&["genes", "import", s(&parquet()), "--out", s(&store)]);
    assert_eq!(mode(&st), 0o640, "replacing keeps the old file's mode");
}

#[test]
fn bad_names_and_negative_numbers_are_refused_by_flag() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    let out = t.path().join("c.h5ad");
    for (name, why) in [
        ("", "--name is empty"),
        ("a/b", "`/`"),
        ("a\nb", "control character"),
        ("a b", "` `"),
    ] {
        refused(
            &[
                "cells",
                "embed",
                "-i",
                s(&h5ad()),
                "--genes",
                s(&store),
                "-o",
                s(&out),
                "--name",
                name,
            ],
            &[],
            &["--name", why],
        );
        assert!(!out.exists());
    }
    for (args, needle) in [
        (
            vec![
                "cells",
                "embed",
                "-i",
                s(&h5ad()),
                "--genes",
                s(&store),
                "-o",
                s(&out),
                "--chunk-rows",
                "-1",
            ],
            "--chunk-rows must be ≥ 0, got -1",
        ),
        (
            vec![
                "classify",
                "-i",
                s(&h5ad()),
                "--label",
                "label",
                "--k",
                "-1",
            ],
            "--k must be ≥ 1, got -1",
        ),
        (
            vec![
                "classify",
                "-i",
                s(&h5ad()),
                "--label",
                "label",
                "--seed",
                "-3",
            ],
            "--seed must be ≥ 0, got -3",
        ),
        (
            vec![
                "classify",
                "-i",
                s(&h5ad()),
                "--label",
                "label",
                "--lr",
                "-0.1",
            ],
            "--lr must be ≥ 0, got -0.1",
        ),
        (
            vec![
                "classify",
                "-i",
                s(&h5ad()),
                "--label",
                "label",
                "--folds",
                "-2",
            ],
            "--folds must be ≥ 2, got -2",
        ),
        (
            vec![
                "genes",
                "embed",
                "-m",
                "x",
                "--out",
                s(&store),
                "--batch-tokens",
                "-1",
            ],
            "--batch-tokens must be ≥ 1, got -1",
        ),
    ] {
        let err = refused(&args, &[], &[needle]);
        assert!(!err.contains("unexpected argument"), "{err}");
    }
}

#[test]
fn control_characters_in_gene_symbols_are_refused_at_every_entry() {
    let t = tempfile::tempdir().unwrap();
    let model = fixtures().join("models").join("ember-like");
    let store = t.path().join("store");
    for (file, text, shown) in [
        (
            "nl.json",
            "{\"GENE\\nX\": \"a summary\", \"B\": \"text\"}",
            "GENE\\nX",
        ),
        ("tab.json", "{\"A\\tB\": \"a summary\"}", "A\\tB"),
        ("nul.json", "{\"N\\u0000UL\": \"a summary\"}", "N\\0UL"),
        ("c1.json", "{\"C\\u0085D\": \"a summary\"}", "C\\u{85}D"),
        (
            "esc.tsv",
            "symbol\ttext\nGE\u{1b}NE\tsome text\n",
            "GE\\u{1b}NE",
        ),
        ("cr.csv", "symbol,text\n\"GE\rNE\",some text\n", "GE\\rNE"),
    ] {
        let p = t.path().join(file);
        std::fs::write(&p, text).unwrap();
        refused(
            &[
                "genes",
                "embed",
                "-m",
                s(&model),
                "--summaries",
                s(&p),
                "--out",
                s(&store),
            ],
            &[],
            &[file, shown, "control character", "fix or drop"],
        );
        assert!(!t.path().join("store.safetensors").exists());
    }
    // dataset gene lists (resolver inputs)
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    let list = t.path().join("genes.txt");
    std::fs::write(&list, "RPL11\nBAD\u{7}GENE\n").unwrap();
    refused(
        &[
            "genes",
            "coverage",
            "--store",
            s(&store),
            "--genes",
            s(&list),
        ],
        &[],
        &["genes.txt", "BAD\\u{7}GENE", "control character"],
    );
}

/// A real `genes import` over an existing store that fails after the vectors were renamed into
/// place (the gene list hits a full disk): no command accepts the half-replaced store, and a
/// rerun repairs it.
#[cfg(target_os = "linux")]
#[test]
fn an_import_failing_between_renames_leaves_a_store_every_reader_refuses() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    ok(&["genes", "import", s(&pickle()), "--out", s(&store)]);
    refused(
        &["genes", "import", s(&parquet()), "--out", s(&store)],
        &[("CELLTEXT_TEST_DISK_FULL", "store.genes.tsv")],
        &["store.genes.tsv", "No space left on device"],
    );
    let genes = t.path().join("genes.txt");
    std::fs::write(&genes, "RPL11\n").unwrap();
    let npy = t.path().join("c.npy");
    let needles = ["store.manifest.json: missing", "celltext genes import"];
    refused(
        &[
            "genes",
            "coverage",
            "--store",
            s(&store),
            "--genes",
            s(&genes),
        ],
        &[],
        &needles,
    );
    refused(
        &[
            "cells",
            "embed",
            "-i",
            s(&h5ad()),
            "--genes",
            s(&store),
            "-o",
            s(&npy),
        ],
        &[],
        &needles,
    );
    assert!(!npy.exists());
    ok(&["genes", "import", s(&parquet()), "--out", s(&store)]);
    ok(&[
        "genes",
        "coverage",
        "--store",
        s(&store),
        "--genes",
        s(&genes),
    ]);
}
