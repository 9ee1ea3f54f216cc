//! Atomic output writing, checksums and run manifests.

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A temporary path beside `path` (same directory, so the final rename is atomic). It keeps the
/// final extension, so writers that pick a format from the name (plotters, hdf5) work on it, and
/// is unique per process and call, so concurrent writers never share a temp file.
pub fn temp_path_for(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let unique = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => dir.join(format!(".{name}.{unique}.tmp.{ext}")),
        None => dir.join(format!(".{name}.{unique}.tmp")),
    }
}

/// Write `path` via a temp file + rename: readers never see a partial file under the final name.
pub fn atomic_write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    }
    let tmp = temp_path_for(path);
    simulate_disk_full(path, &tmp);
    let res = write(&tmp).and_then(|_| crate::outputs::set_output_mode(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!("{}: cannot move finished output into place", path.display())
        });
    }
    crate::outputs::remove_stale_temps(path);
    Ok(())
}

/// Testing hook: with `CELLTEXT_TEST_DISK_FULL=NAME`, the temp file of an output named NAME is a
/// link to /dev/full, so writing it fails as on a full disk (ENOSPC) through the real writers.
fn simulate_disk_full(path: &Path, tmp: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(name) = std::env::var("CELLTEXT_TEST_DISK_FULL") {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == name)
        {
            let _ = std::os::unix::fs::symlink("/dev/full", tmp);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (path, tmp);
}

pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("{}: write failed", tmp.display()))?;
        f.sync_all().ok();
        Ok(())
    })
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    atomic_write(path, s.as_bytes())
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read failed", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `OUT.manifest.json` beside `OUT`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

pub const TOOL_VERSION: &str = concat!("celltext ", env!("CARGO_PKG_VERSION"));

/// Write a row-major f32 matrix as `.npy` (v1.0, little-endian, C order).
/// Hand-written: the format is a 10-line header and no maintained crate fits candle-free use.
pub fn write_npy_f32(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    anyhow::ensure!(
        data.len() == rows * cols,
        "internal: matrix data does not match its shape"
    );
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    atomic_write(path, &bytes)
}

/// Read a 2-D little-endian f32 `.npy` (C order) as (data, rows, cols).
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    anyhow::ensure!(
        bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        anyhow::ensure!(
            bytes.len() >= 12,
            "{}: truncated .npy header",
            path.display()
        );
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    anyhow::ensure!(
        bytes.len() >= start + hlen,
        "{}: truncated .npy header",
        path.display()
    );
    let header =
        std::str::from_utf8(&bytes[start..start + hlen]).context("npy header is not UTF-8")?;
    anyhow::ensure!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{}: expected a little-endian float32 C-order array, header is {header}",
        path.display()
    );
    let shape_s = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{}: npy header has no shape", path.display()))?;
    let dims: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{}: bad npy shape `{shape_s}`", path.display()))?;
    let (rows, cols) = match dims.as_slice() {
        [r, c] => (*r, *c),
        [r] => (*r, 1),
        _ => anyhow::bail!(
            "{}: expected a 2-D array, got shape {dims:?}",
            path.display()
        ),
    };
    let body = &bytes[start + hlen..];
    anyhow::ensure!(
        body.len() == rows * cols * 4,
        "{}: data size does not match shape {dims:?}",
        path.display()
    );
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((data, rows, cols))
}

/// `.npy` (f32 [n, dim]) or `.safetensors` (tensor `embeddings`; ids as JSON in metadata `ids`).
pub fn write_embeddings(
    path: &Path,
    data: &[f32],
    n: usize,
    dim: usize,
    ids: Option<&[String]>,
) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => write_npy_f32(path, data, n, dim),
        "safetensors" => atomic_write(path, &embeddings_safetensors_bytes(data, n, dim, ids)?),
        _ => anyhow::bail!(
            "{}: output must end in .npy or .safetensors",
            path.display()
        ),
    }
}

/// The bytes of a safetensors file holding `embeddings` (f32 [n, dim]) and `ids` in its metadata.
/// (Serialized in memory: `safetensors::serialize_to_file` writes through a 0600 `tempfile`.)
pub fn embeddings_safetensors_bytes(
    data: &[f32],
    n: usize,
    dim: usize,
    ids: Option<&[String]>,
) -> Result<Vec<u8>> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, dim], &bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut meta = std::collections::HashMap::new();
    if let Some(ids) = ids {
        meta.insert("ids".to_string(), serde_json::to_string(ids)?);
    }
    meta.insert("tool".to_string(), TOOL_VERSION.to_string());
    safetensors::serialize([("embeddings", view)], Some(meta)).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Read a safetensors `embeddings` matrix (f32) and its `ids` metadata.
pub fn read_embeddings_safetensors(
    path: &Path,
) -> Result<(Vec<f32>, usize, usize, Option<Vec<String>>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse_embeddings_safetensors(&bytes, path)
}

/// [`read_embeddings_safetensors`] on bytes already read from `path`.
pub fn parse_embeddings_safetensors(
    bytes: &[u8],
    path: &Path,
) -> Result<(Vec<f32>, usize, usize, Option<Vec<String>>)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{}: corrupt safetensors file: {e}", path.display()))?;
    let t = st
        .tensor("embeddings")
        .map_err(|_| anyhow::anyhow!("{}: no tensor named `embeddings`", path.display()))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 {
        anyhow::bail!(
            "{}: `embeddings` must be a 2-D f32 tensor, found {:?} {:?}",
            path.display(),
            t.dtype(),
            t.shape()
        );
    }
    let (n, d) = (t.shape()[0], t.shape()[1]);
    let data = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let ids = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("ids"))
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok());
    Ok((data, n, d, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn npy_round_trip_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
        write_npy_f32(&p, &data, 3, 4).unwrap();
        let (d, r, c) = read_npy_f32(&p).unwrap();
        assert_eq!((r, c), (3, 4));
        assert_eq!(d, data);
        // header padded to a multiple of 64 bytes, as numpy does
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.bin");
        let r = atomic_write_with(&p, |tmp| {
            std::fs::write(tmp, b"partial")?;
            anyhow::bail!("boom")
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    #[test]
    fn sha256_known_value() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
