//! `celltext cells pca`: scanpy's standard count baseline (normalize_total → log1p → HVG seurat →
//! scale clip 10 → PCA) written to `obsm['X_pca']` like `sc.pp.pca`, or to .npy/.safetensors.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;

use crate::cells::pipeline::{
    input_checksum, read_normalized, CellOutput, CellVectors, InputNorm, Placement,
};
use crate::cells::read::ReadOptions;
use crate::cells::standard_pca::{standard_pca, StandardPcaParams};
use crate::io::TOOL_VERSION;

pub struct CellsPcaArgs {
    pub input: PathBuf,
    pub read: ReadOptions,
    pub params: StandardPcaParams,
    pub output: PathBuf,
    pub in_place: bool,
    /// obsm key (scanpy's default `X_pca`).
    pub key: String,
    pub quiet: bool,
}

/// What `cells pca` did; also the output's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct CellsPcaReport {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub layer: Option<String>,
    pub raw: bool,
    pub parameters: StandardPcaParams,
    pub n_cells: usize,
    pub n_genes: usize,
    /// The highly variable genes used, in var order.
    pub highly_variable_genes: Vec<String>,
    pub n_comps: usize,
    pub variance_ratio: Vec<f64>,
    pub key: String,
    pub seconds: f64,
    pub written: String,
}

pub fn run_cells_pca(args: &CellsPcaArgs) -> Result<CellsPcaReport> {
    let t0 = std::time::Instant::now();
    if args.key.trim().is_empty() || args.key.contains('/') {
        anyhow::bail!(
            "--key {:?}: an obsm key must be non-empty and contain no '/' (scanpy's default: X_pca)",
            args.key
        );
    }
    let target = CellOutput {
        path: args.output.clone(),
        in_place: args.in_place,
        name: args.key.clone(),
    };
    let _lock = target.prepare_apart(&[&args.input])?;
    let m = read_normalized(&args.input, &args.read, InputNorm::Raw, args.quiet)?;
    let out = standard_pca(&m.x, &args.params)
        .with_context(|| format!("{}: standard PCA baseline", args.input.display()))?;
    let mut report = CellsPcaReport {
        tool: TOOL_VERSION.into(),
        command: "cells pca".into(),
        input: args.input.display().to_string(),
        input_sha256: input_checksum(&args.input)?,
        layer: args.read.layer.clone(),
        raw: args.read.raw,
        parameters: args.params,
        n_cells: m.x.n_rows,
        n_genes: m.x.n_cols,
        highly_variable_genes: out.genes.iter().map(|&j| m.genes[j].clone()).collect(),
        n_comps: out.pca.k,
        variance_ratio: out.pca.explained_variance_ratio.clone(),
        key: args.key.clone(),
        seconds: 0.0,
        written: String::new(),
    };
    report.seconds = t0.elapsed().as_secs_f64();
    let manifest = serde_json::to_value(&report)?;
    let vectors = CellVectors {
        cell_ids: &m.cell_ids,
        data: &out.pca.coords,
        dim: out.pca.k,
        obs: vec![],
    };
    let placement = Placement::Whole {
        input: &args.input,
        cells: &m,
        key: Some(&args.key),
    };
    report.written = target.write(vectors, placement, manifest)?;
    Ok(report)
}
