//! `celltext classify`: cell-type classifiers (cosine KNN or MLP) on embeddings or normalized
//! counts, with a Markdown/JSON report, plots and predictions written back into obs.
//!
//! # What runs
//!
//! - **Features.** `--embedding KEY` reads `obsm/KEY` (repeatable), `--embedding-file F` reads a
//!   `.npy` / `.safetensors` matrix whose rows are the input's cells in order (repeatable).
//!   `--on counts` adds the count baseline from `X` or `layers/<--layer>`: by default scanpy's
//!   standard pipeline ([`standard_pca`](crate::cells::standard_pca::standard_pca):
//!   normalize_total → log1p → 2,000 HVG → scale → PCA 50), usable by KNN and MLP and fusable
//!   with embeddings; `--baseline log1p-all` keeps the log1p-CP10k matrix of every detected gene
//!   (KNN only, alone).
//! - **Labels.** An obs column; cells whose label is empty (`""`, NaN, `nan`) are excluded from
//!   training and scoring and counted; they still get a prediction (split `unlabeled`).
//!   Classes are the sorted distinct labels.
//! - **Splits** (indices of labelled cells): a stratified, seeded train/test split
//!   ([`stratified_split`](crate::classify::split::stratified_split), default 20 % test); or `--split-column` with values
//!   `train` / `test` / `val`; or `--folds K` stratified k-fold cross-validation
//!   ([`stratified_kfold`](crate::classify::split::stratified_kfold)), reported as mean ± sample sd (ddof 1) over folds, with the
//!   per-class table and confusion matrix pooled over the out-of-fold predictions. Classes with
//!   fewer than 2 labelled cells are listed; the stratified splits keep them in training only.
//! - **Predictors** ("arms"). One per run, or with several sources one per source plus the fused
//!   one. KNN fuses by concatenating the L2-normalized sources (each counts equally); the MLP
//!   fuses with [`Fusion::Concat`](crate::classify::mlp::Fusion::Concat) or
//!   [`Fusion::Gated`](crate::classify::mlp::Fusion::Gated) (per-source LayerNorm first). The fused
//!   (or only) arm is the *primary* one: its predictions go to obs and the heatmap.
//! - **k sweep.** `--k 1,3,5,…` (KNN) votes with every listed k that fits the training set
//!   (larger ones are skipped and noted); the *first* k listed (that fits) gives the predictions.
//!   With `--method mlp`, `--k` adds a KNN baseline sweep on the same sources.
//! - **Embedding quality** ([`EmbeddingQuality`](crate::eval::clustering::EmbeddingQuality)) of each source (and the fused KNN features)
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
//!
//! # Where things are
//!
//! [`run_classify`] runs the phases in order: `arguments` (the flags and their checks),
//! `features` (obs, labels and the feature sources), `run` (splits, arms, k values, training,
//! scores, k sweep, embedding quality, obs predictions), `report` (report types, JSON, Markdown)
//! and `output` (plots, report files, the output h5ad).

mod arguments;
mod features;
#[cfg(feature = "plots")]
mod figures;
mod output;
mod report;
mod run;
mod scores;
mod splits;

pub use crate::classify::mlp::parse_hidden;
pub use arguments::{parse_k_list, ClassifyArgs, FeatureSpace, Method};
pub use report::{
    render_markdown, report_json, ArmResult, ClassCount, ClassifyReport, FeatureInfo, KRow,
    KSweepResult, Manifest, QualityResult, Scores, SplitInfo, Summary,
};

use anyhow::{Context, Result};

use crate::io::{sha256_file, TOOL_VERSION};
use features::{Feature, Labels};
use run::Arms;
use splits::Splits;

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

/// A step of the run for the user, through [`crate::progress::note`].
fn say(quiet: bool, msg: impl AsRef<str>) {
    crate::progress::note(quiet, &format!("celltext classify: {}", msg.as_ref()));
}

