//! Weight files → named tensors under canonical BERT names.
//!
//! Handles `model.safetensors` (mmap), sharded safetensors (`model.safetensors.index.json`),
//! `pytorch_model.bin` (zip or legacy pickle, see `pth`), sharded `.bin` indexes; strips the
//! `bert.` prefix, maps TF-era `LayerNorm.gamma/beta` to `weight/bias`, and ignores heads.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::io::sha256_file;

enum Backing {
    Safetensors(MmapedSafetensors),
    Loaded(HashMap<String, Tensor>),
}

pub struct WeightFiles {
    backing: Backing,
    /// canonical name → name in the file
    names: HashMap<String, String>,
    pub files: Vec<PathBuf>,
}

/// The canonical name of a checkpoint key, or None for keys the encoder does not use.
pub fn canonical_name(key: &str) -> Option<String> {
    let k = key.strip_prefix("bert.").unwrap_or(key);
    if k.starts_with("cls.") || k.starts_with("pooler.") || k.ends_with("position_ids") {
        return None;
    }
    if !(k.starts_with("embeddings.") || k.starts_with("encoder.")) {
        return None;
    }
    let k = if let Some(base) = k.strip_suffix("LayerNorm.gamma") {
        format!("{base}LayerNorm.weight")
    } else if let Some(base) = k.strip_suffix("LayerNorm.beta") {
        format!("{base}LayerNorm.bias")
    } else {
        k.to_string()
    };
    Some(k)
}

/// `path` exists as a file; a directory (or other non-file) under a weight file's name is an
/// error saying so, not a "truncated" or "cannot read" later on.
fn present_file(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!(
            "{}: is a directory, not a weight file; remove or rename it so the weights can be read",
            path.display()
        ),
        Ok(m) if !m.is_file() => bail!("{}: is not a regular file", path.display()),
        Ok(_) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// The weight files of a model directory, in the order they would be loaded.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let st = dir.join("model.safetensors");
    if present_file(&st)? {
        return Ok(vec![st]);
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let p = dir.join(index);
        if present_file(&p)? {
            return shard_files(&p);
        }
    }
    let bin = dir.join("pytorch_model.bin");
    if present_file(&bin)? {
        return Ok(vec![bin]);
    }
    bail!(
        "{}: no weights found: expected model.safetensors, model.safetensors.index.json, \
         pytorch_model.bin or pytorch_model.bin.index.json",
        dir.display()
    )
}

/// A shard named by an index must stay inside the model folder: a plain relative file name
/// (no `..`, not absolute), and once symlinks are resolved it must lie in the folder itself or
/// beside the index's own target (the Hugging Face cache links both into `blobs/`).
fn shard_path(index: &Path, dir: &Path, f: &str) -> Result<PathBuf> {
    use std::path::Component;
    let rel = Path::new(f);
    let plain = !f.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain || f.contains('\\') {
        bail!(
            "{}: weight_map names shard `{}`, which leaves the model folder (absolute path or \
             `..`); shards must be files inside {}",
            index.display(),
            crate::pickle::printable(f),
            dir.display()
        );
    }
    let p = dir.join(rel);
    if !present_file(&p)? {
        bail!(
            "{}: shard `{}` listed in the index is missing",
            index.display(),
            crate::pickle::printable(f)
        );
    }
    let real = p
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", p.display()))?;
    let roots = [
        dir.canonicalize().ok(),
        index
            .canonicalize()
            .ok()
            .and_then(|i| i.parent().map(Path::to_path_buf)),
    ];
    if !roots.iter().flatten().any(|r| real.starts_with(r)) {
        bail!(
            "{}: shard `{}` is a link to {}, outside the model folder; shards must be files \
             inside {}",
            index.display(),
            crate::pickle::printable(f),
            real.display(),
            dir.display()
        );
    }
    Ok(p)
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index)
        .with_context(|| format!("{}: cannot read", index.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid JSON", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: missing `weight_map` object", index.display()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files = BTreeSet::new();
    for (tensor, f) in map {
        let f = f.as_str().with_context(|| {
            format!(
                "{}: weight_map entry `{}` is not a file name (string)",
                index.display(),
                crate::pickle::printable(tensor)
            )
        })?;
        files.insert(f.to_string());
    }
    if files.is_empty() {
        bail!("{}: `weight_map` names no files", index.display());
    }
    let mut out = vec![];
    for f in files {
        out.push(shard_path(index, dir, &f)?);
    }
    Ok(out)
}

/// Refuse NaN and ±inf weights, naming the file and the tensor.
fn check_finite(t: &Tensor, raw: &str, files: &[PathBuf]) -> Result<()> {
    if !matches!(
        t.dtype(),
        DType::F32 | DType::F16 | DType::BF16 | DType::F64
    ) {
        return Ok(());
    }
    let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        let file = if files.len() == 1 {
            files[0].display().to_string()
        } else {
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        };
        bail!(
            "{file}: tensor `{}` holds a non-finite value ({}) at flat index {i}; the checkpoint \
             is corrupt: download it again",
            crate::pickle::printable(raw),
            v[i]
        );
    }
    Ok(())
}

