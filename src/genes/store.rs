//! The gene-embedding store: `STORE.safetensors` (tensor `embeddings`, f32 [n_genes, dim]),
//! `STORE.genes.tsv` (one symbol per line, row order) and `STORE.manifest.json`.

/// Gene vectors in row-major order, one row per symbol.
#[derive(Debug, Clone)]
pub struct GeneEmbeddings {
    pub symbols: Vec<String>,
    pub dim: usize,
    /// Row-major [symbols.len(), dim].
    pub data: Vec<f32>,
}

impl GeneEmbeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn len(&self) -> usize {
        self.symbols.len()
    }
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Paths of the three files of a store named by its prefix `STORE`.
pub struct StorePaths {
    pub embeddings: PathBuf,
    pub genes: PathBuf,
    pub manifest: PathBuf,
}

pub fn store_paths(prefix: &Path) -> StorePaths {
    let with = |suffix: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    StorePaths {
        embeddings: with(".safetensors"),
        genes: with(".genes.tsv"),
        manifest: with(".manifest.json"),
    }
}

/// Accept `STORE`, `STORE.safetensors`, `STORE.genes.tsv` or `STORE.manifest.json`.
pub fn store_prefix(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    for suffix in [".safetensors", ".genes.tsv", ".manifest.json"] {
        if let Some(base) = s.strip_suffix(suffix) {
            return PathBuf::from(base);
        }
    }
    p.to_path_buf()
}

impl GeneEmbeddings {
    /// Write the store: embeddings and gene list first, the manifest last (its presence marks a
    /// complete store). Each file is written atomically.
    pub fn save(&self, prefix: &Path, manifest: &serde_json::Value) -> Result<()> {
        let p = store_paths(prefix);
        crate::io::write_embeddings(&p.embeddings, &self.data, self.len(), self.dim, None)?;
        let mut tsv = String::with_capacity(self.len() * 8);
        for s in &self.symbols {
            tsv.push_str(s);
            tsv.push('\n');
        }
        crate::io::atomic_write(&p.genes, tsv.as_bytes())?;
        crate::io::write_json(&p.manifest, manifest)
    }

    pub fn load(prefix: &Path) -> Result<Self> {
        let prefix = store_prefix(prefix);
        let p = store_paths(&prefix);
        for f in [&p.embeddings, &p.genes] {
            if !f.exists() {
                bail!(
                    "{}: missing; a gene store is STORE.safetensors + STORE.genes.tsv + STORE.manifest.json \
                     (make one with `celltext genes embed`)",
                    f.display()
                );
            }
        }
        let (data, n, dim, _) = crate::io::read_embeddings_safetensors(&p.embeddings)?;
        let text = std::fs::read_to_string(&p.genes)
            .with_context(|| format!("{}: cannot read", p.genes.display()))?;
        let symbols: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        if symbols.len() != n {
            bail!(
                "{}: lists {} genes but {} has {n} rows; the store is inconsistent, rebuild it",
                p.genes.display(),
                symbols.len(),
                p.embeddings.display()
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in symbols.iter().enumerate() {
            if s.is_empty() || !seen.insert(s) {
                bail!(
                    "{}: line {}: empty or duplicate gene `{s}`",
                    p.genes.display(),
                    i + 1
                );
            }
        }
        Ok(Self { symbols, dim, data })
    }

    /// The manifest of a store, if present.
    pub fn manifest(prefix: &Path) -> Result<Option<serde_json::Value>> {
        let p = store_paths(&store_prefix(prefix));
        if !p.manifest.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p.manifest)?;
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{}: invalid JSON", p.manifest.display())
        })?))
    }
}
