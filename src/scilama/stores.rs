//! Several gene stores (`--genes A --genes B …`): which genes the model keeps, each store's rows of
//! them, and the record a model keeps of its stores so that `scilama embed` can check the stores it
//! is given.
//!
//! Gene rule (the reference's `load_and_match_feature_embeddings`): the model's genes are the
//! dataset genes that have a vector in **every** store (their intersection); a gene missing from
//! one store is left out of the model. Training is refused when fewer than 2 genes are in every
//! store, naming each store and how many of the dataset's genes it lacks. Genes are matched to
//! each store by the same resolver as one store (symbol, alias, Ensembl id; orthologs on request).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::genes::resolver::Coverage;
use crate::genes::store::GeneEmbeddings;
use crate::genes::Species;
use crate::scilama::model::{dims_list, Arch};

/// What a model records of each of its gene stores (model metadata `gene_stores`, written for
/// two or more stores), in `--genes` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// The path given to `--genes` at training.
    pub path: String,
    /// Vector width (the input width of the store's gene encoder).
    pub dim: usize,
    /// The text encoder that made the store (`model.id` of its manifest), when it names one.
    pub encoder: Option<String>,
}

impl StoreRecord {
    pub fn of(path: &Path, store: &GeneEmbeddings, manifest: Option<&serde_json::Value>) -> Self {
        Self {
            path: path.display().to_string(),
            dim: store.dim,
            encoder: encoder_id(manifest),
        }
    }

    /// "`PATH` (8 dims, encoder ID)".
    fn describe(&self) -> String {
        format!(
            "`{}` ({} dims{})",
            self.path,
            self.dim,
            self.encoder
                .as_deref()
                .map(|e| format!(", encoder {e}"))
                .unwrap_or_default()
        )
    }
}

/// "1 gene store", "2 gene stores".
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `model.id` of a store's manifest (the text encoder, or `imported`).
fn encoder_id(manifest: Option<&serde_json::Value>) -> Option<String> {
    manifest?
        .get("model")?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// The stores at `paths` (`--genes`, in order), their records and manifests.
#[allow(clippy::type_complexity)]
pub fn load_stores(
    paths: &[PathBuf],
) -> Result<(
    Vec<(PathBuf, GeneEmbeddings)>,
    Vec<StoreRecord>,
    Vec<Option<serde_json::Value>>,
)> {
    let (mut stores, mut records, mut manifests) = (vec![], vec![], vec![]);
    for p in paths {
        let store = GeneEmbeddings::load(p)?;
        let manifest = GeneEmbeddings::manifest(p)?;
        records.push(StoreRecord::of(p, &store, manifest.as_ref()));
        stores.push((p.clone(), store));
        manifests.push(manifest);
    }
    Ok((stores, records, manifests))
}

/// A model's store record (`None`: none in its metadata) against its architecture: one store and
/// no record, or several recorded with the widths of its gene encoders.
pub fn check_record(
    path: &Path,
    stores: Option<&[StoreRecord]>,
    arch: &Arch,
    retrain: &str,
) -> Result<()> {
    let recorded: Option<Vec<usize>> = stores.map(|s| s.iter().map(|r| r.dim).collect());
    let consistent = match &recorded {
        Some(dims) => dims.len() > 1 && *dims == arch.gene_dims(),
        None => arch.n_stores() == 1,
    };
    if !consistent {
        bail!(
            "{}: metadata `gene_stores` {} but the architecture (`arch`) has gene encoders of \
             widths [{}]; {retrain}",
            path.display(),
            match recorded {
                Some(d) => format!("records gene stores of widths [{}]", dims_list(&d)),
                None => "is missing".into(),
            },
            dims_list(&arch.gene_dims())
        );
    }
    Ok(())
}

/// One store of a training run: its record, how the dataset's genes map onto it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreUse {
    #[serde(flatten)]
    pub record: StoreRecord,
    /// Dataset genes found in this store.
    pub coverage: Coverage,
}

/// The dataset genes in every store.
pub struct SharedGenes {
    /// Dataset gene `j` → row of the first store, `None` unless `j` is in every store (what
    /// [`super::data::prepare`] takes).
    pub first_rows: Vec<Option<usize>>,
    /// Dataset gene `j` → its row in store `k` (`rows[k][j]`).
    pub rows: Vec<Vec<Option<usize>>>,
    /// Dataset genes in every store.
    pub n_shared: usize,
}

