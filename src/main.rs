//! celltext CLI: parse arguments, call the library, print.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use celltext::app;
use celltext::app::genes::MissingPolicy;
use celltext::encoder::{parse_devices, parse_dtype, BackendChoice, EncoderOptions, Pooling};
use celltext::genes::Species;

#[derive(Parser)]
#[command(name = "celltext", version, about = "Text encoders as single-cell biology instruments, fully offline")]
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
    #[arg(long)]
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
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// auto (packed CPU for CPU f32, candle otherwise), cpu or candle.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
}

impl ModelArgs {
    fn options(&self) -> Result<EncoderOptions> {
        Ok(EncoderOptions {
            pooling: self.pooling,
            normalize: self.normalize,
            max_length: self.max_length,
            lowercase: if self.lowercase { Some(true) } else if self.cased { Some(false) } else { None },
            devices: parse_devices(&self.device)?,
            dtype: parse_dtype(&self.dtype)?,
            backend: self.backend,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Embed texts (one per line, or JSONL with `text` and optional `id`) into .npy or .safetensors.
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Input text file or JSONL.
        #[arg(long, short = 'i')]
        input: PathBuf,
        /// Output .npy or .safetensors (a .manifest.json is written beside it).
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
    Classify {
        /// Input .h5ad (labels in obs, embeddings in obsm).
        #[arg(long, short = 'i')]
        input: PathBuf,
        /// obsm key of an embedding; repeat to fuse several (each alone and fused are reported).
        #[arg(long = "embedding", short = 'e')]
        embedding: Vec<String>,
        /// Embedding as .npy / .safetensors, rows = cells in input order (repeatable).
        #[arg(long = "embedding-file")]
        embedding_file: Vec<PathBuf>,
        /// obs column with the cell-type labels (empty / NaN labels are excluded and counted).
        #[arg(long)]
        label: String,
        /// knn or mlp.
        #[arg(long, default_value = "knn")]
        method: app::classify::Method,
        /// embedding, or counts (cosine KNN on log1p-CP10k counts; see --layer).
        #[arg(long, default_value = "embedding")]
        on: app::classify::FeatureSpace,
        /// With --on counts: read the counts from layers/NAME instead of X (e.g. counts).
        #[arg(long)]
        layer: Option<String>,
        /// k, or a comma list for a sweep (e.g. 1,3,5,10,25,50,100,500); the first k gives the
        /// predictions (default 10). With --method mlp: a KNN baseline sweep.
        #[arg(long)]
        k: Option<String>,
        /// majority or distance.
        #[arg(long, default_value = "majority", value_parser = app::classify::parse_vote)]
        vote: celltext::classify::knn::Vote,
        /// Fraction of each class held out for test (stratified, seeded).
        #[arg(long, default_value_t = 0.2, conflicts_with_all = ["split_column", "folds"])]
        test_fraction: f64,
        /// obs column with train / test / val per cell, instead of a random split.
        #[arg(long, conflicts_with = "folds")]
        split_column: Option<String>,
        /// Stratified K-fold cross-validation: scores as mean ± sd over folds.
        #[arg(long)]
        folds: Option<usize>,
        /// MLP fusion of several embeddings: concat or gated.
        #[arg(long, default_value = "concat", value_parser = app::classify::parse_fusion)]
        fusion: celltext::classify::mlp::Fusion,
        /// MLP hidden widths, e.g. 256,128 (`none` = linear) [default 256].
        #[arg(long)]
        hidden: Option<String>,
        /// MLP dropout [default 0.1].
        #[arg(long)]
        dropout: Option<f32>,
        /// MLP learning rate (AdamW) [default 1e-3].
        #[arg(long)]
        lr: Option<f64>,
        /// MLP weight decay [default 1e-2].
        #[arg(long)]
        weight_decay: Option<f64>,
        /// MLP maximum epochs [default 200].
        #[arg(long)]
        epochs: Option<usize>,
        /// MLP early-stopping patience in epochs [default 10].
        #[arg(long)]
        patience: Option<usize>,
        /// MLP minibatch size [default 64].
        #[arg(long)]
        batch_size: Option<usize>,
        /// MLP: fraction of training cells held out for early stopping [default 0.1].
        #[arg(long)]
        val_fraction: Option<f32>,
        /// MLP: balanced class weights in the loss.
        #[arg(long)]
        class_weights: bool,
        /// Seed for the split, the MLP and k-means.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Directory for report.json, report.md and plots (PNG + SVG).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Output .h5ad: copy of the input plus obs celltext_pred, celltext_conf, celltext_split.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Allow --output to be the input file (without --output: write into the input).
        #[arg(long)]
        in_place: bool,
    },
    /// Cell embeddings (GenePT-w), cell sentences and their ablations, sentence embeddings.
    #[command(subcommand)]
    Cells(CellsCmd),
    /// The whole pipeline on bundled real data (601 pbmc3k cells) with real weights.
    Demo {
        /// Model (default: all-MiniLM-L6-v2 from models-local/ or the HF cache).
        #[arg(long, short = 'm', default_value = "minilm")]
        model: String,
        /// Output directory.
        #[arg(long, default_value = "celltext-demo")]
        out: PathBuf,
        /// Genes per cell in the GenePT-w average.
        #[arg(long, default_value_t = 100)]
        top_n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run an experiment grid from a TOML config (see assets/experiments/).
    Experiment { config: PathBuf },
    /// Precision and throughput of a device (GPU, or a CPU dry run) against the CPU f32 backend.
    DeviceCheck {
        /// cuda, cuda:N, metal or cpu.
        #[arg(long, default_value = "cuda")]
        device: String,
        /// all-MiniLM-L6-v2 directory (real weights).
        #[arg(long, default_value = "models-local/all-MiniLM-L6-v2")]
        minilm: PathBuf,
        /// Ember-v1-shaped directory (default: a seeded one is written under --work).
        #[arg(long)]
        ember: Option<PathBuf>,
        /// Working directory: texts, the synthetic checkpoint, report.json.
        #[arg(long, default_value = "celltext-device-check")]
        work: PathBuf,
        /// Summaries to time (default: all 15,136 on a GPU, 64 on the CPU).
        #[arg(long)]
        n_summaries: Option<usize>,
        /// 512-token cell sentences to time (default: 2,048 on a GPU, 2 on the CPU).
        #[arg(long)]
        n_sentences: Option<usize>,
        /// Cell sentences to time (JSONL with `text`, or one per line; default: the bundled pbmc3k
        /// cells, which need the h5ad feature).
        #[arg(long)]
        sentences: Option<PathBuf>,
        /// Only write the texts under --work, then stop (to run elsewhere with --sentences).
        #[arg(long)]
        prepare_only: bool,
        /// Padded tokens per batch.
        #[arg(long, default_value_t = 16384)]
        batch_tokens: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a seeded random BERT checkpoint of a known shape (for speed checks without downloads).
    SynthModel {
        /// ember-v1, bert-large, biobert, scibert, bert-base or minilm.
        #[arg(long, default_value = "ember-v1")]
        shape: String,
        /// BERT directory whose tokenizer (and vocabulary size) the checkpoint takes.
        #[arg(long)]
        tokenizer_from: PathBuf,
        /// Pooling written to 1_Pooling/config.json.
        #[arg(long, default_value = "cls")]
        pooling: Pooling,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
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
    #[arg(long, default_value_t = 4096)]
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
    fn args(&self, input: &InputArgs) -> Result<app::cells::SentenceArgs> {
        Ok(app::cells::SentenceArgs {
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
    Embed {
        #[command(flatten)]
        input: InputArgs,
        /// Gene store from `celltext genes embed`.
        #[arg(long)]
        genes: PathBuf,
        /// Species of the dataset's gene names.
        #[arg(long, default_value = "human")]
        species: Species,
        /// Map genes through mouse <-> human orthologs when the store lacks them.
        #[arg(long)]
        orthologs: bool,
        /// raw, or log1p (counts per 10k, then log1p).
        #[arg(long, default_value = "raw")]
        normalize: app::cells::InputNorm,
        /// N, or `all`.
        #[arg(long, default_value = "100")]
        top_n: celltext::cells::weighted::TopN,
        /// expr, log1p, zscore or uniform.
        #[arg(long, default_value = "expr")]
        weights: celltext::cells::weighted::Weights,
        /// weighted (top-N weighted mean), genept (X·E / n_genes) or scelmo-wa (row-normalized X·E).
        #[arg(long, default_value = "weighted")]
        aggregation: String,
        /// out.h5ad (copy of the input + obsm['X_celltext_NAME']), .npy or .safetensors.
        #[arg(long, short = 'o')]
        output: PathBuf,
        #[arg(long, default_value = "genept_w")]
        name: String,
        /// Allow --output to be the input file.
        #[arg(long)]
        in_place: bool,
    },
    /// Cell sentences (genes by descending expression) as JSONL, with an optional ablation.
    Sentences {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        opts: SentenceOpts,
        /// Report how many genes fit in this model's context (needed for in-context ablations).
        #[arg(long, short = 'm')]
        model: Option<String>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Cell sentences through the encoder into obsm (batched, resumable).
    EmbedSentences {
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
    },
}

#[derive(Subcommand)]
enum GenesCmd {
    /// Embed every gene summary into a store (resumable: rerun the same command after a kill).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// human or mouse (bundled summaries; mouse includes human-ortholog text, marked).
        #[arg(long, default_value = "human")]
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
        #[arg(long, default_value = "skip")]
        missing: MissingPolicy,
        /// Texts per resumable checkpoint chunk.
        #[arg(long, default_value_t = 512)]
        chunk: usize,
    },
    /// How many genes map onto a store, by which route, and which do not.
    Coverage {
        #[arg(long)]
        store: PathBuf,
        /// Gene names, one per line (or a TSV with a symbol/gene/ensembl_id column).
        #[arg(long, required_unless_present = "input")]
        genes: Option<PathBuf>,
        /// Or an expression matrix: also reports the share of total expression on mapped genes.
        #[arg(long, conflicts_with = "genes")]
        input: Option<PathBuf>,
        /// h5ad layer for --input (e.g. counts).
        #[arg(long)]
        layer: Option<String>,
        #[arg(long, default_value = "human")]
        species: Species,
        /// Fall back to mouse <-> human orthologs.
        #[arg(long)]
        orthologs: bool,
    },
    /// Export a store as .npy (rows in STORE.genes.tsv order), TSV (symbol + values) or parquet
    /// (sciLaMA-style: gene_id + embedding list<float32>).
    Export {
        #[arg(long)]
        store: PathBuf,
        /// npy, tsv or parquet.
        #[arg(long, default_value = "npy")]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a store from another tool's gene vectors: a GenePT pickle ({symbol: list or numpy
    /// array}) or a sciLaMA-style parquet (gene_id + embedding list column, or one column per dim).
    Import {
        /// .pkl / .pickle or .parquet file.
        file: PathBuf,
        /// Store prefix: writes OUT.safetensors, OUT.genes.tsv, OUT.manifest.json.
        #[arg(long)]
        out: PathBuf,
        /// pickle or parquet (default: from the file extension).
        #[arg(long)]
        format: Option<app::genes::ImportFormat>,
        /// What made the vectors (e.g. "GenePT ada-002"), recorded in the manifest.
        #[arg(long)]
        source_name: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Command::Embed { model, input, output } => {
            let args = app::embed::EmbedArgs {
                model: model.model.clone(),
                input,
                output: output.clone(),
                options: model.options()?,
                batch_tokens: model.batch_tokens,
                quiet: cli.quiet,
            };
            let m = app::embed::run_embed(&args)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!("wrote {} ({} × {})", output.display(), m.n_texts, m.dim);
                println!("model      {} @ {} (sha256 {}…)", m.model.id, m.model.revision, &m.model.weights_sha256[..12]);
                println!("pooling    {}{}", m.model.pooling, if m.model.normalize { ", normalized" } else { "" });
                println!("truncated  {} of {} texts at {} tokens", m.n_truncated, m.n_texts, m.model.max_length);
                println!(
                    "speed      {:.0} tokens/s, {:.1} texts/s, padding {:.1} %",
                    m.tokens_per_second,
                    m.n_texts as f64 / m.seconds.max(1e-9),
                    100.0 * m.padding_fraction
                );
            }
        }
        Command::Models => {
            let rows = app::embed::list_models()?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<10} {:<40} {:<10} {:<7} {:<5} local copy", "card", "hub id", "revision", "pooling", "max");
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
            }
        }
        Command::Convert { dir } => {
            let out = app::embed::convert(&dir)?;
            println!("wrote {}", out.display());
        }
        Command::Genes(g) => run_genes(g, cli.quiet, cli.json)?,
        Command::Classify {
            input, embedding, embedding_file, label, method, on, layer, k, vote, test_fraction, split_column, folds,
            fusion, hidden, dropout, lr, weight_decay, epochs, patience, batch_size, val_fraction, class_weights, seed,
            report, output, in_place,
        } => {
            let mut args = app::classify::ClassifyArgs::new(input, label);
            let d = args.mlp.clone();
            args.method = method;
            args.on = on;
            args.embeddings = embedding;
            args.embedding_files = embedding_file;
            args.layer = layer;
            args.ks = k.as_deref().map(app::classify::parse_k_list).transpose()?;
            args.vote = vote;
            args.test_fraction = test_fraction;
            args.split_column = split_column;
            args.folds = folds;
            args.fusion = fusion;
            args.mlp = celltext::classify::mlp::MlpConfig {
                hidden: hidden.as_deref().map(app::classify::parse_hidden).transpose()?.unwrap_or(d.hidden.clone()),
                dropout: dropout.unwrap_or(d.dropout),
                lr: lr.unwrap_or(d.lr),
                weight_decay: weight_decay.unwrap_or(d.weight_decay),
                max_epochs: epochs.unwrap_or(d.max_epochs),
                patience: patience.unwrap_or(d.patience),
                batch_size: batch_size.unwrap_or(d.batch_size),
                val_fraction: val_fraction.unwrap_or(d.val_fraction),
                class_weights,
                ..d
            };
            args.seed = seed;
            args.report_dir = report;
            args.output = output;
            args.in_place = in_place;
            args.quiet = cli.quiet;
            let r = app::classify::run_classify(&args)?;
            if cli.json {
                print!("{}", app::classify::report_json(&r)?);
            } else {
                print!("{}", app::classify::render_markdown(&r));
            }
        }
        Command::Cells(c) => run_cells(c, cli.quiet, cli.json)?,
        Command::DeviceCheck { device, minilm, ember, work, n_summaries, n_sentences, sentences, prepare_only, batch_tokens, seed } => {
            let r = app::device_check::run_device_check(&app::device_check::DeviceCheckArgs {
                device, minilm, ember, work, n_summaries, n_sentences, sentences, prepare_only, batch_tokens, seed, quiet: cli.quiet,
            })?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", app::device_check::format_report(&r));
            }
        }
        Command::SynthModel { shape, tokenizer_from, pooling, seed, out } => {
            let shape = celltext::encoder::synth::Shape::named(&shape)?;
            celltext::encoder::synth::write_random_bert(&out, shape, &tokenizer_from, pooling, seed)?;
            if !cli.quiet {
                println!("{}", out.display());
            }
        }
        Command::Demo { model, out, top_n, seed } => {
            let r = app::demo::run_demo(&app::demo::DemoArgs { model, out, top_n, seed, quiet: cli.quiet })?;
            if cli.json {
                let rows: Vec<_> = r.table.iter().map(|(n, rep)| serde_json::json!({"run": n, "summary": rep.summary})).collect();
                println!("{}", serde_json::json!({"out": r.out, "seconds": r.seconds, "steps": r.steps, "results": rows}));
            } else {
                println!("\n## celltext demo — pbmc3k (601 real cells, 9 Seurat labels), stratified 80/20, seed 0\n");
                print!("{}", app::demo::demo_table(&r));
                println!();
                for (name, secs) in &r.steps {
                    println!("{secs:>7.1} s  {name}");
                }
                println!("{:>7.1} s  total", r.seconds);
                println!("\nreport: {}/report/<run>/report.md (plots: confusion, embedding, k_sweep .png/.svg)", r.out.display());
                println!("cells with embeddings: {}/pbmc3k_demo.celltext.h5ad (obsm X_celltext_genept_w, X_celltext_sentences)", r.out.display());
            }
        }
        Command::Experiment { config } => {
            let (rows, out) = app::experiment::run_experiment(&config, cli.quiet)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let text = std::fs::read_to_string(out.join("results.md"))?;
                print!("{text}");
                println!("\nwrote {}/results.md, results.json, accuracy.png/.svg", out.display());
            }
        }
    }
    Ok(())
}

fn run_genes(cmd: GenesCmd, quiet: bool, json: bool) -> Result<()> {
    match cmd {
        GenesCmd::Embed { model, species, summaries, out, genes, missing, chunk } => {
            let dataset_genes = genes.as_deref().map(app::genes::read_gene_list).transpose()?;
            if dataset_genes.is_none() && missing != MissingPolicy::Skip {
                anyhow::bail!("--missing {missing:?} needs --genes FILE (the dataset's genes)");
            }
            let args = app::genes::GenesEmbedArgs {
                model: model.model.clone(),
                options: model.options()?,
                species,
                summaries,
                out: out.clone(),
                dataset_genes,
                missing,
                batch_tokens: model.batch_tokens,
                quiet,
                stop_after_chunks: std::env::var("CELLTEXT_TEST_STOP_AFTER_CHUNKS").ok().and_then(|v| v.parse().ok()),
                chunk_texts: chunk,
            };
            let m = app::genes::run_genes_embed(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                for f in app::genes::store_files(&out) {
                    println!("wrote {}", f.display());
                }
                println!("genes      {} × {} ({} truncated at {} tokens)", m.n_genes, m.dim, m.n_truncated, m.model.max_length);
                println!("text       {} (sha256 {}…)", m.text_source, &m.text_sha256[..12]);
                println!("speed      {:.1} s, {:.0} tokens/s, padding {:.1} %{}", m.seconds, m.tokens_per_second, 100.0 * m.padding_fraction,
                    if m.chunks_resumed > 0 { format!(", resumed {} chunks", m.chunks_resumed) } else { String::new() });
                if let Some(n) = m.n_dataset_genes {
                    println!("dataset    {} genes; without summary: {} skipped, {} zero, {} fallback-name",
                        n, m.dataset_genes_without_summary.len(), m.zero_vector_genes.len(), m.n_fallback_name);
                }
            }
        }
        GenesCmd::Coverage { store, genes, input, layer, species, orthologs } => {
            let s = celltext::genes::GeneEmbeddings::load(&store)?;
            let (names, totals) = match (genes, input) {
                (Some(g), _) => (app::genes::read_gene_list(&g)?, None),
                (None, Some(i)) => {
                    let opts = celltext::cells::read::ReadOptions { layer, ..Default::default() };
                    let m = app::cells::read_normalized(&i, &opts, app::cells::InputNorm::Raw, quiet)?;
                    let mut t = vec![0f64; m.genes.len()];
                    for (&j, &v) in m.x.indices.iter().zip(&m.x.data) {
                        t[j as usize] += v as f64;
                    }
                    (m.genes, Some(t))
                }
                (None, None) => anyhow::bail!("give --genes FILE or --input MATRIX"),
            };
            let (_, cov) = app::genes::coverage(&s.symbols, &names, species, orthologs, totals.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cov)?);
            } else {
                print!("{}", app::genes::coverage_table(&cov));
            }
        }
        GenesCmd::Export { store, format, out } => {
            let r = app::genes::export(&store, &format, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("wrote {} ({} genes × {}, {})", out.display(), r.n_genes, r.dim, r.format);
            }
        }
        GenesCmd::Import { file, out, format, source_name } => {
            let m = app::genes::run_genes_import(&app::genes::GenesImportArgs { input: file, out: out.clone(), format, source_name })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                for f in app::genes::store_files(&out) {
                    println!("wrote {}", f.display());
                }
                println!("genes      {} × {} (f32)", m.n_genes, m.dim);
                println!("source     {} ({}; sha256 {}…)", m.source.path, m.source.layout, &m.source.sha256[..12]);
            }
        }
    }
    Ok(())
}

fn run_cells(cmd: CellsCmd, quiet: bool, json: bool) -> Result<()> {
    use celltext::cells::weighted::Aggregation;
    match cmd {
        CellsCmd::Embed { input, genes, species, orthologs, normalize, top_n, weights, aggregation, output, name, in_place } => {
            let aggregation = match aggregation.as_str() {
                "weighted" => Aggregation::WeightedMean { weights, top_n },
                "genept" => Aggregation::GenePtMean,
                "scelmo-wa" => Aggregation::ScElmoWa,
                other => anyhow::bail!("unknown --aggregation `{other}`; use weighted, genept or scelmo-wa"),
            };
            let args = app::cells::CellsEmbedArgs {
                input: input.input.clone(),
                read: input.read_options(),
                store: genes,
                species,
                orthologs,
                normalize,
                aggregation,
                output: app::cells::CellOutput { path: output.clone(), in_place, name },
                quiet,
            };
            let r = app::cells::run_cells_embed(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("wrote {} ({})", output.display(), r.written);
                println!("cells      {} × {} ({})", r.n_cells, r.dim, r.aggregation);
                print!("{}", app::genes::coverage_table(&r.gene_coverage));
                println!("cells with no mapped expressed gene: {} (zero vectors, flagged in obs)", r.cells_without_mapped_genes);
                println!("mean per-cell expression on mapped genes: {:.1}%", 100.0 * r.mean_expression_coverage);
                println!("time       {:.2} s", r.seconds);
            }
        }
        CellsCmd::Sentences { input, opts, model, output } => {
            let sargs = opts.args(&input)?;
            let enc;
            let tok = match &model {
                Some(m) => {
                    enc = celltext::encoder::Encoder::load(m, &EncoderOptions::default(), quiet)?;
                    Some(&enc.tokenizer)
                }
                None => None,
            };
            let (_, sentences, budget) = app::cells::make_sentences(&sargs, tok, quiet)?;
            app::cells::write_sentences(&output, &sentences)?;
            if json {
                println!("{}", serde_json::json!({"output": output, "n_cells": sentences.len(), "token_budget": budget}));
            } else {
                println!("wrote {} ({} cells, ablation {})", output.display(), sentences.len(), sargs.ablation);
                if let Some(b) = budget {
                    println!(
                        "genes fitting in {} tokens: mean {:.1}, median {:.1}, min {}, max {}; {} of {} sentences exceed the context",
                        b.max_len, b.summary.mean, b.summary.median, b.summary.min, b.summary.max, b.n_truncated, sentences.len()
                    );
                }
            }
        }
        CellsCmd::EmbedSentences { input, opts, model, output, name, in_place, chunk } => {
            let args = app::cells::EmbedSentencesArgs {
                sentences: opts.args(&input)?,
                model: model.model.clone(),
                options: model.options()?,
                batch_tokens: model.batch_tokens,
                chunk_texts: chunk,
                output: app::cells::CellOutput { path: output.clone(), in_place, name },
                quiet,
                stop_after_chunks: std::env::var("CELLTEXT_TEST_STOP_AFTER_CHUNKS").ok().and_then(|v| v.parse().ok()),
            };
            let r = app::cells::run_embed_sentences(&args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("wrote {} ({})", output.display(), r.written);
                println!("cells      {} × {} (ablation {}, {} truncated at {} tokens)", r.n_cells, r.dim, r.ablation, r.n_truncated, r.model.max_length);
                if let (Some(mean), Some(med), Some(min)) = (r.genes_in_context_mean, r.genes_in_context_median, r.genes_in_context_min) {
                    println!("genes in context: mean {mean:.1}, median {med:.1}, min {min}");
                }
                println!("speed      {:.1} s, {:.0} tokens/s, padding {:.1} %", r.seconds, r.tokens_per_second, 100.0 * r.padding_fraction);
            }
        }
    }
    Ok(())
}
