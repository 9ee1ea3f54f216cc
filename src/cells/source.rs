//! The streaming `MatrixSource` interface every reader implements, the in-memory source the text
//! readers (MTX, dense tables) return, and the checks all readers apply to what they read, so that
//! a bad gene list or value is reported the same way whatever the input format.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::matrix::{
    append_rows, find_obs_column, CsrMatrix, CsrView, ExpressionMatrix, ObsColumn,
};

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
    /// Rows per chunk when a whole matrix is read (`read::read_matrix`); 0 means the default (4096).
    pub chunk_rows: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            layer: None,
            raw: false,
            gene_symbols_key: None,
            chunk_rows: DEFAULT_CHUNK_ROWS,
        }
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

/// Error unless `start..end` is a valid row range of `src`.
pub(crate) fn check_rows(src: &dyn MatrixSource, start: usize, end: usize) -> Result<()> {
    if start > end || end > src.n_cells() {
        bail!(
            "{}: row range {start}..{end} is outside 0..{} cells",
            src.path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "matrix".into()),
            src.n_cells()
        )
    }
    Ok(())
}

/// Read rows `rows` of `src` in consecutive chunks of at most `chunk_rows` rows (0: the default),
/// calling `f(chunk)` on each in order: the one chunked read loop, so memory stays one chunk.
pub fn for_each_chunk(
    src: &mut dyn MatrixSource,
    rows: std::ops::Range<usize>,
    chunk_rows: usize,
    mut f: impl FnMut(CsrMatrix) -> Result<()>,
) -> Result<()> {
    let chunk = if chunk_rows == 0 {
        DEFAULT_CHUNK_ROWS
    } else {
        chunk_rows
    };
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + chunk).min(rows.end);
        f(src.read_rows(start, end)?)?;
        start = end;
    }
    Ok(())
}

/// An empty CSR matrix of `n_cols` columns, to [`append_rows`] to.
pub fn empty_rows(n_cols: usize) -> CsrMatrix {
    CsrMatrix {
        n_rows: 0,
        n_cols,
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
    }
}

/// Drain a source into an in-memory [`ExpressionMatrix`], `chunk_rows` rows at a time (0: the default).
pub fn read_all(src: &mut dyn MatrixSource, chunk_rows: usize) -> Result<ExpressionMatrix> {
    let mut out = empty_rows(src.genes().len());
    let n = src.n_cells();
    for_each_chunk(src, 0..n, chunk_rows, |part| append_rows(&mut out, &part))?;
    if let Some(p) = src.path() {
        check_not_all_zero(&out, p, &src.field())?;
    }
    Ok(ExpressionMatrix {
        x: out,
        cell_ids: src.cell_ids().to_vec(),
        genes: src.genes().to_vec(),
        obs: src.obs().to_vec(),
    })
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

/// An in-memory source (what the MTX and dense readers return, and handy in tests).
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
        check_rows(self, start, end)?;
        Ok(slice_rows(&self.m.x, start, end))
    }
    fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    fn field(&self) -> String {
        self.field.clone()
    }
}

// ---------------------------------------------------------------- validation helpers

/// Error if any cell id repeats (anndata only warns and keeps them; celltext refuses, since
/// outputs, shards and classify splits are keyed by cell id). Names the duplicates and the fix.
pub fn check_unique_cells(ids: &[String], file: &Path, field: &str) -> Result<()> {
    let Some((n, shown)) = duplicates(ids) else {
        return Ok(());
    };
    bail!(
        "{}: {field}: {n} duplicate cell ids: {shown}. Cell ids must be unique (outputs and shards \
         are keyed by them): make them unique first (e.g. anndata's obs_names_make_unique, which \
         appends -1, -2 ...)",
        file.display(),
    )
}

/// The names that repeat in `names`, in first-repeat order: how many, and the first ten as
/// `'NAME' ×COUNT, …` (then `and N more`); None when all are unique.
fn duplicates(names: &[String]) -> Option<(usize, String)> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    let mut dups: Vec<&str> = Vec::new();
    for name in names {
        let n = seen.entry(name.as_str()).or_insert(0);
        *n += 1;
        if *n == 2 {
            dups.push(name.as_str());
        }
    }
    if dups.is_empty() {
        return None;
    }
    let shown: Vec<String> = dups
        .iter()
        .take(10)
        .map(|d| format!("'{d}' ×{}", seen[d]))
        .collect();
    let more = if dups.len() > 10 {
        format!(" and {} more", dups.len() - 10)
    } else {
        String::new()
    };
    Some((dups.len(), format!("{}{more}", shown.join(", "))))
}

