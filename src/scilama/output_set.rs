//! The files of one `scilama train` run and the order they are written in: the old marker (the
//! model's manifest) removed first, the parts written, the new marker — recording every part's
//! size and sha256 — last, so a run killed at any instant leaves no marker over a mixed set.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::io::{atomic_write, manifest_path, write_json};
use crate::scilama::model_file::PARTS_KEY;
use crate::scilama::EpochLog;

/// `OUT.h5ad` (or `.npy`, `.safetensors`) → `OUT` (the prefix of the side files).
pub fn prefix_of(out: &Path) -> PathBuf {
    out.with_extension("")
}

fn side(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The files of one `scilama train` run (see the module docs); the model's manifest is the set's
/// marker, written last with the size and sha256 of every other part ([`crate::scilama::model_file::verify_model_set`]).
pub struct OutputSet {
    pub cells: PathBuf,
    pub genes: PathBuf,
    pub model: PathBuf,
    pub losses: PathBuf,
    genes_files: crate::genes::store::StorePaths,
    cells_manifest: PathBuf,
    model_manifest: PathBuf,
    losses_manifest: PathBuf,
}

impl OutputSet {
    pub fn of(output: &Path) -> Self {
        let prefix = prefix_of(output);
        let genes = side(&prefix, ".scilama_genes");
        let model = side(&prefix, ".scilama_model.safetensors");
        let losses = side(&prefix, ".scilama_losses.tsv");
        Self {
            cells: output.to_path_buf(),
            genes_files: crate::genes::store::store_paths(&genes),
            cells_manifest: manifest_path(output),
            model_manifest: manifest_path(&model),
            losses_manifest: manifest_path(&losses),
            genes,
            model,
            losses,
        }
    }

    /// Every file the set writes, the marker last.
    pub fn files(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = vec![&self.cells, &self.cells_manifest];
        v.extend(self.genes_files.all());
        v.extend([
            self.losses.as_path(),
            &self.losses_manifest,
            &self.model,
            &self.model_manifest,
        ]);
        v
    }

    pub(crate) fn remove_marker(&self) -> Result<()> {
        remove_if_present(
            &self.model_manifest,
            "the old manifest before replacing the model",
        )
    }

    /// Removes an earlier run's contextual gene store (a `--mode beta-vae` run writes none).
    pub(crate) fn remove_gene_store(&self) -> Result<()> {
        for f in self.genes_files.all() {
            remove_if_present(f, "an earlier run's gene store (this mode writes none)")?;
        }
        Ok(())
    }

    /// The marker: `manifest` plus `parts` (every other file's record). With --in-place the
    /// cells went into the input, which is not recorded as a part.
    pub(crate) fn write_marker(&self, manifest: &serde_json::Value, in_place: bool) -> Result<()> {
        let mut parts = vec![];
        for f in self.files() {
            if f == self.model_manifest.as_path() || (in_place && f == self.cells.as_path()) {
                continue;
            }
            if f.exists() {
                parts.push(crate::outputs::part_record(f)?);
            }
        }
        let mut m = manifest.clone();
        m[PARTS_KEY] = serde_json::Value::Array(parts);
        write_json(&self.model_manifest, &m)
    }
}

pub(crate) fn remove_if_present(path: &Path, what: &str) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot remove {what}", path.display())),
    }
}

pub(crate) fn write_losses(path: &Path, history: &[EpochLog]) -> Result<()> {
    let mut s =
        String::from("step\tepoch\tkl_weight\ttrain_loss\ttrain_recon\ttrain_kl\tval_loss\n");
    for h in history {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            h.stage.name(),
            h.epoch,
            h.kl_weight,
            h.train_loss,
            h.train_recon,
            h.train_kl,
            h.val_loss
        ));
    }
    atomic_write(path, s.as_bytes())
}
