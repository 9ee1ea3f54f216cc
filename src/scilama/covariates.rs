//! Cell covariates for sciLaMA (`--batch-key`, `--covariate-key`): obs columns turned into the
//! columns concatenated to the cell encoder's and decoder's inputs, as the reference does
//! (`microsoft/sciLaMA`, `utils.py`: `fit_covariate_encoding_state`, `encode_covariates`).
//!
//! - Categorical (`--batch-key COL`, repeatable): one-hot over the column's categories, in sorted
//!   (byte) order of their text — the reference's `sorted(obs[col].astype(str).unique())`.
//! - Continuous (`--covariate-key COL`, repeatable): `(v − mean) / std` with the mean and the
//!   population standard deviation (ddof 0, numpy's `nanstd`) of the training input's cells; a
//!   constant column gets std 1, as in the reference.
//!
//! Columns follow in flag order: every categorical block, then every continuous column. The
//! encoding (categories and statistics) is saved with the model so `scilama embed` encodes new
//! cells the same way. Unlike the reference, which gives an unseen category an all-zero block
//! and a missing column zeros, `embed` refuses both: a cell from an unseen batch has no batch
//! term the decoder was trained with, so its embedding would silently mean something else.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::cells::matrix::{is_missing_label, ObsColumn};

/// How many training standard deviations from the training mean a new cell's continuous
/// covariate may lie before `scilama embed` warns.
pub const FAR_OUTSIDE: f64 = 10.0;

/// One categorical covariate and its categories, in one-hot order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    pub key: String,
    pub categories: Vec<String>,
}

/// One continuous covariate and the statistics it is z-scored with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuous {
    pub key: String,
    pub mean: f64,
    pub std: f64,
}

/// How obs columns become covariate columns (saved in the model's metadata as `covariates`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Covariates {
    pub categorical: Vec<Categorical>,
    pub continuous: Vec<Continuous>,
}

fn column<'a>(
    obs: &'a [(String, ObsColumn)],
    key: &str,
    flag: &str,
    source: &str,
) -> Result<&'a ObsColumn> {
    match obs.iter().find(|(k, _)| k == key) {
        Some((_, c)) => Ok(c),
        None => {
            let names: Vec<&str> = obs.iter().map(|(k, _)| k.as_str()).collect();
            bail!(
                "{source}: obs has no column `{key}` ({flag} {key}); its columns are: {}",
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
    }
}

/// The text of a categorical value (integral numbers without `.0`: `1`, `2.5`; missing: "").
fn category_texts(col: &ObsColumn) -> Vec<String> {
    col.to_labels()
}

fn cell_name(cell_ids: &[String], i: usize) -> String {
    cell_ids.get(i).map_or(format!("#{i}"), |s| s.clone())
}

/// Refuses a `--batch-key` column that cannot name every training cell's batch: a missing value
/// (a category of its own in the reference, which silently makes one batch of unrelated cells),
/// non-integer numbers or, past 50 values, fewer than two cells a value (a measurement or an ID,
/// not a batch).
fn check_batch_column(col: &ObsColumn, key: &str, cell_ids: &[String], source: &str) -> Result<()> {
    let texts = category_texts(col);
    let n = texts.len();
    let missing: Vec<usize> = (0..n).filter(|&i| is_missing_label(&texts[i])).collect();
    if missing.len() == n {
        bail!(
            "{source}: obs column `{key}` (--batch-key) holds no value for any of its {n} cells \
             (all missing, empty or NaN); name the column that records each cell's batch"
        );
    }
    if let Some(&i) = missing.first() {
        bail!(
            "{source}: obs column `{key}` (--batch-key) has no value (missing, empty or NaN) for \
             {} of {n} cells, the first {}; sciLaMA needs every cell's batch: drop those cells, \
             or give them a label of their own (e.g. `unknown`) if they are one batch",
            missing.len(),
            cell_name(cell_ids, i)
        );
    }
    if let ObsColumn::Number(v) = col {
        if let Some(i) = v.iter().position(|x| x.fract() != 0.0) {
            bail!(
                "{source}: obs column `{key}` (--batch-key) holds the non-integer number {} (cell \
                 {}): a measurement, not a batch; pass it as --covariate-key {key}, or store the \
                 batches as text or categories",
                v[i],
                cell_name(cell_ids, i)
            );
        }
    }
    let mut distinct = texts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > 50 && distinct.len() * 2 > n {
        bail!(
            "{source}: obs column `{key}` (--batch-key) has {} distinct values over {n} cells, \
             fewer than 2 cells a batch on average: an ID or a measurement, not a batch (a \
             measurement goes in --covariate-key {key})",
            distinct.len()
        );
    }
    Ok(())
}

fn numbers<'a>(col: &'a ObsColumn, key: &str, source: &str) -> Result<&'a [f64]> {
    match col {
        ObsColumn::Number(v) => Ok(v),
        ObsColumn::Text(_) => bail!(
            "{source}: obs column `{key}` holds text; --covariate-key takes a numeric column \
             (for categories such as a batch name use --batch-key {key})"
        ),
    }
}

