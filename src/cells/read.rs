//! Format dispatch and the streaming `MatrixSource` interface.
//!
//! Supported inputs (see [`open_matrix`]):
//! - `.h5ad` (AnnData ≥ 0.8 encoding; 0.7-style CSR/CSC groups and `__categories` are read too):
//!   X dense / CSR / CSC, `layers/<name>`, `raw/X`. CSR and dense X are read row-slice by
//!   row-slice (HDF5 hyperslabs), so memory is bounded by the chunk. CSC is column-major:
//!   row access needs every column, so it is converted to CSR in memory once, on the first read.
//! - 10x MTX directories (`matrix.mtx[.gz]` genes × cells + `features.tsv[.gz]` / `genes.tsv[.gz]`
//!   + `barcodes.tsv[.gz]`), transposed to cells × genes.
//! - The shared-data layout (`matrix.mtx.gz` cells × genes + `genes.tsv` + `cells.tsv` with header).
//! - Dense CSV/TSV (optionally gzipped): first column cell ids, header row = genes.
//!
//! MatrixMarket coordinate files are not row-sorted in general, so the MTX reader makes two
//! streaming passes (count non-zeros per cell, then fill) and holds the matrix as CSR
//! (≈ 8 bytes × nnz); dense text files are parsed once and kept as CSR (only non-zeros).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::matrix::{CsrMatrix, ExpressionMatrix, ObsColumn};

/// How to read an input.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// h5ad only: read `layers/<name>` instead of `X`.
    pub layer: Option<String>,
    /// h5ad only: read `raw/X` with the `raw/var` gene index.
    pub raw: bool,
    /// Gene symbols from this var column (h5ad; e.g. CELLxGENE's `feature_name`) instead of the
    /// var index. For 10x directories `gene_ids`/`id` selects the first features.tsv column.
    pub gene_symbols_key: Option<String>,
    /// Rows per chunk for [`read_matrix`]; 0 means the default (4096).
    pub chunk_rows: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { layer: None, raw: false, gene_symbols_key: None, chunk_rows: DEFAULT_CHUNK_ROWS }
    }
}

pub const DEFAULT_CHUNK_ROWS: usize = 4096;

/// An opened expression matrix: metadata up front, rows (cells) on demand.
pub trait MatrixSource {
    fn n_cells(&self) -> usize;
    fn genes(&self) -> &[String];
    fn cell_ids(&self) -> &[String];
    /// obs columns in file order (the cell-id column / obs index is not included).
    fn obs(&self) -> &[(String, ObsColumn)];
    /// Rows `start..end` as a CSR matrix with `end - start` rows and `genes().len()` columns.
    fn read_rows(&mut self, start: usize, end: usize) -> Result<CsrMatrix>;
    /// The file or directory this source reads, for messages.
    fn path(&self) -> Option<&Path> {
        None
    }
    /// Which matrix inside the file (`X`, `layers/counts`, `raw/X`, `matrix.mtx.gz` ...).
    fn field(&self) -> String {
        "matrix".to_string()
    }
    /// An obs column by name; the error lists the available columns.
    fn obs_column(&self, name: &str) -> Result<&ObsColumn> {
        find_obs_column(self.obs(), name, self.path())
    }
}

/// Look up an obs column; a missing one is an error naming the file and listing what exists.
pub fn find_obs_column<'a>(
    obs: &'a [(String, ObsColumn)],
    name: &str,
    path: Option<&Path>,
) -> Result<&'a ObsColumn> {
    if let Some((_, c)) = obs.iter().find(|(n, _)| n == name) {
        return Ok(c);
    }
    let avail: Vec<&str> = obs.iter().map(|(n, _)| n.as_str()).collect();
    let file = path.map(|p| format!("{}: ", p.display())).unwrap_or_default();
    let hint = obs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| format!(" (did you mean '{n}'? names are case-sensitive)"))
        .unwrap_or_default();
    if avail.is_empty() {
        bail!("{file}obs column '{name}' not found: this input has no obs (cell annotation) columns{hint}")
    }
    bail!("{file}obs column '{name}' not found{hint}; available columns: {}", avail.join(", "))
}

fn check_range(src: &dyn MatrixSource, start: usize, end: usize) -> Result<()> {
    if start > end || end > src.n_cells() {
        bail!(
            "{}: row range {start}..{end} is outside 0..{} cells",
            src.path().map(|p| p.display().to_string()).unwrap_or_else(|| "matrix".into()),
            src.n_cells()
        )
    }
    Ok(())
}

