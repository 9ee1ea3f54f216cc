//! Classification metrics with scikit-learn's exact definitions.
//!
//! Labels are class indices (`usize`) into a list of class names. Unless told otherwise
//! (see [`ClassificationReport::with_labels`]) the report covers the sorted union of the
//! labels seen in `y_true` and `y_pred`, as scikit-learn does with `labels=None`; so a class
//! that only appears in the predictions gets a row (precision 0, recall 0, support 0).
//!
//! Zero divisions follow scikit-learn's default `zero_division="warn"`: the undefined value
//! is 0.0 (scikit-learn also prints a warning; we do not).
//!
//! | field | scikit-learn |
//! | --- | --- |
//! | `accuracy` | `accuracy_score` |
//! | `per_class[i].precision/recall/f1/support` | `precision_recall_fscore_support(average=None)` |
//! | `macro_*` | `average="macro"` |
//! | `weighted_*` | `average="weighted"` (weights = support; all-zero support → 0.0) |
//! | `cohen_kappa` | `cohen_kappa_score` (undefined → NaN, as its default) |
//! | `confusion` | `confusion_matrix` (rows = true, columns = predicted) |
//! | `confusion_normalized` | `confusion_matrix(normalize="true")` (empty rows → 0.0) |

use anyhow::{bail, Result};
use serde::Serialize;
use std::fmt::Write as _;

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class index.
    pub label: usize,
    /// Class name.
    pub name: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of cells whose true class is this one.
    pub support: usize,
    /// Number of cells predicted as this class.
    pub predicted: usize,
}

