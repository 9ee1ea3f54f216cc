//! Tests for the PyTorch checkpoint loader (`celltext::encoder::pth`).
//!
//! Fixtures and their expected values come from `tests/fixtures/pth/make_pth_fixtures.py`
//! (torch.save in the zip and legacy formats); values are compared exactly.

use candle_core::{DType, Tensor};
mod common;

use celltext::encoder::pth::{detect_format, read_pth, PthFormat};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    match serde_json::from_str(&text).expect("valid JSON") {
        Value::Object(m) => m,
        _ => panic!("expected.json is not an object"),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I64 => "i64",
        DType::I32 => "i32",
        DType::I16 => "i16",
        DType::U8 => "u8",
        DType::U32 => "u32",
        _ => "other",
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("to f64")
}

fn load(name: &str) -> Vec<(String, Tensor)> {
    read_pth(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn get<'a>(ts: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &ts.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .1
}

/// Compare a fixture with expected.json: names in order, dtype, shape, exact values.
fn check(name: &str) {
    let exp = expected();
    let exp = exp
        .get(name)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{name} not in expected.json"));
    let got = load(name);
    let got_names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    let exp_names: Vec<&str> = exp
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(got_names, exp_names, "{name}: tensor names/order");
    for ((n, t), e) in got.iter().zip(exp) {
        assert_eq!(
            dtype_name(t.dtype()),
            e["dtype"].as_str().expect("dtype"),
            "{name}/{n}: dtype"
        );
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|v| v.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{name}/{n}: shape");
        // floats are exact decimal strings (serde_json's number parsing may be off by an ulp)
        let want: Vec<f64> = e["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| match v {
                Value::String(s) => s.parse::<f64>().expect("float string"),
                v => v.as_i64().expect("integer") as f64,
            })
            .collect();
        let have = values(t);
        assert_eq!(have.len(), want.len(), "{name}/{n}: element count");
        for (i, (h, w)) in have.iter().zip(&want).enumerate() {
            assert!(h == w, "{name}/{n}[{i}]: got {h}, expected {w}");
        }
    }
}

macro_rules! fixture_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $( #[test] fn $test() { check($file); } )*
    };
}

fixture_tests! {
    zip_state_dict => "zip_state_dict.bin",
    legacy_state_dict => "legacy_state_dict.bin",
    zip_params => "zip_params.bin",
    legacy_params => "legacy_params.bin",
    zip_dtypes => "zip_dtypes.bin",
    legacy_dtypes => "legacy_dtypes.bin",
    zip_views => "zip_views.bin",
    legacy_views => "legacy_views.bin",
    zip_views_protocol4 => "zip_views_p4.bin",
    legacy_views_protocol4 => "legacy_views_p4.bin",
    zip_nested_state_dict_key => "zip_nested.bin",
    legacy_nested_model_key => "legacy_nested.bin",
    zip_archive_prefix => "zip_archive_prefix.bin",
    zip_deflated => "zip_deflated.bin",
    zip_bigendian => "zip_bigendian.bin",
}

#[test]
fn every_expected_fixture_is_tested() {
    // Guards against the generator adding fixtures that the list above forgets.
    let tested = [
        "zip_state_dict.bin",
        "legacy_state_dict.bin",
        "zip_params.bin",
        "legacy_params.bin",
        "zip_dtypes.bin",
        "legacy_dtypes.bin",
        "zip_views.bin",
        "legacy_views.bin",
        "zip_views_p4.bin",
        "legacy_views_p4.bin",
        "zip_nested.bin",
        "legacy_nested.bin",
        "zip_archive_prefix.bin",
        "zip_deflated.bin",
        "zip_bigendian.bin",
    ];
    for k in expected().keys() {
        assert!(
            tested.contains(&k.as_str()),
            "{k} has expected values but no test"
        );
    }
}

