//! The gene pipelines behind `celltext genes embed | coverage | export | import` and the Python
//! `celltext.genes`: plain functions over option structs.

use crate::choice::Choice;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::encoder::job::{partial_dir_for, ResumableJob};
use crate::encoder::{EncoderOptions, ModelIdentity};
use crate::genes::corpus::GeneText;
use crate::genes::resolver::{map_genes, Coverage};
use crate::genes::store::{store_paths, store_prefix};
use crate::genes::{GeneEmbeddings, GeneResolver, Species, SummaryCorpus};
use crate::io::{sha256_bytes, TOOL_VERSION};
use crate::shard::ExactSum;

/// `--missing skip|zero|fallback-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// Leave dataset genes without a summary out of the store (reported).
    Skip,
    /// Give them a zero vector (they then count as mapped but contribute nothing).
    Zero,
    /// Embed "SYMBOL: full gene name" from the bundled gene-info tables.
    FallbackName,
}

crate::choices!(MissingPolicy { Skip = "skip", Zero = "zero", FallbackName = "fallback-name" });

pub struct GenesEmbedArgs {
    pub model: String,
    pub options: EncoderOptions,
    pub species: Species,
    pub summaries: Option<PathBuf>,
    pub out: PathBuf,
    /// Dataset genes the store must serve (for the missing-summary policy).
    pub dataset_genes: Option<Vec<String>>,
    pub missing: MissingPolicy,
    pub batch_tokens: usize,
    pub quiet: bool,
    /// Testing hook for resumability (see `ResumableJob::stop_after_chunks`).
    pub stop_after_chunks: Option<usize>,
    pub chunk_texts: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenesManifest {
    pub tool: String,
    pub command: String,
    pub model: ModelIdentity,
    pub species: Species,
    pub text_source: String,
    pub text_sha256: String,
    pub n_genes: usize,
    pub dim: usize,
    pub n_truncated: usize,
    pub batch_tokens: usize,
    pub padding_fraction: f64,
    pub missing_policy: MissingPolicy,
    pub n_dataset_genes: Option<usize>,
    pub dataset_genes_without_summary: Vec<String>,
    pub n_fallback_name: usize,
    pub zero_vector_genes: Vec<String>,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub chunks_resumed: usize,
}

/// Texts to embed: the corpus plus, per policy, dataset genes it lacks.
fn plan_texts(
    corpus: &SummaryCorpus,
    species: Species,
    dataset_genes: Option<&[String]>,
    policy: MissingPolicy,
) -> Result<(Vec<GeneText>, Vec<String>, Vec<String>)> {
    let mut genes = corpus.genes.clone();
    let mut missing = vec![];
    let mut zero = vec![];
    if let Some(ds) = dataset_genes {
        let symbols: Vec<String> = corpus.genes.iter().map(|g| g.symbol.clone()).collect();
        let resolver = GeneResolver::new(&symbols, species, false)?;
        let mut seen = std::collections::HashSet::new();
        for g in ds {
            if resolver.resolve(g).is_some() || !seen.insert(g.clone()) {
                continue;
            }
            match policy {
                MissingPolicy::Skip => missing.push(g.clone()),
                MissingPolicy::Zero => zero.push(g.clone()),
                MissingPolicy::FallbackName => {
                    let official = resolver.official_symbol(g).unwrap_or_else(|| g.clone());
                    match resolver.full_name(&official) {
                        Some(name) => genes.push(GeneText {
                            symbol: g.clone(),
                            text: format!("{official}: {name}"),
                            source: "fallback-name".into(),
                        }),
                        None => missing.push(g.clone()),
                    }
                }
            }
        }
    }
    Ok((genes, missing, zero))
}

pub fn run_genes_embed(args: &GenesEmbedArgs) -> Result<GenesManifest> {
    run_genes_embed_cancellable(args, None)
}

/// [`run_genes_embed`] of one shard's store rows (`--shard I/N`: `--out` names a .npy).
pub fn run_genes_embed_shard(
    args: &GenesEmbedArgs,
    shard: crate::shard::Shard,
) -> Result<GenesManifest> {
    genes_embed_impl(args, None, Some(shard))
}

/// [`run_genes_embed`] that stops when `check` fails, called between batches (see
/// [`ResumableJob::run_cancellable`]): the finished chunks stay in `OUT.partial/` to resume from.
pub fn run_genes_embed_cancellable(
    args: &GenesEmbedArgs,
    check: Option<&dyn Fn() -> Result<()>>,
) -> Result<GenesManifest> {
    genes_embed_impl(args, check, None)
}

/// The output contract: the store (or the shard and its manifest) apart from the summaries and a
/// local model folder.
fn check_apart(
    args: &GenesEmbedArgs,
    prefix: &Path,
    shard: Option<crate::shard::Shard>,
) -> Result<()> {
    let store = crate::genes::store::store_paths(prefix);
    let shard_manifest = crate::io::manifest_path(prefix);
    let outs: Vec<&Path> = match shard {
        Some(_) => vec![prefix, &shard_manifest],
        None => store.all().to_vec(),
    };
    let mut inputs: Vec<&Path> = args.summaries.iter().map(|p| p.as_path()).collect();
    inputs.extend(Some(Path::new(&args.model)).filter(|p| p.exists()));
    crate::outputs::check_apart(&outs, &inputs)
}

/// sha256 of the embedded texts as `SYMBOL<TAB>TEXT` lines (the manifest's `text_sha256`).
fn texts_sha256(genes: &[GeneText]) -> String {
    let mut all = String::new();
    for g in genes {
        all.push_str(&g.symbol);
        all.push('\t');
        all.push_str(&g.text);
        all.push('\n');
    }
    sha256_bytes(all.as_bytes())
}

fn genes_embed_impl(
    args: &GenesEmbedArgs,
    check: Option<&dyn Fn() -> Result<()>>,
    shard: Option<crate::shard::Shard>,
) -> Result<GenesManifest> {
    crate::shard::check_shard_output(&args.out, shard)?;
    let prefix = match shard {
        Some(_) => args.out.clone(),
        None => store_prefix(&args.out),
    };
    check_apart(args, &prefix, shard)?;
    let _lock = crate::outputs::OutputLock::acquire(&prefix)?;
    let corpus = match &args.summaries {
        Some(p) => SummaryCorpus::from_file(p)?,
        None => SummaryCorpus::bundled(args.species)?,
    };
    let (genes, missing, zero) = plan_texts(
        &corpus,
        args.species,
        args.dataset_genes.as_deref(),
        args.missing,
    )?;
    // store rows: the texts, then the zero-vector genes; a shard takes its range of those rows
    let n_all = genes.len() + zero.len();
    let rows = shard.map_or(0..n_all, |s| s.range(n_all));
    let text_rows = rows.start.min(genes.len())..rows.end.min(genes.len());
    let texts: Vec<String> = genes[text_rows.clone()]
        .iter()
        .map(|g| g.text.clone())
        .collect();
    let text_sha256 = texts_sha256(&genes);
    let enc = crate::encoder::load_encoder(&args.model, &args.options, args.quiet)?;
    let partial_dir = partial_dir_for(&prefix);
    let mut fingerprint = serde_json::json!({
        "tool": TOOL_VERSION,
        "model": enc.identity,
        "text_sha256": text_sha256,
        "batch_tokens": args.batch_tokens,
        "chunk_texts": args.chunk_texts,
    });
    if shard.is_some() {
        fingerprint["rows"] = serde_json::json!([rows.start, rows.end]);
    }
    let job = ResumableJob {
        partial_dir,
        fingerprint,
        texts: &texts,
        batch_tokens: args.batch_tokens,
        chunk_texts: args.chunk_texts,
        quiet: args.quiet,
        unit: "genes",
        stop_after_chunks: args.stop_after_chunks,
    };
    let (emb, report) = job.run_cancellable(&enc, check)?;
    let mut symbols: Vec<String> = genes[text_rows].iter().map(|g| g.symbol.clone()).collect();
    let mut data = emb.data;
    let zero_rows =
        rows.start.max(genes.len()) - genes.len()..rows.end.max(genes.len()) - genes.len();
    for z in &zero[zero_rows] {
        symbols.push(z.clone());
        data.extend(std::iter::repeat_n(0f32, emb.dim));
    }
    let store = GeneEmbeddings {
        symbols,
        dim: emb.dim,
        data,
    };
    let manifest = GenesManifest {
        tool: TOOL_VERSION.into(),
        command: "genes embed".into(),
        model: enc.identity.clone(),
        species: args.species,
        text_source: corpus.origin.clone(),
        text_sha256,
        n_genes: store.len(),
        dim: store.dim,
        n_truncated: report.n_truncated,
        batch_tokens: args.batch_tokens,
        padding_fraction: report.padding.padding_fraction(),
        missing_policy: args.missing,
        n_dataset_genes: args.dataset_genes.as_ref().map(|d| d.len()),
        dataset_genes_without_summary: missing,
        n_fallback_name: genes.iter().filter(|g| g.source == "fallback-name").count(),
        zero_vector_genes: zero,
        seconds: report.seconds,
        tokens_per_second: report.tokens_per_second,
        chunks_resumed: report.chunks_resumed,
    };
    if let Some(s) = shard {
        crate::shard::write_shard_file(
            &args.out,
            s.info(n_all),
            serde_json::to_value(&manifest)?,
            &store.symbols,
            &store.data,
            store.dim,
            serde_json::json!({"padding": report.padding}),
        )?;
        job.cleanup()?;
        return Ok(manifest);
    }
    store.save(&prefix, &serde_json::to_value(&manifest)?)?;
    job.cleanup()?;
    Ok(manifest)
}

/// Gene names from a file: one per line, or the first column of a TSV/CSV with a header
/// naming a symbol/gene/ensembl column.
pub fn read_gene_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read gene list", path.display()))?;
    let mut lines = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .with_context(|| format!("{}: empty gene list", path.display()))?;
    let delim = if first.contains('\t') {
        '\t'
    } else if first.contains(',') {
        ','
    } else {
        '\0'
    };
    let cols: Vec<String> = if delim == '\0' {
        vec![first.to_string()]
    } else {
        first.split(delim).map(|s| s.trim().to_string()).collect()
    };
    let header_col = cols.iter().position(|c| {
        matches!(
            c.to_ascii_lowercase().as_str(),
            "symbol"
                | "gene"
                | "genes"
                | "gene_symbol"
                | "gene_name"
                | "feature_name"
                | "ensembl_id"
                | "gene_id"
        )
    });
    let pick = |l: &str, col: usize| -> String {
        if delim == '\0' {
            l.trim().to_string()
        } else {
            l.split(delim).nth(col).unwrap_or("").trim().to_string()
        }
    };
    let mut out = vec![];
    match header_col {
        Some(c) => out.extend(lines.map(|l| pick(l, c))),
        None => {
            out.push(pick(first, 0));
            out.extend(lines.map(|l| pick(l, 0)));
        }
    }
    for (i, g) in out.iter().enumerate() {
        let place = format!("gene {} of the list: ", i + 1);
        crate::genes::store::check_symbol(g, path, &place)?;
    }
    Ok(out)
}