/// Error if every expression value of `x` is 0: nothing can be ranked, weighted or normalized.
pub fn check_not_all_zero(x: &CsrMatrix, file: &Path, field: &str) -> Result<()> {
    if x.n_rows > 0 && x.data.iter().all(|&v| v == 0.0) {
        bail!(
            "{}: {field}: every expression value is 0 ({} cells × {} genes), so there is nothing \
             to rank or embed; point celltext at the counts (--layer NAME; or --raw for an h5ad \
             with .raw, in `cells` and `scilama` commands) or check the file",
            file.display(),
            x.n_rows,
            x.n_cols
        );
    }
    Ok(())
}

/// Error if any gene name repeats; names the duplicates and how to fix it.
pub fn check_unique_genes(genes: &[String], file: &Path, field: &str) -> Result<()> {
    let Some((n, shown)) = duplicates(genes) else {
        return Ok(());
    };
    bail!(
        "{}: {field}: {n} duplicate gene names: {shown}. Gene names must be unique: make them \
         unique in the file (e.g. anndata's var_names_make_unique, which appends -1, -2 ...), or, \
         in `cells`, `explain` and `scilama` commands, read a column of unique names with \
         --gene-symbols-key (an h5ad var column such as feature_name or gene_ids, a named \
         genes.tsv column, or gene_ids for a 10x features file); `classify` and \
         `genes coverage` always read the var index",
        file.display(),
    )
}

/// The fix to suggest for bad values.
pub const VALUE_FIX: &str = "celltext needs non-negative, finite expression values (raw counts or \
log-normalized counts). If this matrix is scaled/centered (e.g. after sc.pp.scale), point celltext at \
the counts instead (--layer counts, or --raw for an h5ad with .raw where the command takes it: \
`cells` and `scilama`); replace NaN/inf with 0 or drop those cells/genes before running";

/// `None` for a usable expression value (finite, ≥ 0); otherwise what is wrong with it, for the
/// message. `nan_name` names a NaN (text tables also read empty / NA cells as NaN).
#[inline]
pub fn value_problem(v: f32, nan_name: &str) -> Option<String> {
    if v >= 0.0 && v.is_finite() {
        return None;
    }
    Some(if v.is_nan() {
        nan_name.to_string()
    } else if v.is_infinite() {
        format!("infinite value {v}")
    } else {
        format!("negative value {v}")
    })
}

/// Error on a negative, NaN or infinite value. `row0` is the absolute index of the first row.
pub fn check_values(
    m: &CsrMatrix,
    row0: usize,
    file: &Path,
    field: &str,
    cell_ids: &[String],
    genes: &[String],
) -> Result<()> {
    check_values_view(&m.view(), row0, file, field, cell_ids, genes)
}

/// [`check_values`] of a borrowed matrix.
pub fn check_values_view(
    m: &CsrView,
    row0: usize,
    file: &Path,
    field: &str,
    cell_ids: &[String],
    genes: &[String],
) -> Result<()> {
    for (k, &v) in m.data.iter().enumerate() {
        if let Some(what) = value_problem(v, "NaN value") {
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
            bail!(
                "{}: {field}: {what} at cell {row}{} gene {col}{}. {VALUE_FIX}",
                file.display(),
                cell_ids
                    .get(row)
                    .map(|c| format!(" ('{c}')"))
                    .unwrap_or_default(),
                genes
                    .get(col)
                    .map(|g| format!(" ('{g}')"))
                    .unwrap_or_default(),
            )
        }
    }
    Ok(())
}

/// Sort column indices within each row (keeping values alongside); error on a repeated column.
pub fn sort_rows_check_dups(
    m: &mut CsrMatrix,
    row0: usize,
    file: &Path,
    field: &str,
) -> Result<()> {
    for r in 0..m.n_rows {
        let (a, b) = (m.indptr[r], m.indptr[r + 1]);
        let idx = &m.indices[a..b];
        let sorted = idx.windows(2).all(|w| w[0] < w[1]);
        if sorted {
            continue;
        }
        let mut pairs: Vec<(u32, f32)> = idx
            .iter()
            .copied()
            .zip(m.data[a..b].iter().copied())
            .collect();
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
