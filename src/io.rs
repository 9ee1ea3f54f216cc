//! Atomic output writing, checksums and run manifests.

use anyhow::{Context, Result};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use crate::checksum::{sha256_bytes, sha256_file};
pub use crate::outputs::temp_path_for;

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
    crate::outputs::fault_point(path);
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

/// `OUT.manifest.json` beside `OUT`.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

pub const TOOL_VERSION: &str = concat!("celltext ", env!("CARGO_PKG_VERSION"));

/// The `.npy` v1.0 header of a little-endian f32 C-order `[rows, cols]` array.
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// Write a row-major f32 matrix as `.npy` (v1.0, little-endian, C order).
/// Hand-written: the format is a 10-line header and no maintained crate fits candle-free use.
pub fn write_npy_f32(path: &Path, data: &[f32], rows: usize, cols: usize) -> Result<()> {
    anyhow::ensure!(
        data.len() == rows * cols,
        "internal: matrix data does not match its shape"
    );
    let mut bytes = npy_header(rows, cols);
    bytes.reserve(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    atomic_write(path, &bytes)
}

/// [`write_npy_f32`] from row blocks (`next_block` returns whole rows, `None` at the end), never
/// holding the matrix: the same bytes, for outputs larger than memory.
pub fn write_npy_f32_blocks(
    path: &Path,
    rows: usize,
    cols: usize,
    next_block: &mut dyn FnMut() -> Result<Option<Vec<f32>>>,
) -> Result<()> {
    atomic_write_with(path, |tmp| {
        let f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let io = |e: std::io::Error| anyhow::anyhow!("{}: write failed: {e}", tmp.display());
        w.write_all(&npy_header(rows, cols)).map_err(io)?;
        let mut written = 0usize;
        let mut buf = Vec::new();
        while let Some(block) = next_block()? {
            written += block.len();
            anyhow::ensure!(
                written <= rows * cols,
                "internal: more values than a [{rows}, {cols}] matrix"
            );
            buf.clear();
            buf.extend(block.iter().flat_map(|v| v.to_le_bytes()));
            w.write_all(&buf).map_err(io)?;
        }
        anyhow::ensure!(
            written == rows * cols,
            "internal: {written} values for a [{rows}, {cols}] matrix"
        );
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)
    })
}

/// Parses the start of a `.npy` file: (rows, cols, offset of the data). `head` must hold the
/// whole header (the caller reads enough bytes; see [`npy_header_len`]).
fn parse_npy_header(path: &Path, head: &[u8]) -> Result<(usize, usize, usize)> {
    let (hlen, start) = npy_header_len(path, head)?;
    anyhow::ensure!(
        head.len() >= start + hlen,
        "{}: truncated .npy header",
        path.display()
    );
    let header =
        std::str::from_utf8(&head[start..start + hlen]).context("npy header is not UTF-8")?;
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
    Ok((rows, cols, start + hlen))
}

/// (header length, header start) from the first 12 bytes of a `.npy` file.
fn npy_header_len(path: &Path, head: &[u8]) -> Result<(usize, usize)> {
    anyhow::ensure!(
        head.len() >= 10 && &head[..6] == b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    if head[6] == 1 {
        return Ok((u16::from_le_bytes([head[8], head[9]]) as usize, 10));
    }
    anyhow::ensure!(
        head.len() >= 12,
        "{}: truncated .npy header",
        path.display()
    );
    Ok((
        u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        12,
    ))
}

/// Read a 2-D little-endian f32 `.npy` (C order) as (data, rows, cols).
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    crate::outputs::require_regular_file(path, "a .npy file")?;
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (rows, cols, start) = parse_npy_header(path, &bytes)?;
    let body = &bytes[start..];
    anyhow::ensure!(
        body.len() == rows * cols * 4,
        "{}: data size does not match shape ({rows}, {cols})",
        path.display()
    );
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((data, rows, cols))
}

/// A 2-D f32 `.npy` read a block of rows at a time (merge streams shards larger than memory).
pub struct NpyRows {
    path: PathBuf,
    file: std::io::BufReader<std::fs::File>,
    pub rows: usize,
    pub cols: usize,
    left: usize,
}

impl NpyRows {
    /// Opens `path` and checks its header and its size against the shape.
    pub fn open(path: &Path) -> Result<Self> {
        use std::io::Seek;
        crate::outputs::require_regular_file(path, "a .npy file")?;
        let mut f = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let size = f
            .metadata()
            .with_context(|| format!("{}: cannot read", path.display()))?
            .len();
        let mut head = vec![0u8; 12.min(size as usize)];
        f.read_exact(&mut head)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let (hlen, start) = npy_header_len(path, &head)?;
        let mut full = vec![0u8; start + hlen];
        f.rewind()
            .and_then(|_| f.read_exact(&mut full))
            .with_context(|| format!("{}: truncated .npy header", path.display()))?;
        let (rows, cols, data_start) = parse_npy_header(path, &full)?;
        anyhow::ensure!(
            size == (data_start + rows * cols * 4) as u64,
            "{}: data size does not match shape ({rows}, {cols})",
            path.display()
        );
        Ok(Self {
            path: path.to_path_buf(),
            file: std::io::BufReader::with_capacity(1 << 20, f),
            rows,
            cols,
            left: rows,
        })
    }

