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

impl StorePaths {
    /// The three files, for [`crate::outputs::check_apart`].
    pub fn all(&self) -> [&Path; 3] {
        [&self.embeddings, &self.genes, &self.manifest]
    }
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

/// Why `symbol` cannot be a gene symbol (empty, or a control character — newline, tab, CR, NUL,
/// any other C0/C1 — that would break `STORE.genes.tsv` and TSV exports), or None.
pub fn symbol_problem(symbol: &str) -> Option<&'static str> {
    if symbol.trim().is_empty() {
        Some("is empty")
    } else if symbol.chars().any(char::is_control) {
        Some("contains a control character (newline, tab, carriage return, NUL, …)")
    } else {
        None
    }
}

/// `s` with its control characters escaped as Rust writes them (`\n`, `\t`, `\0`, `\u{1b}`), so
/// an error shows a symbol on one line; other characters stay as they are.
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `Err` naming `file`, the symbol (escaped) and the fix when [`symbol_problem`] finds one;
/// `place` says where in the file (e.g. "line 3: "), or "".
pub fn check_symbol(symbol: &str, file: &Path, place: &str) -> Result<()> {
    match symbol_problem(symbol) {
        None => Ok(()),
        Some(why) => bail!(
            "{}: {place}gene symbol \"{}\" {why}; gene symbols must be printable text — fix or drop \
             that entry in the file",
            file.display(),
            escape_controls(symbol)
        ),
    }
}

