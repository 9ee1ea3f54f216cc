//! celltext CLI: parse arguments, call the library, print.
//!
//! One file on purpose, although it is long: the whole command-line surface (every subcommand's
//! flags and what it prints) reads top to bottom in one place, and nothing here computes
//! anything: each arm calls one library function and formats its result.

use anyhow::Result;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

use celltext::app;
use celltext::choice::value_enum;
use celltext::encoder::{parse_devices, BackendChoice, EncoderOptions, Pooling};
use celltext::genes::pipeline::{MissingPolicy, RowNames};
use celltext::genes::Species;
use celltext::{cells, classify, encoder, experiment, explain};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "celltext",
    version,
    about = "Text encoders as single-cell biology instruments, fully offline"
)]
struct Cli {
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    /// Print results as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model directory (HF layout), card name (minilm, biobert, scibert, ember-v1) or hub id.
    #[arg(long, short = 'm')]
    model: String,
    /// Pooling: cls, mean or max (default: 1_Pooling/config.json, then the card, then mean).
    #[arg(long, ignore_case = true, value_parser = value_enum::<Pooling>())]
    pooling: Option<Pooling>,
    /// L2-normalize the output vectors.
    #[arg(long)]
    normalize: bool,
    /// Truncate inputs at N tokens (default: the model's).
    #[arg(long)]
    max_length: Option<usize>,
    /// Force lowercasing for vocab.txt tokenizers.
    #[arg(long, conflicts_with = "cased")]
    lowercase: bool,
    /// Keep case for vocab.txt tokenizers.
    #[arg(long)]
    cased: bool,
    /// Padded tokens per batch.
    #[arg(long, default_value_t = 8192)]
    batch_tokens: usize,
    /// cpu, cuda[:N], metal[:N]; several of one kind split the batches (cuda:0,cuda:1 or cuda:all).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, f16, bf16, or int8 (CPU: weights per channel and activations per token in 8 bits).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// auto (packed CPU for CPU f32, candle otherwise), cpu or candle.
    #[arg(long, default_value = "auto", ignore_case = true, value_parser = value_enum::<BackendChoice>())]
    backend: BackendChoice,
}

