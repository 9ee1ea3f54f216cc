//! `celltext experiment CONFIG.toml`: a grid of models × representations × ablations ×
//! classifiers × seeds on one dataset. Embeddings are cached by content hash (inputs, model
//! checksum, parameters) so re-runs reuse them; one results table (mean ± sd over seeds) + plots.
//! `baselines = ["pca"]` adds scanpy's standard PCA-50 (the features of `classify --on counts`,
//! computed once) with every classifier, and `fusions` the MLP on PCA-50 fused with text.
//!
//! Ablations are applied once with `ablation_seed` (the embedding is a property of the
//! representation); the classifier seeds vary the split, the MLP init and the batches.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::cells::ablation::Ablation;
use crate::cells::pipeline::{
    input_checksum, CellOutput, CellsEmbedArgs, EmbedSentencesArgs, InputNorm, SentenceArgs,
};
use crate::cells::read::ReadOptions;
use crate::cells::weighted::{Aggregation, TopN, Weights};
use crate::classify::pipeline::{run_classify, ClassifyArgs, Method, Scores};
use crate::encoder::resolve::resolve;
use crate::encoder::EncoderOptions;
use crate::genes::pipeline::{run_genes_embed, GenesEmbedArgs, MissingPolicy};
use crate::genes::{Species, SummaryCorpus};
use crate::io::{sha256_bytes, write_json, TOOL_VERSION};

/// The `representation` of the PCA-50 baseline rows.
pub const PCA_REPRESENTATION: &str = "pca-50 (scanpy standard)";

fn d_repr() -> Vec<String> {
    vec!["genept-w".into(), "sentences".into()]
}
fn d_abl() -> Vec<String> {
    vec!["none".into()]
}
fn d_cls() -> Vec<String> {
    vec!["knn".into(), "mlp".into()]
}
fn d_seeds() -> Vec<u64> {
    vec![0, 1, 2]
}
fn d_top() -> String {
    "100".into()
}
fn d_models() -> Vec<String> {
    vec!["minilm".into()]
}
fn d_k() -> usize {
    10
}
fn d_bt() -> usize {
    8192
}
fn d_dtype() -> String {
    "f32".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub name: String,
    /// Dataset (.h5ad or an MTX directory); relative paths are relative to the config file.
    /// Optional: `celltext experiment CONFIG --input PATH` gives (or overrides) it.
    #[serde(default)]
    pub input: Option<PathBuf>,
    pub label: String,
    #[serde(default)]
    pub layer: Option<String>,
    #[serde(default)]
    pub species: Option<Species>,
    #[serde(default)]
    pub orthologs: bool,
    #[serde(default = "d_models")]
    pub models: Vec<String>,
    #[serde(default = "d_repr")]
    pub representations: Vec<String>,
    #[serde(default = "d_abl")]
    pub ablations: Vec<String>,
    #[serde(default = "d_cls")]
    pub classifiers: Vec<String>,
    /// KNN k (single value for the table) and an optional sweep.
    #[serde(default = "d_k")]
    pub k: usize,
    #[serde(default)]
    pub k_sweep: Vec<usize>,
    #[serde(default = "d_seeds")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub ablation_seed: u64,
    #[serde(default = "d_top")]
    pub top_n: String,
    #[serde(default)]
    pub max_genes: Option<usize>,
    #[serde(default = "d_bt")]
    pub batch_tokens: usize,
    /// Encoder precision of the gene-summary and sentence embeddings: `f32` or `int8` (the CPU's
    /// dynamic quantization, `--dtype int8`), so f32 and int8 runs of one grid compare downstream.
    #[serde(default = "d_dtype")]
    pub dtype: String,
    /// Older spelling of `baselines = ["pca"]`.
    #[serde(default)]
    pub counts_baseline: bool,
    /// Count baselines, each run with every classifier: `"pca"` = scanpy's standard PCA-50
    /// (`classify --on counts`), computed once and shared by the fusions.
    #[serde(default)]
    pub baselines: Vec<String>,
    /// MLP fusions of the PCA-50 baseline with text representations (concat, per-source
    /// LayerNorm): `"pca+genept-w"`, `"pca+sentences"`, `"pca+genept-w+sentences"`. Sentences
    /// enter without ablation.
    #[serde(default)]
    pub fusions: Vec<String>,
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub model: String,
    pub representation: String,
    pub ablation: String,
    pub classifier: String,
    pub k: Option<usize>,
    pub n_seeds: usize,
    pub mean: Scores,
    pub sd: Scores,
}

