//! `celltext classify`: cell-type classifiers (cosine KNN or MLP) on embeddings or normalized
//! counts, with a Markdown/JSON report, plots and predictions written back into obs.
//!
//! # What runs
//!
//! - **Features.** `--embedding KEY` reads `obsm/KEY` (repeatable), `--embedding-file F` reads a
//!   `.npy` / `.safetensors` matrix whose rows are the input's cells in order (repeatable).
//!   `--on counts` instead uses the log1p-CP10k normalized count matrix (`X`, or
//!   `layers/<--layer>`), KNN only (cosine on the genes detected in at least one cell).
//! - **Labels.** An obs column; cells whose label is empty (`""`, NaN, `nan`) are excluded from
//!   training and scoring and counted; they still get a prediction (split `unlabeled`).
//!   Classes are the sorted distinct labels.
//! - **Splits** (indices of labelled cells): a stratified, seeded train/test split
//!   ([`split::stratified_split`], default 20 % test); or `--split-column` with values
//!   `train` / `test` / `val`; or `--folds K` stratified k-fold cross-validation
//!   ([`split::stratified_kfold`]), reported as mean ± sample sd (ddof 1) over folds, with the
//!   per-class table and confusion matrix pooled over the out-of-fold predictions. Classes with
//!   fewer than 2 labelled cells are listed; the stratified splits keep them in training only.
//! - **Predictors** ("arms"). One per run, or with several sources one per source plus the fused
//!   one. KNN fuses by concatenating the L2-normalized sources (each counts equally); the MLP
//!   fuses with [`Fusion::Concat`] or [`Fusion::Gated`] (per-source LayerNorm first). The fused
//!   (or only) arm is the *primary* one: its predictions go to obs and the heatmap.
//! - **k sweep.** `--k 1,3,5,…` (KNN) votes with every listed k that fits the training set
//!   (larger ones are skipped and noted); the *first* k listed (that fits) gives the predictions.
//!   With `--method mlp`, `--k` adds a KNN baseline sweep on the same sources.
//! - **Embedding quality** ([`EmbeddingQuality`]) of each source (and the fused KNN features)
//!   against the labels, on the labelled cells (a seeded subset of [`QUALITY_MAX_CELLS`] above
//!   that; for `--on counts` on the [`COUNTS_REDUCED_GENES`] highest-variance genes).
//! - **obs outputs** (`--output`): `celltext_pred`, `celltext_conf` (KNN vote share / MLP softmax
//!   probability) and `celltext_split` (`train`, `test`, `val`, `unlabeled`; with `--folds`,
//!   `fold1`…`foldK` for the fold a cell was tested in). Every cell gets a prediction from the
//!   primary arm: test/val/unlabelled cells from the model trained without them; training cells
//!   leave-one-out for KNN (the cell is removed from its own neighbours) and by the fitted model
//!   (resubstitution) for the MLP. With `--folds`, tested cells get their out-of-fold prediction
//!   and the others the first fold's model's.
//!
//! Everything random takes `--seed` (split, MLP, k-means, subsets), so the same inputs and seed
//! give the same report.json.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cells::matrix::ObsColumn;
use crate::cells::normalize::Normalization;
use crate::cells::read::{detect_kind, find_obs_column, open_matrix, read_matrix, InputKind, ReadOptions};
use crate::classify::knn::{l2_normalize_rows, CosineKnn, Neighbors, Prediction, Vote};
use crate::classify::mlp::{Fusion, MlpConfig, Source, TrainedMlp, TrainingHistory};
use crate::classify::split::{self, Split};
use crate::eval::clustering::EmbeddingQuality;
use crate::eval::embedding2d::pca_2d;
use crate::eval::metrics::ClassificationReport;
use crate::eval::plots;
use crate::io::{atomic_write, sha256_file, write_json, TOOL_VERSION};

/// k used when `--k` is not given (KNN).
pub const DEFAULT_K: usize = 10;
/// Above this many labelled cells, embedding-quality scores use a seeded random subset.
pub const QUALITY_MAX_CELLS: usize = 10_000;
/// Widest feature matrix given to the exact 2-D PCA; wider ones use their highest-variance columns.
pub const MAP_MAX_DIM: usize = 1024;
/// `--on counts`: genes (highest variance of log1p-CP10k) used for the 2-D map and quality scores.
pub const COUNTS_REDUCED_GENES: usize = 500;
/// `--on counts`: most values of the dense normalized matrix (cells × detected genes) allowed.
pub const MAX_DENSE_COUNTS: usize = 1 << 30;
/// obs column names written by `--output`.
pub const OBS_PRED: &str = "celltext_pred";
pub const OBS_CONF: &str = "celltext_conf";
pub const OBS_SPLIT: &str = "celltext_split";
/// uns key holding the run manifest (JSON) in the output h5ad.
pub const UNS_KEY: &str = "celltext_classify";

// ============================================================================ arguments

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Knn,
    Mlp,
}

impl FromStr for Method {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "knn" => Ok(Self::Knn),
            "mlp" => Ok(Self::Mlp),
            other => bail!("unknown --method '{other}'; use knn or mlp"),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Knn => "knn",
            Self::Mlp => "mlp",
        })
    }
}

/// What the classifier reads: embeddings, or the normalized count matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSpace {
    Embedding,
    Counts,
}

impl FromStr for FeatureSpace {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "embedding" | "embeddings" => Ok(Self::Embedding),
            "counts" => Ok(Self::Counts),
            other => bail!("unknown --on '{other}'; use embedding or counts"),
        }
    }
}

/// `--vote majority|distance`.
pub fn parse_vote(s: &str) -> Result<Vote> {
    match s.trim().to_ascii_lowercase().as_str() {
        "majority" => Ok(Vote::Majority),
        "distance" => Ok(Vote::Distance),
        other => bail!("unknown --vote '{other}'; use majority or distance"),
    }
}

/// `--fusion concat|gated`.
pub fn parse_fusion(s: &str) -> Result<Fusion> {
    match s.trim().to_ascii_lowercase().as_str() {
        "concat" => Ok(Fusion::Concat),
        "gated" => Ok(Fusion::Gated),
        other => bail!("unknown --fusion '{other}'; use concat or gated"),
    }
}

fn parse_positive_list(flag: &str, s: &str, example: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let t = part.trim();
        if t.is_empty() {
            bail!("{flag} '{s}': empty entry; give positive integers separated by commas, e.g. {flag} {example}");
        }
        let v: usize = t
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag} '{s}': '{t}' is not a positive integer; give positive integers separated by commas, e.g. {flag} {example}"))?;
        if v == 0 {
            bail!("{flag} '{s}': 0 is not allowed; every value must be at least 1, e.g. {flag} {example}");
        }
        out.push(v);
    }
    Ok(out)
}

/// `--k 1,3,5,10`: positive, distinct. The first value is the k used for predictions.
pub fn parse_k_list(s: &str) -> Result<Vec<usize>> {
    let ks = parse_positive_list("--k", s, "1,3,5,10,25,50,100,500")?;
    for (i, k) in ks.iter().enumerate() {
        if ks[..i].contains(k) {
            bail!("--k '{s}': k = {k} is listed twice; list each k once");
        }
    }
    Ok(ks)
}

/// `--hidden 256,128` (`none` for no hidden layer: a linear model).
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    parse_positive_list("--hidden", s, "256,128")
}

