//! The streaming h5ad matrix source: picks `X`, `layers/<name>` or `raw/X`, validates its shape
//! against obs/var, and reads CSR and dense matrices by hyperslab (CSC once, converted to CSR).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use hdf5::{Dataset, File, Group, LocationType};

use super::attrs::{attr_string, check_declared_size, fmt_num, h5err, member_kind};
use super::frame::{read_df_column, read_frame_columns, read_frame_meta};
use crate::cells::matrix::{CsrMatrix, ObsColumn};
use crate::cells::source::{
    check_rows, check_unique_genes, check_values, slice_rows, sort_rows_check_dups, MatrixSource,
    ReadOptions,
};

enum Store {
    Csr {
        data: Dataset,
        indices: Dataset,
        indptr: Dataset,
        nnz: usize,
    },
    Csc {
        data: Dataset,
        indices: Dataset,
        indptr: Dataset,
        cache: Option<CsrMatrix>,
    },
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
        .map(|v| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        })
        .unwrap_or_else(|_| "none".to_string())
}

/// A matrix dataset must have `ndim` dimensions and a numeric type (integers only for index
/// arrays), checked before reading so HDF5's own conversion errors never reach the user.
fn check_array(path: &Path, name: &str, ds: &Dataset, ndim: usize, integer: bool) -> Result<()> {
    use hdf5::types::TypeDescriptor as T;
    let p = path.display();
    let want = if integer { "integers" } else { "numbers" };
    if ds.ndim() != ndim {
        bail!(
            "{p}: {name}: expected a {ndim}-D array of {want}, found shape {:?}",
            ds.shape()
        )
    }
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| anyhow!("{p}: {name}: unreadable HDF5 datatype ({e}); expected {want}"))?;
    let ok = match td {
        T::Integer(_) | T::Unsigned(_) => true,
        T::Float(_) | T::Boolean => !integer,
        _ => false,
    };
    if !ok {
        bail!("{p}: {name}: holds HDF5 type {td:?}, expected {want}; the file is corrupt or not an AnnData matrix")
    }
    Ok(())
}

/// Which matrix (`X`, `layers/NAME` or `raw/X`) and which var frame go with it.
fn choose_matrix(path: &Path, file: &File, opts: &ReadOptions) -> Result<(String, &'static str)> {
    let p = path.display();
    if opts.raw {
        if member_kind(file, "raw") != Some(LocationType::Group) {
            bail!(
                "{p}: --raw requested but the file has no raw/ group (AnnData.raw is empty); drop --raw, or use a layer (available layers: {})",
                list_group(file, "layers")
            )
        }
        Ok(("raw/X".to_string(), "raw/var"))
    } else if let Some(l) = &opts.layer {
        let ok = member_kind(file, "layers") == Some(LocationType::Group)
            && file
                .group("layers")
                .map(|g| g.link_exists(l))
                .unwrap_or(false);
        if !ok {
            bail!(
                "{p}: layer '{l}' not found in layers/; available layers: {}",
                list_group(file, "layers")
            )
        }
        Ok((format!("layers/{l}"), "var"))
    } else {
        if !file.link_exists("X") {
            bail!(
                "{p}: the file has no X matrix (X is None); choose a layer with --layer (available: {})",
                list_group(file, "layers")
            )
        }
        Ok(("X".to_string(), "var"))
    }
}

/// The gene names: the var index, or `--gene-symbols-key`'s column; each non-empty and unique.
fn read_gene_names(
    path: &Path,
    file: &File,
    var_name: &str,
    opts: &ReadOptions,
) -> Result<Vec<String>> {
    let p = path.display();
    let (var_g, var_fr) = read_frame_meta(path, file, var_name)?;
    let genes: Vec<String> = match &opts.gene_symbols_key {
        None => var_fr.index.clone(),
        Some(k) => {
            if !var_g.link_exists(k) {
                bail!(
                    "{p}: --gene-symbols-key '{k}': no such column in {var_name}; available columns: {}",
                    if var_fr.columns.is_empty() { "none".to_string() } else { var_fr.columns.join(", ") }
                )
            }
            match read_df_column(&var_g, k)
                .map_err(|e| h5err(path, &format!("{var_name}/{k}"), e))?
            {
                Some(ObsColumn::Text(v)) => v,
                Some(ObsColumn::Number(v)) => v.into_iter().map(fmt_num).collect(),
                None => {
                    bail!("{p}: {var_name}/{k}: unsupported column encoding for gene symbols")
                }
            }
        }
    };
    let sym_field = match &opts.gene_symbols_key {
        None => format!("{var_name} index"),
        Some(k) => format!("{var_name}/{k}"),
    };
    if let Some(i) = genes.iter().position(|g| g.is_empty()) {
        bail!(
            "{p}: {sym_field}: gene {i} has an empty name; expected one non-empty gene name \
             (string) per row of {var_name} — the file is corrupt or its index is not the gene names \
             (pick a column with --gene-symbols-key)"
        )
    }
    check_unique_genes(&genes, path, &sym_field)?;
    Ok(genes)
}

