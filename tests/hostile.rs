//! The hostile-input suite: every case under `tests/hostile/cases/` (made by
//! `tests/hostile/make_hostile.py`) runs the real binary on malformed or adversarial input and
//! must fail cleanly: exit code 1 or 2 (never a panic's 101, never a signal), no "panicked" in
//! stderr, stderr naming the file and the field (`stderr_contains`), and nothing written under
//! the output names (`absent`). Placeholders in `args` and `absent`: `{case}` (the case folder),
//! `{out}` (a fresh empty folder per case, also the working directory), `{repo}` (the
//! repository root). All failures are collected and reported together.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

#[derive(serde::Deserialize)]
struct Case {
    args: Vec<String>,
    #[serde(default)]
    stderr_contains: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    why: String,
}

fn run_case(dir: &Path, repo: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(dir.join("case.json")).map_err(|e| format!("case.json: {e}"))?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("case.json: {e}"))?;
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let subst = |s: &str| {
        s.replace("{case}", &dir.display().to_string())
            .replace("{out}", &out.path().display().to_string())
            .replace("{repo}", &repo.display().to_string())
    };
    let args: Vec<String> = case.args.iter().map(|a| subst(a)).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(&args)
        .current_dir(out.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("CELLTEXT_MAX_INFLATE_RATIO")
        .env_remove("CELLTEXT_MAX_PICKLE_OBJECTS")
        .output()
        .map_err(|e| format!("cannot run the binary: {e}"))?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    let mut problems = vec![];
    match o.status.code() {
        Some(1 | 2) => {}
        Some(c) => problems.push(format!("exit code {c} (want 1 or 2)")),
        None => problems.push(format!("killed by a signal ({:?})", o.status)),
    }
    if stderr.contains("panicked") {
        problems.push("stderr reports a panic".to_string());
    }
    for want in &case.stderr_contains {
        let want = subst(want);
        if !stderr.contains(&want) {
            problems.push(format!("stderr lacks {want:?}"));
        }
    }
    for a in &case.absent {
        let p = PathBuf::from(subst(a));
        if p.exists() {
            problems.push(format!("{} exists afterwards", a));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({})\n    args: {}\n    stderr: {}",
            problems.join("; "),
            case.why,
            case.args.join(" "),
            stderr.trim().replace('\n', "\n            ")
        ))
    }
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("tests/hostile/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/hostile/cases (run tests/hostile/make_hostile.py)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 200, "only {} hostile cases", dirs.len());
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<String>::new());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(dir) = dirs.get(i) else { break };
                if let Err(e) = run_case(dir, &repo) {
                    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
                    failures.lock().unwrap().push(format!("{id}: {e}"));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

fn run_bin(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_celltext"));
    c.args(args).env("HF_HUB_OFFLINE", "1");
    for (k, v) in envs {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A shard that is a symlink leading out of the model folder is refused, while a shard linked
/// beside the index's own target (the Hugging Face cache layout: both in `blobs/`) loads.
#[cfg(unix)]
#[test]
fn index_shards_may_not_link_out_of_the_model_folder() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let case = repo.join("tests/hostile/cases/st-index-missing/model");
    let t = tempfile::tempdir().unwrap();
    let m = t.path().join("model");
    std::fs::create_dir_all(&m).unwrap();
    for f in ["config.json", "vocab.txt"] {
        std::fs::copy(case.join(f), m.join(f)).unwrap();
    }
    let outside = t.path().join("elsewhere.safetensors");
    std::fs::copy(case.join("model-00001.safetensors"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, m.join("model-00001.safetensors")).unwrap();
    let names: Vec<String> = ["embeddings.word_embeddings.weight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let map: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| (n.clone(), serde_json::json!("model-00001.safetensors")))
        .collect();
    let index = serde_json::json!({ "weight_map": map }).to_string();
    std::fs::write(m.join("model.safetensors.index.json"), &index).unwrap();
    let texts = t.path().join("t.txt");
    std::fs::write(&texts, "hello\n").unwrap();
    let out = t.path().join("o.npy");
    let args = [
        "embed",
        "--model",
        m.to_str().unwrap(),
        "--input",
        texts.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let (code, err) = run_bin(&args, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("outside the model folder") && err.contains("model.safetensors.index.json"),
        "{err}"
    );
    assert!(!out.exists());

    // Hugging Face cache layout: index and shard both link into blobs/
    let blobs = t.path().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::rename(&outside, blobs.join("aaa")).unwrap();
    std::fs::write(blobs.join("bbb"), &index).unwrap();
    for (link, target) in [
        ("model-00001.safetensors", "aaa"),
        ("model.safetensors.index.json", "bbb"),
    ] {
        std::fs::remove_file(m.join(link)).unwrap();
        std::os::unix::fs::symlink(blobs.join(target), m.join(link)).unwrap();
    }
    let (_, err) = run_bin(&args, &[]);
    assert!(!err.contains("outside the model folder"), "{err}");
}

/// The decompression limit is raised by the environment variable its error names.
#[test]
fn the_inflate_limit_can_be_raised() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // 80 MiB of comment before a valid 4 × 3 matrix: refused at the default limit, read above it
    let f = repo.join("tests/hostile/cases/mtx-gzip-bomb/d");
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("o.jsonl");
    let args = [
        "cells",
        "sentences",
        "--input",
        f.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let (code, err) = run_bin(&args, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("CELLTEXT_MAX_INFLATE_RATIO"), "{err}");
    let (code, err) = run_bin(&args, &[("CELLTEXT_MAX_INFLATE_RATIO", "100000")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.exists());
}
