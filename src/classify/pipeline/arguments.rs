//! What `celltext classify` takes: [`ClassifyArgs`] is both the library's argument struct and the
//! subcommand's clap flags (flattened into the CLI, so no field is copied by hand), plus the checks
//! on argument combinations that run before any data is read.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cells::read::{detect_kind, InputKind};
#[cfg(feature = "cli")]
use crate::choice::value_enum;
use crate::classify::knn::Vote;
use crate::classify::mlp::{Fusion, MlpConfig};
use crate::classify::split;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Knn,
    Mlp,
}

crate::choices!(Method { Knn = "knn", Mlp = "mlp" });

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Knn => "knn",
            Self::Mlp => "mlp",
        })
    }
}

/// What the classifier reads: embeddings, or the normalized count matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSpace {
    Embedding,
    Counts,
}

crate::choices!(FeatureSpace { Embedding = "embedding" | "embeddings", Counts = "counts" });

/// What `--on counts` computes from the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountBaseline {
    /// scanpy's standard pipeline: normalize_total(1e4) → log1p → highly variable genes
    /// (seurat) → scale (clip 10) → PCA.
    Pca,
    /// log1p-CP10k of every detected gene, as a dense matrix.
    Log1pAll,
}

crate::choices!(CountBaseline { Pca = "pca", Log1pAll = "log1p-all" });

/// `--k 1,3,5,10`: positive, distinct. The first value is the k used for predictions.
pub fn parse_k_list(s: &str) -> Result<Vec<usize>> {
    let ks = crate::classify::parse_positive_list("--k", s, "1,3,5,10,25,50,100,500")?;
    for (i, k) in ks.iter().enumerate() {
        if ks[..i].contains(k) {
            bail!("--k '{s}': k = {k} is listed twice; list each k once");
        }
    }
    Ok(ks)
}

/// Everything `celltext classify` takes. Build with [`ClassifyArgs::new`] and adjust. The doc
/// comments of the fields are the flags' `--help` texts; fields are in flag order, which is also
/// their order in report.json (`manifest.parameters`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ClassifyArgs {
    /// Input .h5ad (labels in obs, embeddings in obsm).
    #[cfg_attr(feature = "cli", arg(long, short = 'i'))]
    pub input: PathBuf,
    /// obsm key of an embedding; repeat to fuse several (each alone and fused are reported).
    #[cfg_attr(
        feature = "cli",
        arg(long = "embedding", short = 'e', value_name = "EMBEDDING")
    )]
    pub embeddings: Vec<String>,
    /// Embedding as .npy / .safetensors, rows = cells in input order (repeatable).
    #[cfg_attr(
        feature = "cli",
        arg(long = "embedding-file", value_name = "EMBEDDING_FILE")
    )]
    pub embedding_files: Vec<PathBuf>,
    /// obs column with the cell-type labels (empty / NaN labels are excluded and counted).
    #[cfg_attr(feature = "cli", arg(long))]
    pub label: String,
    /// obs column with the batch of each cell: adds batch ASW, iLISI and cLISI (scIB) to the
    /// embedding-quality table.
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_key: Option<String>,
    /// knn or mlp.
    #[cfg_attr(feature = "cli", arg(long, default_value = "knn", ignore_case = true, value_parser = value_enum::<Method>()))]
    pub method: Method,
    /// embedding, or counts (the count baseline, see --baseline and --layer; with --embedding
    /// too, the counts baseline is one more source to fuse).
    #[cfg_attr(feature = "cli", arg(long, default_value = "embedding", ignore_case = true, value_parser = value_enum::<FeatureSpace>()))]
    pub on: FeatureSpace,
    /// With --on counts: read the counts from layers/NAME instead of X (e.g. counts).
    #[cfg_attr(feature = "cli", arg(long))]
    pub layer: Option<String>,
    /// With --on counts: pca (scanpy's normalize_total → log1p → HVG → scale → PCA) or
    /// log1p-all (log1p-CP10k of every detected gene, KNN only).
    #[cfg_attr(feature = "cli", arg(long, default_value = "pca", ignore_case = true, value_parser = value_enum::<CountBaseline>()))]
    pub baseline: CountBaseline,
    /// With --baseline pca: number of highly variable genes (seurat flavor).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 2000))]
    pub n_top_genes: usize,
    /// With --baseline pca: number of principal components.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 50))]
    pub n_comps: usize,
    /// k, or a comma list for a sweep (e.g. 1,3,5,10,25,50,100,500); the first k gives the
    /// predictions (default 10). With --method mlp: a KNN baseline sweep.
    // `std::vec::Vec`: one `--k 1,3,5` value parsed whole, not a repeatable flag.
    #[cfg_attr(feature = "cli", arg(long = "k", value_name = "K", value_parser = parse_k_list))]
    pub ks: Option<std::vec::Vec<usize>>,
    /// majority or distance.
    #[cfg_attr(feature = "cli", arg(long, default_value = "majority", ignore_case = true, value_parser = value_enum::<Vote>()))]
    pub vote: Vote,
    /// Fraction of each class held out for test (stratified, seeded).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = split::DEFAULT_TEST_FRACTION, conflicts_with_all = ["split_column", "folds"]))]
    pub test_fraction: f64,
    /// obs column with train / test / val per cell, instead of a random split.
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "folds"))]
    pub split_column: Option<String>,
    /// Stratified K-fold cross-validation: scores as mean ± sd over folds.
    #[cfg_attr(feature = "cli", arg(long))]
    pub folds: Option<usize>,
    /// MLP fusion of several embeddings: concat or gated.
    #[cfg_attr(feature = "cli", arg(long, default_value = "concat", ignore_case = true, value_parser = value_enum::<Fusion>()))]
    pub fusion: Fusion,
    /// MLP settings (`--hidden`, `--dropout`, …); `seed` and `fusion` are taken from the fields of
    /// this struct.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub mlp: MlpConfig,
    /// Seed for the split, the MLP and k-means.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Directory for report.json, report.md and plots (PNG + SVG).
    #[cfg_attr(feature = "cli", arg(long = "report", value_name = "REPORT"))]
    pub report_dir: Option<PathBuf>,
    /// Output .h5ad: copy of the input plus obs celltext_pred, celltext_conf, celltext_split.
    #[cfg_attr(feature = "cli", arg(long, short = 'o'))]
    pub output: Option<PathBuf>,
    /// Allow --output to be the input file (without --output: write into the input).
    #[cfg_attr(feature = "cli", arg(long))]
    pub in_place: bool,
    /// No progress messages (the CLI's global `--quiet`).
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip)]
    pub quiet: bool,
}

