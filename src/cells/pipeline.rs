//! The cell pipelines behind `celltext cells embed | sentences | embed-sentences` and the Python
//! `celltext.tl`: GenePT-w (streamed chunk by chunk), cell sentences, sentence embeddings, and
//! their outputs (h5ad copy, npy, safetensors, or a shard).
//!
//! Over 700 lines on purpose: the three commands share the reading, the sentence builder and the
//! output steps, and each reads top to bottom here as the CLI and Python run it.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::cells::ablation::{self, Ablation};
use crate::cells::matrix::{CsrMatrix, ExpressionMatrix, ObsColumn};
use crate::cells::normalize::log1p_cp10k;
use crate::cells::read::{append_rows, open_matrix, ReadOptions};
use crate::cells::sentences::{
    build_sentences_from, token_budget, write_jsonl, CellSentence, SentenceConfig, Ties,
    TokenBudget, TokenCounter,
};
use crate::cells::source::{empty_rows, for_each_chunk};
use crate::cells::weighted::{
    embed_cells, embed_cells_scaled, idf_factors, Aggregation, CellEmbeddings, TopN, Weights,
};
use crate::encoder::job::{partial_dir_for, ResumableJob};
use crate::encoder::{EncoderOptions, ModelIdentity, TextTokenizer};
use crate::genes::pipeline::expression_sums;
use crate::genes::resolver::Coverage;
use crate::genes::{GeneEmbeddings, Species};
use crate::io::{sha256_file, TOOL_VERSION};
use crate::shard::{ExactSum, Shard};
use serde_json::json;

use crate::cells::output::is_h5ad;
pub use crate::cells::output::{check_output_name, CellOutput, CellVectors, Placement};

/// Adapter: the encoder's tokenizer counts tokens for sentence budgets and in-context ablations.
pub struct EncoderTokenCounter<'a>(pub &'a TextTokenizer);

impl TokenCounter for EncoderTokenCounter<'_> {
    fn count(&self, text: &str) -> usize {
        self.0.count_untruncated(text).unwrap_or(usize::MAX)
    }
    fn max_len(&self) -> usize {
        self.0.max_length
    }
}

/// `--normalize raw|log1p`: the matrix as read, or counts per 10k then log1p (as scanpy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputNorm {
    Raw,
    Log1p,
}

crate::choices!(InputNorm { Raw = "raw", Log1p = "log1p" });

/// `--aggregation weighted|genept|scelmo-wa`: which [`Aggregation`] `cells embed` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregationChoice {
    /// Top-N weighted mean ([`Aggregation::WeightedMean`], with `--weights` and `--top-n`).
    Weighted,
    /// `X·E / n_genes` ([`Aggregation::GenePtMean`]).
    Genept,
    /// Row-normalized `X·E` ([`Aggregation::ScElmoWa`]).
    ScelmoWa,
}

crate::choices!(AggregationChoice { Weighted = "weighted", Genept = "genept", ScelmoWa = "scelmo-wa" });

impl AggregationChoice {
    /// The aggregation; `weights` and `top_n` only apply to [`AggregationChoice::Weighted`].
    pub fn aggregation(self, weights: Weights, top_n: TopN) -> Aggregation {
        match self {
            Self::Weighted => Aggregation::WeightedMean { weights, top_n },
            Self::Genept => Aggregation::GenePtMean,
            Self::ScelmoWa => Aggregation::ScElmoWa,
        }
    }
}

/// Read all cells chunk by chunk, applying a per-cell normalization chunk-wise (memory ~ one chunk
/// plus the growing result).
pub fn read_normalized(
    input: &Path,
    opts: &ReadOptions,
    norm: InputNorm,
    quiet: bool,
) -> Result<ExpressionMatrix> {
    Ok(read_normalized_rows(input, opts, norm, quiet, None)?.0)
}

