//! Input-kind detection and dispatch: which reader opens a path, and reading a whole matrix.
//!
//! Supported inputs (see [`open_matrix`]):
//! - `.h5ad` (AnnData ≥ 0.8 encoding; 0.7-style CSR/CSC groups and `__categories` are read too):
//!   X dense / CSR / CSC, `layers/<name>`, `raw/X`. CSR and dense X are read row-slice by
//!   row-slice (HDF5 hyperslabs), so memory is bounded by the chunk. CSC is column-major:
//!   row access needs every column, so it is converted to CSR in memory once, on the first read.
//! - 10x MTX directories (`matrix.mtx[.gz]` genes × cells + `features.tsv[.gz]` / `genes.tsv[.gz]`
//!   + `barcodes.tsv[.gz]`), transposed to cells × genes.
//! - Cells × genes MTX directories (`matrix.mtx[.gz]` cells × genes + `genes.tsv` + `cells.tsv` with header).
//! - Dense CSV/TSV (optionally gzipped): first column cell ids, header row = genes.
//!
//! MatrixMarket coordinate files are not row-sorted in general, so the MTX reader makes two
//! streaming passes (count non-zeros per cell, then fill) and holds the matrix as CSR
//! (≈ 8 bytes × nnz); dense text files are parsed once and kept as CSR (only non-zeros).
//!
//! The source interface and the shared checks live in `source`; this module re-exports them so
//! callers keep one import path for reading.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::matrix::ExpressionMatrix;
pub use super::matrix::{append_rows, find_obs_column, infer_obs_column};
pub use super::source::{
    check_unique_genes, check_values, read_all, slice_rows, sort_rows_check_dups, MatrixSource,
    MemorySource, ReadOptions, DEFAULT_CHUNK_ROWS, VALUE_FIX,
};
use super::text::explain_corrupt_gzip;

/// Kinds of input [`open_matrix`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    H5ad,
    /// cells × genes `matrix.mtx[.gz]` + `genes.tsv` + `cells.tsv` (header).
    MtxCellsByGenes,
    /// genes × cells 10x `matrix.mtx[.gz]` + `features.tsv[.gz]`/`genes.tsv[.gz]` + `barcodes.tsv[.gz]`.
    TenxMtx,
    DenseText,
}

/// Work out what kind of input `path` is (by directory contents, extension and magic bytes).
pub fn detect_kind(path: &Path) -> Result<(InputKind, PathBuf)> {
    if !path.exists() {
        bail!("{}: no such file or directory", path.display())
    }
    if path.is_dir() {
        let has = |n: &str| path.join(n).is_file();
        let has_mtx = has("matrix.mtx") || has("matrix.mtx.gz");
        if has_mtx && has("cells.tsv") {
            return Ok((InputKind::MtxCellsByGenes, path.to_path_buf()));
        }
        if has_mtx && (has("barcodes.tsv") || has("barcodes.tsv.gz")) {
            return Ok((InputKind::TenxMtx, path.to_path_buf()));
        }
        let mut listing: Vec<String> = std::fs::read_dir(path)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        listing.sort();
        bail!(
            "{}: directory is not a recognised matrix layout (found: {}). Expected either \
             matrix.mtx[.gz] + genes.tsv + cells.tsv (cells × genes) or a 10x directory with \
             matrix.mtx[.gz] + features.tsv[.gz] (or genes.tsv) + barcodes.tsv[.gz]",
            path.display(),
            if listing.is_empty() {
                "nothing".to_string()
            } else {
                listing.join(", ")
            }
        )
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    // a FIFO would block the read below forever
    crate::outputs::require_regular_file(path, "an expression matrix file")?;
    let magic = read_magic(path)?;
    if magic.starts_with(b"\x89HDF\r\n\x1a\n") || name.ends_with(".h5ad") {
        return Ok((InputKind::H5ad, path.to_path_buf()));
    }
    if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        return detect_kind(&dir)
            .with_context(|| format!("{}: looking for the files beside it", path.display()));
    }
    let stem = name.trim_end_matches(".gz");
    if stem.ends_with(".csv")
        || stem.ends_with(".tsv")
        || stem.ends_with(".txt")
        || stem.ends_with(".tab")
    {
        return Ok((InputKind::DenseText, path.to_path_buf()));
    }
    bail!(
        "{}: unrecognised input format; celltext reads .h5ad, 10x/MatrixMarket directories, \
         matrix.mtx[.gz] files and dense .csv/.tsv[.gz] tables",
        path.display()
    )
}

fn read_magic(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < buf.len() {
        let k = f
            .read(&mut buf[n..])
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(buf[..n].to_vec())
}

/// Open any supported input, returning metadata now and rows on demand.
pub fn open_matrix(path: &Path, opts: &ReadOptions) -> Result<Box<dyn MatrixSource>> {
    let (kind, p) = detect_kind(path)?;
    if kind != InputKind::H5ad && (opts.layer.is_some() || opts.raw) {
        bail!(
            "{}: --layer / --raw only apply to .h5ad inputs; this input is a {:?}",
            path.display(),
            kind
        )
    }
    let src: Box<dyn MatrixSource> = match kind {
        InputKind::H5ad => open_h5ad(&p, opts)?,
        InputKind::MtxCellsByGenes => Box::new(
            super::mtx::open_cells_by_genes_dir(&p, opts)
                .map_err(|e| explain_corrupt_gzip(&p, e))?,
        ),
        InputKind::TenxMtx => {
            Box::new(super::mtx::open_10x_dir(&p, opts).map_err(|e| explain_corrupt_gzip(&p, e))?)
        }
        InputKind::DenseText => {
            Box::new(super::dense::open_dense_table(&p).map_err(|e| explain_corrupt_gzip(&p, e))?)
        }
    };
    super::source::check_unique_cells(src.cell_ids(), path, "cell ids")?;
    Ok(src)
}

#[cfg(feature = "h5ad")]
fn open_h5ad(path: &Path, opts: &ReadOptions) -> Result<Box<dyn MatrixSource>> {
    Ok(Box::new(super::h5ad::H5adSource::open(path, opts)?))
}

#[cfg(not(feature = "h5ad"))]
fn open_h5ad(path: &Path, _opts: &ReadOptions) -> Result<Box<dyn MatrixSource>> {
    bail!(
        "{}: this celltext was built without the `h5ad` feature (HDF5); rebuild with default \
         features or convert the file to a 10x MTX directory",
        path.display()
    )
}

/// Read a whole matrix, chunk by chunk (`opts.chunk_rows` rows at a time).
pub fn read_matrix(path: &Path, opts: &ReadOptions) -> Result<ExpressionMatrix> {
    let mut src = open_matrix(path, opts)?;
    read_all(src.as_mut(), opts.chunk_rows)
}