/// The matrix at `field`: a dense dataset or a CSR/CSC group, checked, with its shape.
fn open_store(path: &Path, file: &File, field: &str) -> Result<(Store, (usize, usize))> {
    let p = path.display();
    match member_kind(file, field) {
        Some(LocationType::Dataset) => {
            let ds = file.dataset(field).map_err(|e| h5err(path, field, e))?;
            let sh = ds.shape();
            if sh.len() != 2 {
                bail!("{p}: {field}: expected a 2-D matrix, found shape {sh:?}")
            }
            check_array(path, field, &ds, 2, false)?;
            Ok((Store::Dense(ds), (sh[0], sh[1])))
        }
        Some(LocationType::Group) => {
            let g = file.group(field).map_err(|e| h5err(path, field, e))?;
            open_sparse(path, &g, field)
        }
        _ => bail!("{p}: {field} not found"),
    }
}

/// A sparse group's format, "csr" or "csc", from its encoding-type (or legacy h5sparse_format).
fn sparse_format(path: &Path, g: &Group, field: &str) -> Result<&'static str> {
    let p = path.display();
    let enc = attr_string(g, "encoding-type").map_err(|e| h5err(path, field, e))?;
    let legacy = attr_string(g, "h5sparse_format").map_err(|e| h5err(path, field, e))?;
    Ok(match (enc.as_deref(), legacy.as_deref()) {
        (Some("csr_matrix"), _) | (None, Some("csr")) => "csr",
        (Some("csc_matrix"), _) | (None, Some("csc")) => "csc",
        (Some(e), _) => bail!(
            "{p}: {field}: encoding-type '{e}' is not supported (celltext reads csr_matrix, csc_matrix and dense array)"
        ),
        (None, l) => bail!(
            "{p}: {field}: sparse group without an encoding-type attribute{}; re-save it with anndata ≥ 0.8",
            l.map(|l| format!(" (h5sparse_format '{l}')")).unwrap_or_default()
        ),
    })
}

/// A sparse group's `shape` (or legacy `h5sparse_shape`) attribute: two non-negative values.
fn sparse_shape(path: &Path, g: &Group, field: &str) -> Result<Vec<i64>> {
    let shape_attr = if g
        .attr_names()
        .map(|a| a.iter().any(|n| n == "shape"))
        .unwrap_or(false)
    {
        "shape"
    } else {
        "h5sparse_shape"
    };
    let sh: Vec<i64> = g
        .attr(shape_attr)
        .and_then(|a| {
            if a.size() > 2 {
                // a 2-D shape has 2 values; do not allocate for a corrupt count
                return Err(format!("{} values, expected 2", a.size()).into());
            }
            a.read_raw::<i64>()
        })
        .map_err(|e| h5err(path, &format!("{field} shape attribute"), e))?;
    if sh.len() != 2 || sh.iter().any(|&x| x < 0) {
        bail!("{}: {field}: bad shape attribute {sh:?}", path.display())
    }
    Ok(sh)
}

/// A CSR or CSC group: its three arrays checked against each other and the shape (the pointer
/// array's length, first and last entry), before any row is read.
fn open_sparse(path: &Path, g: &Group, field: &str) -> Result<(Store, (usize, usize))> {
    let p = path.display();
    let fmt = sparse_format(path, g, field)?;
    let sh = sparse_shape(path, g, field)?;
    let get = |n: &str| -> Result<Dataset> {
        g.dataset(n)
            .map_err(|e| h5err(path, &format!("{field}/{n}"), e))
    };
    let (data, indices, indptr) = (get("data")?, get("indices")?, get("indptr")?);
    check_array(path, &format!("{field}/data"), &data, 1, false)?;
    check_array(path, &format!("{field}/indices"), &indices, 1, true)?;
    check_array(path, &format!("{field}/indptr"), &indptr, 1, true)?;
    if data.size() != indices.size() {
        bail!(
            "{p}: {field}: data has {} values but indices has {}; the sparse matrix is corrupt",
            data.size(),
            indices.size()
        )
    }
    let n_major = if fmt == "csr" { sh[0] } else { sh[1] };
    if indptr.size() != n_major as usize + 1 {
        bail!(
            "{p}: {field}/indptr: {} entries but a {} matrix of shape {:?} needs {}",
            indptr.size(),
            fmt,
            sh,
            n_major + 1
        )
    }
    let nnz = data.size();
    let at = |i: usize| -> Result<i64> {
        let v: Vec<i64> = indptr
            .read_slice_1d::<i64, _>(i..i + 1)
            .map_err(|e| h5err(path, &format!("{field}/indptr"), e))?
            .to_vec();
        Ok(v[0])
    };
    let (first, last) = (at(0)?, at(n_major as usize)?);
    if first != 0 || last != nnz as i64 {
        bail!(
            "{p}: {field}/indptr runs from {first} to {last}, but a {fmt} pointer array must \
             start at 0 and end at the number of stored values ({nnz}); the sparse matrix is corrupt"
        )
    }
    let store = if fmt == "csr" {
        Store::Csr {
            data,
            indices,
            indptr,
            nnz,
        }
    } else {
        Store::Csc {
            data,
            indices,
            indptr,
            cache: None,
        }
    };
    Ok((store, (sh[0] as usize, sh[1] as usize)))
}

