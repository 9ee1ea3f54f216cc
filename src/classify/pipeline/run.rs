//! The classification itself: the predictors ("arms": each source alone and the fused sources),
//! the k values, training and predicting on every split, and the predictions and split names
//! that go to obs. Splits are in `splits.rs`, scores in `scores.rs`.

use anyhow::{bail, Context, Result};

use super::arguments::{ClassifyArgs, Method};
use super::features::{Feature, Labels};
use super::splits::CellSplit;
use super::DEFAULT_K;
use crate::classify::features::{concat_normalized, gather_rows};
use crate::classify::knn::{knn_loo, CosineKnn};
use crate::classify::mlp::{Fusion, MlpConfig, Source, TrainedMlp, TrainingHistory};

/// One predictor: which features it uses.
pub(super) struct Arm {
    pub name: String,
    pub sources: Vec<usize>,
    pub fusion: Option<String>,
}

/// Every predictor; the last one is the primary one (its predictions go to obs and the heatmap).
pub(super) struct Arms {
    pub arms: Vec<Arm>,
    pub primary: usize,
    /// Name of the KNN features of the primary sources (the sweep and the 2-D map use them).
    pub knn_features_name: String,
}

/// The k values: which are run, which are skipped, and which makes the predictions.
pub(super) struct KPlan {
    /// Whether a k sweep runs (always for KNN; with `--k` for the MLP's KNN baseline).
    pub run_sweep: bool,
    /// The listed k that fit the smallest training set, in the order given.
    pub ok: Vec<usize>,
    pub skipped: Vec<usize>,
    /// Smallest training set over the splits.
    pub min_train: usize,
    /// k whose predictions are reported: the first listed k that fits.
    pub predict_k: Option<usize>,
}

/// Predictions of one arm on one split.
pub(super) struct ArmSplitOut {
    pub test: Vec<(usize, f32)>,
    pub val: Vec<(usize, f32)>,
    /// All cells (primary arm, first split only).
    pub all: Option<Vec<(usize, f32)>>,
    pub history: Option<TrainingHistory>,
}

/// What running every arm on every split produced.
pub(super) struct Runs {
    /// `[split][arm]`.
    pub outs: Vec<Vec<ArmSplitOut>>,
    /// `[split][k]` test predictions of the k sweep.
    pub sweep_preds: Vec<Vec<Vec<usize>>>,
    /// KNN features of every arm (for the MLP only the primary arm's, for the baseline sweep).
    // read by the figures (the 2-D maps) only
    #[cfg_attr(not(feature = "plots"), allow(dead_code))]
    pub arm_knn: Vec<(Vec<f32>, usize)>,
}

