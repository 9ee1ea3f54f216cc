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

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Dataset, File, Group, H5Type, Location, LocationType};

use super::matrix::{CsrMatrix, ObsColumn};
use super::read::{check_rows, check_unique_genes, check_values, sort_rows_check_dups, MatrixSource, ReadOptions};

// ====================================================================== low-level helpers

fn h5err(path: &Path, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}: {what}: {e}", path.display())
}

/// A string attribute (scalar; vlen or fixed, UTF-8 or ASCII). `None` when absent.
pub(crate) fn attr_string(loc: &Location, name: &str) -> Result<Option<String>> {
    let names = loc.attr_names().map_err(|e| anyhow!("cannot list attributes of {}: {e}", loc.name()))?;
    if !names.iter().any(|n| n == name) {
        return Ok(None);
    }
    let attr = loc.attr(name).map_err(|e| anyhow!("cannot open attribute {name} of {}: {e}", loc.name()))?;
    let v = read_strings(&attr).map_err(|e| anyhow!("attribute {name} of {}: {e}", loc.name()))?;
    Ok(v.into_iter().next())
}

fn read_with<T: H5Type>(c: &Container, f: impl Fn(&T) -> String) -> Result<Vec<String>> {
    let v: Vec<T> = c.read_raw::<T>().map_err(|e| anyhow!("{e}"))?;
    Ok(v.iter().map(f).collect())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

macro_rules! read_fixed {
    ($c:expr, $n:expr, $ty:ident) => {{
        let n = $n;
        if n <= 16 {
            read_with::<$ty<16>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 64 {
            read_with::<$ty<64>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 256 {
            read_with::<$ty<256>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 1024 {
            read_with::<$ty<1024>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 8192 {
            read_with::<$ty<8192>>($c, |s| lossy(s.as_bytes()))
        } else {
            Err(anyhow!("fixed-length strings of {n} bytes are not supported"))
        }
    }};
}

/// Read a whole string dataset/attribute; numeric data are formatted as text.
pub(crate) fn read_strings(c: &Container) -> Result<Vec<String>> {
    let td = c.dtype().and_then(|t| t.to_descriptor()).map_err(|e| anyhow!("unsupported datatype: {e}"))?;
    match td {
        TypeDescriptor::VarLenUnicode => read_with::<VarLenUnicode>(c, |s| lossy(s.as_bytes())),
        TypeDescriptor::VarLenAscii => read_with::<VarLenAscii>(c, |s| lossy(s.as_bytes())),
        TypeDescriptor::FixedAscii(n) => read_fixed!(c, n, FixedAscii),
        TypeDescriptor::FixedUnicode(n) => read_fixed!(c, n, FixedUnicode),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
            Ok(read_numbers(c)?.into_iter().map(fmt_num).collect())
        }
        TypeDescriptor::Boolean => {
            Ok(c.read_raw::<bool>()?.into_iter().map(|b| if b { "True" } else { "False" }.to_string()).collect())
        }
        other => bail!("expected strings, found HDF5 type {other:?}"),
    }
}

fn read_numbers(c: &Container) -> Result<Vec<f64>> {
    let td = c.dtype().and_then(|t| t.to_descriptor()).map_err(|e| anyhow!("unsupported datatype: {e}"))?;
    match td {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
            Ok(c.read_raw::<f64>()?)
        }
        TypeDescriptor::Boolean => Ok(c.read_raw::<bool>()?.into_iter().map(|b| b as u8 as f64).collect()),
        other => bail!("expected numbers, found HDF5 type {other:?}"),
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

fn is_string_type(c: &Container) -> bool {
    matches!(
        c.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::VarLenUnicode
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_))
    )
}

fn member_kind(g: &Group, name: &str) -> Option<LocationType> {
    if !g.link_exists(name) {
        return None;
    }
    g.loc_type_by_name(name).ok()
}

// ====================================================================== dataframes

/// One dataframe column; `Ok(None)` for encodings celltext does not use (skipped).
fn read_df_column(df: &Group, name: &str) -> Result<Option<ObsColumn>> {
    match member_kind(df, name) {
        Some(LocationType::Group) => {
            let g = df.group(name)?;
            let enc = attr_string(&g, "encoding-type")?.unwrap_or_default();
            match enc.as_str() {
                "categorical" => {
                    let codes = read_numbers(&*g.dataset("codes").context("categorical without 'codes'")?)?;
                    let cats = read_strings(&*g.dataset("categories").context("categorical without 'categories'")?)?;
                    Ok(Some(ObsColumn::Text(map_codes(&codes, &cats, name)?)))
                }
                "nullable-integer" | "nullable-boolean" | "nullable-float" => {
                    let mut v = read_numbers(&*g.dataset("values")?)?;
                    if g.link_exists("mask") {
                        let m = read_numbers(&*g.dataset("mask")?)?;
                        for (x, &k) in v.iter_mut().zip(&m) {
                            if k != 0.0 {
                                *x = f64::NAN;
                            }
                        }
                    }
                    Ok(Some(ObsColumn::Number(v)))
                }
                "nullable-string-array" => {
                    let mut v = read_strings(&*g.dataset("values")?)?;
                    if g.link_exists("mask") {
                        let m = read_numbers(&*g.dataset("mask")?)?;
                        for (x, &k) in v.iter_mut().zip(&m) {
                            if k != 0.0 {
                                x.clear();
                            }
                        }
                    }
                    Ok(Some(ObsColumn::Text(v)))
                }
                _ => Ok(None),
            }
        }
        Some(LocationType::Dataset) => {
            let ds = df.dataset(name)?;
            if ds.ndim() != 1 {
                return Ok(None);
            }
            // anndata 0.7 categoricals: integer codes + __categories/<name>
            if !is_string_type(&ds) && df.link_exists("__categories") {
                if let Ok(cg) = df.group("__categories") {
                    if cg.link_exists(name) {
                        let codes = read_numbers(&ds)?;
                        let cats = read_strings(&*cg.dataset(name)?)?;
                        return Ok(Some(ObsColumn::Text(map_codes(&codes, &cats, name)?)));
                    }
                }
            }
            if is_string_type(&ds) {
                Ok(Some(ObsColumn::Text(read_strings(&ds)?)))
            } else {
                match read_numbers(&ds) {
                    Ok(v) => Ok(Some(ObsColumn::Number(v))),
                    Err(_) => Ok(None),
                }
            }
        }
        _ => Ok(None),
    }
}

fn map_codes(codes: &[f64], cats: &[String], name: &str) -> Result<Vec<String>> {
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if c < 0.0 {
                Ok(String::new())
            } else {
                cats.get(c as usize).cloned().ok_or_else(|| {
                    anyhow!("categorical '{name}': code {c} of row {i} is beyond the {} categories", cats.len())
                })
            }
        })
        .collect()
}

/// A dataframe group: its index and columns.
struct Frame {
    index: Vec<String>,
    /// column names in `column-order` (or member order for old files)
    columns: Vec<String>,
    index_name: String,
}

fn read_frame_meta(path: &Path, file: &File, name: &str) -> Result<(Group, Frame)> {
    match member_kind(file, name) {
        Some(LocationType::Group) => {}
        Some(LocationType::Dataset) => bail!(
            "{}: '{name}' is an HDF5 compound dataset, the layout of anndata < 0.7, which celltext does not read. \
             Re-save the file with a current anndata: python -c \"import anndata as ad; ad.read_h5ad('in.h5ad').write_h5ad('out.h5ad')\"",
            path.display()
        ),
        _ => bail!("{}: no '{name}' group; this is not an AnnData file", path.display()),
    }
    let g = file.group(name).map_err(|e| h5err(path, name, e))?;
    let index_name = attr_string(&g, "_index")
        .map_err(|e| h5err(path, name, e))?
        .unwrap_or_else(|| "_index".to_string());
    let index = if g.link_exists(&index_name) {
        let ds = g.dataset(&index_name).map_err(|e| h5err(path, &format!("{name}/{index_name}"), e))?;
        read_strings(&ds).map_err(|e| h5err(path, &format!("{name}/{index_name} (index)"), e))?
    } else {
        bail!("{}: {name}: index dataset '{index_name}' (named by the _index attribute) is missing", path.display())
    };
    let columns = if g.attr_names().map(|a| a.iter().any(|n| n == "column-order")).unwrap_or(false) {
        let a = g.attr("column-order").map_err(|e| h5err(path, name, e))?;
        if is_string_type(&a) {
            read_strings(&a).map_err(|e| h5err(path, &format!("{name} column-order"), e))?
        } else {
            Vec::new() // anndata writes an empty float array when there are no columns
        }
    } else {
        g.member_names()
            .map_err(|e| h5err(path, name, e))?
            .into_iter()
            .filter(|n| n != &index_name && n != "__categories")
            .collect()
    };
    Ok((g, Frame { index, columns, index_name }))
}

fn read_frame_columns(path: &Path, g: &Group, fr: &Frame, what: &str) -> Result<Vec<(String, ObsColumn)>> {
    let mut out = Vec::new();
    for c in &fr.columns {
        if c == &fr.index_name {
            continue;
        }
        if let Some(col) = read_df_column(g, c).map_err(|e| h5err(path, &format!("{what}/{c}"), e))? {
            let len = match &col {
                ObsColumn::Text(v) => v.len(),
                ObsColumn::Number(v) => v.len(),
            };
            if len != fr.index.len() {
                bail!("{}: {what}/{c}: {len} values but the {what} index has {}", path.display(), fr.index.len())
            }
            out.push((c.clone(), col));
        }
    }
    Ok(out)
}

// ====================================================================== reader

enum Store {
    Csr { data: Dataset, indices: Dataset, indptr: Dataset, nnz: usize },
    Csc { data: Dataset, indices: Dataset, indptr: Dataset, cache: Option<CsrMatrix> },
    Dense(Dataset),
}

/// A streaming `.h5ad` source.
pub struct H5adSource {
    path: PathBuf,
    field: String,
    _file: File,
    store: Store,
    n_cells: usize,
    genes: Vec<String>,
    cell_ids: Vec<String>,
    obs: Vec<(String, ObsColumn)>,
}

fn list_group(file: &File, name: &str) -> String {
    file.group(name)
        .and_then(|g| g.member_names())
        .map(|v| if v.is_empty() { "none".to_string() } else { v.join(", ") })
        .unwrap_or_else(|_| "none".to_string())
}

impl H5adSource {
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|e| anyhow!("{p}: cannot open as HDF5/h5ad: {e}"))?;
        if let Some(enc) = attr_string(&file, "encoding-type").map_err(|e| h5err(path, "/", e))? {
            if enc != "anndata" {
                bail!("{p}: root encoding-type is '{enc}', not 'anndata'")
            }
        }
        // obs first: this also rejects pre-0.7 files (compound obs) before anything else
        let (obs_g, obs_fr) = read_frame_meta(path, &file, "obs")?;
        if opts.raw && opts.layer.is_some() {
            bail!("{p}: --raw and --layer are mutually exclusive (raw has no layers)")
        }

        // ---- which matrix, which var
        let (field, var_name) = if opts.raw {
            if member_kind(&file, "raw") != Some(LocationType::Group) {
                bail!(
                    "{p}: --raw requested but the file has no raw/ group (AnnData.raw is empty); drop --raw, or use a layer (available layers: {})",
                    list_group(&file, "layers")
                )
            }
            ("raw/X".to_string(), "raw/var")
        } else if let Some(l) = &opts.layer {
            let ok = member_kind(&file, "layers") == Some(LocationType::Group)
                && file.group("layers").map(|g| g.link_exists(l)).unwrap_or(false);
            if !ok {
                bail!("{p}: layer '{l}' not found in layers/; available layers: {}", list_group(&file, "layers"))
            }
            (format!("layers/{l}"), "var")
        } else {
            if !file.link_exists("X") {
                bail!(
                    "{p}: the file has no X matrix (X is None); choose a layer with --layer (available: {})",
                    list_group(&file, "layers")
                )
            }
            ("X".to_string(), "var")
        };

        // ---- obs
        let obs = read_frame_columns(path, &obs_g, &obs_fr, "obs")?;
        let cell_ids = obs_fr.index.clone();
        let n_cells = cell_ids.len();

        // ---- var / genes
        let (var_g, var_fr) = read_frame_meta(path, &file, var_name)?;
        let genes: Vec<String> = match &opts.gene_symbols_key {
            None => var_fr.index.clone(),
            Some(k) => {
                if !var_g.link_exists(k) {
                    bail!(
                        "{p}: --gene-symbols-key '{k}': no such column in {var_name}; available columns: {}",
                        if var_fr.columns.is_empty() { "none".to_string() } else { var_fr.columns.join(", ") }
                    )
                }
                match read_df_column(&var_g, k).map_err(|e| h5err(path, &format!("{var_name}/{k}"), e))? {
                    Some(ObsColumn::Text(v)) => v,
                    Some(ObsColumn::Number(v)) => v.into_iter().map(fmt_num).collect(),
                    None => bail!("{p}: {var_name}/{k}: unsupported column encoding for gene symbols"),
                }
            }
        };
        let sym_field = match &opts.gene_symbols_key {
            None => format!("{var_name} index"),
            Some(k) => format!("{var_name}/{k}"),
        };
        if let Some(i) = genes.iter().position(|g| g.is_empty()) {
            bail!("{p}: {sym_field}: gene {i} has an empty name")
        }
        check_unique_genes(&genes, path, &sym_field)?;

        // ---- matrix
        let kind = member_kind(&file, &field);
        let (store, shape) = match kind {
            Some(LocationType::Dataset) => {
                let ds = file.dataset(&field).map_err(|e| h5err(path, &field, e))?;
                let sh = ds.shape();
                if sh.len() != 2 {
                    bail!("{p}: {field}: expected a 2-D matrix, found shape {sh:?}")
                }
                (Store::Dense(ds), (sh[0], sh[1]))
            }
            Some(LocationType::Group) => {
                let g = file.group(&field).map_err(|e| h5err(path, &field, e))?;
                let enc = attr_string(&g, "encoding-type").map_err(|e| h5err(path, &field, e))?;
                let legacy = attr_string(&g, "h5sparse_format").map_err(|e| h5err(path, &field, e))?;
                let fmt = match (enc.as_deref(), legacy.as_deref()) {
                    (Some("csr_matrix"), _) | (None, Some("csr")) => "csr",
                    (Some("csc_matrix"), _) | (None, Some("csc")) => "csc",
                    (Some(e), _) => bail!(
                        "{p}: {field}: encoding-type '{e}' is not supported (celltext reads csr_matrix, csc_matrix and dense array)"
                    ),
                    (None, l) => bail!(
                        "{p}: {field}: sparse group without an encoding-type attribute{}; re-save it with anndata ≥ 0.8",
                        l.map(|l| format!(" (h5sparse_format '{l}')")).unwrap_or_default()
                    ),
                };
                let shape_attr = if g.attr_names().map(|a| a.iter().any(|n| n == "shape")).unwrap_or(false) {
                    "shape"
                } else {
                    "h5sparse_shape"
                };
                let sh: Vec<i64> = g
                    .attr(shape_attr)
                    .and_then(|a| a.read_raw::<i64>())
                    .map_err(|e| h5err(path, &format!("{field} shape attribute"), e))?;
                if sh.len() != 2 || sh.iter().any(|&x| x < 0) {
                    bail!("{p}: {field}: bad shape attribute {sh:?}")
                }
                let get = |n: &str| -> Result<Dataset> {
                    g.dataset(n).map_err(|e| h5err(path, &format!("{field}/{n}"), e))
                };
                let (data, indices, indptr) = (get("data")?, get("indices")?, get("indptr")?);
                if data.size() != indices.size() {
                    bail!(
                        "{p}: {field}: data has {} values but indices has {}; the sparse matrix is corrupt",
                        data.size(),
                        indices.size()
                    )
                }
                let (n_major, n_minor) = if fmt == "csr" { (sh[0], sh[1]) } else { (sh[1], sh[0]) };
                if indptr.size() != n_major as usize + 1 {
                    bail!(
                        "{p}: {field}/indptr: {} entries but a {} matrix of shape {:?} needs {}",
                        indptr.size(),
                        fmt,
                        sh,
                        n_major + 1
                    )
                }
                let _ = n_minor;
                let nnz = data.size();
                let store = if fmt == "csr" {
                    Store::Csr { data, indices, indptr, nnz }
                } else {
                    Store::Csc { data, indices, indptr, cache: None }
                };
                (store, (sh[0] as usize, sh[1] as usize))
            }
            _ => bail!("{p}: {field} not found"),
        };
        if shape.0 != n_cells || shape.1 != genes.len() {
            bail!(
                "{p}: dimension mismatch: {field} is {} × {} but obs has {} cells and {var_name} has {} genes",
                shape.0,
                shape.1,
                n_cells,
                genes.len()
            )
        }
        if n_cells == 0 || genes.is_empty() {
            bail!("{p}: empty matrix: {field} is {} × {}", shape.0, shape.1)
        }
        let nnz = match &store {
            Store::Csr { nnz, .. } => Some(*nnz),
            Store::Csc { data, .. } => Some(data.size()),
            Store::Dense(_) => None,
        };
        if nnz == Some(0) {
            bail!("{p}: empty matrix: {field} ({} × {}) has no non-zero values", shape.0, shape.1)
        }
        drop(obs_g);
        drop(var_g);
        Ok(Self { path: path.to_path_buf(), field, _file: file, store, n_cells, genes, cell_ids, obs })
    }

    fn rows_csr(&self, start: usize, end: usize) -> Result<CsrMatrix> {
        let Store::Csr { data, indices, indptr, nnz } = &self.store else { bail!("internal: matrix storage kind mismatch") };
        let p = &self.path;
        let f = &self.field;
        let ip: Vec<i64> = indptr
            .read_slice_1d::<i64, _>(start..end + 1)
            .map_err(|e| h5err(p, &format!("{f}/indptr"), e))?
            .to_vec();
        for w in ip.windows(2) {
            if w[1] < w[0] {
                bail!("{}: {f}/indptr is not non-decreasing near row {start}; the sparse matrix is corrupt", p.display())
            }
        }
        let (a, b) = (ip[0], ip[ip.len() - 1]);
        if a < 0 || b as usize > *nnz {
            bail!("{}: {f}/indptr values {a}..{b} out of range 0..{nnz} (rows {start}..{end})", p.display())
        }
        let (a, b) = (a as usize, b as usize);
        let idx: Vec<i64> =
            indices.read_slice_1d::<i64, _>(a..b).map_err(|e| h5err(p, &format!("{f}/indices"), e))?.to_vec();
        let vals: Vec<f32> =
            data.read_slice_1d::<f32, _>(a..b).map_err(|e| h5err(p, &format!("{f}/data"), e))?.to_vec();
        let n_cols = self.genes.len();
        let mut ind32 = Vec::with_capacity(idx.len());
        for (k, &j) in idx.iter().enumerate() {
            if j < 0 || j as usize >= n_cols {
                let row = start + ip.partition_point(|&q| (q as usize) <= a + k).saturating_sub(1);
                bail!(
                    "{}: {f}/indices: column index {j} out of range 0..{n_cols} (cell {row}); the sparse matrix is corrupt",
                    p.display()
                )
            }
            ind32.push(j as u32);
        }
        let mut m = CsrMatrix {
            n_rows: end - start,
            n_cols,
            indptr: ip.iter().map(|&q| q as usize - a).collect(),
            indices: ind32,
            data: vals,
        };
        sort_rows_check_dups(&mut m, start, p, f)?;
        Ok(m)
    }

    fn load_csc(&mut self) -> Result<()> {
        let Store::Csc { data, indices, indptr, cache } = &mut self.store else { bail!("internal: matrix storage kind mismatch") };
        if cache.is_some() {
            return Ok(());
        }
        let p = &self.path;
        let f = &self.field;
        let n_rows = self.n_cells;
        let n_cols = self.genes.len();
        let ip: Vec<i64> = indptr.read_raw::<i64>().map_err(|e| h5err(p, &format!("{f}/indptr"), e))?;
        let idx: Vec<i64> = indices.read_raw::<i64>().map_err(|e| h5err(p, &format!("{f}/indices"), e))?;
        let vals: Vec<f32> = data.read_raw::<f32>().map_err(|e| h5err(p, &format!("{f}/data"), e))?;
        let nnz = vals.len();
        if ip.first() != Some(&0) || ip.last().map(|&x| x as usize) != Some(nnz) || ip.windows(2).any(|w| w[1] < w[0]) {
            bail!("{}: {f}/indptr is not a valid CSC pointer array (must run from 0 to nnz={nnz}, non-decreasing)", p.display())
        }
        let mut counts = vec![0usize; n_rows + 1];
        for (k, &i) in idx.iter().enumerate() {
            if i < 0 || i as usize >= n_rows {
                let col = ip.partition_point(|&q| (q as usize) <= k).saturating_sub(1);
                bail!("{}: {f}/indices: row index {i} out of range 0..{n_rows} (gene column {col}); the sparse matrix is corrupt", p.display())
            }
            counts[i as usize + 1] += 1;
        }
        for r in 0..n_rows {
            counts[r + 1] += counts[r];
        }
        let mut fill = counts.clone();
        let mut out_idx = vec![0u32; nnz];
        let mut out_val = vec![0f32; nnz];
        for j in 0..n_cols {
            for k in ip[j] as usize..ip[j + 1] as usize {
                let r = idx[k] as usize;
                out_idx[fill[r]] = j as u32;
                out_val[fill[r]] = vals[k];
                fill[r] += 1;
            }
        }
        let mut m = CsrMatrix { n_rows, n_cols, indptr: counts, indices: out_idx, data: out_val };
        sort_rows_check_dups(&mut m, 0, p, f)?;
        *cache = Some(m);
        Ok(())
    }

    fn rows_dense(&self, start: usize, end: usize) -> Result<CsrMatrix> {
        let Store::Dense(ds) = &self.store else { bail!("internal: matrix storage kind mismatch") };
        let n_cols = self.genes.len();
        let block = (16usize << 20) / n_cols.max(1);
        let block = block.max(1);
        let mut m = CsrMatrix { n_rows: end - start, n_cols, indptr: vec![0], indices: Vec::new(), data: Vec::new() };
        let mut r0 = start;
        while r0 < end {
            let r1 = (r0 + block).min(end);
            let a: ndarray::Array2<f32> = ds
                .read_slice_2d::<f32, _>(ndarray::s![r0..r1, ..])
                .map_err(|e| h5err(&self.path, &self.field, e))?;
            for row in a.rows() {
                for (j, &v) in row.iter().enumerate() {
                    if v != 0.0 {
                        m.indices.push(j as u32);
                        m.data.push(v);
                    }
                }
                m.indptr.push(m.data.len());
            }
            r0 = r1;
        }
        Ok(m)
    }
}