/// Checks that do not rely on the generator's expected values.
#[test]
fn state_dict_structure() {
    for f in ["zip_state_dict.bin", "legacy_state_dict.bin"] {
        let ts = load(f);
        let names: Vec<&str> = ts.iter().map(|(n, _)| n.as_str()).collect();
        // torch's state_dict order: the root module's own buffer first, then the children
        assert_eq!(
            names,
            [
                "position_ids",
                "emb.weight",
                "lin.weight",
                "lin.bias",
                "norm.weight",
                "norm.bias"
            ],
            "{f}"
        );
        let pos = get(&ts, "position_ids");
        assert_eq!(pos.dtype(), DType::I64);
        assert_eq!(pos.dims(), &[1, 6]);
        assert_eq!(
            pos.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(values(get(&ts, "norm.weight")), vec![0.5, -1.25, 2.0]);
        assert_eq!(get(&ts, "lin.weight").dims(), &[3, 4]);
        assert_eq!(get(&ts, "emb.weight").dtype(), DType::F32);
    }
    // named_parameters(): no buffer
    let ts = load("zip_params.bin");
    assert!(ts.iter().all(|(n, _)| n != "position_ids"));
    assert_eq!(ts.len(), 5);
}

#[test]
fn dtypes_are_kept_or_widened() {
    for f in ["zip_dtypes.bin", "legacy_dtypes.bin"] {
        let ts = load(f);
        let dt = |n: &str| get(&ts, n).dtype();
        assert_eq!(dt("f32"), DType::F32);
        assert_eq!(dt("f16"), DType::F16);
        assert_eq!(dt("bf16"), DType::BF16);
        assert_eq!(dt("f64"), DType::F64);
        assert_eq!(dt("i64"), DType::I64);
        assert_eq!(dt("i32"), DType::I32);
        assert_eq!(dt("i16"), DType::I16);
        assert_eq!(dt("i8"), DType::I16, "int8 widens to I16");
        assert_eq!(dt("u8"), DType::U8);
        assert_eq!(dt("bool"), DType::U8, "bool becomes U8");
        assert_eq!(values(get(&ts, "i8")), vec![-128.0, -1.0, 0.0, 127.0]);
        assert_eq!(values(get(&ts, "bool")), vec![1.0, 0.0, 1.0]);
        assert_eq!(values(get(&ts, "u8")), vec![0.0, 1.0, 255.0]);
        assert_eq!(
            values(get(&ts, "i64")),
            vec![-(2f64.powi(40)), 0.0, 2f64.powi(40) + 1.0]
        );
        assert_eq!(
            get(&ts, "f16").to_vec1::<half::f16>().unwrap()[1],
            half::f16::from_f32(-65504.0)
        );
        let s = get(&ts, "scalar");
        assert_eq!(s.dims(), &[] as &[usize]);
        assert_eq!(s.to_scalar::<f32>().unwrap(), 2.5);
        assert_eq!(get(&ts, "empty").dims(), &[0, 3]);
        assert!(
            ts.iter().all(|(n, _)| n != "not_a_tensor"),
            "non-tensor values are skipped"
        );
    }
}

#[test]
fn views_match_candle_reference_ops() {
    for f in [
        "zip_views.bin",
        "legacy_views.bin",
        "zip_views_p4.bin",
        "legacy_views_p4.bin",
        "zip_bigendian.bin",
    ] {
        let ts = load(f);
        let base = get(&ts, "base");
        let same = |a: &Tensor, b: &Tensor, what: &str| {
            assert_eq!(a.dims(), b.dims(), "{f}/{what}: shape");
            assert_eq!(values(a), values(b), "{f}/{what}: values");
        };
        assert_eq!(
            values(base),
            (0..24).map(f64::from).collect::<Vec<_>>(),
            "{f}"
        );
        same(
            get(&ts, "transposed"),
            &base.t().unwrap().contiguous().unwrap(),
            "transposed",
        );
        let strided = Tensor::cat(
            &[
                base.narrow(1, 1, 1).unwrap(),
                base.narrow(1, 3, 1).unwrap(),
                base.narrow(1, 5, 1).unwrap(),
            ],
            1,
        )
        .unwrap();
        same(get(&ts, "strided"), &strided, "strided");
        same(get(&ts, "row1"), &base.get(1).unwrap(), "row1");
        same(get(&ts, "tail"), &base.narrow(0, 2, 2).unwrap(), "tail");
        same(
            get(&ts, "col_view"),
            &base.narrow(0, 1, 2).unwrap().narrow(1, 2, 3).unwrap(),
            "col_view",
        );
        assert_eq!(
            values(get(&ts, "expanded")),
            vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(values(get(&ts, "shared_a")), vec![0.0, 0.5, 1.0, 1.5]);
        assert_eq!(get(&ts, "shared_b").dims(), &[5, 1]);
        assert_eq!(values(get(&ts, "shared_b")), vec![2.5, 3.0, 3.5, 4.0, 4.5]);
        assert_eq!(get(&ts, "f16_t").dtype(), DType::F16);
        assert_eq!(
            values(get(&ts, "f16_t")),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
    }
}

#[test]
fn zip_and_legacy_agree() {
    for stem in ["state_dict", "params", "dtypes", "views", "nested"] {
        let a = load(&format!("zip_{stem}.bin"));
        let b = load(&format!("legacy_{stem}.bin"));
        assert_eq!(a.len(), b.len(), "{stem}");
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert_eq!(ta.dtype(), tb.dtype(), "{stem}/{na}");
            assert_eq!(ta.dims(), tb.dims(), "{stem}/{na}");
            assert_eq!(values(ta), values(tb), "{stem}/{na}");
        }
    }
}

#[test]
fn detects_formats() {
    for (f, want) in [
        ("zip_state_dict.bin", PthFormat::Zip),
        ("zip_deflated.bin", PthFormat::Zip),
        ("legacy_state_dict.bin", PthFormat::Legacy),
        ("legacy_views_p4.bin", PthFormat::Legacy),
    ] {
        assert_eq!(detect_format(&fixture(f)).unwrap(), want, "{f}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pytorch_model.bin");
    std::fs::write(&p, b"hello, not a checkpoint").unwrap();
    let e = format!("{:#}", detect_format(&p).unwrap_err());
    assert!(
        e.contains("pytorch_model.bin") && e.contains("not a PyTorch checkpoint"),
        "{e}"
    );
    let e = format!("{:#}", read_pth(&p).unwrap_err());
    assert!(
        e.contains("pytorch_model.bin") && e.contains("not a PyTorch checkpoint"),
        "{e}"
    );
    std::fs::write(&p, b"").unwrap();
    assert!(detect_format(&p).is_err());
    assert!(read_pth(&p).is_err());
    let e = format!(
        "{:#}",
        read_pth(&dir.path().join("missing.bin")).unwrap_err()
    );
    assert!(e.contains("missing.bin"), "{e}");
}

#[test]
fn evil_checkpoints_are_refused_and_nothing_runs() {
    for (f, global) in [
        ("zip_evil_system.bin", "'posix.system'"),
        ("legacy_evil_system.bin", "'posix.system'"),
        // protocol 4 (STACK_GLOBAL) spells it builtins.eval; protocol 2 (GLOBAL) keeps the
        // Python 2 name __builtin__.eval
        ("zip_evil_eval.bin", "'builtins.eval'"),
        ("legacy_evil_eval.bin", "'__builtin__.eval'"),
    ] {
        let path = fixture(f);
        let marker = common::payload_target(&std::fs::read(&path).unwrap());
        assert!(
            marker.ends_with("celltext_pth_pwned"),
            "{f}: payload target {}",
            marker.display()
        );
        let _ = std::fs::remove_file(&marker);
        let e = read_pth(&path).expect_err(f);
        let msg = e.to_string(); // single-level message, no context chain needed
        assert!(msg.starts_with(&path.display().to_string()), "{f}: {msg}");
        assert!(
            msg.contains(&format!("refusing to unpickle global {global}")),
            "{f}: {msg}"
        );
        assert!(
            msg.contains("only PyTorch tensor-rebuild globals are allowed"),
            "{f}: {msg}"
        );
        assert!(!marker.exists(), "{f}: the payload ran!");
    }
}

#[test]
fn missing_and_short_storage_records() {
    let p = fixture("zip_missing_storage.bin");
    let e = read_pth(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&p.display().to_string()) && e.contains("missing storage record"),
        "{e}"
    );
    assert!(e.contains("data/1") && e.contains("emb.weight"), "{e}");
    let p = fixture("zip_short_storage.bin");
    let e = read_pth(&p).unwrap_err().to_string();
    assert!(
        e.contains("data/1") && e.contains("40 bytes") && e.contains("20 elements"),
        "{e}"
    );
}

/// Run `read_pth`, turning a panic into a test failure that names the case, and check that an
/// error names the file.
fn load_path(p: &Path, label: &str) -> anyhow::Result<Vec<(String, Tensor)>> {
    match std::panic::catch_unwind(|| read_pth(p)) {
        Ok(r) => {
            if let Err(e) = &r {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&p.display().to_string()),
                    "{label}: error does not name the file: {msg}"
                );
            }
            r
        }
        Err(_) => panic!("{label}: read_pth panicked"),
    }
}

