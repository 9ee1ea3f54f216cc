//! Seeded train/test splits of cells, stratified by cell type.
//!
//! Rule for [`stratified_split`]: a class with n ≥ 2 cells gets
//! `clamp(round(n × test_fraction), 1, n − 1)` cells in test and the rest in train, chosen by
//! shuffling the class's cells with `ChaCha8Rng::seed_from_u64(seed)` (classes visited in
//! index order). A class with fewer than 2 cells cannot be in both; its cells go to train and
//! its name is listed in `excluded_classes`. Index lists are sorted ascending.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Default fraction of each class held out for test.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// Row indices of each part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub val: Vec<usize>,
    /// Classes too small to be tested (fewer cells than needed); their cells are all in train.
    pub excluded_classes: Vec<String>,
}

fn cells_by_class(labels: &[usize], class_names: &[String]) -> Result<Vec<Vec<usize>>> {
    let mut by_class = vec![Vec::new(); class_names.len()];
    for (i, &l) in labels.iter().enumerate() {
        if l >= class_names.len() {
            bail!(
                "cell {i} has class index {l} but only {} class names were given; pass one name per class index",
                class_names.len()
            );
        }
        by_class[l].push(i);
    }
    Ok(by_class)
}

/// Stratified train/test split; see the module docs for the counting rule.
/// `test_fraction` must be in (0, 1); use [`DEFAULT_TEST_FRACTION`] for 0.2.
pub fn stratified_split(
    labels: &[usize],
    class_names: &[String],
    test_fraction: f64,
    seed: u64,
) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        bail!("test fraction is {test_fraction}; use a value strictly between 0 and 1 (default {DEFAULT_TEST_FRACTION})");
    }
    let by_class = cells_by_class(labels, class_names)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split::default();
    for (c, cells) in by_class.into_iter().enumerate() {
        let n = cells.len();
        if n == 0 {
            continue;
        }
        if n < 2 {
            split.excluded_classes.push(class_names[c].clone());
            split.train.extend(cells);
            continue;
        }
        let mut cells = cells;
        cells.shuffle(&mut rng);
        let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1);
        split.test.extend_from_slice(&cells[..n_test]);
        split.train.extend_from_slice(&cells[n_test..]);
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// Stratified k-fold: each class's cells are shuffled (seeded) and dealt to the folds in turn,
/// the dealing continuing across classes so fold sizes stay balanced. Fold f's `test` is the
/// cells dealt to f, its `train` all other cells. Classes with fewer than 2 cells go to train in
/// every fold and are listed in `excluded_classes`; a class with fewer cells than folds is
/// simply absent from some folds' test.
pub fn stratified_kfold(
    labels: &[usize],
    class_names: &[String],
    n_folds: usize,
    seed: u64,
) -> Result<Vec<Split>> {
    if n_folds < 2 {
        bail!("k-fold needs at least 2 folds, got {n_folds}");
    }
    let by_class = cells_by_class(labels, class_names)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold_of = vec![usize::MAX; labels.len()];
    let mut excluded = Vec::new();
    let mut next = 0usize;
    for (c, mut cells) in by_class.into_iter().enumerate() {
        match cells.len() {
            0 => continue,
            1 => {
                excluded.push(class_names[c].clone());
                continue;
            }
            _ => {}
        }
        cells.shuffle(&mut rng);
        for i in cells {
            fold_of[i] = next % n_folds;
            next += 1;
        }
    }
    Ok((0..n_folds)
        .map(|f| {
            let mut s = Split {
                excluded_classes: excluded.clone(),
                ..Split::default()
            };
            for (i, &fi) in fold_of.iter().enumerate() {
                if fi == f {
                    s.test.push(i);
                } else {
                    s.train.push(i);
                }
            }
            s
        })
        .collect())
}

/// Split from a column of "train" / "test" / "val" values (case and surrounding spaces ignored).
/// `column` names the column (and file) in error messages.
pub fn split_from_column<S: AsRef<str>>(values: &[S], column: &str) -> Result<Split> {
    let mut split = Split::default();
    for (i, v) in values.iter().enumerate() {
        let raw = v.as_ref();
        match raw.trim().to_ascii_lowercase().as_str() {
            "train" => split.train.push(i),
            "test" => split.test.push(i),
            "val" => split.val.push(i),
            _ => bail!(
                "split column {column}: row {i} has value {raw:?}; each value must be \"train\", \"test\" or \"val\""
            ),
        }
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let labels: Vec<usize> = [vec![0; 10], vec![1; 2], vec![2; 1]].concat();
        let s = stratified_split(&labels, &names, 0.2, 1).unwrap();
        assert_eq!(s.test.len(), 2 + 1);
        assert_eq!(s.train.len(), 8 + 1 + 1);
        assert_eq!(s.excluded_classes, vec!["c".to_string()]);
        assert!(s.train.contains(&12));
    }
}
