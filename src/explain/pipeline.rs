//! `celltext explain`: which genes make the MLP call a cell type.
//!
//! 1. Reads the matrix and the `--label` column, splits the labelled cells as `celltext classify`
//!    does (stratified, `--test-fraction`, `--seed`), computes the cell vectors as
//!    `cells embed-sentences` (`--on sentences`: GenePT-s prompt, seeded tie shuffle, the model's
//!    pooling) or `cells embed` (`--on genept-w`: top-N expression-weighted mean) would, and trains
//!    the MLP exactly as `classify --method mlp` would on that one source (same flags and seed).
//! 2. Picks up to `--cells-per-class` test cells per class: correctly predicted ones first, then
//!    misclassified ones, each in cell order.
//! 3. Integrated gradients of the cell's *true*-class logit ([`crate::explain::ig`]): through the
//!    encoder with respect to the input word embeddings, summed over each gene's word pieces; or
//!    with respect to the normalised GenePT-w weights of the cell's top-N genes.
//! 4. Per class: genes ranked by mean attribution over the explained cells, the top `--top`, and
//!    with `--markers` the class's markers among them and each marker's rank.
//!
//! Writes `OUT/explain.tsv`, `OUT/report.md`, `OUT/report.json` and `OUT/manifest.json`, the
//! folder built beside `OUT` and committed whole.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};

use crate::cells::ablation::Ablation;
use crate::cells::matrix::{find_obs_column, ExpressionMatrix};
use crate::cells::pipeline::{read_normalized, sentences_of, InputNorm, SentenceArgs};
use crate::cells::read::ReadOptions;
use crate::cells::sentences::{CellSentence, GENEPT_S_PREFIX};
use crate::cells::weighted::{embed_cells, Aggregation, TopN, Weights};
use crate::classify::mlp::{Fusion, MlpConfig, Source, TrainedMlp};
use crate::classify::split::stratified_split;
use crate::encoder::backends::candle::CandleBackend;
use crate::encoder::{EncoderOptions, ModelIdentity};
use crate::explain::ig::{genept_w_ig, IgResult, SentenceIg, DEFAULT_STEPS};

/// `--steps` default on the GenePT-w path.
pub const GENEPT_W_STEPS: usize = 1024;
use crate::explain::{gene_spans, mark_markers, rank_genes, sum_by_gene, token_genes, Markers};

pub use super::arguments::{ExplainArgs, ExplainOn};
use super::report::write_outputs;
pub use super::report::{
    explain_tsv, render_markdown, CellRecord, ClassExplanation, ExplainManifest, ExplainReport,
    MarkerRank,
};
use crate::genes::store::GeneEmbeddings;
use crate::genes::Species;
use crate::io::{sha256_file, TOOL_VERSION};

/// A step of the run for the user, through [`crate::progress::note`].
fn say(quiet: bool, msg: impl AsRef<str>) {
    crate::progress::note(quiet, &format!("celltext explain: {}", msg.as_ref()));
}

/// The cell vectors of every cell and what the explanation needs to revisit one cell.
enum Features {
    Sentences {
        enc: Box<crate::encoder::Encoder>,
        sentences: Vec<CellSentence>,
    },
    GeneptW {
        store: GeneEmbeddings,
        rows: Vec<Option<usize>>,
        store_manifest: Option<serde_json::Value>,
    },
}

fn check_args(args: &ExplainArgs) -> Result<()> {
    if args.cells_per_class == 0 || args.top == 0 || args.steps == Some(0) || args.chunk == 0 {
        bail!("--cells-per-class, --top, --steps and --chunk must each be at least 1");
    }
    if let Some(s) = args.steps {
        crate::explain::ig::check_steps(s)?;
    }
    // one pass holds --chunk interpolated copies of a sentence (≤ 512 tokens × ≤ 1024 dims)
    crate::limits::check_elements(
        &format!("--chunk {} (interpolation points per pass)", args.chunk),
        args.chunk as u128 * 512 * 1024,
    )?;
    match args.on {
        ExplainOn::Sentences if args.model.is_none() => {
            bail!("--on sentences needs --model (e.g. -m minilm)")
        }
        ExplainOn::GeneptW if args.genes.is_none() => {
            bail!("--on genept-w needs --genes STORE (a gene store from `celltext genes embed`)")
        }
        ExplainOn::GeneptW if args.top_n == 0 => bail!("--top-n must be at least 1"),
        _ => Ok(()),
    }
}

