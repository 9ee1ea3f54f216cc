//! The sciLaMA model file (`PREFIX.scilama_model.safetensors`): every parameter, the per-gene
//! scaling statistics (`scaling.mean`, `scaling.std`) and, in the metadata, the architecture,
//! gene names, covariate encoding and (with several gene stores) their order. `scilama train`
//! saves it, `scilama embed` and the Python package load it; a loaded model is checked tensor by
//! tensor against the architecture it declares, and against the manifest beside it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use crate::io::{manifest_path, TOOL_VERSION};
use crate::scilama::covariates::Covariates;
use crate::scilama::model::{Arch, Network};
use crate::scilama::stores::{check_record, StoreRecord};

fn tensor_bytes(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>)> {
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok((
        t.dims().to_vec(),
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    ))
}

pub(crate) fn save_model(
    path: &Path,
    net: &Network,
    genes: &[String],
    (mean, std): (&[f32], &[f32]),
    covariates: &Covariates,
    stores: &[StoreRecord],
    meta_json: &serde_json::Value,
) -> Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in &net.vars {
        let (shape, bytes) = tensor_bytes(v.as_tensor())?;
        owned.push((name.clone(), shape, bytes));
    }
    for (name, v) in [("scaling.mean", mean), ("scaling.std", std)] {
        owned.push((
            name.into(),
            vec![v.len()],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| anyhow::anyhow!("{n}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::new();
    meta.insert("arch".to_string(), serde_json::to_string(&net.arch)?);
    meta.insert("genes".to_string(), serde_json::to_string(genes)?);
    meta.insert("covariates".to_string(), serde_json::to_string(covariates)?);
    if stores.len() > 1 {
        meta.insert(GENE_STORES_KEY.to_string(), serde_json::to_string(stores)?);
    }
    meta.insert("celltext".to_string(), serde_json::to_string(meta_json)?);
    meta.insert("tool".to_string(), TOOL_VERSION.to_string());
    crate::io::write_safetensors(path, &views, Some(meta))
}

/// Model metadata: the gene stores of a model trained on several, in `--genes` order.
pub const GENE_STORES_KEY: &str = "gene_stores";

/// A trained model read back: network, model gene names, scaling statistics, training manifest.
pub struct LoadedModel {
    pub net: Network,
    pub genes: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// How obs columns become the cell side's covariate columns (empty: none).
    pub covariates: Covariates,
    /// The gene stores of a model trained on several, in `--genes` order (`None`: one store).
    pub stores: Option<Vec<StoreRecord>>,
    pub manifest: serde_json::Value,
}

pub fn load_model(path: &Path, dev: &Device) -> Result<LoadedModel> {
    crate::outputs::require_regular_file(path, "a sciLaMA model")?;
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let field = |k: &str| {
        meta.get(k).with_context(|| {
            format!(
                "{}: metadata field `{k}` missing; pass a PREFIX.scilama_model.safetensors \
                 written by `celltext scilama train`",
                path.display()
            )
        })
    };
    let arch: Arch = serde_json::from_str(field("arch")?)
        .with_context(|| format!("{}: metadata `arch`", path.display()))?;
    let genes: Vec<String> = serde_json::from_str(field("genes")?)
        .with_context(|| format!("{}: metadata `genes`", path.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(field("celltext")?)
        .with_context(|| format!("{}: metadata `celltext`", path.display()))?;
    // absent in models written before covariates existed: none
    let covariates: Covariates = match meta.get("covariates") {
        Some(c) => serde_json::from_str(c)
            .with_context(|| format!("{}: metadata `covariates`", path.display()))?,
        None => Covariates::default(),
    };
    let stores: Option<Vec<StoreRecord>> = meta
        .get(GENE_STORES_KEY)
        .map(|s| {
            serde_json::from_str(s)
                .with_context(|| format!("{}: metadata `{GENE_STORES_KEY}`", path.display()))
        })
        .transpose()?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .with_context(|| format!("{}: corrupt safetensors file", path.display()))?;
    let retrain = "retrain it with `celltext scilama train` (the file is damaged or not a \
                   sciLaMA model)";
    // every saved tensor: the shape the declared architecture gives it, finite values
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = tensors
            .get(name)
            .with_context(|| format!("{}: tensor `{name}` missing; {retrain}", path.display()))?;
        if t.dims() != shape {
            bail!(
                "{}: tensor `{name}` has shape {:?} but the architecture in the metadata (`arch`) \
                 declares {shape:?}; {retrain}",
                path.display(),
                t.dims()
            );
        }
        let v = t.flatten_all()?.to_vec1::<f32>()?;
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            bail!(
                "{}: tensor `{name}` holds {} at element {k}; a model's values must be finite \
                 numbers; {retrain}",
                path.display(),
                v[k]
            );
        }
        Ok(v)
    };
    arch.validate()
        .with_context(|| format!("{}: metadata `arch`", path.display()))?;
    if genes.len() != arch.n_genes {
        bail!(
            "{}: metadata `genes` lists {} gene names for the {}-gene model its `arch` declares; \
             {retrain}",
            path.display(),
            genes.len(),
            arch.n_genes
        );
    }
    check_record(path, stores.as_deref(), &arch, retrain)?;
    covariates
        .validate()
        .with_context(|| format!("{}: metadata `covariates`", path.display()))?;
    if covariates.width() != arch.n_cov {
        bail!(
            "{}: metadata `covariates` describes {} covariate columns ({} categorical with {} \
             categories, {} continuous) but the architecture (`arch.n_cov`) takes {}; {retrain}",
            path.display(),
            covariates.width(),
            covariates.categorical.len(),
            covariates
                .categorical
                .iter()
                .map(|c| c.categories.len())
                .sum::<usize>(),
            covariates.continuous.len(),
            arch.n_cov
        );
    }
    let net = Network::build(arch, dev, |n, s| get(n, s))?;
    let mean = get("scaling.mean", &[genes.len()])?;
    let std = get("scaling.std", &[genes.len()])?;
    if let Some(k) = std.iter().position(|&s| s < 0.0) {
        bail!(
            "{}: tensor `scaling.std` is negative ({}) for gene `{}`; {retrain}",
            path.display(),
            std[k],
            genes[k]
        );
    }
    Ok(LoadedModel {
        net,
        genes,
        mean,
        std,
        covariates,
        stores,
        manifest,
    })
}

/// The manifest beside a model (`MODEL.manifest.json`) is the marker of a `scilama train` output
/// set: written last, it records every part's size and sha256 (`parts`). `scilama embed` checks
/// the model against it, so a model from one run under the manifest of another (a run killed
/// between the two) is refused rather than used.
pub fn verify_model_set(model: &Path) -> Result<()> {
    let mp = manifest_path(model);
    if !mp.exists() {
        bail!(
            "{}: missing; a sciLaMA model is complete only with its manifest, which `scilama \
             train` writes last (a run that was interrupted leaves none); rerun `celltext \
             scilama train`",
            mp.display()
        );
    }
    crate::outputs::require_regular_file(&mp, "a manifest")?;
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&mp).with_context(|| format!("{}: cannot read", mp.display()))?,
    )
    .with_context(|| format!("{}: not valid JSON", mp.display()))?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let Some(parts) = m.get(PARTS_KEY).and_then(|p| p.as_array()) else {
        // written before output sets recorded their parts
        return Ok(());
    };
    let own = parts
        .iter()
        .find(|p| p.get("file").and_then(|f| f.as_str()) == Some(name.as_str()));
    match own {
        Some(rec) => crate::outputs::verify_part(model, rec, &mp),
        None => bail!(
            "{}: records no part named {name}: it is the manifest of another model; pass the \
             model beside its own manifest",
            mp.display()
        ),
    }
}

/// The key of a marker manifest that lists the parts of its output set.
pub const PARTS_KEY: &str = "parts";
