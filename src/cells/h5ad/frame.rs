//! AnnData dataframes (`obs`, `var`, `raw/var`): the index, the column order and the column
//! encodings celltext reads (categorical, string and numeric arrays, nullable arrays, anndata 0.7
//! `__categories`); other encodings are skipped rather than failing the whole file.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use hdf5::{File, Group, LocationType};

use super::attrs::{attr_string, h5err, is_string_type, member_kind, read_numbers, read_strings};
use crate::cells::matrix::ObsColumn;

/// One dataframe column; `Ok(None)` for encodings celltext does not use (skipped).
pub(super) fn read_df_column(df: &Group, name: &str) -> Result<Option<ObsColumn>> {
    match member_kind(df, name) {
        Some(LocationType::Group) => {
            let g = df.group(name)?;
            let enc = attr_string(&g, "encoding-type")?.unwrap_or_default();
            match enc.as_str() {
                "categorical" => {
                    let codes =
                        read_numbers(&*g.dataset("codes").context("categorical without 'codes'")?)?;
                    let cats = read_strings(
                        &*g.dataset("categories")
                            .context("categorical without 'categories'")?,
                    )?;
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
                    anyhow!(
                        "categorical '{name}': code {c} of row {i} is beyond the {} categories",
                        cats.len()
                    )
                })
            }
        })
        .collect()
}

/// A dataframe group: its index and columns.
pub(super) struct Frame {
    pub(super) index: Vec<String>,
    /// column names in `column-order` (or member order for old files)
    pub(super) columns: Vec<String>,
    pub(super) index_name: String,
}

pub(super) fn read_frame_meta(path: &Path, file: &File, name: &str) -> Result<(Group, Frame)> {
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
        let ds = g
            .dataset(&index_name)
            .map_err(|e| h5err(path, &format!("{name}/{index_name}"), e))?;
        if ds.ndim() != 1 {
            bail!(
                "{}: {name}/{index_name} (the {name} index): expected a 1-D array of names, found shape {:?}",
                path.display(),
                ds.shape()
            )
        }
        read_strings(&ds).map_err(|e| h5err(path, &format!("{name}/{index_name} (index)"), e))?
    } else {
        bail!(
            "{}: {name}: index dataset '{index_name}' (named by the _index attribute) is missing",
            path.display()
        )
    };
    let columns = if g
        .attr_names()
        .map(|a| a.iter().any(|n| n == "column-order"))
        .unwrap_or(false)
    {
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
    Ok((
        g,
        Frame {
            index,
            columns,
            index_name,
        },
    ))
}

pub(super) fn read_frame_columns(
    path: &Path,
    g: &Group,
    fr: &Frame,
    what: &str,
) -> Result<Vec<(String, ObsColumn)>> {
    let mut out = Vec::new();
    for c in &fr.columns {
        if c == &fr.index_name {
            continue;
        }
        if let Some(col) =
            read_df_column(g, c).map_err(|e| h5err(path, &format!("{what}/{c}"), e))?
        {
            let len = match &col {
                ObsColumn::Text(v) => v.len(),
                ObsColumn::Number(v) => v.len(),
            };
            if len != fr.index.len() {
                bail!(
                    "{}: {what}/{c}: {len} values but the {what} index has {}",
                    path.display(),
                    fr.index.len()
                )
            }
            out.push((c.clone(), col));
        }
    }
    Ok(out)
}
