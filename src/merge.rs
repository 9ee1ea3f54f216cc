//! `--shard I/N` outputs and `celltext merge`: each shard writes its rows as `.npy` plus a
//! manifest (the command's own manifest over its rows, a `shard` record and the per-row values
//! a merge needs in `shard_rows`); `merge` checks that the shards come from one run and cover
//! every row once, then writes what one unsharded run writes (h5ad, npy, safetensors or store).
//! h5ad and npy outputs are streamed from the shards a block of rows at a time, so merging never
//! holds all vectors in memory; safetensors files and gene stores are assembled in memory.
//!
//! Over 700 lines on purpose: every check a merge makes (one run, an exact cover, each shard's
//! bytes against its manifest) sits beside the merging it guards, per command, in one place.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use crate::cells::matrix::ObsColumn;
use crate::cells::output::{is_h5ad, CellOutput};
use crate::cells::sentences::Summary;
use crate::encoder::PaddingStats;
use crate::genes::store::store_prefix;
use crate::genes::GeneEmbeddings;
use crate::io::{collect_blocks, manifest_path, write_embeddings_blocks, NpyRows};
use crate::shard::{check_cover, ExactSum, ShardInfo};

/// Manifest fields that describe how a run went, not what it computed: they differ between a
/// sharded and an unsharded run (and between two runs) and are left out of comparisons. Among
/// them `output_sha256`, the written file's bytes: an .h5ad written whole and one merged block by
/// block hold the same values in different HDF5 layouts (compare the values themselves).
pub const RUN_FIELDS: [&str; 3] = ["seconds", "tokens_per_second", "output_sha256"];

/// Fields a merge adds up or recomputes from the shards' rows (so they may differ per shard).
const SUMMED: [&str; 14] = [
    "seconds",
    "tokens_per_second",
    "chunks_resumed",
    "written",
    "padding",
    "padding_fraction",
    "n_truncated",
    "n_cells",
    "n_texts",
    "n_genes",
    "cells_without_mapped_genes",
    "mean_expression_coverage",
    "genes_in_context_mean",
    "genes_in_context_median",
];

pub struct MergeArgs {
    pub shards: Vec<PathBuf>,
    pub output: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct MergeReport {
    pub command: String,
    pub shards: Vec<String>,
    pub n_rows: usize,
    pub dim: usize,
    pub output: String,
    pub written: String,
}

struct Part {
    path: PathBuf,
    manifest: Value,
    info: ShardInfo,
}

/// The parameters a shard was run with: its manifest less the shard record and the fields a
/// merge sums (and `gene_coverage.expression_fraction`, which it recomputes).
fn parameters(m: &Value) -> Value {
    let mut p = m.clone();
    if let Some(o) = p.as_object_mut() {
        o.remove("shard");
        for k in SUMMED {
            o.remove(k);
        }
        if let Some(rows) = o.get_mut("shard_rows").and_then(Value::as_object_mut) {
            let name = rows.get("name").cloned();
            o.insert("name".into(), name.unwrap_or(Value::Null));
        }
        o.remove("shard_rows");
        o.remove("genes_in_context_min");
        if let Some(model) = o.get_mut("model").and_then(Value::as_object_mut) {
            model.remove("cpu_kernels");
        }
        if let Some(c) = o.get_mut("gene_coverage").and_then(Value::as_object_mut) {
            c.remove("expression_fraction");
        }
    }
    p
}

/// The flag that sets a manifest field (by its dotted path), where one does.
fn flag_of(path: &str) -> Option<&'static str> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    Some(match (path, leaf) {
        ("model.dir" | "model.id" | "model", _) => "--model",
        (_, "normalize") => "--normalize",
        (_, "pooling") => "--pooling",
        (_, "max_length") => "--max-length",
        (_, "dtype") => "--dtype",
        (_, "backend") => "--device or --backend",
        (_, "batch_tokens") => "--batch-tokens",
        (_, "lowercase") => "--lowercase or --cased",
        ("input", _) => "--input",
        ("input_sha256", _) => "--input (the file's bytes changed between shards)",
        (_, "layer") => "--layer",
        (_, "raw") => "--raw",
        (_, "gene_symbols_key") => "--gene-symbols-key",
        (_, "top_n") => "--top-n",
        (_, "weights") => "--weights",
        (_, "template") => "--template",
        (_, "ablation") => "--ablation",
        (_, "max_genes") => "--max-genes",
        (_, "seed") => "--seed",
        (_, "ties_stable") => "--ties-stable",
        (_, "species") => "--species",
        _ => return None,
    })
}

