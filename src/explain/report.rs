//! What `celltext explain` gives: the report (per class, per cell, the manifest), its Markdown
//! and TSV renderings, and the report folder's files.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::arguments::{ExplainArgs, ExplainOn};
use crate::encoder::ModelIdentity;
use crate::explain::GeneScore;
use crate::io::{atomic_write, sha256_file, write_json};

/// One explained cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellRecord {
    pub cell_id: String,
    pub class: String,
    pub predicted: String,
    /// The explained logit (the true class's) at the cell and at the baseline.
    pub f_input: f32,
    pub f_baseline: f32,
    pub attribution_sum: f32,
    /// |Σ attributions − (f(x) − f(b))| / |f(x) − f(b)|: the completeness error of the Riemann sum.
    pub relative_gap: f32,
    /// Genes with an attribution (sentence genes that fit in the context, or top-N genes).
    pub n_genes: usize,
    /// Attribution of the non-gene tokens (prompt prefix; [CLS]/[SEP] are kept in the baseline).
    pub prefix_attribution: f32,
}

/// A class marker and where it ranks among all attributed genes of the class.
#[derive(Debug, Clone, Serialize)]
pub struct MarkerRank {
    pub gene: String,
    /// 1-based rank by mean attribution; None when it was in no explained cell's input.
    pub rank: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassExplanation {
    pub class: String,
    pub n_test_cells: usize,
    pub n_explained: usize,
    pub n_correct: usize,
    pub top_genes: Vec<GeneScore>,
    /// Markers of this class among `top_genes` (None without --markers or without an entry).
    pub marker_hits: Option<usize>,
    pub markers: Vec<MarkerRank>,
    /// Genes ranked in all (with an attribution in at least one explained cell).
    pub n_genes_ranked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainManifest {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub model: Option<ModelIdentity>,
    pub store: Option<String>,
    pub store_manifest: Option<serde_json::Value>,
    pub parameters: ExplainArgs,
    pub n_train: usize,
    pub n_test: usize,
    pub mlp_best_epoch: usize,
    pub files: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    pub manifest: ExplainManifest,
    pub on: ExplainOn,
    pub source: String,
    pub method: String,
    /// Interpolation steps used (`--steps` or the path's default).
    pub steps: usize,
    pub test_accuracy: f64,
    pub classes: Vec<ClassExplanation>,
    pub cells: Vec<CellRecord>,
    pub max_relative_gap: f32,
    pub median_relative_gap: f32,
    pub seconds: f64,
    pub notes: Vec<String>,
}

pub(super) fn write_outputs(dir: &Path, report: &mut ExplainReport) -> Result<()> {
    let tsv = explain_tsv(report);
    atomic_write(&dir.join("explain.tsv"), tsv.as_bytes())?;
    atomic_write(&dir.join("report.md"), render_markdown(report).as_bytes())?;
    write_json(&dir.join("report.json"), report)?;
    let mut files = Vec::new();
    for f in ["explain.tsv", "report.md", "report.json"] {
        files.push((f.to_string(), sha256_file(&dir.join(f))?));
    }
    report.manifest.files = files;
    write_json(&dir.join("manifest.json"), &report.manifest)
}

/// One line per (class, rank): class, rank, gene, mean attribution, cells, marker.
pub fn explain_tsv(r: &ExplainReport) -> String {
    let mut s = String::from("class\trank\tgene\tmean_attribution\tn_cells\tmarker\n");
    for c in &r.classes {
        for (k, g) in c.top_genes.iter().enumerate() {
            s.push_str(&format!(
                "{}\t{}\t{}\t{:.6e}\t{}\t{}\n",
                c.class,
                k + 1,
                g.gene,
                g.mean_attribution,
                g.n_cells,
                g.marker as u8
            ));
        }
    }
    s
}

/// The report as Markdown (also what the command prints).
pub fn render_markdown(r: &ExplainReport) -> String {
    let mut s = format!(
        "## celltext explain — {} ({}), MLP test accuracy {:.3}\n\n{}.\n\n",
        r.manifest.input, r.source, r.test_accuracy, r.method
    );
    s.push_str("| class | cells (correct) | top genes by mean attribution | marker hits |\n|---|---|---|---|\n");
    for c in &r.classes {
        let genes: Vec<String> = c
            .top_genes
            .iter()
            .map(|g| {
                if g.marker {
                    format!("**{}**", g.gene)
                } else {
                    g.gene.clone()
                }
            })
            .collect();
        let hits = match c.marker_hits {
            Some(h) => {
                let ranks: Vec<String> = c
                    .markers
                    .iter()
                    .map(|m| match m.rank {
                        Some(k) => format!("{} #{k}", m.gene),
                        None => format!("{} absent", m.gene),
                    })
                    .collect();
                format!("{h}/{} ({})", c.top_genes.len(), ranks.join(", "))
            }
            None => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} |\n",
            c.class,
            c.n_explained,
            c.n_correct,
            genes.join(", "),
            hits
        ));
    }
    s.push_str(&format!(
        "\nCompleteness (|Σ attributions − (f(x) − f(baseline))| / |f(x) − f(baseline)|) over {} cells: median {:.2e}, max {:.2e}. Markers in bold; `#k` is a marker's rank among all attributed genes of its class.\n",
        r.cells.len(),
        r.median_relative_gap,
        r.max_relative_gap
    ));
    for n in &r.notes {
        s.push_str(&format!("\n- {n}"));
    }
    if !r.notes.is_empty() {
        s.push('\n');
    }
    s
}