/// Everything `celltext classify` takes. Build with [`ClassifyArgs::new`] and adjust.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifyArgs {
    pub input: PathBuf,
    /// obs column with the cell-type labels.
    pub label: String,
    pub method: Method,
    pub on: FeatureSpace,
    /// obsm keys, in order.
    pub embeddings: Vec<String>,
    /// `.npy` / `.safetensors` files (rows = cells in input order), after the obsm keys.
    pub embedding_files: Vec<PathBuf>,
    /// `--on counts`: read `layers/<layer>` instead of X.
    pub layer: Option<String>,
    /// k values; `None` = `[DEFAULT_K]` for KNN and no baseline sweep for the MLP.
    pub ks: Option<Vec<usize>>,
    pub vote: Vote,
    pub test_fraction: f64,
    pub split_column: Option<String>,
    pub folds: Option<usize>,
    pub fusion: Fusion,
    /// MLP settings; `seed` and `fusion` are taken from the fields of this struct.
    pub mlp: MlpConfig,
    pub seed: u64,
    /// Directory for report.json, report.md and the plots.
    pub report_dir: Option<PathBuf>,
    /// Output h5ad: a copy of the input plus the obs columns.
    pub output: Option<PathBuf>,
    /// Allow `output` to be the input file (or write into the input when `output` is `None`).
    pub in_place: bool,
    #[serde(skip)]
    pub quiet: bool,
}

impl ClassifyArgs {
    /// Defaults: KNN, k = 10, majority vote, stratified 80/20, seed 0, default MLP settings.
    pub fn new(input: impl Into<PathBuf>, label: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            label: label.into(),
            method: Method::Knn,
            on: FeatureSpace::Embedding,
            embeddings: Vec::new(),
            embedding_files: Vec::new(),
            layer: None,
            ks: None,
            vote: Vote::Majority,
            test_fraction: split::DEFAULT_TEST_FRACTION,
            split_column: None,
            folds: None,
            fusion: Fusion::Concat,
            mlp: MlpConfig::default(),
            seed: 0,
            report_dir: None,
            output: None,
            in_place: false,
            quiet: false,
        }
    }

    fn effective_mlp(&self) -> MlpConfig {
        MlpConfig { seed: self.seed, fusion: self.fusion, ..self.mlp.clone() }
    }
}

// ============================================================================ report types

/// accuracy / weighted F1 / macro F1 / Cohen's kappa of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub accuracy: f64,
    pub weighted_f1: f64,
    pub macro_f1: f64,
    pub cohen_kappa: f64,
}