/// The classes (sorted distinct non-empty labels) and every cell's class (usize::MAX: unlabelled).
fn labels_of(m: &ExpressionMatrix, args: &ExplainArgs) -> Result<(Vec<String>, Vec<usize>)> {
    let col = find_obs_column(&m.obs, &args.label, Some(&args.input)).context("--label")?;
    let raw = col.to_labels();
    let missing = crate::cells::matrix::is_missing_label;
    let mut names: Vec<String> = raw.iter().filter(|s| !missing(s)).cloned().collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        bail!(
            "{}: --label {}: {} distinct labels; the MLP needs at least 2 classes",
            args.input.display(),
            args.label,
            names.len()
        );
    }
    let y = raw
        .iter()
        .map(|s| {
            if missing(s) {
                usize::MAX
            } else {
                names.binary_search(s).unwrap_or(usize::MAX)
            }
        })
        .collect();
    Ok((names, y))
}

/// The top-N mapped expressed genes of cell `i` (value descending, then column), as
/// [`embed_cells`]'s weighted mean takes them: `(column, weight, store row)`.
fn top_genes(
    m: &ExpressionMatrix,
    rows: &[Option<usize>],
    i: usize,
    n: usize,
) -> Vec<(usize, f32, usize)> {
    let mut c: Vec<(usize, f32, usize)> =
        m.x.row(i)
            .filter(|(_, v)| *v > 0.0)
            .filter_map(|(j, v)| rows[j].map(|r| (j, v, r)))
            .collect();
    c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    c.truncate(n);
    c
}

/// Explained test cells of class `c`: correctly predicted first, then the others, in cell order.
fn pick_cells(
    test: &[usize],
    pred: &[(usize, f32)],
    y: &[usize],
    c: usize,
    n: usize,
) -> Vec<usize> {
    let of_class: Vec<(usize, bool)> = test
        .iter()
        .zip(pred)
        .filter(|(&i, _)| y[i] == c)
        .map(|(&i, p)| (i, p.0 == c))
        .collect();
    let mut v: Vec<usize> = of_class.iter().filter(|x| x.1).map(|x| x.0).collect();
    v.extend(of_class.iter().filter(|x| !x.1).map(|x| x.0));
    v.truncate(n);
    v
}

/// The output contract before any work: -o is a folder replaced whole, so it may not hold or lie
/// in an input, and an existing folder must be empty or an earlier `explain` report. Returns the
/// markers (read once the paths are known apart) and the output's lock.
fn check_outputs(args: &ExplainArgs) -> Result<(Option<Markers>, crate::outputs::OutputLock)> {
    let store_files = args
        .genes
        .as_deref()
        .map(|g| crate::genes::store::store_paths(&crate::genes::store::store_prefix(g)));
    let mut inputs: Vec<&Path> = vec![&args.input];
    inputs.extend(args.markers.as_deref());
    inputs.extend(args.model.as_deref().map(Path::new).filter(|p| p.exists()));
    inputs.extend(store_files.iter().flat_map(|s| s.all()));
    crate::outputs::check_apart(&[&args.out], &inputs)?;
    crate::outputs::check_replaceable_dir(&args.out, "--out", "report.json", Some("explain"))?;
    let markers = args.markers.as_deref().map(Markers::read).transpose()?;
    Ok((markers, crate::outputs::OutputLock::acquire(&args.out)?))
}

/// The cell vectors `--on` names, computed as `cells embed-sentences` / `cells embed` would, with
/// what explaining one cell needs again and the source's obsm name.
fn cell_features(
    args: &ExplainArgs,
    m: &ExpressionMatrix,
    read: &ReadOptions,
    notes: &mut Vec<String>,
) -> Result<(Features, Vec<f32>, usize, &'static str)> {
    let r = match args.on {
        ExplainOn::Sentences => {
            let model = args.model.as_deref().unwrap_or_default();
            let enc = crate::encoder::load_encoder(model, &EncoderOptions::default(), args.quiet)?;
            let sargs = SentenceArgs {
                input: args.input.clone(),
                read: read.clone(),
                max_genes: None,
                ties_stable: false,
                seed: args.seed,
                template: GENEPT_S_PREFIX.to_string(),
                ablation: Ablation::None,
            };
            let (sentences, _) = sentences_of(m, &sargs, Some(&enc.tokenizer))?;
            let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
            let pb = crate::progress::bar(texts.len() as u64, "cells embedded", args.quiet);
            let emb = enc.embed_texts(&texts, 8192, Some(&pb))?;
            pb.finish_and_clear();
            let f = Features::Sentences {
                enc: Box::new(enc),
                sentences,
            };
            (f, emb.data, emb.dim, "X_celltext_sentences")
        }
        ExplainOn::GeneptW => {
            let path = args.genes.as_deref().unwrap_or(Path::new(""));
            let store = GeneEmbeddings::load(path)?;
            let store_manifest = GeneEmbeddings::manifest(path)?;
            let (rows, cov) = crate::genes::pipeline::coverage(
                &store.symbols,
                &m.genes,
                Species::Human,
                false,
                None,
            )?;
            notes.push(format!(
                "{} of {} dataset genes have a vector in the store",
                cov.n_genes - cov.n_unmatched,
                cov.n_genes
            ));
            let agg = Aggregation::WeightedMean {
                weights: Weights::Expr,
                top_n: TopN::N(args.top_n),
            };
            let emb = embed_cells(&m.x, &rows, &store, &agg)?;
            let (data, dim) = (emb.data, emb.dim);
            let f = Features::GeneptW {
                store,
                rows,
                store_manifest,
            };
            (f, data, dim, "X_celltext_genept_w")
        }
    };
    Ok(r)
}

