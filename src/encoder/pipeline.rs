//! `celltext embed`, `celltext models`, `celltext convert`.

use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::encoder::{self, card, resolve, EncoderOptions, ModelIdentity, PaddingStats};
use crate::io::{manifest_path, sha256_file, write_embeddings, write_json, TOOL_VERSION};

pub struct EmbedArgs {
    pub model: String,
    pub input: PathBuf,
    pub output: PathBuf,
    pub options: EncoderOptions,
    pub batch_tokens: usize,
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct EmbedManifest {
    pub tool: String,
    pub command: String,
    pub model: ModelIdentity,
    pub input: String,
    pub input_sha256: String,
    pub n_texts: usize,
    pub dim: usize,
    pub n_truncated: usize,
    pub batch_tokens: usize,
    pub padding: PaddingStats,
    pub padding_fraction: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// sha256 of the output file: the manifest is written last, so an output and a manifest of
    /// two runs (one killed between its two renames) are told apart. (A shard records its
    /// `.npy` in `shard.npy` instead.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
}

pub fn run_embed(args: &EmbedArgs) -> Result<EmbedManifest> {
    run_embed_shard(args, None)
}

/// [`run_embed`] of one shard's texts (`--shard I/N`: a .npy and its shard manifest).
pub fn run_embed_shard(
    args: &EmbedArgs,
    shard: Option<crate::shard::Shard>,
) -> Result<EmbedManifest> {
    crate::shard::check_shard_output(&args.output, shard)?;
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext != "npy" && ext != "safetensors" {
        bail!(
            "{}: output must end in .npy or .safetensors",
            args.output.display()
        );
    }
    let out_manifest = manifest_path(&args.output);
    let model_dir = Path::new(&args.model);
    let mut inputs: Vec<&Path> = vec![&args.input];
    inputs.extend(Some(model_dir).filter(|p| p.exists()));
    crate::outputs::check_apart(&[&args.output, &out_manifest], &inputs)?;
    let mut records = encoder::input::read_texts(&args.input)?;
    let n_all = records.len();
    if let Some(s) = shard {
        let r = s.range(n_all);
        records.truncate(r.end);
        records.drain(..r.start);
    }
    let input_sha256 = sha256_file(&args.input)?;
    let enc = crate::encoder::load_encoder(&args.model, &args.options, args.quiet)?;
    // taken once the inputs and the model are known good: a run refused on its inputs never
    // touches the output's folder
    let _lock = crate::outputs::OutputLock::acquire(&args.output)?;
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let pb = crate::progress::bar(texts.len() as u64, "texts", args.quiet);
    let t0 = std::time::Instant::now();
    let out = enc.embed_texts(&texts, args.batch_tokens, Some(&pb))?;
    let seconds = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    if shard.is_none() {
        write_embeddings(&args.output, &out.data, records.len(), out.dim, Some(&ids))?;
    }
    let manifest = EmbedManifest {
        tool: TOOL_VERSION.into(),
        command: "embed".into(),
        model: enc.identity.clone(),
        input: args.input.display().to_string(),
        input_sha256,
        n_texts: records.len(),
        dim: out.dim,
        n_truncated: out.n_truncated,
        batch_tokens: args.batch_tokens,
        padding_fraction: out.padding.padding_fraction(),
        tokens_per_second: out.padding.real_tokens as f64 / seconds.max(1e-9),
        padding: out.padding,
        seconds,
        output_sha256: None,
    };
    if let Some(s) = shard {
        crate::shard::write_shard_file(
            &args.output,
            s.info(n_all),
            serde_json::to_value(&manifest)?,
            &ids,
            &out.data,
            out.dim,
            serde_json::json!({}),
        )?;
        return Ok(manifest);
    }
    let manifest = EmbedManifest {
        output_sha256: Some(sha256_file(&args.output)?),
        ..manifest
    };
    write_json(&out_manifest, &manifest)?;
    Ok(manifest)
}

#[derive(Debug, Serialize)]
pub struct ModelRow {
    pub name: String,
    pub hub_id: String,
    pub revision: String,
    pub pooling: String,
    pub max_length: Option<usize>,
    pub local: Option<String>,
    pub description: String,
}

pub fn list_models() -> Result<Vec<ModelRow>> {
    Ok(card::builtin_cards()?
        .into_iter()
        .map(|c| ModelRow {
            local: resolve::local_copy(&c).map(|p| p.display().to_string()),
            name: c.name,
            hub_id: c.hub_id,
            revision: c.revision,
            pooling: c
                .pooling
                .map(|p| p.to_string())
                .unwrap_or_else(|| "mean".into()),
            max_length: c.max_length,
            description: c.description,
        })
        .collect())
}

/// `celltext convert DIR`: write `model.safetensors` (canonical BERT names) beside a `.bin`.
pub fn convert(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("model.safetensors");
    if out.exists() {
        bail!("{}: already exists; nothing to convert", out.display());
    }
    let _lock = crate::outputs::OutputLock::acquire(&out)?;
    let wf = encoder::weights::WeightFiles::open(dir)?;
    let tensors = wf.all_canonical()?;
    if tensors.is_empty() {
        bail!("{}: no BERT tensors found", dir.display());
    }
    let mut map: Vec<(String, candle_core::Tensor)> = tensors
        .into_iter()
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    map.sort_by(|a, b| a.0.cmp(&b.0));
    crate::io::write_safetensors(&out, &map, None)?;
    Ok(out)
}
