//! What a run is judged by: test (and val) scores of every arm, the k sweep, and embedding
//! quality of each source against the labels.

use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::arguments::{ClassifyArgs, Method};
use super::features::{Feature, Labels};
use super::report::{ArmResult, KRow, KSweepResult, QualityResult, Scores};
use super::run::{Arms, KPlan, Runs};
use super::splits::CellSplit;
use super::{say, COUNTS_REDUCED_GENES, DEFAULT_K, QUALITY_MAX_CELLS};
use crate::classify::features::{
    concat_normalized, gather_rows, select_columns, top_variance_columns,
};
use crate::eval::clustering::EmbeddingQuality;
use crate::eval::integration::{IntegrationScores, DEFAULT_K as DEFAULT_LISI_K};
use crate::eval::metrics::ClassificationReport;

/// Test (and val) scores of every arm: per split, and pooled (or mean ± sd over folds).
pub(super) fn score_arms(
    args: &ClassifyArgs,
    lab: &Labels,
    splits: &[CellSplit],
    feats: &[Feature],
    arms: &Arms,
    ks: &KPlan,
    runs: &Runs,
) -> Result<Vec<ArmResult>> {
    let (y, names, outs) = (&lab.y, &lab.names, &runs.outs);
    let mut results: Vec<ArmResult> = Vec::with_capacity(arms.arms.len());
    for (ai, arm) in arms.arms.iter().enumerate() {
        let mut fold_scores = Vec::new();
        let (mut yt_all, mut yp_all) = (Vec::new(), Vec::new());
        for (si, sp) in splits.iter().enumerate() {
            let yt: Vec<usize> = sp.test.iter().map(|&i| y[i]).collect();
            let yp: Vec<usize> = outs[si][ai].test.iter().map(|p| p.0).collect();
            fold_scores.push(Scores::of(&ClassificationReport::new(&yt, &yp, names)?));
            yt_all.extend(yt);
            yp_all.extend(yp);
        }
        let test = ClassificationReport::new(&yt_all, &yp_all, names)?;
        let (scores, sd, fold_scores) = if args.folds.is_some() {
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
            Some(ClassificationReport::new(&yt, &yp, names)?)
        };
        results.push(ArmResult {
            name: arm.name.clone(),
            sources: arm
                .sources
                .iter()
                .map(|&s| feats[s].info.name.clone())
                .collect(),
            fusion: arm.fusion.clone(),
            primary: ai == arms.primary,
            k: if args.method == Method::Knn {
                ks.predict_k
            } else {
                None
            },
            scores,
            sd,
            fold_scores,
            test,
            val,
            training: outs.iter().filter_map(|r| r[ai].history.clone()).collect(),
        });
    }
    Ok(results)
}

/// The k sweep's rows (sorted by k), if it ran.
pub(super) fn k_sweep(
    args: &ClassifyArgs,
    lab: &Labels,
    splits: &[CellSplit],
    arms: &Arms,
    ks: &KPlan,
    runs: &Runs,
) -> Result<Option<KSweepResult>> {
    if !ks.run_sweep {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..ks.ok.len()).collect();
    order.sort_by_key(|&i| ks.ok[i]);
    let mut rows = Vec::new();
    for &ki in &order {
        let mut per = Vec::new();
        for (si, sp) in splits.iter().enumerate() {
            let yt: Vec<usize> = sp.test.iter().map(|&i| lab.y[i]).collect();
            per.push(Scores::of(&ClassificationReport::new(
                &yt,
                &runs.sweep_preds[si][ki],
                &lab.names,
            )?));
        }
        let (scores, sd, fold_scores) = if args.folds.is_some() {
            let (m, s) = Scores::mean_sd(&per);
            (m, Some(s), per)
        } else {
            (per[0], None, Vec::new())
        };
        rows.push(KRow {
            k: ks.ok[ki],
            scores,
            sd,
            fold_scores,
        });
    }
    Ok(Some(KSweepResult {
        features: arms.knn_features_name.clone(),
        vote: args.vote,
        rows,
        skipped: ks.skipped.clone(),
        n_train: ks.min_train,
        predict_k: ks.predict_k.unwrap_or(DEFAULT_K),
    }))
}