/// Parse and fully validate an experiment config, before any work starts: unknown keys (with
/// the valid ones), empty lists, unknown models, representations, ablations and classifiers are
/// errors naming the file and the key.
pub fn parse_config(text: &str, config_path: &Path) -> Result<ExperimentConfig> {
    let cfg: ExperimentConfig =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    validate(&cfg).map_err(|e| anyhow::anyhow!("{}: {e:#}", config_path.display()))?;
    Ok(cfg)
}

fn validate(cfg: &ExperimentConfig) -> Result<()> {
    let nonempty = |key: &str, n: usize| -> Result<()> {
        if n == 0 {
            bail!("`{key}` is empty; give at least one value (or drop the key for the default)")
        }
        Ok(())
    };
    if cfg.name.trim().is_empty() || cfg.name.contains(['/', '\\']) || cfg.name.starts_with('.') {
        bail!(
            "`name` is {:?}; it names the output folder, so it must be non-empty and contain no \
             path separator",
            cfg.name
        )
    }
    if cfg.label.trim().is_empty() {
        bail!("`label` is empty; give the obs column holding the cell labels")
    }
    nonempty("models", cfg.models.len())?;
    nonempty("representations", cfg.representations.len())?;
    nonempty("ablations", cfg.ablations.len())?;
    nonempty("classifiers", cfg.classifiers.len())?;
    nonempty("seeds", cfg.seeds.len())?;
    for m in &cfg.models {
        let p = Path::new(m);
        let hub_like = m.matches('/').count() == 1 && !m.starts_with('.') && !m.starts_with('/');
        if !(p.is_dir() || crate::encoder::card::find_card(m)?.is_some() || hub_like) {
            let names: Vec<String> = crate::encoder::card::builtin_cards()?
                .into_iter()
                .map(|c| c.name)
                .collect();
            bail!(
                "`models`: `{m}` is neither a model directory nor a known card ({}) nor a hub id \
                 like org/name",
                names.join(", ")
            )
        }
    }
    for r in &cfg.representations {
        if !matches!(r.as_str(), "genept-w" | "sentences") {
            bail!("`representations`: unknown value `{r}`; valid values: genept-w, sentences")
        }
    }
    for a in &cfg.ablations {
        a.parse::<Ablation>()
            .map_err(|e| anyhow::anyhow!("`ablations`: {e}"))?;
    }
    for c in &cfg.classifiers {
        crate::choice::parse_choice::<Method>("classifiers", c, true)
            .map_err(|e| anyhow::anyhow!("`classifiers`: {e}"))?;
    }
    if cfg.k == 0 || cfg.k_sweep.contains(&0) {
        bail!("`k` and `k_sweep` values must be at least 1")
    }
    cfg.top_n
        .parse::<TopN>()
        .map_err(|e| anyhow::anyhow!("`top_n`: {e}"))?;
    if cfg.batch_tokens == 0 {
        bail!("`batch_tokens` must be positive")
    }
    if !matches!(cfg.dtype.as_str(), "f32" | "int8") {
        bail!(
            "`dtype`: unknown value `{}`; valid values: f32, int8",
            cfg.dtype
        )
    }
    if cfg.max_genes == Some(0) {
        bail!("`max_genes` must be positive")
    }
    for b in &cfg.baselines {
        if b != "pca" {
            bail!("`baselines`: unknown value `{b}`; valid values: pca (scanpy's standard PCA-50)")
        }
    }
    for f in &cfg.fusions {
        fusion_parts(f, cfg)?;
    }
    Ok(())
}

/// The sources of a `fusions` entry, in order: `pca` first, then text representations, each in
/// `representations`; sentences need the `none` ablation.
fn fusion_parts(f: &str, cfg: &ExperimentConfig) -> Result<Vec<String>> {
    let parts: Vec<String> = f.split('+').map(|p| p.trim().to_string()).collect();
    let valid = "valid values: pca+genept-w, pca+sentences, pca+genept-w+sentences";
    if parts.len() < 2 || parts[0] != "pca" {
        bail!("`fusions`: `{f}` must start with `pca+` and fuse at least one text representation; {valid}")
    }
    for (i, p) in parts.iter().enumerate().skip(1) {
        if !matches!(p.as_str(), "genept-w" | "sentences") || parts[..i].contains(p) {
            bail!("`fusions`: `{f}`: `{p}` is unknown or repeated; {valid}")
        }
        if !cfg.representations.contains(p) {
            bail!("`fusions`: `{f}` needs `{p}` in `representations`")
        }
        if p == "sentences" && !cfg.ablations.iter().any(|a| a == "none") {
            bail!("`fusions`: `{f}` fuses the un-ablated sentences; add \"none\" to `ablations`")
        }
    }
    Ok(parts)
}