/// The first field (dotted path, descending into nested objects) whose value differs, with both
/// values and, where a flag sets it, that flag: "`model.normalize` (false vs true), set by
/// --normalize".
fn first_difference(a: &Value, b: &Value) -> String {
    fn walk(a: &Value, b: &Value, path: &str) -> Option<(String, String, String)> {
        let show = |v: Option<&Value>| {
            let s = v.map_or("absent".to_string(), |v| v.to_string());
            if s.chars().count() > 80 {
                format!("{}…", s.chars().take(80).collect::<String>())
            } else {
                s
            }
        };
        let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
            return (a != b).then(|| (path.to_string(), show(Some(a)), show(Some(b))));
        };
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (x.get(k), y.get(k)) {
                (Some(va), Some(vb)) if va != vb => return walk(va, vb, &sub),
                (va, vb) if va != vb => return Some((sub, show(va), show(vb))),
                _ => {}
            }
        }
        None
    }
    match walk(a, b, "") {
        Some((path, va, vb)) => {
            let set_by = flag_of(&path).map_or(String::new(), |f| format!(", set by {f}"));
            format!("`{path}` ({va} vs {vb}){set_by}")
        }
        None if a == b => "nothing".into(),
        None => "the manifest".into(),
    }
}

fn rows_of<'a>(p: &'a Part, key: &str) -> Result<&'a Value> {
    p.manifest
        .get("shard_rows")
        .and_then(|r| r.get(key))
        .ok_or_else(|| {
            anyhow!(
                "{}: shard_rows.{key} missing; rerun this shard with this version",
                manifest_path(&p.path).display()
            )
        })
}

