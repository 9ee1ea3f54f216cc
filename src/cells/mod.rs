//! Expression matrices, normalization, weighted-average cell embeddings, cell sentences, ablations.
pub mod ablation;
pub mod dense;
#[cfg(feature = "h5ad")]
pub mod h5ad;
pub mod hvg;
pub mod matrix;
pub mod mtx;
pub mod normalize;
pub mod output;
pub mod pca_pipeline;
pub mod pipeline;
pub mod read;
pub mod sentences;
pub mod source;
pub mod standard_pca;
pub mod text;
pub mod weighted;

use std::path::Path;

/// Cell outputs (h5ad, sentence JSONL) are written only into an existing directory: unlike
/// `io::atomic_write_with`, which creates it, a mistyped output directory is an error, not a new tree.
pub(crate) fn require_output_dir(output: &Path) -> anyhow::Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: output directory {} does not exist",
            output.display(),
            dir.display()
        )
    }
    Ok(())
}
