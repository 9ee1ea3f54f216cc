//! The figures of `celltext classify`'s report directory (`plots` feature; the CLI has it, and a
//! build without it writes report.md and report.json alone): confusion heatmap, 2-D maps of the
//! primary features, k sweep, accuracy by source.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::arguments::{ClassifyArgs, FeatureSpace};
use super::features::{Feature, Labels};
use super::report::ClassifyReport;
use super::run::{knn_features, Arms, Runs};
use super::{say, COUNTS_REDUCED_GENES, MAP_MAX_DIM};
use crate::classify::features::{gather_rows, select_columns, top_variance_columns};
use crate::eval::embedding2d::{pca_2d, umap_2d, Metric, UmapParams};
use crate::eval::plots;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Most labelled cells drawn in the report's UMAP (a seeded subset above it).
const UMAP_MAX_POINTS: usize = 5_000;

/// The plots of the report directory `dir` (confusion heatmap, 2-D map of the primary features,
/// k sweep, accuracy by source); lists them, with report.md and report.json, in `report.files`.
pub(super) fn write_plots(
    dir: &Path,
    args: &ClassifyArgs,
    report: &mut ClassifyReport,
    lab: &Labels,
    feats: &[Feature],
    arms: &Arms,
    runs: &Runs,
) -> Result<()> {
    let primary = arms.primary;
    say(
        args.quiet,
        format!(
            "writing plots to {}",
            args.report_dir.as_deref().unwrap_or(dir).display()
        ),
    );
    let mut files = Vec::new();
    let prim = &report.results[primary];
    let split_word = if args.folds.is_some() {
        "out-of-fold"
    } else {
        "test set"
    };
    let title = format!(
        "{} — {}{} ({split_word})",
        args.method.to_string().to_uppercase(),
        prim.name,
        prim.k.map(|k| format!(", k = {k}")).unwrap_or_default()
    );
    plots::confusion_heatmap_from_report(&dir.join("confusion"), &prim.test, &title)?;
    files.extend(["confusion.png".to_string(), "confusion.svg".to_string()]);

    write_maps(dir, args, report, lab, feats, arms, runs, &mut files)?;
    write_k_sweep(dir, report, split_word, &mut files)?;
    write_sources(dir, args, report, split_word, &mut files)?;
    files.extend(["report.md".to_string(), "report.json".to_string()]);
    report.files = files;
    Ok(())
}

/// The 2-D maps of the primary features over the labelled cells: PCA, and UMAP beside it.
#[allow(clippy::too_many_arguments)]
fn write_maps(
    dir: &Path,
    args: &ClassifyArgs,
    report: &mut ClassifyReport,
    lab: &Labels,
    feats: &[Feature],
    arms: &Arms,
    runs: &Runs,
    files: &mut Vec<String>,
) -> Result<()> {
    let (primary, labelled, names) = (arms.primary, &lab.labelled, &lab.names);
    let owned;
    let (mx, mdim): (&[f32], usize) = match runs.arm_knn.get(primary) {
        Some((x, d)) if *d > 0 => (x, *d),
        _ => {
            owned = knn_features(&arms.arms[primary], feats, lab.n_cells());
            (&owned.0, owned.1)
        }
    };
    let what = arms.knn_features_name.clone();
    let is_counts = args.on == FeatureSpace::Counts;
    let max_dim = if is_counts {
        COUNTS_REDUCED_GENES
    } else {
        MAP_MAX_DIM
    };
    let (map_x, map_dim, reduced) = if mdim > max_dim {
        let cols = top_variance_columns(mx, mdim, labelled, max_dim);
        let d = cols.len();
        (select_columns(mx, mdim, labelled, &cols), d, Some(d))
    } else {
        (gather_rows(mx, mdim, labelled), mdim, None)
    };
    if map_dim >= 2 && labelled.len() >= 2 {
        let pca = pca_2d(&map_x, labelled.len(), map_dim)?;
        let mut note = pca.method_note();
        if let Some(d) = reduced {
            let _ = write!(
                note,
                " of the {d} highest-variance {}",
                if is_counts { "genes" } else { "columns" }
            );
        }
        plots::embedding_scatter(
            &dir.join("embedding"),
            &pca.coords,
            &lab.y_lab,
            names,
            &format!("{what} — cells colored by {}", args.label),
            &note,
        )?;
        files.extend(["embedding.png".to_string(), "embedding.svg".to_string()]);
        if labelled.len() >= 3 {
            let by_batch = write_umap(
                dir,
                args,
                &map_x,
                map_dim,
                labelled.len(),
                lab,
                &what,
                reduced,
            )?;
            files.extend([
                "embedding_umap.png".to_string(),
                "embedding_umap.svg".to_string(),
            ]);
            if by_batch {
                files.extend([
                    "embedding_umap_batch.png".to_string(),
                    "embedding_umap_batch.svg".to_string(),
                ]);
            } else if let Some(key) = &args.batch_key {
                report.notes.push(format!(
                    "no UMAP coloured by batch: --batch-key {key} is not an obs column"
                ));
            }
        }
    } else {
        report
            .notes
            .push("no 2-D map: it needs at least 2 dimensions and 2 labelled cells".into());
    }
    Ok(())
}