/// Maps the dataset's genes `names` onto every store and keeps those in all of them (noting how
/// many, and each store's count); refuses fewer than 2, naming each store and how many of the
/// dataset's genes it lacks.
pub fn shared_genes(
    stores: &[(PathBuf, GeneEmbeddings)],
    names: &[String],
    species: Species,
    orthologs: bool,
    quiet: bool,
) -> Result<(SharedGenes, Vec<Coverage>)> {
    let mut rows = Vec::with_capacity(stores.len());
    let mut coverages = Vec::with_capacity(stores.len());
    for (_, store) in stores {
        let (r, c) =
            crate::genes::pipeline::coverage(&store.symbols, names, species, orthologs, None)?;
        rows.push(r);
        coverages.push(c);
    }
    let first_rows: Vec<Option<usize>> = (0..names.len())
        .map(|j| {
            if rows.iter().all(|r| r[j].is_some()) {
                rows[0][j]
            } else {
                None
            }
        })
        .collect();
    let n_shared = first_rows.iter().filter(|r| r.is_some()).count();
    if n_shared < 2 {
        let each: Vec<String> = stores
            .iter()
            .zip(&rows)
            .enumerate()
            .map(|(k, ((path, _), r))| {
                let found = r.iter().filter(|r| r.is_some()).count();
                format!(
                    "store {} `{}` lacks {} of the dataset's {} genes",
                    k + 1,
                    path.display(),
                    names.len() - found,
                    names.len()
                )
            })
            .collect();
        bail!(
            "only {n_shared} dataset gene(s) have a vector in every gene store ({}); with several \
             --genes the model keeps the genes found in all of them, and sciLaMA needs at least \
             2 (check --species, or embed the dataset's genes into each store)",
            each.join("; ")
        );
    }
    let each: Vec<String> = stores
        .iter()
        .zip(&coverages)
        .enumerate()
        .map(|(k, ((p, _), c))| {
            format!(
                "store {} `{}` has {}",
                k + 1,
                p.display(),
                c.n_genes - c.n_unmatched
            )
        })
        .collect();
    crate::progress::note(
        quiet,
        &format!(
            "scilama train: {n_shared} of the dataset's {} genes have a vector in every gene \
             store ({})",
            names.len(),
            each.join(", ")
        ),
    );
    Ok((
        SharedGenes {
            first_rows,
            rows,
            n_shared,
        },
        coverages,
    ))
}

/// Store `k`'s vectors of the model's genes (dataset columns `columns`; `rows`: the store's row
/// of each dataset gene), `[M × D_k]` row-major.
pub fn store_inputs(store: &GeneEmbeddings, rows: &[Option<usize>], columns: &[usize]) -> Vec<f32> {
    let rows: Vec<usize> = columns
        .iter()
        .map(|&j| rows[j].expect("a model gene is in every store"))
        .collect();
    gather_rows(store, &rows)
}

/// Checks the stores given to `scilama embed --genes` against the model's: as many, in the same
/// order (each store's width, and its text encoder where both name one). `trained` is `None`
/// for a one-store model (whose width alone is known).
pub fn check_given(
    model: &Path,
    trained: Option<&[StoreRecord]>,
    dims: &[usize],
    given: &[StoreRecord],
) -> Result<()> {
    let expected = match trained {
        Some(t) => t
            .iter()
            .enumerate()
            .map(|(k, r)| format!("[{}] {}", k + 1, r.describe()))
            .collect::<Vec<_>>()
            .join(", "),
        None => format!("[1] a store of {} dims", dims[0]),
    };
    if given.len() != dims.len() {
        bail!(
            "{}: the model was trained with {}, in this order: {}; --genes was given {}. Pass \
             --genes once per store, in that order, each with vectors from the same text \
             encoder as the store it stands for",
            model.display(),
            count(dims.len(), "gene store"),
            expected,
            count(given.len(), "time")
        );
    }
    for (k, g) in given.iter().enumerate() {
        let want = trained.map(|t| &t[k]);
        let encoder_differs = match (want.and_then(|w| w.encoder.as_ref()), &g.encoder) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        if g.dim != dims[k] || encoder_differs {
            bail!(
                "{}: --genes number {}, {}, does not match the model's gene store {}, {}; the \
                 model's stores, in --genes order: {expected}",
                model.display(),
                k + 1,
                g.describe(),
                k + 1,
                match want {
                    Some(w) => w.describe(),
                    None => format!("{} dims", dims[k]),
                },
            );
        }
    }
    Ok(())
}

/// The genes of the first given store that every other given store has, with each store's
/// vectors of them; refuses an empty set, naming each store and how many of the first store's
/// genes it lacks. Returns (symbols, per-store `[genes × D_k]` inputs, per-store number of the
/// first store's genes lacking).
#[allow(clippy::type_complexity)]
pub fn shared_store_genes(
    stores: &[(PathBuf, GeneEmbeddings)],
    species: Species,
) -> Result<(Vec<String>, Vec<Vec<f32>>, Vec<usize>)> {
    let first = &stores[0].1;
    let mut rows = vec![(0..first.len()).map(Some).collect::<Vec<_>>()];
    for (_, s) in &stores[1..] {
        rows.push(
            crate::genes::pipeline::coverage(&s.symbols, &first.symbols, species, false, None)?.0,
        );
    }
    let lacking: Vec<usize> = rows
        .iter()
        .map(|r| r.iter().filter(|r| r.is_none()).count())
        .collect();
    let keep: Vec<usize> = (0..first.len())
        .filter(|&i| rows.iter().all(|r| r[i].is_some()))
        .collect();
    if keep.is_empty() {
        let each: Vec<String> = stores
            .iter()
            .zip(&lacking)
            .enumerate()
            .skip(1)
            .map(|(k, ((p, _), n))| format!("store {} `{}` lacks {n} of them", k + 1, p.display()))
            .collect();
        bail!(
            "no gene of the first --genes store `{}` ({} genes) has a vector in every store ({}); \
             the gene encoders fuse one vector per store, so pass stores of the same genes",
            stores[0].0.display(),
            first.len(),
            each.join("; ")
        );
    }
    let symbols = keep.iter().map(|&i| first.symbols[i].clone()).collect();
    let inputs = stores
        .iter()
        .zip(&rows)
        .map(|((_, s), r)| {
            let rows: Vec<usize> = keep.iter().map(|&i| r[i].expect("kept")).collect();
            gather_rows(s, &rows)
        })
        .collect();
    Ok((symbols, inputs, lacking))
}

/// A store's rows `rows` as a `[rows.len() × D]` row-major matrix.
fn gather_rows(store: &GeneEmbeddings, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| store.row(r).iter().cloned())
        .collect()
}