/// Everything about one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub n_samples: usize,
    /// Class indices covered, in the order of `per_class` and of the confusion matrix.
    pub labels: Vec<usize>,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub weighted_precision: f64,
    pub weighted_recall: f64,
    pub weighted_f1: f64,
    pub cohen_kappa: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[i][j]`: cells of class `labels[i]` predicted as `labels[j]`.
    pub confusion: Vec<Vec<u64>>,
    /// `confusion` divided by its row sums (rows with no cells are all 0.0).
    pub confusion_normalized: Vec<Vec<f64>>,
}

fn check_pair(y_true: &[usize], y_pred: &[usize]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        bail!(
            "y_true has {} labels but y_pred has {}: pass one prediction per cell",
            y_true.len(),
            y_pred.len()
        );
    }
    if y_true.is_empty() {
        bail!("no cells to score: y_true and y_pred are empty");
    }
    Ok(())
}

/// Sorted union of the labels in `y_true` and `y_pred` (scikit-learn's `unique_labels`).
pub fn unique_labels(y_true: &[usize], y_pred: &[usize]) -> Vec<usize> {
    let mut v: Vec<usize> = y_true.iter().chain(y_pred).copied().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Fraction of exact matches (`accuracy_score`).
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check_pair(y_true, y_pred)?;
    let hits = y_true.iter().zip(y_pred).filter(|(a, b)| a == b).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Confusion matrix over `labels` (rows = true, columns = predicted); cells whose true or
/// predicted label is not in `labels` are not counted (as scikit-learn).
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    labels: &[usize],
) -> Result<Vec<Vec<u64>>> {
    check_pair(y_true, y_pred)?;
    let max = labels.iter().copied().max().unwrap_or(0);
    let max = max.max(y_true.iter().chain(y_pred).copied().max().unwrap_or(0));
    let mut pos = vec![usize::MAX; max + 1];
    for (i, &l) in labels.iter().enumerate() {
        if pos[l] != usize::MAX {
            bail!("label {l} is listed twice in `labels`");
        }
        pos[l] = i;
    }
    let k = labels.len();
    let mut cm = vec![vec![0u64; k]; k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        let (i, j) = (pos[t], pos[p]);
        if i != usize::MAX && j != usize::MAX {
            cm[i][j] += 1;
        }
    }
    Ok(cm)
}

/// Cohen's kappa from a confusion matrix (`cohen_kappa_score`, unweighted).
/// Where it is undefined (no counted cells, or no expected disagreement, e.g. every cell is
/// one class in both labelings) it is NaN, scikit-learn's default `replace_undefined_by=np.nan`
/// (serialised as `null` in JSON).
pub fn cohen_kappa_from_confusion(cm: &[Vec<u64>]) -> f64 {
    let k = cm.len();
    let sum0: Vec<f64> = (0..k)
        .map(|j| cm.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let sum1: Vec<f64> = cm.iter().map(|r| r.iter().sum::<u64>() as f64).collect();
    let total: f64 = sum0.iter().sum();
    if total == 0.0 {
        return f64::NAN;
    }
    let mut observed_off = 0u64;
    let mut expected_off = 0.0f64;
    for i in 0..k {
        for j in 0..k {
            if i != j {
                observed_off += cm[i][j];
                // numpy: expected = outer(sum0, sum1) / sum(sum0)
                expected_off += sum0[i] * sum1[j] / total;
            }
        }
    }
    if expected_off == 0.0 {
        return f64::NAN;
    }
    1.0 - observed_off as f64 / expected_off
}

/// Cohen's kappa between two labelings (`cohen_kappa_score(y_true, y_pred)`).
pub fn cohen_kappa(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    let labels = unique_labels(y_true, y_pred);
    Ok(cohen_kappa_from_confusion(&confusion_matrix(
        y_true, y_pred, &labels,
    )?))
}

/// `num / den`, or 0.0 where `den == 0` (scikit-learn's zero_division="warn").
fn prf_divide(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

impl ClassificationReport {
    /// Report over the sorted union of labels seen in `y_true` and `y_pred`
    /// (scikit-learn's `labels=None`). `class_names[i]` names class index `i`.
    pub fn new(y_true: &[usize], y_pred: &[usize], class_names: &[String]) -> Result<Self> {
        check_pair(y_true, y_pred)?;
        let labels = unique_labels(y_true, y_pred);
        Self::with_labels(y_true, y_pred, class_names, &labels)
    }

    /// Report over exactly `labels`, in that order (scikit-learn's `labels=` argument):
    /// a listed class absent from both `y_true` and `y_pred` gets all-zero scores and counts in
    /// the macro averages; cells whose labels are not listed only count toward `accuracy`.
    pub fn with_labels(
        y_true: &[usize],
        y_pred: &[usize],
        class_names: &[String],
        labels: &[usize],
    ) -> Result<Self> {
        check_pair(y_true, y_pred)?;
        if labels.is_empty() {
            bail!("`labels` is empty: list at least one class index");
        }
        for &l in y_true.iter().chain(y_pred).chain(labels) {
            if l >= class_names.len() {
                bail!(
                    "class index {l} has no name: {} class names were given; pass one name per class index",
                    class_names.len()
                );
            }
        }
        let cm = confusion_matrix(y_true, y_pred, labels)?;
        let k = labels.len();
        // Per-label counts over *all* cells (not only those whose both labels are listed).
        let max = class_names.len();
        let mut true_sum_all = vec![0u64; max];
        let mut pred_sum_all = vec![0u64; max];
        let mut tp_all = vec![0u64; max];
        for (&t, &p) in y_true.iter().zip(y_pred) {
            true_sum_all[t] += 1;
            pred_sum_all[p] += 1;
            if t == p {
                tp_all[t] += 1;
            }
        }
        let mut per_class = Vec::with_capacity(k);
        for &l in labels {
            let tp = tp_all[l] as f64;
            let ts = true_sum_all[l] as f64;
            let ps = pred_sum_all[l] as f64;
            per_class.push(ClassMetrics {
                label: l,
                name: class_names[l].clone(),
                precision: prf_divide(tp, ps),
                recall: prf_divide(tp, ts),
                // sklearn ≥ 1.3: F = (1+β²)·tp / (β²·true_sum + pred_sum)
                f1: prf_divide(2.0 * tp, ts + ps),
                support: true_sum_all[l] as usize,
                predicted: pred_sum_all[l] as usize,
            });
        }
        let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k as f64;
        let total_support: f64 = per_class.iter().map(|c| c.support as f64).sum();
        let weighted = |f: fn(&ClassMetrics) -> f64| {
            if total_support == 0.0 {
                0.0
            } else {
                per_class
                    .iter()
                    .map(|c| f(c) * c.support as f64)
                    .sum::<f64>()
                    / total_support
            }
        };
        let confusion_normalized = cm
            .iter()
            .map(|row| {
                let s: u64 = row.iter().sum();
                row.iter()
                    .map(|&v| if s == 0 { 0.0 } else { v as f64 / s as f64 })
                    .collect()
            })
            .collect();
        Ok(Self {
            n_samples: y_true.len(),
            labels: labels.to_vec(),
            accuracy: accuracy(y_true, y_pred)?,
            macro_precision: mean(|c| c.precision),
            macro_recall: mean(|c| c.recall),
            macro_f1: mean(|c| c.f1),
            weighted_precision: weighted(|c| c.precision),
            weighted_recall: weighted(|c| c.recall),
            weighted_f1: weighted(|c| c.f1),
            cohen_kappa: cohen_kappa_from_confusion(&cm),
            per_class,
            confusion: cm,
            confusion_normalized,
        })
    }

    /// A readable Markdown summary: per-class table, averages, and the confusion matrix.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| class | precision | recall | f1 | support | predicted |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for c in &self.per_class {
            let _ = writeln!(
                s,
                "| {} | {:.4} | {:.4} | {:.4} | {} | {} |",
                md_escape(&c.name),
                c.precision,
                c.recall,
                c.f1,
                c.support,
                c.predicted
            );
        }
        let support: usize = self.per_class.iter().map(|c| c.support).sum();
        let _ = writeln!(
            s,
            "| **macro avg** | {:.4} | {:.4} | {:.4} | {} | |",
            self.macro_precision, self.macro_recall, self.macro_f1, support
        );
        let _ = writeln!(
            s,
            "| **weighted avg** | {:.4} | {:.4} | {:.4} | {} | |",
            self.weighted_precision, self.weighted_recall, self.weighted_f1, support
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "accuracy {:.4} · macro F1 {:.4} · weighted F1 {:.4} · Cohen's kappa {:.4} · {} cells",
            self.accuracy, self.macro_f1, self.weighted_f1, self.cohen_kappa, self.n_samples
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "Confusion matrix (rows = true, columns = predicted):");
        let _ = writeln!(s);
        let _ = write!(s, "| true \\ pred |");
        for c in &self.per_class {
            let _ = write!(s, " {} |", md_escape(&c.name));
        }
        let _ = writeln!(s);
        let _ = write!(s, "| --- |");
        for _ in &self.per_class {
            let _ = write!(s, " ---: |");
        }
        let _ = writeln!(s);
        for (c, row) in self.per_class.iter().zip(&self.confusion) {
            let _ = write!(s, "| {} |", md_escape(&c.name));
            for v in row {
                let _ = write!(s, " {v} |");
            }
            let _ = writeln!(s);
        }
        s
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn perfect_and_hand_computed() {
        let r = ClassificationReport::new(&[0, 1, 2], &[0, 1, 2], &names(3)).unwrap();
        assert_eq!(r.accuracy, 1.0);
        assert_eq!(r.macro_f1, 1.0);
        assert_eq!(r.cohen_kappa, 1.0);
        // y_true = [0,0,1,1], y_pred = [0,1,1,1]: class0 P=1 R=.5, class1 P=2/3 R=1
        let r = ClassificationReport::new(&[0, 0, 1, 1], &[0, 1, 1, 1], &names(2)).unwrap();
        assert!((r.per_class[0].f1 - 2.0 / 3.0).abs() < 1e-15);
        assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-15);
        assert!((r.per_class[1].f1 - 0.8).abs() < 1e-15);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![0, 2]]);
        // kappa: po = .75, pe = (.5*.25 + .5*.75) = .5 → .5
        assert!((r.cohen_kappa - 0.5).abs() < 1e-15);
        let md = r.to_markdown();
        assert!(
            md.contains("| c1 | 0.6667 | 1.0000 | 0.8000 | 2 | 3 |"),
            "{md}"
        );
    }

    #[test]
    fn errors() {
        assert!(ClassificationReport::new(&[0, 1], &[0], &names(2)).is_err());
        assert!(ClassificationReport::new(&[], &[], &names(2)).is_err());
        assert!(ClassificationReport::new(&[0, 5], &[0, 1], &names(2)).is_err());
    }
}