/// Integrated gradients of cell `i` towards class `c` over `steps`: the result, (gene,
/// attribution) pairs and the prefix tokens' attribution; None for a GenePT-w cell without a
/// mapped expressed gene.
fn explain_cell(
    features: &Features,
    bert: Option<&CandleBackend>,
    mlp: &TrainedMlp,
    m: &ExpressionMatrix,
    args: &ExplainArgs,
    (i, c, steps): (usize, usize, usize),
    pb: &indicatif::ProgressBar,
) -> Result<Option<(IgResult, Vec<(String, f32)>, f32)>> {
    let r = match &features {
        Features::Sentences { enc, sentences } => {
            let s = &sentences[i];
            let e = enc
                .tokenizer
                .inner()
                .encode(s.text.as_str(), true)
                .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
            let ig = SentenceIg {
                bert: bert.context("candle encoder")?,
                pooling: enc.pooling,
                normalize: enc.normalize,
                mlp,
                chunk: args.chunk,
            }
            .attribute(e.get_ids(), c, steps, &|k| pb.inc(k as u64))?;
            let tg = token_genes(e.get_offsets(), &gene_spans(&s.prefix, &s.genes));
            let by_gene = sum_by_gene(&ig.attributions, &tg);
            let n = ig.attributions.len();
            let prefix: f32 = (1..n.saturating_sub(1))
                .filter(|&t| tg[t].is_none())
                .map(|t| ig.attributions[t])
                .sum();
            let genes = by_gene
                .into_iter()
                .map(|(g, a, _)| (s.genes[g].clone(), a))
                .collect();
            (ig, genes, prefix)
        }
        Features::GeneptW { store, rows, .. } => {
            let top = top_genes(m, rows, i, args.top_n);
            if top.is_empty() {
                pb.inc(1);
                return Ok(None);
            }
            let vecs: Vec<f32> = top
                .iter()
                .flat_map(|t| store.row(t.2).iter().copied())
                .collect();
            let w: Vec<f32> = top.iter().map(|t| t.1).collect();
            let ig = genept_w_ig(mlp, &vecs, &w, c, steps)?;
            pb.inc(1);
            let genes = top
                .iter()
                .zip(&ig.attributions)
                .map(|(t, &a)| (m.genes[t.0].clone(), a))
                .collect();
            (ig, genes, 0.0)
        }
    };
    Ok(Some(r))
}

/// Per class: genes ranked by mean attribution over the explained cells (the top `--top`), and
/// with markers each marker's rank.
fn class_explanations(
    args: &ExplainArgs,
    names: &[String],
    per_class_genes: &[Vec<Vec<(String, f32)>>],
    markers: Option<&Markers>,
    (test, y): (&[usize], &[usize]),
    (picked, pred_of): (&[Vec<usize>], &std::collections::HashMap<usize, usize>),
) -> Vec<ClassExplanation> {
    names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let cg = &per_class_genes[c];
            let mut all = rank_genes(cg, usize::MAX);
            let class_markers = markers.and_then(|mk| mk.of(name));
            let mut marker_ranks = Vec::new();
            if let Some(mk) = class_markers {
                mark_markers(&mut all, mk);
                for g in mk {
                    let rank = all
                        .iter()
                        .position(|s| s.gene.eq_ignore_ascii_case(g))
                        .map(|r| r + 1);
                    marker_ranks.push(MarkerRank {
                        gene: g.clone(),
                        rank,
                    });
                }
            }
            let n_ranked = all.len();
            all.truncate(args.top);
            ClassExplanation {
                class: name.clone(),
                n_test_cells: test.iter().filter(|&&i| y[i] == c).count(),
                n_explained: picked[c].len(),
                n_correct: picked[c].iter().filter(|&&i| pred_of[&i] == c).count(),
                marker_hits: class_markers.map(|_| all.iter().filter(|g| g.marker).count()),
                top_genes: all,
                markers: marker_ranks,
                n_genes_ranked: n_ranked,
            }
        })
        .collect()
}