/// Whether the PCA-50 baseline is computed (as a row or for a fusion).
fn wants_pca(cfg: &ExperimentConfig) -> bool {
    cfg.counts_baseline || !cfg.baselines.is_empty() || !cfg.fusions.is_empty()
}

fn cached<F: FnOnce(&Path) -> Result<()>>(path: &Path, make: F) -> Result<PathBuf> {
    if !path.exists() {
        make(path)?;
    }
    Ok(path.to_path_buf())
}

/// The dataset: `--input` as given, else the config's `input` (relative to the config's folder
/// when it is not found as given).
fn resolve_input(
    config_path: &Path,
    input: Option<&Path>,
    cfg: &ExperimentConfig,
) -> Result<PathBuf> {
    let base = config_path.parent().unwrap_or(Path::new("."));
    let input = match (input, &cfg.input) {
        (Some(p), _) => {
            if !p.exists() {
                bail!("--input `{}` does not exist", p.display());
            }
            p.to_path_buf()
        }
        (None, Some(p)) => {
            let p = if p.is_relative() && !p.exists() { base.join(p) } else { p.clone() };
            if !p.exists() {
                bail!("{}: input `{}` does not exist (pass --input PATH to use another dataset)", config_path.display(), p.display());
            }
            p
        }
        (None, None) => bail!(
            "{}: no dataset: pass --input PATH (an .h5ad file or an MTX directory) or set `input = \"...\"` in the config",
            config_path.display()
        ),
    };
    Ok(input)
}

/// The encoder options of every embedding in the grid: defaults, at the configured precision.
fn encoder_options(cfg: &ExperimentConfig) -> Result<EncoderOptions> {
    let mut options = EncoderOptions::default();
    options.set_dtype(&cfg.dtype)?;
    Ok(options)
}

/// What every run of the grid shares.
struct Grid<'a> {
    cfg: &'a ExperimentConfig,
    input: &'a Path,
    input_sha: &'a str,
    read: &'a ReadOptions,
    cache: &'a Path,
    species: Species,
    top_n: TopN,
    ablations: &'a [Ablation],
    dataset_genes: &'a [String],
    pca: Option<&'a PathBuf>,
    quiet: bool,
}

/// The gene store of the bundled summaries of the dataset's genes under the model in
/// `model_dir`, embedded once into the cache (`key`: weights, input, species).
fn summaries_store(g: &Grid, model_dir: &Path, key: &str) -> Result<PathBuf> {
    let corpus = SummaryCorpus::bundled(g.species)?;
    let store = g.cache.join(format!("genes-{key}"));
    if !crate::genes::store::store_paths(&store).manifest.exists() {
        // only summaries of genes the dataset has (exact or case-insensitive)
        let wanted: std::collections::HashSet<String> =
            g.dataset_genes.iter().map(|d| d.to_lowercase()).collect();
        let mut tsv = String::from("symbol\ttext\n");
        for gene in corpus
            .genes
            .iter()
            .filter(|gene| wanted.contains(&gene.symbol.to_lowercase()))
        {
            tsv.push_str(&format!("{}\t{}\n", gene.symbol, gene.text));
        }
        let sub = g.cache.join(format!("summaries-{key}.tsv"));
        crate::io::atomic_write(&sub, tsv.as_bytes())?;
        run_genes_embed(&GenesEmbedArgs {
            model: model_dir.display().to_string(),
            options: encoder_options(g.cfg)?,
            species: g.species,
            summaries: Some(sub),
            out: store.clone(),
            dataset_genes: None,
            missing: MissingPolicy::Skip,
            batch_tokens: g.cfg.batch_tokens,
            quiet: g.quiet,
            stop_after_chunks: None,
            chunk_texts: 512,
        })?;
    }
    Ok(store)
}