/// [`read_normalized`] of only the rows of `shard` (obs left empty), read straight from the
/// input's row ranges, plus the input's number of rows.
pub fn read_normalized_rows(
    input: &Path,
    opts: &ReadOptions,
    norm: InputNorm,
    quiet: bool,
    shard: Option<crate::shard::Shard>,
) -> Result<(ExpressionMatrix, usize)> {
    let mut src = open_matrix(input, opts)?;
    let n_all = src.n_cells();
    if n_all == 0 {
        bail!("{}: the matrix has no cells", input.display());
    }
    let rows = shard.map_or(0..n_all, |s| s.range(n_all));
    let genes = src.genes().to_vec();
    let mut x = empty_rows(genes.len());
    let pb = crate::progress::bar(rows.len() as u64, "cells read", quiet);
    for_each_chunk(src.as_mut(), rows.clone(), opts.chunk_rows, |part| {
        let n = part.n_rows as u64;
        let part = if norm == InputNorm::Log1p {
            log1p_cp10k(&part)?
        } else {
            part
        };
        append_rows(&mut x, &part)?;
        pb.inc(n);
        Ok(())
    })?;
    pb.finish_and_clear();
    if shard.is_none() {
        crate::cells::source::check_not_all_zero(&x, input, &src.field())?;
    }
    let m = ExpressionMatrix {
        x,
        cell_ids: src.cell_ids()[rows.clone()].to_vec(),
        genes,
        obs: if shard.is_some() {
            vec![]
        } else {
            src.obs().to_vec()
        },
    };
    Ok((m, n_all))
}

pub struct CellsEmbedArgs {
    pub input: PathBuf,
    pub read: ReadOptions,
    pub store: PathBuf,
    pub species: Species,
    pub orthologs: bool,
    pub normalize: InputNorm,
    pub aggregation: Aggregation,
    /// `--hvg N`: only the N highly variable genes (scanpy seurat flavour on log1p-CP10k).
    pub hvg: Option<usize>,
    /// `--idf`: multiply the weights by the IDF-like factors of [`idf_factors`].
    pub idf: bool,
    pub output: CellOutput,
    pub quiet: bool,
}

#[derive(Debug, Serialize)]
pub struct CellsEmbedReport {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub layer: Option<String>,
    pub raw: bool,
    pub store: String,
    pub store_manifest: Option<serde_json::Value>,
    pub normalize: InputNorm,
    pub aggregation: String,
    /// Genes restricted to this many highly variable ones (`--hvg`), and how many were kept.
    pub hvg: Option<usize>,
    pub hvg_selected: Option<usize>,
    pub idf: bool,
    pub n_cells: usize,
    pub dim: usize,
    pub gene_coverage: Coverage,
    pub cells_without_mapped_genes: usize,
    pub mean_expression_coverage: f64,
    pub seconds: f64,
    pub written: String,
}

pub fn aggregation_name(a: &Aggregation) -> String {
    match a {
        Aggregation::WeightedMean { weights, top_n } => {
            format!("weighted-mean(top_n={top_n}, weights={weights})")
        }
        Aggregation::GenePtMean => "genept-mean (X·E / n_genes)".into(),
        Aggregation::ScElmoWa => "scelmo-wa (row-normalized X · E)".into(),
    }
}

/// GenePT-w: expression-weighted average of gene vectors over each cell's top-N genes.
pub fn run_cells_embed(args: &CellsEmbedArgs) -> Result<CellsEmbedReport> {
    run_cells_embed_shard(args, None)
}