impl Scores {
    fn of(r: &ClassificationReport) -> Self {
        Self { accuracy: r.accuracy, weighted_f1: r.weighted_f1, macro_f1: r.macro_f1, cohen_kappa: r.cohen_kappa }
    }
    fn values(&self) -> [f64; 4] {
        [self.accuracy, self.weighted_f1, self.macro_f1, self.cohen_kappa]
    }
    fn from_values(v: [f64; 4]) -> Self {
        Self { accuracy: v[0], weighted_f1: v[1], macro_f1: v[2], cohen_kappa: v[3] }
    }
    /// Mean and sample standard deviation (ddof 1) over folds.
    pub fn mean_sd(all: &[Scores]) -> (Scores, Scores) {
        let n = all.len() as f64;
        let mut mean = [0.0; 4];
        let mut sd = [0.0; 4];
        for m in 0..4 {
            mean[m] = all.iter().map(|s| s.values()[m]).sum::<f64>() / n;
            sd[m] = if all.len() < 2 {
                0.0
            } else {
                (all.iter().map(|s| (s.values()[m] - mean[m]).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            };
        }
        (Self::from_values(mean), Self::from_values(sd))
    }
}

/// One predictor: a source alone, or the fused sources.
#[derive(Debug, Clone, Serialize)]
pub struct ArmResult {
    pub name: String,
    pub sources: Vec<String>,
    /// How several sources are combined (None for one source).
    pub fusion: Option<String>,
    /// Whether this arm's predictions are the ones in obs and the heatmap.
    pub primary: bool,
    /// KNN k used for this arm's predictions.
    pub k: Option<usize>,
    /// Test scores; with `--folds`, their mean over folds.
    pub scores: Scores,
    /// With `--folds`: sample standard deviation over folds.
    pub sd: Option<Scores>,
    /// With `--folds`: each fold's test scores.
    pub fold_scores: Vec<Scores>,
    /// Per-class metrics and confusion matrix on the test cells (pooled out-of-fold with `--folds`).
    pub test: ClassificationReport,
    /// Scores on `val` cells of `--split-column`, if any.
    pub val: Option<ClassificationReport>,
    /// MLP training history, one per split (fold).
    pub training: Vec<TrainingHistory>,
}

/// One row of the k sweep.
#[derive(Debug, Clone, Serialize)]
pub struct KRow {
    pub k: usize,
    pub scores: Scores,
    pub sd: Option<Scores>,
    pub fold_scores: Vec<Scores>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KSweepResult {
    /// What the sweep classifies (the primary KNN features).
    pub features: String,
    pub vote: Vote,
    /// Rows sorted by k.
    pub rows: Vec<KRow>,
    /// k values that were not run (larger than the smallest training set).
    pub skipped: Vec<usize>,
    /// Smallest training set over the splits.
    pub n_train: usize,
    /// k whose predictions are reported (KNN): the first listed k that fits.
    pub predict_k: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualityResult {
    pub embedding: String,
    /// Cells scored (labelled cells, or a seeded subset of them).
    pub n_cells: usize,
    pub dim: usize,
    pub note: Option<String>,
    pub metrics: Option<EmbeddingQuality>,
    /// Why the scores could not be computed, if so.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureInfo {
    pub name: String,
    /// `obsm`, `file` or `counts`.
    pub kind: String,
    /// obsm path, file path or matrix field.
    pub origin: String,
    pub dim: usize,
    pub sha256: Option<String>,
}

/// How cells were split. Indices are 0-based rows of the input.
#[derive(Debug, Clone, Serialize)]
pub struct SplitInfo {
    /// `stratified`, `column` or `kfold`.
    pub kind: String,
    pub seed: u64,
    pub test_fraction: Option<f64>,
    pub column: Option<String>,
    pub n_folds: Option<usize>,
    pub n_train: Vec<usize>,
    pub n_test: Vec<usize>,
    pub n_val: usize,
    /// stratified: the training cells (empty for column / kfold).
    pub train: Vec<usize>,
    /// stratified: the test cells; kfold: see `fold_test`.
    pub test: Vec<usize>,
    /// kfold: the test cells of each fold.
    pub fold_test: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: Option<String>,
    pub parameters: ClassifyArgs,
    pub features: Vec<FeatureInfo>,
    pub split: SplitInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassCount {
    pub name: String,
    pub n_cells: usize,
}

/// The primary predictor's headline numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub predictor: String,
    pub k: Option<usize>,
    pub accuracy: f64,
    pub weighted_f1: f64,
    pub macro_f1: f64,
    pub cohen_kappa: f64,
    pub sd: Option<Scores>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassifyReport {
    pub manifest: Manifest,
    pub method: Method,
    pub label_column: String,
    pub n_cells: usize,
    pub n_labelled: usize,
    /// Cells with an empty label (excluded from training and scoring).
    pub n_unlabelled: usize,
    pub classes: Vec<ClassCount>,
    /// Classes with fewer than 2 labelled cells (not stratified; never tested by the stratified splits).
    pub small_classes: Vec<String>,
    pub summary: Summary,
    pub results: Vec<ArmResult>,
    pub k_sweep: Option<KSweepResult>,
    pub quality: Vec<QualityResult>,
    pub notes: Vec<String>,
    /// Files written (report files relative to the report directory; the output h5ad as given).
    pub files: Vec<String>,
}

/// report.json's text (what `--json` prints).
pub fn report_json(report: &ClassifyReport) -> Result<String> {
    let mut s = serde_json::to_string_pretty(report)?;
    s.push('\n');
    Ok(s)
}

// ============================================================================ inputs

struct Feature {
    info: FeatureInfo,
    data: Vec<f32>,
}

fn say(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("celltext classify: {}", msg.as_ref());
    }
}

fn is_missing_label(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("nan")
}

#[cfg(feature = "h5ad")]
fn h5ad_obs(path: &Path) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
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
        bail!("{}: --embedding {key}: obsm/{key} not found; available obsm keys: {}", path.display(), keys.join(", "));
    }
    crate::cells::h5ad::read_obsm(path, key)
}

#[cfg(feature = "h5ad")]
fn write_output(input: &Path, output: &Path, in_place: bool, obs: &[(String, ObsColumn)], uns: &str) -> Result<()> {
    crate::cells::h5ad::write_h5ad_with_obsm(input, output, in_place, &[], obs, Some((UNS_KEY, uns)))
}

#[cfg(not(feature = "h5ad"))]
fn no_h5ad(path: &Path) -> anyhow::Error {
    anyhow::anyhow!("{}: this celltext was built without the `h5ad` feature", path.display())
}
#[cfg(not(feature = "h5ad"))]
fn h5ad_obs(path: &Path) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
    Err(no_h5ad(path))
}
#[cfg(not(feature = "h5ad"))]
fn read_obsm(path: &Path, _key: &str) -> Result<(Vec<f32>, usize)> {
    Err(no_h5ad(path))
}
#[cfg(not(feature = "h5ad"))]
fn write_output(input: &Path, _output: &Path, _in_place: bool, _obs: &[(String, ObsColumn)], _uns: &str) -> Result<()> {
    Err(no_h5ad(input))
}

/// Cell ids and obs columns of any supported input.
fn load_obs(input: &Path, kind: InputKind) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
    if kind == InputKind::H5ad {
        h5ad_obs(input)
    } else {
        let src = open_matrix(input, &ReadOptions::default())?;
        Ok((src.cell_ids().to_vec(), src.obs().to_vec()))
    }
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
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let (data, n, dim) = match ext.as_str() {
        "npy" => crate::io::read_npy_f32(path)?,
        "safetensors" => {
            let (d, n, dim, _) = crate::io::read_embeddings_safetensors(path)?;
            (d, n, dim)
        }
        _ => bail!("{}: --embedding-file must end in .npy or .safetensors", path.display()),
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
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
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

/// log1p-CP10k of the counts as a dense cells × (detected genes) matrix.
fn load_counts(args: &ClassifyArgs, n_cells: usize, notes: &mut Vec<String>) -> Result<Feature> {
    let opts = ReadOptions { layer: args.layer.clone(), ..ReadOptions::default() };
    let m = read_matrix(&args.input, &opts)?;
    let field = match &args.layer {
        Some(l) => format!("layers/{l}"),
        None => "X".to_string(),
    };
    if m.x.n_rows != n_cells {
        bail!("{}: {field} has {} rows but obs has {n_cells} cells", args.input.display(), m.x.n_rows);
    }
    if m.x.data.iter().any(|&v| v.fract() != 0.0) {
        notes.push(format!(
            "--on counts: {field} has non-integer values, so it may not hold raw counts (it was normalized again with log1p-CP10k); \
             point --layer at the raw counts (e.g. --layer counts)"
        ));
    }
    let norm = Normalization::Log1pCp10k
        .apply(&m.x)
        .with_context(|| format!("{}: {field}: log1p-CP10k normalization", args.input.display()))?
        .x;
    let mut keep = vec![false; norm.n_cols];
    for (&j, &v) in norm.indices.iter().zip(&norm.data) {
        if v != 0.0 {
            keep[j as usize] = true;
        }
    }
    let cols: Vec<usize> = (0..norm.n_cols).filter(|&j| keep[j]).collect();
    if cols.is_empty() {
        bail!("{}: {field}: every value is 0; nothing to classify on", args.input.display());
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

// ============================================================================ helpers

fn gather(x: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&x[i * dim..(i + 1) * dim]);
    }
    out
}

/// KNN features of several sources: each L2-normalized, then concatenated.
fn concat_normalized(feats: &[&Feature], n: usize) -> (Vec<f32>, usize) {
    let dim: usize = feats.iter().map(|f| f.info.dim).sum();
    let normed: Vec<Vec<f32>> = feats.iter().map(|f| l2_normalize_rows(&f.data, f.info.dim)).collect();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        for (f, x) in feats.iter().zip(&normed) {
            let d = f.info.dim;
            out.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
    }
    (out, dim)
}

/// Indices (ascending) of the `m` columns with the largest variance over `rows`; ties by index.
fn top_variance_columns(x: &[f32], dim: usize, rows: &[usize], m: usize) -> Vec<usize> {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; dim];
    for &i in rows {
        for (j, &v) in x[i * dim..(i + 1) * dim].iter().enumerate() {
            mean[j] += v as f64;
        }
    }
    mean.iter_mut().for_each(|v| *v /= n);
    let mut var = vec![0f64; dim];
    for &i in rows {
        for (j, &v) in x[i * dim..(i + 1) * dim].iter().enumerate() {
            var[j] += (v as f64 - mean[j]).powi(2);
        }
    }
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
    order.truncate(m.min(dim));
    order.sort_unstable();
    order
}

fn select_columns(x: &[f32], dim: usize, rows: &[usize], cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &i in rows {
        let r = &x[i * dim..(i + 1) * dim];
        out.extend(cols.iter().map(|&j| r[j]));
    }
    out
}

/// Leave-one-out KNN predictions for the training rows themselves: each row's own index is
/// removed from its neighbours (or, if an identical row displaced it, the farthest neighbour).
fn knn_loo(knn: &CosineKnn, train_x: &[f32], k: usize, vote: Vote) -> Result<Vec<Prediction>> {
    let n = knn.n_train();
    if n < 2 {
        return knn.predict(train_x, n, 1, vote);
    }
    let kk = k.min(n - 1);
    let nb = knn.kneighbors(train_x, n, kk + 1)?;
    let mut indices = Vec::with_capacity(n * kk);
    let mut sims = Vec::with_capacity(n * kk);
    for q in 0..n {
        let row = nb.row(q);
        let s = nb.sims(q);
        let drop = row.iter().position(|&j| j == q).unwrap_or(kk);
        for t in 0..=kk {
            if t != drop {
                indices.push(row[t]);
                sims.push(s[t]);
            }
        }
    }
    knn.vote(&Neighbors { k: kk, indices, similarities: sims }, kk, vote)
}

fn report_for(y_true: &[usize], y_pred: &[usize], names: &[String]) -> Result<ClassificationReport> {
    ClassificationReport::new(y_true, y_pred, names)
}

fn fmt_score(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.4}")
    }
}

fn fmt_pm(v: f64, sd: Option<f64>) -> String {
    match sd {
        Some(s) if !v.is_nan() => format!("{v:.4} ± {s:.4}"),
        _ => fmt_score(v),
    }
}