impl MatrixSource for H5adSource {
    fn n_cells(&self) -> usize {
        self.n_cells
    }
    fn genes(&self) -> &[String] {
        &self.genes
    }
    fn cell_ids(&self) -> &[String] {
        &self.cell_ids
    }
    fn obs(&self) -> &[(String, ObsColumn)] {
        &self.obs
    }
    fn read_rows(&mut self, start: usize, end: usize) -> Result<CsrMatrix> {
        check_rows(self, start, end)?;
        let kind = match &self.store {
            Store::Csr { .. } => 0,
            Store::Dense(_) => 1,
            Store::Csc { .. } => 2,
        };
        let m = match kind {
            0 => self.rows_csr(start, end)?,
            1 => self.rows_dense(start, end)?,
            _ => {
                self.load_csc()?;
                let Store::Csc { cache: Some(full), .. } = &self.store else {
                    bail!("{}: internal: CSC cache missing", self.path.display())
                };
                super::read::slice_rows(full, start, end)
            }
        };
        check_values(&m, start, &self.path, &self.field, &self.cell_ids, &self.genes)?;
        Ok(m)
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn field(&self) -> String {
        self.field.clone()
    }
}

// ====================================================================== writers

/// One obsm entry: key, row-major values (n_obs × dim), dim.
pub type ObsmEntry<'a> = (String, &'a [f32], usize);

