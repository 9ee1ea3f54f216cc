//! celltext CLI: parse arguments, call the library, print.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use celltext::app;
use celltext::app::genes::MissingPolicy;
use celltext::encoder::{parse_device, parse_dtype, EncoderOptions, Pooling};
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
    /// cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

impl ModelArgs {
    fn options(&self) -> Result<EncoderOptions> {
        Ok(EncoderOptions {
            pooling: self.pooling,
            normalize: self.normalize,
            max_length: self.max_length,
            lowercase: if self.lowercase { Some(true) } else if self.cased { Some(false) } else { None },
            device: parse_device(&self.device)?,
            dtype: parse_dtype(&self.dtype)?,
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
    /// Gene embeddings from NCBI summaries, gene-ID coverage, export.
    #[command(subcommand)]
    Genes(GenesCmd),
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
        #[arg(long)]
        genes: PathBuf,
        #[arg(long, default_value = "human")]
        species: Species,
        /// Fall back to mouse <-> human orthologs.
        #[arg(long)]
        orthologs: bool,
    },
    /// Export a store as .npy (rows in STORE.genes.tsv order) or TSV (symbol + values).
    Export {
        #[arg(long)]
        store: PathBuf,
        #[arg(long, default_value = "npy")]
        format: String,
        #[arg(long)]
        out: PathBuf,
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
        GenesCmd::Coverage { store, genes, species, orthologs } => {
            let s = celltext::genes::GeneEmbeddings::load(&store)?;
            let names = app::genes::read_gene_list(&genes)?;
            let (_, cov) = app::genes::coverage(&s.symbols, &names, species, orthologs, None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cov)?);
            } else {
                print!("{}", app::genes::coverage_table(&cov));
            }
        }
        GenesCmd::Export { store, format, out } => {
            app::genes::export(&store, &format, &out)?;
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
