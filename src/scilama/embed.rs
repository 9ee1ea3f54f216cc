//! `celltext scilama embed`: new cells (→ `obsm['X_scilama']`) and new gene vectors (→ a gene
//! store) through a trained model's encoders, the model's genes matched by name and scaled by
//! the training statistics, its covariates encoded as in training.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cells::pipeline::{
    input_checksum, read_normalized, CellOutput, CellVectors, InputNorm, Placement,
};
use crate::cells::read::ReadOptions;
use crate::genes::Species;
use crate::io::{manifest_path, TOOL_VERSION};
use crate::scilama::data::scale_new;
use crate::scilama::model_file::{load_model, verify_model_set, LoadedModel};
use crate::scilama::pipeline::{non_count_warning, write_gene_store, OBSM_KEY};
use crate::scilama::stores::{check_given, load_stores, shared_store_genes};
use crate::training::device;

pub struct EmbedArgs {
    pub model: PathBuf,
    pub input: Option<PathBuf>,
    pub read: ReadOptions,
    pub species: Species,
    pub output: Option<PathBuf>,
    pub in_place: bool,
    /// The least share of the model's genes `input` must hold (a missing gene is zero
    /// expression, which moves every cell).
    pub min_gene_fraction: f64,
    /// Gene stores whose vectors go through the gene encoder(s): one per store the model was
    /// trained with, in the same order (empty: no genes to project).
    pub genes: Vec<PathBuf>,
    pub genes_out: Option<PathBuf>,
    pub device: String,
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct EmbedReport {
    pub tool: String,
    pub command: String,
    pub model: String,
    pub model_sha256: String,
    pub cells: Option<(String, usize, usize)>,
    pub model_genes: usize,
    pub model_genes_found: Option<usize>,
    pub genes: Option<(String, usize)>,
    /// With several stores: how many of the first store's genes each store lacks (those genes
    /// are left out of the projection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub genes_lacking: Vec<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Projects new cells (→ `obsm['X_scilama']`) and/or new gene vectors (→ a gene store) through a
/// trained model's encoders.
pub fn run_embed(args: &EmbedArgs) -> Result<EmbedReport> {
    if !(0.0..=1.0).contains(&args.min_gene_fraction) {
        bail!(
            "--min-gene-fraction {}: give a share between 0 and 1",
            args.min_gene_fraction
        );
    }
    check_embed_paths(args)?;
    let dev = device(&args.device)?;
    verify_model_set(&args.model)?;
    let lm = load_model(&args.model, &dev)?;
    let mut report = EmbedReport {
        tool: TOOL_VERSION.into(),
        command: "scilama embed".into(),
        model: args.model.display().to_string(),
        model_sha256: crate::io::sha256_file(&args.model)?,
        cells: None,
        model_genes: lm.genes.len(),
        model_genes_found: None,
        genes: None,
        genes_lacking: Vec::new(),
        warnings: Vec::new(),
    };
    if args.input.is_none() && args.genes.is_empty() {
        bail!("give --input (cells to project) and/or --genes STORE (gene vectors to project)");
    }
    if let Some(input) = &args.input {
        embed_new_cells(args, input, &lm, &mut report)?;
    }
    if !args.genes.is_empty() {
        embed_new_genes(args, &lm, &mut report)?;
    }
    Ok(report)
}

/// `embed`'s outputs apart from its inputs (the model, its manifest, the input, the stores).
fn check_embed_paths(args: &EmbedArgs) -> Result<()> {
    let mut outs: Vec<&Path> = vec![];
    let out_manifest = args.output.as_deref().map(manifest_path);
    if !args.in_place {
        outs.extend(args.output.as_deref());
        outs.extend(out_manifest.as_deref());
    }
    let genes_out = args
        .genes_out
        .as_deref()
        .map(crate::genes::store::store_paths);
    outs.extend(genes_out.iter().flat_map(|s| s.all()));
    let model_manifest = manifest_path(&args.model);
    let mut ins: Vec<&Path> = vec![&args.model, &model_manifest];
    ins.extend(args.input.as_deref());
    let stores: Vec<_> = args
        .genes
        .iter()
        .map(|g| crate::genes::store::store_paths(&crate::genes::store::store_prefix(g)))
        .collect();
    ins.extend(stores.iter().flat_map(|s| s.all()));
    crate::outputs::check_apart(&outs, &ins)
}

/// Model gene k → the data column that feeds it: the data gene resolved best (exact name before
/// case, alias, Ensembl ID), the first in data order among equals.
fn model_columns(
    model_genes: &[String],
    data_genes: &[String],
    species: Species,
) -> Result<Vec<Option<usize>>> {
    let resolver = crate::genes::GeneResolver::new(model_genes, species, false)?;
    Ok(crate::genes::resolver::best_name_per_target(
        &resolver,
        model_genes.len(),
        data_genes,
    ))
}

/// Refuses `--species` other than the one the model's genes were read as (its manifest's
/// `species`; models that record none are not checked): the same names resolve differently.
fn check_model_species(model: &Path, manifest: &serde_json::Value, species: Species) -> Result<()> {
    use crate::choice::Choice;
    let Some(trained) = manifest
        .get("species")
        .and_then(|s| s.as_str())
        .and_then(|s| crate::choice::parse_choice::<Species>("species", s, true).ok())
    else {
        return Ok(());
    };
    if trained != species {
        bail!(
            "{}: trained on {} gene names (`species` in its manifest), but --species is {} here; \
             pass --species {}",
            model.display(),
            trained.name(),
            species.name(),
            trained.name()
        );
    }
    Ok(())
}

/// Refuses an input that holds too few of the model's genes (`columns`: each model gene's data
/// column), naming the first missing ones and the usual causes.
fn check_genes_found(
    input: &Path,
    model_genes: &[String],
    columns: &[Option<usize>],
    min_fraction: f64,
) -> Result<()> {
    let found = columns.iter().filter(|c| c.is_some()).count();
    let m = model_genes.len();
    if found > 0 && found as f64 >= min_fraction * m as f64 {
        return Ok(());
    }
    let missing: Vec<&str> = model_genes
        .iter()
        .zip(columns)
        .filter(|(_, c)| c.is_none())
        .map(|(g, _)| g.as_str())
        .take(5)
        .collect();
    let anyway = if found > 0 {
        "; pass a lower --min-gene-fraction to embed anyway"
    } else {
        ""
    };
    bail!(
        "{}: {found} of the model's {m} genes are in this dataset ({:.1} %; --min-gene-fraction \
         {min_fraction}), missing e.g. {}. A missing gene counts as zero expression, which moves \
         every cell's embedding. Check --species, and --gene-symbols-key when the var names are \
         Ensembl IDs{anyway}",
        input.display(),
        100.0 * found as f64 / m.max(1) as f64,
        missing.join(", ")
    )
}

/// Cell μ of the cells of `input` (the model's genes matched by name, scaled by the training
/// statistics) into `--output`.
fn embed_new_cells(
    args: &EmbedArgs,
    input: &Path,
    lm: &LoadedModel,
    report: &mut EmbedReport,
) -> Result<()> {
    let Some(output) = &args.output else {
        bail!("--input needs --output OUT.h5ad");
    };
    check_model_species(&args.model, &lm.manifest, args.species)?;
    let source = input.display().to_string();
    let m = read_normalized(input, &args.read, InputNorm::Raw, args.quiet)?;
    if let Some(w) = non_count_warning(&m, &source) {
        crate::progress::warn(args.quiet, &w);
        report.warnings.push(w);
    }
    let columns = model_columns(&lm.genes, &m.genes, args.species)?;
    check_genes_found(input, &lm.genes, &columns, args.min_gene_fraction)?;
    let found = columns.iter().filter(|c| c.is_some()).count();
    let n = m.cell_ids.len();
    let cov = lm.covariates.encode(&m.obs, n, &m.cell_ids, &source)?;
    for w in lm.covariates.far_outside(&cov, n, &m.cell_ids, &source) {
        crate::progress::warn(args.quiet, &w);
        report.warnings.push(w);
    }
    let x = scale_new(&m.x, &columns, &lm.mean, &lm.std)?;
    let z = lm.net.embed_cells(&x, &cov, n)?;
    report.cells = Some((output.display().to_string(), n, lm.net.arch.latent));
    report.model_genes_found = Some(found);
    let mut manifest = serde_json::to_value(&*report)?;
    manifest["input"] = serde_json::json!(input.display().to_string());
    manifest["input_sha256"] = serde_json::json!(input_checksum(input)?);
    manifest["training"] = lm.manifest.clone();
    let out = CellOutput {
        path: output.clone(),
        in_place: args.in_place,
        name: "scilama".into(),
    };
    let vectors = CellVectors {
        cell_ids: &m.cell_ids,
        data: &z,
        dim: lm.net.arch.latent,
        obs: vec![],
    };
    let placement = Placement::Whole {
        input,
        cells: &m,
        key: Some(OBSM_KEY),
    };
    out.write(vectors, placement, manifest)?;
    Ok(())
}

/// Gene μ of the `--genes` stores' genes (several stores: those in all of them, checked against
/// the model's record of its stores) into the gene store `--genes-out`.
fn embed_new_genes(args: &EmbedArgs, lm: &LoadedModel, report: &mut EmbedReport) -> Result<()> {
    let Some(out) = &args.genes_out else {
        bail!("--genes needs --genes-out PREFIX (a gene store)");
    };
    let (stores, given, _) = load_stores(&args.genes)?;
    if lm.stores.is_some() || stores.len() != 1 {
        check_given(
            &args.model,
            lm.stores.as_deref(),
            &lm.net.arch.gene_dims(),
            &given,
        )?;
        let (symbols, inputs, lacking) = shared_store_genes(&stores, args.species)?;
        let gs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let z = lm.net.embed_genes(&gs, symbols.len())?;
        report.genes = Some((out.display().to_string(), symbols.len()));
        report.genes_lacking = lacking;
        let mut manifest = serde_json::to_value(&*report)?;
        manifest["training"] = lm.manifest.clone();
        return write_gene_store(out, &symbols, z, lm.net.arch.latent, &manifest);
    }
    let (store_path, store) = &stores[0];
    if store.dim != lm.net.arch.gene_dim {
        bail!(
            "{}: store vectors have {} dims, the model's gene encoder takes {}; pass a store \
             from the same text encoder as the training store",
            store_path.display(),
            store.dim,
            lm.net.arch.gene_dim
        );
    }
    let z = lm.net.embed_genes(&[&store.data], store.len())?;
    report.genes = Some((out.display().to_string(), store.len()));
    let mut manifest = serde_json::to_value(&*report)?;
    manifest["training"] = lm.manifest.clone();
    write_gene_store(out, &store.symbols, z, lm.net.arch.latent, &manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// An exact name wins over an alias or a case variant that comes first in the data (pbmc3k
    /// holds C9orf47, an alias of S1PR3, just before S1PR3); a gene found only by alias still
    /// maps; a model gene absent from the data maps to nothing.
    #[test]
    fn model_genes_take_their_own_column_before_an_alias() {
        let model = names(&["S1PR3", "CD3E", "EDF1", "VIM"]);
        let data = names(&["C9orf47", "S1PR3", "cd3e", "CD3E", "MBF1", "LYZ"]);
        let cols = model_columns(&model, &data, Species::Human).unwrap();
        assert_eq!(cols, vec![Some(1), Some(3), Some(4), None]);
    }
}