/// Embedding quality of each source (and of the fused KNN features) against the labels, on the
/// labelled cells or a seeded subset of them; counts on their highest-variance genes.
pub(super) fn embedding_quality(
    args: &ClassifyArgs,
    lab: &Labels,
    feats: &[Feature],
    arms: &Arms,
) -> Vec<QualityResult> {
    say(args.quiet, "embedding quality");
    let mut q_cells = lab.labelled.clone();
    let mut q_note: Option<String> = None;
    if q_cells.len() > QUALITY_MAX_CELLS {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        q_cells.shuffle(&mut rng);
        q_cells.truncate(QUALITY_MAX_CELLS);
        q_cells.sort_unstable();
        q_note = Some(format!(
            "seeded random subset of {QUALITY_MAX_CELLS} of the {} labelled cells",
            lab.labelled.len()
        ));
    }
    let q_labels: Vec<usize> = q_cells.iter().map(|&i| lab.y[i]).collect();
    let q_batches: Option<Result<Vec<usize>, String>> = args.batch_key.as_ref().map(|key| {
        let col = lab
            .obs
            .iter()
            .find(|(n, _)| n == key)
            .map(|(_, c)| c.to_labels())
            .ok_or_else(|| {
                let names: Vec<&str> = lab.obs.iter().map(|(n, _)| n.as_str()).collect();
                format!(
                    "--batch-key {key}: no such obs column (obs has: {})",
                    names.join(", ")
                )
            })?;
        let mut names: Vec<&String> = q_cells.iter().map(|&i| &col[i]).collect();
        names.sort_unstable();
        names.dedup();
        Ok(q_cells
            .iter()
            .map(|&i| names.binary_search(&&col[i]).expect("present"))
            .collect())
    });
    let mut quality_inputs: Vec<(String, Vec<f32>, usize, Option<String>)> = Vec::new();
    for f in feats {
        if f.info.kind == "counts" {
            let cols = top_variance_columns(&f.data, f.info.dim, &q_cells, COUNTS_REDUCED_GENES);
            let d = cols.len();
            let note = format!("the {d} highest-variance genes of log1p-CP10k");
            quality_inputs.push((
                f.info.name.clone(),
                select_columns(&f.data, f.info.dim, &q_cells, &cols),
                d,
                Some(note),
            ));
        } else {
            quality_inputs.push((
                f.info.name.clone(),
                gather_rows(&f.data, f.info.dim, &q_cells),
                f.info.dim,
                None,
            ));
        }
    }
    if feats.len() > 1 {
        let fs: Vec<(&[f32], usize)> = feats
            .iter()
            .map(|f| (f.data.as_slice(), f.info.dim))
            .collect();
        let (x, d) = concat_normalized(&fs, lab.n_cells());
        quality_inputs.push((
            arms.knn_features_name.clone(),
            gather_rows(&x, d, &q_cells),
            d,
            None,
        ));
    }
    quality_inputs
        .into_iter()
        .map(|(name, x, d, note)| {
            let note = match (note, &q_note) {
                (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                (a, b) => a.or_else(|| b.clone()),
            };
            let integration = q_batches.as_ref().map(|b| {
                let b = b.as_ref().map_err(|e| e.clone())?;
                IntegrationScores::compute(
                    &x,
                    q_cells.len(),
                    d,
                    &q_labels,
                    b,
                    DEFAULT_LISI_K.min(q_cells.len()),
                )
                .map_err(|e| format!("{e:#}"))
            });
            match EmbeddingQuality::compute(&x, q_cells.len(), d, &q_labels, args.seed) {
                Ok(m) => QualityResult {
                    embedding: name,
                    n_cells: q_cells.len(),
                    dim: d,
                    note,
                    metrics: Some(m),
                    error: None,
                    integration,
                },
                Err(e) => QualityResult {
                    embedding: name,
                    n_cells: q_cells.len(),
                    dim: d,
                    note,
                    metrics: None,
                    error: Some(format!("{e:#}")),
                    integration,
                },
            }
        })
        .collect()
}
