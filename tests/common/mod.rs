// Shared helpers for integration tests (included with `mod common_fixtures;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    root().join("tests").join("fixtures")
}

/// The real all-MiniLM-L6-v2 directory (fetched by scripts/fetch_minilm.sh). Tests that need it
/// fail loudly when it is missing, unless CELLTEXT_SKIP_MINILM=1 says to skip on purpose.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = std::env::var("CELLTEXT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("models-local").join("all-MiniLM-L6-v2"));
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    if std::env::var("CELLTEXT_SKIP_MINILM").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: MiniLM weights not found at {} (CELLTEXT_SKIP_MINILM=1)",
            dir.display()
        );
        return None;
    }
    panic!(
        "MiniLM weights not found at {}: run `bash scripts/fetch_minilm.sh` (or set CELLTEXT_SKIP_MINILM=1)",
        dir.display()
    );
}

pub fn texts() -> Vec<String> {
    let s = std::fs::read_to_string(fixtures().join("texts.jsonl")).unwrap();
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

pub fn token_ids(path: &Path) -> Vec<Vec<u32>> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn npy(path: &Path) -> (Vec<f32>, usize, usize) {
    celltext::io::read_npy_f32(path).unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ab += *x as f64 * *y as f64;
        aa += *x as f64 * *x as f64;
        bb += *y as f64 * *y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-30)
}

/// Copy a directory (flat plus one level of subdirectories) into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// Load an encoder from a model directory (no hub, no messages).
pub fn load_dir(dir: &Path, opts: celltext::encoder::EncoderOptions) -> celltext::encoder::Encoder {
    let resolved = celltext::encoder::resolve::resolve(dir.to_str().unwrap(), true).unwrap();
    celltext::encoder::Encoder::load_resolved(&resolved, &opts).unwrap()
}

/// All `texts` through the encoder as one padded/packed batch (mixed lengths).
pub fn embed_all_one_batch(enc: &celltext::encoder::Encoder, texts: &[String]) -> Vec<f32> {
    let toks: Vec<_> = texts
        .iter()
        .map(|t| enc.tokenizer.encode(t).unwrap())
        .collect();
    let seqs: Vec<&[u32]> = toks.iter().map(|t| t.ids.as_slice()).collect();
    enc.embed_tokenized(&seqs).unwrap()
}

/// The file an evil pickle fixture's `touch <path>` payload would create, read from the fixture itself
/// so the test checks exactly what the payload targets: the pickle string holding the command
/// (SHORT_BINUNICODE or BINUNICODE, length-prefixed), or the quoted command inside an eval source.
pub fn payload_target(bytes: &[u8]) -> PathBuf {
    let at = bytes
        .windows(6)
        .position(|w| w == b"touch ")
        .expect("payload command in fixture");
    let len = if at >= 2 && bytes[at - 2] == 0x8c {
        bytes[at - 1] as usize
    } else if at >= 5 && bytes[at - 5] == b'X' {
        u32::from_le_bytes(bytes[at - 4..at].try_into().unwrap()) as usize
    } else {
        bytes[at..]
            .iter()
            .position(|&b| b == b'\'')
            .expect("quoted eval command")
    };
    PathBuf::from(String::from_utf8(bytes[at + 6..at + len].to_vec()).unwrap())
}