fn h5w<T>(r: hdf5::Result<T>, path: &Path, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("{}: writing {what}: {e}", path.display()))
}

fn vlen(s: &str, path: &Path, what: &str) -> Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>()
        .map_err(|e| anyhow!("{}: {what}: string {:?} cannot be stored ({e})", path.display(), s))
}

fn set_attr_str(loc: &Location, name: &str, value: &str, path: &Path) -> Result<()> {
    if loc.attr_names().map(|a| a.iter().any(|n| n == name)).unwrap_or(false) {
        h5w(loc.delete_attr(name), path, name)?;
    }
    let v = vlen(value, path, name)?;
    let a = h5w(loc.new_attr::<VarLenUnicode>().shape(()).create(name), path, name)?;
    h5w(a.write_scalar(&v), path, name)
}

fn set_attr_str_array(loc: &Location, name: &str, values: &[String], path: &Path) -> Result<()> {
    if loc.attr_names().map(|a| a.iter().any(|n| n == name)).unwrap_or(false) {
        h5w(loc.delete_attr(name), path, name)?;
    }
    if values.is_empty() {
        // what anndata itself writes for an empty column list
        let empty: [f64; 0] = [];
        h5w(loc.new_attr_builder().with_data(&empty[..]).create(name), path, name)?;
        return Ok(());
    }
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s, path, name)).collect::<Result<_>>()?;
    h5w(loc.new_attr_builder().with_data(&v[..]).create(name), path, name)?;
    Ok(())
}

