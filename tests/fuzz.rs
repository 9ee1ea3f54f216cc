//! Fuzz harness for every parser of user files: seed inputs from `tests/fuzz/corpus/<target>/`
//! (made by `tests/fuzz/make_corpus.py`) are mutated (bit flips, byte overwrites with boundary
//! values, inserts, deletes, truncation, duplicated runs) by proptest, written where the reader
//! expects them and read through the library. Errors are the expected outcome; a panic fails the
//! test and proptest shrinks it to the fewest mutations that still panic (an abort or a signal
//! fails the whole run). Stable Rust, no instrumentation, so it reuses the normal build.
//!
//! h5ad seeds carry `.regions` (the raw bytes of every dataset): `fuzz_h5ad` mutates only there,
//! the dataset contents (names, index arrays, values) that celltext itself validates, and
//! `fuzz_h5ad_bytes` mutates the same seeds anywhere, HDF5's file metadata included.
//!
//! `cargo test --release --test fuzz` runs each target for `CELLTEXT_FUZZ_CASES` inputs
//! (default 64); CI runs more (see `.ci/run`). `CELLTEXT_FUZZ_SEED` (default 0) picks the
//! mutation stream; `CELLTEXT_FUZZ_SECONDS` caps each target's time (mutation stops early, the
//! count run so far is reported). With `-- --nocapture` each target prints its executions and
//! executions per second.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(0u8),
        Just(0xff),
        Just(0x7f),
        Just(0x80),
        Just(b'\n'),
        Just(b'\t'),
        Just(b'-'),
        Just(b'9'),
        any::<u8>()
    ];
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        3 => (any::<usize>(), interesting).prop_map(|(p, b)| Mutation::Set(p, b)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1usize..32, 1usize..64).prop_map(|(p, n, k)| Mutation::Repeat(p, n, k)),
    ]
}

/// A seed input and, optionally, the only byte ranges mutations may touch (`NAME.regions`:
/// one `start end` pair per line); there only overwrites apply, so the file's layout holds.
struct Seed {
    bytes: Vec<u8>,
    regions: Vec<(usize, usize)>,
}

fn apply(seed: &Seed, muts: &[Mutation]) -> Vec<u8> {
    if seed.regions.is_empty() {
        return apply_anywhere(&seed.bytes, muts);
    }
    let mut v = seed.bytes.clone();
    let total: usize = seed.regions.iter().map(|(a, b)| b - a).sum();
    let locate = |p: usize| {
        let mut k = p % total.max(1);
        for &(a, b) in &seed.regions {
            if k < b - a {
                return a + k;
            }
            k -= b - a;
        }
        0
    };
    for m in muts {
        match m {
            Mutation::Flip(p, b) => v[locate(*p)] ^= 1 << b,
            Mutation::Set(p, b) => v[locate(*p)] = *b,
            Mutation::Insert(p, bytes) => {
                for (k, &b) in bytes.iter().enumerate() {
                    let i = locate(p.wrapping_add(k));
                    v[i] = b;
                }
            }
            _ => {}
        }
    }
    v
}

