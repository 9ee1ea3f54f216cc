//! `celltext scilama train` (the model is in `model`, training in `train`, the model file in
//! `model_file`, the output files in `output_set`, `scilama embed` in `embed`).
//! [`train_in_memory`] is `train` without files (a matrix and stores in, a [`TrainedModel`]
//! out): [`run_train`] reads, calls it and writes; the Python package's `tl.scilama` calls it on
//! an AnnData's matrix, so both front ends train through one code path.
//!
//! `train -o OUT.h5ad` writes, beside each other (PREFIX = OUT without `.h5ad`; `-o OUT.npy` or
//! `.safetensors` puts the cell embeddings there instead of into a copy of the input):
//! - `OUT.h5ad`: a copy of the input with `obsm['X_scilama']` (cell μ), `obs['scilama_split']`
//!   (`fit` / `val`) and `uns['celltext_scilama']` (the manifest as JSON), + `OUT.h5ad.manifest.json`;
//! - `PREFIX.scilama_genes.{safetensors,genes.tsv,manifest.json}`: the contextual gene embeddings
//!   (gene μ) of the model's genes as a celltext gene store (`genes export` turns it into
//!   parquet / tsv / npy for scanpy users); not written by `--mode beta-vae`, which trains no
//!   gene VAE (a stale one from an earlier run is removed);
//! - `PREFIX.scilama_model.safetensors` (+ manifest): every parameter, the per-gene scaling
//!   statistics (`scaling.mean`, `scaling.std`) and, in the metadata, the architecture, settings,
//!   gene names, the covariate encoding (`covariates`: categories in one-hot order, means and
//!   stds) and, with several gene stores, their order (`gene_stores`, [`StoreRecord`]) — what
//!   `scilama embed` needs;
//! - `PREFIX.scilama_losses.tsv`: step, epoch, KL weight, train loss / recon / KL, validation loss.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::Serialize;

use crate::cells::matrix::{ExpressionMatrix, ObsColumn};
use crate::cells::pipeline::{
    input_checksum, read_normalized, CellOutput, CellVectors, InputNorm, Placement,
};
use crate::cells::read::ReadOptions;
use crate::genes::resolver::Coverage;
use crate::genes::store::GeneEmbeddings;
use crate::genes::Species;
use crate::io::{manifest_path, write_json, TOOL_VERSION};
use crate::scilama::covariates::Covariates;
use crate::scilama::data::{gene_inputs, prepare, GeneInput, HvgBatches, Prepared};
use crate::scilama::model::Fusion;
use crate::scilama::model_file::{save_model, PARTS_KEY};
use crate::scilama::output_set::{remove_if_present, write_losses, OutputSet};
use crate::scilama::stores::{
    load_stores, shared_genes, store_inputs, SharedGenes, StoreRecord, StoreUse,
};
use crate::scilama::{fit, EpochLog, ScilamaConfig, Trained};
use crate::training::device;

pub const OBSM_KEY: &str = "X_scilama";