/// [`run_cells_embed`] of one shard's rows (`--shard I/N`: a .npy and its shard manifest).
pub fn run_cells_embed_shard(
    args: &CellsEmbedArgs,
    shard: Option<crate::shard::Shard>,
) -> Result<CellsEmbedReport> {
    let t0 = std::time::Instant::now();
    crate::shard::check_shard_output(&args.output.path, shard)?;
    // --hvg, --idf and z-score weights use statistics over every cell: a shard cannot compute
    // them alone
    let all_cell_stats = args.hvg.is_some()
        || args.idf
        || matches!(
            args.aggregation,
            Aggregation::WeightedMean {
                weights: crate::cells::weighted::Weights::ZScore,
                ..
            }
        );
    if let (Some(s), true) = (shard, all_cell_stats) {
        bail!(
            "--shard {s} with --hvg, --idf or --weights zscore: they use every cell's expression, \
             so a shard cannot compute them alone; run this one unsharded, or drop them"
        );
    }
    if args.idf && !matches!(args.aggregation, Aggregation::WeightedMean { .. }) {
        bail!("--idf applies to --aggregation weighted only (it scales the top-N weights)");
    }
    let store_files =
        crate::genes::store::store_paths(&crate::genes::store::store_prefix(&args.store));
    let mut inputs: Vec<&Path> = vec![&args.input];
    inputs.extend(store_files.all());
    let _lock = args.output.prepare_apart(&inputs)?;
    let (store, store_manifest) =
        GeneEmbeddings::load_for_species(&args.store, args.species, args.orthologs)?;
    // chunk by chunk (the matrix is never held whole) unless the output needs it: a new h5ad
    // made from a non-h5ad input, or statistics over all cells
    let whole = all_cell_stats || (is_h5ad(&args.output.path) && !is_h5ad(&args.input));
    let EmbeddedCells {
        cells: m,
        n_all,
        mut coverage,
        sums,
        vectors: emb,
        hvg_selected,
    } = if whole && shard.is_none() {
        embed_cells_whole(args, &store)?
    } else {
        embed_cells_streaming(args, &store, shard)?
    };
    // exact sums: the fraction of a sharded run, gathered by `merge`, is the same number
    coverage.expression_fraction = Some(sums.1.fraction_of(sums.0));
    let n_empty = emb.n_empty();
    let mean_cov =
        emb.coverage.iter().map(|&c| c as f64).sum::<f64>() / emb.coverage.len().max(1) as f64;
    let name = &args.output.name;
    let obs = vec![
        (
            format!("celltext_{name}_coverage"),
            ObsColumn::Number(emb.coverage.iter().map(|&c| c as f64).collect()),
        ),
        (
            format!("celltext_{name}_n_genes"),
            ObsColumn::Number(emb.n_used.iter().map(|&c| c as f64).collect()),
        ),
        (
            format!("celltext_{name}_empty"),
            ObsColumn::Number(
                emb.empty
                    .iter()
                    .map(|&e| if e { 1.0 } else { 0.0 })
                    .collect(),
            ),
        ),
    ];
    let mut report = CellsEmbedReport {
        tool: TOOL_VERSION.into(),
        command: "cells embed".into(),
        input: args.input.display().to_string(),
        input_sha256: input_checksum(&args.input)?,
        layer: args.read.layer.clone(),
        raw: args.read.raw,
        store: args.store.display().to_string(),
        store_manifest,
        normalize: args.normalize,
        aggregation: aggregation_name(&args.aggregation),
        hvg: args.hvg,
        hvg_selected,
        idf: args.idf,
        n_cells: emb.n_cells(),
        dim: emb.dim,
        gene_coverage: coverage,
        cells_without_mapped_genes: n_empty,
        mean_expression_coverage: mean_cov,
        seconds: 0.0,
        written: String::new(),
    };
    report.seconds = t0.elapsed().as_secs_f64();
    let manifest = serde_json::to_value(&report)?;
    let vectors = CellVectors {
        cell_ids: &m.cell_ids,
        data: &emb.data,
        dim: emb.dim,
        obs,
    };
    let placement = match shard {
        Some(shard) => Placement::Shard {
            info: shard.info(n_all),
            rows: json!({"expression_sums": sums}),
        },
        None => Placement::Whole {
            input: &args.input,
            cells: &m,
            key: None,
        },
    };
    report.written = args.output.write(vectors, placement, manifest)?;
    Ok(report)
}

/// `--hvg N`: unmap every gene that is not among the N highly variable genes (scanpy's
/// `highly_variable_genes(flavor="seurat")` on log1p-CP10k: `normalize_total` + `log1p` of the
/// matrix as read, or the matrix itself under `--normalize log1p`). Returns how many were kept.
fn restrict_to_hvg(
    x: &CsrMatrix,
    norm: InputNorm,
    n: usize,
    rows: &mut [Option<usize>],
) -> Result<usize> {
    if n == 0 {
        bail!("--hvg must be at least 1 (the number of highly variable genes to keep)");
    }
    let hv = match norm {
        InputNorm::Raw => {
            let lx = crate::cells::standard_pca::normalize_total_log1p(x, 1e4)?;
            crate::cells::hvg::highly_variable_seurat(&lx, n)?
        }
        InputNorm::Log1p => crate::cells::hvg::highly_variable_seurat(x, n)?,
    };
    for (r, &keep) in rows.iter_mut().zip(&hv.highly_variable) {
        if !keep {
            *r = None;
        }
    }
    Ok(hv.highly_variable.iter().filter(|&&k| k).count())
}

/// Genes that appear among some cell's `n` most expressed genes (ties by column order): the
/// only genes a top-N weighted average can use, so the only summaries worth embedding.
pub fn top_n_gene_set(m: &ExpressionMatrix, n: usize) -> std::collections::HashSet<String> {
    let mut used = std::collections::HashSet::new();
    for i in 0..m.x.n_rows {
        let mut row: Vec<(f32, usize)> =
            m.x.row(i)
                .filter(|(_, v)| *v > 0.0)
                .map(|(j, v)| (v, j))
                .collect();
        row.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, j) in row.into_iter().take(n) {
            used.insert(m.genes[j].clone());
        }
    }
    used
}