fn apply_anywhere(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in muts {
        let at = |p: usize, v: &Vec<u8>| if v.is_empty() { 0 } else { p % v.len() };
        match m {
            Mutation::Flip(p, b) if !v.is_empty() => {
                let i = at(*p, &v);
                v[i] ^= 1 << b;
            }
            Mutation::Set(p, b) if !v.is_empty() => {
                let i = at(*p, &v);
                v[i] = *b;
            }
            Mutation::Insert(p, bytes) => {
                let i = at(*p, &v);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(p, n) if !v.is_empty() => {
                let i = at(*p, &v);
                let j = (i + n).min(v.len());
                v.drain(i..j);
            }
            Mutation::Truncate(p) => {
                let i = at(*p, &v);
                v.truncate(i);
            }
            Mutation::Repeat(p, n, k) if !v.is_empty() => {
                let i = at(*p, &v);
                let j = (i + n).min(v.len());
                let run: Vec<u8> = v[i..j].to_vec();
                for _ in 0..*k {
                    v.splice(j..j, run.iter().copied());
                }
            }
            _ => {}
        }
    }
    v
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seeds(target: &str) -> Vec<Seed> {
    let dir = repo().join("tests/fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/fuzz/make_corpus.py)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_none_or(|e| e != "regions"))
        .collect();
    files.sort();
    let v: Vec<Seed> = files
        .iter()
        .map(|f| {
            let mut r = f.as_os_str().to_owned();
            r.push(".regions");
            let regions = std::fs::read_to_string(&r)
                .map(|t| {
                    t.lines()
                        .filter_map(|l| {
                            let (a, b) = l.split_once(' ')?;
                            Some((a.parse().ok()?, b.parse().ok()?))
                        })
                        .filter(|(a, b)| a < b)
                        .collect()
                })
                .unwrap_or_default();
            Seed {
                bytes: std::fs::read(f).unwrap(),
                regions,
            }
        })
        .collect();
    assert!(!v.is_empty(), "{}: no seed inputs", dir.display());
    v
}

/// Run `body` on mutated seeds of `target`; panics (after shrinking) if `body` ever panics.
fn fuzz(target: &str, body: impl Fn(&[u8]) + Sync) {
    fuzz_as(target, target, false, body)
}

/// [`fuzz`] of the seeds of `target` under the name `name` (its own mutation stream); with
/// `anywhere`, mutations ignore the seeds' `.regions` and touch every byte.
fn fuzz_as(name: &str, target: &str, anywhere: bool, body: impl Fn(&[u8]) + Sync) {
    let mut seeds = seeds(target);
    if anywhere {
        seeds.iter_mut().for_each(|s| s.regions.clear());
    }
    let target = name;
    let cases = env_num("CELLTEXT_FUZZ_CASES", 64) as u32;
    let seconds = env_num("CELLTEXT_FUZZ_SECONDS", 0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&env_num("CELLTEXT_FUZZ_SEED", 0).to_le_bytes());
    let tag = &target.as_bytes()[..target.len().min(16)];
    key[8..8 + tag.len()].copy_from_slice(tag);
    let execs = AtomicU64::new(0);
    let start = Instant::now();
    // every seed as it is first, then mutations
    for s in &seeds {
        body(&s.bytes);
        execs.fetch_add(1, Ordering::Relaxed);
    }
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(), 1..6));
    // rounds of at most 256 inputs, so the time cap is checked between rounds
    let mut left = cases;
    let mut result = Ok(());
    let mut round_no = 0u64;
    while left > 0 && result.is_ok() && (seconds == 0 || start.elapsed().as_secs() < seconds) {
        let round = left.min(256);
        left -= round;
        let config = Config {
            cases: round,
            failure_persistence: None,
            max_shrink_iters: 2048,
            ..Config::default()
        };
        round_no += 1;
        key[24..].copy_from_slice(&round_no.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
        let mut runner = TestRunner::new_with_rng(config, rng);
        result = runner.run(&strategy, |(i, muts)| {
            let input = apply(&seeds[i], &muts);
            body(&input);
            execs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
    }
    let n = execs.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {target}: {n} executions in {secs:.1} s ({:.0} execs/s), {} seeds",
        n as f64 / secs.max(1e-9),
        seeds.len()
    );
    if let Err(e) = result {
        panic!("fuzz {target}: {e}");
    }
}

/// A scratch folder per target, reused by every execution.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

const TINY: &str = "tests/fuzz/corpus/_model";

fn tiny_model(into: &Path, with_weights: bool) {
    std::fs::create_dir_all(into).unwrap();
    for f in ["config.json", "vocab.txt", "model.safetensors"] {
        if f != "model.safetensors" || with_weights {
            std::fs::copy(repo().join(TINY).join(f), into.join(f)).unwrap();
        }
    }
}

#[test]
fn fuzz_h5ad() {
    let d = scratch();
    let p = d.path().join("x.h5ad");
    fuzz("h5ad", |b| {
        std::fs::write(&p, b).unwrap();
        let _ = celltext::cells::read::read_matrix(&p, &Default::default());
    });
}

/// h5ad bytes mutated anywhere, HDF5's own metadata (superblock, object headers, B-trees, heaps)
/// included: HDF5 is built from source (a current release, the hdf5 crate's `static` feature),
/// which refuses such files where Debian's libhdf5 1.10 crashed or hung (docs/hostile-input.md).
/// A crash ends the whole run, so each input is written where it outlives the run
/// (`fuzz-h5ad-bytes.h5ad` in the `tmp` folder of cargo's target directory), and a watchdog aborts the run, naming that file, if one
/// input takes longer than `CELLTEXT_FUZZ_HANG_SECONDS` (default 60; a hang).
#[test]
fn fuzz_h5ad_bytes() {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-h5ad-bytes.h5ad");
    let started = std::sync::Arc::new(AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let limit = env_num("CELLTEXT_FUZZ_HANG_SECONDS", 60);
    let clock = Instant::now();
    let watchdog = {
        let (started, done, p) = (started.clone(), done.clone(), p.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let t = started.load(Ordering::Relaxed);
                if t > 0 && clock.elapsed().as_millis() as u64 > t + limit * 1000 {
                    eprintln!(
                        "fuzz h5ad_bytes: one input has run for over {limit} s (a hang); it is \
                         kept at {}",
                        p.display()
                    );
                    std::process::abort();
                }
            }
        })
    };
    fuzz_as("h5ad_bytes", "h5ad", true, |b| {
        std::fs::write(&p, b).unwrap();
        // 0 means "not running"; a start at millisecond 0 counts as 1
        started.store(clock.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
        let _ = celltext::cells::read::read_matrix(&p, &Default::default());
        started.store(0, Ordering::Relaxed);
    });
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
}

#[test]
fn fuzz_mtx() {
    let d = scratch();
    std::fs::write(d.path().join("features.tsv"), "E0\tG0\tGene Expression\nE1\tG1\tGene Expression\nE2\tG2\tGene Expression\nE3\tG3\tGene Expression\n").unwrap();
    std::fs::write(d.path().join("barcodes.tsv"), "A-1\nB-1\nC-1\n").unwrap();
    let p = d.path().join("matrix.mtx");
    fuzz("mtx", |b| {
        std::fs::write(&p, b).unwrap();
        let _ = celltext::cells::read::read_matrix(d.path(), &Default::default());
    });
}

#[test]
fn fuzz_features_tsv() {
    let d = scratch();
    std::fs::write(
        d.path().join("matrix.mtx"),
        "%%MatrixMarket matrix coordinate integer general\n4 3 3\n1 1 3\n2 2 1\n4 3 7\n",
    )
    .unwrap();
    std::fs::write(d.path().join("barcodes.tsv"), "A-1\nB-1\nC-1\n").unwrap();
    let p = d.path().join("features.tsv");
    fuzz("features_tsv", |b| {
        std::fs::write(&p, b).unwrap();
        let _ = celltext::cells::read::read_matrix(d.path(), &Default::default());
    });
}

#[test]
fn fuzz_csv() {
    let d = scratch();
    let p = d.path().join("m.csv");
    fuzz("csv", |b| {
        std::fs::write(&p, b).unwrap();
        let _ = celltext::cells::read::read_matrix(&p, &Default::default());
    });
}

#[test]
fn fuzz_pickle_vm() {
    fuzz("pickle", |b| {
        let _ = celltext::pickle::unpickle_vector_dict(b, "fuzz input");
    });
}

#[test]
fn fuzz_pth() {
    let d = scratch();
    let p = d.path().join("pytorch_model.bin");
    fuzz("pth", |b| {
        std::fs::write(&p, b).unwrap();
        let _ = celltext::encoder::pth::read_pth(&p);
    });
}

#[test]
fn fuzz_safetensors() {
    let d = scratch();
    tiny_model(d.path(), false);
    let cfg =
        celltext::encoder::config::BertConfig::from_file(&d.path().join("config.json")).unwrap();
    let p = d.path().join("model.safetensors");
    fuzz("safetensors", |b| {
        std::fs::write(&p, b).unwrap();
        if let Ok(wf) = celltext::encoder::weights::WeightFiles::open(d.path()) {
            let _ = wf.check_config(&cfg, &d.path().join("config.json"));
            let _ = wf.all_canonical();
        }
    });
}

#[test]
fn fuzz_safetensors_index() {
    let d = scratch();
    let m = d.path().join("m");
    tiny_model(&m, false);
    std::fs::copy(
        repo().join(TINY).join("model.safetensors"),
        m.join("model-00001.safetensors"),
    )
    .unwrap();
    let p = m.join("model.safetensors.index.json");
    fuzz("safetensors_index", |b| {
        std::fs::write(&p, b).unwrap();
        if let Ok(files) = celltext::encoder::weights::weight_files(&m) {
            for f in files {
                assert!(
                    f.canonicalize()
                        .unwrap()
                        .starts_with(m.canonicalize().unwrap()),
                    "{}",
                    f.display()
                );
            }
        }
    });
}

#[test]
fn fuzz_config_json() {
    let d = scratch();
    tiny_model(d.path(), true);
    let wf = celltext::encoder::weights::WeightFiles::open(d.path()).unwrap();
    let p = d.path().join("config.json");
    fuzz("config_json", |b| {
        std::fs::write(&p, b).unwrap();
        if let Ok(cfg) = celltext::encoder::config::BertConfig::from_file(&p) {
            if wf.check_config(&cfg, &p).is_ok() {
                // sizes that passed both checks are the real ones: loading must work
                let _ = celltext::encoder::backends::cpu::CpuBert::load(&wf, &cfg, false);
            }
        }
    });
}

#[test]
fn fuzz_tokenizer() {
    let minilm = repo().join("models-local/all-MiniLM-L6-v2");
    let dir = if minilm.join("tokenizer.json").exists() {
        minilm
    } else {
        eprintln!("fuzz tokenizer: models-local/all-MiniLM-L6-v2 absent, using the ember-like fixture tokenizer");
        repo().join("tests/fixtures/models/ember-like")
    };
    let tok =
        celltext::encoder::tokenizer::TextTokenizer::from_dir(&dir, 256, None, Some(true)).unwrap();
    fuzz("tokenizer", |b| {
        let text = String::from_utf8_lossy(b);
        let _ = tok.encode(&text);
        let _ = tok.count_untruncated(&text);
    });
}

#[test]
fn fuzz_summaries() {
    let d = scratch();
    let (j, t) = (d.path().join("s.json"), d.path().join("s.tsv"));
    fuzz("summaries", |b| {
        std::fs::write(&j, b).unwrap();
        std::fs::write(&t, b).unwrap();
        let _ = celltext::genes::corpus::SummaryCorpus::from_file(&j);
        let _ = celltext::genes::corpus::SummaryCorpus::from_file(&t);
    });
}

#[test]
fn fuzz_experiment_toml() {
    let p = Path::new("fuzz.toml");
    fuzz("experiment_toml", |b| {
        let _ = celltext::experiment::parse_config(&String::from_utf8_lossy(b), p);
    });
}