/// Coverage of `names` by a store (per route, unmatched) and, given a matrix's non-zeros over
/// those names (`(column indices, values)`), the fraction of all expression on mapped genes,
/// from exact sums ([`expression_sums`]): the one implementation behind `genes coverage`,
/// `cells embed` and the Python package.
pub fn coverage(
    store_symbols: &[String],
    names: &[String],
    species: Species,
    orthologs: bool,
    expression: Option<(&[u32], &[f32])>,
) -> Result<(Vec<Option<usize>>, Coverage)> {
    let resolver = GeneResolver::new(store_symbols, species, orthologs)?;
    let (rows, mut cov) = map_genes(&resolver, names);
    if let Some((indices, values)) = expression {
        let (total, mapped) = expression_sums(indices, values, &rows);
        cov.expression_fraction = Some(mapped.fraction_of(total));
    }
    Ok((rows, cov))
}

/// (total, mapped) expression of a matrix's non-zeros (`indices[k]` is the column of
/// `values[k]`), as exact fixed-point sums, so any split of the rows adds up to the same totals:
/// mapped columns are those with a store row.
pub fn expression_sums(
    indices: &[u32],
    values: &[f32],
    rows: &[Option<usize>],
) -> (ExactSum, ExactSum) {
    let (mut total, mut mapped) = (ExactSum::default(), ExactSum::default());
    for (&j, &v) in indices.iter().zip(values) {
        total.add(v);
        if rows.get(j as usize).is_some_and(|r| r.is_some()) {
            mapped.add(v);
        }
    }
    (total, mapped)
}

