//! sciLaMA (`celltext scilama train`) on an AnnData's matrix: the library's `train_in_memory`,
//! the CLI's code path without its files.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use celltext::cells::matrix::{ExpressionMatrix, ObsColumn};
use celltext::choice::parse_choice as parse_value;
use celltext::genes::Species;
use celltext::scilama::model::Fusion;
use celltext::scilama::pipeline::{train_in_memory, TrainSettings, TrainStores, TrainedModel};
use celltext::scilama::{GeneInput, Mode, ScilamaConfig, ValLatent};

use crate::genes::PyGeneStore;
use crate::{check_and_report, guard, index_array, Csr};

/// The unwind payload that stops training between epochs.
struct Stopped;

/// An obs column from Python: a float64 array (numbers, NaN for missing) or a list of str.
fn obs_column(v: &Bound<'_, PyAny>, key: &str) -> PyResult<ObsColumn> {
    if let Ok(a) = v.extract::<PyReadonlyArray1<f64>>() {
        return Ok(ObsColumn::Number(a.as_slice()?.to_vec()));
    }
    v.extract::<Vec<String>>()
        .map(ObsColumn::Text)
        .map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "obs column `{key}` must be a float64 array or a list of str"
            ))
        })
}

/// The training settings: `config` (a JSON object of `ScilamaConfig` fields, `mode`, `fusion`
/// and `val_latent` by their spellings) over the CLI's defaults.
fn config_of(config: &str) -> anyhow::Result<ScilamaConfig> {
    let mut given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(config)?;
    // a choice given as anything but a string is refused, not silently left at its default
    let mut spelling = |key: &str| -> anyhow::Result<Option<String>> {
        match given.remove(key) {
            None => Ok(None),
            Some(serde_json::Value::String(v)) => Ok(Some(v)),
            Some(v) => anyhow::bail!("{key}= takes a string, got {v}"),
        }
    };
    let mode = spelling("mode")?;
    let fusion = spelling("fusion")?;
    let val_latent = spelling("val_latent")?;
    let mut cfg = serde_json::to_value(ScilamaConfig::default())?;
    for (k, v) in given {
        anyhow::ensure!(cfg.get(&k).is_some(), "unknown sciLaMA setting `{k}`");
        cfg[&k] = v;
    }
    let mut cfg: ScilamaConfig = serde_json::from_value(cfg)?;
    if let Some(m) = mode {
        cfg.mode = parse_value::<Mode>("mode", &m, true)?;
    }
    if let Some(f) = fusion {
        cfg.fusion = parse_value::<Fusion>("fusion", &f, true)?;
    }
    if let Some(v) = val_latent {
        cfg.val_latent = parse_value::<ValLatent>("val_latent", &v, true)?;
    }
    Ok(cfg)
}

/// What the run made of its data and training, as JSON for `uns`.
fn summary(
    model: &TrainedModel,
    settings: &TrainSettings,
    warnings: &[String],
) -> anyhow::Result<String> {
    let (cfg, hvg) = (&settings.cfg, settings.hvg);
    let d = &model.data;
    let h = &model.trained.history;
    Ok(serde_json::to_string(&serde_json::json!({
        "tool": celltext::io::TOOL_VERSION,
        "command": "celltext.tl.scilama",
        "config": cfg,
        "n_cells": d.prep.n_cells,
        "n_genes": d.prep.n_genes(),
        "species": settings.species,
        "orthologs": settings.orthologs,
        "hvg": hvg,
        "hvg_within_batches": d.batched && hvg > 0,
        "gene_coverage": d.coverage,
        "gene_input_dim": d.inputs[0].1,
        "store_manifest": d.store_manifest,
        "gene_stores": d.store_uses(),
        "genes_in_every_store": d.shared.as_ref().map(|(s, _)| s.n_shared),
        "fusion": model.trained.net.arch.fusion,
        "covariates": d.covariates,
        "n_fit": model.trained.fit_idx.len(),
        "n_val": model.trained.val_idx.len(),
        "epochs_run": model.epochs_run(cfg),
        "best_epochs": model.best_epochs(),
        "final_val_loss": model.final_val_loss(),
        "warnings": warnings,
        "losses": {
            "step": h.iter().map(|l| l.stage.name()).collect::<Vec<_>>(),
            "epoch": h.iter().map(|l| l.epoch).collect::<Vec<_>>(),
            "kl_weight": h.iter().map(|l| l.kl_weight).collect::<Vec<_>>(),
            "train_loss": h.iter().map(|l| l.train_loss).collect::<Vec<_>>(),
            "train_recon": h.iter().map(|l| l.train_recon).collect::<Vec<_>>(),
            "train_kl": h.iter().map(|l| l.train_kl).collect::<Vec<_>>(),
            "val_loss": h.iter().map(|l| l.val_loss).collect::<Vec<_>>(),
        },
    }))?)
}