/// One arm per run, or with several sources one per source plus the fused one (primary, last).
pub(super) fn plan_arms(args: &ClassifyArgs, feats: &[Feature], notes: &mut Vec<String>) -> Arms {
    let mut arms: Vec<Arm> = Vec::new();
    if feats.len() == 1 {
        arms.push(Arm {
            name: feats[0].info.name.clone(),
            sources: vec![0],
            fusion: None,
        });
    } else {
        for (i, f) in feats.iter().enumerate() {
            arms.push(Arm {
                name: f.info.name.clone(),
                sources: vec![i],
                fusion: None,
            });
        }
        let all: Vec<usize> = (0..feats.len()).collect();
        let joined = feats
            .iter()
            .map(|f| f.info.name.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        let (name, fusion) = match args.method {
            Method::Knn => (
                format!("fused: {joined} (L2-normalized concat)"),
                "concat of L2-normalized sources",
            ),
            Method::Mlp => match args.fusion {
                Fusion::Concat => (format!("fused: {joined} (concat)"), "concat"),
                Fusion::Gated => (format!("fused: {joined} (gated)"), "gated"),
            },
        };
        arms.push(Arm {
            name,
            sources: all,
            fusion: Some(fusion.into()),
        });
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
    let knn_features_name = if feats.len() == 1 {
        feats[0].info.name.clone()
    } else {
        format!(
            "{} (L2-normalized concat)",
            feats
                .iter()
                .map(|f| f.info.name.as_str())
                .collect::<Vec<_>>()
                .join(" + ")
        )
    };
    Arms {
        arms,
        primary,
        knn_features_name,
    }
}

/// KNN features of an arm over all `n_cells` cells: its one source as is, or its sources
/// L2-normalized and concatenated.
pub(super) fn knn_features(arm: &Arm, feats: &[Feature], n_cells: usize) -> (Vec<f32>, usize) {
    if arm.sources.len() == 1 {
        let f = &feats[arm.sources[0]];
        (f.data.clone(), f.info.dim)
    } else {
        let fs: Vec<(&[f32], usize)> = arm
            .sources
            .iter()
            .map(|&s| (feats[s].data.as_slice(), feats[s].info.dim))
            .collect();
        concat_normalized(&fs, n_cells)
    }
}

/// Which k values run (those that fit the smallest training set) and which predicts.
pub(super) fn plan_ks(
    args: &ClassifyArgs,
    splits: &[CellSplit],
    notes: &mut Vec<String>,
) -> Result<KPlan> {
    let min_train = splits.iter().map(|s| s.train.len()).min().unwrap_or(0);
    let run_sweep = match args.method {
        Method::Knn => true,
        Method::Mlp => args.ks.is_some(),
    };
    let ks_all = args.ks.clone().unwrap_or_else(|| vec![DEFAULT_K]);
    let ok: Vec<usize> = ks_all.iter().copied().filter(|&k| k <= min_train).collect();
    let skipped: Vec<usize> = ks_all.iter().copied().filter(|&k| k > min_train).collect();
    if run_sweep && ok.is_empty() {
        bail!(
            "--k {}: every k is larger than the training set ({min_train} cells{}); use k ≤ {min_train}",
            ks_all.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
            if splits.len() > 1 { ", smallest fold" } else { "" }
        );
    }
    if run_sweep && !skipped.is_empty() {
        notes.push(format!(
            "k = {} skipped: larger than the training set ({min_train} cells{})",
            skipped
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if splits.len() > 1 {
                " in the smallest fold"
            } else {
                ""
            }
        ));
    }
    let predict_k = ok.first().copied();
    if args.method == Method::Knn && ok.len() > 1 {
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
    Ok(KPlan {
        run_sweep,
        ok,
        skipped,
        min_train,
        predict_k,
    })
}

/// Trains and predicts every arm on every split (and the k sweep on the primary KNN features).
pub(super) fn run_arms(
    args: &ClassifyArgs,
    lab: &Labels,
    splits: &[CellSplit],
    feats: &[Feature],
    arms: &Arms,
    ks: &KPlan,
) -> Result<Runs> {
    let (n_cells, y) = (lab.n_cells(), &lab.y);
    let primary = arms.primary;
    let mlp_cfg = args.effective_mlp();
    let n_runs = splits.len() * arms.arms.len();
    let pb = crate::progress::bar(n_runs as u64, "models", args.quiet);
    let mut outs: Vec<Vec<ArmSplitOut>> = Vec::with_capacity(splits.len());
    let mut sweep_preds: Vec<Vec<Vec<usize>>> = Vec::new();
    let arm_knn: Vec<(Vec<f32>, usize)> = if args.method == Method::Knn || ks.run_sweep {
        // for the MLP only the primary features are needed (baseline sweep)
        arms.arms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if args.method == Method::Knn || i == primary {
                    knn_features(a, feats, n_cells)
                } else {
                    (Vec::new(), 0)
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    for (si, sp) in splits.iter().enumerate() {
        let train_y: Vec<usize> = sp.train.iter().map(|&i| y[i]).collect();
        let mut row = Vec::with_capacity(arms.arms.len());
        // k sweep on the primary KNN features
        if ks.run_sweep {
            sweep_preds.push(k_sweep(args, &arm_knn[primary], sp, &train_y, &ks.ok)?);
        }
        for (ai, arm) in arms.arms.iter().enumerate() {
            pb.set_message(format!(
                "{}{}",
                arm.name,
                if splits.len() > 1 {
                    format!(" (fold {}/{})", si + 1, splits.len())
                } else {
                    String::new()
                }
            ));
            let want_all = ai == primary && si == 0;
            let out = match args.method {
                Method::Knn => {
                    let k = ks.predict_k.unwrap_or(DEFAULT_K);
                    let others = want_all.then(|| not_in(&sp.train, n_cells));
                    knn_arm(
                        args,
                        k,
                        &arm_knn[ai],
                        sp,
                        &train_y,
                        others.as_deref(),
                        n_cells,
                    )?
                }
                Method::Mlp => mlp_arm(arm, feats, lab, sp, &mlp_cfg, want_all)?,
            };
            row.push(out);
            pb.inc(1);
        }
        outs.push(row);
    }
    pb.finish_and_clear();
    Ok(Runs {
        outs,
        sweep_preds,
        arm_knn,
    })
}

/// The cells (of `0..n_cells`) not in `train`, in order.
fn not_in(train: &[usize], n_cells: usize) -> Vec<usize> {
    let mut is_train = vec![false; n_cells];
    train.iter().for_each(|&i| is_train[i] = true);
    (0..n_cells).filter(|&i| !is_train[i]).collect()
}

/// The test predictions of every k in `ks_ok` from one KNN fit on the split's training cells.
fn k_sweep(
    args: &ClassifyArgs,
    (x, dim): &(Vec<f32>, usize),
    sp: &CellSplit,
    train_y: &[usize],
    ks_ok: &[usize],
) -> Result<Vec<Vec<usize>>> {
    let knn = CosineKnn::fit(
        &gather_rows(x, *dim, &sp.train),
        sp.train.len(),
        *dim,
        train_y,
    )?;
    let preds = knn.predict_sweep(
        &gather_rows(x, *dim, &sp.test),
        sp.test.len(),
        ks_ok,
        args.vote,
    )?;
    Ok(preds
        .iter()
        .map(|p| p.iter().map(|q| q.label).collect())
        .collect())
}

/// One KNN arm on one split: test and validation predictions, and with `others` (the cells
/// outside the training set) every cell's, training cells leave-one-out.
fn knn_arm(
    args: &ClassifyArgs,
    k: usize,
    (x, dim): &(Vec<f32>, usize),
    sp: &CellSplit,
    train_y: &[usize],
    others: Option<&[usize]>,
    n_cells: usize,
) -> Result<ArmSplitOut> {
    let train_x = gather_rows(x, *dim, &sp.train);
    let knn = CosineKnn::fit(&train_x, sp.train.len(), *dim, train_y)?;
    let pr = |idx: &[usize]| -> Result<Vec<(usize, f32)>> {
        if idx.is_empty() {
            return Ok(Vec::new());
        }
        Ok(knn
            .predict(&gather_rows(x, *dim, idx), idx.len(), k, args.vote)?
            .into_iter()
            .map(|p| (p.label, p.confidence))
            .collect())
    };
    let test = pr(&sp.test)?;
    let val = pr(&sp.val)?;
    let all = match others {
        Some(others) => {
            let mut all = vec![(0usize, 0f32); n_cells];
            for (&i, p) in sp.train.iter().zip(knn_loo(&knn, &train_x, k, args.vote)?) {
                all[i] = (p.label, p.confidence);
            }
            for (&i, p) in others.iter().zip(pr(others)?) {
                all[i] = p;
            }
            Some(all)
        }
        None => None,
    };
    Ok(ArmSplitOut {
        test,
        val,
        all,
        history: None,
    })
}

/// One MLP arm on one split: trained on the split's training cells; test and validation
/// predictions, and with `want_all` every cell's.
fn mlp_arm(
    arm: &Arm,
    feats: &[Feature],
    lab: &Labels,
    sp: &CellSplit,
    mlp_cfg: &MlpConfig,
    want_all: bool,
) -> Result<ArmSplitOut> {
    let (n_cells, y, names) = (lab.n_cells(), &lab.y, &lab.names);
    let sources: Vec<Source> = arm
        .sources
        .iter()
        .map(|&s| {
            Source::new(
                feats[s].info.name.clone(),
                &feats[s].data,
                feats[s].info.dim,
            )
        })
        .collect();
    let y0: Vec<usize> = y
        .iter()
        .map(|&c| if c == usize::MAX { 0 } else { c })
        .collect();
    // a gate on a lone source has nothing to weigh against: single sources use concat
    let cfg = if arm.sources.len() == 1 {
        MlpConfig {
            fusion: Fusion::Concat,
            ..mlp_cfg.clone()
        }
    } else {
        mlp_cfg.clone()
    };
    let model = TrainedMlp::fit(&sources, &y0, names.len(), &sp.train, &cfg)
        .with_context(|| format!("training the MLP on {}", arm.name))?;
    let test = model.predict(&sources, &sp.test)?;
    let val = if sp.val.is_empty() {
        Vec::new()
    } else {
        model.predict(&sources, &sp.val)?
    };
    let all = if want_all {
        Some(model.predict(&sources, &(0..n_cells).collect::<Vec<_>>())?)
    } else {
        None
    };
    Ok(ArmSplitOut {
        test,
        val,
        all,
        history: Some(model.history().clone()),
    })
}

/// The obs columns: each cell's (class, confidence) from the primary arm and its split name.
/// Every labelled cell is train / test / val (or tested in a fold), so only cells with an empty
/// label keep 'unlabeled'.
pub(super) fn obs_predictions(
    args: &ClassifyArgs,
    lab: &Labels,
    splits: &[CellSplit],
    arms: &Arms,
    runs: &Runs,
) -> (Vec<(usize, f32)>, Vec<String>) {
    let (primary, outs) = (arms.primary, &runs.outs);
    let mut pred: Vec<(usize, f32)> = outs[0][primary].all.clone().unwrap_or_default();
    let mut split_col: Vec<String> = vec!["unlabeled".to_string(); lab.n_cells()];
    if args.folds.is_some() {
        for &i in &lab.labelled {
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
    (pred, split_col)
}