impl ModelArgs {
    fn options(&self) -> Result<EncoderOptions> {
        let mut options = EncoderOptions {
            pooling: self.pooling,
            normalize: self.normalize,
            max_length: self.max_length,
            lowercase: if self.lowercase {
                Some(true)
            } else if self.cased {
                Some(false)
            } else {
                None
            },
            devices: parse_devices(&self.device)?,
            backend: self.backend,
            ..EncoderOptions::default()
        };
        options.set_dtype(&self.dtype)?;
        Ok(options)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts (one per line, or JSONL with `text` and optional `id`) into .npy or .safetensors.
    Embed(EmbedCmd),
    /// Gather the outputs of `--shard I/N` runs into the output one unsharded run writes
    /// (h5ad, .npy, .safetensors or gene store), after checking they cover every row once.
    Merge {
        /// The shard outputs (.npy, each with its .npy.manifest.json), in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// out.h5ad (cells: a copy of the shards' input + obsm), .npy, .safetensors, or a gene
        /// store prefix (genes embed).
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// List the model cards and whether each model is present locally.
    Models,
    /// Write model.safetensors beside a pytorch_model.bin (zip or legacy format).
    Convert { dir: PathBuf },
    /// Gene embeddings from NCBI summaries, gene-ID coverage, export and import.
    #[command(subcommand)]
    Genes(GenesCmd),
    /// Cell-type classification (cosine KNN or MLP) on embeddings or counts: report, plots, predictions in obs.
    Classify(classify::pipeline::ClassifyArgs),
    /// Which genes make the MLP call each cell type: integrated gradients, top genes per class, marker hits.
    Explain(explain::pipeline::ExplainArgs),
    /// Cell embeddings (GenePT-w), cell sentences and their ablations, sentence embeddings.
    #[command(subcommand)]
    Cells(CellsCmd),
    /// The whole pipeline on bundled real data (601 pbmc3k cells) with real weights.
    Demo(app::demo::DemoArgs),
    /// Run an experiment grid from a TOML config (see assets/experiments/).
    Experiment {
        config: PathBuf,
        /// Dataset to run on (.h5ad or an MTX directory); replaces the config's `input`.
        #[arg(long, short = 'i')]
        input: Option<PathBuf>,
    },
    /// Precision and throughput of a device (GPU, or a CPU dry run) against the CPU f32 backend.
    DeviceCheck(app::device_check::DeviceCheckArgs),
    /// sciLaMA: context-aware cell and gene embeddings from a paired VAE over a gene store.
    #[command(subcommand)]
    Scilama(ScilamaCmd),
    /// Write a seeded random BERT checkpoint of a known shape (for speed checks without downloads).
    SynthModel {
        /// ember-v1, bert-large, biobert, scibert, bert-base or minilm.
        #[arg(long, default_value = "ember-v1")]
        shape: String,
        /// BERT directory whose tokenizer (and vocabulary size) the checkpoint takes.
        #[arg(long)]
        tokenizer_from: PathBuf,
        /// Pooling written to 1_Pooling/config.json.
        #[arg(long, default_value = "cls", ignore_case = true, value_parser = value_enum::<Pooling>())]
        pooling: Pooling,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
}

// `celltext embed`'s flags (no doc comment: the variant's is the command's about text).
#[derive(Args, Clone)]
struct EmbedCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// Input text file or JSONL.
    #[arg(long, short = 'i')]
    input: PathBuf,
    /// Output .npy or .safetensors (a .manifest.json is written beside it).
    #[arg(long, short = 'o')]
    output: PathBuf,
    #[command(flatten)]
    shard: ShardArg,
}

/// `--species` where its help needs no words of its own (human or mouse gene names).
#[derive(Args, Clone)]
struct SpeciesArg {
    #[arg(long, default_value = "human", ignore_case = true, value_parser = value_enum::<Species>())]
    species: Species,
}

/// `--shard I/N` of the commands that can run one part of their rows.
#[derive(Args, Clone)]
struct ShardArg {
    /// Only rows floor((I-1)·n/N)..floor(I·n/N) of the input, written as a .npy shard with
    /// its manifest; gather the N shards with `celltext merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<celltext::shard::Shard>,
}

#[derive(Args, Clone)]
struct InputArgs {
    /// Expression matrix: .h5ad, 10x MTX directory, cells×genes MTX directory, or dense CSV/TSV.
    #[arg(long, short = 'i')]
    input: PathBuf,
    /// h5ad: read layers/NAME instead of X (e.g. counts).
    #[arg(long)]
    layer: Option<String>,
    /// h5ad: read raw/X.
    #[arg(long)]
    raw: bool,
    /// h5ad: gene symbols from this var column (CELLxGENE: feature_name).
    #[arg(long)]
    gene_symbols_key: Option<String>,
    /// Cells per read chunk.
    #[arg(long, default_value_t = celltext::cells::source::DEFAULT_CHUNK_ROWS)]
    chunk_rows: usize,
}

impl InputArgs {
    fn read_options(&self) -> celltext::cells::read::ReadOptions {
        celltext::cells::read::ReadOptions {
            layer: self.layer.clone(),
            raw: self.raw,
            gene_symbols_key: self.gene_symbols_key.clone(),
            chunk_rows: self.chunk_rows,
        }
    }
}

#[derive(Args, Clone)]
struct SentenceOpts {
    /// Keep at most N genes per sentence.
    #[arg(long)]
    max_genes: Option<usize>,
    /// Break expression ties by matrix column order instead of a seeded shuffle.
    #[arg(long)]
    ties_stable: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Text before the gene list.
    #[arg(long, default_value = "A cell with genes ranked by expression: ")]
    template: String,
    /// none, hash, hash-instance, shuffle-all, shuffle-in-context, shuffle-top10,
    /// hash+shuffle-in-context, shorten:10|20|50.
    #[arg(long, default_value = "none")]
    ablation: String,
}

impl SentenceOpts {
    fn args(&self, input: &InputArgs) -> Result<celltext::cells::pipeline::SentenceArgs> {
        Ok(celltext::cells::pipeline::SentenceArgs {
            input: input.input.clone(),
            read: input.read_options(),
            max_genes: self.max_genes,
            ties_stable: self.ties_stable,
            seed: self.seed,
            template: self.template.clone(),
            ablation: self.ablation.parse()?,
        })
    }
}

#[derive(Subcommand)]
enum CellsCmd {
    /// GenePT-w: expression-weighted average of the gene vectors of each cell's top-N genes.
    Embed(CellsEmbedCmd),
    /// Cell sentences (genes by descending expression) as JSONL, with an optional ablation.
    Sentences(SentencesCmd),
    /// Cell sentences through the encoder into obsm (batched, resumable).
    EmbedSentences(EmbedSentencesCmd),
    /// scanpy's standard count baseline: normalize_total(1e4) → log1p → highly variable genes
    /// (seurat) → scale (clip 10) → PCA, into obsm['X_pca'] (point --layer at raw counts).
    Pca(PcaCmd),
}

#[derive(Subcommand)]
enum GenesCmd {
    /// Embed every gene summary into a store (resumable: rerun the same command after a kill).
    Embed(GenesEmbedCmd),
    /// How many genes map onto a store, by which route, and which do not (with --input, also the
    /// share of expression on mapped genes).
    Coverage(CoverageCmd),
    /// Export a store, or only the rows a gene list or data set maps onto, as .npy (rows in
    /// STORE.genes.tsv order), TSV (symbol + values) or parquet (sciLaMA-style: gene_id +
    /// embedding list<float32>).
    Export(ExportCmd),
    /// Make a store from another tool's gene vectors: a GenePT pickle ({symbol: list or numpy
    /// array}) or a sciLaMA-style parquet (gene_id + embedding list column, or one column per dim).
    Import(celltext::genes::pipeline::GenesImportArgs),
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct CellsEmbedCmd {
    #[command(flatten)]
    input: InputArgs,
    /// Gene store from `celltext genes embed`.
    #[arg(long)]
    genes: PathBuf,
    /// Species of the dataset's gene names.
    #[arg(long, default_value = "human", ignore_case = true, value_parser = value_enum::<Species>())]
    species: Species,
    /// Map genes through mouse <-> human orthologs when the store lacks them.
    #[arg(long)]
    orthologs: bool,
    /// raw, or log1p (counts per 10k, then log1p).
    #[arg(long, default_value = "raw", value_parser = value_enum::<celltext::cells::pipeline::InputNorm>())]
    normalize: celltext::cells::pipeline::InputNorm,
    /// N, or `all`.
    #[arg(long, default_value = "100")]
    top_n: celltext::cells::weighted::TopN,
    /// expr, log1p, zscore or uniform.
    #[arg(long, default_value = "expr", ignore_case = true, value_parser = value_enum::<celltext::cells::weighted::Weights>())]
    weights: celltext::cells::weighted::Weights,
    /// weighted (top-N weighted mean), genept (X·E / n_genes) or scelmo-wa (row-normalized X·E).
    #[arg(long, default_value = "weighted", value_parser = value_enum::<celltext::cells::pipeline::AggregationChoice>())]
    aggregation: celltext::cells::pipeline::AggregationChoice,
    /// Use only the N highly variable genes (scanpy seurat flavour on log1p-CP10k).
    #[arg(long)]
    hvg: Option<usize>,
    /// Multiply each gene's weight by max(0, ln(n_cells / (1 + cells expressing it))).
    #[arg(long)]
    idf: bool,
    /// out.h5ad (copy of the input + obsm['X_celltext_NAME']), .npy or .safetensors.
    #[arg(long, short = 'o')]
    output: PathBuf,
    #[arg(long, default_value = "genept_w")]
    name: String,
    /// Allow --output to be the input file.
    #[arg(long)]
    in_place: bool,
    #[command(flatten)]
    shard: ShardArg,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct SentencesCmd {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    opts: SentenceOpts,
    /// Report how many genes fit in this model's context (needed for in-context ablations).
    #[arg(long, short = 'm')]
    model: Option<String>,
    #[arg(long, short = 'o')]
    output: PathBuf,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct EmbedSentencesCmd {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    opts: SentenceOpts,
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, short = 'o')]
    output: PathBuf,
    #[arg(long, default_value = "sentences")]
    name: String,
    #[arg(long)]
    in_place: bool,
    /// Texts per resumable checkpoint chunk.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    #[command(flatten)]
    shard: ShardArg,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct PcaCmd {
    #[command(flatten)]
    input: InputArgs,
    /// Number of highly variable genes.
    #[arg(long, default_value_t = 2000)]
    n_top_genes: usize,
    /// Number of principal components.
    #[arg(long, default_value_t = 50)]
    n_comps: usize,
    /// out.h5ad (copy of the input + obsm[KEY]), .npy or .safetensors.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// obsm key.
    #[arg(long, default_value = "X_pca")]
    key: String,
    /// Allow --output to be the input file.
    #[arg(long)]
    in_place: bool,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct GenesEmbedCmd {
    #[command(flatten)]
    model: ModelArgs,
    /// human or mouse (bundled summaries; mouse includes human-ortholog text, marked).
    #[arg(long, default_value = "human", ignore_case = true, value_parser = value_enum::<Species>())]
    species: Species,
    /// Your own summaries: JSON {symbol: text} (GenePT) or TSV/CSV with symbol and text columns.
    #[arg(long)]
    summaries: Option<PathBuf>,
    /// Store prefix: writes OUT.safetensors, OUT.genes.tsv, OUT.manifest.json.
    #[arg(long)]
    out: PathBuf,
    /// Dataset genes the store must serve (one per line) — enables --missing.
    #[arg(long)]
    genes: Option<PathBuf>,
    /// Dataset genes without a summary: skip (reported), zero, or fallback-name ("SYMBOL: full name").
    #[arg(long, default_value = "skip", value_parser = value_enum::<MissingPolicy>())]
    missing: MissingPolicy,
    /// Texts per resumable checkpoint chunk.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    #[command(flatten)]
    shard: ShardArg,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct ExportCmd {
    #[arg(long)]
    store: PathBuf,
    /// npy, tsv or parquet.
    #[arg(long, default_value = "npy")]
    format: String,
    #[arg(long)]
    out: PathBuf,
    // with genes: only the store rows they map onto (tsv or parquet), resolved as every command
    // resolves them
    #[command(flatten)]
    names: GeneNamesArgs,
    /// With --genes or --input: name each row by the store's symbol (store) or by the given name that maps onto it (input; for tools that match names exactly).
    #[arg(long, default_value = "store", ignore_case = true, value_parser = value_enum::<RowNames>())]
    row_names: RowNames,
}

// Flags of one subcommand (no doc comment: the variant's is its about text).
#[derive(Args, Clone)]
struct CoverageCmd {
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    names: GeneNamesArgs,
}

/// Genes named by a list or by an expression matrix's var names (`genes coverage | export`).
#[derive(Args, Clone)]
struct GeneNamesArgs {
    /// Gene names, one per line (or a TSV with a symbol/gene/ensembl_id column).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// Or an expression matrix (h5ad, MTX folder, CSV): its genes.
    #[arg(long, conflicts_with = "genes")]
    input: Option<PathBuf>,
    /// h5ad layer for --input (e.g. counts).
    #[arg(long)]
    layer: Option<String>,
    #[command(flatten)]
    species: SpeciesArg,
    /// Fall back to mouse <-> human orthologs.
    #[arg(long)]
    orthologs: bool,
}

/// candle's CPU worker threads spin this many times before parking between elementwise ops
/// (its default, 25,000, keeps a core busy while gemm's threads need it: sciLaMA training on 2
/// shared cores ran 10–30 % slower). `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the user wins.
const CANDLE_SPIN_LIMIT: &str = "100";

/// mimalloc's `mi_option_purge_delay` (its position in `mimalloc.h`'s option enum; libmimalloc-sys
/// names no constant for it): how long freed memory waits before it goes back to the kernel.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Never (mimalloc's default: after 1 s): a training step frees and reallocates the same
/// multi-MiB tensors every ~0.2 s, and purged memory comes back as freshly faulted, zeroed pages
/// (sciLaMA, 2 epochs on pbmc3k: 66,680 page faults and 1.04 s of system time → 6,280 and 0.18
/// s; peak RSS unchanged). A command is one batch process: what it frees is reused by its next
/// allocation and returned when it exits. `MIMALLOC_PURGE_DELAY` set by the user wins.
const PURGE_DELAY_MS: std::ffi::c_long = -1;

fn main() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; mimalloc allows it at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // Before any thread exists: candle reads it when its pool starts.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
    // numeric flags take `-1` as a value and refuse it by name (app::numbers)
    let matches = app::numbers::signed_numbers(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let (quiet, json) = (cli.quiet, cli.json);
    match cli.cmd {
        Command::Merge { shards, output } => run_merge(shards, output, json)?,
        Command::Embed(cmd) => cmd.run(quiet, json)?,
        Command::Models => run_models(json)?,
        Command::Convert { dir } => {
            let out = encoder::pipeline::convert(&dir)?;
            println!("wrote {}", out.display());
        }
        Command::Genes(g) => run_genes(g, quiet, json)?,
        Command::Classify(mut args) => {
            args.quiet = quiet;
            let r = classify::pipeline::run_classify(&args)?;
            if json {
                print!("{}", classify::pipeline::report_json(&r)?);
            } else {
                print!("{}", classify::pipeline::render_markdown(&r));
            }
        }
        Command::Explain(mut args) => {
            args.quiet = quiet;
            let r = explain::pipeline::run_explain(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", explain::pipeline::render_markdown(&r));
                println!(
                    "\nwrote {}/explain.tsv, report.md, report.json, manifest.json",
                    args.out.display()
                );
            }
        }
        Command::Cells(c) => run_cells(c, quiet, json)?,
        Command::Scilama(c) => run_scilama(c, quiet, json)?,
        Command::DeviceCheck(mut args) => {
            args.quiet = quiet;
            let r = app::device_check::run_device_check(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", app::device_check::format_report(&r));
            }
        }
        Command::SynthModel {
            shape,
            tokenizer_from,
            pooling,
            seed,
            out,
        } => {
            let shape = celltext::encoder::synth::Shape::named(&shape)?;
            celltext::encoder::synth::write_random_bert(
                &out,
                shape,
                &tokenizer_from,
                pooling,
                seed,
            )?;
            if !quiet {
                println!("{}", out.display());
            }
        }
        Command::Demo(mut args) => {
            args.quiet = quiet;
            print_demo(&app::demo::run_demo(&args)?, json);
        }
        Command::Experiment { config, input } => {
            let (rows, out) = experiment::run_experiment(&config, input.as_deref(), quiet)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let text = std::fs::read_to_string(out.join("results.md"))?;
                print!("{text}");
                println!(
                    "\nwrote {}/results.md, results.json, accuracy.png/.svg",
                    out.display()
                );
            }
        }
    }
    Ok(())
}

fn run_merge(shards: Vec<PathBuf>, output: PathBuf, json: bool) -> Result<()> {
    let r = celltext::merge::run_merge(&celltext::merge::MergeArgs { shards, output })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "wrote {} ({}: {} rows × {} from {} shards)",
            r.output,
            r.written,
            r.n_rows,
            r.dim,
            r.shards.len()
        );
    }
    Ok(())
}

impl EmbedCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let EmbedCmd {
            model,
            input,
            output,
            shard: ShardArg { shard },
        } = self;
        let args = encoder::pipeline::EmbedArgs {
            model: model.model.clone(),
            input,
            output: output.clone(),
            options: model.options()?,
            batch_tokens: model.batch_tokens,
            quiet,
        };
        let m = encoder::pipeline::run_embed_shard(&args, shard)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&m)?);
            return Ok(());
        }
        println!("wrote {} ({} × {})", output.display(), m.n_texts, m.dim);
        println!(
            "model      {} @ {} (sha256 {}…)",
            m.model.id,
            m.model.revision,
            &m.model.weights_sha256[..12]
        );
        println!(
            "pooling    {}{}",
            m.model.pooling,
            if m.model.normalize {
                ", normalized"
            } else {
                ""
            }
        );
        println!(
            "truncated  {} of {} texts at {} tokens",
            m.n_truncated, m.n_texts, m.model.max_length
        );
        println!(
            "speed      {:.0} tokens/s, {:.1} texts/s, padding {:.1} %",
            m.tokens_per_second,
            m.n_texts as f64 / m.seconds.max(1e-9),
            100.0 * m.padding_fraction
        );
        Ok(())
    }
}