/// Load `bytes` written to a fresh temp file.
fn load_bytes(dir: &Path, label: &str, bytes: &[u8]) -> anyhow::Result<Vec<(String, Tensor)>> {
    let p = dir.join("pytorch_model.bin");
    std::fs::write(&p, bytes).unwrap();
    load_path(&p, label)
}

/// A temp copy of a fixture that is damaged in place and restored after each load
/// (rewriting whole files is ~40x slower on this filesystem).
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: std::fs::File,
    bytes: Vec<u8>,
    name: String,
}

impl Scratch {
    fn new(fixture_name: &str) -> Scratch {
        let bytes = std::fs::read(fixture(fixture_name)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pytorch_model.bin");
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        Scratch {
            _dir: dir,
            path,
            file,
            bytes,
            name: fixture_name.to_string(),
        }
    }

    fn flipped(&self, pos: usize, mask: u8) -> anyhow::Result<Vec<(String, Tensor)>> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_at(&[self.bytes[pos] ^ mask], pos as u64)
            .unwrap();
        let r = load_path(
            &self.path,
            &format!("{} byte {pos} ^ {mask:#04x}", self.name),
        );
        self.file.write_at(&[self.bytes[pos]], pos as u64).unwrap();
        r
    }

    fn truncated(&self, cut: usize) -> anyhow::Result<Vec<(String, Tensor)>> {
        use std::os::unix::fs::FileExt;
        self.file.set_len(cut as u64).unwrap();
        let r = load_path(&self.path, &format!("{} cut at byte {cut}", self.name));
        self.file.write_at(&self.bytes[cut..], cut as u64).unwrap();
        r
    }
}

