//! Gene stores: `celltext genes embed` (resumable), loading a store, the bundled summaries and
//! the gene resolver's coverage report.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use celltext::choice::parse_choice as parse_value;
use celltext::encoder::{self, BackendChoice, EncoderOptions};
use celltext::genes::pipeline::{run_genes_embed_cancellable, GenesEmbedArgs, MissingPolicy};
use celltext::genes::{GeneEmbeddings, Species, SummaryCorpus};

use crate::{check_and_report, guard, index_array, Csr};

/// A gene-embedding store in memory (`STORE.safetensors` + `STORE.genes.tsv` + manifest).
#[pyclass(module = "celltext._celltext", name = "GeneStore", frozen)]
pub struct PyGeneStore {
    pub(crate) inner: GeneEmbeddings,
    manifest: Option<String>,
}

#[pymethods]
impl PyGeneStore {
    /// Load `STORE` (or any of its three file names).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.allow_threads(|| {
            guard(|| {
                let inner = GeneEmbeddings::load(&path)?;
                let manifest = GeneEmbeddings::manifest(&path)?
                    .map(|m| serde_json::to_string(&m))
                    .transpose()?;
                Ok(Self { inner, manifest })
            })
        })
    }

    /// A store from gene symbols and a float32 [n_genes, dim] array (copied).
    #[staticmethod]
    fn from_arrays(genes: Vec<String>, vectors: PyReadonlyArray2<f32>) -> PyResult<Self> {
        let shape = vectors.shape();
        let (n, dim) = (shape[0], shape[1]);
        guard(|| {
            anyhow::ensure!(
                n == genes.len(),
                "{} gene symbols but vectors has {n} rows; pass one row per gene",
                genes.len()
            );
            anyhow::ensure!(dim > 0, "vectors has 0 columns");
            let mut seen = std::collections::HashSet::new();
            for (i, g) in genes.iter().enumerate() {
                anyhow::ensure!(
                    !g.is_empty() && seen.insert(g),
                    "gene {i}: empty or duplicate gene `{g}`"
                );
            }
            Ok(())
        })?;
        let data = vectors.as_array().iter().copied().collect();
        Ok(Self {
            inner: GeneEmbeddings {
                symbols: genes,
                dim,
                data,
            },
            manifest: None,
        })
    }

    /// Gene symbols, row order.
    #[getter]
    fn genes(&self) -> Vec<String> {
        self.inner.symbols.clone()
    }

    /// The vectors, float32 [n_genes, dim] (a copy).
    #[getter]
    fn vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        self.inner
            .data
            .clone()
            .into_pyarray(py)
            .reshape([self.inner.len(), self.inner.dim])
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim
    }

    /// The store's manifest as JSON, or None (a store built in memory has none).
    #[getter]
    fn manifest_json(&self) -> Option<String> {
        self.manifest.clone()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

impl PyGeneStore {
    /// The store's manifest, parsed (None: a store built in memory).
    pub(crate) fn manifest_value(&self) -> PyResult<Option<serde_json::Value>> {
        self.manifest
            .as_deref()
            .map(|m| guard(|| Ok(serde_json::from_str(m)?)))
            .transpose()
    }
}

/// `celltext genes embed`: embed summaries into the store at `out` (resumable: run it again
/// after an interruption and finished chunks are reused). Ctrl-C stops it between batches with
/// `KeyboardInterrupt`, leaving the finished chunks to resume from. `progress`: a callable given
/// (genes done, total) between batches (no stderr bar). Returns the manifest as JSON.
#[pyfunction]
#[pyo3(signature = (model, out, species="human", summaries=None, dataset_genes=None, missing="skip", batch_tokens=8192, chunk_texts=512, device="cpu", dtype="f32", backend="auto", progress=None))]
#[allow(clippy::too_many_arguments)]
fn genes_embed(
    py: Python<'_>,
    model: String,
    out: PathBuf,
    species: &str,
    summaries: Option<PathBuf>,
    dataset_genes: Option<Vec<String>>,
    missing: &str,
    batch_tokens: usize,
    chunk_texts: usize,
    device: &str,
    dtype: &str,
    backend: &str,
    progress: Option<PyObject>,
) -> PyResult<String> {
    let (manifest, warnings) = py.allow_threads(|| {
        guard(|| {
            let args = GenesEmbedArgs {
                model,
                options: {
                    let mut o = EncoderOptions {
                        devices: encoder::parse_devices(device)?,
                        backend: parse_value::<BackendChoice>("backend", backend, true)?,
                        ..EncoderOptions::default()
                    };
                    o.set_dtype(dtype)?;
                    o
                },
                species: parse_value::<Species>("species", species, true)?,
                summaries,
                out,
                dataset_genes,
                missing: parse_value::<MissingPolicy>("missing", missing, true)?,
                batch_tokens,
                quiet: progress.is_none(),
                stop_after_chunks: None,
                chunk_texts,
            };
            let check = check_and_report(progress.as_ref());
            let (manifest, warnings) = celltext::progress::observe(|| {
                let m = run_genes_embed_cancellable(&args, Some(&check));
                (m, celltext::progress::take_warnings())
            });
            Ok((serde_json::to_string(&manifest?)?, warnings))
        })
    })?;
    // the library's notes (a guessed casing, …) go to the package's logger, not stderr
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("celltext",))?;
    for w in warnings {
        logger.call_method1("warning", (w,))?;
    }
    Ok(manifest)
}