fn set_encoding(loc: &Location, ty: &str, ver: &str, path: &Path) -> Result<()> {
    set_attr_str(loc, "encoding-type", ty, path)?;
    set_attr_str(loc, "encoding-version", ver, path)
}

fn get_or_create_dict(parent: &Group, name: &str, path: &Path) -> Result<Group> {
    match member_kind(parent, name) {
        Some(LocationType::Group) => h5w(parent.group(name), path, name),
        Some(_) => bail!("{}: '{name}' exists but is not a group", path.display()),
        None => {
            let g = h5w(parent.create_group(name), path, name)?;
            set_encoding(&g, "dict", "0.1.0", path)?;
            Ok(g)
        }
    }
}

fn check_key(key: &str, what: &str, path: &Path) -> Result<()> {
    if key.is_empty() || key.contains('/') || key == "." || key == ".." {
        bail!("{}: invalid {what} key {key:?} (non-empty, no '/')", path.display())
    }
    Ok(())
}

fn write_string_array(g: &Group, name: &str, values: &[String], path: &Path) -> Result<()> {
    let v: Vec<VarLenUnicode> = values.iter().map(|s| vlen(s, path, name)).collect::<Result<_>>()?;
    let ds = h5w(g.new_dataset_builder().with_data(&v[..]).create(name), path, name)?;
    set_encoding(&ds, "string-array", "0.2.0", path)
}