const ALL: [&str; 21] = [
    "zip_state_dict.bin",
    "legacy_state_dict.bin",
    "zip_params.bin",
    "legacy_params.bin",
    "zip_dtypes.bin",
    "legacy_dtypes.bin",
    "zip_views.bin",
    "legacy_views.bin",
    "zip_views_p4.bin",
    "legacy_views_p4.bin",
    "zip_nested.bin",
    "legacy_nested.bin",
    "zip_archive_prefix.bin",
    "zip_deflated.bin",
    "zip_bigendian.bin",
    "zip_evil_system.bin",
    "legacy_evil_system.bin",
    "zip_evil_eval.bin",
    "legacy_evil_eval.bin",
    "zip_missing_storage.bin",
    "zip_short_storage.bin",
];

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for f in ALL {
        let bytes = std::fs::read(fixture(f)).unwrap();
        for pct in [10, 50, 99] {
            let cut = bytes.len() * pct / 100;
            let r = load_bytes(dir.path(), &format!("{f} cut at {pct}%"), &bytes[..cut]);
            assert!(r.is_err(), "{f} cut at {pct}% ({cut} bytes) loaded");
        }
    }
    // every possible cut of a few files of each format
    for f in [
        "zip_views.bin",
        "zip_deflated.bin",
        "legacy_views.bin",
        "legacy_views_p4.bin",
        "legacy_dtypes.bin",
    ] {
        let s = Scratch::new(f);
        for cut in 0..s.bytes.len() {
            assert!(s.truncated(cut).is_err(), "{f} cut at byte {cut} loaded");
        }
        assert!(
            load_path(&s.path, f).is_ok(),
            "{f}: scratch copy not restored"
        );
    }
}