fn num(p: &Part, key: &str) -> f64 {
    p.manifest.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn count(p: &Part, key: &str) -> u64 {
    p.manifest.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn padding(parts: &[&Part], from_rows: bool) -> Result<PaddingStats> {
    let mut s = PaddingStats {
        real_tokens: 0,
        padded_tokens: 0,
    };
    for p in parts {
        let v = if from_rows {
            rows_of(p, "padding")?
        } else {
            p.manifest
                .get("padding")
                .ok_or_else(|| anyhow!("{}: no `padding`", p.path.display()))?
        };
        let one: PaddingStats = serde_json::from_value(v.clone())
            .with_context(|| format!("{}: bad padding record", p.path.display()))?;
        s.real_tokens += one.real_tokens;
        s.padded_tokens += one.padded_tokens;
    }
    Ok(s)
}

/// The manifest one run over all rows writes, from the shards' manifests (in row order).
fn merged_manifest(command: &str, parts: &[&Part]) -> Result<(Value, Vec<(String, ObsColumn)>)> {
    let mut m = parts[0].manifest.clone();
    let o = m
        .as_object_mut()
        .ok_or_else(|| anyhow!("manifest is not an object"))?;
    o.remove("shard");
    o.remove("shard_rows");
    merge_run_fields(o, parts);
    let mut obs = vec![];
    match command {
        "cells embed" => obs = merge_cells_embed(o, parts)?,
        "cells embed-sentences" => {
            merge_in_context(o, parts)?;
            let pad = padding(parts, true)?;
            o.insert("padding_fraction".into(), json!(pad.padding_fraction()));
        }
        "embed" => {
            let pad = padding(parts, false)?;
            o.insert("padding_fraction".into(), json!(pad.padding_fraction()));
            o.insert("padding".into(), serde_json::to_value(&pad)?);
        }
        "genes embed" => {
            let pad = padding(parts, true)?;
            o.insert("padding_fraction".into(), json!(pad.padding_fraction()));
        }
        other => bail!("merge: shards of `{other}` cannot be merged"),
    }
    Ok((m, obs))
}

type Fields = serde_json::Map<String, Value>;

/// What every command's manifest sums over its shards: the kernels that ran, seconds, speed and
/// the counts.
fn merge_run_fields(o: &mut Fields, parts: &[&Part]) {
    // shards may come from CPUs on different SIMD paths: say each one that ran
    let mut kernels: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.manifest.pointer("/model/cpu_kernels")?.as_str())
        .collect();
    kernels.sort_unstable();
    kernels.dedup();
    if let Some(model) = o.get_mut("model").and_then(Value::as_object_mut) {
        if !kernels.is_empty() {
            model.insert("cpu_kernels".into(), json!(kernels.join("+")));
        }
    }
    let seconds: f64 = parts.iter().map(|p| num(p, "seconds")).sum();
    o.insert("seconds".into(), json!(seconds));
    if o.contains_key("tokens_per_second") {
        let toks: f64 = parts
            .iter()
            .map(|p| num(p, "tokens_per_second") * num(p, "seconds"))
            .sum();
        o.insert("tokens_per_second".into(), json!(toks / seconds.max(1e-9)));
    }
    for k in [
        "chunks_resumed",
        "n_truncated",
        "n_cells",
        "n_texts",
        "n_genes",
    ] {
        if o.contains_key(k) {
            o.insert(
                k.into(),
                json!(parts.iter().map(|p| count(p, k)).sum::<u64>()),
            );
        }
    }
}

/// `cells embed`: the per-cell obs columns concatenated in row order (returned), their mean
/// coverage, and the expression fraction from the shards' exact sums.
fn merge_cells_embed(o: &mut Fields, parts: &[&Part]) -> Result<Vec<(String, ObsColumn)>> {
    let k = "cells_without_mapped_genes";
    o.insert(
        k.into(),
        json!(parts.iter().map(|p| count(p, k)).sum::<u64>()),
    );
    let mut cols: Vec<(String, Vec<f64>)> = vec![];
    for p in parts {
        let c: Vec<(String, Vec<f64>)> = serde_json::from_value(rows_of(p, "obs")?.clone())
            .with_context(|| format!("{}: bad shard_rows.obs", p.path.display()))?;
        if cols.is_empty() {
            cols = c;
        } else {
            for ((name, v), (name2, more)) in cols.iter_mut().zip(c) {
                if *name != name2 {
                    bail!(
                        "{}: obs column {name2} where {name} was expected",
                        p.path.display()
                    );
                }
                v.extend(more);
            }
        }
    }
    let cov = cols
        .iter()
        .find(|(n, _)| n.ends_with("_coverage"))
        .map(|(_, v)| v.iter().sum::<f64>() / v.len().max(1) as f64)
        .unwrap_or(0.0);
    o.insert("mean_expression_coverage".into(), json!(cov));
    let (mut total, mut mapped) = (ExactSum::default(), ExactSum::default());
    for p in parts {
        let (t, m): (ExactSum, ExactSum) =
            serde_json::from_value(rows_of(p, "expression_sums")?.clone())
                .with_context(|| format!("{}: bad shard_rows.expression_sums", p.path.display()))?;
        total.merge(t);
        mapped.merge(m);
    }
    if let Some(c) = o.get_mut("gene_coverage").and_then(Value::as_object_mut) {
        c.insert(
            "expression_fraction".into(),
            json!(mapped.fraction_of(total)),
        );
    }
    Ok(cols
        .into_iter()
        .map(|(n, v)| (n, ObsColumn::Number(v)))
        .collect())
}

/// `cells embed-sentences`: the genes-in-context summary over every shard's cells (none when
/// any shard ran without a model context).
fn merge_in_context(o: &mut Fields, parts: &[&Part]) -> Result<()> {
    let mut all = vec![];
    let mut any_none = false;
    for p in parts {
        match rows_of(p, "in_context")? {
            Value::Null => any_none = true,
            v => all.extend(
                serde_json::from_value::<Vec<usize>>(v.clone())
                    .with_context(|| format!("{}: bad in_context", p.path.display()))?,
            ),
        }
    }
    let s = if any_none { None } else { Summary::of(&all) };
    o.insert(
        "genes_in_context_mean".into(),
        json!(s.as_ref().map(|s| s.mean)),
    );
    o.insert(
        "genes_in_context_median".into(),
        json!(s.as_ref().map(|s| s.median)),
    );
    o.insert(
        "genes_in_context_min".into(),
        json!(s.as_ref().map(|s| s.min)),
    );
    Ok(())
}

/// `celltext merge SHARDS… -o OUT`.
pub fn run_merge(args: &MergeArgs) -> Result<MergeReport> {
    check_merge_paths(args, None)?;
    let parts = read_parts(&args.shards)?;
    let first = parts
        .first()
        .ok_or_else(|| anyhow!("merge: no shard outputs given"))?;
    let command = first
        .manifest
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    check_one_run(&parts)?;
    let infos: Vec<(PathBuf, ShardInfo)> = parts
        .iter()
        .map(|p| (p.path.clone(), p.info.clone()))
        .collect();
    let order = check_cover(&infos)?;
    let ordered: Vec<&Part> = order.iter().map(|&k| &parts[k]).collect();
    let n_rows = first.info.n_rows;
    check_merge_paths(args, Some(first))?;
    // every shard's vectors against its manifest before any is used
    for p in &ordered {
        verify_shard(p)?;
    }
    let (ids, dim) = gather_ids(&ordered, first)?;
    let (manifest, obs) = merged_manifest(&command, &ordered)?;
    let mut blocks = shard_blocks(&ordered, dim);
    let written = match command.as_str() {
        "cells embed" | "cells embed-sentences" => {
            let name = rows_of(first, "name")?
                .as_str()
                .unwrap_or_default()
                .to_string();
            write_cells(&manifest, &args.output, name, &ids, &mut blocks, dim, obs)?
        }
        "embed" => {
            let _lock = crate::outputs::OutputLock::acquire(&args.output)?;
            write_embeddings_blocks(&args.output, &ids, dim, &mut blocks)?;
            // the manifest, written last, records the output's sha256 (as `embed` does)
            crate::cells::output::commit_manifest(&args.output, &mut manifest.clone())?;
            format!("{} rows", ids.len())
        }
        _ => {
            let prefix = store_prefix(&args.output);
            let _lock = crate::outputs::OutputLock::acquire(&prefix)?;
            let store = GeneEmbeddings {
                symbols: ids,
                dim,
                data: collect_blocks(&mut blocks)?,
            };
            store.save(&prefix, &manifest)?;
            format!("gene store {}", prefix.display())
        }
    };
    Ok(MergeReport {
        command,
        shards: ordered
            .iter()
            .map(|p| p.path.display().to_string())
            .collect(),
        n_rows,
        dim,
        output: args.output.display().to_string(),
        written,
    })
}

/// Each shard output with its manifest and `shard` record.
fn read_parts(shards: &[PathBuf]) -> Result<Vec<Part>> {
    let mut parts = vec![];
    for path in shards {
        let manifest = crate::shard::read_manifest(path)?;
        let info: ShardInfo = match manifest.get("shard") {
            Some(s) => serde_json::from_value(s.clone()).with_context(|| {
                format!("{}: bad `shard` record", manifest_path(path).display())
            })?,
            None => bail!(
                "{}: not a shard output (its manifest has no `shard` record); pass the .npy files \
                 written with --shard I/N",
                path.display()
            ),
        };
        parts.push(Part {
            path: path.clone(),
            manifest,
            info,
        });
    }
    Ok(parts)
}

/// Shards of one run share the command, input, model and parameters.
fn check_one_run(parts: &[Part]) -> Result<()> {
    let first = &parts[0];
    let params0 = parameters(&first.manifest);
    for p in &parts[1..] {
        let params = parameters(&p.manifest);
        if params != params0 {
            bail!(
                "{} and {} come from different runs: they differ in {}; shards of one run share \
                 the command, input, model and parameters: rerun the shards that differ with the \
                 same flags as the others",
                first.path.display(),
                p.path.display(),
                first_difference(&params0, &params)
            );
        }
    }
    Ok(())
}

/// The row ids in row order and the vectors' dimension, from the shards' headers and manifests
/// (the vectors are streamed when written).
fn gather_ids(ordered: &[&Part], first: &Part) -> Result<(Vec<String>, usize)> {
    let mut ids: Vec<String> = vec![];
    let mut dim = None;
    for p in ordered {
        let d = shard_shape(p, dim)?;
        if p.info.end > p.info.start {
            dim = Some(d);
        }
        let want = p.info.end - p.info.start;
        let these: Vec<String> = serde_json::from_value(rows_of(p, "ids")?.clone())
            .with_context(|| format!("{}: bad shard_rows.ids", p.path.display()))?;
        if these.len() != want {
            bail!(
                "{}: {} ids for {want} rows",
                manifest_path(&p.path).display(),
                these.len()
            );
        }
        ids.extend(these);
    }
    let dim = dim
        .or_else(|| {
            first
                .manifest
                .get("dim")
                .and_then(Value::as_u64)
                .map(|d| d as usize)
        })
        .unwrap_or(0);
    Ok((ids, dim))
}

/// The output contract for `merge`: whatever it may write (OUT and OUT.manifest.json, or a
/// store's three files when OUT is a store prefix) may not be, contain or lie inside a shard, a
/// shard's manifest or (once the manifests are read, `first`) the shards' input.
fn check_merge_paths(args: &MergeArgs, first: Option<&Part>) -> Result<()> {
    let store = crate::genes::store::store_paths(&store_prefix(&args.output));
    let out_manifest = manifest_path(&args.output);
    let mut outs: Vec<&Path> = vec![&args.output, &out_manifest];
    outs.extend(store.all());
    let manifests: Vec<PathBuf> = args.shards.iter().map(|p| manifest_path(p)).collect();
    let input = first
        .and_then(|f| f.manifest.get("input"))
        .and_then(Value::as_str)
        .map(PathBuf::from);
    let mut ins: Vec<&Path> = args.shards.iter().map(|p| p.as_path()).collect();
    ins.extend(manifests.iter().map(|p| p.as_path()));
    ins.extend(input.as_deref().filter(|p| p.exists()));
    crate::outputs::check_apart(&outs, &ins)
}

/// A shard's `.npy` checked against the record its manifest holds (`shard.npy`: rows, cols,
/// bytes, sha256) and for finite values, in one pass over the file; errors name the file and
/// the mismatch.
fn verify_shard(p: &Part) -> Result<()> {
    use sha2::Digest;
    use std::io::Read;
    let mp = manifest_path(&p.path);
    let Some(rec) = p.manifest.pointer("/shard/npy") else {
        bail!(
            "{}: records no size and sha256 of {} (`shard.npy`), so its vectors cannot be \
             checked; rerun this shard with this version of celltext",
            mp.display(),
            p.path.display()
        );
    };
    let r = NpyRows::open(&p.path)?;
    let want_rows = p.info.end - p.info.start;
    let (rows, cols) = (
        rec.get("rows").and_then(Value::as_u64),
        rec.get("cols").and_then(Value::as_u64),
    );
    if rows != Some(want_rows as u64) || rows != Some(r.rows as u64) || cols != Some(r.cols as u64)
    {
        bail!(
            "{}: holds {} × {} but its manifest {} records {} × {} for rows {}..{}; the two come \
             from different runs, rerun this shard",
            p.path.display(),
            r.rows,
            r.cols,
            mp.display(),
            rows.map_or("?".into(), |v| v.to_string()),
            cols.map_or("?".into(), |v| v.to_string()),
            p.info.start,
            p.info.end
        );
    }
    let mut f = std::fs::File::open(&p.path)
        .with_context(|| format!("{}: cannot read", p.path.display()))?;
    let size = f
        .metadata()
        .with_context(|| format!("{}: cannot read", p.path.display()))?
        .len();
    let data_start = size - (r.rows * r.cols * 4) as u64;
    let io = |e: std::io::Error| anyhow!("{}: read failed: {e}", p.path.display());
    let mut h = sha2::Sha256::new();
    let mut head = vec![0u8; data_start as usize];
    f.read_exact(&mut head).map_err(io)?;
    h.update(&head);
    let mut buf = vec![0u8; 1 << 20];
    let (mut left, mut idx, mut first_bad) = (size - data_start, 0u64, None);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.read_exact(&mut buf[..n]).map_err(io)?;
        h.update(&buf[..n]);
        if first_bad.is_none() {
            first_bad = buf[..n]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .enumerate()
                .find(|(_, v)| !v.is_finite())
                .map(|(k, v)| (idx + k as u64, v));
        }
        idx += (n / 4) as u64;
        left -= n as u64;
    }
    let got = hex::encode(h.finalize());
    let want = rec.get("sha256").and_then(Value::as_str).unwrap_or("");
    let want_bytes = rec.get("bytes").and_then(Value::as_u64);
    if got != want || want_bytes != Some(size) {
        bail!(
            "{}: does not match its manifest {} (sha256 {got}, {size} bytes; the manifest records \
             {want}, {} bytes): the vectors come from another run or were changed (a rerun killed \
             between its .npy and its manifest, a swapped or replaced file); rerun this shard",
            p.path.display(),
            mp.display(),
            want_bytes.map_or("?".into(), |v| v.to_string())
        );
    }
    if let Some((idx, v)) = first_bad {
        let cols = r.cols.max(1) as u64;
        bail!(
            "{}: row {} (input row {}) holds {v} at column {}: a shard's vectors must be finite; \
             check that shard's input and rerun it",
            p.path.display(),
            idx / cols,
            p.info.start as u64 + idx / cols,
            idx % cols
        );
    }
    Ok(())
}

