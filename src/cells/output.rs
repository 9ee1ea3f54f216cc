//! What every cell command writes, through one writer: [`CellVectors`] (row ids, vectors,
//! per-cell obs columns) into a [`CellOutput`] as an .h5ad (a copy of the input, or the input
//! itself with --in-place, with the vectors in obsm; a new file built from a non-h5ad input),
//! .npy / .safetensors rows, or one shard's .npy ([`Placement`]).
//!
//! The output contract (src/outputs.rs): the vectors' file is committed first, the manifest last;
//! the manifest records the vectors' sha256 (`output_sha256`; a shard's part record), so a run
//! killed between the two renames leaves a pair a reader tells apart ([`verify_output`]).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use crate::cells::matrix::{ExpressionMatrix, ObsColumn};
use crate::io::{manifest_path, write_embeddings, write_json};
use crate::shard::ShardInfo;

/// Where to write cell vectors: an .h5ad (copy of the input + obsm) or .npy/.safetensors.
pub struct CellOutput {
    pub path: PathBuf,
    pub in_place: bool,
    /// obsm key suffix: `X_celltext_<name>`; the manifest goes to `uns/celltext_<name>`.
    pub name: String,
}

/// Cell vectors as a command hands them to [`CellOutput::write`]: one row of `dim` values per
/// id, and the per-cell obs columns written beside them.
pub struct CellVectors<'a> {
    pub cell_ids: &'a [String],
    pub data: &'a [f32],
    pub dim: usize,
    pub obs: Vec<(String, ObsColumn)>,
}

/// Which output the vectors make.
pub enum Placement<'a> {
    /// The whole output. `input` and `cells` are what the command read: an .h5ad output of an
    /// .h5ad input copies it, of any other input it is built from `cells` (ids, genes, X, obs).
    /// `key`: the obsm key (default `X_celltext_<name>`).
    Whole {
        input: &'a Path,
        cells: &'a ExpressionMatrix,
        key: Option<&'a str>,
    },
    /// One shard's .npy: `info` says which rows, `rows` holds the per-row values `merge` gathers
    /// (the writer adds the ids, the obs columns and the output's name).
    Shard { info: ShardInfo, rows: Value },
}

pub(crate) fn is_h5ad(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"))
}

/// The obs columns as `[[name, values], …]` for a shard's manifest (`merge` reads them back).
pub fn obs_json(obs: &[(String, ObsColumn)]) -> Value {
    let cols: Vec<Value> = obs
        .iter()
        .map(|(k, c)| match c {
            ObsColumn::Number(v) => json!([k, v]),
            ObsColumn::Text(v) => json!([k, v]),
        })
        .collect();
    Value::Array(cols)
}

impl CellOutput {
    /// Check the output before any work: `--name` (see [`check_output_name`]), an h5ad's folder
    /// exists; then take the output's lock, held until the returned guard is dropped.
    pub fn prepare(&self) -> Result<crate::outputs::OutputLock> {
        check_output_name(&self.name)?;
        if is_h5ad(&self.path) {
            crate::cells::require_output_dir(&self.path)?;
        }
        crate::outputs::OutputLock::acquire(&self.path)
    }

    /// [`prepare`](Self::prepare) after the output contract's overlap check: the output and its
    /// manifest may not be, contain or lie inside any of `inputs` (with --in-place the output is
    /// the input on purpose; only its manifest is checked).
    pub fn prepare_apart(&self, inputs: &[&Path]) -> Result<crate::outputs::OutputLock> {
        let m = crate::io::manifest_path(&self.path);
        let outs: Vec<&Path> = if self.in_place {
            vec![&m]
        } else {
            vec![&self.path, &m]
        };
        crate::outputs::check_apart(&outs, inputs)?;
        self.prepare()
    }

    /// Write `vectors` as `placement` says, then the manifest (`manifest` plus what identifies
    /// the written vectors), last; returns what was written, in words.
    pub fn write(
        &self,
        vectors: CellVectors,
        placement: Placement,
        mut manifest: Value,
    ) -> Result<String> {
        let n = vectors.cell_ids.len();
        if vectors.data.len() != n * vectors.dim {
            bail!(
                "internal: {} values for {n} cells of {} dimensions",
                vectors.data.len(),
                vectors.dim
            );
        }
        let (input, cells, key) = match placement {
            Placement::Shard { info, mut rows } => {
                rows["name"] = json!(self.name);
                if !vectors.obs.is_empty() {
                    rows["obs"] = obs_json(&vectors.obs);
                }
                let (ids, data, dim) = (vectors.cell_ids, vectors.data, vectors.dim);
                return crate::shard::write_shard_file(
                    &self.path, info, manifest, ids, data, dim, rows,
                );
            }
            Placement::Whole { input, cells, key } => (input, cells, key),
        };
        let written = if is_h5ad(&self.path) {
            let key = key.map_or_else(|| format!("X_celltext_{}", self.name), str::to_string);
            self.write_h5ad(input, cells, &key, vectors, &manifest)?;
            format!("obsm['{key}']")
        } else {
            let ids = Some(vectors.cell_ids);
            write_embeddings(&self.path, vectors.data, n, vectors.dim, ids)?;
            format!("{n} rows")
        };
        commit_manifest(&self.path, &mut manifest)?;
        Ok(written)
    }