/// [`train_in_memory`] inside `progress::observe`: its bar's (epochs done, total) go to
/// `progress` after every epoch, where Ctrl-C (or an exception in `progress`) stops the fit at
/// once. Returns the model and the warnings the library kept.
fn train_observed(
    m: ExpressionMatrix,
    stores: &TrainStores,
    settings: &TrainSettings,
    dev: &candle_core::Device,
    progress: Option<&PyObject>,
) -> anyhow::Result<(TrainedModel, Vec<String>)> {
    let check = check_and_report(progress);
    let total = (settings.cfg.mode.stages().len() * settings.cfg.epochs) as u64;
    let mut stop: Option<anyhow::Error> = None;
    let (model, warnings) = celltext::progress::observe(|| {
        let pb = celltext::progress::bar(total, "epochs", progress.is_none());
        let mut on_epoch = |_: &celltext::scilama::EpochLog| {
            pb.set_position((pb.position() + 1).min(total));
            if let Err(e) = check() {
                // the fit's epoch callback cannot return an error: unwind out of it, caught just
                // below (resume_unwind prints no panic message)
                stop = Some(e);
                std::panic::resume_unwind(Box::new(Stopped));
            }
        };
        let run = catch_unwind(AssertUnwindSafe(|| {
            train_in_memory(m, stores, settings, "AnnData", dev, true, &mut on_epoch)
        }));
        let model = match run {
            Ok(r) => r,
            Err(p) if p.is::<Stopped>() => Err(stop
                .take()
                .unwrap_or_else(|| anyhow::anyhow!("sciLaMA training stopped"))),
            Err(p) => std::panic::resume_unwind(p),
        };
        (model, celltext::progress::take_warnings())
    });
    Ok((model?, warnings))
}

type TrainOut<'py> = (
    Bound<'py, PyArray2<f32>>,
    Vec<String>,
    Vec<String>,
    Option<Bound<'py, PyArray2<f32>>>,
    String,
);

/// sciLaMA on raw counts (`celltext scilama train`, same numbers for the same seed): returns
/// (cell μ [n_cells, latent], split names, the model's genes, their contextual embeddings
/// [n_model_genes, latent] or None in beta-vae mode, summary JSON). `stores`: (name, store)
/// pairs, several fused by `fusion`; `obs`: (key, float64 array or list of str) of the covariate
/// columns; `model_path`: also write the model file (with its manifest) there.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, n_rows, cell_ids, genes, stores, obs, config, batch_keys, covariate_keys, species="human", orthologs=false, hvg=2000, gene_input="store", device="cpu", model_path=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn scilama_train<'py>(
    py: Python<'py>,
    indptr: Bound<'py, PyAny>,
    indices: Bound<'py, PyAny>,
    data: PyReadonlyArray1<'py, f32>,
    n_rows: usize,
    cell_ids: Vec<String>,
    genes: Vec<String>,
    stores: Vec<(String, PyRef<'py, PyGeneStore>)>,
    obs: Vec<(String, Bound<'py, PyAny>)>,
    config: &str,
    batch_keys: Vec<String>,
    covariate_keys: Vec<String>,
    species: &str,
    orthologs: bool,
    hvg: usize,
    gene_input: &str,
    device: &str,
    model_path: Option<PathBuf>,
    progress: Option<PyObject>,
) -> PyResult<TrainOut<'py>> {
    let (p, i) = (
        index_array(&indptr, "indptr")?,
        index_array(&indices, "indices")?,
    );
    let csr = Csr::new(&p, &i, &data, n_rows, genes.len())?;
    let view = csr.view();
    let obs = obs
        .iter()
        .map(|(k, v)| Ok((k.clone(), obs_column(v, k)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let train_stores = TrainStores {
        stores: stores
            .iter()
            .map(|(name, s)| (PathBuf::from(name), s.inner.clone()))
            .collect(),
        manifests: stores
            .iter()
            .map(|(_, s)| s.manifest_value())
            .collect::<PyResult<Vec<_>>>()?,
    };
    let (model, summary_json) = py.allow_threads(|| {
        guard(|| {
            crate::cells::check_matrix(&view, &cell_ids, &genes, "X")?;
            let cfg = config_of(config)?;
            let settings = TrainSettings {
                species: parse_value::<Species>("species", species, true)?,
                orthologs,
                hvg,
                gene_input: parse_value::<GeneInput>("gene_input", gene_input, true)?,
                batch_keys,
                covariate_keys,
                cfg,
            };
            let m = ExpressionMatrix {
                x: view.to_matrix(),
                cell_ids,
                genes,
                obs,
            };
            let dev = celltext::training::device(device)?;
            let (model, warnings) =
                train_observed(m, &train_stores, &settings, &dev, progress.as_ref())?;
            let summary_json = summary(&model, &settings, &warnings)?;
            if let Some(path) = &model_path {
                model.write_model_file(path, &serde_json::from_str(&summary_json)?)?;
            }
            Ok((model, summary_json))
        })
    })?;
    let latent = model.trained.net.arch.latent;
    let n = model.data.prep.n_cells;
    let split = model.split_labels();
    let n_genes = model.data.genes.len();
    let gene_mu = match model.genes {
        Some(g) => Some(g.into_pyarray(py).reshape([n_genes, latent])?),
        None => None,
    };
    Ok((
        model.cells.into_pyarray(py).reshape([n, latent])?,
        split,
        model.data.genes,
        gene_mu,
        summary_json,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(scilama_train, m)?)?;
    Ok(())
}
