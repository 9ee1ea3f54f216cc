//! In-memory expression matrices: cells × genes, CSR, f32 values, and the obs-column helpers every
//! reader and the classifier share.

use std::path::Path;

use anyhow::{bail, Result};

/// Compressed sparse rows: row `i` holds `indices[indptr[i]..indptr[i+1]]` with `data` alongside.
/// Rows are cells, columns are genes. Column indices within a row are strictly increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl CsrMatrix {
    /// Rows `rows` and columns `cols` of the matrix, in those orders (columns renumbered).
    pub fn select(&self, rows: &[usize], cols: &[usize]) -> CsrMatrix {
        let mut pos = vec![u32::MAX; self.n_cols];
        for (k, &c) in cols.iter().enumerate() {
            pos[c] = k as u32;
        }
        let mut out = CsrMatrix {
            n_rows: rows.len(),
            n_cols: cols.len(),
            indptr: Vec::with_capacity(rows.len() + 1),
            indices: Vec::new(),
            data: Vec::new(),
        };
        out.indptr.push(0);
        let mut row: Vec<(u32, f32)> = Vec::new();
        for &i in rows {
            row.clear();
            row.extend(
                self.row(i)
                    .filter(|&(j, _)| pos[j] != u32::MAX)
                    .map(|(j, v)| (pos[j], v)),
            );
            row.sort_unstable_by_key(|&(k, _)| k);
            for &(k, v) in &row {
                out.indices.push(k);
                out.data.push(v);
            }
            out.indptr.push(out.data.len());
        }
        out
    }

    /// Non-zero (column, value) pairs of one row.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        self.indices[a..b]
            .iter()
            .zip(&self.data[a..b])
            .map(|(&j, &v)| (j as usize, v))
    }
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
    /// A borrowed view of this matrix.
    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: &self.indptr,
            indices: &self.indices,
            data: &self.data,
        }
    }
}

/// A [`CsrMatrix`] over borrowed buffers (e.g. a scipy matrix's arrays, read in place), with the
/// same layout and invariants; the functions that only read a matrix take a view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsrView<'a> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: &'a [usize],
    pub indices: &'a [u32],
    pub data: &'a [f32],
}

impl<'a> CsrView<'a> {
    /// An owned copy (for callers that keep the matrix past the borrowed buffers).
    pub fn to_matrix(&self) -> CsrMatrix {
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.to_vec(),
            indices: self.indices.to_vec(),
            data: self.data.to_vec(),
        }
    }

    /// Non-zero (column, value) pairs of one row.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + 'a {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        self.indices[a..b]
            .iter()
            .zip(&self.data[a..b])
            .map(|(&j, &v)| (j as usize, v))
    }
}

/// Per-cell annotation column (AnnData `obs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ObsColumn {
    Text(Vec<String>),
    Number(Vec<f64>),
}

/// An expression matrix with its row (cell) and column (gene) names and cell annotations.
#[derive(Debug, Clone)]
pub struct ExpressionMatrix {
    pub x: CsrMatrix,
    pub cell_ids: Vec<String>,
    pub genes: Vec<String>,
    /// obs columns in file order.
    pub obs: Vec<(String, ObsColumn)>,
}

impl ObsColumn {
    pub fn len(&self) -> usize {
        match self {
            ObsColumn::Text(v) => v.len(),
            ObsColumn::Number(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values as label strings: text as is; numbers without a trailing `.0` when integral;
    /// NaN (missing) as "".
    pub fn to_labels(&self) -> Vec<String> {
        match self {
            ObsColumn::Text(v) => v.clone(),
            ObsColumn::Number(v) => v
                .iter()
                .map(|&x| {
                    if x.is_nan() {
                        String::new()
                    } else if x.fract() == 0.0 && x.abs() < 1e15 {
                        format!("{}", x as i64)
                    } else {
                        format!("{x}")
                    }
                })
                .collect(),
        }
    }
}

/// A label that records nothing: empty text (a missing categorical or string value as read),
/// or `nan` (a missing value pandas turned into text with `astype(str)`), any case or padding.
pub fn is_missing_label(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("nan")
}

impl ExpressionMatrix {
    /// An obs column by name; the error lists the available columns.
    pub fn obs_column(&self, name: &str) -> Result<&ObsColumn> {
        find_obs_column(&self.obs, name, None)
    }
}

/// Append `part`'s rows to `out` (same column count).
pub fn append_rows(out: &mut CsrMatrix, part: &CsrMatrix) -> Result<()> {
    if part.n_cols != out.n_cols {
        bail!(
            "internal: chunk has {} columns, expected {}",
            part.n_cols,
            out.n_cols
        )
    }
    let base = out.data.len();
    out.indices.extend_from_slice(&part.indices);
    out.data.extend_from_slice(&part.data);
    out.indptr
        .extend(part.indptr[1..].iter().map(|&p| p + base));
    out.n_rows += part.n_rows;
    Ok(())
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
    let file = path
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default();
    let hint = obs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| format!(" (did you mean '{n}'? names are case-sensitive)"))
        .unwrap_or_default();
    if avail.is_empty() {
        bail!("{file}obs column '{name}' not found: this input has no obs (cell annotation) columns{hint}")
    }
    bail!(
        "{file}obs column '{name}' not found{hint}; available columns: {}",
        avail.join(", ")
    )
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