impl WeightFiles {
    pub fn open(dir: &Path) -> Result<Self> {
        let files = weight_files(dir)?;
        let is_st = files[0].extension().is_some_and(|e| e == "safetensors");
        let (backing, raw_names): (Backing, Vec<String>) = if is_st {
            for f in &files {
                check_safetensors_header(f)?;
            }
            // SAFETY: the files are opened read-only; celltext never writes to a mapped file.
            let st = unsafe { MmapedSafetensors::multi(&files) }
                .map_err(|e| anyhow!("{}: corrupt safetensors file: {e}", files[0].display()))?;
            let names = st.tensors().into_iter().map(|(n, _)| n).collect();
            (Backing::Safetensors(st), names)
        } else {
            let mut all = HashMap::new();
            for f in &files {
                for (name, t) in super::pth::read_pth(f)? {
                    all.insert(name, t);
                }
            }
            let names = all.keys().cloned().collect();
            (Backing::Loaded(all), names)
        };
        let mut names = HashMap::new();
        for raw in raw_names {
            if let Some(c) = canonical_name(&raw) {
                if let Some(prev) = names.insert(c.clone(), raw.clone()) {
                    bail!(
                        "{}: tensors `{prev}` and `{raw}` both map to `{c}`; the checkpoint mixes prefixed and unprefixed keys",
                        files[0].display()
                    );
                }
            }
        }
        Ok(Self {
            backing,
            names,
            files,
        })
    }

    pub fn has(&self, canonical: &str) -> bool {
        self.names.contains_key(canonical)
    }

    /// A tensor's shape from the file header, without reading its data.
    pub fn shape(&self, canonical: &str) -> Option<Vec<usize>> {
        let raw = self.names.get(canonical)?;
        match &self.backing {
            Backing::Safetensors(st) => st.get(raw).ok().map(|v| v.shape().to_vec()),
            Backing::Loaded(m) => m.get(raw).map(|t| t.dims().to_vec()),
        }
    }