fn vote_name(v: Vote) -> &'static str {
    match v {
        Vote::Majority => "majority",
        Vote::Distance => "distance",
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

// ============================================================================ run

/// One predictor: which features it uses.
struct Arm {
    name: String,
    sources: Vec<usize>,
    fusion: Option<String>,
}

/// Predictions of one arm on one split.
struct ArmSplitOut {
    test: Vec<(usize, f32)>,
    val: Vec<(usize, f32)>,
    /// All cells (primary arm, first split only).
    all: Option<Vec<(usize, f32)>>,
    history: Option<TrainingHistory>,
}

/// Cell-index split (train / test / val).
struct CellSplit {
    train: Vec<usize>,
    test: Vec<usize>,
    val: Vec<usize>,
}

/// Run the classifier(s) and write the requested outputs.
pub fn run_classify(args: &ClassifyArgs) -> Result<ClassifyReport> {
    // ---- argument checks (before any heavy work)
    let (kind, _) = detect_kind(&args.input)?;
    let n_sources = args.embeddings.len() + args.embedding_files.len();
    match args.on {
        FeatureSpace::Counts => {
            if n_sources > 0 {
                bail!("--on counts classifies on the count matrix; drop --embedding / --embedding-file (or drop --on counts)");
            }
            if args.method == Method::Mlp {
                bail!("--on counts is for --method knn (cosine KNN on log1p-CP10k counts); for the MLP pass an embedding with --embedding KEY");
            }
        }
        FeatureSpace::Embedding => {
            if n_sources == 0 {
                bail!("no features: pass --embedding KEY (an obsm key), --embedding-file F.npy|F.safetensors, or --on counts");
            }
            if args.layer.is_some() {
                bail!("--layer only applies with --on counts (it says where the counts are)");
            }
        }
    }
    if !args.embeddings.is_empty() && kind != InputKind::H5ad {
        bail!("{}: --embedding reads obsm from an .h5ad input; for this input use --embedding-file", args.input.display());
    }
    if args.split_column.is_some() && args.folds.is_some() {
        bail!("--split-column and --folds both choose the split; give one of them");
    }
    if let Some(f) = args.folds {
        if f < 2 {
            bail!("--folds {f}: k-fold cross-validation needs at least 2 folds");
        }
    }
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        bail!("--test-fraction {} must be strictly between 0 and 1 (default {})", args.test_fraction, split::DEFAULT_TEST_FRACTION);
    }
    let ks_given = args.ks.clone();
    if let Some(ks) = &ks_given {
        if ks.is_empty() || ks.contains(&0) {
            bail!("--k needs positive values, e.g. --k 1,3,5,10");
        }
    }
    let output: Option<PathBuf> = match (&args.output, args.in_place) {
        (Some(o), _) => Some(o.clone()),
        (None, true) => Some(args.input.clone()),
        (None, false) => None,
    };
    if let Some(o) = &output {
        if kind != InputKind::H5ad {
            bail!("{}: --output writes a copy of an .h5ad input with the predictions in obs; this input is not .h5ad", args.input.display());
        }
        let same = match (std::fs::canonicalize(&args.input), std::fs::canonicalize(o)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same && !args.in_place {
            bail!("{}: --output is the input file; refusing to modify the input (write elsewhere, or pass --in-place)", o.display());
        }
    }
    let mlp_cfg = args.effective_mlp();
    let mut notes: Vec<String> = Vec::new();

    // ---- obs and labels
    say(args.quiet, format!("reading {}", args.input.display()));
    let (cell_ids, obs) = load_obs(&args.input, kind)?;
    let n_cells = cell_ids.len();
    if n_cells == 0 {
        bail!("{}: the input has no cells", args.input.display());
    }
    let label_col = find_obs_column(&obs, &args.label, Some(&args.input)).context("--label")?;
    let raw_labels = label_col.to_labels();
    let mut class_set: BTreeMap<String, usize> = BTreeMap::new();
    for l in raw_labels.iter().filter(|l| !is_missing_label(l)) {
        *class_set.entry(l.trim().to_string()).or_insert(0) += 1;
    }
    let names: Vec<String> = class_set.keys().cloned().collect();
    let classes: Vec<ClassCount> = class_set.iter().map(|(n, &c)| ClassCount { name: n.clone(), n_cells: c }).collect();
    if names.len() < 2 {
        bail!(
            "{}: obs column '{}' has {} distinct non-empty label(s); classification needs at least 2 classes",
            args.input.display(),
            args.label,
            names.len()
        );
    }
    let class_of: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    // y for every cell (usize::MAX = unlabelled)
    let y: Vec<usize> = raw_labels
        .iter()
        .map(|l| if is_missing_label(l) { usize::MAX } else { class_of[l.trim()] })
        .collect();
    let labelled: Vec<usize> = (0..n_cells).filter(|&i| y[i] != usize::MAX).collect();
    let n_unlabelled = n_cells - labelled.len();
    if n_unlabelled > 0 {
        notes.push(format!(
            "{n_unlabelled} cells have an empty label in '{}' and were excluded from training and scoring; they still get a prediction (split 'unlabeled')",
            args.label
        ));
    }
    let small_classes: Vec<String> = classes.iter().filter(|c| c.n_cells < 2).map(|c| c.name.clone()).collect();
    if !small_classes.is_empty() {
        let desc: Vec<String> = small_classes.iter().map(|c| format!("'{c}' ({} cell)", class_set[c])).collect();
        notes.push(format!(
            "classes with fewer than 2 labelled cells: {}; they cannot be both trained and tested{}",
            desc.join(", "),
            if args.split_column.is_none() { ", so they are kept in training and excluded from stratification" } else { "" }
        ));
    }
    let y_lab: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();

    // ---- splits (cell indices)
    let (splits, split_info): (Vec<CellSplit>, SplitInfo) = if let Some(col) = &args.split_column {
        let c = find_obs_column(&obs, col, Some(&args.input)).context("--split-column")?;
        let vals = c.to_labels();
        let (mut tr, mut te, mut va) = (Vec::new(), Vec::new(), Vec::new());
        for &i in &labelled {
            match vals[i].trim().to_ascii_lowercase().as_str() {
                "train" => tr.push(i),
                "test" => te.push(i),
                "val" => va.push(i),
                _ => bail!(
                    "{}: --split-column {col}: cell {i} ('{}') has value {:?}; every labelled cell's value must be train, test or val",
                    args.input.display(),
                    cell_ids[i],
                    vals[i]
                ),
            }
        }
        if tr.is_empty() || te.is_empty() {
            bail!(
                "{}: --split-column {col}: {} train and {} test cells among the labelled cells; both are needed",
                args.input.display(),
                tr.len(),
                te.len()
            );
        }
        let mut in_train = vec![false; names.len()];
        tr.iter().for_each(|&i| in_train[y[i]] = true);
        let absent: Vec<&str> = names.iter().enumerate().filter(|(c, _)| !in_train[*c]).map(|(_, n)| n.as_str()).collect();
        if !absent.is_empty() {
            notes.push(format!(
                "classes with no training cell in split column '{col}' (they cannot be predicted): {}",
                absent.join(", ")
            ));
        }
        let info = SplitInfo {
            kind: "column".into(),
            seed: args.seed,
            test_fraction: None,
            column: Some(col.clone()),
            n_folds: None,
            n_train: vec![tr.len()],
            n_test: vec![te.len()],
            n_val: va.len(),
            train: Vec::new(),
            test: Vec::new(),
            fold_test: Vec::new(),
        };
        (vec![CellSplit { train: tr, test: te, val: va }], info)
    } else {
        let to_cells = |s: &Split| CellSplit {
            train: s.train.iter().map(|&i| labelled[i]).collect(),
            test: s.test.iter().map(|&i| labelled[i]).collect(),
            val: s.val.iter().map(|&i| labelled[i]).collect(),
        };
        if let Some(k) = args.folds {
            let stratifiable = labelled.len() - small_classes.iter().map(|c| class_set[c]).sum::<usize>();
            if k > stratifiable {
                bail!("--folds {k}: only {stratifiable} labelled cells can be tested; use fewer folds");
            }
            let folds = split::stratified_kfold(&y_lab, &names, k, args.seed)?;
            let cs: Vec<CellSplit> = folds.iter().map(to_cells).collect();
            if let Some(f) = cs.iter().position(|s| s.test.is_empty() || s.train.is_empty()) {
                bail!("--folds {k}: fold {} has no test or no training cells; use fewer folds", f + 1);
            }
            let info = SplitInfo {
                kind: "kfold".into(),
                seed: args.seed,
                test_fraction: None,
                column: None,
                n_folds: Some(k),
                n_train: cs.iter().map(|s| s.train.len()).collect(),
                n_test: cs.iter().map(|s| s.test.len()).collect(),
                n_val: 0,
                train: Vec::new(),
                test: Vec::new(),
                fold_test: cs.iter().map(|s| s.test.clone()).collect(),
            };
            (cs, info)
        } else {
            let s = split::stratified_split(&y_lab, &names, args.test_fraction, args.seed)?;
            let cs = to_cells(&s);
            if cs.test.is_empty() {
                bail!("no test cells: every class has fewer than 2 labelled cells");
            }
            let info = SplitInfo {
                kind: "stratified".into(),
                seed: args.seed,
                test_fraction: Some(args.test_fraction),
                column: None,
                n_folds: None,
                n_train: vec![cs.train.len()],
                n_test: vec![cs.test.len()],
                n_val: 0,
                train: cs.train.clone(),
                test: cs.test.clone(),
                fold_test: Vec::new(),
            };
            (vec![cs], info)
        }
    };
    let n_folds = args.folds;

    // ---- features
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
            info: FeatureInfo { name: key.clone(), kind: "obsm".into(), origin: format!("obsm/{key}"), dim, sha256: None },
            data,
        });
    }
    for f in &args.embedding_files {
        say(args.quiet, format!("reading {}", f.display()));
        feats.push(load_embedding_file(f, n_cells)?);
    }
    if args.on == FeatureSpace::Counts {
        say(args.quiet, "reading and normalizing counts");
        feats.push(load_counts(args, n_cells, &mut notes)?);
    }
    for (i, f) in feats.iter().enumerate() {
        if feats[..i].iter().any(|g| g.info.name == f.info.name) {
            bail!("embedding '{}' is given twice; give each source once (files are named by their stem)", f.info.name);
        }
        check_finite(f, &cell_ids)?;
    }

    // ---- arms
    let mut arms: Vec<Arm> = Vec::new();
    if feats.len() == 1 {
        arms.push(Arm { name: feats[0].info.name.clone(), sources: vec![0], fusion: None });
    } else {
        for (i, f) in feats.iter().enumerate() {
            arms.push(Arm { name: f.info.name.clone(), sources: vec![i], fusion: None });
        }
        let all: Vec<usize> = (0..feats.len()).collect();
        let joined = feats.iter().map(|f| f.info.name.as_str()).collect::<Vec<_>>().join(" + ");
        let (name, fusion) = match args.method {
            Method::Knn => (format!("fused: {joined} (L2-normalized concat)"), "concat of L2-normalized sources"),
            Method::Mlp => match args.fusion {
                Fusion::Concat => (format!("fused: {joined} (concat)"), "concat"),
                Fusion::Gated => (format!("fused: {joined} (gated)"), "gated"),
            },
        };
        arms.push(Arm { name, sources: all, fusion: Some(fusion.into()) });
        if args.method == Method::Knn {
            notes.push(
                "KNN with several embeddings: each source is L2-normalized and the sources are concatenated (equal weight), then cosine KNN".into(),
            );
        } else {
            notes.push(format!(
                "MLP fusion '{}': each source gets its own LayerNorm, then {}",
                match args.fusion {
                    Fusion::Concat => "concat",
                    Fusion::Gated => "gated",
                },
                match args.fusion {
                    Fusion::Concat => "the sources are concatenated",
                    Fusion::Gated => "each is scaled by a learned gate sigmoid(g) and concatenated (gates in the training history)",
                }
            ));
        }
    }
    let primary = arms.len() - 1;
    // name of the KNN features of the primary sources (the sweep and the 2-D map use them)
    let knn_features_name = if feats.len() == 1 {
        feats[0].info.name.clone()
    } else {
        format!("{} (L2-normalized concat)", feats.iter().map(|f| f.info.name.as_str()).collect::<Vec<_>>().join(" + "))
    };
    // KNN features of every arm (and of the primary sources for the k sweep)
    let knn_x = |arm: &Arm| -> (Vec<f32>, usize) {
        if arm.sources.len() == 1 {
            let f = &feats[arm.sources[0]];
            (f.data.clone(), f.info.dim)
        } else {
            let fs: Vec<&Feature> = arm.sources.iter().map(|&s| &feats[s]).collect();
            concat_normalized(&fs, n_cells)
        }
    };

    // ---- k values
    let min_train = splits.iter().map(|s| s.train.len()).min().unwrap_or(0);
    let run_sweep = match args.method {
        Method::Knn => true,
        Method::Mlp => ks_given.is_some(),
    };
    let ks_all = ks_given.clone().unwrap_or_else(|| vec![DEFAULT_K]);
    let ks_ok: Vec<usize> = ks_all.iter().copied().filter(|&k| k <= min_train).collect();
    let ks_skipped: Vec<usize> = ks_all.iter().copied().filter(|&k| k > min_train).collect();
    if run_sweep && ks_ok.is_empty() {
        bail!(
            "--k {}: every k is larger than the training set ({min_train} cells{}); use k ≤ {min_train}",
            ks_all.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
            if splits.len() > 1 { ", smallest fold" } else { "" }
        );
    }
    if run_sweep && !ks_skipped.is_empty() {
        notes.push(format!(
            "k = {} skipped: larger than the training set ({min_train} cells{})",
            ks_skipped.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
            if splits.len() > 1 { " in the smallest fold" } else { "" }
        ));
    }
    let predict_k = ks_ok.first().copied();
    if args.method == Method::Knn && ks_ok.len() > 1 {
        notes.push(format!(
            "predictions, per-class metrics and the confusion matrix use k = {} (the first k listed in --k)",
            predict_k.unwrap_or(DEFAULT_K)
        ));
    }
    if args.method == Method::Knn {
        notes.push("obs predictions of training cells are leave-one-out (each cell is removed from its own neighbours)".into());
    } else {
        notes.push("obs predictions of training cells come from the MLP that was trained on them (resubstitution); score only test cells".into());
    }

    // ---- run every split
    let n_runs = splits.len() * arms.len();
    let pb = crate::progress::bar(n_runs as u64, "models", args.quiet);
    let mut outs: Vec<Vec<ArmSplitOut>> = Vec::with_capacity(splits.len()); // [split][arm]
    let mut sweep_preds: Vec<Vec<Vec<usize>>> = Vec::new(); // [split][k] test predictions
    let arm_knn: Vec<(Vec<f32>, usize)> = if args.method == Method::Knn || run_sweep {
        // for the MLP only the primary features are needed (baseline sweep)
        arms.iter()
            .enumerate()
            .map(|(i, a)| if args.method == Method::Knn || i == primary { knn_x(a) } else { (Vec::new(), 0) })
            .collect()
    } else {
        Vec::new()
    };
    for (si, sp) in splits.iter().enumerate() {
        let train_y: Vec<usize> = sp.train.iter().map(|&i| y[i]).collect();
        let mut row = Vec::with_capacity(arms.len());
        // k sweep on the primary KNN features
        if run_sweep {
            let (x, dim) = &arm_knn[primary];
            let knn = CosineKnn::fit(&gather(x, *dim, &sp.train), sp.train.len(), *dim, &train_y)?;
            let preds = knn.predict_sweep(&gather(x, *dim, &sp.test), sp.test.len(), &ks_ok, args.vote)?;
            sweep_preds.push(preds.iter().map(|p| p.iter().map(|q| q.label).collect()).collect());
        }
        for (ai, arm) in arms.iter().enumerate() {
            pb.set_message(format!("{}{}", arm.name, if splits.len() > 1 { format!(" (fold {}/{})", si + 1, splits.len()) } else { String::new() }));
            let want_all = ai == primary && si == 0;
            let others: Vec<usize> = if want_all {
                let mut is_train = vec![false; n_cells];
                sp.train.iter().for_each(|&i| is_train[i] = true);
                (0..n_cells).filter(|&i| !is_train[i]).collect()
            } else {
                Vec::new()
            };
            let out = match args.method {
                Method::Knn => {
                    let k = predict_k.unwrap_or(DEFAULT_K);
                    let (x, dim) = &arm_knn[ai];
                    let train_x = gather(x, *dim, &sp.train);
                    let knn = CosineKnn::fit(&train_x, sp.train.len(), *dim, &train_y)?;
                    let pr = |idx: &[usize]| -> Result<Vec<(usize, f32)>> {
                        if idx.is_empty() {
                            return Ok(Vec::new());
                        }
                        Ok(knn
                            .predict(&gather(x, *dim, idx), idx.len(), k, args.vote)?
                            .into_iter()
                            .map(|p| (p.label, p.confidence))
                            .collect())
                    };
                    let test = pr(&sp.test)?;
                    let val = pr(&sp.val)?;
                    let all = if want_all {
                        let mut all = vec![(0usize, 0f32); n_cells];
                        for (&i, p) in sp.train.iter().zip(knn_loo(&knn, &train_x, k, args.vote)?) {
                            all[i] = (p.label, p.confidence);
                        }
                        for (&i, p) in others.iter().zip(pr(&others)?) {
                            all[i] = p;
                        }
                        Some(all)
                    } else {
                        None
                    };
                    ArmSplitOut { test, val, all, history: None }
                }
                Method::Mlp => {
                    let sources: Vec<Source> = arm
                        .sources
                        .iter()
                        .map(|&s| Source::new(feats[s].info.name.clone(), &feats[s].data, feats[s].info.dim))
                        .collect();
                    let y0: Vec<usize> = y.iter().map(|&c| if c == usize::MAX { 0 } else { c }).collect();
                    // a gate on a lone source has nothing to weigh against: single sources use concat
                    let cfg = if arm.sources.len() == 1 { MlpConfig { fusion: Fusion::Concat, ..mlp_cfg.clone() } } else { mlp_cfg.clone() };
                    let model = TrainedMlp::fit(&sources, &y0, names.len(), &sp.train, &cfg)
                        .with_context(|| format!("training the MLP on {}", arm.name))?;
                    let test = model.predict(&sources, &sp.test)?;
                    let val = if sp.val.is_empty() { Vec::new() } else { model.predict(&sources, &sp.val)? };
                    let all = if want_all { Some(model.predict(&sources, &(0..n_cells).collect::<Vec<_>>())?) } else { None };
                    ArmSplitOut { test, val, all, history: Some(model.history().clone()) }
                }
            };
            row.push(out);
            pb.inc(1);
        }
        outs.push(row);
    }
    pb.finish_and_clear();

    // ---- scores
    let mut results: Vec<ArmResult> = Vec::with_capacity(arms.len());
    for (ai, arm) in arms.iter().enumerate() {
        let mut fold_scores = Vec::new();
        let (mut yt_all, mut yp_all) = (Vec::new(), Vec::new());
        for (si, sp) in splits.iter().enumerate() {
            let yt: Vec<usize> = sp.test.iter().map(|&i| y[i]).collect();
            let yp: Vec<usize> = outs[si][ai].test.iter().map(|p| p.0).collect();
            fold_scores.push(Scores::of(&report_for(&yt, &yp, &names)?));
            yt_all.extend(yt);
            yp_all.extend(yp);
        }
        let test = report_for(&yt_all, &yp_all, &names)?;
        let (scores, sd, fold_scores) = if n_folds.is_some() {
            let (m, s) = Scores::mean_sd(&fold_scores);
            (m, Some(s), fold_scores)
        } else {
            (Scores::of(&test), None, Vec::new())
        };
        let val = if splits[0].val.is_empty() {
            None
        } else {
            let yt: Vec<usize> = splits[0].val.iter().map(|&i| y[i]).collect();
            let yp: Vec<usize> = outs[0][ai].val.iter().map(|p| p.0).collect();
            Some(report_for(&yt, &yp, &names)?)
        };
        results.push(ArmResult {
            name: arm.name.clone(),
            sources: arm.sources.iter().map(|&s| feats[s].info.name.clone()).collect(),
            fusion: arm.fusion.clone(),
            primary: ai == primary,
            k: if args.method == Method::Knn { predict_k } else { None },
            scores,
            sd,
            fold_scores,
            test,
            val,
            training: outs.iter().filter_map(|r| r[ai].history.clone()).collect(),
        });
    }
    let k_sweep = if run_sweep {
        let mut order: Vec<usize> = (0..ks_ok.len()).collect();
        order.sort_by_key(|&i| ks_ok[i]);
        let mut rows = Vec::new();
        for &ki in &order {
            let mut per = Vec::new();
            for (si, sp) in splits.iter().enumerate() {
                let yt: Vec<usize> = sp.test.iter().map(|&i| y[i]).collect();
                per.push(Scores::of(&report_for(&yt, &sweep_preds[si][ki], &names)?));
            }
            let (scores, sd, fold_scores) = if n_folds.is_some() {
                let (m, s) = Scores::mean_sd(&per);
                (m, Some(s), per)
            } else {
                (per[0], None, Vec::new())
            };
            rows.push(KRow { k: ks_ok[ki], scores, sd, fold_scores });
        }
        Some(KSweepResult {
            features: knn_features_name.clone(),
            vote: args.vote,
            rows,
            skipped: ks_skipped.clone(),
            n_train: min_train,
            predict_k: predict_k.unwrap_or(DEFAULT_K),
        })
    } else {
        None
    };

    // ---- embedding quality (labelled cells)
    say(args.quiet, "embedding quality");
    let mut q_cells = labelled.clone();
    let mut q_note: Option<String> = None;
    if q_cells.len() > QUALITY_MAX_CELLS {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        q_cells.shuffle(&mut rng);
        q_cells.truncate(QUALITY_MAX_CELLS);
        q_cells.sort_unstable();
        q_note = Some(format!("seeded random subset of {QUALITY_MAX_CELLS} of the {} labelled cells", labelled.len()));
    }
    let q_labels: Vec<usize> = q_cells.iter().map(|&i| y[i]).collect();
    let mut quality_inputs: Vec<(String, Vec<f32>, usize, Option<String>)> = Vec::new();
    for f in &feats {
        if f.info.kind == "counts" {
            let cols = top_variance_columns(&f.data, f.info.dim, &q_cells, COUNTS_REDUCED_GENES);
            let d = cols.len();
            let note = format!("the {d} highest-variance genes of log1p-CP10k");
            quality_inputs.push((f.info.name.clone(), select_columns(&f.data, f.info.dim, &q_cells, &cols), d, Some(note)));
        } else {
            quality_inputs.push((f.info.name.clone(), gather(&f.data, f.info.dim, &q_cells), f.info.dim, None));
        }
    }
    if feats.len() > 1 {
        let fs: Vec<&Feature> = feats.iter().collect();
        let (x, d) = concat_normalized(&fs, n_cells);
        quality_inputs.push((
            knn_features_name.clone(),
            gather(&x, d, &q_cells),
            d,
            None,
        ));
    }
    let quality: Vec<QualityResult> = quality_inputs
        .into_iter()
        .map(|(name, x, d, note)| {
            let note = match (note, &q_note) {
                (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                (a, b) => a.or_else(|| b.clone()),
            };
            match EmbeddingQuality::compute(&x, q_cells.len(), d, &q_labels, args.seed) {
                Ok(m) => QualityResult { embedding: name, n_cells: q_cells.len(), dim: d, note, metrics: Some(m), error: None },
                Err(e) => QualityResult { embedding: name, n_cells: q_cells.len(), dim: d, note, metrics: None, error: Some(format!("{e:#}")) },
            }
        })
        .collect();

    // ---- obs columns
    let mut pred: Vec<(usize, f32)> = outs[0][primary].all.clone().unwrap_or_default();
    let mut split_col: Vec<String> = vec!["unlabeled".to_string(); n_cells];
    if n_folds.is_some() {
        for &i in &labelled {
            split_col[i] = "train".into();
        }
        for (si, sp) in splits.iter().enumerate() {
            for (&i, &p) in sp.test.iter().zip(&outs[si][primary].test) {
                pred[i] = p;
                split_col[i] = format!("fold{}", si + 1);
            }
        }
    } else {
        let sp = &splits[0];
        for (part, idx) in [("train", &sp.train), ("test", &sp.test), ("val", &sp.val)] {
            for &i in idx.iter() {
                split_col[i] = part.to_string();
            }
        }
        for (&i, &p) in sp.test.iter().zip(&outs[0][primary].test) {
            pred[i] = p;
        }
    }
    // Every labelled cell is train / test / val (or tested in a fold), so only cells with an
    // empty label keep 'unlabeled'.

    // ---- report
    let prim = &results[primary];
    let summary = Summary {
        predictor: prim.name.clone(),
        k: prim.k,
        accuracy: prim.scores.accuracy,
        weighted_f1: prim.scores.weighted_f1,
        macro_f1: prim.scores.macro_f1,
        cohen_kappa: prim.scores.cohen_kappa,
        sd: prim.sd,
    };
    let manifest = Manifest {
        tool: TOOL_VERSION.into(),
        command: "classify".into(),
        input: args.input.display().to_string(),
        input_sha256: if args.input.is_file() { Some(sha256_file(&args.input)?) } else { None },
        parameters: ClassifyArgs { mlp: mlp_cfg.clone(), ..args.clone() },
        features: feats.iter().map(|f| f.info.clone()).collect(),
        split: split_info,
    };
    let mut report = ClassifyReport {
        manifest,
        method: args.method,
        label_column: args.label.clone(),
        n_cells,
        n_labelled: labelled.len(),
        n_unlabelled,
        classes,
        small_classes,
        summary,
        results,
        k_sweep,
        quality,
        notes,
        files: Vec::new(),
    };

    // ---- report directory: plots first, report.json last
    if let Some(dir) = &args.report_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the report directory", dir.display()))?;
        say(args.quiet, format!("writing plots to {}", dir.display()));
        let mut files = Vec::new();
        let prim = &report.results[primary];
        let split_word = if n_folds.is_some() { "out-of-fold" } else { "test set" };
        let title = format!(
            "{} — {}{} ({split_word})",
            args.method.to_string().to_uppercase(),
            prim.name,
            prim.k.map(|k| format!(", k = {k}")).unwrap_or_default()
        );
        plots::confusion_heatmap_from_report(&dir.join("confusion"), &prim.test, &title)?;
        files.extend(["confusion.png".to_string(), "confusion.svg".to_string()]);

        // 2-D map of the primary features, labelled cells
        let owned;
        let (mx, mdim): (&[f32], usize) = match arm_knn.get(primary) {
            Some((x, d)) if *d > 0 => (x, *d),
            _ => {
                owned = knn_x(&arms[primary]);
                (&owned.0, owned.1)
            }
        };
        let what = knn_features_name.clone();
        let is_counts = args.on == FeatureSpace::Counts;
        let max_dim = if is_counts { COUNTS_REDUCED_GENES } else { MAP_MAX_DIM };
        let (map_x, map_dim, reduced) = if mdim > max_dim {
            let cols = top_variance_columns(mx, mdim, &labelled, max_dim);
            let d = cols.len();
            (select_columns(mx, mdim, &labelled, &cols), d, Some(d))
        } else {
            (gather(mx, mdim, &labelled), mdim, None)
        };
        if map_dim >= 2 && labelled.len() >= 2 {
            let pca = pca_2d(&map_x, labelled.len(), map_dim)?;
            let mut note = pca.method_note();
            if let Some(d) = reduced {
                let _ = write!(note, " of the {d} highest-variance {}", if is_counts { "genes" } else { "columns" });
            }
            plots::embedding_scatter(
                &dir.join("embedding"),
                &pca.coords,
                &y_lab,
                &names,
                &format!("{what} — cells colored by {}", args.label),
                &note,
            )?;
            files.extend(["embedding.png".to_string(), "embedding.svg".to_string()]);
        } else {
            report.notes.push("no 2-D map: it needs at least 2 dimensions and 2 labelled cells".into());
        }

        if let Some(ks) = &report.k_sweep {
            if ks.rows.len() >= 2 {
                let kv: Vec<usize> = ks.rows.iter().map(|r| r.k).collect();
                let mut series: Vec<(String, Vec<f64>)> = vec![
                    ("accuracy".into(), ks.rows.iter().map(|r| r.scores.accuracy).collect()),
                    ("weighted F1".into(), ks.rows.iter().map(|r| r.scores.weighted_f1).collect()),
                    ("macro F1".into(), ks.rows.iter().map(|r| r.scores.macro_f1).collect()),
                ];
                let kappa: Vec<f64> = ks.rows.iter().map(|r| r.scores.cohen_kappa).collect();
                if kappa.iter().all(|v| v.is_finite()) {
                    series.push(("Cohen's kappa".into(), kappa));
                }
                plots::k_sweep(
                    &dir.join("k_sweep"),
                    &kv,
                    &series,
                    "score",
                    &format!("KNN k sweep — {} ({split_word})", ks.features),
                )?;
                files.extend(["k_sweep.png".to_string(), "k_sweep.svg".to_string()]);
            }
        }
        if report.results.len() > 1 {
            let rows: Vec<(String, f64, f64)> = report
                .results
                .iter()
                .filter(|r| r.scores.accuracy.is_finite())
                .map(|r| (r.name.clone(), r.scores.accuracy, r.sd.map(|s| s.accuracy).unwrap_or(0.0)))
                .collect();
            if !rows.is_empty() {
                plots::bar_table(&dir.join("sources"), &rows, "accuracy", &format!("{} accuracy by source ({split_word})", args.method.to_string().to_uppercase()))?;
                files.extend(["sources.png".to_string(), "sources.svg".to_string()]);
            }
        }
        files.extend(["report.md".to_string(), "report.json".to_string()]);
        report.files = files;
    }

    // ---- output h5ad
    if let Some(o) = &output {
        report.files.push(o.display().to_string());
        say(args.quiet, format!("writing {}", o.display()));
        let obs_cols = vec![
            (OBS_PRED.to_string(), ObsColumn::Text(pred.iter().map(|p| names[p.0].clone()).collect())),
            (OBS_CONF.to_string(), ObsColumn::Number(pred.iter().map(|p| p.1 as f64).collect())),
            (OBS_SPLIT.to_string(), ObsColumn::Text(split_col)),
        ];
        let uns = serde_json::to_string(&report.manifest)?;
        write_output(&args.input, o, args.in_place, &obs_cols, &uns)?;
    }
    if let Some(dir) = &args.report_dir {
        atomic_write(&dir.join("report.md"), render_markdown(&report).as_bytes())?;
        write_json(&dir.join("report.json"), &report)?;
    }
    Ok(report)
}