/// sha256 of a file, or of a directory's files in name order (10x / MTX inputs).
pub fn input_checksum(p: &Path) -> Result<String> {
    if p.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.path())
            .collect();
        names.sort();
        let mut lines = String::new();
        for f in names {
            lines.push_str(&format!(
                "{} {}\n",
                f.file_name().unwrap_or_default().to_string_lossy(),
                sha256_file(&f)?
            ));
        }
        Ok(crate::io::sha256_bytes(lines.as_bytes()))
    } else {
        sha256_file(p)
    }
}

pub struct SentenceArgs {
    pub input: PathBuf,
    pub read: ReadOptions,
    pub max_genes: Option<usize>,
    pub ties_stable: bool,
    pub seed: u64,
    pub template: String,
    pub ablation: Ablation,
}

/// Sentences (with the ablation applied) plus the token budget when a tokenizer is given.
pub fn make_sentences(
    args: &SentenceArgs,
    tokenizer: Option<&TextTokenizer>,
    quiet: bool,
) -> Result<(ExpressionMatrix, Vec<CellSentence>, Option<TokenBudget>)> {
    let m = read_normalized(&args.input, &args.read, InputNorm::Raw, quiet)?;
    let (sentences, budget) = sentences_of(&m, args, tokenizer)?;
    Ok((m, sentences, budget))
}

/// [`sentences_of`] for a matrix holding the dataset's rows from `first_cell` on (a shard).
pub fn sentences_of_from(
    m: &ExpressionMatrix,
    args: &SentenceArgs,
    tokenizer: Option<&TextTokenizer>,
    first_cell: u64,
) -> Result<(Vec<CellSentence>, Option<TokenBudget>)> {
    sentences_impl(m, args, tokenizer, first_cell)
}

/// [`make_sentences`] on a matrix already in memory (`args.input` and `args.read` unused).
pub fn sentences_of(
    m: &ExpressionMatrix,
    args: &SentenceArgs,
    tokenizer: Option<&TextTokenizer>,
) -> Result<(Vec<CellSentence>, Option<TokenBudget>)> {
    sentences_impl(m, args, tokenizer, 0)
}

fn sentences_impl(
    m: &ExpressionMatrix,
    args: &SentenceArgs,
    tokenizer: Option<&TextTokenizer>,
    first_cell: u64,
) -> Result<(Vec<CellSentence>, Option<TokenBudget>)> {
    let cfg = SentenceConfig {
        prefix: args.template.clone(),
        max_genes: args.max_genes,
        ties: if args.ties_stable {
            Ties::Stable
        } else {
            Ties::Shuffle { seed: args.seed }
        },
    };
    let sentences = build_sentences_from(&m.x, &m.cell_ids, &m.genes, &cfg, first_cell)?;
    let counter = tokenizer.map(EncoderTokenCounter);
    let counter_dyn: Option<&dyn TokenCounter> = counter.as_ref().map(|c| c as &dyn TokenCounter);
    if args.ablation.needs_counter() && counter_dyn.is_none() {
        bail!(
            "--ablation {} needs --model (it uses the model's context length)",
            args.ablation
        );
    }
    let budget = match counter_dyn {
        Some(c) => Some(token_budget(&sentences, c)?),
        None => None,
    };
    let sentences = if args.ablation == Ablation::None {
        sentences
    } else {
        ablation::apply_all_from(
            &sentences,
            &args.ablation,
            args.seed,
            counter_dyn,
            first_cell,
        )?
    };
    Ok((sentences, budget))
}

pub fn write_sentences(path: &Path, sentences: &[CellSentence]) -> Result<()> {
    crate::cells::require_output_dir(path)?;
    let _lock = crate::outputs::OutputLock::acquire(path)?;
    write_jsonl(path, sentences)
}