pub fn coverage_table(cov: &Coverage) -> String {
    let mut s = String::new();
    s.push_str(&format!("{:<26} {:>8} {:>8}\n", "route", "genes", "share"));
    let n = cov.n_genes.max(1) as f64;
    for (r, c) in &cov.by_route {
        s.push_str(&format!(
            "{:<26} {:>8} {:>7.1}%\n",
            r.name(),
            c,
            100.0 * *c as f64 / n
        ));
    }
    s.push_str(&format!(
        "{:<26} {:>8} {:>7.1}%\n",
        "unmatched",
        cov.n_unmatched,
        100.0 * cov.n_unmatched as f64 / n
    ));
    s.push_str(&format!("{:<26} {:>8}\n", "total", cov.n_genes));
    if let Some(f) = cov.expression_fraction {
        s.push_str(&format!("expression on mapped genes: {:.1}%\n", 100.0 * f));
    }
    if !cov.unmatched.is_empty() {
        let show: Vec<&str> = cov.unmatched.iter().take(20).map(String::as_str).collect();
        s.push_str(&format!(
            "unmatched (first {} of {}): {}\n",
            show.len(),
            cov.n_unmatched,
            show.join(", ")
        ));
    }
    s
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub output: PathBuf,
    pub format: String,
    pub n_genes: usize,
    pub dim: usize,
    /// With a gene subset: how its names mapped onto the store (routes, unmatched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<Coverage>,
}