fn run_models(json: bool) -> Result<()> {
    let rows = encoder::pipeline::list_models()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<10} {:<40} {:<10} {:<7} {:<5} local copy",
        "card", "hub id", "revision", "pooling", "max"
    );
    for r in rows {
        println!(
            "{:<10} {:<40} {:<10} {:<7} {:<5} {}",
            r.name,
            r.hub_id,
            &r.revision[..r.revision.len().min(10)],
            r.pooling,
            r.max_length.map(|m| m.to_string()).unwrap_or_default(),
            r.local.unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

fn print_demo(r: &app::demo::DemoResult, json: bool) {
    if json {
        let rows: Vec<_> = r
            .table
            .iter()
            .map(|d| serde_json::json!({"run": d.run, "seed": d.seed, "summary": d.report.summary}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"out": r.out, "seconds": r.seconds, "seeds": r.seeds, "steps": r.steps, "results": rows})
        );
        return;
    }
    let over = match r.seeds.as_slice() {
        [one] => format!("seed {one}"),
        all => format!("mean ± sd over seeds {}", app::demo::join_seeds(all)),
    };
    println!(
        "\n## celltext demo — pbmc3k (601 real cells, 9 Seurat labels), stratified 80/20, {over}\n"
    );
    print!("{}", app::demo::demo_table(r));
    println!();
    for (name, secs) in &r.steps {
        println!("{secs:>7.1} s  {name}");
    }
    println!("{:>7.1} s  total", r.seconds);
    println!("\nreports: {}/report/seed<S>/<run>/report.md (plots: confusion, embedding, k_sweep .png/.svg)", r.out.display());
    println!("cells with embeddings: {}/pbmc3k_demo.celltext.h5ad (obsm X_celltext_genept_w, X_celltext_sentences)", r.out.display());
}

#[derive(Subcommand)]
enum ScilamaCmd {
    /// Train on raw counts + a gene store: obsm['X_scilama'], contextual gene store, weights, losses.
    Train {
        #[command(flatten)]
        input: InputArgs,
        /// Gene store from `celltext genes embed` (the static gene vectors); repeatable: each store gets its own gene encoder, fused by --fusion, and the model keeps the genes found in every store.
        #[arg(long, required = true)]
        genes: Vec<PathBuf>,
        #[command(flatten)]
        species: SpeciesArg,
        /// Map genes through mouse <-> human orthologs when the store lacks them.
        #[arg(long)]
        orthologs: bool,
        /// Keep N of the store's genes: scanpy's seurat-flavor highly variable genes, chosen within batches with --batch-key (0 = all).
        #[arg(long, default_value_t = 2000)]
        hvg: usize,
        /// What the gene VAE encodes: store, self (transposed expression), random or shuffled.
        #[arg(long, default_value = "store", value_parser = value_enum::<celltext::scilama::GeneInput>())]
        gene_input: celltext::scilama::GeneInput,
        /// Categorical obs column (e.g. the batch), one-hot into the cell encoder and decoder (repeatable).
        #[arg(long = "batch-key", value_name = "COL")]
        batch_keys: Vec<String>,
        /// Numeric obs column, z-scored into the cell encoder and decoder (repeatable).
        #[arg(long = "covariate-key", value_name = "COL")]
        covariate_keys: Vec<String>,
        #[command(flatten)]
        cfg: celltext::scilama::ScilamaConfig,
        /// cpu, cuda[:N] or metal[:N].
        #[arg(long, default_value = "cpu")]
        device: String,
        /// OUT.h5ad (side files OUT.scilama_genes.*, OUT.scilama_model.safetensors, OUT.scilama_losses.tsv).
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Allow --output to be the input file.
        #[arg(long)]
        in_place: bool,
    },
    /// Project new cells and/or new gene vectors through a trained model's encoders.
    Embed {
        /// PREFIX.scilama_model.safetensors from `scilama train`.
        #[arg(long)]
        model: PathBuf,
        /// Cells to project (raw counts; same reading options as `train`).
        #[arg(long, short = 'i')]
        input: Option<PathBuf>,
        #[arg(long)]
        layer: Option<String>,
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        gene_symbols_key: Option<String>,
        #[command(flatten)]
        species: SpeciesArg,
        /// OUT.h5ad for the projected cells (obsm['X_scilama']).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Allow --output to be the input file.
        #[arg(long)]
        in_place: bool,
        /// Refuse --input when fewer than this share of the model's genes are in it (a missing gene counts as zero expression).
        #[arg(long, default_value_t = 0.5)]
        min_gene_fraction: f64,
        /// Gene store whose vectors go through the gene encoder; a model trained on several stores takes one --genes per store, in training order (genes in every store are projected).
        #[arg(long)]
        genes: Vec<PathBuf>,
        /// Store prefix for the projected gene embeddings.
        #[arg(long)]
        genes_out: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

fn run_scilama(cmd: ScilamaCmd, quiet: bool, json: bool) -> Result<()> {
    match cmd {
        ScilamaCmd::Train {
            input,
            genes,
            species: SpeciesArg { species },
            orthologs,
            hvg,
            gene_input,
            batch_keys,
            covariate_keys,
            cfg,
            device,
            output,
            in_place,
        } => {
            let args = celltext::scilama::pipeline::TrainArgs {
                input: input.input.clone(),
                read: input.read_options(),
                stores: genes,
                settings: celltext::scilama::pipeline::TrainSettings {
                    species,
                    orthologs,
                    hvg,
                    gene_input,
                    batch_keys,
                    covariate_keys,
                    cfg,
                },
                device,
                output,
                in_place,
                quiet,
            };
            let r = celltext::scilama::pipeline::run_train(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_scilama_train(&r);
            }
        }
        ScilamaCmd::Embed {
            model,
            input,
            layer,
            raw,
            gene_symbols_key,
            species: SpeciesArg { species },
            output,
            in_place,
            min_gene_fraction,
            genes,
            genes_out,
            device,
        } => {
            let args = celltext::scilama::embed::EmbedArgs {
                model,
                input,
                read: celltext::cells::read::ReadOptions {
                    layer,
                    raw,
                    gene_symbols_key,
                    chunk_rows: celltext::cells::source::DEFAULT_CHUNK_ROWS,
                },
                species,
                output,
                in_place,
                min_gene_fraction,
                genes,
                genes_out,
                device,
                quiet,
            };
            let r = celltext::scilama::embed::run_embed(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                if let (Some((o, n, k)), Some(found)) = (&r.cells, r.model_genes_found) {
                    println!(
                        "wrote {o} (obsm['X_scilama'], {n} cells × {k}; {found} of the model's {} \
                         genes found)",
                        r.model_genes
                    );
                }
                if let Some((o, n)) = &r.genes {
                    println!("wrote {o}.safetensors ({n} genes)");
                }
            }
        }
    }
    Ok(())
}

/// `scilama train`'s text summary.
fn print_scilama_train(r: &celltext::scilama::pipeline::TrainReport) {
    for o in &r.outputs {
        println!("wrote {o}");
    }
    let found = match r.genes_in_every_store {
        Some(n) => format!("{n} in every store"),
        None => format!(
            "{} in the store",
            r.gene_coverage.n_genes - r.gene_coverage.n_unmatched
        ),
    };
    println!(
        "cells {} ({} fit, {} val) × genes {} (of {found}), gene input {:?} ({} dims)",
        r.n_cells, r.n_fit, r.n_val, r.n_genes, r.gene_input, r.gene_input_dim
    );
    for (k, s) in r.gene_stores.iter().enumerate() {
        println!(
            "gene store {} {}: {} dims, {} of the dataset's genes",
            k + 1,
            s.record.path,
            s.record.dim,
            s.coverage.n_genes - s.coverage.n_unmatched
        );
    }
    if let Some(f) = r.fusion {
        println!(
            "{} stores fused by {}",
            r.gene_stores.len(),
            celltext::choice::Choice::name(f)
        );
    }
    println!(
        "epochs {:?}, best {:?}, final val loss {:?}",
        r.epochs_run, r.best_epochs, r.final_val_loss
    );
    println!("time {:.1} s on {}", r.seconds, r.device);
}

fn run_genes(cmd: GenesCmd, quiet: bool, json: bool) -> Result<()> {
    match cmd {
        GenesCmd::Embed(cmd) => cmd.run(quiet, json)?,
        GenesCmd::Coverage(cmd) => cmd.run(quiet, json)?,
        GenesCmd::Export(cmd) => cmd.run(quiet, json)?,
        GenesCmd::Import(args) => {
            let m = celltext::genes::pipeline::run_genes_import(&args)?;
            let out = &args.out;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                for f in celltext::genes::pipeline::store_files(out) {
                    println!("wrote {}", f.display());
                }
                println!("genes      {} × {} (f32)", m.n_genes, m.dim);
                println!(
                    "source     {} ({}; sha256 {}…)",
                    m.source.path,
                    m.source.layout,
                    &m.source.sha256[..12]
                );
            }
        }
    }
    Ok(())
}

/// `CELLTEXT_TEST_STOP_AFTER_CHUNKS`: the test hook that stops a resumable run after N chunks.
fn test_stop_after_chunks() -> Option<usize> {
    std::env::var("CELLTEXT_TEST_STOP_AFTER_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
}

impl GenesEmbedCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let GenesEmbedCmd {
            model,
            species,
            summaries,
            out,
            genes,
            missing,
            chunk,
            shard: ShardArg { shard },
        } = self;
        let dataset_genes = genes
            .as_deref()
            .map(celltext::genes::pipeline::read_gene_list)
            .transpose()?;
        if dataset_genes.is_none() && missing != MissingPolicy::Skip {
            anyhow::bail!("--missing {missing:?} needs --genes FILE (the dataset's genes)");
        }
        let args = celltext::genes::pipeline::GenesEmbedArgs {
            model: model.model.clone(),
            options: model.options()?,
            species,
            summaries,
            out: out.clone(),
            dataset_genes,
            missing,
            batch_tokens: model.batch_tokens,
            quiet,
            stop_after_chunks: test_stop_after_chunks(),
            chunk_texts: chunk,
        };
        let m = match shard {
            Some(s) => celltext::genes::pipeline::run_genes_embed_shard(&args, s)?,
            None => celltext::genes::pipeline::run_genes_embed(&args)?,
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&m)?);
            return Ok(());
        }
        if let Some(s) = shard {
            println!("wrote {} (shard {s})", out.display());
        } else {
            for f in celltext::genes::pipeline::store_files(&out) {
                println!("wrote {}", f.display());
            }
        }
        println!(
            "genes      {} × {} ({} truncated at {} tokens)",
            m.n_genes, m.dim, m.n_truncated, m.model.max_length
        );
        println!(
            "text       {} (sha256 {}…)",
            m.text_source,
            &m.text_sha256[..12]
        );
        println!(
            "speed      {:.1} s, {:.0} tokens/s, padding {:.1} %{}",
            m.seconds,
            m.tokens_per_second,
            100.0 * m.padding_fraction,
            if m.chunks_resumed > 0 {
                format!(", resumed {} chunks", m.chunks_resumed)
            } else {
                String::new()
            }
        );
        if let Some(n) = m.n_dataset_genes {
            println!(
                "dataset    {} genes; without summary: {} skipped, {} zero, {} fallback-name",
                n,
                m.dataset_genes_without_summary.len(),
                m.zero_vector_genes.len(),
                m.n_fallback_name
            );
        }
        Ok(())
    }
}