/// The report's one-line description of the attribution method.
fn method_text(args: &ExplainArgs, steps: usize) -> String {
    match args.on {
    ExplainOn::Sentences => format!(
        "integrated gradients ({} midpoint steps) of the true-class MLP logit w.r.t. the input word embeddings, baseline [PAD] (keeping [CLS]/[SEP]), summed over hidden dimensions and each gene's word pieces",
        steps
    ),
    ExplainOn::GeneptW => format!(
        "integrated gradients ({} midpoint steps in u, α = u³) of the true-class MLP logit w.r.t. the normalised expression weights of the cell's top {} genes, baseline 0 (the zero cell vector)",
        steps, args.top_n
    ),
}
}

impl Features {
    /// The candle encoder integrated gradients run through (sentences only).
    fn candle_backend(&self) -> Result<Option<CandleBackend>> {
        let Features::Sentences { enc, .. } = self else {
            return Ok(None);
        };
        let wf = crate::encoder::weights::WeightFiles::open(Path::new(&enc.identity.dir))?;
        let bert = CandleBackend::load(&wf, &enc.config, &Device::Cpu, DType::F32)?;
        Ok(Some(bert))
    }

    /// The manifest's model, or store and its manifest.
    fn provenance(
        &self,
        args: &ExplainArgs,
    ) -> (
        Option<ModelIdentity>,
        Option<String>,
        Option<serde_json::Value>,
    ) {
        match self {
            Features::Sentences { enc, .. } => (Some(enc.identity.clone()), None, None),
            Features::GeneptW { store_manifest, .. } => (
                None,
                args.genes.as_ref().map(|p| p.display().to_string()),
                store_manifest.clone(),
            ),
        }
    }
}

/// A note naming the marker cell types that are no class of `--label` (None when all are).
fn unmatched_markers(markers: Option<&Markers>, names: &[String], label: &str) -> Option<String> {
    let unmatched: Vec<&str> = markers?
        .by_type
        .keys()
        .filter(|t| !names.iter().any(|n| n.eq_ignore_ascii_case(t)))
        .map(String::as_str)
        .collect();
    (!unmatched.is_empty()).then(|| {
        format!(
            "marker cell types that are no class of --label {label}: {}",
            unmatched.join(", ")
        )
    })
}

/// The labelled cells split as `classify` splits them (stratified, `--test-fraction`, `--seed`):
/// (train, test) cell indices.
fn split_cells(
    args: &ExplainArgs,
    names: &[String],
    y: &[usize],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let labelled: Vec<usize> = (0..y.len()).filter(|&i| y[i] != usize::MAX).collect();
    let y_lab: Vec<usize> = labelled.iter().map(|&i| y[i]).collect();
    let split = stratified_split(&y_lab, names, args.test_fraction, args.seed)?;
    let train: Vec<usize> = split.train.iter().map(|&k| labelled[k]).collect();
    let test: Vec<usize> = split.test.iter().map(|&k| labelled[k]).collect();
    Ok((train, test))
}

/// The MLP, as `classify --method mlp --embedding SOURCE` trains it, its test predictions and
/// test accuracy.
fn train_mlp(
    args: &ExplainArgs,
    source: Source,
    (y, n_classes): (&[usize], usize),
    (train, test): (&[usize], &[usize]),
) -> Result<(TrainedMlp, Vec<(usize, f32)>, f64)> {
    let cfg = MlpConfig {
        seed: args.seed,
        fusion: Fusion::Concat,
        ..args.mlp.clone()
    };
    say(args.quiet, format!("training the MLP on {}", source.name));
    let src = [source];
    let mlp = TrainedMlp::fit(&src, y, n_classes, train, &cfg)?;
    let pred = mlp.predict(&src, test)?;
    let correct = test.iter().zip(&pred).filter(|(&i, p)| y[i] == p.0).count();
    let test_accuracy = correct as f64 / test.len().max(1) as f64;
    Ok((mlp, pred, test_accuracy))
}

