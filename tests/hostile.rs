//! The hostile-input suite: every case under `tests/hostile/cases/` (made by
//! `tests/hostile/make_hostile.py`) runs the real binary on malformed or adversarial input and
//! must fail cleanly: exit code 1 or 2 (never a panic's 101, never a signal), no "panicked" in
//! stderr, stderr naming the file and the field (`stderr_contains`), nothing written under the
//! output names (`absent`), every input byte-identical afterwards, and no hang. Each case runs on a
//! copy of its folder, so a case whose output names an input can never touch the repository.
//! Placeholders in `args`, `absent` and `setup`: `{case}` (the copy of the case folder), `{out}`
//! (a fresh empty folder per case, also the working directory), `{repo}` (the repository root).
//! `setup` steps run on the copy before the command: `["copy", FROM, TO]` (a file or folder),
//! `["fifo", PATH]`, `["symlink", TARGET, LINK]`. All failures are collected and reported together.

use std::collections::BTreeMap;
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
    #[serde(default)]
    setup: Vec<Vec<String>>,
}

/// A case whose command has not exited after this long is reported as a hang (a watchdog, not a
/// timed assertion: every case finishes in seconds).
const HANG_SECONDS: u64 = 300;

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        #[cfg(unix)]
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ())
}

/// Every entry under `root` (not following links): regular files by content, links by target,
/// other files by kind.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let v = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).ok()).into_bytes()
            } else if m.is_dir() {
                stack.push(p.clone());
                b"dir".to_vec()
            } else if m.is_file() {
                std::fs::read(&p).unwrap_or_default()
            } else {
                b"special".to_vec()
            };
            out.insert(rel, v);
        }
    }
    out
}

fn run_setup(step: &[String]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("setup {step:?}: {e}");
    match step {
        [op, from, to] if op == "copy" => copy_tree(Path::new(from), Path::new(to)).map_err(err),
        #[cfg(unix)]
        [op, target, link] if op == "symlink" => {
            std::os::unix::fs::symlink(target, link).map_err(err)
        }
        #[cfg(unix)]
        [op, path] if op == "fifo" => {
            let c = std::ffi::CString::new(path.as_bytes()).unwrap();
            // SAFETY: a NUL-terminated path; mkfifo touches no memory of ours.
            match unsafe { libc::mkfifo(c.as_ptr(), 0o644) } {
                0 => Ok(()),
                _ => Err(err(std::io::Error::last_os_error())),
            }
        }
        _ => Err(format!("unknown setup step {step:?}")),
    }
}

fn run_case(dir: &Path, repo: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(dir.join("case.json")).map_err(|e| format!("case.json: {e}"))?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("case.json: {e}"))?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let copy = tmp.path().join("case");
    let out = tmp.path().join("out");
    copy_tree(dir, &copy).map_err(|e| format!("copying the case: {e}"))?;
    std::fs::create_dir(&out).map_err(|e| e.to_string())?;
    let subst = |s: &str| {
        s.replace("{case}", &copy.display().to_string())
            .replace("{out}", &out.display().to_string())
            .replace("{repo}", &repo.display().to_string())
    };
    for step in &case.setup {
        let step: Vec<String> = step.iter().map(|s| subst(s)).collect();
        run_setup(&step)?;
    }
    let before = snapshot(&copy);
    let args: Vec<String> = case.args.iter().map(|a| subst(a)).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(&args)
        .current_dir(&out)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("CELLTEXT_MAX_INFLATE_RATIO")
        .env_remove("CELLTEXT_MAX_PICKLE_OBJECTS")
        .env_remove("CELLTEXT_MAX_ELEMENTS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the binary: {e}"))?;
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr_pipe, &mut s);
        s
    });
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if t0.elapsed().as_secs() > HANG_SECONDS {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let mut problems = vec![];
    match status.map(|s| (s.code(), s)) {
        None => problems.push(format!("hang: still running after {HANG_SECONDS} s")),
        Some((Some(1 | 2), _)) => {}
        Some((Some(c), _)) => problems.push(format!("exit code {c} (want 1 or 2)")),
        Some((None, st)) => problems.push(format!("killed by a signal ({st:?})")),
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
    let after = snapshot(&copy);
    for (p, v) in &before {
        match after.get(p) {
            None => problems.push(format!("input {} was removed", p.display())),
            Some(w) if w != v => problems.push(format!("input {} was modified", p.display())),
            _ => {}
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
    let count = |what: &str| failures.iter().filter(|f| f.contains(what)).count();
    eprintln!(
        "hostile suite: {} cases, {} failed, {} panics, {} killed by a signal, {} hangs, {} \
         modified an input",
        dirs.len(),
        failures.len(),
        count("reports a panic"),
        count("killed by a signal"),
        count("hang: still running"),
        count("was modified")
    );
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