/// The gene names of `--genes FILE` or `--input MATRIX` (with the matrix's non-zeros), if given.
type GeneNames = (Vec<String>, Option<(Vec<u32>, Vec<f32>)>);

impl GeneNamesArgs {
    fn read(self, quiet: bool) -> Result<Option<GeneNames>> {
        Ok(match (self.genes, self.input) {
            (Some(g), _) => Some((celltext::genes::pipeline::read_gene_list(&g)?, None)),
            (None, Some(i)) => {
                let opts = celltext::cells::read::ReadOptions {
                    layer: self.layer,
                    ..Default::default()
                };
                let m = celltext::cells::pipeline::read_normalized(
                    &i,
                    &opts,
                    celltext::cells::pipeline::InputNorm::Raw,
                    quiet,
                )?;
                Some((m.genes, Some((m.x.indices, m.x.data))))
            }
            (None, None) => None,
        })
    }
}

impl ExportCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let ExportCmd {
            store,
            format,
            out,
            names,
            row_names,
        } = self;
        let (species, orthologs) = (names.species.species, names.orthologs);
        if row_names == RowNames::Input && names.genes.is_none() && names.input.is_none() {
            anyhow::bail!("--row-names input names rows by --genes or --input; give one of them");
        }
        let source = names.genes.clone().or_else(|| names.input.clone());
        let subset = names
            .read(quiet)?
            .map(|(names, _)| celltext::genes::pipeline::ExportSubset {
                names,
                species,
                orthologs,
                source,
                row_names,
            });
        let r = celltext::genes::pipeline::export(&store, &format, &out, subset.as_ref())?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!(
            "wrote {} ({} genes × {}, {})",
            out.display(),
            r.n_genes,
            r.dim,
            r.format
        );
        if let Some(cov) = &r.subset {
            println!(
                "the store rows of {} of the {} genes asked for ({} unmatched)",
                cov.n_genes - cov.n_unmatched,
                cov.n_genes,
                cov.n_unmatched
            );
        }
        Ok(())
    }
}