pub struct EmbedSentencesArgs {
    pub sentences: SentenceArgs,
    pub model: String,
    pub options: EncoderOptions,
    pub batch_tokens: usize,
    pub chunk_texts: usize,
    pub output: CellOutput,
    pub quiet: bool,
    pub stop_after_chunks: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct EmbedSentencesReport {
    pub tool: String,
    pub command: String,
    pub input: String,
    pub input_sha256: String,
    pub model: ModelIdentity,
    pub ablation: String,
    pub seed: u64,
    pub template: String,
    pub max_genes: Option<usize>,
    pub n_cells: usize,
    pub dim: usize,
    pub n_truncated: usize,
    pub genes_in_context_mean: Option<f64>,
    pub genes_in_context_median: Option<f64>,
    pub genes_in_context_min: Option<usize>,
    pub padding_fraction: f64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub chunks_resumed: usize,
    pub written: String,
}

/// Cell sentences through the encoder (batched, resumable) into obsm.
pub fn run_embed_sentences(args: &EmbedSentencesArgs) -> Result<EmbedSentencesReport> {
    run_embed_sentences_shard(args, None)
}

/// [`run_embed_sentences`] of one shard's rows (`--shard I/N`: a .npy and its shard manifest).
pub fn run_embed_sentences_shard(
    args: &EmbedSentencesArgs,
    shard: Option<crate::shard::Shard>,
) -> Result<EmbedSentencesReport> {
    crate::shard::check_shard_output(&args.output.path, shard)?;
    let model_dir = Path::new(&args.model);
    let mut inputs: Vec<&Path> = vec![&args.sentences.input];
    inputs.extend(Some(model_dir).filter(|p| p.exists()));
    let _lock = args.output.prepare_apart(&inputs)?;
    let enc = crate::encoder::load_encoder(&args.model, &args.options, args.quiet)?;
    let sa = &args.sentences;
    let (m, n_all) = read_normalized_rows(&sa.input, &sa.read, InputNorm::Raw, args.quiet, shard)?;
    let first_cell = shard.map_or(0, |s| s.range(n_all).start) as u64;
    let (sentences, budget) = sentences_of_from(&m, sa, Some(&enc.tokenizer), first_cell)?;
    let texts: Vec<String> = sentences.iter().map(|s| s.text.clone()).collect();
    let input_sha256 = input_checksum(&args.sentences.input)?;
    let partial_dir = partial_dir_for(&args.output.path);
    let texts_sha = {
        let mut all = String::new();
        for t in &texts {
            all.push_str(t);
            all.push('\n');
        }
        crate::io::sha256_bytes(all.as_bytes())
    };
    let fingerprint = serde_json::json!({"tool": TOOL_VERSION, "model": enc.identity, "texts_sha256": texts_sha,
        "batch_tokens": args.batch_tokens, "chunk_texts": args.chunk_texts});
    let job = ResumableJob {
        partial_dir,
        fingerprint,
        texts: &texts,
        batch_tokens: args.batch_tokens,
        chunk_texts: args.chunk_texts,
        quiet: args.quiet,
        unit: "cells",
        stop_after_chunks: args.stop_after_chunks,
    };
    let (emb, rep) = job.run(&enc)?;
    let mut report = EmbedSentencesReport {
        tool: TOOL_VERSION.into(),
        command: "cells embed-sentences".into(),
        input: args.sentences.input.display().to_string(),
        input_sha256,
        model: enc.identity.clone(),
        ablation: args.sentences.ablation.to_string(),
        seed: args.sentences.seed,
        template: args.sentences.template.clone(),
        max_genes: args.sentences.max_genes,
        n_cells: texts.len(),
        dim: emb.dim,
        n_truncated: emb.n_truncated,
        genes_in_context_mean: budget.as_ref().map(|b| b.summary.mean),
        genes_in_context_median: budget.as_ref().map(|b| b.summary.median),
        genes_in_context_min: budget.as_ref().map(|b| b.summary.min),
        padding_fraction: rep.padding.padding_fraction(),
        seconds: rep.seconds,
        tokens_per_second: rep.tokens_per_second,
        chunks_resumed: rep.chunks_resumed,
        written: String::new(),
    };
    let manifest = serde_json::to_value(&report)?;
    let vectors = CellVectors {
        cell_ids: &m.cell_ids,
        data: &emb.data,
        dim: emb.dim,
        obs: vec![],
    };
    let placement = match shard {
        Some(shard) => Placement::Shard {
            info: shard.info(n_all),
            rows: json!({
                "in_context": budget.as_ref().map(|b| &b.in_context),
                "padding": emb.padding,
            }),
        },
        None => Placement::Whole {
            input: &args.sentences.input,
            cells: &m,
            key: None,
        },
    };
    report.written = args.output.write(vectors, placement, manifest)?;
    job.cleanup()?;
    Ok(report)
}

/// What `cells embed` computed before writing: the cells (without X when streamed), the
/// input's row count, gene coverage (its expression fraction still unset), the exact expression
/// sums (total, mapped), the vectors, and how many genes `--hvg` kept.
pub struct EmbeddedCells {
    pub cells: ExpressionMatrix,
    pub n_all: usize,
    pub coverage: Coverage,
    pub sums: (ExactSum, ExactSum),
    pub vectors: CellEmbeddings,
    pub hvg_selected: Option<usize>,
}

/// `cells embed` over the whole matrix read at once: for statistics over all cells (`--hvg`,
/// `--idf`) or a new .h5ad output built from a non-h5ad input.
fn embed_cells_whole(args: &CellsEmbedArgs, store: &GeneEmbeddings) -> Result<EmbeddedCells> {
    let (m, n_all) =
        read_normalized_rows(&args.input, &args.read, args.normalize, args.quiet, None)?;
    let (mut rows, coverage) = crate::genes::pipeline::coverage(
        &store.symbols,
        &m.genes,
        args.species,
        args.orthologs,
        None,
    )?;
    let sums = expression_sums(&m.x.indices, &m.x.data, &rows);
    let hvg_selected = match args.hvg {
        Some(n) => Some(
            restrict_to_hvg(&m.x, args.normalize, n, &mut rows)
                .with_context(|| format!("{}: --hvg {n}", args.input.display()))?,
        ),
        None => None,
    };
    let idf = args.idf.then(|| idf_factors(&m.x.view()));
    let emb: CellEmbeddings =
        embed_cells_scaled(&m.x.view(), &rows, store, &args.aggregation, idf.as_deref())
            .with_context(|| format!("embedding cells of {}", args.input.display()))?;
    Ok(EmbeddedCells {
        cells: m,
        n_all,
        coverage,
        sums,
        vectors: emb,
        hvg_selected,
    })
}

/// `cells embed` read and embedded chunk by chunk (memory: one chunk of the matrix plus the
/// vectors), over all rows or one shard's.
pub fn embed_cells_streaming(
    args: &CellsEmbedArgs,
    store: &GeneEmbeddings,
    shard: Option<Shard>,
) -> Result<EmbeddedCells> {
    // (statistics over all cells — --hvg, --idf, zscore — are refused with --shard by the caller)
    let mut src = crate::cells::read::open_matrix(&args.input, &args.read)?;
    let n_all = src.n_cells();
    if n_all == 0 {
        bail!("{}: the matrix has no cells", args.input.display());
    }
    let range = shard.map_or(0..n_all, |s| s.range(n_all));
    let genes = src.genes().to_vec();
    let (rows, coverage) = crate::genes::pipeline::coverage(
        &store.symbols,
        &genes,
        args.species,
        args.orthologs,
        None,
    )?;
    let mut emb = CellEmbeddings {
        dim: store.dim,
        data: Vec::with_capacity(range.len() * store.dim),
        coverage: vec![],
        n_mapped: vec![],
        n_unmapped: vec![],
        n_used: vec![],
        empty: vec![],
    };
    let mut sums = (ExactSum::default(), ExactSum::default());
    let pb = crate::progress::bar(range.len() as u64, "cells", args.quiet);
    for_each_chunk(src.as_mut(), range.clone(), args.read.chunk_rows, |part| {
        let part = if args.normalize == InputNorm::Log1p {
            crate::cells::normalize::log1p_cp10k(&part)?
        } else {
            part
        };
        let (t, m) = expression_sums(&part.indices, &part.data, &rows);
        sums.0.merge(t);
        sums.1.merge(m);
        let e = embed_cells(&part, &rows, store, &args.aggregation)
            .with_context(|| format!("embedding cells of {}", args.input.display()))?;
        emb.data.extend(e.data);
        emb.coverage.extend(e.coverage);
        emb.n_mapped.extend(e.n_mapped);
        emb.n_unmapped.extend(e.n_unmapped);
        emb.n_used.extend(e.n_used);
        emb.empty.extend(e.empty);
        pb.inc(part.n_rows as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    let m = ExpressionMatrix {
        x: CsrMatrix {
            n_rows: 0,
            n_cols: genes.len(),
            indptr: vec![0],
            indices: vec![],
            data: vec![],
        },
        cell_ids: src.cell_ids()[range].to_vec(),
        genes,
        obs: vec![],
    };
    Ok(EmbeddedCells {
        cells: m,
        n_all,
        coverage,
        sums,
        vectors: emb,
        hvg_selected: None,
    })
}