/// How `genes export` names the rows of a subset (`--row-names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowNames {
    /// The store's symbol.
    Store,
    /// The given name (gene list or data set) that resolves onto the row best.
    Input,
}

crate::choices!(RowNames { Store = "store", Input = "input" });

/// The genes `genes export` keeps: the store rows these names map onto (e.g. one data set's
/// genes, for a store small enough to ship with that data), resolved as every command resolves
/// them, so the smaller store gives a command on that data set the same genes and vectors.
pub struct ExportSubset {
    pub names: Vec<String>,
    pub species: Species,
    pub orthologs: bool,
    /// The file or folder the names were read from (a gene list, a matrix): never written over.
    pub source: Option<PathBuf>,
    /// `Input`: name each row by the given name that resolves onto it best (exact before case,
    /// alias, Ensembl ID, ortholog; the first among equals) instead of the store's symbol, so tools
    /// that match names exactly (sciLaMA's own code) find every gene under the data's name.
    pub row_names: RowNames,
}

/// `genes export`: npy (rows in store order; genes in STORE.genes.tsv), TSV (symbol + values) or
/// sciLaMA-style parquet (`gene_id`, `embedding` list<float32>; the manifest in its metadata),
/// of the whole store or of the rows a [`ExportSubset`] maps onto (in store order).
pub fn export(
    store: &Path,
    format: &str,
    out: &Path,
    subset: Option<&ExportSubset>,
) -> Result<ExportReport> {
    let files = crate::genes::store::store_paths(&store_prefix(store));
    let mut inputs = files.all().to_vec();
    inputs.extend(subset.and_then(|s| s.source.as_deref()));
    crate::outputs::check_apart(&[out], &inputs)?;
    let mut g = GeneEmbeddings::load(store)?;
    let mut manifest = GeneEmbeddings::manifest(store)?;
    let mut cov = None;
    if let Some(sub) = subset {
        if format == "npy" {
            bail!(
                "{}: a .npy holds no gene names, so a subset's rows could not be told apart; \
                 export a subset as tsv or parquet (`--format tsv|parquet`)",
                out.display()
            );
        }
        GeneEmbeddings::check_species(store, manifest.as_ref(), sub.species, sub.orthologs)?;
        let (rows, c) = coverage(&g.symbols, &sub.names, sub.species, sub.orthologs, None)?;
        let mut keep: Vec<usize> = rows.into_iter().flatten().collect();
        keep.sort_unstable();
        keep.dedup();
        let names: Vec<String> = if sub.row_names == RowNames::Input {
            let resolver = GeneResolver::new(&g.symbols, sub.species, sub.orthologs)?;
            let best = crate::genes::resolver::best_name_per_target(&resolver, g.len(), &sub.names);
            keep.iter()
                .map(|&k| {
                    best[k]
                        .map_or_else(|| g.symbols[k].clone(), |j| sub.names[j].trim().to_string())
                })
                .collect()
        } else {
            keep.iter().map(|&i| g.symbols[i].clone()).collect()
        };
        if keep.is_empty() {
            bail!(
                "{}: none of the {} genes asked for maps onto this store; check --species (and \
                 --orthologs for another species' names) and that the names are gene symbols or \
                 Ensembl IDs",
                store.display(),
                c.n_genes
            );
        }
        g = GeneEmbeddings {
            symbols: names,
            dim: g.dim,
            data: keep.iter().flat_map(|&i| g.row(i).to_vec()).collect(),
        };
        if let Some(serde_json::Value::Object(m)) = manifest.as_mut() {
            m.insert(
                "exported_subset".into(),
                serde_json::json!({
                    "requested_genes": c.n_genes,
                    "store_rows": g.len(),
                    "row_names": sub.row_names.name(),
                }),
            );
        }
        cov = Some(c);
    }
    let _lock = crate::outputs::OutputLock::acquire(out)?;
    let report = ExportReport {
        output: out.to_path_buf(),
        format: format.to_string(),
        n_genes: g.len(),
        dim: g.dim,
        subset: cov,
    };
    match format {
        "npy" => crate::io::write_npy_f32(out, &g.data, g.len(), g.dim),
        "parquet" => parquet::write(out, &g, manifest.as_ref()),
        "tsv" => {
            let mut s = String::new();
            for (i, sym) in g.symbols.iter().enumerate() {
                // `load` refused these already; a broken row must never be written
                crate::genes::store::check_symbol(sym, out, &format!("row {}: ", i + 1))?;
                s.push_str(sym);
                for v in g.row(i) {
                    s.push('\t');
                    s.push_str(&format!("{v:e}"));
                }
                s.push('\n');
            }
            crate::io::atomic_write(out, s.as_bytes())
        }
        _ => bail!("unknown export format `{format}`; use npy, tsv or parquet"),
    }?;
    Ok(report)
}

