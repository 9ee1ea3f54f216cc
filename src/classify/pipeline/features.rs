//! Reading what `celltext classify` works on: the cells and their labels (obs), and the feature
//! sources (obsm embeddings, embedding files, or the count baseline), checked for shape, duplicate
//! names and non-finite values before anything is trained.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::arguments::{ClassifyArgs, CountBaseline, FeatureSpace};
use super::report::{ClassCount, FeatureInfo};
use super::{say, MAX_DENSE_COUNTS};
use crate::cells::matrix::{is_missing_label, CsrMatrix, ObsColumn};
use crate::cells::normalize::Normalization;
use crate::cells::read::{find_obs_column, open_matrix, read_matrix, InputKind, ReadOptions};
use crate::cells::standard_pca::{standard_pca, StandardPcaParams};
use crate::io::sha256_file;

/// One feature source: what it is, and its row-major `n_cells × dim` values.
pub(super) struct Feature {
    pub info: FeatureInfo,
    pub data: Vec<f32>,
}

/// The cells, their labels and the classes (the sorted distinct non-empty labels).
pub(super) struct Labels {
    pub cell_ids: Vec<String>,
    pub obs: Vec<(String, ObsColumn)>,
    /// Class names, sorted; a class is its index here.
    pub names: Vec<String>,
    /// Labelled cells per class name.
    pub class_counts: BTreeMap<String, usize>,
    pub classes: Vec<ClassCount>,
    /// Class of every cell; `usize::MAX` for an empty label.
    pub y: Vec<usize>,
    /// Labelled cells (indices), ascending.
    pub labelled: Vec<usize>,
    /// Classes of `labelled`, in the same order.
    pub y_lab: Vec<usize>,
    pub n_unlabelled: usize,
    /// Classes with fewer than 2 labelled cells.
    pub small_classes: Vec<String>,
}

impl Labels {
    pub fn n_cells(&self) -> usize {
        self.cell_ids.len()
    }
}

/// Cell ids and obs columns.
type CellsAndObs = (Vec<String>, Vec<(String, ObsColumn)>);

#[cfg(feature = "h5ad")]
fn h5ad_obs(path: &Path) -> Result<CellsAndObs> {
    crate::cells::h5ad::read_h5ad_obs(path)
}

#[cfg(feature = "h5ad")]
fn read_obsm(path: &Path, key: &str) -> Result<(Vec<f32>, usize)> {
    let keys = crate::cells::h5ad::obsm_keys(path)?;
    if !keys.iter().any(|k| k == key) {
        if keys.is_empty() {
            bail!(
                "{}: --embedding {key}: obsm/{key} not found; this file has no obsm entries. Store an embedding \
                 in obsm, pass it as --embedding-file F.npy|F.safetensors, or classify on counts with --on counts",
                path.display()
            );
        }
        bail!(
            "{}: --embedding {key}: obsm/{key} not found; available obsm keys: {}",
            path.display(),
            keys.join(", ")
        );
    }
    crate::cells::h5ad::read_obsm(path, key)
}

#[cfg(not(feature = "h5ad"))]
pub(super) fn no_h5ad(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: this celltext was built without the `h5ad` feature",
        path.display()
    )
}
#[cfg(not(feature = "h5ad"))]
fn h5ad_obs(path: &Path) -> Result<CellsAndObs> {
    Err(no_h5ad(path))
}
#[cfg(not(feature = "h5ad"))]
fn read_obsm(path: &Path, _key: &str) -> Result<(Vec<f32>, usize)> {
    Err(no_h5ad(path))
}

/// Cell ids and obs columns of any supported input.
fn load_obs(input: &Path, kind: InputKind) -> Result<CellsAndObs> {
    if kind == InputKind::H5ad {
        h5ad_obs(input)
    } else {
        let src = open_matrix(input, &ReadOptions::default())?;
        Ok((src.cell_ids().to_vec(), src.obs().to_vec()))
    }
}