impl Covariates {
    /// Number of covariate columns.
    pub fn width(&self) -> usize {
        self.categorical
            .iter()
            .map(|c| c.categories.len())
            .sum::<usize>()
            + self.continuous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.categorical.is_empty() && self.continuous.is_empty()
    }

    /// Learns the encoding from the training cells' obs columns (`source` names the input in
    /// messages).
    pub fn fit(
        obs: &[(String, ObsColumn)],
        batch_keys: &[String],
        covariate_keys: &[String],
        cell_ids: &[String],
        source: &str,
    ) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        for k in batch_keys.iter().chain(covariate_keys) {
            if !seen.insert(k.as_str()) {
                bail!("obs column `{k}` is given twice in --batch-key / --covariate-key");
            }
        }
        let mut out = Covariates::default();
        for key in batch_keys {
            let col = column(obs, key, "--batch-key", source)?;
            check_batch_column(col, key, cell_ids, source)?;
            let mut categories = category_texts(col);
            categories.sort_unstable();
            categories.dedup();
            out.categorical.push(Categorical {
                key: key.clone(),
                categories,
            });
        }
        for key in covariate_keys {
            let v = numbers(column(obs, key, "--covariate-key", source)?, key, source)?;
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!(
                    "{source}: obs column `{key}` is {} at cell {}; --covariate-key needs a \
                     finite number for every cell (fill or drop those cells first)",
                    v[i],
                    cell_name(cell_ids, i)
                );
            }
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            if !mean.is_finite() || !sd.is_finite() {
                bail!(
                    "{source}: obs column `{key}` (--covariate-key) holds values too large to \
                     standardize in double precision (up to {:e}); rescale it (e.g. a log or \
                     other units) first",
                    v.iter().fold(0f64, |a, x| a.max(x.abs()))
                );
            }
            out.continuous.push(Continuous {
                key: key.clone(),
                mean,
                std: if sd == 0.0 { 1.0 } else { sd },
            });
        }
        out.validate()?;
        Ok(out)
    }

    /// Each cell's batch for batch-aware gene selection: the combination of its categorical
    /// covariates, as codes `0..B` (`None` without `--batch-key`); a batch of one cell is refused.
    pub fn batch_codes(
        &self,
        obs: &[(String, ObsColumn)],
        n: usize,
        source: &str,
    ) -> Result<Option<Vec<usize>>> {
        if self.categorical.is_empty() {
            return Ok(None);
        }
        let mut keys: Vec<Vec<usize>> = vec![Vec::with_capacity(self.categorical.len()); n];
        for c in &self.categorical {
            let texts = category_texts(column(obs, &c.key, "--batch-key", source)?);
            if texts.len() != n {
                bail!(
                    "{source}: obs column `{}` has {} values for {n} cells",
                    c.key,
                    texts.len()
                );
            }
            let index: std::collections::HashMap<&str, usize> = c
                .categories
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i))
                .collect();
            for (key, t) in keys.iter_mut().zip(&texts) {
                match index.get(t.as_str()) {
                    Some(&j) => key.push(j),
                    None => bail!(
                        "{source}: obs column `{}` holds `{t}`, not one of its fitted categories",
                        c.key
                    ),
                }
            }
        }
        let mut seen: std::collections::HashMap<Vec<usize>, usize> = Default::default();
        let mut count: Vec<usize> = Vec::new();
        let mut codes = Vec::with_capacity(n);
        for k in &keys {
            let next = seen.len();
            let code = *seen.entry(k.clone()).or_insert(next);
            if code == count.len() {
                count.push(0);
            }
            count[code] += 1;
            codes.push(code);
        }
        // name a one-cell batch here, where its text is known (genes are chosen within batches)
        if let Some(i) = (0..n).find(|&i| count[codes[i]] == 1) {
            let name: Vec<String> = self
                .categorical
                .iter()
                .zip(&keys[i])
                .map(|(c, &j)| format!("{} = {}", c.key, c.categories[j]))
                .collect();
            bail!(
                "{source}: the batch {} holds a single cell; the genes of --hvg are chosen within \
                 batches, which needs at least 2 cells in each (drop or relabel that cell, or pass \
                 --hvg 0)",
                name.join(", ")
            );
        }
        Ok(Some(codes))
    }

    /// Checks a (possibly read-back) encoding: categories present and distinct, statistics
    /// finite with a positive std.
    pub fn validate(&self) -> Result<()> {
        for c in &self.categorical {
            if c.categories.is_empty() {
                bail!("covariate `{}` has no categories", c.key);
            }
            let mut s = c.categories.clone();
            s.sort_unstable();
            s.dedup();
            if s.len() != c.categories.len() {
                bail!("covariate `{}` lists a category twice", c.key);
            }
        }
        for c in &self.continuous {
            if !c.mean.is_finite() || !c.std.is_finite() || c.std <= 0.0 {
                bail!(
                    "covariate `{}` has mean {} and std {}; both must be finite and the std > 0",
                    c.key,
                    c.mean,
                    c.std
                );
            }
        }
        Ok(())
    }

    /// Warnings for continuous covariates of new cells (`cov`, as [`Covariates::encode`] made
    /// it) more than [`FAR_OUTSIDE`] training standard deviations from the training mean: the
    /// model never saw such values, so those cells' embeddings are extrapolations.
    pub fn far_outside(
        &self,
        cov: &[f32],
        n: usize,
        cell_ids: &[String],
        source: &str,
    ) -> Vec<String> {
        let w = self.width();
        let off = w - self.continuous.len();
        let mut out = Vec::new();
        for (k, c) in self.continuous.iter().enumerate() {
            let far: Vec<usize> = (0..n)
                .filter(|&i| (cov[i * w + off + k] as f64).abs() > FAR_OUTSIDE)
                .collect();
            if let Some(&i) = far.first() {
                let z = cov[i * w + off + k] as f64;
                out.push(format!(
                    "{source}: obs column `{}` lies over {FAR_OUTSIDE} training standard \
                     deviations from its training mean for {} of {n} cells (the first {}: {}, \
                     against mean {} and std {}); the model never saw such values, so those \
                     cells' embeddings are extrapolations",
                    c.key,
                    far.len(),
                    cell_name(cell_ids, i),
                    c.mean + z * c.std,
                    c.mean,
                    c.std
                ));
            }
        }
        out
    }

    /// The covariate matrix `[n × width]` (row-major) of `n` cells' obs columns. Refuses a missing
    /// column and a category the encoding does not know, naming both.
    pub fn encode(
        &self,
        obs: &[(String, ObsColumn)],
        n: usize,
        cell_ids: &[String],
        source: &str,
    ) -> Result<Vec<f32>> {
        let w = self.width();
        let mut out = vec![0f32; n * w];
        let mut off = 0;
        for c in &self.categorical {
            let col = column(obs, &c.key, "trained with --batch-key", source)?;
            let texts = category_texts(col);
            if texts.len() != n {
                bail!(
                    "{source}: obs column `{}` has {} values for {n} cells",
                    c.key,
                    texts.len()
                );
            }
            for (i, t) in texts.iter().enumerate() {
                if is_missing_label(t) && !c.categories.contains(t) {
                    bail!(
                        "{source}: obs column `{}` has no value (missing, empty or NaN) for cell \
                         {}; the model needs each cell's batch, one of: {}",
                        c.key,
                        cell_name(cell_ids, i),
                        c.categories.join(", ")
                    );
                }
                let Some(j) = c.categories.iter().position(|k| k == t) else {
                    bail!(
                        "{source}: obs column `{}` holds `{t}` (cell {}), a category the model \
                         was not trained with (it knows {}); embed only cells of known \
                         categories, or retrain with these cells included",
                        c.key,
                        cell_name(cell_ids, i),
                        c.categories.join(", ")
                    );
                };
                out[i * w + off + j] = 1.0;
            }
            off += c.categories.len();
        }
        for c in &self.continuous {
            let v = numbers(
                column(obs, &c.key, "trained with --covariate-key", source)?,
                &c.key,
                source,
            )?;
            if v.len() != n {
                bail!(
                    "{source}: obs column `{}` has {} values for {n} cells",
                    c.key,
                    v.len()
                );
            }
            for (i, x) in v.iter().enumerate() {
                if !x.is_finite() {
                    bail!(
                        "{source}: obs column `{}` is {x} at cell {}; every cell needs a finite \
                         value",
                        c.key,
                        cell_name(cell_ids, i)
                    );
                }
                out[i * w + off] = ((x - c.mean) / c.std) as f32;
            }
            off += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Vec<(String, ObsColumn)> {
        vec![
            (
                "batch".into(),
                ObsColumn::Text(vec!["b".into(), "a".into(), "b".into(), "c".into()]),
            ),
            ("depth".into(), ObsColumn::Number(vec![1.0, 2.0, 3.0, 6.0])),
        ]
    }

    #[test]
    fn encoding_matches_hand_computation() -> Result<()> {
        let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let cov = Covariates::fit(&obs(), &["batch".into()], &["depth".into()], &ids, "in")?;
        assert_eq!(cov.categorical[0].categories, vec!["a", "b", "c"]);
        // mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5
        assert_eq!(cov.continuous[0].mean, 3.0);
        assert!((cov.continuous[0].std - 3.5f64.sqrt()).abs() < 1e-15);
        let x = cov.encode(&obs(), 4, &ids, "in")?;
        let s = 3.5f64.sqrt();
        let want: Vec<f32> = [
            [0.0, 1.0, 0.0, -2.0 / s],
            [1.0, 0.0, 0.0, -1.0 / s],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 3.0 / s],
        ]
        .iter()
        .flatten()
        .map(|&v| v as f32)
        .collect();
        assert_eq!(x, want);
        // unknown category and missing column are refused by name
        let mut other = obs();
        other[0].1 = ObsColumn::Text(vec!["a".into(), "z".into(), "a".into(), "a".into()]);
        let e = cov
            .encode(&other, 4, &ids, "new.h5ad")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`batch` holds `z` (cell c1)"), "{e}");
        let e = cov
            .encode(&obs()[1..], 4, &ids, "new.h5ad")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `batch`"), "{e}");
        // text as a continuous covariate, a key twice
        assert!(Covariates::fit(&obs(), &[], &["batch".into()], &ids, "in").is_err());
        assert!(Covariates::fit(&obs(), &["depth".into()], &["depth".into()], &ids, "in").is_err());
        // a constant column gets std 1
        let c = vec![("k".into(), ObsColumn::Number(vec![2.0; 3]))];
        assert_eq!(
            Covariates::fit(&c, &[], &["k".into()], &ids, "in")?.continuous[0].std,
            1.0
        );
        Ok(())
    }

    fn fit_batch(col: ObsColumn) -> String {
        let ids: Vec<String> = (0..col.len()).map(|i| format!("c{i}")).collect();
        match Covariates::fit(&[("b".into(), col)], &["b".into()], &[], &ids, "in.h5ad") {
            Ok(c) => format!("ok {:?}", c.categorical[0].categories),
            Err(e) => e.to_string(),
        }
    }

    /// A batch column must name every cell's batch: missing values (NaN, empty, the text `nan`,
    /// some or all), non-integer numbers and one value per cell are refused by column and cell;
    /// integral numbers are categories spelled without `.0`.
    #[test]
    fn batch_columns_that_cannot_name_every_cell_are_refused() {
        let text = |v: &[&str]| ObsColumn::Text(v.iter().map(|s| s.to_string()).collect());
        let e = fit_batch(text(&["a", "a", "", "b", "b", ""]));
        assert!(
            e.contains("`b` (--batch-key) has no value")
                && e.contains("2 of 6 cells, the first c2"),
            "{e}"
        );
        let e = fit_batch(text(&["a", "nan", "a", "b"]));
        assert!(e.contains("1 of 4 cells, the first c1"), "{e}");
        let e = fit_batch(ObsColumn::Number(vec![1.0, f64::NAN, 1.0, 2.0]));
        assert!(e.contains("1 of 4 cells, the first c1"), "{e}");
        let e = fit_batch(ObsColumn::Number(vec![f64::NAN; 3]));
        assert!(e.contains("no value for any of its 3 cells"), "{e}");
        let e = fit_batch(ObsColumn::Number(vec![1.0, 1.0, 2.5, 2.0]));
        assert!(
            e.contains("non-integer number 2.5 (cell c2)") && e.contains("--covariate-key b"),
            "{e}"
        );
        let e = fit_batch(ObsColumn::Number(
            (0..60).map(|i| (i * 100) as f64).collect(),
        ));
        assert!(e.contains("60 distinct values over 60 cells"), "{e}");
        assert_eq!(
            fit_batch(ObsColumn::Number(vec![2.0, 1.0, 1.0, 2.0])),
            "ok [\"1\", \"2\"]"
        );
        // embedding: a missing value is named as missing, not as an unknown category ``
        let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let cov = Covariates::fit(&obs(), &["batch".into()], &[], &ids, "in").unwrap();
        let mut other = obs();
        other[0].1 = text(&["a", "b", "", "a"]);
        let e = cov
            .encode(&other, 4, &ids, "new.h5ad")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no value (missing, empty or NaN) for cell c2"),
            "{e}"
        );
    }

    /// Values whose mean or spread overflows f64 are refused by name, not saved as inf.
    #[test]
    fn an_overflowing_covariate_is_refused() {
        let ids: Vec<String> = (0..2).map(|i| format!("c{i}")).collect();
        let c = vec![("huge".into(), ObsColumn::Number(vec![1e308, -1e308]))];
        let e = Covariates::fit(&c, &[], &["huge".into()], &ids, "in.h5ad")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in.h5ad: obs column `huge`") && e.contains("too large"),
            "{e}"
        );
    }

    /// New cells' continuous covariates far from the training distribution are named (cell,
    /// value, training mean and std); values inside it give no warning.
    #[test]
    fn far_outside_names_extrapolated_cells() -> Result<()> {
        let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let cov = Covariates::fit(&obs(), &["batch".into()], &["depth".into()], &ids, "in")?;
        let x = cov.encode(&obs(), 4, &ids, "in")?;
        assert!(cov.far_outside(&x, 4, &ids, "in").is_empty());
        let mut other = obs();
        other[1].1 = ObsColumn::Number(vec![1.0, 2000.0, 3.0, 6.0]);
        let x = cov.encode(&other, 4, &ids, "new")?;
        let w = cov.far_outside(&x, 4, &ids, "new.h5ad");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("new.h5ad: obs column `depth`")
                && w[0].contains("1 of 4 cells (the first c1: 2000")
                && w[0].contains("against mean 3"),
            "{}",
            w[0]
        );
        Ok(())
    }
}