/// The rows of one model: its cell vectors (cached by weights, input and parameters), each
/// classified per seed, and the configured fusions with the PCA baseline.
fn model_rows(
    g: &Grid,
    model: &str,
    rows: &mut Vec<ResultRow>,
    runs: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let resolved = resolve(model, g.quiet)?;
    let wsha = crate::encoder::weights::WeightFiles::open(&resolved.dir)?.sha256()?;
    // f32 keys stay what they were before `dtype` existed, so earlier caches are reused
    let precision = match g.cfg.dtype.as_str() {
        "f32" => String::new(),
        other => format!("|dtype={other}"),
    };
    let mkey = |parts: &[&str]| {
        sha256_bytes(
            format!(
                "{TOOL_VERSION}|{wsha}{precision}|{}|{}",
                g.input_sha,
                parts.join("|")
            )
            .as_bytes(),
        )[..16]
            .to_string()
    };
    let mut features: Vec<(String, String, PathBuf)> = vec![]; // (representation, ablation, npy)
    if g.cfg.representations.iter().any(|r| r == "genept-w") {
        let key = mkey(&["genes", &format!("{:?}", g.species)]);
        let store = summaries_store(g, &resolved.dir, &key)?;
        let key = mkey(&["genept-w", &g.cfg.top_n]);
        let npy = cached(&g.cache.join(format!("cells-genept-w-{key}.npy")), |p| {
            crate::cells::pipeline::run_cells_embed(&CellsEmbedArgs {
                input: g.input.to_path_buf(),
                read: g.read.clone(),
                store: store.clone(),
                species: g.species,
                orthologs: g.cfg.orthologs,
                normalize: InputNorm::Raw,
                aggregation: Aggregation::WeightedMean {
                    weights: Weights::Expr,
                    top_n: g.top_n,
                },
                hvg: None,
                idf: false,
                output: CellOutput {
                    path: p.to_path_buf(),
                    in_place: false,
                    name: "genept_w".into(),
                },
                quiet: g.quiet,
            })
            .map(|_| ())
        })?;
        features.push(("genept-w".into(), "none".into(), npy));
    }
    if g.cfg.representations.iter().any(|r| r == "sentences") {
        for ab in g.ablations {
            let key = mkey(&[
                "sentences",
                &ab.to_string(),
                &g.cfg.ablation_seed.to_string(),
                &format!("{:?}", g.cfg.max_genes),
            ]);
            let npy = cached(&g.cache.join(format!("cells-sentences-{key}.npy")), |p| {
                crate::cells::pipeline::run_embed_sentences(&EmbedSentencesArgs {
                    sentences: SentenceArgs {
                        input: g.input.to_path_buf(),
                        read: g.read.clone(),
                        max_genes: g.cfg.max_genes,
                        ties_stable: false,
                        seed: g.cfg.ablation_seed,
                        template: crate::cells::sentences::GENEPT_S_PREFIX.to_string(),
                        ablation: *ab,
                    },
                    model: resolved.dir.display().to_string(),
                    options: encoder_options(g.cfg)?,
                    batch_tokens: g.cfg.batch_tokens,
                    chunk_texts: 512,
                    output: CellOutput {
                        path: p.to_path_buf(),
                        in_place: false,
                        name: "sentences".into(),
                    },
                    quiet: g.quiet,
                    stop_after_chunks: None,
                })
                .map(|_| ())
            })?;
            features.push(("sentences".into(), ab.to_string(), npy));
        }
    }
    for (repr, ab, npy) in &features {
        for clf in &g.cfg.classifiers {
            let files = std::slice::from_ref(npy);
            classify_seeds(g.cfg, g.input, (model, repr, ab), files, clf, rows, runs)?;
        }
    }
    for f in &g.cfg.fusions {
        let mut files = vec![g.pca.cloned().context("PCA-50 computed for fusions")?];
        for part in fusion_parts(f, g.cfg)?.iter().skip(1) {
            let (_, _, npy) = features
                .iter()
                .find(|(r, a, _)| r == part && a == "none")
                .context("fusion source embedded")?;
            files.push(npy.clone());
        }
        classify_seeds(
            g.cfg,
            g.input,
            (model, f, "none"),
            &files,
            "mlp",
            rows,
            runs,
        )?;
    }
    Ok(())
}