/// Parquet import/export, or a clear error in a build without the `parquet` feature.
mod parquet {
    use anyhow::Result;
    use std::path::Path;

    use crate::genes::import::ImportedVectors;
    use crate::genes::GeneEmbeddings;

    #[cfg(feature = "parquet")]
    pub fn read(path: &Path) -> Result<ImportedVectors> {
        crate::genes::parquet::load_parquet_vectors(path)
    }

    #[cfg(feature = "parquet")]
    pub fn write(
        out: &Path,
        g: &GeneEmbeddings,
        manifest: Option<&serde_json::Value>,
    ) -> Result<()> {
        crate::genes::parquet::write_parquet(out, g, manifest)
    }

    #[cfg(not(feature = "parquet"))]
    fn unavailable(path: &Path) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: this build of celltext reads and writes no parquet (built without the `parquet` \
             feature); use the `celltext genes import|export` command",
            path.display()
        )
    }

    #[cfg(not(feature = "parquet"))]
    pub fn read(path: &Path) -> Result<ImportedVectors> {
        Err(unavailable(path))
    }

    #[cfg(not(feature = "parquet"))]
    pub fn write(out: &Path, _: &GeneEmbeddings, _: Option<&serde_json::Value>) -> Result<()> {
        Err(unavailable(out))
    }
}

