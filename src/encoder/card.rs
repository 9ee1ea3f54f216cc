//! Model cards: one small TOML per named model in `models/`, compiled into the binary so a
//! card name works from any directory.

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::pooling::Pooling;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub name: String,
    pub hub_id: String,
    pub revision: String,
    #[serde(default)]
    pub files: Vec<String>,
    pub lowercase: Option<bool>,
    pub pooling: Option<Pooling>,
    pub max_length: Option<usize>,
    #[serde(default)]
    pub description: String,
}

const BUILTIN: &[(&str, &str)] = &[
    ("minilm.toml", include_str!("../../models/minilm.toml")),
    ("biobert.toml", include_str!("../../models/biobert.toml")),
    ("scibert.toml", include_str!("../../models/scibert.toml")),
    ("ember-v1.toml", include_str!("../../models/ember-v1.toml")),
];

/// All cards shipped in `models/`.
pub fn builtin_cards() -> Result<Vec<ModelCard>> {
    BUILTIN
        .iter()
        .map(|(file, text)| parse_card(text).with_context(|| format!("models/{file}")))
        .collect()
}

pub fn parse_card(text: &str) -> Result<ModelCard> {
    toml::from_str(text).map_err(|e| anyhow!("invalid model card: {e}"))
}

/// The card whose `name` (or hub id) matches, case-insensitively.
pub fn find_card(name: &str) -> Result<Option<ModelCard>> {
    let lower = name.to_ascii_lowercase();
    Ok(builtin_cards()?
        .into_iter()
        .find(|c| c.name.to_ascii_lowercase() == lower || c.hub_id.to_ascii_lowercase() == lower))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn builtin_cards_parse_and_are_unique() {
        let cards = builtin_cards().unwrap();
        assert_eq!(cards.len(), 4);
        let mut names: Vec<_> = cards.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4);
        assert_eq!(find_card("MiniLM").unwrap().unwrap().max_length, Some(256));
        assert_eq!(
            find_card("biobert").unwrap().unwrap().lowercase,
            Some(false)
        );
        assert_eq!(
            find_card("ember-v1").unwrap().unwrap().pooling,
            Some(Pooling::Cls)
        );
    }

    #[test]
    fn unknown_card_keys_are_refused_with_the_valid_ones() {
        let e =
            parse_card("name = \"x\"\nhub_id = \"a/b\"\nrevision = \"main\"\npoolng = \"cls\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("poolng") && e.contains("pooling"), "{e}");
    }
}