pub struct TrainArgs {
    pub input: PathBuf,
    pub read: ReadOptions,
    /// `--genes`, in order: one gene store, or several fused by `cfg.fusion`.
    pub stores: Vec<PathBuf>,
    pub settings: TrainSettings,
    pub device: String,
    pub output: PathBuf,
    pub in_place: bool,
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct TrainReport {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub layer: Option<String>,
    pub store: String,
    pub store_manifest: Option<serde_json::Value>,
    pub gene_input: GeneInput,
    pub gene_coverage: Coverage,
    /// The species the dataset's gene names were read as (`--species`), and `--orthologs`.
    pub species: Species,
    pub orthologs: bool,
    pub hvg: usize,
    /// The highly variable genes were chosen within the `--batch-key` batches.
    pub hvg_within_batches: bool,
    pub n_cells: usize,
    pub n_genes: usize,
    pub gene_input_dim: usize,
    /// With several `--genes`: each store in order (path, width, encoder, dataset genes found in
    /// it); `store`, `store_manifest`, `gene_coverage` and `gene_input_dim` describe the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gene_stores: Vec<StoreUse>,
    /// With several `--genes`: the dataset genes in every store (before `--hvg`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genes_in_every_store: Option<usize>,
    /// With several `--genes`: how their gene latents are fused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion: Option<Fusion>,
    pub covariates: Covariates,
    pub config: ScilamaConfig,
    pub device: String,
    pub n_fit: usize,
    pub n_val: usize,
    pub epochs_run: Vec<(String, usize)>,
    pub best_epochs: Vec<(String, usize)>,
    pub final_val_loss: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub seconds: f64,
    pub outputs: Vec<String>,
}

pub(crate) fn write_gene_store(
    prefix: &Path,
    genes: &[String],
    data: Vec<f32>,
    dim: usize,
    manifest: &serde_json::Value,
) -> Result<()> {
    let store = GeneEmbeddings {
        symbols: genes.to_vec(),
        dim,
        data,
    };
    store.save(prefix, manifest)
}

/// Trains sciLaMA and writes every output (see the module docs). The training itself is
/// [`train_in_memory`], which the Python package calls on an AnnData's matrix.
pub fn run_train(args: &TrainArgs) -> Result<TrainReport> {
    let t0 = std::time::Instant::now();
    let _lock = check_train_args(args)?;
    let dev = device(&args.device)?;
    let stores = TrainStores::load(&args.stores)?;
    let m = read_normalized(&args.input, &args.read, InputNorm::Raw, args.quiet)?;
    let model = train_with_progress(args, m, &stores, &dev)?;
    let mut report = train_report(args, &model, t0)?;
    let manifest = serde_json::to_value(&report)?;
    write_train_outputs(args, &model, &manifest)?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// Everything `train` can check before reading its input: outputs apart from inputs, the
/// output's lock (one writer per output; taken before the minutes-long training), the output's
/// extension and the `--genes` / `--gene-input` combination. Returns the lock, held to the end.
fn check_train_args(args: &TrainArgs) -> Result<crate::outputs::OutputLock> {
    {
        let set = OutputSet::of(&args.output);
        let mut outs = set.files();
        if args.in_place {
            outs.retain(|p| *p != args.output.as_path());
        }
        let stores: Vec<_> = args
            .stores
            .iter()
            .map(|s| crate::genes::store::store_paths(&crate::genes::store::store_prefix(s)))
            .collect();
        let mut ins: Vec<&Path> = vec![&args.input];
        ins.extend(stores.iter().flat_map(|s| s.all()));
        crate::outputs::check_apart(&outs, &ins)?;
    }
    // One writer per output; checked before the (minutes-long) training.
    let lock = CellOutput {
        path: args.output.clone(),
        in_place: args.in_place,
        name: "scilama".into(),
    }
    .prepare()?;
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["h5ad", "npy", "safetensors"].contains(&ext.as_str()) {
        bail!(
            "{}: --output must end in .h5ad (or .npy / .safetensors for the cell embeddings alone)",
            args.output.display()
        );
    }
    if args.stores.is_empty() {
        bail!("give a gene store with --genes STORE (several: --genes A --genes B)");
    }
    if args.stores.len() > 1 && args.settings.gene_input != GeneInput::Store {
        bail!(
            "--gene-input {} replaces the gene store's vectors, so it takes one --genes store, \
             not {}",
            crate::choice::Choice::name(args.settings.gene_input),
            args.stores.len()
        );
    }
    Ok(lock)
}

/// The gene stores a run trains on, in `--genes` order: each one's name (the path it was read
/// from, or a caller's name for a store held in memory) with its vectors, and its manifest.
pub struct TrainStores {
    pub stores: Vec<(PathBuf, GeneEmbeddings)>,
    pub manifests: Vec<Option<serde_json::Value>>,
}

impl TrainStores {
    /// The stores at `paths` (`--genes`, in order).
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let (stores, _, manifests) = load_stores(paths)?;
        Ok(Self { stores, manifests })
    }

    /// What the model records of each store.
    pub fn records(&self) -> Vec<StoreRecord> {
        self.stores
            .iter()
            .zip(&self.manifests)
            .map(|((p, s), m)| StoreRecord::of(p, s, m.as_ref()))
            .collect()
    }
}

/// The options of a training run apart from its files: what `scilama train` and the Python
/// package's `tl.scilama` share.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    pub species: Species,
    pub orthologs: bool,
    pub hvg: usize,
    pub gene_input: GeneInput,
    /// Categorical obs columns (one-hot covariates).
    pub batch_keys: Vec<String>,
    /// Continuous obs columns (z-scored covariates).
    pub covariate_keys: Vec<String>,
    pub cfg: ScilamaConfig,
}