impl CoverageCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let CoverageCmd { store, names } = self;
        let (species, orthologs) = (names.species.species, names.orthologs);
        let (s, _) = celltext::genes::GeneEmbeddings::load_for_species(&store, species, orthologs)?;
        let Some((names, totals)) = names.read(quiet)? else {
            anyhow::bail!("give --genes FILE or --input MATRIX");
        };
        let (_, cov) = celltext::genes::pipeline::coverage(
            &s.symbols,
            &names,
            species,
            orthologs,
            totals.as_ref().map(|(i, v)| (i.as_slice(), v.as_slice())),
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&cov)?);
        } else {
            print!("{}", celltext::genes::pipeline::coverage_table(&cov));
        }
        Ok(())
    }
}

fn run_cells(cmd: CellsCmd, quiet: bool, json: bool) -> Result<()> {
    match cmd {
        CellsCmd::Embed(cmd) => cmd.run(quiet, json),
        CellsCmd::Sentences(cmd) => cmd.run(quiet, json),
        CellsCmd::EmbedSentences(cmd) => cmd.run(quiet, json),
        CellsCmd::Pca(cmd) => cmd.run(quiet, json),
    }
}

impl CellsEmbedCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let CellsEmbedCmd {
            input,
            genes,
            species,
            orthologs,
            normalize,
            top_n,
            weights,
            aggregation,
            hvg,
            idf,
            output,
            name,
            in_place,
            shard: ShardArg { shard },
        } = self;
        let aggregation = aggregation.aggregation(weights, top_n);
        let args = celltext::cells::pipeline::CellsEmbedArgs {
            input: input.input.clone(),
            read: input.read_options(),
            store: genes,
            species,
            orthologs,
            normalize,
            aggregation,
            hvg,
            idf,
            output: celltext::cells::pipeline::CellOutput {
                path: output.clone(),
                in_place,
                name,
            },
            quiet,
        };
        let r = celltext::cells::pipeline::run_cells_embed_shard(&args, shard)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!("wrote {} ({})", output.display(), r.written);
        println!("cells      {} × {} ({})", r.n_cells, r.dim, r.aggregation);
        print!(
            "{}",
            celltext::genes::pipeline::coverage_table(&r.gene_coverage)
        );
        println!(
            "cells with no mapped expressed gene: {} (zero vectors, flagged in obs)",
            r.cells_without_mapped_genes
        );
        println!(
            "mean per-cell expression on mapped genes: {:.1}%",
            100.0 * r.mean_expression_coverage
        );
        println!("time       {:.2} s", r.seconds);
        Ok(())
    }
}