/// The k sweep's scores by k (when it ran over at least two k).
fn write_k_sweep(
    dir: &Path,
    report: &ClassifyReport,
    split_word: &str,
    files: &mut Vec<String>,
) -> Result<()> {
    if let Some(ks) = &report.k_sweep {
        if ks.rows.len() >= 2 {
            let kv: Vec<usize> = ks.rows.iter().map(|r| r.k).collect();
            let mut series: Vec<(String, Vec<f64>)> = vec![
                (
                    "accuracy".into(),
                    ks.rows.iter().map(|r| r.scores.accuracy).collect(),
                ),
                (
                    "weighted F1".into(),
                    ks.rows.iter().map(|r| r.scores.weighted_f1).collect(),
                ),
                (
                    "macro F1".into(),
                    ks.rows.iter().map(|r| r.scores.macro_f1).collect(),
                ),
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
    Ok(())
}

/// Accuracy by source, when there are several.
fn write_sources(
    dir: &Path,
    args: &ClassifyArgs,
    report: &ClassifyReport,
    split_word: &str,
    files: &mut Vec<String>,
) -> Result<()> {
    if report.results.len() > 1 {
        let rows: Vec<(String, f64, f64)> = report
            .results
            .iter()
            .filter(|r| r.scores.accuracy.is_finite())
            .map(|r| {
                (
                    r.name.clone(),
                    r.scores.accuracy,
                    r.sd.map(|s| s.accuracy).unwrap_or(0.0),
                )
            })
            .collect();
        if !rows.is_empty() {
            plots::bar_table(
                &dir.join("sources"),
                &rows,
                "accuracy",
                &format!(
                    "{} accuracy by source ({split_word})",
                    args.method.to_string().to_uppercase()
                ),
            )?;
            files.extend(["sources.png".to_string(), "sources.svg".to_string()]);
        }
    }
    Ok(())
}

/// The UMAP beside the PCA map (`embedding_umap.png/.svg`): cosine distance, as the KNN
/// classifier uses, seeded by `--seed`; above [`UMAP_MAX_POINTS`] labelled cells it maps a
/// seeded random subset of that many and says so in the subtitle. With `--batch-key` the same
/// map is drawn again coloured by batch (`embedding_umap_batch.png/.svg`; returns whether it was,
/// false when the column is missing). A cell with an empty batch value is its own batch, "(none)".
#[allow(clippy::too_many_arguments)]
fn write_umap(
    dir: &Path,
    args: &ClassifyArgs,
    map_x: &[f32],
    map_dim: usize,
    n: usize,
    lab: &Labels,
    what: &str,
    reduced: Option<usize>,
) -> Result<bool> {
    let mut rows: Vec<usize> = (0..n).collect();
    if n > UMAP_MAX_POINTS {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        rows.shuffle(&mut rng);
        rows.truncate(UMAP_MAX_POINTS);
        rows.sort_unstable();
    }
    let x: Vec<f32> = if rows.len() == n {
        map_x.to_vec()
    } else {
        rows.iter()
            .flat_map(|&r| map_x[r * map_dim..(r + 1) * map_dim].iter().copied())
            .collect()
    };
    let params = UmapParams {
        metric: Metric::Cosine,
        seed: args.seed,
        ..UmapParams::default()
    };
    let u = umap_2d(&x, rows.len(), map_dim, &params)?;
    let mut note = u.method_note();
    if let Some(d) = reduced {
        let what = if args.on == FeatureSpace::Counts {
            "genes"
        } else {
            "columns"
        };
        let _ = write!(note, " of the {d} highest-variance {what}");
    }
    if rows.len() < n {
        let _ = write!(
            note,
            "; a seeded random {} of {n} labelled cells",
            rows.len()
        );
    }
    let y: Vec<usize> = rows.iter().map(|&r| lab.y_lab[r]).collect();
    plots::embedding_scatter(
        &dir.join("embedding_umap"),
        &u.coords,
        &y,
        &lab.names,
        &format!("{what} — cells colored by {}", args.label),
        &note,
    )?;
    let Some(key) = &args.batch_key else {
        return Ok(false);
    };
    let Some((_, col)) = lab.obs.iter().find(|(name, _)| name == key) else {
        return Ok(false);
    };
    let values = col.to_labels();
    let batch_of = |r: usize| -> String {
        let v = values[lab.labelled[r]].trim();
        if crate::cells::matrix::is_missing_label(v) {
            "(none)".to_string()
        } else {
            v.to_string()
        }
    };
    let mut batches: Vec<String> = rows.iter().map(|&r| batch_of(r)).collect();
    batches.sort_unstable();
    batches.dedup();
    let b: Vec<usize> = rows
        .iter()
        .map(|&r| batches.binary_search(&batch_of(r)).unwrap_or(0))
        .collect();
    plots::embedding_scatter(
        &dir.join("embedding_umap_batch"),
        &u.coords,
        &b,
        &batches,
        &format!("{what} — cells colored by {key}"),
        &note,
    )?;
    Ok(true)
}