/// Run the explanation and write the report folder.
pub fn run_explain(args: &ExplainArgs) -> Result<ExplainReport> {
    let t0 = std::time::Instant::now();
    check_args(args)?;
    let steps = args.steps.unwrap_or(match args.on {
        ExplainOn::Sentences => DEFAULT_STEPS,
        ExplainOn::GeneptW => GENEPT_W_STEPS,
    });
    let (markers, _lock) = check_outputs(args)?;
    let read = ReadOptions {
        layer: args.layer.clone(),
        gene_symbols_key: args.gene_symbols_key.clone(),
        ..ReadOptions::default()
    };
    say(args.quiet, format!("reading {}", args.input.display()));
    let m = read_normalized(&args.input, &read, InputNorm::Raw, args.quiet)?;
    let (names, y) = labels_of(&m, args)?;
    let (train, test) = split_cells(args, &names, &y)?;
    let mut notes = Vec::new();

    // the cell vectors, as `cells embed-sentences` / `cells embed` compute them
    let (features, data, dim, source) = cell_features(args, &m, &read, &mut notes)?;

    let (mlp, pred, test_accuracy) = train_mlp(
        args,
        Source::new(source, &data, dim),
        (&y, names.len()),
        (&train, &test),
    )?;

    let picked: Vec<Vec<usize>> = (0..names.len())
        .map(|c| pick_cells(&test, &pred, &y, c, args.cells_per_class))
        .collect();
    let pred_of: std::collections::HashMap<usize, usize> =
        test.iter().zip(&pred).map(|(&i, p)| (i, p.0)).collect();
    let n_cells: usize = picked.iter().map(Vec::len).sum();

    let bert = features.candle_backend()?;
    let per_cell_units = match args.on {
        ExplainOn::Sentences => steps as u64,
        ExplainOn::GeneptW => 1,
    };
    let pb = crate::progress::bar(n_cells as u64 * per_cell_units, "steps", args.quiet);
    let mut cells = Vec::with_capacity(n_cells);
    let mut per_class_genes: Vec<Vec<Vec<(String, f32)>>> = vec![Vec::new(); names.len()];
    for (c, idx) in picked.iter().enumerate() {
        for &i in idx {
            pb.set_message(format!("{} ({})", m.cell_ids[i], names[c]));
            let Some((ig, genes, prefix)) =
                explain_cell(&features, bert.as_ref(), &mlp, &m, args, (i, c, steps), &pb)?
            else {
                notes.push(format!(
                    "cell {} has no mapped expressed gene; skipped",
                    m.cell_ids[i]
                ));
                continue;
            };
            cells.push(CellRecord {
                cell_id: m.cell_ids[i].clone(),
                class: names[c].clone(),
                predicted: names[pred_of[&i]].clone(),
                f_input: ig.f_input,
                f_baseline: ig.f_baseline,
                attribution_sum: ig.attributions.iter().sum(),
                relative_gap: ig.relative_gap(),
                n_genes: genes.len(),
                prefix_attribution: prefix,
            });
            per_class_genes[c].push(genes);
        }
    }
    pb.finish_and_clear();

    let classes = class_explanations(
        args,
        &names,
        &per_class_genes,
        markers.as_ref(),
        (&test, &y),
        (&picked, &pred_of),
    );
    notes.extend(unmatched_markers(markers.as_ref(), &names, &args.label));
    let mut gaps: Vec<f32> = cells.iter().map(|c| c.relative_gap).collect();
    gaps.sort_by(f32::total_cmp);
    let (model, store, store_manifest) = features.provenance(args);
    let method = method_text(args, steps);
    let mut report = ExplainReport {
        manifest: ExplainManifest {
            tool: TOOL_VERSION.into(),
            command: "explain".into(),
            input: args.input.display().to_string(),
            input_sha256: if args.input.is_file() {
                sha256_file(&args.input)?
            } else {
                String::new()
            },
            model,
            store,
            store_manifest,
            parameters: args.clone(),
            n_train: train.len(),
            n_test: test.len(),
            mlp_best_epoch: mlp.history().best_epoch,
            files: Vec::new(),
        },
        on: args.on,
        source: source.into(),
        method,
        steps,
        test_accuracy,
        classes,
        cells,
        max_relative_gap: gaps.last().copied().unwrap_or(0.0),
        median_relative_gap: gaps.get(gaps.len() / 2).copied().unwrap_or(0.0),
        seconds: 0.0,
        notes,
    };
    report.seconds = t0.elapsed().as_secs_f64();
    crate::outputs::atomic_dir_with(&args.out, |tmp| write_outputs(tmp, &mut report))?;
    Ok(report)
}