/// Run the classifier(s) and write the requested outputs.
pub fn run_classify(args: &ClassifyArgs) -> Result<ClassifyReport> {
    let checked = arguments::check_args(args)?;
    {
        // the output contract: no output over an input (an --in-place output is the input)
        let mut outs: Vec<&std::path::Path> = args.report_dir.iter().map(|p| p.as_path()).collect();
        if !args.in_place {
            outs.extend(checked.output.as_deref());
        }
        let mut ins: Vec<&std::path::Path> = vec![&args.input];
        ins.extend(args.embedding_files.iter().map(|p| p.as_path()));
        crate::outputs::check_apart(&outs, &ins)?;
    }
    let mut _locks = Vec::new();
    if let Some(dir) = &args.report_dir {
        output::check_report_dir(dir)?;
        _locks.push(crate::outputs::OutputLock::acquire(dir)?);
    }
    if let Some(o) = &checked.output {
        _locks.push(crate::outputs::OutputLock::acquire(o)?);
    }
    let mut notes: Vec<String> = Vec::new();
    let labels = features::load_labels(args, checked.kind, &mut notes)?;
    if let Some(key) = &args.batch_key {
        // a batch column that is missing or holds no value is an error, not a note in the report
        let col = crate::cells::matrix::find_obs_column(&labels.obs, key, Some(&args.input))
            .with_context(|| format!("--batch-key {key}"))?;
        if col
            .to_labels()
            .iter()
            .all(|v| crate::cells::matrix::is_missing_label(v))
        {
            anyhow::bail!(
                "--batch-key {key}: obs column '{key}' of {} holds no value (every cell is empty \
                 or NaN); name a column that records each cell's batch, or drop --batch-key",
                args.input.display()
            );
        }
    }
    let splits = splits::make_splits(args, &labels, &mut notes)?;
    let feats = features::load_features(args, &labels.cell_ids, &mut notes)?;
    let arms = run::plan_arms(args, &feats, &mut notes);
    let ks = run::plan_ks(args, &splits.cells, &mut notes)?;

    let runs = run::run_arms(args, &labels, &splits.cells, &feats, &arms, &ks)?;
    let results = scores::score_arms(args, &labels, &splits.cells, &feats, &arms, &ks, &runs)?;
    let k_sweep = scores::k_sweep(args, &labels, &splits.cells, &arms, &ks, &runs)?;
    let quality = scores::embedding_quality(args, &labels, &feats, &arms);
    let (pred, split_col) = run::obs_predictions(args, &labels, &splits.cells, &arms, &runs);

    let mut report = assemble_report(
        args, &labels, splits, &feats, &arms, results, k_sweep, quality, notes,
    )?;
    match &args.report_dir {
        // the report folder is built beside `dir` and committed whole (the old one is kept if
        // anything fails)
        Some(dir) => crate::outputs::atomic_dir_with(dir, |tmp| {
            #[cfg(feature = "plots")]
            figures::write_plots(tmp, args, &mut report, &labels, &feats, &arms, &runs)?;
            if let Some(o) = &checked.output {
                output::write_obs_output(args, o, &mut report, &labels.names, &pred, split_col)?;
            }
            output::write_report_files(tmp, &report)
        })?,
        None => {
            if let Some(o) = &checked.output {
                output::write_obs_output(args, o, &mut report, &labels.names, &pred, split_col)?;
            }
        }
    }
    Ok(report)
}

/// The report: manifest (parameters with the effective MLP settings, features, split), the
/// primary arm's summary, every arm's results, the k sweep, quality and notes.
#[allow(clippy::too_many_arguments)]
fn assemble_report(
    args: &ClassifyArgs,
    labels: &Labels,
    splits: Splits,
    feats: &[Feature],
    arms: &Arms,
    results: Vec<ArmResult>,
    k_sweep: Option<KSweepResult>,
    quality: Vec<QualityResult>,
    notes: Vec<String>,
) -> Result<ClassifyReport> {
    let prim = &results[arms.primary];
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
        input_sha256: if args.input.is_file() {
            Some(sha256_file(&args.input)?)
        } else {
            None
        },
        parameters: ClassifyArgs {
            mlp: args.effective_mlp(),
            ..args.clone()
        },
        features: feats.iter().map(|f| f.info.clone()).collect(),
        split: splits.info,
    };
    Ok(ClassifyReport {
        manifest,
        method: args.method,
        label_column: args.label.clone(),
        n_cells: labels.n_cells(),
        n_labelled: labels.labelled.len(),
        n_unlabelled: labels.n_unlabelled,
        classes: labels.classes.clone(),
        small_classes: labels.small_classes.clone(),
        summary,
        results,
        k_sweep,
        quality,
        notes,
        files: Vec::new(),
    })
}