impl SentencesCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let SentencesCmd {
            input,
            opts,
            model,
            output,
        } = self;
        let sargs = opts.args(&input)?;
        celltext::outputs::check_apart(&[&output], &[&sargs.input])?;
        let enc;
        let tok = match &model {
            Some(m) => {
                enc = celltext::encoder::Encoder::load(m, &EncoderOptions::default(), quiet)?;
                Some(&enc.tokenizer)
            }
            None => None,
        };
        let (_, sentences, budget) = celltext::cells::pipeline::make_sentences(&sargs, tok, quiet)?;
        celltext::cells::pipeline::write_sentences(&output, &sentences)?;
        if json {
            println!(
                "{}",
                serde_json::json!({"output": output, "n_cells": sentences.len(), "token_budget": budget})
            );
            return Ok(());
        }
        println!(
            "wrote {} ({} cells, ablation {})",
            output.display(),
            sentences.len(),
            sargs.ablation
        );
        if let Some(b) = budget {
            println!(
                "genes fitting in {} tokens: mean {:.1}, median {:.1}, min {}, max {}; {} of {} sentences exceed the context",
                b.max_len, b.summary.mean, b.summary.median, b.summary.min, b.summary.max, b.n_truncated, sentences.len()
            );
        }
        Ok(())
    }
}