/// What a model fits on, and what its report and outputs say about it.
pub struct TrainingData {
    /// The input as read (cell ids, genes, obs).
    pub m: ExpressionMatrix,
    /// The scaled cells of the model's genes.
    pub prep: Prepared,
    /// The model's genes, in model order.
    pub genes: Vec<String>,
    /// Each store's gene inputs `([M × D_k] values, D_k)`.
    pub inputs: Vec<(Vec<f32>, usize)>,
    pub covariates: Covariates,
    /// The encoded covariates `[cells × C]`.
    pub cov: Vec<f32>,
    /// Batch keys were given (the HVGs were chosen within batches).
    pub batched: bool,
    pub records: Vec<StoreRecord>,
    pub store_manifest: Option<serde_json::Value>,
    /// The first store's coverage of the dataset's genes.
    pub coverage: Coverage,
    /// With several stores: the genes in all of them and each store's coverage.
    pub shared: Option<(SharedGenes, Vec<Coverage>)>,
    /// What the user should know about the input (also shown through `progress::warn`).
    pub warnings: Vec<String>,
}

impl TrainingData {
    fn input_slices(&self) -> Vec<(&[f32], usize)> {
        self.inputs
            .iter()
            .map(|(g, d)| (g.as_slice(), *d))
            .collect()
    }