impl H5adSource {
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<Self> {
        let p = path.display().to_string();
        let file = super::open_untrusted(path)?;
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
        let (field, var_name) = choose_matrix(path, &file, opts)?;
        let obs = read_frame_columns(path, &obs_g, &obs_fr, "obs")?;
        drop(obs_g);
        let cell_ids = obs_fr.index.clone();
        let n_cells = cell_ids.len();
        let genes = read_gene_names(path, &file, var_name, opts)?;
        let (store, shape) = open_store(path, &file, &field)?;
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
            bail!(
                "{p}: empty matrix: {field} ({} × {}) has no non-zero values",
                shape.0,
                shape.1
            )
        }
        Ok(Self {
            path: path.to_path_buf(),
            field,
            _file: file,
            store,
            n_cells,
            genes,
            cell_ids,
            obs,
        })
    }

    fn rows_csr(&self, start: usize, end: usize) -> Result<CsrMatrix> {
        let Store::Csr {
            data,
            indices,
            indptr,
            nnz,
        } = &self.store
        else {
            bail!("internal: matrix storage kind mismatch")
        };
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
            bail!(
                "{}: {f}/indptr values {a}..{b} out of range 0..{nnz} (rows {start}..{end})",
                p.display()
            )
        }
        let (a, b) = (a as usize, b as usize);
        let idx: Vec<i64> = indices
            .read_slice_1d::<i64, _>(a..b)
            .map_err(|e| h5err(p, &format!("{f}/indices"), e))?
            .to_vec();
        let vals: Vec<f32> = data
            .read_slice_1d::<f32, _>(a..b)
            .map_err(|e| h5err(p, &format!("{f}/data"), e))?
            .to_vec();
        let n_cols = self.genes.len();
        let mut ind32 = Vec::with_capacity(idx.len());
        for (k, &j) in idx.iter().enumerate() {
            if j < 0 || j as usize >= n_cols {
                let row = start
                    + ip.partition_point(|&q| (q as usize) <= a + k)
                        .saturating_sub(1);
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
        let Store::Csc {
            data,
            indices,
            indptr,
            cache,
        } = &mut self.store
        else {
            bail!("internal: matrix storage kind mismatch")
        };
        if cache.is_some() {
            return Ok(());
        }
        let p = &self.path;
        let f = &self.field;
        let n_rows = self.n_cells;
        let n_cols = self.genes.len();
        for (ds, name, bytes) in [
            (&**indptr, "indptr", 8),
            (&**indices, "indices", 8),
            (&**data, "data", 4),
        ] {
            check_declared_size(ds, bytes)
                .map_err(|e| anyhow!("{}: {f}/{name}: {e}", p.display()))?;
        }
        let ip: Vec<i64> = indptr
            .read_raw::<i64>()
            .map_err(|e| h5err(p, &format!("{f}/indptr"), e))?;
        let idx: Vec<i64> = indices
            .read_raw::<i64>()
            .map_err(|e| h5err(p, &format!("{f}/indices"), e))?;
        let vals: Vec<f32> = data
            .read_raw::<f32>()
            .map_err(|e| h5err(p, &format!("{f}/data"), e))?;
        let nnz = vals.len();
        if ip.first() != Some(&0)
            || ip.last().map(|&x| x as usize) != Some(nnz)
            || ip.windows(2).any(|w| w[1] < w[0])
        {
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
        let mut m = CsrMatrix {
            n_rows,
            n_cols,
            indptr: counts,
            indices: out_idx,
            data: out_val,
        };
        sort_rows_check_dups(&mut m, 0, p, f)?;
        *cache = Some(m);
        Ok(())
    }

    fn rows_dense(&self, start: usize, end: usize) -> Result<CsrMatrix> {
        let Store::Dense(ds) = &self.store else {
            bail!("internal: matrix storage kind mismatch")
        };
        let n_cols = self.genes.len();
        let block = (16usize << 20) / n_cols.max(1);
        let block = block.max(1);
        let mut m = CsrMatrix {
            n_rows: end - start,
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
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
                let Store::Csc {
                    cache: Some(full), ..
                } = &self.store
                else {
                    bail!("{}: internal: CSC cache missing", self.path.display())
                };
                slice_rows(full, start, end)
            }
        };
        check_values(
            &m,
            start,
            &self.path,
            &self.field,
            &self.cell_ids,
            &self.genes,
        )?;
        Ok(m)
    }
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
    fn field(&self) -> String {
        self.field.clone()
    }
}