    /// Number of encoder layers present (`encoder.layer.N.*`, N contiguous from 0).
    pub fn n_layers(&self) -> usize {
        let present: BTreeSet<usize> = self
            .names
            .keys()
            .filter_map(|k| {
                k.strip_prefix("encoder.layer.")?
                    .split('.')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        (0..).take_while(|i| present.contains(i)).count()
    }

    /// Check the sizes config.json gives against the tensors' shapes before anything is
    /// allocated: a config that claims 2^60 layers or a 10^9 vocabulary is refused here, naming
    /// the field, instead of exhausting memory.
    pub fn check_config(
        &self,
        config: &super::config::BertConfig,
        config_path: &Path,
    ) -> Result<()> {
        let h = config.hidden_size;
        let expect = |name: &str, want: [usize; 2], fields: &str| -> Result<()> {
            match self.shape(name) {
                Some(got) if got == want => Ok(()),
                Some(got) => bail!(
                    "{}: tensor `{name}` has shape {got:?} but {fields} in {} imply {want:?}; config and weights do not match",
                    self.files[0].display(),
                    config_path.display()
                ),
                None => Ok(()), // a missing tensor is reported, with its name, when it is loaded
            }
        };
        expect(
            "embeddings.word_embeddings.weight",
            [config.vocab_size, h],
            "vocab_size and hidden_size",
        )?;
        expect(
            "embeddings.position_embeddings.weight",
            [config.max_position_embeddings, h],
            "max_position_embeddings and hidden_size",
        )?;
        expect(
            "embeddings.token_type_embeddings.weight",
            [config.type_vocab_size, h],
            "type_vocab_size and hidden_size",
        )?;
        expect(
            "encoder.layer.0.attention.self.query.weight",
            [h, h],
            "hidden_size",
        )?;
        let layers = self.n_layers();
        if config.num_hidden_layers > layers {
            bail!(
                "{}: num_hidden_layers is {} but {} holds {layers} encoder layers; config and weights do not match",
                config_path.display(),
                config.num_hidden_layers,
                self.files[0].display()
            );
        }
        expect(
            "encoder.layer.0.intermediate.dense.weight",
            [config.intermediate_size, h],
            "intermediate_size and hidden_size",
        )
    }

    /// Load a tensor by canonical name, check its shape, move it to `device` as `dtype`.
    pub fn get(
        &self,
        canonical: &str,
        shape: &[usize],
        device: &Device,
        dtype: DType,
    ) -> Result<Tensor> {
        let raw = self.names.get(canonical).with_context(|| {
            format!(
                "{}: missing tensor `{canonical}` (also tried `bert.{canonical}` and LayerNorm gamma/beta names); \
                 is this a BERT checkpoint?",
                self.files[0].display()
            )
        })?;
        let t = match &self.backing {
            Backing::Safetensors(st) => {
                let t = st.load(raw, &Device::Cpu).map_err(|e| {
                    anyhow!(
                        "{}: cannot read tensor `{raw}`: {e}",
                        self.files[0].display()
                    )
                })?;
                if let Ok(view) = st.get(raw) {
                    release_mapped(view.data());
                }
                t
            }
            Backing::Loaded(m) => m[raw].clone(),
        };
        if t.dims() != shape {
            bail!(
                "{}: tensor `{raw}` has shape {:?} but config.json implies {:?}; config and weights do not match",
                self.files[0].display(),
                t.dims(),
                shape
            );
        }
        if !matches!(
            t.dtype(),
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            bail!(
                "{}: tensor `{raw}` has non-float dtype {:?}",
                self.files[0].display(),
                t.dtype()
            );
        }
        check_finite(&t, raw, &self.files)?;
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    /// All usable tensors under canonical names (for `convert`).
    pub fn all_canonical(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![];
        let mut keys: Vec<_> = self.names.iter().collect();
        keys.sort();
        for (c, raw) in keys {
            let t = match &self.backing {
                Backing::Safetensors(st) => st.load(raw, &Device::Cpu)?,
                Backing::Loaded(m) => m[raw].clone(),
            };
            check_finite(&t, raw, &self.files)?;
            out.push((c.clone(), t));
        }
        Ok(out)
    }

    /// SHA-256 of the weights: the file's digest, or for shards the digest of "name digest" lines.
    pub fn sha256(&self) -> Result<String> {
        if self.files.len() == 1 {
            return sha256_file(&self.files[0]);
        }
        let mut lines = String::new();
        for f in &self.files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            lines.push_str(&format!("{name} {}\n", sha256_file(f)?));
        }
        Ok(crate::io::sha256_bytes(lines.as_bytes()))
    }
}

/// Validate a safetensors header before mmapping, so truncation gets a precise message.
/// Drop the already-copied pages of a tensor from the file mapping: they are clean, read-only
/// file pages (re-read from disk if touched again) but count towards the process's RSS, so
/// without this a checkpoint is resident twice while the model is built.
fn release_mapped(bytes: &[u8]) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside the read-only private file mapping that `bytes`
            // borrows; MADV_DONTNEED on such pages only drops them (later reads refault from the
            // file), so the borrowed slice stays valid and unchanged.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = bytes;
}

fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot stat", path.display()))?
        .len();
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut n = [0u8; 8];
    if len < 8 || f.read_exact(&mut n).is_err() {
        bail!(
            "{}: truncated safetensors file ({len} bytes, no header)",
            path.display()
        );
    }
    let hlen = u64::from_le_bytes(n);
    if hlen > len - 8 {
        bail!(
            "{}: truncated or corrupt safetensors file: header claims {hlen} bytes but the file has {len}",
            path.display()
        );
    }
    let mut header = vec![0u8; hlen as usize];
    f.read_exact(&mut header)
        .with_context(|| format!("{}: cannot read header", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&header).map_err(|e| {
        anyhow!(
            "{}: corrupt safetensors header (not JSON: {e})",
            path.display()
        )
    })?;
    let mut max_end = 0u64;
    if let Some(obj) = v.as_object() {
        for (k, t) in obj {
            if k == "__metadata__" {
                continue;
            }
            if let Some(end) = t
                .get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(|e| e.as_u64())
            {
                max_end = max_end.max(end);
            }
        }
    }
    if 8 + hlen + max_end > len {
        bail!(
            "{}: truncated safetensors file: tensors need {} bytes but the file has {len}; download it again",
            path.display(),
            8 + hlen + max_end
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::canonical_name;
    #[test]
    fn canonical_names() {
        assert_eq!(
            canonical_name("bert.encoder.layer.0.attention.output.LayerNorm.gamma").unwrap(),
            "encoder.layer.0.attention.output.LayerNorm.weight"
        );
        assert_eq!(
            canonical_name("embeddings.LayerNorm.beta").unwrap(),
            "embeddings.LayerNorm.bias"
        );
        assert_eq!(canonical_name("cls.predictions.bias"), None);
        assert_eq!(canonical_name("bert.pooler.dense.weight"), None);
        assert_eq!(canonical_name("bert.embeddings.position_ids"), None);
        assert_eq!(
            canonical_name("embeddings.word_embeddings.weight").unwrap(),
            "embeddings.word_embeddings.weight"
        );
    }
}