/// scanpy's standard PCA-50 of the counts, cached (it uses no seed); None when no row needs it.
fn pca_baseline(
    cfg: &ExperimentConfig,
    (input, input_sha): (&Path, &str),
    read: &ReadOptions,
    cache: &Path,
    quiet: bool,
) -> Result<Option<PathBuf>> {
    if !wants_pca(cfg) {
        return Ok(None);
    }
    let key = sha256_bytes(format!("{TOOL_VERSION}|{input_sha}|pca|{:?}", cfg.layer).as_bytes())
        [..16]
        .to_string();
    let pca = cached(&cache.join(format!("pca-50-{key}.npy")), |p| {
        crate::cells::pca_pipeline::run_cells_pca(&crate::cells::pca_pipeline::CellsPcaArgs {
            input: input.to_path_buf(),
            read: read.clone(),
            params: crate::cells::standard_pca::StandardPcaParams::default(),
            output: p.to_path_buf(),
            in_place: false,
            key: "X_pca".into(),
            quiet,
        })
        .map(|_| ())
    })?;
    Ok(Some(pca))
}

/// Run the grid in `config_path`. `input` (from `--input`, relative to the working directory)
/// replaces the config's `input`, so one config can be run on any dataset.
pub fn run_experiment(
    config_path: &Path,
    input: Option<&Path>,
    quiet: bool,
) -> Result<(Vec<ResultRow>, PathBuf)> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("{}: cannot read", config_path.display()))?;
    let mut cfg = parse_config(&text, config_path)?;
    let input = resolve_input(config_path, input, &cfg)?;
    cfg.input = Some(input.clone());
    let out_dir = cfg
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("experiments").join(&cfg.name));
    let cache = cfg
        .cache_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("celltext-cache"));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create the output folder", out_dir.display()))?;
    // One writer per experiment folder (a second run names the first one's PID).
    let _lock = crate::outputs::OutputLock::acquire(&out_dir)?;
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("{}: cannot create the cache folder", cache.display()))?;
    let species = cfg.species.unwrap_or(Species::Human);
    let input_sha = input_checksum(&input)?;
    let read = ReadOptions {
        layer: cfg.layer.clone(),
        ..Default::default()
    };
    let top_n: TopN = cfg.top_n.parse()?;
    let ablations: Vec<Ablation> = cfg
        .ablations
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_>>()?;
    let mut rows = vec![];
    let mut runs = vec![];

    // dataset genes, for restricting the summaries to what the dataset can use
    let m = crate::cells::pipeline::read_normalized(&input, &read, InputNorm::Raw, quiet)?;
    // a top-N average only ever uses genes in some cell's top N: embed just their summaries
    let dataset_genes: Vec<String> = match top_n {
        TopN::N(n) => crate::cells::pipeline::top_n_gene_set(&m, n)
            .into_iter()
            .collect(),
        TopN::All => m.genes.clone(),
    };
    drop(m);

    // scanpy's standard PCA-50 of the counts, once (it uses no seed): the baseline rows and the
    // fusions classify this file, the same features as `classify --on counts`
    let pca = pca_baseline(&cfg, (&input, &input_sha), &read, &cache, quiet)?;

    let grid = Grid {
        cfg: &cfg,
        input: &input,
        input_sha: &input_sha,
        read: &read,
        cache: &cache,
        species,
        top_n,
        ablations: &ablations,
        dataset_genes: &dataset_genes,
        pca: pca.as_ref(),
        quiet,
    };
    for model in &cfg.models {
        model_rows(&grid, model, &mut rows, &mut runs)?;
    }
    if cfg.counts_baseline || cfg.baselines.iter().any(|b| b == "pca") {
        let pca = pca.clone().context("PCA-50 computed for the baseline")?;
        for clf in &cfg.classifiers {
            let what = ("-", PCA_REPRESENTATION, "none");
            classify_seeds(
                &cfg,
                &input,
                what,
                std::slice::from_ref(&pca),
                clf,
                &mut rows,
                &mut runs,
            )?;
        }
    }
    rows.sort_by(|a, b| {
        (&a.model, &a.representation, &a.ablation, &a.classifier, a.k).cmp(&(
            &b.model,
            &b.representation,
            &b.ablation,
            &b.classifier,
            b.k,
        ))
    });
    let md = results_markdown(&cfg, &rows);
    crate::io::atomic_write(&out_dir.join("results.md"), md.as_bytes())?;
    write_json(
        &out_dir.join("results.json"),
        &serde_json::json!({"tool": TOOL_VERSION, "config": cfg, "input_sha256": input_sha, "rows": rows, "runs": runs}),
    )?;
    // the figure needs the `plots` feature (the CLI has it); results.md and .json do not
    #[cfg(feature = "plots")]
    write_accuracy_bars(&out_dir, &cfg, &rows)?;
    Ok((rows, out_dir))
}

