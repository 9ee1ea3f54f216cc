//! Bad input → non-zero exit, a message naming the file and the problem, and never a panic.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

fn celltext(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env(
            "HF_HOME",
            std::env::temp_dir().join("celltext-test-empty-hf-home"),
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn expect_error(args: &[&str], needles: &[&str]) -> String {
    let (code, _, err) = celltext(args);
    assert_ne!(code, 0, "expected failure for {args:?}");
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr for {args:?} lacks `{n}`:\n{err}");
    }
    err
}

fn input_file(dir: &Path) -> String {
    let p = dir.join("in.txt");
    std::fs::write(&p, "CD3E is a T cell receptor component.\nA cell with genes ranked by expression: CD74 HLA-DRA\n").unwrap();
    p.to_str().unwrap().to_string()
}

fn model_copy(tmp: &Path, name: &str) -> std::path::PathBuf {
    let d = tmp.join(name);
    copy_dir(&fixtures().join("models").join(name), &d);
    d
}

#[test]
fn missing_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let d = model_copy(tmp.path(), "ember-like");
    std::fs::remove_file(d.join("config.json")).unwrap();
    let inp = input_file(tmp.path());
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            "x.npy",
        ],
        &["config.json is missing"],
    );
}

#[test]
fn missing_weights_and_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let d = model_copy(tmp.path(), "ember-like");
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    let inp = input_file(tmp.path());
    let out = tmp.path().join("o.npy");
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            out.to_str().unwrap(),
        ],
        &["no weights found", "model.safetensors"],
    );
    let d = model_copy(tmp.path(), "scibert-like");
    std::fs::remove_file(d.join("vocab.txt")).unwrap();
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            out.to_str().unwrap(),
        ],
        &["no tokenizer found"],
    );
    assert!(!out.exists());
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = model_copy(tmp.path(), "ember-like");
    let w = d.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let inp = input_file(tmp.path());
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            "x.npy",
        ],
        &["model.safetensors", "truncated"],
    );
    let mut junk = bytes.clone();
    for b in &mut junk[8..64] {
        *b = b'#';
    }
    std::fs::write(&w, &junk).unwrap();
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            "x.npy",
        ],
        &["model.safetensors", "corrupt"],
    );
}

#[test]
fn truncated_bin() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = input_file(tmp.path());
    for name in ["scibert-like", "biobert-like"] {
        let d = model_copy(tmp.path(), name);
        let w = d.join("pytorch_model.bin");
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() * 2 / 3]).unwrap();
        expect_error(
            &[
                "embed",
                "-m",
                d.to_str().unwrap(),
                "-i",
                &inp,
                "-o",
                "x.npy",
            ],
            &["pytorch_model.bin"],
        );
    }
}

#[test]
fn pickle_with_forbidden_global_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = input_file(tmp.path());
    for evil in ["evil_legacy.bin", "evil_zip.bin", "evil_builtins.bin"] {
        let d = model_copy(tmp.path(), "scibert-like");
        std::fs::copy(
            fixtures().join("bad").join(evil),
            d.join("pytorch_model.bin"),
        )
        .unwrap();
        let err = expect_error(
            &[
                "embed",
                "-m",
                d.to_str().unwrap(),
                "-i",
                &inp,
                "-o",
                "x.npy",
            ],
            &["pytorch_model.bin", "refusing to unpickle global"],
        );
        assert!(err.contains("system") || err.contains("eval"), "{err}");
    }
}

#[test]
fn wrong_tensor_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = model_copy(tmp.path(), "ember-like");
    let cfg_path = d.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let inter = cfg["intermediate_size"].as_u64().unwrap();
    cfg["intermediate_size"] = serde_json::json!(inter * 2);
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let inp = input_file(tmp.path());
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            "x.npy",
        ],
        &["model.safetensors", "has shape", "config"],
    );
}

#[test]
fn unsupported_activation() {
    let tmp = tempfile::tempdir().unwrap();
    let d = model_copy(tmp.path(), "ember-like");
    let cfg_path = d.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hidden_act"] = serde_json::json!("swish_magic");
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let inp = input_file(tmp.path());
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            &inp,
            "-o",
            "x.npy",
        ],
        &["config.json", "unsupported activation", "swish_magic"],
    );
}

#[test]
fn empty_and_non_utf8_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = fixtures().join("models").join("ember-like");
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            empty.to_str().unwrap(),
            "-o",
            "x.npy",
        ],
        &["empty.txt", "empty"],
    );
    let latin = tmp.path().join("latin1.txt");
    std::fs::write(&latin, b"ok line\nna\xefve T cells\n").unwrap();
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            latin.to_str().unwrap(),
            "-o",
            "x.npy",
        ],
        &["latin1.txt", "line 2", "UTF-8"],
    );
    let bad_json = tmp.path().join("in.jsonl");
    std::fs::write(&bad_json, "{\"text\": \"a\"}\n{\"id\": 3}\n").unwrap();
    expect_error(
        &[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            bad_json.to_str().unwrap(),
            "-o",
            "x.npy",
        ],
        &["in.jsonl", "line 2", "text"],
    );
}

#[test]
fn offline_card_without_cache_names_repo_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = input_file(tmp.path());
    let (code, _, err) = Command::new(env!("CARGO_BIN_EXE_celltext"))
        .args(["embed", "-m", "biobert", "-i", &inp, "-o", "x.npy"])
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", tmp.path().join("hf"))
        .env("CELLTEXT_MODELS_DIR", tmp.path().join("nomodels"))
        .current_dir(tmp.path())
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                o.stdout,
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert_ne!(code, 0);
    assert!(
        err.contains("dmis-lab/biobert-base-cased-v1.2") && err.contains("--model DIR"),
        "{err}"
    );
}

#[test]
fn embed_writes_npy_safetensors_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = fixtures().join("models").join("ember-like");
    let inp = tmp.path().join("in.jsonl");
    std::fs::write(&inp, "{\"id\": \"CD3E\", \"text\": \"T cell receptor\"}\n{\"id\": \"MS4A1\", \"text\": \"B cell antigen CD20\"}\n").unwrap();
    for out in ["e.npy", "e.safetensors"] {
        let o = tmp.path().join(out);
        let (code, stdout, err) = celltext(&[
            "embed",
            "-m",
            d.to_str().unwrap(),
            "-i",
            inp.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
            "--quiet",
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("2 × 32"), "{stdout}");
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(celltext::io::manifest_path(&o)).unwrap(),
        )
        .unwrap();
        for k in ["tool", "input_sha256", "n_truncated"] {
            assert!(m.get(k).is_some(), "manifest lacks {k}");
        }
        assert_eq!(m["model"]["pooling"], "cls");
        assert_eq!(m["model"]["weights_sha256"].as_str().unwrap().len(), 64);
    }
    let (data, n, d, ids) =
        celltext::io::read_embeddings_safetensors(&tmp.path().join("e.safetensors")).unwrap();
    assert_eq!((n, d), (2, 32));
    assert_eq!(ids.unwrap(), vec!["CD3E", "MS4A1"]);
    let (npy, _, _) = celltext::io::read_npy_f32(&tmp.path().join("e.npy")).unwrap();
    assert_eq!(npy, data);
}

#[test]
fn demo_refuses_a_repeated_seed_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = out.to_str().unwrap();
    expect_error(
        &["demo", "--seeds", "0,1,0", "--out", o],
        &["--seeds", "each seed once"],
    );
    assert!(!out.exists(), "nothing written for a refused demo");
}