fn write_obs_column(g: &Group, name: &str, col: &ObsColumn, path: &Path) -> Result<()> {
    match col {
        ObsColumn::Text(v) => write_string_array(g, name, v, path),
        ObsColumn::Number(v) => {
            let ds = h5w(g.new_dataset_builder().with_data(&v[..]).create(name), path, name)?;
            set_encoding(&ds, "array", "0.2.0", path)
        }
    }
}

fn obs_len(col: &ObsColumn) -> usize {
    match col {
        ObsColumn::Text(v) => v.len(),
        ObsColumn::Number(v) => v.len(),
    }
}

/// Add obsm arrays, obs columns and one uns string to an open AnnData file with `n_obs` cells.
fn add_annotations(
    file: &File,
    path: &Path,
    n_obs: usize,
    obsm: &[ObsmEntry<'_>],
    obs: &[(String, ObsColumn)],
    uns_json: Option<(&str, &str)>,
) -> Result<()> {
    if !obsm.is_empty() {
        let g = get_or_create_dict(file, "obsm", path)?;
        for (key, data, dim) in obsm {
            check_key(key, "obsm", path)?;
            if *dim == 0 || data.len() != n_obs * dim {
                bail!(
                    "{}: obsm/{key}: {} values do not form {n_obs} cells × {dim} dimensions",
                    path.display(),
                    data.len()
                )
            }
            if g.link_exists(key) {
                h5w(g.unlink(key), path, &format!("obsm/{key}"))?;
            }
            let view = ndarray::ArrayView2::from_shape((n_obs, *dim), data)
                .map_err(|e| anyhow!("{}: obsm/{key}: {e}", path.display()))?;
            let ds = h5w(g.new_dataset_builder().with_data(view).create(key.as_str()), path, &format!("obsm/{key}"))?;
            set_encoding(&ds, "array", "0.2.0", path)?;
        }
    }
    if !obs.is_empty() {
        let (g, fr) = read_frame_meta(path, file, "obs")?;
        let mut order = fr.columns.clone();
        for (name, col) in obs {
            check_key(name, "obs column", path)?;
            if name == &fr.index_name || name == "__categories" {
                bail!("{}: obs column name '{name}' is reserved (obs index)", path.display())
            }
            if obs_len(col) != n_obs {
                bail!("{}: obs/{name}: {} values for {n_obs} cells", path.display(), obs_len(col))
            }
            if g.link_exists(name) {
                h5w(g.unlink(name), path, &format!("obs/{name}"))?;
            }
            write_obs_column(&g, name, col, path)?;
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
        set_attr_str_array(&g, "column-order", &order, path)?;
    }
    if let Some((key, json)) = uns_json {
        check_key(key, "uns", path)?;
        let g = get_or_create_dict(file, "uns", path)?;
        if g.link_exists(key) {
            h5w(g.unlink(key), path, &format!("uns/{key}"))?;
        }
        let v = vlen(json, path, &format!("uns/{key}"))?;
        let ds = h5w(g.new_dataset::<VarLenUnicode>().shape(()).create(key), path, &format!("uns/{key}"))?;
        h5w(ds.write_scalar(&v), path, &format!("uns/{key}"))?;
        set_encoding(&ds, "string", "0.2.0", path)?;
    }
    Ok(())
}

/// Deletes the temp file unless `keep()` was called.
struct TempGuard(Option<PathBuf>);
impl TempGuard {
    fn keep(&mut self) {
        self.0 = None;
    }
}
impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn temp_next_to(output: &Path) -> Result<PathBuf> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!("{}: output directory {} does not exist", output.display(), dir.display())
    }
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{}: output path has no file name", output.display()))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(dir.join(format!(".{name}.celltext-tmp-{}-{nanos}", std::process::id())))
}

