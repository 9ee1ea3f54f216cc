//! Gene vectors from other tools: GenePT pickles (`{symbol: vector}`) here, parquet in
//! [`super::parquet`]; [`to_store`] checks either before it becomes a store.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashSet;
use std::path::Path;

use super::GeneEmbeddings;

/// Gene vectors read from a foreign file, in file order, not yet validated.
#[derive(Debug, Clone)]
pub struct ImportedVectors {
    pub genes: Vec<(String, Vec<f32>)>,
    /// How the file held them, e.g. `dict of numpy float32 array`, for the manifest.
    pub layout: String,
}

/// A GenePT-style pickle: a dict `{symbol: vector}`, vectors being lists of floats or NumPy 1-D
/// float32/float64 arrays. Read by the allow-listed pickle VM: nothing in the file is executed.
pub fn load_pickle_vectors(path: &Path) -> Result<ImportedVectors> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    // SAFETY: read-only mapping of a regular file that must not be truncated while it is read
    // (as for the checkpoint loader); GenePT pickles are ~0.5 GB, so no copy.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("{}: cannot memory-map", path.display()))?;
    let what = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entries = crate::pickle::unpickle_vector_dict(&map, &what)
        .map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
    let mut kinds: Vec<crate::pickle::VectorKind> = entries.iter().map(|e| e.kind).collect();
    kinds.sort();
    kinds.dedup();
    let layout = format!(
        "dict of {}",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(" / ")
    );
    Ok(ImportedVectors {
        genes: entries.into_iter().map(|e| (e.key, e.values)).collect(),
        layout,
    })
}

/// Parquet, either sciLaMA-style (a string gene column `gene_id`/`gene`/`symbol` and a
/// list<float|double> column `embedding`) or wide (the gene column plus one numeric column per
/// dimension, in column order).
/// Check imported vectors and make a store of them. Errors name `file`, the gene and the fix.
pub fn to_store(v: ImportedVectors, file: &Path) -> Result<GeneEmbeddings> {
    let f = file.display();
    let Some((first, first_v)) = v.genes.first() else {
        bail!("{f}: holds no genes; nothing to import");
    };
    let (first, dim) = (first.clone(), first_v.len());
    if dim == 0 {
        bail!("{f}: gene `{first}` has an empty (or null) vector; every gene needs at least one value");
    }
    let mut seen = HashSet::with_capacity(v.genes.len());
    let mut symbols = Vec::with_capacity(v.genes.len());
    let mut data = Vec::with_capacity(v.genes.len() * dim);
    for (g, vec) in v.genes {
        crate::genes::store::check_symbol(&g, file, "")?;
        if vec.is_empty() {
            bail!("{f}: gene `{g}` has an empty (or null) vector; every gene needs {dim} values like `{first}`");
        }
        if vec.len() != dim {
            bail!(
                "{f}: gene `{g}` has {} values but `{first}` (the first gene) has {dim}; every vector must have the same length",
                vec.len()
            );
        }
        if let Some(j) = vec.iter().position(|x| !x.is_finite()) {
            let why = if vec[j].is_nan() {
                ""
            } else {
                ": infinite, or beyond the f32 range"
            };
            bail!("{f}: gene `{g}` has a non-finite value ({}{why}) at position {j}; fix or drop that gene", vec[j]);
        }
        if !seen.insert(g.clone()) {
            bail!("{f}: gene `{g}` appears more than once; keep one row per gene");
        }
        data.extend_from_slice(&vec);
        symbols.push(g);
    }
    Ok(GeneEmbeddings { symbols, dim, data })
}

/// Rows per parquet row group: bounded memory on both sides for any store size.
#[cfg(test)]
mod tests {
    use super::*;

    fn iv(genes: Vec<(&str, Vec<f32>)>) -> ImportedVectors {
        ImportedVectors {
            genes: genes.into_iter().map(|(g, v)| (g.to_string(), v)).collect(),
            layout: String::new(),
        }
    }

    #[test]
    fn validation_names_file_gene_and_lengths() {
        let f = Path::new("x.pkl");
        let e = to_store(iv(vec![]), f).unwrap_err().to_string();
        assert!(e.contains("x.pkl") && e.contains("no genes"), "{e}");
        let e = to_store(iv(vec![("A", vec![1.0, 2.0]), ("B", vec![1.0])]), f)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`B` has 1 values but `A` (the first gene) has 2"),
            "{e}"
        );
        let e = to_store(iv(vec![("A", vec![1.0]), ("B", vec![f32::NAN])]), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`B`") && e.contains("NaN"), "{e}");
        let e = to_store(iv(vec![("A", vec![1.0]), ("A", vec![2.0])]), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`A` appears more than once"), "{e}");
        let e = to_store(iv(vec![("A", vec![1.0]), ("B", vec![])]), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`B` has an empty (or null) vector"), "{e}");
        let e = to_store(iv(vec![("A", vec![1.0]), ("B", vec![f32::INFINITY])]), f)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`B`") && e.contains("beyond the f32 range"),
            "{e}"
        );
        let e = to_store(iv(vec![("A\nB", vec![1.0])]), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"A\\nB\" contains a control character"), "{e}");
        let s = to_store(iv(vec![("A", vec![1.0, 2.0]), ("B", vec![3.0, 4.0])]), f).unwrap();
        assert_eq!(
            (s.symbols.len(), s.dim, s.data),
            (2, 2, vec![1.0, 2.0, 3.0, 4.0])
        );
    }
}