/// Reads obs and the `--label` column: classes, each cell's class, and notes on cells with an
/// empty label and on classes too small to be both trained and tested.
pub(super) fn load_labels(
    args: &ClassifyArgs,
    kind: InputKind,
    notes: &mut Vec<String>,
) -> Result<Labels> {
    say(args.quiet, format!("reading {}", args.input.display()));
    let (cell_ids, obs) = load_obs(&args.input, kind)?;
    let n_cells = cell_ids.len();
    if n_cells == 0 {
        bail!("{}: the input has no cells", args.input.display());
    }
    let label_col = find_obs_column(&obs, &args.label, Some(&args.input)).context("--label")?;
    let raw_labels = label_col.to_labels();
    let mut class_counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in raw_labels.iter().filter(|l| !is_missing_label(l)) {
        *class_counts.entry(l.trim().to_string()).or_insert(0) += 1;
    }
    let names: Vec<String> = class_counts.keys().cloned().collect();
    let classes: Vec<ClassCount> = class_counts
        .iter()
        .map(|(n, &c)| ClassCount {
            name: n.clone(),
            n_cells: c,
        })
        .collect();
    if names.len() < 2 {
        bail!(
            "{}: obs column '{}' has {} distinct non-empty label(s); classification needs at least 2 classes",
            args.input.display(),
            args.label,
            names.len()
        );
    }
    let class_of: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let y: Vec<usize> = raw_labels
        .iter()
        .map(|l| {
            if is_missing_label(l) {
                usize::MAX
            } else {
                class_of[l.trim()]
            }
        })
        .collect();
    let labelled: Vec<usize> = (0..n_cells).filter(|&i| y[i] != usize::MAX).collect();
    let n_unlabelled = n_cells - labelled.len();
    if n_unlabelled > 0 {
        notes.push(format!(
            "{n_unlabelled} cells have an empty label in '{}' and were excluded from training and scoring; they still get a prediction (split 'unlabeled')",
            args.label
        ));
    }
    let small_classes: Vec<String> = classes
        .iter()
        .filter(|c| c.n_cells < 2)
        .map(|c| c.name.clone())
        .collect();
    if !small_classes.is_empty() {
        let desc: Vec<String> = small_classes
            .iter()
            .map(|c| format!("'{c}' ({} cell)", class_counts[c]))
            .collect();
        notes.push(format!(
            "classes with fewer than 2 labelled cells: {}; they cannot be both trained and tested{}",
            desc.join(", "),
            if args.split_column.is_none() { ", so they are kept in training and excluded from stratification" } else { "" }
        ));
    }
    let y_lab: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();
    Ok(Labels {
        cell_ids,
        obs,
        names,
        class_counts,
        classes,
        y,
        labelled,
        y_lab,
        n_unlabelled,
        small_classes,
    })
}

fn check_finite(f: &Feature, cell_ids: &[String]) -> Result<()> {
    let dim = f.info.dim;
    if let Some(p) = f.data.iter().position(|v| !v.is_finite()) {
        let row = p / dim;
        bail!(
            "{} ({}): value {} at cell {row}{} column {} is not finite; impute or drop such cells first",
            f.info.origin,
            f.info.name,
            f.data[p],
            cell_ids.get(row).map(|c| format!(" ('{c}')")).unwrap_or_default(),
            p % dim
        );
    }
    Ok(())
}

fn load_embedding_file(path: &Path, n_cells: usize) -> Result<Feature> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (data, n, dim) = match ext.as_str() {
        "npy" => crate::io::read_npy_f32(path)?,
        "safetensors" => {
            let (d, n, dim, _) = crate::io::read_embeddings_safetensors(path)?;
            (d, n, dim)
        }
        _ => bail!(
            "{}: --embedding-file must end in .npy or .safetensors",
            path.display()
        ),
    };
    if n != n_cells {
        bail!(
            "{}: --embedding-file has {n} rows but the input has {n_cells} cells; rows must be the input's cells, in input order",
            path.display()
        );
    }
    if dim == 0 {
        bail!("{}: --embedding-file has 0 columns", path.display());
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(Feature {
        info: FeatureInfo {
            name,
            kind: "file".into(),
            origin: path.display().to_string(),
            dim,
            sha256: Some(sha256_file(path)?),
        },
        data,
    })
}