// ============================================================================ markdown

fn scores_row(s: &Scores, sd: Option<&Scores>) -> String {
    format!(
        "{} | {} | {} | {}",
        fmt_pm(s.accuracy, sd.map(|d| d.accuracy)),
        fmt_pm(s.weighted_f1, sd.map(|d| d.weighted_f1)),
        fmt_pm(s.macro_f1, sd.map(|d| d.macro_f1)),
        fmt_pm(s.cohen_kappa, sd.map(|d| d.cohen_kappa)),
    )
}

/// The report as Markdown (what is printed without `--json`, and report.md).
pub fn render_markdown(r: &ClassifyReport) -> String {
    let mut s = String::new();
    let m = &r.manifest;
    let method = match r.method {
        Method::Knn => "cosine KNN",
        Method::Mlp => "MLP",
    };
    let _ = writeln!(s, "# celltext classify: {method} on {} (label `{}`)", md(&r.summary.predictor), md(&r.label_column));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- input: `{}`{}",
        md(&m.input),
        m.input_sha256.as_ref().map(|h| format!(" (sha256 {}…)", &h[..h.len().min(12)])).unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "- cells: {} ({} labelled, {} with an empty label excluded), {} classes",
        r.n_cells,
        r.n_labelled,
        r.n_unlabelled,
        r.classes.len()
    );
    let sp = &m.split;
    let split_desc = match sp.kind.as_str() {
        "column" => format!(
            "from obs column `{}`: {} train / {} test / {} val",
            md(sp.column.as_deref().unwrap_or("")),
            sp.n_train[0],
            sp.n_test[0],
            sp.n_val
        ),
        "kfold" => format!(
            "stratified {}-fold cross-validation, seed {} (test cells per fold: {}); scores are mean ± sd over folds",
            sp.n_folds.unwrap_or(0),
            sp.seed,
            sp.n_test.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
        ),
        _ => format!(
            "stratified, {:.0} % test, seed {}: {} train / {} test",
            100.0 * sp.test_fraction.unwrap_or(0.0),
            sp.seed,
            sp.n_train[0],
            sp.n_test[0]
        ),
    };
    let _ = writeln!(s, "- split: {split_desc}");
    if let Some(k) = r.summary.k {
        let _ = writeln!(s, "- k = {k}, vote {}", vote_name(m.parameters.vote));
    }
    if r.method == Method::Mlp {
        let c = &m.parameters.mlp;
        let _ = writeln!(
            s,
            "- MLP: hidden {:?}, dropout {}, lr {}, weight decay {}, batch {}, ≤ {} epochs, patience {}, val fraction {}, class weights {}, seed {}",
            c.hidden, c.dropout, c.lr, c.weight_decay, c.batch_size, c.max_epochs, c.patience, c.val_fraction, c.class_weights, c.seed
        );
    }
    let _ = writeln!(s);

    let where_ = if sp.kind == "kfold" { "mean ± sd over folds" } else { "test set" };
    let _ = writeln!(s, "## Results ({where_})");
    let _ = writeln!(s);
    let _ = writeln!(s, "| predictor | accuracy | weighted F1 | macro F1 | kappa |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    for a in &r.results {
        let name = if a.primary && r.results.len() > 1 { format!("**{}**", md(&a.name)) } else { md(&a.name) };
        let _ = writeln!(s, "| {name} | {} |", scores_row(&a.scores, a.sd.as_ref()));
    }
    let _ = writeln!(s);
    if r.results.iter().any(|a| a.val.is_some()) {
        let _ = writeln!(s, "Validation cells (`val` in the split column):");
        let _ = writeln!(s);
        let _ = writeln!(s, "| predictor | accuracy | weighted F1 | macro F1 | kappa |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
        for a in &r.results {
            if let Some(v) = &a.val {
                let _ = writeln!(s, "| {} | {} |", md(&a.name), scores_row(&Scores::of(v), None));
            }
        }
        let _ = writeln!(s);
    }

    if let Some(ks) = &r.k_sweep {
        let title = if r.method == Method::Mlp { "KNN baseline k sweep" } else { "k sweep" };
        let _ = writeln!(s, "## {title} ({}, vote {}, {where_})", md(&ks.features), vote_name(ks.vote));
        let _ = writeln!(s);
        let _ = writeln!(s, "| k | accuracy | weighted F1 | macro F1 | kappa |");
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
        for row in &ks.rows {
            let _ = writeln!(s, "| {} | {} |", row.k, scores_row(&row.scores, row.sd.as_ref()));
        }
        if !ks.skipped.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "Skipped k = {}: larger than the training set ({} cells).",
                ks.skipped.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "),
                ks.n_train
            );
        }
        let _ = writeln!(s);
    }

    if let Some(p) = r.results.iter().find(|a| a.primary) {
        let pooled = if sp.kind == "kfold" { ", pooled out-of-fold predictions" } else { ", test set" };
        let _ = writeln!(
            s,
            "## Per class: {}{}{pooled}",
            md(&p.name),
            p.k.map(|k| format!(", k = {k}")).unwrap_or_default()
        );
        let _ = writeln!(s);
        s.push_str(&p.test.to_markdown());
        let _ = writeln!(s);
    }

    if !r.quality.is_empty() {
        let _ = writeln!(s, "## Embedding quality (labelled cells vs. labels)");
        let _ = writeln!(s);
        let _ = writeln!(s, "| embedding | cells | dim | silhouette (cosine) | Calinski-Harabasz | Davies-Bouldin | k-means ARI | k-means NMI |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for q in &r.quality {
            match &q.metrics {
                Some(e) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {:.1} | {} | {} | {} |",
                        md(&q.embedding),
                        q.n_cells,
                        q.dim,
                        fmt_score(e.silhouette_cosine),
                        e.calinski_harabasz,
                        fmt_score(e.davies_bouldin),
                        fmt_score(e.kmeans_ari),
                        fmt_score(e.kmeans_nmi)
                    );
                }
                None => {
                    let _ = writeln!(s, "| {} | {} | {} | not computed: {} | | | | |", md(&q.embedding), q.n_cells, q.dim, md(q.error.as_deref().unwrap_or("")));
                }
            }
        }
        let qn: Vec<String> = r.quality.iter().filter_map(|q| q.note.as_ref().map(|n| format!("{}: {n}", q.embedding))).collect();
        if !qn.is_empty() {
            let _ = writeln!(s);
            for n in qn {
                let _ = writeln!(s, "- {}", md(&n));
            }
        }
        let _ = writeln!(s);
    }

    let trained: Vec<&ArmResult> = r.results.iter().filter(|a| !a.training.is_empty()).collect();
    if !trained.is_empty() {
        let _ = writeln!(s, "## MLP training");
        let _ = writeln!(s);
        let _ = writeln!(s, "| predictor | split | epochs run | best epoch | stopped early | best val loss | gates |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | :---: | ---: | --- |");
        for a in trained {
            for (i, h) in a.training.iter().enumerate() {
                let best = h.val_loss.get(h.best_epoch).map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
                let gates = h.gates.iter().map(|g| format!("{} {:.3}", g.source, g.gate)).collect::<Vec<_>>().join(", ");
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {best} | {} |",
                    md(&a.name),
                    i + 1,
                    h.train_loss.len(),
                    h.best_epoch + 1,
                    if h.stopped_early { "yes" } else { "no" },
                    md(&gates)
                );
            }
        }
        let _ = writeln!(s);
    }

    if !r.notes.is_empty() {
        let _ = writeln!(s, "## Notes");
        let _ = writeln!(s);
        for n in &r.notes {
            let _ = writeln!(s, "- {}", md(n));
        }
        let _ = writeln!(s);
    }
    if !r.files.is_empty() {
        let _ = writeln!(s, "## Files");
        let _ = writeln!(s);
        for f in &r.files {
            let _ = writeln!(s, "- `{}`", md(f));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{} · seed {}", m.tool, m.parameters.seed);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_and_hidden_lists() {
        assert_eq!(parse_k_list("1,3, 5").unwrap(), vec![1, 3, 5]);
        for bad in ["", "1,,3", "0", "a", "3,3", "-1", "1.5"] {
            assert!(parse_k_list(bad).is_err(), "{bad}");
        }
        assert!(parse_k_list("x").unwrap_err().to_string().contains("--k"));
        assert_eq!(parse_hidden("256,128").unwrap(), vec![256, 128]);
        assert_eq!(parse_hidden("none").unwrap(), Vec::<usize>::new());
        assert!(parse_hidden("0").is_err());
    }

    #[test]
    fn mean_sd_is_sample_sd() {
        let a = Scores::from_values([0.8, 0.5, 0.4, 0.7]);
        let b = Scores::from_values([0.6, 0.5, 0.2, 0.7]);
        let (m, s) = Scores::mean_sd(&[a, b]);
        assert!((m.accuracy - 0.7).abs() < 1e-12);
        // sd (ddof 1) of [0.8, 0.6] = sqrt(0.02) = 0.1414…
        assert!((s.accuracy - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.weighted_f1, 0.0);
    }

    #[test]
    fn loo_removes_self() {
        // three identical class-0 rows and one class-1 row far away: 1-NN LOO of the class-1 row
        // must come from another row (class 0), not itself.
        let x = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let knn = CosineKnn::fit(&x, 4, 2, &[0, 0, 0, 1]).unwrap();
        let p = knn_loo(&knn, &x, 1, Vote::Majority).unwrap();
        assert_eq!(p.iter().map(|p| p.label).collect::<Vec<_>>(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn top_variance_picks_varying_columns() {
        // column 1 varies most, then column 2; column 0 is constant
        let x = [1.0f32, 0.0, 0.0, 1.0, 5.0, 1.0, 1.0, 10.0, 2.0];
        assert_eq!(top_variance_columns(&x, 3, &[0, 1, 2], 2), vec![1, 2]);
    }
}
