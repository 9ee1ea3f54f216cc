//! AnnData `.h5ad` reader (streaming by rows) and writers (add obsm/obs/uns; fresh files).
//!
//! Reading follows the AnnData on-disk specification (anndata ≥ 0.8: every element carries
//! `encoding-type` / `encoding-version` attributes):
//! - matrix: `X`, `layers/<name>` or `raw/X`; a 2-D dataset (`array`), or a group with
//!   `data`/`indices`/`indptr` and a `shape` attribute (`csr_matrix` / `csc_matrix`). Groups
//!   written by anndata 0.7 (`h5sparse_format` / `h5sparse_shape` attributes) are accepted too.
//!   Values of any integer or float dtype are converted to f32 by HDF5.
//! - CSR and dense matrices are read by hyperslab: `read_rows(a, b)` touches only
//!   `indptr[a..=b]` and the matching `indices`/`data` slice (dense: rows `a..b`, in blocks of at
//!   most ~64 MiB), so memory is bounded by the chunk. CSC is column-major, so the first
//!   `read_rows` converts the whole matrix to CSR in memory (≈ 8 bytes × nnz) and slices that.
//! - dataframes (`obs`, `var`, `raw/var`): index from the `_index` attribute; columns in
//!   `column-order`; `categorical` (codes + categories; code −1 = missing → ""), `string-array`,
//!   numeric/bool arrays, `nullable-integer`/`nullable-boolean` (masked → NaN) and
//!   `nullable-string-array` (masked → ""). anndata 0.7 categoricals (`__categories/<col>`) are read;
//!   columns of other encodings are skipped.
//! - Files from anndata < 0.7 (obs/var stored as HDF5 compound datasets) are rejected with a message
//!   saying how to re-save them.
//!
//! Writing produces what anndata 0.12 reads (checked by `tests/cells_io.rs` with Python anndata):
//! dense f32 `obsm/<key>` (`array` 0.2.0), obs columns as `string-array` 0.2.0 (UTF-8 vlen) or f64
//! `array` 0.2.0, `uns/<key>` as a `string` 0.2.0 scalar; groups as `dict` 0.1.0.
//! All writes go to a temp file next to the output, renamed into place when complete.
//!
//! Files: `attrs` (low-level typed HDF5 reads), `frame` (dataframes), `read` (the streaming
//! matrix source), `write` (writers); this file holds the small readers of celltext's own outputs.

mod attrs;
mod frame;
mod heap;
mod read;
mod write;

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use hdf5::File;

use crate::cells::matrix::ObsColumn;
use attrs::{h5err, read_strings};
use frame::{read_frame_columns, read_frame_meta};

pub use read::H5adSource;
pub use write::{
    write_h5ad_with_obsm, write_h5ad_with_obsm_blocks, write_new_h5ad, NewH5ad, ObsmEntry,
};

/// Open an h5ad that may be corrupt: [`heap::check_global_heaps`] first (HDF5 would loop forever
/// on one kind of corrupt string storage), then HDF5.
pub(crate) fn open_untrusted(path: &Path) -> Result<File> {
    heap::check_global_heaps(path)?;
    File::open(path).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", path.display()))
}

// ====================================================================== small readers for outputs

/// The `obsm` keys of an h5ad file, sorted; empty when it has no `obsm` group.
pub fn obsm_keys(path: &Path) -> Result<Vec<String>> {
    let f = open_untrusted(path)?;
    if !f.link_exists("obsm") {
        return Ok(Vec::new());
    }
    let g = f.group("obsm").map_err(|e| h5err(path, "obsm", e))?;
    let mut keys = g.member_names().map_err(|e| h5err(path, "obsm", e))?;
    keys.sort();
    Ok(keys)
}

/// `obsm/<key>` as row-major f32 values and its dimension.
pub fn read_obsm(path: &Path, key: &str) -> Result<(Vec<f32>, usize)> {
    let f = open_untrusted(path)?;
    let g = f.group("obsm").map_err(|e| h5err(path, "obsm", e))?;
    if !g.link_exists(key) {
        let avail = g.member_names().unwrap_or_default();
        bail!(
            "{}: obsm/{key} not found; available: {}",
            path.display(),
            avail.join(", ")
        )
    }
    let ds = g
        .dataset(key)
        .map_err(|e| h5err(path, &format!("obsm/{key}"), e))?;
    let sh = ds.shape();
    if sh.len() != 2 {
        bail!(
            "{}: obsm/{key}: expected a 2-D array, found shape {sh:?}",
            path.display()
        )
    }
    let wide = matches!(
        ds.dtype().and_then(|t| t.to_descriptor()),
        Ok(hdf5::types::TypeDescriptor::Float(
            hdf5::types::FloatSize::U8
        ))
    );
    if !wide {
        let v = ds
            .read_raw::<f32>()
            .map_err(|e| h5err(path, &format!("obsm/{key}"), e))?;
        return Ok((v, sh[1]));
    }
    // float64: HDF5's conversion would turn a finite value beyond f32's range into ±inf, and the
    // error would then name an inf the file does not hold; name the value as stored instead.
    let v = ds
        .read_raw::<f64>()
        .map_err(|e| h5err(path, &format!("obsm/{key}"), e))?;
    narrow_f64(&v, sh[1], path, &format!("obsm/{key}")).map(|v| (v, sh[1]))
}

/// f64 values as f32; a finite value whose magnitude f32 cannot hold is an error naming it.
fn narrow_f64(v: &[f64], dim: usize, path: &Path, field: &str) -> Result<Vec<f32>> {
    if let Some(i) = v
        .iter()
        .position(|x| x.is_finite() && x.abs() > f32::MAX as f64)
    {
        bail!(
            "{}: {field}: value {:e} at cell {}, column {} is beyond float32's range (±{:e}), \
             which celltext computes in; rescale this embedding (e.g. divide it by its largest \
             absolute value) or write it as float32",
            path.display(),
            v[i],
            i / dim.max(1),
            i % dim.max(1),
            f32::MAX
        );
    }
    Ok(v.iter().map(|&x| x as f32).collect())
}

/// `uns/<key>` as a string (a scalar string dataset).
pub fn read_uns_string(path: &Path, key: &str) -> Result<String> {
    let f = open_untrusted(path)?;
    let ds = f
        .dataset(&format!("uns/{key}"))
        .map_err(|e| h5err(path, &format!("uns/{key}"), e))?;
    read_strings(&ds)
        .map_err(|e| h5err(path, &format!("uns/{key}"), e))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{}: uns/{key} is empty", path.display()))
}

/// The obs index (cell ids) and obs columns of an AnnData file, without touching X.
pub fn read_h5ad_obs(path: &Path) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
    let f = open_untrusted(path)?;
    let (g, fr) = read_frame_meta(path, &f, "obs")?;
    let cols = read_frame_columns(path, &g, &fr, "obs")?;
    Ok((fr.index, cols))
}
