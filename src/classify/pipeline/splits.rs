//! The train / test (/ val) cells of a run: from `--split-column`, `--folds`, or a seeded
//! stratified split.

use anyhow::{bail, Context, Result};

use super::arguments::ClassifyArgs;
use super::features::Labels;
use super::report::SplitInfo;
use crate::cells::read::find_obs_column;
use crate::classify::split::{self, Split};

/// Cell-index split (train / test / val).
pub(super) struct CellSplit {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub val: Vec<usize>,
}

/// The split(s) of the labelled cells: one, or one per fold.
pub(super) struct Splits {
    pub cells: Vec<CellSplit>,
    pub info: SplitInfo,
}

/// The train / test (/ val) cells: from `--split-column`, `--folds`, or a stratified split.
pub(super) fn make_splits(
    args: &ClassifyArgs,
    lab: &Labels,
    notes: &mut Vec<String>,
) -> Result<Splits> {
    if let Some(col) = &args.split_column {
        return column_split(args, lab, col, notes);
    }
    if let Some(k) = args.folds {
        return fold_splits(args, lab, k);
    }
    let labelled = &lab.labelled;
    let s = split::stratified_split(&lab.y_lab, &lab.names, args.test_fraction, args.seed)?;
    let cs = to_cells(labelled, &s);
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
    Ok(Splits {
        cells: vec![cs],
        info,
    })
}

/// The labelled cells' indices of a split of their positions.
fn to_cells(labelled: &[usize], s: &Split) -> CellSplit {
    CellSplit {
        train: s.train.iter().map(|&i| labelled[i]).collect(),
        test: s.test.iter().map(|&i| labelled[i]).collect(),
        val: s.val.iter().map(|&i| labelled[i]).collect(),
    }
}

/// `--split-column COL`: train / test / val per labelled cell, as the column says.
fn column_split(
    args: &ClassifyArgs,
    lab: &Labels,
    col: &str,
    notes: &mut Vec<String>,
) -> Result<Splits> {
    let (labelled, names, y) = (&lab.labelled, &lab.names, &lab.y);
    let c = find_obs_column(&lab.obs, col, Some(&args.input)).context("--split-column")?;
    let vals = c.to_labels();
    let (mut tr, mut te, mut va) = (Vec::new(), Vec::new(), Vec::new());
    for &i in labelled {
        match vals[i].trim().to_ascii_lowercase().as_str() {
            "train" => tr.push(i),
            "test" => te.push(i),
            "val" => va.push(i),
            _ => bail!(
                "{}: --split-column {col}: cell {i} ('{}') has value {:?}; every labelled cell's value must be train, test or val",
                args.input.display(),
                lab.cell_ids[i],
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
    let absent: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(c, _)| !in_train[*c])
        .map(|(_, n)| n.as_str())
        .collect();
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
        column: Some(col.to_string()),
        n_folds: None,
        n_train: vec![tr.len()],
        n_test: vec![te.len()],
        n_val: va.len(),
        train: Vec::new(),
        test: Vec::new(),
        fold_test: Vec::new(),
    };
    Ok(Splits {
        cells: vec![CellSplit {
            train: tr,
            test: te,
            val: va,
        }],
        info,
    })
}

/// `--folds K`: stratified K-fold cross-validation.
fn fold_splits(args: &ClassifyArgs, lab: &Labels, k: usize) -> Result<Splits> {
    let (labelled, names) = (&lab.labelled, &lab.names);
    let stratifiable = labelled.len()
        - lab
            .small_classes
            .iter()
            .map(|c| lab.class_counts[c])
            .sum::<usize>();
    if k > stratifiable {
        bail!("--folds {k}: only {stratifiable} labelled cells can be tested; use fewer folds");
    }
    let folds = split::stratified_kfold(&lab.y_lab, names, k, args.seed)?;
    let cs: Vec<CellSplit> = folds.iter().map(|f| to_cells(labelled, f)).collect();
    if let Some(f) = cs
        .iter()
        .position(|s| s.test.is_empty() || s.train.is_empty())
    {
        bail!(
            "--folds {k}: fold {} has no test or no training cells; use fewer folds",
            f + 1
        );
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
    Ok(Splits { cells: cs, info })
}
