//! h5ad writers: copy an AnnData file adding obsm arrays, obs columns and one uns string, or write a
//! fresh file for inputs that are not h5ad. Both build the file under a temp name beside the output
//! (`io::atomic_write_with`) and rename it into place, so a failed write never leaves a partial file.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use hdf5::types::VarLenUnicode;
use hdf5::{File, Group, Location, LocationType};

use super::attrs::member_kind;
use super::frame::read_frame_meta;
use crate::cells::matrix::{CsrMatrix, ExpressionMatrix, ObsColumn};

/// One obsm entry: key, row-major values (n_obs × dim), dim.
pub type ObsmEntry<'a> = (String, &'a [f32], usize);

fn h5w<T>(r: hdf5::Result<T>, path: &Path, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("{}: writing {what}: {e}", path.display()))
}

fn vlen(s: &str, path: &Path, what: &str) -> Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>().map_err(|e| {
        anyhow!(
            "{}: {what}: string {:?} cannot be stored ({e})",
            path.display(),
            s
        )
    })
}

fn set_attr_str(loc: &Location, name: &str, value: &str, path: &Path) -> Result<()> {
    if loc
        .attr_names()
        .map(|a| a.iter().any(|n| n == name))
        .unwrap_or(false)
    {
        h5w(loc.delete_attr(name), path, name)?;
    }
    let v = vlen(value, path, name)?;
    let a = h5w(
        loc.new_attr::<VarLenUnicode>().shape(()).create(name),
        path,
        name,
    )?;
    h5w(a.write_scalar(&v), path, name)
}

fn set_attr_str_array(loc: &Location, name: &str, values: &[String], path: &Path) -> Result<()> {
    if loc
        .attr_names()
        .map(|a| a.iter().any(|n| n == name))
        .unwrap_or(false)
    {
        h5w(loc.delete_attr(name), path, name)?;
    }
    if values.is_empty() {
        // what anndata itself writes for an empty column list
        let empty: [f64; 0] = [];
        h5w(
            loc.new_attr_builder().with_data(&empty[..]).create(name),
            path,
            name,
        )?;
        return Ok(());
    }
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| vlen(s, path, name))
        .collect::<Result<_>>()?;
    h5w(
        loc.new_attr_builder().with_data(&v[..]).create(name),
        path,
        name,
    )?;
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
        bail!(
            "{}: invalid {what} key {key:?} (non-empty, no '/')",
            path.display()
        )
    }
    Ok(())
}

fn write_string_array(g: &Group, name: &str, values: &[String], path: &Path) -> Result<()> {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| vlen(s, path, name))
        .collect::<Result<_>>()?;
    let ds = h5w(
        g.new_dataset_builder().with_data(&v[..]).create(name),
        path,
        name,
    )?;
    set_encoding(&ds, "string-array", "0.2.0", path)
}

