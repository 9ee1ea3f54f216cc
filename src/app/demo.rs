//! `celltext demo`: the whole pipeline on bundled real data (601 pbmc3k cells, 9 Seurat labels)
//! with real weights — gene embeddings → GenePT-w and sentence embeddings → KNN and MLP →
//! report and plots.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cells::ablation::Ablation;
use crate::cells::pipeline::{
    CellOutput, CellsEmbedArgs, EmbedSentencesArgs, InputNorm, SentenceArgs,
};
use crate::cells::read::ReadOptions;
use crate::cells::weighted::{Aggregation, TopN, Weights};
use crate::classify::pipeline::{
    run_classify, ClassifyArgs, ClassifyReport, FeatureSpace, Method, Scores,
};
use crate::encoder::EncoderOptions;
use crate::genes::pipeline::{run_genes_embed, GenesEmbedArgs, MissingPolicy};
use crate::genes::{Species, SummaryCorpus};

const DEMO_H5AD: &[u8] = include_bytes!("../../assets/data/pbmc3k_demo.h5ad");

/// What `celltext demo` takes; the doc comments are the flags' `--help` texts.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Model (default: all-MiniLM-L6-v2 from models-local/ or the HF cache).
    #[arg(long, short = 'm', default_value = "minilm")]
    pub model: String,
    /// Output directory.
    #[arg(long, default_value = "celltext-demo")]
    pub out: PathBuf,
    /// Genes per cell in the GenePT-w average.
    #[arg(long, default_value_t = 100)]
    pub top_n: usize,
    /// Split and MLP seeds, comma-separated: every classifier runs once per seed and the table
    /// gives mean ± sd (ddof 1). The first seed also orders tied genes in the sentences.
    #[arg(long = "seeds", alias = "seed", value_delimiter = ',', num_args = 1.., default_values_t = vec![0u64, 1, 2])]
    pub seeds: Vec<u64>,
    /// No progress output (the CLI's global `--quiet`).
    #[arg(skip)]
    pub quiet: bool,
}

pub struct DemoResult {
    pub out: PathBuf,
    pub steps: Vec<(String, f64)>,
    pub seeds: Vec<u64>,
    /// One report per (run, seed), in run order then seed order.
    pub table: Vec<DemoRun>,
    pub seconds: f64,
}

pub struct DemoRun {
    pub run: String,
    pub seed: u64,
    pub report: ClassifyReport,
}

fn step<T>(
    steps: &mut Vec<(String, f64)>,
    name: &str,
    quiet: bool,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !quiet {
        eprintln!("▶ {name}");
    }
    let t = Instant::now();
    let r = f().with_context(|| format!("demo step: {name}"))?;
    steps.push((name.to_string(), t.elapsed().as_secs_f64()));
    Ok(r)
}