/// Kinds of input [`open_matrix`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    H5ad,
    /// cells × genes `matrix.mtx[.gz]` + `genes.tsv` + `cells.tsv` (header).
    SharedMtx,
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
            return Ok((InputKind::SharedMtx, path.to_path_buf()));
        }
        if has_mtx && (has("barcodes.tsv") || has("barcodes.tsv.gz")) {
            return Ok((InputKind::TenxMtx, path.to_path_buf()));
        }
        let mut listing: Vec<String> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        listing.sort();
        bail!(
            "{}: directory is not a recognised matrix layout (found: {}). Expected either \
             matrix.mtx[.gz] + genes.tsv + cells.tsv (cells × genes) or a 10x directory with \
             matrix.mtx[.gz] + features.tsv[.gz] (or genes.tsv) + barcodes.tsv[.gz]",
            path.display(),
            if listing.is_empty() { "nothing".to_string() } else { listing.join(", ") }
        )
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let magic = read_magic(path)?;
    if magic.starts_with(b"\x89HDF\r\n\x1a\n") || name.ends_with(".h5ad") {
        return Ok((InputKind::H5ad, path.to_path_buf()));
    }
    if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        return detect_kind(&dir).with_context(|| format!("{}: looking for the files beside it", path.display()));
    }
    let stem = name.trim_end_matches(".gz");
    if stem.ends_with(".csv") || stem.ends_with(".tsv") || stem.ends_with(".txt") || stem.ends_with(".tab") {
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
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..]).with_context(|| format!("{}: cannot read", path.display()))?;
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
    match kind {
        InputKind::H5ad => open_h5ad(&p, opts),
        InputKind::SharedMtx => Ok(Box::new(super::mtx::MtxSource::open_shared(&p, opts)?)),
        InputKind::TenxMtx => Ok(Box::new(super::mtx::MtxSource::open_10x(&p, opts)?)),
        InputKind::DenseText => Ok(Box::new(super::dense::DenseSource::open(&p)?)),
    }
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

/// Drain a source into an in-memory [`ExpressionMatrix`].
pub fn read_all(src: &mut dyn MatrixSource, chunk_rows: usize) -> Result<ExpressionMatrix> {
    let chunk = if chunk_rows == 0 { DEFAULT_CHUNK_ROWS } else { chunk_rows };
    let n = src.n_cells();
    let n_cols = src.genes().len();
    let mut out = CsrMatrix { n_rows: 0, n_cols, indptr: vec![0], indices: Vec::new(), data: Vec::new() };
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let part = src.read_rows(start, end)?;
        append_rows(&mut out, &part)?;
        start = end;
    }
    Ok(ExpressionMatrix {
        x: out,
        cell_ids: src.cell_ids().to_vec(),
        genes: src.genes().to_vec(),
        obs: src.obs().to_vec(),
    })
}

/// Append `part`'s rows to `out` (same column count).
pub fn append_rows(out: &mut CsrMatrix, part: &CsrMatrix) -> Result<()> {
    if part.n_cols != out.n_cols {
        bail!("internal: chunk has {} columns, expected {}", part.n_cols, out.n_cols)
    }
    let base = out.data.len();
    out.indices.extend_from_slice(&part.indices);
    out.data.extend_from_slice(&part.data);
    out.indptr.extend(part.indptr[1..].iter().map(|&p| p + base));
    out.n_rows += part.n_rows;
    Ok(())
}

/// Rows `start..end` of an in-memory CSR matrix.
pub fn slice_rows(m: &CsrMatrix, start: usize, end: usize) -> CsrMatrix {
    let (a, b) = (m.indptr[start], m.indptr[end]);
    CsrMatrix {
        n_rows: end - start,
        n_cols: m.n_cols,
        indptr: m.indptr[start..=end].iter().map(|&p| p - a).collect(),
        indices: m.indices[a..b].to_vec(),
        data: m.data[a..b].to_vec(),
    }
}

/// An in-memory source (used by the MTX and dense readers, and handy in tests).
pub struct MemorySource {
    pub path: Option<PathBuf>,
    pub field: String,
    pub m: ExpressionMatrix,
}

impl MatrixSource for MemorySource {
    fn n_cells(&self) -> usize {
        self.m.x.n_rows
    }
    fn genes(&self) -> &[String] {
        &self.m.genes
    }
    fn cell_ids(&self) -> &[String] {
        &self.m.cell_ids
    }
    fn obs(&self) -> &[(String, ObsColumn)] {
        &self.m.obs
    }
    fn read_rows(&mut self, start: usize, end: usize) -> Result<CsrMatrix> {
        check_range(self, start, end)?;
        Ok(slice_rows(&self.m.x, start, end))
    }
    fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    fn field(&self) -> String {
        self.field.clone()
    }
}

pub(crate) fn check_rows(src: &dyn MatrixSource, start: usize, end: usize) -> Result<()> {
    check_range(src, start, end)
}