    /// With several stores: each store's record and its coverage of the dataset's genes.
    pub fn store_uses(&self) -> Vec<StoreUse> {
        match &self.shared {
            Some((_, coverages)) => self
                .records
                .iter()
                .zip(coverages)
                .map(|(r, coverage)| StoreUse {
                    record: r.clone(),
                    coverage: coverage.clone(),
                })
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Matches the dataset's genes to the stores, encodes the covariates and prepares the scaled
/// cells and the gene inputs (`source` names the input in messages).
fn training_data(
    m: ExpressionMatrix,
    stores: &TrainStores,
    settings: &TrainSettings,
    source: &str,
    quiet: bool,
) -> Result<TrainingData> {
    if stores.stores.is_empty() {
        bail!("give a gene store with --genes STORE (several: --genes A --genes B)");
    }
    for ((path, _), manifest) in stores.stores.iter().zip(&stores.manifests) {
        GeneEmbeddings::check_species(
            path,
            manifest.as_ref(),
            settings.species,
            settings.orthologs,
        )?;
    }
    let warnings: Vec<String> = non_count_warning(&m, source).into_iter().collect();
    for w in &warnings {
        crate::progress::warn(quiet, w);
    }
    let records = stores.records();
    let store = &stores.stores[0].1;
    let store_manifest = stores.manifests[0].clone();
    // one store: its genes; several: the genes in every store (module `stores`)
    let (rows, coverage, shared) = if stores.stores.len() == 1 {
        let (rows, coverage) = crate::genes::pipeline::coverage(
            &store.symbols,
            &m.genes,
            settings.species,
            settings.orthologs,
            None,
        )?;
        (rows, coverage, None)
    } else {
        let (shared, coverages) = shared_genes(
            &stores.stores,
            &m.genes,
            settings.species,
            settings.orthologs,
            quiet,
        )?;
        let first = coverages[0].clone();
        (shared.first_rows.clone(), first, Some((shared, coverages)))
    };
    let covariates = Covariates::fit(
        &m.obs,
        &settings.batch_keys,
        &settings.covariate_keys,
        &m.cell_ids,
        source,
    )?;
    // with batches, genes are chosen within them (scanpy's `batch_key`), not for differing
    // between them
    let batch_codes = if settings.hvg > 0 {
        covariates.batch_codes(&m.obs, m.x.n_rows, source)?
    } else {
        None
    };
    let hvg_batches = batch_codes.as_deref().map(|codes| HvgBatches {
        codes,
        gene_names: &m.genes,
    });
    let prep = prepare(&m.x, &rows, settings.hvg, hvg_batches.as_ref())
        .with_context(|| format!("preparing {source}"))?;
    let mut inputs: Vec<(Vec<f32>, usize)> = Vec::with_capacity(stores.stores.len());
    match &shared {
        None => inputs.push(gene_inputs(
            settings.gene_input,
            &prep,
            store,
            settings.cfg.seed,
        )),
        Some((shared, _)) => {
            for (k, (_, s)) in stores.stores.iter().enumerate() {
                inputs.push((store_inputs(s, &shared.rows[k], &prep.columns), s.dim));
            }
        }
    }
    let genes: Vec<String> = prep.columns.iter().map(|&j| m.genes[j].clone()).collect();
    let cov = covariates.encode(&m.obs, prep.n_cells, &m.cell_ids, source)?;
    let batched = batch_codes.is_some();
    Ok(TrainingData {
        m,
        prep,
        genes,
        inputs,
        covariates,
        cov,
        batched,
        records,
        store_manifest,
        coverage,
        shared,
        warnings,
    })
}

/// A warning when the matrix holds non-integer values: sciLaMA normalizes and logs raw counts
/// itself, so a normalized matrix (a forgotten `--layer counts`) is transformed twice.
pub(crate) fn non_count_warning(m: &ExpressionMatrix, source: &str) -> Option<String> {
    let k = m.x.data.iter().position(|v| v.fract() != 0.0)?;
    let row = m.x.indptr.partition_point(|&p| p <= k).saturating_sub(1);
    let gene = m.x.indices[k] as usize;
    Some(format!(
        "{source}: the matrix holds non-integer values (e.g. {} for cell {}, gene {}), so it may \
         not be raw counts; sciLaMA normalizes and log-transforms counts itself, so normalized \
         input is transformed twice. Point it at the raw counts (e.g. --layer counts)",
        m.x.data[k],
        m.cell_ids.get(row).map_or("?", |s| s.as_str()),
        m.genes.get(gene).map_or("?", |s| s.as_str())
    ))
}

/// A trained sciLaMA model with its data and embeddings: what `scilama train` writes and what
/// the Python package's `tl.scilama` puts into an AnnData.
pub struct TrainedModel {
    pub data: TrainingData,
    pub trained: Trained,
    /// Cell μ of every cell, `[cells × latent]` row-major.
    pub cells: Vec<f32>,
    /// Gene μ of the model's genes (`data.genes`), `[genes × latent]`; `None` in `beta-vae`
    /// mode, which trains no gene VAE.
    pub genes: Option<Vec<f32>>,
}

impl TrainedModel {
    /// Each cell's part in training: `fit` or `val` (held out for early stopping).
    pub fn split_labels(&self) -> Vec<String> {
        let mut split = vec!["fit".to_string(); self.data.prep.n_cells];
        for &i in &self.trained.val_idx {
            split[i] = "val".into();
        }
        split
    }

    /// Epochs each training step ran, in the mode's order.
    pub fn epochs_run(&self, cfg: &ScilamaConfig) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for s in cfg.mode.stages().iter().map(|s| s.name()) {
            let n = self
                .trained
                .history
                .iter()
                .filter(|h| h.stage.name() == s)
                .count();
            out.push((s.to_string(), n));
        }
        out
    }

    /// The epoch whose weights each step kept.
    pub fn best_epochs(&self) -> Vec<(String, usize)> {
        self.trained
            .best_epochs
            .iter()
            .map(|(s, e)| (s.name().to_string(), *e))
            .collect()
    }

    /// The last finite validation loss.
    pub fn final_val_loss(&self) -> Option<f32> {
        self.trained
            .history
            .iter()
            .rev()
            .find(|h| h.val_loss.is_finite())
            .map(|h| h.val_loss)
    }

    /// The model file (every parameter, the scaling statistics, the architecture, gene names,
    /// covariate encoding and stores in its metadata), with `manifest` as its training record.
    pub fn save_model(&self, path: &Path, manifest: &serde_json::Value) -> Result<()> {
        save_model(
            path,
            &self.trained.net,
            &self.data.genes,
            (&self.data.prep.mean, &self.data.prep.std),
            &self.data.covariates,
            &self.data.records,
            manifest,
        )
    }

    /// The model file alone at `path` (`.safetensors`) through the output contract: one writer
    /// (its lock), the old marker removed first, then the model, then its manifest
    /// (`MODEL.manifest.json`, the marker `scilama embed` checks) recording the model's size and
    /// sha256.
    pub fn write_model_file(&self, path: &Path, manifest: &serde_json::Value) -> Result<()> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("safetensors") {
            bail!(
                "{}: a sciLaMA model file must end in .safetensors",
                path.display()
            );
        }
        let _lock = crate::outputs::OutputLock::acquire(path)?;
        let marker = manifest_path(path);
        remove_if_present(&marker, "the old manifest before replacing the model")?;
        self.save_model(path, manifest)?;
        let mut m = manifest.clone();
        m[PARTS_KEY] = serde_json::Value::Array(vec![crate::outputs::part_record(path)?]);
        write_json(&marker, &m)
    }
}

/// Trains sciLaMA on the raw counts `m` (cells × genes, obs holding the covariate columns) and
/// embeds every cell and the model's genes: `scilama train` without its files. `source` names
/// the input in messages; `on_epoch` sees every epoch as it finishes.
pub fn train_in_memory(
    m: ExpressionMatrix,
    stores: &TrainStores,
    settings: &TrainSettings,
    source: &str,
    dev: &Device,
    quiet: bool,
    on_epoch: &mut dyn FnMut(&EpochLog),
) -> Result<TrainedModel> {
    if stores.stores.len() > 1 && settings.gene_input != GeneInput::Store {
        bail!(
            "--gene-input {} replaces the gene store's vectors, so it takes one --genes store, \
             not {}",
            crate::choice::Choice::name(settings.gene_input),
            stores.stores.len()
        );
    }
    let data = training_data(m, stores, settings, source, quiet)?;
    let trained = fit(
        &data.prep.x,
        data.prep.n_cells,
        &data.cov,
        &data.input_slices(),
        &settings.cfg,
        dev,
        on_epoch,
    )?;
    let prep = &data.prep;
    crate::limits::check_elements(
        &format!("--latent {} × {} cells", settings.cfg.latent, prep.n_cells),
        settings.cfg.latent as u128 * prep.n_cells as u128,
    )?;
    let cells = trained.net.embed_cells(&prep.x, &data.cov, prep.n_cells)?;
    let genes = if settings.cfg.mode != crate::scilama::Mode::BetaVae {
        let gs: Vec<&[f32]> = data.input_slices().iter().map(|(g, _)| *g).collect();
        Some(trained.net.embed_genes(&gs, prep.n_genes())?)
    } else {
        None
    };
    Ok(TrainedModel {
        data,
        trained,
        cells,
        genes,
    })
}

/// [`train_in_memory`] under a progress bar over every step's epochs (drawn from the first
/// epoch on, after the input's own reading bar).
fn train_with_progress(
    args: &TrainArgs,
    m: ExpressionMatrix,
    stores: &TrainStores,
    dev: &Device,
) -> Result<TrainedModel> {
    let n_steps = args.settings.cfg.mode.stages().len() as u64;
    let epochs = args.settings.cfg.epochs as u64;
    let mut pb: Option<indicatif::ProgressBar> = None;
    let mut step = None;
    let mut on_epoch = |l: &EpochLog| {
        let pb =
            pb.get_or_insert_with(|| crate::progress::bar(n_steps * epochs, "epochs", args.quiet));
        if step != Some(l.stage) {
            // each step ends early or at --epochs; count a finished step as a full one
            if step.is_some() {
                pb.set_position(pb.position().div_ceil(epochs) * epochs);
            }
            step = Some(l.stage);
        }
        pb.inc(1);
        pb.set_message(format!(
            "{} epoch {} (KL weight {:.2}) loss {:.1} (recon {:.1}, KL {:.1}) val {:.1}",
            l.stage.name(),
            l.epoch + 1,
            l.kl_weight,
            l.train_loss,
            l.train_recon,
            l.train_kl,
            l.val_loss
        ));
    };
    let source = args.input.display().to_string();
    let settings = &args.settings;
    let model = train_in_memory(m, stores, settings, &source, dev, args.quiet, &mut on_epoch);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    model
}

fn is_h5ad(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"))
}

/// The run's report (also every output's manifest).
fn train_report(
    args: &TrainArgs,
    model: &TrainedModel,
    t0: std::time::Instant,
) -> Result<TrainReport> {
    let set = OutputSet::of(&args.output);
    let (data, trained) = (&model.data, &model.trained);
    let prep = &data.prep;
    Ok(TrainReport {
        tool: TOOL_VERSION.into(),
        command: "scilama train".into(),
        input: args.input.display().to_string(),
        input_sha256: input_checksum(&args.input)?,
        layer: args.read.layer.clone(),
        store: args.stores[0].display().to_string(),
        store_manifest: data.store_manifest.clone(),
        gene_input: args.settings.gene_input,
        gene_coverage: data.coverage.clone(),
        species: args.settings.species,
        orthologs: args.settings.orthologs,
        hvg: args.settings.hvg,
        hvg_within_batches: data.batched && args.settings.hvg > 0,
        n_cells: prep.n_cells,
        n_genes: prep.n_genes(),
        gene_input_dim: data.inputs[0].1,
        genes_in_every_store: data.shared.as_ref().map(|(s, _)| s.n_shared),
        gene_stores: data.store_uses(),
        fusion: trained.net.arch.fusion,
        covariates: data.covariates.clone(),
        config: args.settings.cfg.clone(),
        device: args.device.clone(),
        n_fit: trained.fit_idx.len(),
        n_val: trained.val_idx.len(),
        epochs_run: model.epochs_run(&args.settings.cfg),
        best_epochs: model.best_epochs(),
        final_val_loss: model.final_val_loss(),
        warnings: data.warnings.clone(),
        seconds: t0.elapsed().as_secs_f64(),
        outputs: [
            Some(if is_h5ad(&args.output) {
                format!(
                    "{} (obsm['{OBSM_KEY}'], obs['scilama_split'])",
                    args.output.display()
                )
            } else {
                format!("{} (cell embeddings)", args.output.display())
            }),
            model.genes.is_some().then(|| {
                format!(
                    "{}.safetensors (contextual gene embeddings)",
                    set.genes.display()
                )
            }),
            Some(set.model.display().to_string()),
            Some(set.losses.display().to_string()),
        ]
        .into_iter()
        .flatten()
        .collect(),
    })
}

/// Writes the output set under `manifest`: the old marker (the model's manifest) goes first, the
/// parts are written, and the new marker, recording every part's sha256, is written last.
fn write_train_outputs(
    args: &TrainArgs,
    model: &TrainedModel,
    manifest: &serde_json::Value,
) -> Result<()> {
    let set = OutputSet::of(&args.output);
    let k = args.settings.cfg.latent;
    let data = &model.data;
    let out = CellOutput {
        path: args.output.clone(),
        in_place: args.in_place,
        name: "scilama".into(),
    };
    set.remove_marker()?;
    let vectors = CellVectors {
        cell_ids: &data.m.cell_ids,
        data: &model.cells,
        dim: k,
        obs: vec![(
            "scilama_split".into(),
            ObsColumn::Text(model.split_labels()),
        )],
    };
    let placement = Placement::Whole {
        input: &args.input,
        cells: &data.m,
        key: Some(OBSM_KEY),
    };
    out.write(vectors, placement, manifest.clone())?;
    match &model.genes {
        Some(gene_mu) => write_gene_store(&set.genes, &data.genes, gene_mu.clone(), k, manifest)?,
        None => set.remove_gene_store()?,
    }
    write_losses(&set.losses, &model.trained.history)?;
    write_json(&manifest_path(&set.losses), manifest)?;
    model.save_model(&set.model, manifest)?;
    set.write_marker(manifest, args.in_place)
}