/// Format of a file given to `genes import` (`--format pickle|parquet`, also `pkl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportFormat {
    Pickle,
    Parquet,
}

crate::choices!(ImportFormat { Pickle = "pickle" | "pkl", Parquet = "parquet" });

impl ImportFormat {
    /// From the extension: .pkl / .pickle, .parquet / .pq.
    pub fn detect(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pkl" | "pickle" => Ok(Self::Pickle),
            "parquet" | "pq" => Ok(Self::Parquet),
            _ => bail!(
                "{}: cannot tell the format from the extension; name it .pkl/.pickle or .parquet, or pass --format pickle|parquet",
                path.display()
            ),
        }
    }
}

/// What `celltext genes import` takes; the doc comments are the flags' `--help` texts.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct GenesImportArgs {
    /// .pkl / .pickle or .parquet file.
    #[cfg_attr(feature = "cli", arg(value_name = "FILE"))]
    pub input: PathBuf,
    /// Store prefix: writes OUT.safetensors, OUT.genes.tsv, OUT.manifest.json.
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: PathBuf,
    /// pickle or parquet (default: from the file extension).
    #[cfg_attr(feature = "cli", arg(long, value_parser = crate::choice::value_enum::<ImportFormat>()))]
    pub format: Option<ImportFormat>,
    /// What made the vectors (e.g. "GenePT ada-002"), recorded in the manifest.
    #[cfg_attr(feature = "cli", arg(long))]
    pub source_name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportSource {
    pub path: String,
    pub sha256: String,
    pub format: ImportFormat,
    /// How the file held the vectors, e.g. `dict of numpy float32 array`.
    pub layout: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenesImportManifest {
    pub tool: String,
    pub command: String,
    /// `{"id": "imported", "encoder": "unknown"}`: celltext did not make these vectors.
    pub model: serde_json::Value,
    pub source: ImportSource,
    pub n_genes: usize,
    pub dim: usize,
    pub dtype: String,
}

/// `genes import`: vectors from another tool → a normal store (every file written atomically,
/// the manifest last).
pub fn run_genes_import(args: &GenesImportArgs) -> Result<GenesImportManifest> {
    let out_files = crate::genes::store::store_paths(&store_prefix(&args.out));
    crate::outputs::check_apart(&out_files.all(), &[&args.input])?;
    let format = match args.format {
        Some(f) => f,
        None => ImportFormat::detect(&args.input)?,
    };
    if !args.input.is_file() {
        bail!("{}: no such file", args.input.display());
    }
    let _lock = crate::outputs::OutputLock::acquire(&store_prefix(&args.out))?;
    let vectors = match format {
        ImportFormat::Pickle => crate::genes::import::load_pickle_vectors(&args.input)?,
        ImportFormat::Parquet => parquet::read(&args.input)?,
    };
    let layout = vectors.layout.clone();
    let store = crate::genes::import::to_store(vectors, &args.input)?;
    let manifest = GenesImportManifest {
        tool: TOOL_VERSION.into(),
        command: "genes import".into(),
        model: serde_json::json!({"id": "imported", "encoder": "unknown"}),
        source: ImportSource {
            path: args.input.display().to_string(),
            sha256: crate::io::sha256_file(&args.input)?,
            format,
            layout,
            name: args.source_name.clone(),
        },
        n_genes: store.len(),
        dim: store.dim,
        dtype: "f32".into(),
    };
    store.save(&store_prefix(&args.out), &serde_json::to_value(&manifest)?)?;
    Ok(manifest)
}

pub fn store_files(prefix: &Path) -> Vec<PathBuf> {
    let p = store_paths(&store_prefix(prefix));
    vec![p.embeddings, p.genes, p.manifest]
}