fn finish(tmp: &Path, output: &Path, guard: &mut TempGuard) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync temp file", tmp.display()))?;
    std::fs::rename(tmp, output)
        .with_context(|| format!("{}: cannot move the finished file into place (from {})", output.display(), tmp.display()))?;
    guard.keep();
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Copy the AnnData file `input` to `output`, adding `obsm/<key>` arrays (f32, n_obs × dim,
/// row-major), obs columns and optionally one `uns/<key>` JSON string. Existing entries with the
/// same names are replaced. The copy is built in a temp file next to `output` and renamed into
/// place, so `input` is never modified — unless `in_place` is set, which allows `output` to be the
/// same file as `input` (still replaced atomically).
pub fn write_h5ad_with_obsm(
    input: &Path,
    output: &Path,
    in_place: bool,
    obsm: &[ObsmEntry<'_>],
    obs: &[(String, ObsColumn)],
    uns_json: Option<(&str, &str)>,
) -> Result<()> {
    if same_file(input, output) && !in_place {
        bail!(
            "{}: output is the input file; refusing to modify it (write to another path, or pass --in-place)",
            output.display()
        )
    }
    let n_obs = {
        let f = File::open(input).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", input.display()))?;
        let (_, fr) = read_frame_meta(input, &f, "obs")?;
        fr.index.len()
    };
    let tmp = temp_next_to(output)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    std::fs::copy(input, &tmp).with_context(|| format!("{}: cannot copy to {}", input.display(), tmp.display()))?;
    let mut perm = std::fs::metadata(&tmp).with_context(|| tmp.display().to_string())?.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&tmp, perm).with_context(|| format!("{}: cannot make writable", tmp.display()))?;
    {
        let f = File::open_rw(&tmp).map_err(|e| anyhow!("{}: cannot open for writing: {e}", tmp.display()))?;
        add_annotations(&f, output, n_obs, obsm, obs, uns_json)?;
        f.close().map_err(|e| anyhow!("{}: closing: {e}", tmp.display()))?;
    }
    finish(&tmp, output, &mut guard)
}

/// Metadata for a fresh AnnData file (for inputs that are not h5ad).
#[derive(Debug, Clone, Copy)]
pub struct NewH5ad<'a> {
    pub cell_ids: &'a [String],
    /// var index; may be empty when `x` is `None`.
    pub genes: &'a [String],
    pub obs: &'a [(String, ObsColumn)],
    /// Written as a CSR `X` when given; otherwise the file has no X (anndata reads X = None).
    pub x: Option<&'a CsrMatrix>,
}