fn write_obs_column(g: &Group, name: &str, col: &ObsColumn, path: &Path) -> Result<()> {
    match col {
        ObsColumn::Text(v) => write_string_array(g, name, v, path),
        ObsColumn::Number(v) => {
            let ds = h5w(
                g.new_dataset_builder().with_data(&v[..]).create(name),
                path,
                name,
            )?;
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
            let ds = h5w(
                g.new_dataset_builder().with_data(view).create(key.as_str()),
                path,
                &format!("obsm/{key}"),
            )?;
            set_encoding(&ds, "array", "0.2.0", path)?;
        }
    }
    if !obs.is_empty() {
        let (g, fr) = read_frame_meta(path, file, "obs")?;
        let mut order = fr.columns.clone();
        for (name, col) in obs {
            check_key(name, "obs column", path)?;
            if name == &fr.index_name || name == "__categories" {
                bail!(
                    "{}: obs column name '{name}' is reserved (obs index)",
                    path.display()
                )
            }
            if obs_len(col) != n_obs {
                bail!(
                    "{}: obs/{name}: {} values for {n_obs} cells",
                    path.display(),
                    obs_len(col)
                )
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
        let ds = h5w(
            g.new_dataset::<VarLenUnicode>().shape(()).create(key),
            path,
            &format!("uns/{key}"),
        )?;
        h5w(ds.write_scalar(&v), path, &format!("uns/{key}"))?;
        set_encoding(&ds, "string", "0.2.0", path)?;
    }
    Ok(())
}

/// The writers only write into an existing directory (a mistyped output directory is an error, not
/// a new tree), and the output must name a file.
fn check_output_path(output: &Path) -> Result<()> {
    crate::cells::require_output_dir(output)?;
    if output.file_name().is_none() {
        bail!("{}: output path has no file name", output.display())
    }
    Ok(())
}

/// Flush the finished temp file to disk before it is renamed into place.
fn sync_file(tmp: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot sync temp file", tmp.display()))
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
    let n_obs = copy_target_n_obs(input, output, in_place)?;
    copy_and_open(input, output, |f| {
        add_annotations(f, output, n_obs, obsm, obs, uns_json)
    })
}

/// [`write_h5ad_with_obsm`] for one obsm array given as row blocks (`next_block` returns whole
/// rows in order, `None` at the end), so an array larger than memory is never held whole.
pub fn write_h5ad_with_obsm_blocks(
    input: &Path,
    output: &Path,
    (key, dim): (&str, usize),
    next_block: &mut dyn FnMut() -> Result<Option<Vec<f32>>>,
    obs: &[(String, ObsColumn)],
    uns_json: Option<(&str, &str)>,
) -> Result<()> {
    let n_obs = copy_target_n_obs(input, output, false)?;
    check_key(key, "obsm", output)?;
    if dim == 0 {
        bail!("{}: obsm/{key}: 0 dimensions", output.display())
    }
    copy_and_open(input, output, |f| {
        let g = get_or_create_dict(f, "obsm", output)?;
        let what = format!("obsm/{key}");
        if g.link_exists(key) {
            h5w(g.unlink(key), output, &what)?;
        }
        let ds = h5w(
            g.new_dataset::<f32>().shape((n_obs, dim)).create(key),
            output,
            &what,
        )?;
        let mut row = 0usize;
        while let Some(block) = next_block()? {
            let r = block.len() / dim;
            if block.len() % dim != 0 || row + r > n_obs {
                bail!(
                    "{}: {what}: the rows given do not form {n_obs} cells × {dim} dimensions",
                    output.display()
                )
            }
            let view = ndarray::ArrayView2::from_shape((r, dim), &block)
                .map_err(|e| anyhow!("{}: {what}: {e}", output.display()))?;
            h5w(ds.write_slice(view, (row..row + r, ..)), output, &what)?;
            row += r;
        }
        if row != n_obs {
            bail!(
                "{}: {what}: {row} rows written for {n_obs} cells",
                output.display()
            )
        }
        set_encoding(&ds, "array", "0.2.0", output)?;
        add_annotations(f, output, n_obs, &[], obs, uns_json)
    })
}

/// Checks that a copy of `input` may be written to `output` (not the input itself unless
/// `in_place`; a valid output path) and returns the input's number of cells.
fn copy_target_n_obs(input: &Path, output: &Path, in_place: bool) -> Result<usize> {
    if same_file(input, output) && !in_place {
        bail!(
            "{}: output is the input file; refusing to modify it (write to another path, or pass --in-place)",
            output.display()
        )
    }
    let f = super::open_untrusted(input)?;
    let (_, fr) = read_frame_meta(input, &f, "obs")?;
    check_output_path(output)?;
    Ok(fr.index.len())
}

/// Copies `input` to a temp file beside `output`, opens it for writing, lets `annotate` add to
/// it, syncs it and renames it into place.
fn copy_and_open(
    input: &Path,
    output: &Path,
    annotate: impl FnOnce(&File) -> Result<()>,
) -> Result<()> {
    crate::io::atomic_write_with(output, |tmp| {
        std::fs::copy(input, tmp)
            .with_context(|| format!("{}: cannot copy to {}", input.display(), tmp.display()))?;
        let mut perm = std::fs::metadata(tmp)
            .with_context(|| tmp.display().to_string())?
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(tmp, perm)
            .with_context(|| format!("{}: cannot make writable", tmp.display()))?;
        {
            let f = File::open_rw(tmp)
                .map_err(|e| anyhow!("{}: cannot open for writing: {e}", tmp.display()))?;
            annotate(&f)?;
            f.close()
                .map_err(|e| anyhow!("{}: closing: {e}", tmp.display()))?;
        }
        sync_file(tmp)
    })
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
    pub fn from_matrix(m: &'a ExpressionMatrix, with_x: bool) -> Self {
        Self {
            cell_ids: &m.cell_ids,
            genes: &m.genes,
            obs: &m.obs,
            x: with_x.then_some(&m.x),
        }
    }
}

fn write_frame(
    file: &File,
    name: &str,
    index: &[String],
    cols: &[(String, ObsColumn)],
    path: &Path,
) -> Result<()> {
    let g = h5w(file.create_group(name), path, name)?;
    set_encoding(&g, "dataframe", "0.2.0", path)?;
    set_attr_str(&g, "_index", "_index", path)?;
    write_string_array(&g, "_index", index, path)?;
    let mut order = Vec::new();
    for (c, col) in cols {
        check_key(c, &format!("{name} column"), path)?;
        if c == "_index" {
            bail!(
                "{}: {name} column name '_index' is reserved",
                path.display()
            )
        }
        if obs_len(col) != index.len() {
            bail!(
                "{}: {name}/{c}: {} values for {} rows",
                path.display(),
                obs_len(col),
                index.len()
            )
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
    check_output_path(output)?;
    crate::io::atomic_write_with(output, |tmp| {
        let f = File::create(tmp).map_err(|e| anyhow!("{}: cannot create: {e}", tmp.display()))?;
        set_encoding(&f, "anndata", "0.1.0", output)?;
        write_frame(&f, "obs", meta.cell_ids, meta.obs, output)?;
        write_frame(&f, "var", meta.genes, &[], output)?;
        if let Some(x) = meta.x {
            let g = h5w(f.create_group("X"), output, "X")?;
            set_encoding(&g, "csr_matrix", "0.1.0", output)?;
            let shape = [x.n_rows as i64, x.n_cols as i64];
            h5w(
                g.new_attr_builder().with_data(&shape[..]).create("shape"),
                output,
                "X shape",
            )?;
            h5w(
                g.new_dataset_builder()
                    .with_data(&x.data[..])
                    .create("data"),
                output,
                "X/data",
            )?;
            let ind: Vec<i32> = x.indices.iter().map(|&j| j as i32).collect();
            h5w(
                g.new_dataset_builder()
                    .with_data(&ind[..])
                    .create("indices"),
                output,
                "X/indices",
            )?;
            let ip: Vec<i64> = x.indptr.iter().map(|&p| p as i64).collect();
            h5w(
                g.new_dataset_builder().with_data(&ip[..]).create("indptr"),
                output,
                "X/indptr",
            )?;
        }
        for name in ["layers", "obsm", "obsp", "varm", "varp", "uns"] {
            get_or_create_dict(&f, name, output)?;
        }
        add_annotations(&f, output, n_obs, obsm, &[], uns_json)?;
        f.close()
            .map_err(|e| anyhow!("{}: closing: {e}", tmp.display()))?;
        sync_file(tmp)
    })
}