impl EmbedSentencesCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let EmbedSentencesCmd {
            input,
            opts,
            model,
            output,
            name,
            in_place,
            chunk,
            shard: ShardArg { shard },
        } = self;
        let args = celltext::cells::pipeline::EmbedSentencesArgs {
            sentences: opts.args(&input)?,
            model: model.model.clone(),
            options: model.options()?,
            batch_tokens: model.batch_tokens,
            chunk_texts: chunk,
            output: celltext::cells::pipeline::CellOutput {
                path: output.clone(),
                in_place,
                name,
            },
            quiet,
            stop_after_chunks: test_stop_after_chunks(),
        };
        let r = celltext::cells::pipeline::run_embed_sentences_shard(&args, shard)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!("wrote {} ({})", output.display(), r.written);
        println!(
            "cells      {} × {} (ablation {}, {} truncated at {} tokens)",
            r.n_cells, r.dim, r.ablation, r.n_truncated, r.model.max_length
        );
        if let (Some(mean), Some(med), Some(min)) = (
            r.genes_in_context_mean,
            r.genes_in_context_median,
            r.genes_in_context_min,
        ) {
            println!("genes in context: mean {mean:.1}, median {med:.1}, min {min}");
        }
        println!(
            "speed      {:.1} s, {:.0} tokens/s, padding {:.1} %",
            r.seconds,
            r.tokens_per_second,
            100.0 * r.padding_fraction
        );
        Ok(())
    }
}

