//! The `celltext classify` report: the types behind report.json (what `--json` prints), and
//! [`render_markdown`] for report.md and the terminal.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::arguments::{ClassifyArgs, Method};
use crate::classify::knn::Vote;
use crate::classify::mlp::TrainingHistory;
use crate::eval::clustering::EmbeddingQuality;
use crate::eval::integration::IntegrationScores;
use crate::eval::metrics::ClassificationReport;

/// accuracy / weighted F1 / macro F1 / Cohen's kappa of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub accuracy: f64,
    pub weighted_f1: f64,
    pub macro_f1: f64,
    pub cohen_kappa: f64,
}

impl Scores {
    pub(super) fn of(r: &ClassificationReport) -> Self {
        Self {
            accuracy: r.accuracy,
            weighted_f1: r.weighted_f1,
            macro_f1: r.macro_f1,
            cohen_kappa: r.cohen_kappa,
        }
    }
    fn values(&self) -> [f64; 4] {
        [
            self.accuracy,
            self.weighted_f1,
            self.macro_f1,
            self.cohen_kappa,
        ]
    }
    fn from_values(v: [f64; 4]) -> Self {
        Self {
            accuracy: v[0],
            weighted_f1: v[1],
            macro_f1: v[2],
            cohen_kappa: v[3],
        }
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
                (all.iter()
                    .map(|s| (s.values()[m] - mean[m]).powi(2))
                    .sum::<f64>()
                    / (n - 1.0))
                    .sqrt()
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
    /// With `--batch-key`: batch ASW, iLISI, cLISI (or why they could not be computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<Result<IntegrationScores, String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureInfo {
    pub name: String,
    /// `obsm`, `file`, `pca` (the standard count baseline) or `counts` (log1p-all).
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
    render_header(&mut s, r);
    let sp = &m.split;
    let where_ = if sp.kind == "kfold" {
        "mean ± sd over folds"
    } else {
        "test set"
    };
    render_results(&mut s, r, where_);
    render_k_sweep(&mut s, r, where_);
    render_per_class(&mut s, r);
    render_quality(&mut s, r);
    render_training(&mut s, r);
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

/// Title, input, cells, split, k and MLP settings.
fn render_header(s: &mut String, r: &ClassifyReport) {
    let m = &r.manifest;
    let method = match r.method {
        Method::Knn => "cosine KNN",
        Method::Mlp => "MLP",
    };
    let _ = writeln!(
        s,
        "# celltext classify: {method} on {} (label `{}`)",
        md(&r.summary.predictor),
        md(&r.label_column)
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "- input: `{}`{}",
        md(&m.input),
        m.input_sha256
            .as_ref()
            .map(|h| format!(" (sha256 {}…)", &h[..h.len().min(12)]))
            .unwrap_or_default()
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
}

/// Scores of every predictor (and on the validation cells).
fn render_results(s: &mut String, r: &ClassifyReport, where_: &str) {
    let _ = writeln!(s, "## Results ({where_})");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| predictor | accuracy | weighted F1 | macro F1 | kappa |"
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    for a in &r.results {
        let name = if a.primary && r.results.len() > 1 {
            format!("**{}**", md(&a.name))
        } else {
            md(&a.name)
        };
        let _ = writeln!(s, "| {name} | {} |", scores_row(&a.scores, a.sd.as_ref()));
    }
    let _ = writeln!(s);
    if r.results.iter().any(|a| a.val.is_some()) {
        let _ = writeln!(s, "Validation cells (`val` in the split column):");
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| predictor | accuracy | weighted F1 | macro F1 | kappa |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
        for a in &r.results {
            if let Some(v) = &a.val {
                let _ = writeln!(
                    s,
                    "| {} | {} |",
                    md(&a.name),
                    scores_row(&Scores::of(v), None)
                );
            }
        }
        let _ = writeln!(s);
    }
}

/// The k sweep (KNN, or the MLP's KNN baseline).
fn render_k_sweep(s: &mut String, r: &ClassifyReport, where_: &str) {
    if let Some(ks) = &r.k_sweep {
        let title = if r.method == Method::Mlp {
            "KNN baseline k sweep"
        } else {
            "k sweep"
        };
        let _ = writeln!(
            s,
            "## {title} ({}, vote {}, {where_})",
            md(&ks.features),
            vote_name(ks.vote)
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "| k | accuracy | weighted F1 | macro F1 | kappa |");
        let _ = writeln!(s, "| ---: | ---: | ---: | ---: | ---: |");
        for row in &ks.rows {
            let _ = writeln!(
                s,
                "| {} | {} |",
                row.k,
                scores_row(&row.scores, row.sd.as_ref())
            );
        }
        if !ks.skipped.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "Skipped k = {}: larger than the training set ({} cells).",
                ks.skipped
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                ks.n_train
            );
        }
        let _ = writeln!(s);
    }
}

/// Per-class scores of the primary predictor.
fn render_per_class(s: &mut String, r: &ClassifyReport) {
    let sp = &r.manifest.split;
    if let Some(p) = r.results.iter().find(|a| a.primary) {
        let pooled = if sp.kind == "kfold" {
            ", pooled out-of-fold predictions"
        } else {
            ", test set"
        };
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
}

/// Embedding quality, and integration scores with a batch key.
fn render_quality(s: &mut String, r: &ClassifyReport) {
    if !r.quality.is_empty() {
        let _ = writeln!(s, "## Embedding quality (labelled cells vs. labels)");
        let _ = writeln!(s);
        let _ = writeln!(s, "| embedding | cells | dim | silhouette (cosine) | Calinski-Harabasz | Davies-Bouldin | k-means ARI | k-means NMI |");
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
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
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | not computed: {} | | | | |",
                        md(&q.embedding),
                        q.n_cells,
                        q.dim,
                        md(q.error.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        if r.quality.iter().any(|q| q.integration.is_some()) {
            let _ = writeln!(s);
            let _ = writeln!(s, "| embedding | batches | batch ASW | iLISI | cLISI |");
            let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
            for q in &r.quality {
                match &q.integration {
                    Some(Ok(i)) => {
                        let _ = writeln!(
                            s,
                            "| {} | {} | {} | {} | {} |",
                            md(&q.embedding),
                            i.n_batches,
                            fmt_score(i.batch_asw),
                            fmt_score(i.ilisi),
                            fmt_score(i.clisi)
                        );
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(
                            s,
                            "| {} | not computed: {} | | | |",
                            md(&q.embedding),
                            md(e)
                        );
                    }
                    None => {}
                }
            }
        }
        let qn: Vec<String> = r
            .quality
            .iter()
            .filter_map(|q| q.note.as_ref().map(|n| format!("{}: {n}", q.embedding)))
            .collect();
        if !qn.is_empty() {
            let _ = writeln!(s);
            for n in qn {
                let _ = writeln!(s, "- {}", md(&n));
            }
        }
        let _ = writeln!(s);
    }
}

/// The MLP's training histories.
fn render_training(s: &mut String, r: &ClassifyReport) {
    let trained: Vec<&ArmResult> = r
        .results
        .iter()
        .filter(|a| !a.training.is_empty())
        .collect();
    if !trained.is_empty() {
        let _ = writeln!(s, "## MLP training");
        let _ = writeln!(s);
        let _ = writeln!(s, "| predictor | split | epochs run | best epoch | stopped early | best val loss | gates |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | :---: | ---: | --- |");
        for a in trained {
            for (i, h) in a.training.iter().enumerate() {
                let best = h
                    .val_loss
                    .get(h.best_epoch)
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into());
                let gates = h
                    .gates
                    .iter()
                    .map(|g| format!("{} {:.3}", g.source, g.gate))
                    .collect::<Vec<_>>()
                    .join(", ");
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