/// A shard's column count, after checking that its `.npy` holds the rows its manifest names and
/// as many columns as the shards before it (`dim`).
fn shard_shape(p: &Part, dim: Option<usize>) -> Result<usize> {
    let r = NpyRows::open(&p.path)?;
    let want = p.info.end - p.info.start;
    if r.rows != want {
        bail!(
            "{}: holds {} rows but its manifest says rows {}..{} ({want}); rerun this shard",
            p.path.display(),
            r.rows,
            p.info.start,
            p.info.end
        );
    }
    if want > 0 && dim.is_some_and(|d0| d0 != r.cols) {
        bail!(
            "{}: {} columns where other shards have {}",
            p.path.display(),
            r.cols,
            dim.unwrap_or(0)
        );
    }
    Ok(r.cols)
}

/// The shards' vectors in row order, a block of rows (≤ 16 Mi values) at a time; each shard is
/// opened (and its shape checked again) only when its turn comes.
fn shard_blocks<'a>(
    parts: &'a [&'a Part],
    dim: usize,
) -> impl FnMut() -> Result<Option<Vec<f32>>> + 'a {
    let block_rows = ((16 << 20) / dim.max(1)).max(1);
    let mut next = 0usize;
    let mut current: Option<NpyRows> = None;
    move || loop {
        if current.is_none() {
            let Some(p) = parts.get(next) else {
                return Ok(None);
            };
            next += 1;
            if p.info.end == p.info.start {
                continue;
            }
            shard_shape(p, Some(dim))?;
            current = Some(NpyRows::open(&p.path)?);
        }
        match current
            .as_mut()
            .map(|r| r.next_rows(block_rows))
            .transpose()?
        {
            Some(Some(block)) => return Ok(Some(block)),
            _ => current = None,
        }
    }
}