/// `accuracy.png/.svg`: one bar (mean ± sd over seeds) per results row.
#[cfg(feature = "plots")]
fn write_accuracy_bars(out_dir: &Path, cfg: &ExperimentConfig, rows: &[ResultRow]) -> Result<()> {
    let bars: Vec<(String, f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {} {} {}{}",
                    r.model,
                    r.representation,
                    r.ablation,
                    r.classifier,
                    r.k.map(|k| format!(" k={k}")).unwrap_or_default()
                ),
                r.mean.accuracy,
                r.sd.accuracy,
            )
        })
        .collect();
    crate::eval::plots::bar_table(
        &out_dir.join("accuracy"),
        &bars,
        "accuracy",
        &format!("{} — accuracy (mean ± sd over seeds)", cfg.name),
    )?;
    Ok(())
}

/// Classifies `files` (one source, or several fused in the MLP) with `clf` once per seed and
/// pushes the mean ± sd row(s) (KNN: the table's k, then the sweep) and the per-seed runs.
fn classify_seeds(
    cfg: &ExperimentConfig,
    input: &Path,
    (model, repr, ab): (&str, &str, &str),
    files: &[PathBuf],
    clf: &str,
    rows: &mut Vec<ResultRow>,
    runs: &mut Vec<serde_json::Value>,
) -> Result<()> {
    let method: Method = crate::choice::parse_choice("--method", clf, true)?;
    let mut per_seed = vec![];
    let mut sweep: std::collections::BTreeMap<usize, Vec<Scores>> = Default::default();
    for &seed in &cfg.seeds {
        let mut a = ClassifyArgs::new(input.to_path_buf(), cfg.label.clone());
        a.method = method;
        a.embedding_files = files.to_vec();
        a.seed = seed;
        a.quiet = true;
        // KNN: the table's k first (it makes the predictions), then the sweep;
        // MLP: no k (a k list would add a KNN baseline sweep to its report)
        a.ks = match method {
            Method::Knn => {
                let mut ks = vec![cfg.k];
                ks.extend(cfg.k_sweep.iter().copied().filter(|&k| k != cfg.k));
                Some(ks)
            }
            Method::Mlp => None,
        };
        let r = run_classify(&a).with_context(|| format!("{repr}/{ab}/{clf} seed {seed}"))?;
        // with several sources the fused arm is the primary one
        let primary = r
            .results
            .iter()
            .find(|x| x.primary)
            .unwrap_or(&r.results[0]);
        let mut s = primary.scores;
        if let Some(ks) = r.k_sweep.as_ref().filter(|_| method == Method::Knn) {
            for row in &ks.rows {
                sweep.entry(row.k).or_default().push(row.scores);
                if row.k == cfg.k {
                    s = row.scores;
                }
            }
        }
        per_seed.push(s);
        runs.push(serde_json::json!({"model": model, "representation": repr, "ablation": ab, "classifier": clf, "seed": seed, "scores": s}));
    }
    let row = |classifier: &str, k: Option<usize>, v: &[Scores]| {
        let (mean, sd) = Scores::mean_sd(v);
        ResultRow {
            model: model.to_string(),
            representation: repr.to_string(),
            ablation: ab.to_string(),
            classifier: classifier.to_string(),
            k,
            n_seeds: v.len(),
            mean,
            sd,
        }
    };
    rows.push(row(
        clf,
        (method == Method::Knn).then_some(cfg.k),
        &per_seed,
    ));
    if method == Method::Knn && sweep.len() > 1 {
        for (kk, v) in sweep.into_iter().filter(|(kk, _)| *kk != cfg.k) {
            rows.push(row("knn", Some(kk), &v));
        }
    }
    Ok(())
}

pub fn results_markdown(cfg: &ExperimentConfig, rows: &[ResultRow]) -> String {
    let mut s = format!(
        "## {} — {} seeds, label `{}`\n\n",
        cfg.name,
        cfg.seeds.len(),
        cfg.label
    );
    s.push_str("| model | representation | ablation | classifier | k | accuracy | weighted F1 | macro F1 | kappa |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let f = |m: f64, d: f64| format!("{m:.3} ± {d:.3}");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.representation,
            r.ablation,
            r.classifier,
            r.k.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
            f(r.mean.accuracy, r.sd.accuracy),
            f(r.mean.weighted_f1, r.sd.weighted_f1),
            f(r.mean.macro_f1, r.sd.macro_f1),
            f(r.mean.cohen_kappa, r.sd.cohen_kappa)
        ));
    }
    s
}
