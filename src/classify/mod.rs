//! Cosine KNN, MLP and fusion classifiers on frozen embeddings.

use anyhow::{bail, Result};

pub mod features;
pub mod knn;
pub mod mlp;
pub mod pipeline;
pub mod split;

/// A comma list of positive integers, such as `--k 1,3,5` or `--hidden 256,128`. Errors name
/// `flag` and end with an example of a valid list (`example`).
pub fn parse_positive_list(flag: &str, s: &str, example: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let t = part.trim();
        if t.is_empty() {
            bail!("{flag} '{s}': empty entry; give positive integers separated by commas, e.g. {flag} {example}");
        }
        if t.starts_with('-') && t[1..].parse::<u64>().is_ok() {
            bail!("{flag} must be ≥ 1, got {t} (in {flag} '{s}'), e.g. {flag} {example}");
        }
        let v: usize = t
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag} '{s}': '{t}' is not a positive integer; give positive integers separated by commas, e.g. {flag} {example}"))?;
        if v == 0 {
            bail!("{flag} '{s}': 0 is not allowed; every value must be at least 1, e.g. {flag} {example}");
        }
        out.push(v);
    }
    Ok(out)
}