    /// The next (at most) `max_rows` rows, row-major; `None` when every row has been read.
    pub fn next_rows(&mut self, max_rows: usize) -> Result<Option<Vec<f32>>> {
        if self.left == 0 {
            return Ok(None);
        }
        let r = self.left.min(max_rows.max(1));
        let mut bytes = vec![0u8; r * self.cols * 4];
        self.file
            .read_exact(&mut bytes)
            .with_context(|| format!("{}: read failed", self.path.display()))?;
        self.left -= r;
        Ok(Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }
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

/// [`write_embeddings`] from row blocks (as [`write_npy_f32_blocks`] takes them): `.npy`
/// streamed, `.safetensors` (with the ids) assembled in memory.
pub fn write_embeddings_blocks(
    path: &Path,
    ids: &[String],
    dim: usize,
    blocks: &mut dyn FnMut() -> Result<Option<Vec<f32>>>,
) -> Result<()> {
    let npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if npy {
        write_npy_f32_blocks(path, ids.len(), dim, blocks)
    } else {
        write_embeddings(path, &collect_blocks(blocks)?, ids.len(), dim, Some(ids))
    }
}

/// Every row block, concatenated (for the outputs that are written from memory).
pub fn collect_blocks(blocks: &mut dyn FnMut() -> Result<Option<Vec<f32>>>) -> Result<Vec<f32>> {
    let mut data = vec![];
    while let Some(b) = blocks()? {
        data.extend(b);
    }
    Ok(data)
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

/// Write tensors as a safetensors file through [`atomic_write_with`], streamed (header, then each
/// tensor's bytes in order) into celltext's own temp file: `safetensors::serialize_to_file`
/// writes through a second temp file of its own, which a kill would leave behind unnamed.
pub fn write_safetensors<V: safetensors::View>(
    path: &Path,
    tensors: &[(String, V)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata {
        let m: serde_json::Map<String, serde_json::Value> =
            m.into_iter().map(|(k, v)| (k, v.into())).collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let n = t.data_len();
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": t.dtype().to_string(),
                "shape": t.shape(),
                "data_offsets": [offset, offset + n],
            }),
        );
        offset += n;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    h.resize(h.len().div_ceil(8) * 8, b' ');
    atomic_write_with(path, |tmp| {
        let f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let io = |e: std::io::Error| anyhow::anyhow!("{}: write failed: {e}", tmp.display());
        w.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
        w.write_all(&h).map_err(io)?;
        for (_, t) in tensors {
            w.write_all(&t.data()).map_err(io)?;
        }
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)
    })
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
    fn npy_blocks_write_the_same_bytes_and_read_back_in_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, streamed) = (dir.path().join("w.npy"), dir.path().join("s.npy"));
        let data: Vec<f32> = (0..7 * 3).map(|i| (i as f32).sin()).collect();
        write_npy_f32(&whole, &data, 7, 3).unwrap();
        let mut blocks = data.chunks(2 * 3).map(|b| b.to_vec());
        write_npy_f32_blocks(&streamed, 7, 3, &mut || Ok(blocks.next())).unwrap();
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&streamed).unwrap()
        );
        let mut r = NpyRows::open(&streamed).unwrap();
        assert_eq!((r.rows, r.cols), (7, 3));
        let mut back = vec![];
        let mut sizes = vec![];
        while let Some(b) = r.next_rows(3).unwrap() {
            sizes.push(b.len() / 3);
            back.extend(b);
        }
        assert_eq!((back, sizes), (data.clone(), vec![3, 3, 1]));
        // too few or too many values: refused, nothing written
        let short = dir.path().join("short.npy");
        let mut one = std::iter::once(data[..3].to_vec());
        assert!(write_npy_f32_blocks(&short, 7, 3, &mut || Ok(one.next())).is_err());
        assert!(!short.exists());
        // a truncated file is refused on open, naming it
        let bytes = std::fs::read(&whole).unwrap();
        std::fs::write(&short, &bytes[..bytes.len() - 4]).unwrap();
        let e = NpyRows::open(&short).err().unwrap().to_string();
        assert!(
            e.contains("short.npy") && e.contains("does not match"),
            "{e}"
        );
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