impl PcaCmd {
    fn run(self, quiet: bool, json: bool) -> Result<()> {
        let PcaCmd {
            input,
            n_top_genes,
            n_comps,
            output,
            key,
            in_place,
        } = self;
        let args = cells::pca_pipeline::CellsPcaArgs {
            input: input.input.clone(),
            read: input.read_options(),
            params: celltext::cells::standard_pca::StandardPcaParams {
                n_top_genes,
                n_comps,
                ..Default::default()
            },
            output: output.clone(),
            in_place,
            key,
            quiet,
        };
        let r = cells::pca_pipeline::run_cells_pca(&args)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!("wrote {} ({})", output.display(), r.written);
        println!(
            "cells      {} × {} PCs of {} highly variable genes ({:.1} % of the variance)",
            r.n_cells,
            r.n_comps,
            r.highly_variable_genes.len(),
            100.0 * r.variance_ratio.iter().sum::<f64>()
        );
        println!("time       {:.2} s", r.seconds);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// `MI_OPTION_PURGE_DELAY` is mimalloc's purge delay: it reads that option's default, 1000
    /// ms (its enum neighbours default to 0 and 1), so a shifted enum fails here.
    #[test]
    fn purge_delay_index_names_mimallocs_option() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment chose a value; the default is not observable
        }
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }
}