/// The counts feature: scanpy's standard PCA baseline (default) or log1p-CP10k of every
/// detected gene as a dense cells × genes matrix.
fn load_counts(args: &ClassifyArgs, n_cells: usize, notes: &mut Vec<String>) -> Result<Feature> {
    let opts = ReadOptions {
        layer: args.layer.clone(),
        ..ReadOptions::default()
    };
    let m = read_matrix(&args.input, &opts)?;
    let field = match &args.layer {
        Some(l) => format!("layers/{l}"),
        None => "X".to_string(),
    };
    if m.x.n_rows != n_cells {
        bail!(
            "{}: {field} has {} rows but obs has {n_cells} cells",
            args.input.display(),
            m.x.n_rows
        );
    }
    if m.x.data.iter().any(|&v| v.fract() != 0.0) {
        notes.push(format!(
            "--on counts: {field} has non-integer values, so it may not hold raw counts (it was normalized again); \
             point --layer at the raw counts (e.g. --layer counts)"
        ));
    }
    if args.baseline == CountBaseline::Pca {
        return standard_pca_feature(args, &m.x, &field, notes);
    }
    let norm = Normalization::Log1pCp10k
        .apply(&m.x)
        .with_context(|| {
            format!(
                "{}: {field}: log1p-CP10k normalization",
                args.input.display()
            )
        })?
        .x;
    let mut keep = vec![false; norm.n_cols];
    for (&j, &v) in norm.indices.iter().zip(&norm.data) {
        if v != 0.0 {
            keep[j as usize] = true;
        }
    }
    let cols: Vec<usize> = (0..norm.n_cols).filter(|&j| keep[j]).collect();
    if cols.is_empty() {
        bail!(
            "{}: {field}: every value is 0; nothing to classify on",
            args.input.display()
        );
    }
    let dim = cols.len();
    if n_cells.saturating_mul(dim) > MAX_DENSE_COUNTS {
        bail!(
            "{}: --on counts needs a dense {n_cells} × {dim} matrix ({} values, more than the {} allowed); \
             classify on an embedding instead (--embedding KEY)",
            args.input.display(),
            n_cells * dim,
            MAX_DENSE_COUNTS
        );
    }
    let mut pos = vec![usize::MAX; norm.n_cols];
    for (p, &j) in cols.iter().enumerate() {
        pos[j] = p;
    }
    let mut data = vec![0f32; n_cells * dim];
    for i in 0..n_cells {
        for (j, v) in norm.row(i) {
            if pos[j] != usize::MAX {
                data[i * dim + pos[j]] = v;
            }
        }
    }
    notes.push(format!(
        "--on counts: cosine KNN on log1p-CP10k of {field} ({dim} of {} genes detected in at least one cell)",
        norm.n_cols
    ));
    Ok(Feature {
        info: FeatureInfo {
            name: format!("counts (log1p-CP10k, {field})"),
            kind: "counts".into(),
            origin: format!("{}:{field}", args.input.display()),
            dim,
            sha256: None,
        },
        data,
    })
}

/// scanpy's standard pipeline on the counts (normalize_total → log1p → HVG → scale → PCA).
fn standard_pca_feature(
    args: &ClassifyArgs,
    counts: &CsrMatrix,
    field: &str,
    notes: &mut Vec<String>,
) -> Result<Feature> {
    let params = StandardPcaParams {
        n_top_genes: args.n_top_genes,
        n_comps: args.n_comps,
        ..StandardPcaParams::default()
    };
    let out = standard_pca(counts, &params)
        .with_context(|| format!("{}: {field}: standard PCA baseline", args.input.display()))?;
    let k = out.pca.k;
    if k < args.n_comps {
        notes.push(format!(
            "--n-comps {}: lowered to {k} (at most min(cells, highly variable genes) − 1)",
            args.n_comps
        ));
    }
    notes.push(format!(
        "--on counts: scanpy's standard baseline on {field}: normalize_total(1e4) → log1p → {} highly variable genes (seurat) → scale (clip 10) → PCA {k} ({:.1} % of the variance)",
        out.genes.len(),
        100.0 * out.pca.explained_variance_ratio.iter().sum::<f64>()
    ));
    Ok(Feature {
        info: FeatureInfo {
            name: format!("PCA-{k} ({} HVG, {field})", out.genes.len()),
            kind: "pca".into(),
            origin: format!("{}:{field}", args.input.display()),
            dim: k,
            sha256: None,
        },
        data: out.pca.coords,
    })
}

/// The feature sources in order: obsm keys, then embedding files, or the counts; each checked
/// for its shape, a unique name and finite values.
pub(super) fn load_features(
    args: &ClassifyArgs,
    cell_ids: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<Feature>> {
    let n_cells = cell_ids.len();
    let mut feats: Vec<Feature> = Vec::new();
    for key in &args.embeddings {
        say(args.quiet, format!("reading obsm/{key}"));
        let (data, dim) = read_obsm(&args.input, key)?;
        if dim == 0 || data.len() != n_cells * dim {
            bail!(
                "{}: obsm/{key} has {} values, not {n_cells} cells × {dim} dimensions",
                args.input.display(),
                data.len()
            );
        }
        feats.push(Feature {
            info: FeatureInfo {
                name: key.clone(),
                kind: "obsm".into(),
                origin: format!("obsm/{key}"),
                dim,
                sha256: None,
            },
            data,
        });
    }
    for f in &args.embedding_files {
        say(args.quiet, format!("reading {}", f.display()));
        feats.push(load_embedding_file(f, n_cells)?);
    }
    if args.on == FeatureSpace::Counts {
        say(args.quiet, "reading and normalizing counts");
        feats.push(load_counts(args, n_cells, notes)?);
    }
    for (i, f) in feats.iter().enumerate() {
        if feats[..i].iter().any(|g| g.info.name == f.info.name) {
            bail!("embedding '{}' is given twice; give each source once (files are named by their stem)", f.info.name);
        }
        check_finite(f, cell_ids)?;
    }
    Ok(feats)
}