    /// [`write`](Self::write) of vectors that arrive a block of rows at a time (`merge`), never
    /// all in memory for .h5ad and .npy: an .h5ad copy of the .h5ad `input` with
    /// `obsm/X_celltext_<name>`, the obs columns and the manifest in `uns/celltext_<name>`, or
    /// .npy/.safetensors rows; then the manifest, last. Returns what was written, in words.
    pub fn write_blocks(
        &self,
        input: &Path,
        ids: &[String],
        blocks: &mut dyn FnMut() -> Result<Option<Vec<f32>>>,
        dim: usize,
        obs: Vec<(String, ObsColumn)>,
        manifest: &Value,
    ) -> Result<String> {
        if !is_h5ad(&self.path) {
            crate::io::write_embeddings_blocks(&self.path, ids, dim, blocks)?;
            commit_manifest(&self.path, &mut manifest.clone())?;
            return Ok(format!("{} rows", ids.len()));
        }
        let key = format!("X_celltext_{}", self.name);
        let uns = (
            format!("celltext_{}", self.name),
            serde_json::to_string(manifest)?,
        );
        #[cfg(feature = "h5ad")]
        {
            crate::cells::h5ad::write_h5ad_with_obsm_blocks(
                input,
                &self.path,
                (&key, dim),
                blocks,
                &obs,
                Some((&uns.0, &uns.1)),
            )?;
            commit_manifest(&self.path, &mut manifest.clone())?;
            Ok(format!("obsm['{key}']"))
        }
        #[cfg(not(feature = "h5ad"))]
        {
            let _ = (input, blocks, obs, uns, key);
            bail!("this build has no h5ad support (rebuild with the default `h5ad` feature)");
        }
    }

    /// The .h5ad output: the input copied (or rewritten in place) with `obsm/<key>`, the obs
    /// columns and the manifest JSON in `uns/celltext_<name>`, or a new file from `cells`.
    #[cfg(feature = "h5ad")]
    fn write_h5ad(
        &self,
        input: &Path,
        cells: &ExpressionMatrix,
        key: &str,
        vectors: CellVectors,
        manifest: &Value,
    ) -> Result<()> {
        let uns_key = format!("celltext_{}", self.name);
        let json = serde_json::to_string(manifest)?;
        let obsm = [(key.to_string(), vectors.data, vectors.dim)];
        let uns = Some((uns_key.as_str(), json.as_str()));
        if is_h5ad(input) {
            let (out, in_place) = (&self.path, self.in_place);
            crate::cells::h5ad::write_h5ad_with_obsm(input, out, in_place, &obsm, &vectors.obs, uns)
        } else {
            let mut all_obs = cells.obs.clone();
            all_obs.extend(vectors.obs);
            let meta = crate::cells::h5ad::NewH5ad {
                cell_ids: &cells.cell_ids,
                genes: &cells.genes,
                obs: &all_obs,
                x: Some(&cells.x),
            };
            crate::cells::h5ad::write_new_h5ad(&self.path, &meta, &obsm, uns)
        }
    }

    #[cfg(not(feature = "h5ad"))]
    fn write_h5ad(
        &self,
        _input: &Path,
        _cells: &ExpressionMatrix,
        _key: &str,
        _vectors: CellVectors,
        _manifest: &Value,
    ) -> Result<()> {
        bail!("this build has no h5ad support (rebuild with the default `h5ad` feature)")
    }
}

/// The commit marker of a one-file output: `output_sha256` of the committed `output` goes into
/// `manifest`, written last beside it (a kill before this leaves the old manifest, which no
/// longer matches; [`verify_output`] tells).
pub fn commit_manifest(output: &Path, manifest: &mut Value) -> Result<()> {
    manifest["output_sha256"] = json!(crate::io::sha256_file(output)?);
    write_json(&manifest_path(output), manifest)
}

/// Check that `output` is the file its manifest (`OUT.manifest.json`) was written for: the
/// recorded `output_sha256` must match. The error names both files and says to rerun.
pub fn verify_output(output: &Path) -> Result<()> {
    let m = manifest_path(output);
    let text = std::fs::read_to_string(&m).with_context(|| {
        format!(
            "{}: cannot read the manifest of {}",
            m.display(),
            output.display()
        )
    })?;
    let manifest: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON manifest", m.display()))?;
    let Some(want) = manifest.get("output_sha256").and_then(Value::as_str) else {
        bail!(
            "{}: records no output_sha256 (an older celltext wrote it); rerun the command that \
             wrote {}",
            m.display(),
            output.display()
        );
    };
    let got = crate::io::sha256_file(output)?;
    if got != want {
        bail!(
            "{}: sha256 {got} where its manifest {} records {want}: the two come from different \
             runs (a run killed between writing them, or a file replaced); rerun the command that \
             wrote it",
            output.display(),
            m.display()
        );
    }
    Ok(())
}

/// `--name` becomes the obsm key `X_celltext_NAME` (and uns/obs keys): non-empty, letters, digits,
/// `_`, `-` and `.` only (a `/` would make an HDF5 group; control characters break readers).
pub fn check_output_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!(
            "--name is empty; it names obsm['X_celltext_NAME'], so give it a value such as \
             --name genept_w"
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        bail!(
            "--name \"{}\": {} is not allowed; it names obsm['X_celltext_NAME'], so use letters, \
             digits, `_`, `-` and `.` only (e.g. --name genept_w)",
            crate::genes::store::escape_controls(name),
            match c {
                '/' => "`/` (an HDF5 group separator)".to_string(),
                c if c.is_control() => format!("the control character {:?}", c),
                c => format!("`{c}`"),
            }
        );
    }
    Ok(())
}