/// The key of the manifest that makes the three files one unit: sha256 and size of the
/// embeddings and the gene list, written last, checked on every open.
const FILES_KEY: &str = "store_files";

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct FileStamp {
    file: String,
    bytes: u64,
    sha256: String,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct StoreFiles {
    rows: usize,
    dim: usize,
    embeddings: FileStamp,
    genes: FileStamp,
}

fn stamp(path: &Path, bytes: &[u8]) -> FileStamp {
    FileStamp {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        bytes: bytes.len() as u64,
        sha256: crate::io::sha256_bytes(bytes),
    }
}

/// What to rerun to rebuild a store.
fn rebuild_hint(prefix: &Path) -> String {
    format!(
        "rerun the command that made it (`celltext genes embed` or `celltext genes import` with \
         --out {})",
        prefix.display()
    )
}

impl GeneEmbeddings {
    /// Write the store as one unit: the old manifest is removed first, then the embeddings and
    /// the gene list are renamed into place, then the manifest — holding the sha256 of both — is
    /// renamed in last. Every open checks those sums, so a run killed between the renames leaves
    /// a store that is refused (no manifest, or sums that do not match), never new vectors under
    /// old symbols.
    pub fn save(&self, prefix: &Path, manifest: &serde_json::Value) -> Result<()> {
        self.save_stepwise(prefix, manifest, &mut |_| Ok(()))
    }

    /// [`save`](Self::save) calling `after_step(i)` after each rename (i = 0: old manifest
    /// removed, 1: embeddings, 2: gene list); tests stop it there to simulate a kill.
    pub(crate) fn save_stepwise(
        &self,
        prefix: &Path,
        manifest: &serde_json::Value,
        after_step: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        let p = store_paths(prefix);
        if self.data.len() != self.len() * self.dim {
            bail!(
                "internal: gene store data does not match {} × {}",
                self.len(),
                self.dim
            );
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.symbols {
            check_symbol(s, &p.genes, "")?;
            if !seen.insert(s) {
                bail!(
                    "{}: gene `{}` appears twice; a store holds one row per gene",
                    p.genes.display(),
                    escape_controls(s)
                );
            }
        }
        let emb = crate::io::embeddings_safetensors_bytes(&self.data, self.len(), self.dim, None)?;
        let mut tsv = String::with_capacity(self.len() * 8);
        for s in &self.symbols {
            tsv.push_str(s);
            tsv.push('\n');
        }
        let files = StoreFiles {
            rows: self.len(),
            dim: self.dim,
            embeddings: stamp(&p.embeddings, &emb),
            genes: stamp(&p.genes, tsv.as_bytes()),
        };
        let mut manifest = manifest.clone();
        match manifest.as_object_mut() {
            Some(m) => {
                m.insert(FILES_KEY.into(), serde_json::to_value(&files)?);
            }
            None => bail!("internal: a store manifest must be a JSON object"),
        }
        match std::fs::remove_file(&p.manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: cannot remove the old manifest before replacing the store",
                        p.manifest.display()
                    )
                })
            }
        }
        after_step(0)?;
        crate::io::atomic_write(&p.embeddings, &emb)?;
        after_step(1)?;
        crate::io::atomic_write(&p.genes, tsv.as_bytes())?;
        after_step(2)?;
        crate::io::write_json(&p.manifest, &manifest)
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
        if !p.manifest.exists() {
            bail!(
                "{}: missing, so {} is not a complete gene store (a write that was interrupted \
                 leaves it so); {}",
                p.manifest.display(),
                prefix.display(),
                rebuild_hint(&prefix)
            );
        }
        for f in p.all() {
            crate::outputs::require_regular_file(f, "a gene store file")?;
        }
        let manifest = Self::manifest(&prefix)?.unwrap_or(serde_json::Value::Null);
        let files: Option<StoreFiles> = match manifest.get(FILES_KEY) {
            None => None, // written before stores recorded their files: checked by shape only
            Some(v) => Some(serde_json::from_value(v.clone()).with_context(|| {
                format!(
                    "{}: `{FILES_KEY}` is malformed; {}",
                    p.manifest.display(),
                    rebuild_hint(&prefix)
                )
            })?),
        };
        let emb_bytes = std::fs::read(&p.embeddings)
            .with_context(|| format!("{}: cannot read", p.embeddings.display()))?;
        let gene_bytes = std::fs::read(&p.genes)
            .with_context(|| format!("{}: cannot read", p.genes.display()))?;
        if let Some(files) = &files {
            for (path, bytes, want) in [
                (&p.embeddings, &emb_bytes, &files.embeddings),
                (&p.genes, &gene_bytes, &files.genes),
            ] {
                let got = stamp(path, bytes);
                if got.sha256 != want.sha256 || got.bytes != want.bytes {
                    bail!(
                        "{}: does not match {} (sha256 {}…, the manifest records {}…): the store \
                         mixes files of two different writes (a run killed while replacing it?) \
                         and cannot be used; {}",
                        path.display(),
                        p.manifest.display(),
                        &got.sha256[..12],
                        &want.sha256[..want.sha256.len().min(12)],
                        rebuild_hint(&prefix)
                    );
                }
            }
        }
        let (data, n, dim, _) = crate::io::parse_embeddings_safetensors(&emb_bytes, &p.embeddings)?;
        if let Some(files) = &files {
            if (files.rows, files.dim) != (n, dim) {
                bail!(
                    "{}: holds {n} × {dim} but {} records {} × {}; {}",
                    p.embeddings.display(),
                    p.manifest.display(),
                    files.rows,
                    files.dim,
                    rebuild_hint(&prefix)
                );
            }
        }
        let text = String::from_utf8(gene_bytes)
            .map_err(|_| anyhow::anyhow!("{}: not valid UTF-8", p.genes.display()))?;
        let symbols: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        if symbols.len() != n {
            bail!(
                "{}: lists {} genes but {} has {n} rows; the store is inconsistent, {}",
                p.genes.display(),
                symbols.len(),
                p.embeddings.display(),
                rebuild_hint(&prefix)
            );
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            let row = k / dim.max(1);
            bail!(
                "{}: row {row} (gene `{}`) holds {} at column {}; a gene store's vectors must be                  finite numbers, {}",
                p.embeddings.display(),
                escape_controls(&symbols[row]),
                data[k],
                k % dim.max(1),
                rebuild_hint(&prefix)
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in symbols.iter().enumerate() {
            check_symbol(s, &p.genes, &format!("line {}: ", i + 1))?;
            if !seen.insert(s) {
                bail!(
                    "{}: line {}: duplicate gene `{s}`; {}",
                    p.genes.display(),
                    i + 1,
                    rebuild_hint(&prefix)
                );
            }
        }
        Ok(Self { symbols, dim, data })
    }

    /// The store at `prefix` and its manifest, refused when it records another species than the
    /// data's ([`GeneEmbeddings::check_species`]).
    pub fn load_for_species(
        prefix: &Path,
        species: crate::genes::Species,
        orthologs: bool,
    ) -> Result<(Self, Option<serde_json::Value>)> {
        let store = Self::load(prefix)?;
        let manifest = Self::manifest(prefix)?;
        Self::check_species(prefix, manifest.as_ref(), species, orthologs)?;
        Ok((store, manifest))
    }

    /// Refuses a store whose manifest records genes of another species than the data's
    /// (`--species`): human names read against a mouse store match mostly by case and silently
    /// lose the rest. With `--orthologs` the data's genes may map onto the other species' store.
    /// A store that records no species (an imported one) is not checked.
    pub fn check_species(
        prefix: &Path,
        manifest: Option<&serde_json::Value>,
        species: crate::genes::Species,
        orthologs: bool,
    ) -> Result<()> {
        use crate::choice::Choice;
        let Some(recorded) = manifest
            .and_then(|m| m.get("species"))
            .and_then(|s| s.as_str())
            .and_then(|s| {
                crate::choice::parse_choice::<crate::genes::Species>("species", s, true).ok()
            })
        else {
            return Ok(());
        };
        if recorded == species || orthologs {
            return Ok(());
        }
        let (data, store) = (species.name(), recorded.name());
        bail!(
            "{}: a {store} gene store (its manifest's `species`), but the data's genes are read \
             as {data} (--species {data}); pass --species {store} for {store} data, or \
             --orthologs to map {data} genes onto this store",
            prefix.display()
        )
    }

    /// The manifest of a store, if present.
    pub fn manifest(prefix: &Path) -> Result<Option<serde_json::Value>> {
        let p = store_paths(&store_prefix(prefix));
        if !p.manifest.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p.manifest)
            .with_context(|| format!("{}: cannot read", p.manifest.display()))?;
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{}: invalid JSON", p.manifest.display())
        })?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(symbols: &[&str], base: f32) -> GeneEmbeddings {
        GeneEmbeddings {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            dim: 2,
            data: (0..symbols.len() * 2).map(|i| base + i as f32).collect(),
        }
    }

    fn meta() -> serde_json::Value {
        serde_json::json!({"tool": "test"})
    }

    #[test]
    fn round_trip_records_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s");
        store(&["A", "B"], 0.0).save(&prefix, &meta()).unwrap();
        let g = GeneEmbeddings::load(&prefix).unwrap();
        assert_eq!(g.symbols, ["A", "B"]);
        assert_eq!(g.data, [0.0, 1.0, 2.0, 3.0]);
        let m = GeneEmbeddings::manifest(&prefix).unwrap().unwrap();
        assert_eq!(m[FILES_KEY]["rows"], 2);
    }

    /// A writer killed after each rename, over an existing store of other genes (same row
    /// count, so only the recorded sums can tell): every state is refused, naming the file and
    /// the command to rerun; a finished rerun is accepted.
    #[test]
    fn killed_between_renames_is_refused() {
        for stop in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let prefix = dir.path().join("s");
            store(&["OLD1", "OLD2"], 0.0)
                .save(&prefix, &meta())
                .unwrap();
            let new = store(&["NEW1", "NEW2"], 100.0);
            let r = new.save_stepwise(&prefix, &meta(), &mut |i| {
                if i == stop {
                    bail!("killed")
                }
                Ok(())
            });
            assert!(r.is_err());
            let e = format!("{:#}", GeneEmbeddings::load(&prefix).unwrap_err());
            assert!(e.contains("s.manifest.json"), "stop {stop}: {e}");
            assert!(e.contains("celltext genes embed"), "stop {stop}: {e}");
            new.save(&prefix, &meta()).unwrap();
            assert_eq!(
                GeneEmbeddings::load(&prefix).unwrap().symbols,
                ["NEW1", "NEW2"]
            );
        }
    }

    /// New vectors under old symbols with the old manifest (what the three-rename writer left):
    /// refused, naming the mismatching file.
    #[test]
    fn mixed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        store(&["OLD1", "OLD2"], 0.0).save(&a, &meta()).unwrap();
        store(&["NEW1", "NEW2"], 100.0).save(&b, &meta()).unwrap();
        std::fs::copy(store_paths(&b).embeddings, store_paths(&a).embeddings).unwrap();
        let e = format!("{:#}", GeneEmbeddings::load(&a).unwrap_err());
        assert!(e.contains("a.safetensors: does not match"), "{e}");
        assert!(e.contains("--out"), "{e}");
        std::fs::copy(store_paths(&b).genes, store_paths(&a).genes).unwrap();
        let e = format!("{:#}", GeneEmbeddings::load(&a).unwrap_err());
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn control_characters_are_refused_on_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s");
        for bad in [
            "GENE\nX",
            "A\tB",
            "C\r",
            "N\0UL",
            "E\u{1b}SC",
            "C1\u{85}",
            "",
        ] {
            let e = store(&["OK", bad], 0.0)
                .save(&prefix, &meta())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("s.genes.tsv") && e.contains("gene symbol"),
                "{e}"
            );
            assert!(!e.contains('\n') && !e.contains('\t'), "escaped: {e:?}");
        }
        // a hand-edited gene list (legacy manifest without sums) with a control character
        store(&["OK", "B"], 0.0).save(&prefix, &meta()).unwrap();
        let p = store_paths(&prefix);
        std::fs::write(&p.genes, "OK\nB\u{7}\n").unwrap();
        std::fs::write(&p.manifest, "{}").unwrap();
        let e = GeneEmbeddings::load(&prefix).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("B\\u{7}"), "{e}");
    }

    #[test]
    fn legacy_store_without_sums_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("s");
        store(&["A", "B"], 0.0).save(&prefix, &meta()).unwrap();
        std::fs::write(
            store_paths(&prefix).manifest,
            r#"{"tool": "celltext 0.1.0"}"#,
        )
        .unwrap();
        assert_eq!(GeneEmbeddings::load(&prefix).unwrap().symbols, ["A", "B"]);
    }

    /// A store that records its species is refused for data read as the other species unless
    /// --orthologs maps them; a store recording none (or an unknown one) is not checked.
    #[test]
    fn a_store_of_another_species_is_refused_by_name() {
        use crate::genes::Species::{Human, Mouse};
        let p = Path::new("mouse_store");
        let mouse = serde_json::json!({"species": "mouse"});
        let e = GeneEmbeddings::check_species(p, Some(&mouse), Human, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mouse_store: a mouse gene store")
                && e.contains("--species mouse")
                && e.contains("--orthologs"),
            "{e}"
        );
        assert!(GeneEmbeddings::check_species(p, Some(&mouse), Mouse, false).is_ok());
        assert!(GeneEmbeddings::check_species(p, Some(&mouse), Human, true).is_ok());
        let human = serde_json::json!({"species": "hs"});
        assert!(GeneEmbeddings::check_species(p, Some(&human), Mouse, false).is_err());
        for m in [
            serde_json::json!({}),
            serde_json::json!({"species": null}),
            serde_json::json!({"species": "zebrafish"}),
        ] {
            assert!(GeneEmbeddings::check_species(p, Some(&m), Human, false).is_ok());
        }
        assert!(GeneEmbeddings::check_species(p, None, Mouse, false).is_ok());
    }
}