// ---------------------------------------------------------------- validation helpers

/// Error if any gene name repeats; names the duplicates and how to fix it.
pub fn check_unique_genes(genes: &[String], file: &Path, field: &str) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(genes.len());
    let mut dups: Vec<&str> = Vec::new();
    for g in genes {
        let c = seen.entry(g.as_str()).or_insert(0);
        *c += 1;
        if *c == 2 {
            dups.push(g.as_str());
        }
    }
    if dups.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = dups.iter().take(10).map(|d| format!("'{d}' ×{}", seen[d])).collect();
    let more = if dups.len() > 10 { format!(" and {} more", dups.len() - 10) } else { String::new() };
    bail!(
        "{}: {field}: {} duplicate gene names: {}{more}. Gene names must be unique: pick a column of \
         unique names with --gene-symbols-key (an h5ad var column such as feature_name or gene_ids, a \
         named genes.tsv column, or gene_ids for a 10x features file), or \
         make them unique first (e.g. anndata's var_names_make_unique, which appends -1, -2 ...)",
        file.display(),
        dups.len(),
        shown.join(", ")
    )
}

/// The fix to suggest for bad values.
pub const VALUE_FIX: &str = "celltext needs non-negative, finite expression values (raw counts or \
log-normalized counts). If this matrix is scaled/centered (e.g. after sc.pp.scale), point celltext at \
the counts instead (--layer counts, or --raw for an h5ad with .raw); replace NaN/inf with 0 or drop \
those cells/genes before running";

/// Error on a negative, NaN or infinite value. `row0` is the absolute index of the first row.
pub fn check_values(
    m: &CsrMatrix,
    row0: usize,
    file: &Path,
    field: &str,
    cell_ids: &[String],
    genes: &[String],
) -> Result<()> {
    for (k, &v) in m.data.iter().enumerate() {
        if !(v >= 0.0) || v.is_infinite() {
            // locate the row of entry k
            let r = match m.indptr.binary_search(&k) {
                Ok(mut i) => {
                    while i + 1 < m.indptr.len() && m.indptr[i + 1] == k {
                        i += 1;
                    }
                    i
                }
                Err(i) => i - 1,
            };
            let row = row0 + r;
            let col = m.indices.get(k).copied().unwrap_or(0) as usize;
            let what = if v.is_nan() {
                "NaN value".to_string()
            } else if v.is_infinite() {
                format!("infinite value {v}")
            } else {
                format!("negative value {v}")
            };
            bail!(
                "{}: {field}: {what} at cell {row}{} gene {col}{}. {VALUE_FIX}",
                file.display(),
                cell_ids.get(row).map(|c| format!(" ('{c}')")).unwrap_or_default(),
                genes.get(col).map(|g| format!(" ('{g}')")).unwrap_or_default(),
            )
        }
    }
    Ok(())
}

/// Sort column indices within each row (keeping values alongside); error on a repeated column.
pub fn sort_rows_check_dups(m: &mut CsrMatrix, row0: usize, file: &Path, field: &str) -> Result<()> {
    for r in 0..m.n_rows {
        let (a, b) = (m.indptr[r], m.indptr[r + 1]);
        let idx = &m.indices[a..b];
        let sorted = idx.windows(2).all(|w| w[0] < w[1]);
        if sorted {
            continue;
        }
        let mut pairs: Vec<(u32, f32)> = idx.iter().copied().zip(m.data[a..b].iter().copied()).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            bail!(
                "{}: {field}: cell {} has gene column {} stored twice; the sparse matrix is malformed \
                 (duplicate entries). Sum duplicates before saving (scipy: m.sum_duplicates())",
                file.display(),
                row0 + r,
                w[0].0
            )
        }
        for (i, (j, v)) in pairs.into_iter().enumerate() {
            m.indices[a + i] = j;
            m.data[a + i] = v;
        }
    }
    Ok(())
}

/// Parse an obs text column into a typed column: all non-empty values numeric → `Number`
/// (empty / NA → NaN), otherwise `Text`.
pub fn infer_obs_column(values: Vec<String>) -> ObsColumn {
    let is_na = |s: &str| s.is_empty() || s == "NA" || s == "nan" || s == "NaN";
    let mut any = false;
    let mut nums = Vec::with_capacity(values.len());
    for v in &values {
        let t = v.trim();
        if is_na(t) {
            nums.push(f64::NAN);
            continue;
        }
        match t.parse::<f64>() {
            Ok(x) if x.is_finite() => {
                any = true;
                nums.push(x)
            }
            _ => return ObsColumn::Text(values),
        }
    }
    if any {
        ObsColumn::Number(nums)
    } else {
        ObsColumn::Text(values)
    }
}