pub fn run_demo(args: &DemoArgs) -> Result<DemoResult> {
    let t0 = Instant::now();
    let first_seed = check_seeds(&args.seeds)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let input = args.out.join("pbmc3k_demo.h5ad");
    crate::io::atomic_write(&input, DEMO_H5AD)?;
    let read = ReadOptions {
        layer: Some("counts".into()),
        ..Default::default()
    };
    let mut steps = vec![];
    let store = embed_used_genes(args, &input, &read, &mut steps)?;
    let with_w = args.out.join("pbmc3k_demo.celltext.h5ad");
    embed_cells(args, &input, &read, &store, &with_w, &mut steps)?;
    embed_sentences(args, first_seed, &read, &with_w, &mut steps)?;
    let table = classify_all(args, &with_w, &mut steps)?;
    Ok(DemoResult {
        out: args.out.clone(),
        steps,
        seeds: args.seeds.clone(),
        table,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `--seeds`: at least one, each once; returns the first (it orders tied genes in sentences).
fn check_seeds(seeds: &[u64]) -> Result<u64> {
    let Some(&first_seed) = seeds.first() else {
        anyhow::bail!("--seeds: give at least one seed, e.g. --seeds 0,1,2");
    };
    if seeds
        .iter()
        .enumerate()
        .any(|(i, s)| seeds[..i].contains(s))
    {
        anyhow::bail!("--seeds: each seed once, e.g. --seeds 0,1,2");
    }
    Ok(first_seed)
}

/// Step 1: gene embeddings for the genes GenePT-w will use (every gene in some cell's top N);
/// returns the store prefix.
fn embed_used_genes(
    args: &DemoArgs,
    input: &Path,
    read: &ReadOptions,
    steps: &mut Vec<(String, f64)>,
) -> Result<PathBuf> {
    let m = crate::cells::pipeline::read_normalized(input, read, InputNorm::Raw, true)?;
    let used = crate::cells::pipeline::top_n_gene_set(&m, args.top_n);
    let corpus = SummaryCorpus::bundled(Species::Human)?;
    let mut tsv = String::from("symbol\ttext\n");
    let mut n_sum = 0;
    for g in corpus.genes.iter().filter(|g| used.contains(&g.symbol)) {
        tsv.push_str(&format!("{}\t{}\n", g.symbol, g.text));
        n_sum += 1;
    }
    let summaries = args.out.join("summaries_used.tsv");
    crate::io::atomic_write(&summaries, tsv.as_bytes())?;
    let store = args.out.join("genes");
    step(
        steps,
        &format!(
            "embed {n_sum} gene summaries (genes in some cell's top {})",
            args.top_n
        ),
        args.quiet,
        || {
            run_genes_embed(&GenesEmbedArgs {
                model: args.model.clone(),
                options: EncoderOptions::default(),
                species: Species::Human,
                summaries: Some(summaries.clone()),
                out: store.clone(),
                dataset_genes: None,
                missing: MissingPolicy::Skip,
                batch_tokens: 8192,
                quiet: args.quiet,
                stop_after_chunks: None,
                chunk_texts: 512,
            })
        },
    )?;
    Ok(store)
}

/// Step 2: GenePT-w cell embeddings into obsm of a copy of the input (`with_w`).
fn embed_cells(
    args: &DemoArgs,
    input: &Path,
    read: &ReadOptions,
    store: &Path,
    with_w: &Path,
    steps: &mut Vec<(String, f64)>,
) -> Result<()> {
    step(
        steps,
        "GenePT-w cell embeddings (top-N weighted average)",
        args.quiet,
        || {
            crate::cells::pipeline::run_cells_embed(&CellsEmbedArgs {
                input: input.to_path_buf(),
                read: read.clone(),
                store: store.to_path_buf(),
                species: Species::Human,
                orthologs: false,
                normalize: InputNorm::Raw,
                aggregation: Aggregation::WeightedMean {
                    weights: Weights::Expr,
                    top_n: TopN::N(args.top_n),
                },
                hvg: None,
                idf: false,
                output: CellOutput {
                    path: with_w.to_path_buf(),
                    in_place: false,
                    name: "genept_w".into(),
                },
                quiet: args.quiet,
            })
        },
    )?;
    Ok(())
}

/// Step 3: cell sentences through the encoder, into the same file.
fn embed_sentences(
    args: &DemoArgs,
    first_seed: u64,
    read: &ReadOptions,
    with_w: &Path,
    steps: &mut Vec<(String, f64)>,
) -> Result<()> {
    step(
        steps,
        "cell-sentence embeddings (GenePT-s)",
        args.quiet,
        || {
            crate::cells::pipeline::run_embed_sentences(&EmbedSentencesArgs {
                sentences: SentenceArgs {
                    input: with_w.to_path_buf(),
                    read: read.clone(),
                    max_genes: None,
                    ties_stable: false,
                    seed: first_seed,
                    template: crate::cells::sentences::GENEPT_S_PREFIX.into(),
                    ablation: Ablation::None,
                },
                model: args.model.clone(),
                options: EncoderOptions::default(),
                batch_tokens: 8192,
                chunk_texts: 512,
                output: CellOutput {
                    path: with_w.to_path_buf(),
                    in_place: true,
                    name: "sentences".into(),
                },
                quiet: args.quiet,
                stop_after_chunks: None,
            })
        },
    )?;
    Ok(())
}

/// Step 4: every classifier once per seed.
fn classify_all(
    args: &DemoArgs,
    with_w: &Path,
    steps: &mut Vec<(String, f64)>,
) -> Result<Vec<DemoRun>> {
    let seeds = &args.seeds;
    let mut table = vec![];
    // The count baseline is scanpy's standard PCA-50 (what users run); text alone, and text
    // fused with it in the MLP, side by side.
    let (g, st) = ("X_celltext_genept_w", "X_celltext_sentences");
    let runs: Vec<(&str, Method, FeatureSpace, Vec<&str>)> = vec![
        ("knn-pca", Method::Knn, FeatureSpace::Counts, vec![]),
        (
            "knn-genept-w",
            Method::Knn,
            FeatureSpace::Embedding,
            vec![g],
        ),
        (
            "knn-sentences",
            Method::Knn,
            FeatureSpace::Embedding,
            vec![st],
        ),
        (
            "mlp-pca+genept-w",
            Method::Mlp,
            FeatureSpace::Counts,
            vec![g],
        ),
        (
            "mlp-pca+sentences",
            Method::Mlp,
            FeatureSpace::Counts,
            vec![st],
        ),
        ("mlp-all", Method::Mlp, FeatureSpace::Counts, vec![g, st]),
    ];
    for (name, method, on, keys) in runs {
        let label = format!("classify: {name} (seeds {})", join_seeds(seeds));
        let reports = step(steps, &label, args.quiet, || {
            let mut reports = Vec::with_capacity(seeds.len());
            for &seed in seeds {
                let mut a = ClassifyArgs::new(with_w.to_path_buf(), "label");
                a.method = method;
                a.on = on;
                if on == FeatureSpace::Counts {
                    a.layer = Some("counts".into());
                }
                a.embeddings = keys.iter().map(|k| k.to_string()).collect();
                a.seed = seed;
                a.quiet = true;
                if method == Method::Knn {
                    a.ks = Some(vec![10, 1, 3, 5, 25, 50]);
                }
                a.report_dir = Some(report_dir(&args.out, seed, name));
                reports.push((seed, run_classify(&a)?));
            }
            Ok(reports)
        })?;
        table.extend(reports.into_iter().map(|(seed, report)| DemoRun {
            run: name.to_string(),
            seed,
            report,
        }));
    }
    Ok(table)
}

/// Where the report of one run and seed goes: `OUT/report/seed<S>/<run>/`.
pub fn report_dir(out: &Path, seed: u64, run: &str) -> PathBuf {
    out.join("report").join(format!("seed{seed}")).join(run)
}

pub fn join_seeds(seeds: &[u64]) -> String {
    seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row per predictor, scores as mean ± sd (ddof 1) over the seeds; a single-source MLP arm
/// that several fusion runs share is shown once (from the first run that has it).
pub fn demo_table(r: &DemoResult) -> String {
    let mut s = String::from(
        "| run | predictor | accuracy | weighted F1 | macro F1 | kappa |\n|---|---|---|---|---|---|\n",
    );
    // (method, arm) -> (run shown, display name, scores over seeds), in first-seen order
    let mut rows: Vec<((String, String), String, String, Vec<Scores>)> = Vec::new();
    for d in &r.table {
        let method = d.run.split('-').next().unwrap_or(&d.run).to_string();
        for arm in &d.report.results {
            let key = (method.clone(), arm.name.clone());
            match rows.iter_mut().find(|row| row.0 == key) {
                Some(row) if row.1 == d.run => row.3.push(arm.scores),
                Some(_) => {}
                None => rows.push((
                    key,
                    d.run.clone(),
                    format!(
                        "{}{}",
                        arm.name,
                        arm.k.map(|k| format!(" (k={k})")).unwrap_or_default()
                    ),
                    vec![arm.scores],
                )),
            }
        }
    }
    for (_, run, name, all) in rows {
        let (m, sd) = Scores::mean_sd(&all);
        let f = |m: f64, d: f64| {
            if all.len() > 1 {
                format!("{m:.3} ± {d:.3}")
            } else {
                format!("{m:.3}")
            }
        };
        s.push_str(&format!(
            "| {run} | {name} | {} | {} | {} | {} |\n",
            f(m.accuracy, sd.accuracy),
            f(m.weighted_f1, sd.weighted_f1),
            f(m.macro_f1, sd.macro_f1),
            f(m.cohen_kappa, sd.cohen_kappa)
        ));
    }
    s
}

pub fn default_out() -> PathBuf {
    Path::new("celltext-demo").to_path_buf()
}
