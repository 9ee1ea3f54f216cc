//! Model resolution: a directory in HF layout, or a card name / hub id found in a local models
//! directory, in the HF cache (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`), or
//! downloaded with hf-hub at the card's pinned revision.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use super::card::{find_card, ModelCard};

/// Where a model came from, recorded in every manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedModel {
    pub dir: PathBuf,
    /// Hub id (from the card) or the directory path.
    pub id: String,
    /// Commit / revision when known ("local" for a plain directory).
    pub revision: String,
    pub card: Option<ModelCard>,
}

/// Files fetched when present but not required by any card.
const OPTIONAL_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "modules.json",
    "special_tokens_map.json",
];

pub fn hf_cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Ok(p) = std::env::var("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home)
        .join(".cache")
        .join("huggingface")
        .join("hub")
}

/// Local directories searched for a card's model before the HF cache.
pub fn models_dirs() -> Vec<PathBuf> {
    let mut v = vec![];
    if let Ok(p) = std::env::var("CELLTEXT_MODELS_DIR") {
        v.push(PathBuf::from(p));
    }
    v.push(PathBuf::from("models-local"));
    v
}

pub fn offline() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
            .unwrap_or(false)
    };
    on("HF_HUB_OFFLINE") || on("CELLTEXT_OFFLINE")
}

fn is_model_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

/// The snapshot of `hub_id` at `revision` in the HF cache, if complete.
pub fn find_in_hf_cache(hub_id: &str, revision: &str, required: &[String]) -> Option<PathBuf> {
    let repo_dir = hf_cache_dir().join(format!("models--{}", hub_id.replace('/', "--")));
    let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        revision.to_string()
    } else {
        std::fs::read_to_string(repo_dir.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    let snap = repo_dir.join("snapshots").join(commit);
    let complete = is_model_dir(&snap) && required.iter().all(|f| snap.join(f).exists());
    complete.then_some(snap)
}

fn find_local(card: &ModelCard) -> Option<PathBuf> {
    let base = card
        .hub_id
        .rsplit('/')
        .next()
        .unwrap_or(&card.hub_id)
        .to_string();
    for root in models_dirs() {
        for name in [&card.name, &base] {
            let d = root.join(name);
            if is_model_dir(&d) {
                return Some(d);
            }
        }
    }
    None
}

/// Is the card's model available without a download? (for `celltext models`)
pub fn local_copy(card: &ModelCard) -> Option<PathBuf> {
    find_local(card).or_else(|| find_in_hf_cache(&card.hub_id, &card.revision, &card.files))
}

pub fn resolve(spec: &str, quiet: bool) -> Result<ResolvedModel> {
    let path = Path::new(spec);
    if path.is_dir() {
        if !is_model_dir(path) {
            bail!(
                "{}: not a model directory: config.json is missing",
                path.display()
            );
        }
        return Ok(ResolvedModel {
            dir: path.to_path_buf(),
            id: spec.to_string(),
            revision: "local".into(),
            card: None,
        });
    }
    let card = match find_card(spec)? {
        Some(c) => c,
        None if spec.contains('/')
            && !path.exists()
            && !spec.starts_with('.')
            && spec.matches('/').count() == 1 =>
        {
            ModelCard {
                name: spec.to_string(),
                hub_id: spec.to_string(),
                revision: "main".into(),
                files: vec!["config.json".into()],
                lowercase: None,
                pooling: None,
                max_length: None,
                description: String::new(),
            }
        }
        None => {
            let names: Vec<String> = super::card::builtin_cards()?
                .into_iter()
                .map(|c| c.name)
                .collect();
            bail!(
                "model `{spec}` is neither a directory nor a known card ({}) nor a hub id like org/name",
                names.join(", ")
            )
        }
    };
    if let Some(dir) = find_local(&card) {
        return Ok(ResolvedModel {
            dir,
            id: card.hub_id.clone(),
            revision: card.revision.clone(),
            card: Some(card),
        });
    }
    if let Some(dir) = find_in_hf_cache(&card.hub_id, &card.revision, &card.files) {
        let revision = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or(card.revision.clone());
        return Ok(ResolvedModel {
            dir,
            id: card.hub_id.clone(),
            revision,
            card: Some(card),
        });
    }
    let how = format!(
        "download it elsewhere (e.g. `huggingface-cli download {id} --revision {rev}`) and pass the directory \
         with --model DIR, or put it in models-local/{name}/ or $CELLTEXT_MODELS_DIR/{name}/",
        id = card.hub_id,
        rev = card.revision,
        name = card.name
    );
    if offline() {
        bail!(
            "model `{}` (revision {}) is not in the local HF cache ({}) and HF_HUB_OFFLINE is set; {how}",
            card.hub_id,
            card.revision,
            hf_cache_dir().display()
        );
    }
    download(&card, quiet).with_context(|| {
        format!(
            "could not download `{}` (revision {}) from the Hugging Face hub; {how}",
            card.hub_id, card.revision
        )
    })
}

fn download(card: &ModelCard, quiet: bool) -> Result<ResolvedModel> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let api = ApiBuilder::new()
        .with_cache_dir(hf_cache_dir())
        .with_progress(!quiet)
        .build()?;
    let repo = api.repo(Repo::with_revision(
        card.hub_id.clone(),
        RepoType::Model,
        card.revision.clone(),
    ));
    let mut files = card.files.clone();
    if !files.iter().any(|f| f == "config.json") {
        files.insert(0, "config.json".into());
    }
    let mut dir = None;
    for f in &files {
        let p = repo.get(f).with_context(|| format!("fetching `{f}`"))?;
        if f == "config.json" {
            dir = p.parent().map(Path::to_path_buf);
        }
    }
    for f in OPTIONAL_FILES {
        if !files.iter().any(|x| x == f) {
            let _ = repo.get(f); // absent in many repos; the loader decides what it needs
        }
    }
    let dir = dir.context("hf-hub returned no path for config.json")?;
    let revision = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or(card.revision.clone());
    Ok(ResolvedModel {
        dir,
        id: card.hub_id.clone(),
        revision,
        card: Some(card.clone()),
    })
}