impl<'a> NewH5ad<'a> {
    pub fn from_matrix(m: &'a super::matrix::ExpressionMatrix, with_x: bool) -> Self {
        Self { cell_ids: &m.cell_ids, genes: &m.genes, obs: &m.obs, x: with_x.then_some(&m.x) }
    }
}

fn write_frame(file: &File, name: &str, index: &[String], cols: &[(String, ObsColumn)], path: &Path) -> Result<()> {
    let g = h5w(file.create_group(name), path, name)?;
    set_encoding(&g, "dataframe", "0.2.0", path)?;
    set_attr_str(&g, "_index", "_index", path)?;
    write_string_array(&g, "_index", index, path)?;
    let mut order = Vec::new();
    for (c, col) in cols {
        check_key(c, &format!("{name} column"), path)?;
        if c == "_index" {
            bail!("{}: {name} column name '_index' is reserved", path.display())
        }
        if obs_len(col) != index.len() {
            bail!("{}: {name}/{c}: {} values for {} rows", path.display(), obs_len(col), index.len())
        }
        write_obs_column(&g, c, col, path)?;
        order.push(c.clone());
    }
    set_attr_str_array(&g, "column-order", &order, path)
}

/// Write a new AnnData file: obs (index = cell ids, columns), var (index = genes), optional CSR X,
/// empty layers/obsp/varm/varp, plus obsm arrays and one uns JSON string. Atomic (temp + rename).
pub fn write_new_h5ad(
    output: &Path,
    meta: &NewH5ad<'_>,
    obsm: &[ObsmEntry<'_>],
    uns_json: Option<(&str, &str)>,
) -> Result<()> {
    let n_obs = meta.cell_ids.len();
    if let Some(x) = meta.x {
        if x.n_rows != n_obs || x.n_cols != meta.genes.len() {
            bail!(
                "{}: X is {} × {} but there are {} cell ids and {} genes",
                output.display(),
                x.n_rows,
                x.n_cols,
                n_obs,
                meta.genes.len()
            )
        }
    }
    let tmp = temp_next_to(output)?;
    let mut guard = TempGuard(Some(tmp.clone()));
    {
        let f = File::create(&tmp).map_err(|e| anyhow!("{}: cannot create: {e}", tmp.display()))?;
        set_encoding(&f, "anndata", "0.1.0", output)?;
        write_frame(&f, "obs", meta.cell_ids, meta.obs, output)?;
        write_frame(&f, "var", meta.genes, &[], output)?;
        if let Some(x) = meta.x {
            let g = h5w(f.create_group("X"), output, "X")?;
            set_encoding(&g, "csr_matrix", "0.1.0", output)?;
            let shape = [x.n_rows as i64, x.n_cols as i64];
            h5w(g.new_attr_builder().with_data(&shape[..]).create("shape"), output, "X shape")?;
            h5w(g.new_dataset_builder().with_data(&x.data[..]).create("data"), output, "X/data")?;
            let ind: Vec<i32> = x.indices.iter().map(|&j| j as i32).collect();
            h5w(g.new_dataset_builder().with_data(&ind[..]).create("indices"), output, "X/indices")?;
            let ip: Vec<i64> = x.indptr.iter().map(|&p| p as i64).collect();
            h5w(g.new_dataset_builder().with_data(&ip[..]).create("indptr"), output, "X/indptr")?;
        }
        for name in ["layers", "obsm", "obsp", "varm", "varp", "uns"] {
            get_or_create_dict(&f, name, output)?;
        }
        add_annotations(&f, output, n_obs, obsm, &[], uns_json)?;
        f.close().map_err(|e| anyhow!("{}: closing: {e}", tmp.display()))?;
    }
    finish(&tmp, output, &mut guard)
}

// ====================================================================== small readers for outputs

/// `obsm/<key>` as row-major f32 values and its dimension.
/// The `obsm` keys of an h5ad file, sorted; empty when it has no `obsm` group.
pub fn obsm_keys(path: &Path) -> Result<Vec<String>> {
    let f = File::open(path).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", path.display()))?;
    if !f.link_exists("obsm") {
        return Ok(Vec::new());
    }
    let g = f.group("obsm").map_err(|e| h5err(path, "obsm", e))?;
    let mut keys = g.member_names().map_err(|e| h5err(path, "obsm", e))?;
    keys.sort();
    Ok(keys)
}

pub fn read_obsm(path: &Path, key: &str) -> Result<(Vec<f32>, usize)> {
    let f = File::open(path).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", path.display()))?;
    let g = f.group("obsm").map_err(|e| h5err(path, "obsm", e))?;
    if !g.link_exists(key) {
        let avail = g.member_names().unwrap_or_default();
        bail!("{}: obsm/{key} not found; available: {}", path.display(), avail.join(", "))
    }
    let ds = g.dataset(key).map_err(|e| h5err(path, &format!("obsm/{key}"), e))?;
    let sh = ds.shape();
    if sh.len() != 2 {
        bail!("{}: obsm/{key}: expected a 2-D array, found shape {sh:?}", path.display())
    }
    let v = ds.read_raw::<f32>().map_err(|e| h5err(path, &format!("obsm/{key}"), e))?;
    Ok((v, sh[1]))
}

/// `uns/<key>` as a string (a scalar string dataset).
pub fn read_uns_string(path: &Path, key: &str) -> Result<String> {
    let f = File::open(path).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", path.display()))?;
    let ds = f.dataset(&format!("uns/{key}")).map_err(|e| h5err(path, &format!("uns/{key}"), e))?;
    read_strings(&ds)
        .map_err(|e| h5err(path, &format!("uns/{key}"), e))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{}: uns/{key} is empty", path.display()))
}

/// The obs index (cell ids) and obs columns of an AnnData file, without touching X.
pub fn read_h5ad_obs(path: &Path) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
    let f = File::open(path).map_err(|e| anyhow!("{}: cannot open as HDF5/h5ad: {e}", path.display()))?;
    let (g, fr) = read_frame_meta(path, &f, "obs")?;
    let cols = read_frame_columns(path, &g, &fr, "obs")?;
    Ok((fr.index, cols))
}