#[test]
fn byte_flips_never_panic() {
    // Ok or Err are both acceptable for arbitrary flips (a flipped float in a legacy storage is
    // undetectable); what matters is no panic and no crash.
    let mut errors = 0usize;
    let mut total = 0usize;
    for f in [
        "zip_views.bin",
        "zip_views_p4.bin",
        "zip_deflated.bin",
        "zip_state_dict.bin",
        "legacy_views.bin",
        "legacy_views_p4.bin",
        "legacy_dtypes.bin",
        "legacy_state_dict.bin",
    ] {
        let s = Scratch::new(f);
        for pos in 0..s.bytes.len() {
            for mask in [0xffu8, 0x01, 0x80, 0x10] {
                total += 1;
                errors += s.flipped(pos, mask).is_err() as usize;
            }
        }
        assert!(
            load_path(&s.path, f).is_ok(),
            "{f}: scratch copy not restored"
        );
    }
    eprintln!("byte flips: {errors} of {total} loads were errors, the rest loaded");
    assert!(errors > 0);
}

#[test]
fn byte_flips_that_must_be_detected() {
    // zip: a flipped byte inside a stored tensor record fails the entry's CRC-32.
    let s = Scratch::new("zip_views.bin");
    let needle: Vec<u8> = (0..24).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let at = s
        .bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("base storage in zip");
    for off in [0, 17, 95] {
        let e = s
            .flipped(at + off, 0x5a)
            .expect_err("CRC must catch a flipped storage byte");
        assert!(e.to_string().contains("corrupt zip archive"), "{e}");
    }
    // legacy: the magic number, the protocol version, and a storage element count.
    let s = Scratch::new("legacy_views.bin");
    for pos in [0usize, 4, 8, 14, 16] {
        assert!(s.flipped(pos, 0xff).is_err(), "legacy flip at {pos} loaded");
    }
    // the first storage record (base: 24 floats) starts with its element count
    let count = 24u64.to_le_bytes();
    let at = s
        .bytes
        .windows(8)
        .position(|w| w == count)
        .expect("count of the first record");
    let e = s.flipped(at, 0x01).expect_err("count mismatch");
    assert!(e.to_string().contains("elements"), "{e}");
}

#[test]
fn deep_or_hostile_pickles_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A 'legacy' file whose header pickle nests a million tuples: must not overflow the stack.
    let mut b = vec![0x80, 2, b')'];
    b.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    b.push(b'.');
    let e = load_bytes(dir.path(), "deep tuples", &b).unwrap_err();
    assert!(e.to_string().contains("magic number"), "{e}");
    // A string claiming 4 GiB.
    let b = b"\x80\x02X\xff\xff\xff\xff".to_vec();
    let e = load_bytes(dir.path(), "huge string", &b).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // An unknown opcode.
    let b = b"\x80\x02\xf0.".to_vec();
    let e = load_bytes(dir.path(), "unknown opcode", &b).unwrap_err();
    assert!(e.to_string().contains("unknown opcode 0xf0"), "{e}");
}