/// The bundled NCBI RefSeq summaries of a species: (symbols, texts, sources).
#[pyfunction]
fn bundled_summaries(species: &str) -> PyResult<(Vec<String>, Vec<String>, Vec<String>)> {
    guard(|| {
        let c = SummaryCorpus::bundled(parse_value::<Species>("species", species, true)?)?;
        Ok((
            c.genes.iter().map(|g| g.symbol.clone()).collect(),
            c.genes.iter().map(|g| g.text.clone()).collect(),
            c.genes.iter().map(|g| g.source.clone()).collect(),
        ))
    })
}

/// Map dataset gene names onto a store (`celltext genes coverage`): (rows with -1 for
/// unmatched, coverage JSON). With a matrix, the coverage also gives the expression fraction.
#[pyfunction]
#[pyo3(signature = (store, genes, species="human", orthologs=false, indptr=None, indices=None, data=None, n_rows=0))]
#[allow(clippy::too_many_arguments)]
fn map_genes(
    store: &PyGeneStore,
    genes: Vec<String>,
    species: &str,
    orthologs: bool,
    indptr: Option<Bound<'_, PyAny>>,
    indices: Option<Bound<'_, PyAny>>,
    data: Option<numpy::PyReadonlyArray1<f32>>,
    n_rows: usize,
) -> PyResult<(Vec<i64>, String)> {
    let species = guard(|| parse_value::<Species>("species", species, true))?;
    let arrays = match (&indptr, &indices, &data) {
        (Some(p), Some(i), Some(d)) => {
            Some((index_array(p, "indptr")?, index_array(i, "indices")?, d))
        }
        _ => None,
    };
    let csr = match &arrays {
        Some((p, i, d)) => Some(Csr::new(p, i, d, n_rows, genes.len())?),
        None => None,
    };
    let view = csr.as_ref().map(|c| c.view());
    guard(|| {
        let (rows, cov) = celltext::genes::pipeline::coverage(
            &store.inner.symbols,
            &genes,
            species,
            orthologs,
            view.as_ref().map(|v| (v.indices, v.data)),
        )?;
        let rows = rows
            .iter()
            .map(|r| r.map(|r| r as i64).unwrap_or(-1))
            .collect();
        Ok((rows, serde_json::to_string(&cov)?))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGeneStore>()?;
    m.add_function(wrap_pyfunction!(genes_embed, m)?)?;
    m.add_function(wrap_pyfunction!(bundled_summaries, m)?)?;
    m.add_function(wrap_pyfunction!(map_genes, m)?)?;
    Ok(())
}