/// A cell command's merged output: an h5ad copy of the input (checked against the shards'
/// input sha256) plus obsm, obs and the manifest, or `.npy`/`.safetensors` rows, written by the
/// one cell-vectors writer ([`CellOutput::write_blocks`]).
fn write_cells(
    manifest: &Value,
    output: &Path,
    name: String,
    ids: &[String],
    blocks: &mut dyn FnMut() -> Result<Option<Vec<f32>>>,
    dim: usize,
    obs: Vec<(String, ObsColumn)>,
) -> Result<String> {
    let out = CellOutput {
        path: output.to_path_buf(),
        in_place: false,
        name,
    };
    let _lock = out.prepare()?;
    let input = PathBuf::from(manifest.get("input").and_then(Value::as_str).unwrap_or(""));
    if is_h5ad(output) {
        check_shards_input(output, &input, manifest)?;
    }
    out.write_blocks(&input, ids, blocks, dim, obs, manifest)
}

/// An .h5ad merge copies the shards' input: it must be an .h5ad with the sha256 they ran on.
fn check_shards_input(output: &Path, input: &Path, manifest: &Value) -> Result<()> {
    if !is_h5ad(input) {
        bail!(
            "{}: an .h5ad merge copies the input, but the shards' input {} is not an .h5ad; \
             merge into .npy or .safetensors",
            output.display(),
            input.display()
        );
    }
    let want = manifest
        .get("input_sha256")
        .and_then(Value::as_str)
        .unwrap_or("");
    let got = crate::cells::pipeline::input_checksum(input).with_context(|| {
        format!(
            "{}: the shards' input, needed for the .h5ad copy (run merge where that path is valid)",
            input.display()
        )
    })?;
    if got != want {
        bail!(
            "{}: its sha256 {got} is not the {want} the shards were run on; merge against the \
             same input file",
            input.display()
        );
    }
    Ok(())
}
