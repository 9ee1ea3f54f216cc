//! Cells: GenePT-w (`celltext cells embed`) over a scipy CSR matrix read in place, and cell
//! sentences (`celltext cells sentences`).

use std::path::{Path, PathBuf};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use celltext::cells::matrix::{CsrView, ExpressionMatrix};
use celltext::cells::pipeline::{sentences_of, AggregationChoice, SentenceArgs};
use celltext::cells::read::ReadOptions;
use celltext::cells::source::{check_unique_genes, check_values_view};
use celltext::cells::weighted::{embed_cells_view, TopN, Weights};
use celltext::choice::parse_choice as parse_value;
use celltext::genes::Species;

use crate::encoder::PyEncoder;
use crate::genes::PyGeneStore;
use crate::{guard, index_array, Csr};

/// The checks the h5ad reader applies to every matrix it reads, with its messages: the CSR
/// structure, unique non-empty gene names and usable values.
pub(crate) fn check_matrix(
    x: &CsrView,
    cell_ids: &[String],
    genes: &[String],
    field: &str,
) -> anyhow::Result<()> {
    let file = Path::new("AnnData");
    if x.n_rows == 0 || x.n_cols == 0 {
        anyhow::bail!(
            "AnnData: {field}: empty matrix ({} cells × {} genes); nothing to embed",
            x.n_rows,
            x.n_cols
        );
    }
    anyhow::ensure!(
        genes.len() == x.n_cols && cell_ids.len() == x.n_rows,
        "AnnData: {field} is {} × {} but there are {} obs names and {} var names",
        x.n_rows,
        x.n_cols,
        cell_ids.len(),
        genes.len()
    );
    celltext::cells::normalize::validate_csr_view(x, &format!("AnnData: {field}"))?;
    if let Some(i) = genes.iter().position(|g| g.is_empty()) {
        anyhow::bail!("AnnData: var_names: gene {i} has an empty name");
    }
    check_unique_genes(genes, file, "var_names")?;
    check_values_view(x, 0, file, field, cell_ids, genes)
}

/// GenePT-w cell vectors (`celltext cells embed`): (vectors [n_cells, dim], coverage,
/// n_genes used, empty flags, gene-coverage JSON).
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, n_rows, cell_ids, genes, store, field="X", species="human", orthologs=false, aggregation="weighted", weights="expr", top_n="100"))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn genept_w<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    data: PyReadonlyArray1<'py, f32>,
    n_rows: usize,
    cell_ids: Vec<String>,
    genes: Vec<String>,
    store: PyRef<'py, PyGeneStore>,
    field: &str,
    species: &str,
    orthologs: bool,
    aggregation: &str,
    weights: &str,
    top_n: &str,
) -> PyResult<(
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<bool>>,
    String,
)> {
    let (p, i) = (
        index_array(&indptr, "indptr")?,
        index_array(&indices, "indices")?,
    );
    let csr = Csr::new(&p, &i, &data, n_rows, genes.len())?;
    let store = &store.inner;
    let view = csr.view();
    let (emb, cov) = py.allow_threads(|| {
        guard(|| {
            let species = parse_value::<Species>("species", species, true)?;
            let weights = parse_value::<Weights>("weights", weights, true)?;
            let top_n: TopN = top_n.parse()?;
            let agg = parse_value::<AggregationChoice>("aggregation", aggregation, true)?
                .aggregation(weights, top_n);
            check_matrix(&view, &cell_ids, &genes, field)?;
            let (rows, coverage) = celltext::genes::pipeline::coverage(
                &store.symbols,
                &genes,
                species,
                orthologs,
                Some((view.indices, view.data)),
            )?;
            let emb = embed_cells_view(&view, &rows, store, &agg)?;
            Ok((emb, serde_json::to_string(&coverage)?))
        })
    })?;
    let n = emb.n_cells();
    let n_used: Vec<u64> = emb.n_used.iter().map(|&u| u as u64).collect();
    Ok((
        emb.data.into_pyarray(py).reshape([n, emb.dim])?,
        emb.coverage.into_pyarray(py),
        n_used.into_pyarray(py),
        emb.empty.into_pyarray(py),
        cov,
    ))
}

/// Cell sentences (`celltext cells sentences`): (texts, token budget JSON or None). The
/// matrix is copied (sentences are built from an owned matrix). With an encoder, ablations that
/// need the context length can run and the budget is reported.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, n_rows, cell_ids, genes, field="X", max_genes=None, ties_stable=false, seed=0, template=None, ablation="none", encoder=None))]
#[allow(clippy::too_many_arguments)]
fn cell_sentences<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    data: PyReadonlyArray1<'py, f32>,
    n_rows: usize,
    cell_ids: Vec<String>,
    genes: Vec<String>,
    field: &str,
    max_genes: Option<usize>,
    ties_stable: bool,
    seed: u64,
    template: Option<String>,
    ablation: &str,
    encoder: Option<PyRef<'py, PyEncoder>>,
) -> PyResult<(Vec<String>, Option<String>)> {
    let (p, i) = (
        index_array(&indptr, "indptr")?,
        index_array(&indices, "indices")?,
    );
    let csr = Csr::new(&p, &i, &data, n_rows, genes.len())?;
    let view = csr.view();
    let tok = encoder.as_ref().map(|e| &e.inner.tokenizer);
    py.allow_threads(|| {
        guard(|| {
            check_matrix(&view, &cell_ids, &genes, field)?;
            let args = SentenceArgs {
                input: PathBuf::from("AnnData"),
                read: ReadOptions::default(),
                max_genes,
                ties_stable,
                seed,
                template: template
                    .unwrap_or_else(|| celltext::cells::sentences::GENEPT_S_PREFIX.to_string()),
                ablation: ablation.parse()?,
            };
            let m = ExpressionMatrix {
                x: view.to_matrix(),
                cell_ids,
                genes,
                obs: vec![],
            };
            let (sentences, budget) = sentences_of(&m, &args, tok)?;
            let budget = match budget {
                Some(b) => Some(serde_json::to_string(&serde_json::json!({
                    "max_len": b.max_len,
                    "in_context": b.in_context,
                    "n_genes": b.n_genes,
                    "summary": b.summary,
                    "n_truncated": b.n_truncated,
                }))?),
                None => None,
            };
            Ok((sentences.into_iter().map(|s| s.text).collect(), budget))
        })
    })
}

/// Genes among some cell's `n` most expressed (ties by column order): the genes a top-N
/// GenePT-w average can use (what `celltext demo` embeds). Sorted.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn top_n_genes<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    data: PyReadonlyArray1<'py, f32>,
    n_rows: usize,
    genes: Vec<String>,
    n: usize,
) -> PyResult<Vec<String>> {
    let (p, i) = (
        index_array(&indptr, "indptr")?,
        index_array(&indices, "indices")?,
    );
    let csr = Csr::new(&p, &i, &data, n_rows, genes.len())?;
    let view = csr.view();
    py.allow_threads(|| {
        guard(|| {
            celltext::cells::normalize::validate_csr_view(&view, "AnnData")?;
            let m = ExpressionMatrix {
                x: view.to_matrix(),
                cell_ids: vec![],
                genes,
                obs: vec![],
            };
            let mut used: Vec<String> = celltext::cells::pipeline::top_n_gene_set(&m, n)
                .into_iter()
                .collect();
            used.sort();
            Ok(used)
        })
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(genept_w, m)?)?;
    m.add_function(wrap_pyfunction!(cell_sentences, m)?)?;
    m.add_function(wrap_pyfunction!(top_n_genes, m)?)?;
    Ok(())
}