impl ClassifyArgs {
    /// Defaults: KNN, k = 10, majority vote, stratified 80/20, seed 0, default MLP settings.
    pub fn new(input: impl Into<PathBuf>, label: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            embeddings: Vec::new(),
            embedding_files: Vec::new(),
            label: label.into(),
            batch_key: None,
            method: Method::Knn,
            on: FeatureSpace::Embedding,
            layer: None,
            baseline: CountBaseline::Pca,
            n_top_genes: 2000,
            n_comps: 50,
            ks: None,
            vote: Vote::Majority,
            test_fraction: split::DEFAULT_TEST_FRACTION,
            split_column: None,
            folds: None,
            fusion: Fusion::Concat,
            mlp: MlpConfig::default(),
            seed: 0,
            report_dir: None,
            output: None,
            in_place: false,
            quiet: false,
        }
    }

    /// The MLP settings with this run's seed and fusion.
    pub(super) fn effective_mlp(&self) -> MlpConfig {
        MlpConfig {
            seed: self.seed,
            fusion: self.fusion,
            ..self.mlp.clone()
        }
    }
}

/// What the argument checks found out about the input.
pub(super) struct CheckedArgs {
    pub kind: InputKind,
    /// Where the output h5ad goes: `--output`, or the input itself with `--in-place` alone.
    pub output: Option<PathBuf>,
}

/// Argument checks, before any heavy work: a feature source that fits `--on`, one way to split,
/// sane fractions and k values, and an output that does not overwrite the input by accident.
pub(super) fn check_args(args: &ClassifyArgs) -> Result<CheckedArgs> {
    let (kind, _) = detect_kind(&args.input)?;
    let n_sources = args.embeddings.len() + args.embedding_files.len();
    match args.on {
        FeatureSpace::Counts => {
            if args.baseline == CountBaseline::Log1pAll
                && (args.method == Method::Mlp || n_sources > 0)
            {
                bail!("--baseline log1p-all is for --method knn alone (cosine KNN on every gene); for the MLP or fusion with embeddings use --baseline pca");
            }
            if args.n_top_genes == 0 || args.n_comps == 0 {
                bail!("--n-top-genes and --n-comps must be at least 1 (defaults 2000 and 50)");
            }
        }
        FeatureSpace::Embedding => {
            if n_sources == 0 {
                bail!("no features: pass --embedding KEY (an obsm key), --embedding-file F.npy|F.safetensors, or --on counts");
            }
            if args.layer.is_some() {
                bail!("--layer only applies with --on counts (it says where the counts are)");
            }
        }
    }
    if !args.embeddings.is_empty() && kind != InputKind::H5ad {
        bail!(
            "{}: --embedding reads obsm from an .h5ad input; for this input use --embedding-file",
            args.input.display()
        );
    }
    if args.split_column.is_some() && args.folds.is_some() {
        bail!("--split-column and --folds both choose the split; give one of them");
    }
    if let Some(f) = args.folds {
        if f < 2 {
            bail!("--folds {f}: k-fold cross-validation needs at least 2 folds");
        }
    }
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        bail!(
            "--test-fraction {} must be strictly between 0 and 1 (default {})",
            args.test_fraction,
            split::DEFAULT_TEST_FRACTION
        );
    }
    if let Some(ks) = &args.ks {
        if ks.is_empty() || ks.contains(&0) {
            bail!("--k needs positive values, e.g. --k 1,3,5,10");
        }
    }
    let output: Option<PathBuf> = match (&args.output, args.in_place) {
        (Some(o), _) => Some(o.clone()),
        (None, true) => Some(args.input.clone()),
        (None, false) => None,
    };
    if let Some(o) = &output {
        if kind != InputKind::H5ad {
            bail!("{}: --output writes a copy of an .h5ad input with the predictions in obs; this input is not .h5ad", args.input.display());
        }
        let same = match (std::fs::canonicalize(&args.input), std::fs::canonicalize(o)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same && !args.in_place {
            bail!("{}: --output is the input file; refusing to modify the input (write elsewhere, or pass --in-place)", o.display());
        }
    }
    Ok(CheckedArgs { kind, output })
}

// the flags as clap parses them
#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use crate::classify::mlp::parse_hidden;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClassifyArgs,
    }

    fn parse(flags: &[&str]) -> Result<ClassifyArgs, clap::Error> {
        let mut argv = vec!["classify", "-i", "in.h5ad", "--label", "cell_type"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).map(|c| c.args)
    }

    fn json(a: &ClassifyArgs) -> serde_json::Value {
        serde_json::to_value(a).unwrap()
    }

    #[test]
    fn k_and_hidden_lists() {
        assert_eq!(parse_k_list("1,3, 5").unwrap(), vec![1, 3, 5]);
        for bad in ["", "1,,3", "0", "a", "3,3", "-1", "1.5"] {
            assert!(parse_k_list(bad).is_err(), "{bad}");
        }
        assert!(parse_k_list("x").unwrap_err().to_string().contains("--k"));
        assert_eq!(parse_hidden("256,128").unwrap(), vec![256, 128]);
        assert_eq!(parse_hidden("none").unwrap(), Vec::<usize>::new());
        assert!(parse_hidden("0").is_err());
    }

    #[test]
    fn cli_defaults_are_the_library_defaults() {
        assert_eq!(
            json(&parse(&[]).unwrap()),
            json(&ClassifyArgs::new("in.h5ad", "cell_type"))
        );
    }

    #[test]
    fn cli_flags_set_every_field() {
        let a = parse(&[
            "-e",
            "X_pca",
            "-e",
            "X_scvi",
            "--embedding-file",
            "e.npy",
            "--method",
            "MLP",
            "--on",
            "embeddings",
            "--k",
            "5,1",
            "--vote",
            "distance",
            "--folds",
            "3",
            "--fusion",
            "gated",
            "--hidden",
            "none",
            "--dropout",
            "0.3",
            "--lr",
            "0.01",
            "--weight-decay",
            "0",
            "--epochs",
            "7",
            "--patience",
            "2",
            "--batch-size",
            "16",
            "--val-fraction",
            "0",
            "--class-weights",
            "--seed",
            "4",
            "--report",
            "rep",
            "-o",
            "out.h5ad",
            "--in-place",
        ])
        .unwrap();
        assert_eq!(a.embeddings, vec!["X_pca", "X_scvi"]);
        assert_eq!(a.embedding_files, vec![PathBuf::from("e.npy")]);
        assert_eq!(
            (a.method, a.on, a.vote, a.fusion),
            (
                Method::Mlp,
                FeatureSpace::Embedding,
                Vote::Distance,
                Fusion::Gated
            )
        );
        assert_eq!(
            (a.ks.clone(), a.folds, a.seed),
            (Some(vec![5, 1]), Some(3), 4)
        );
        let want = MlpConfig {
            hidden: vec![],
            dropout: 0.3,
            lr: 0.01,
            weight_decay: 0.0,
            max_epochs: 7,
            patience: 2,
            batch_size: 16,
            val_fraction: 0.0,
            class_weights: true,
            ..MlpConfig::default()
        };
        assert_eq!(a.mlp, want.clone());
        assert_eq!(
            a.effective_mlp(),
            MlpConfig {
                seed: 4,
                fusion: Fusion::Gated,
                ..want
            }
        );
        assert_eq!(
            (a.report_dir, a.output, a.in_place),
            (
                Some(PathBuf::from("rep")),
                Some(PathBuf::from("out.h5ad")),
                true
            )
        );
    }

    #[test]
    fn cli_errors_keep_their_wording() {
        let e = parse(&["--vote", "weighted"]).err().unwrap().to_string();
        assert!(
            e.contains("unknown --vote 'weighted'; use majority or distance"),
            "{e}"
        );
        let e = parse(&["--method", "svm"]).err().unwrap().to_string();
        assert!(e.contains("unknown --method 'svm'; use knn or mlp"), "{e}");
        let e = parse(&["--on", "genes"]).err().unwrap().to_string();
        assert!(
            e.contains("unknown --on 'genes'; use embedding or counts"),
            "{e}"
        );
        let e = parse(&["--fusion", "sum"]).err().unwrap().to_string();
        assert!(
            e.contains("unknown --fusion 'sum'; use concat or gated"),
            "{e}"
        );
        let e = parse(&["--k", "5,abc"]).err().unwrap().to_string();
        assert!(
            e.contains("--k '5,abc': 'abc' is not a positive integer"),
            "{e}"
        );
        let e = parse(&["--hidden", "0"]).err().unwrap().to_string();
        assert!(e.contains("--hidden '0': 0 is not allowed"), "{e}");
    }
}
