//! sciLaMA inputs: the scaled cell matrix and the gene-side input matrix.
//!
//! Cells: library-size normalisation to 10,000 counts over *all* genes, `log1p`, then the genes
//! found in the gene store (optionally only `hvg` of them: scanpy's seurat-flavor highly variable
//! genes computed among the store's genes, ties included as scanpy includes them; with
//! `--batch-key`, chosen within the batches as scanpy's `batch_key` does), per-gene
//! z-score (mean and ddof = 1 standard deviation over all cells, zero-variance genes → 0) and
//! clipping at ±10: scanpy's `normalize_total(1e4)`, `log1p`, `scale(max_value=10)`.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cells::hvg::{highly_variable_seurat, highly_variable_seurat_batched};
use crate::cells::matrix::CsrMatrix;
use crate::cells::normalize::log1p_cp10k;
use crate::genes::store::GeneEmbeddings;
use crate::training::normal_vec;

/// z-scores are clipped at ± this value.
pub const CLIP: f32 = 10.0;

/// The cell matrix the model sees.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Dataset column of each model gene, in model order.
    pub columns: Vec<usize>,
    /// Store row of each model gene.
    pub store_rows: Vec<usize>,
    /// Dense row-major `[n_cells × columns.len()]` scaled values.
    pub x: Vec<f32>,
    pub n_cells: usize,
    /// Per-gene mean and standard deviation of the log values (for projecting new cells).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Prepared {
    pub fn n_genes(&self) -> usize {
        self.columns.len()
    }
}

/// Dense log1p-CP10k values of the chosen columns, `[n × cols.len()]`.
fn dense_log(counts: &CsrMatrix, cols: &[usize]) -> Result<Vec<f32>> {
    Ok(dense_columns(&log1p_cp10k(counts)?, cols))
}

/// Dense values of the chosen columns of `logx`, `[n × cols.len()]`.
fn dense_columns(logx: &CsrMatrix, cols: &[usize]) -> Vec<f32> {
    let mut pos = vec![usize::MAX; logx.n_cols];
    for (k, &c) in cols.iter().enumerate() {
        pos[c] = k;
    }
    let m = cols.len();
    let mut x = vec![0f32; logx.n_rows * m];
    for i in 0..logx.n_rows {
        for (j, v) in logx.row(i) {
            if pos[j] != usize::MAX {
                x[i * m + pos[j]] = v;
            }
        }
    }
    x
}

fn scale_in_place(x: &mut [f32], m: usize, mean: &[f32], std: &[f32]) {
    for row in x.chunks_mut(m) {
        for j in 0..m {
            row[j] = if std[j] == 0.0 {
                0.0
            } else {
                ((row[j] - mean[j]) / std[j]).clamp(-CLIP, CLIP)
            };
        }
    }
}

/// Highly variable genes chosen within batches (scanpy's `batch_key`): each cell's batch code
/// and the dataset's gene names (the tie order).
pub struct HvgBatches<'a> {
    pub codes: &'a [usize],
    pub gene_names: &'a [String],
}

/// Builds the scaled matrix from raw counts; `store_row[j]` is the store row of dataset gene `j`.
pub fn prepare(
    counts: &CsrMatrix,
    store_row: &[Option<usize>],
    hvg: usize,
    batches: Option<&HvgBatches>,
) -> Result<Prepared> {
    if store_row.len() != counts.n_cols {
        bail!("{} store rows for {} genes", store_row.len(), counts.n_cols);
    }
    let mut columns: Vec<usize> = (0..counts.n_cols)
        .filter(|&j| store_row[j].is_some())
        .collect();
    if columns.len() < 2 {
        bail!(
            "only {} dataset gene(s) are in the gene store; sciLaMA needs the store to cover the \
             dataset's genes (check --species, or embed the dataset's genes with `genes embed`)",
            columns.len()
        );
    }
    let n = counts.n_rows;
    if n < 2 {
        bail!("sciLaMA needs at least 2 cells, got {n}");
    }
    let logx = log1p_cp10k(counts)?;
    if hvg > 0 && hvg < columns.len() {
        let all_rows: Vec<usize> = (0..n).collect();
        let sub = logx.select(&all_rows, &columns);
        let chosen = match batches {
            None => highly_variable_seurat(&sub, hvg)?.indices(),
            Some(b) => {
                let names: Vec<String> = columns.iter().map(|&j| b.gene_names[j].clone()).collect();
                highly_variable_seurat_batched(&sub, b.codes, &names, hvg)?.indices()
            }
        };
        columns = chosen.iter().map(|&k| columns[k]).collect();
        if columns.len() < 2 {
            bail!(
                "--hvg {hvg}: only {} of the dataset's genes in the gene store vary across cells, \
                 so no highly variable genes are left (sciLaMA needs at least 2); check the input's \
                 counts (--layer), or pass --hvg 0 to keep every store gene",
                columns.len()
            );
        }
    }
    let mut x = dense_columns(&logx, &columns);
    drop(logx);
    let m = columns.len();
    let mut mean = vec![0f64; m];
    let mut sq = vec![0f64; m];
    for row in x.chunks(m) {
        for j in 0..m {
            mean[j] += row[j] as f64;
        }
    }
    mean.iter_mut().for_each(|v| *v /= n as f64);
    for row in x.chunks(m) {
        for j in 0..m {
            sq[j] += (row[j] as f64 - mean[j]).powi(2);
        }
    }
    let var = sq.iter().map(|s| s / (n - 1) as f64);
    let mean: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let std: Vec<f32> = var.map(|v| v.sqrt() as f32).collect();
    scale_in_place(&mut x, m, &mean, &std);
    let store_rows = columns
        .iter()
        .map(|&j| store_row[j].expect("kept"))
        .collect();
    Ok(Prepared {
        columns,
        store_rows,
        x,
        n_cells: n,
        mean,
        std,
    })
}

/// Scales new cells with a trained model's genes and statistics (`columns[k]` = the new
/// dataset's column of model gene `k`, `None` = absent there, read as 0 counts).
pub fn scale_new(
    counts: &CsrMatrix,
    columns: &[Option<usize>],
    mean: &[f32],
    std: &[f32],
) -> Result<Vec<f32>> {
    let present: Vec<usize> = columns.iter().flatten().cloned().collect();
    let dense = dense_log(counts, &present)?;
    let m = columns.len();
    let p = present.len();
    let mut x = vec![0f32; counts.n_rows * m];
    for i in 0..counts.n_rows {
        let mut k_present = 0;
        for (k, c) in columns.iter().enumerate() {
            if c.is_some() {
                x[i * m + k] = dense[i * p + k_present];
                k_present += 1;
            }
        }
    }
    // `present` follows model order, so the k-th present column is dense column k_present.
    scale_in_place(&mut x, m, mean, std);
    Ok(x)
}

/// `--gene-input`: what the gene VAE encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneInput {
    /// The gene store's vectors (the text prior).
    Store,
    /// Each gene's scaled expression over the training cells (the transposed matrix; "s.i.").
    #[serde(rename = "self")]
    SelfExpr,
    /// A seeded standard-normal matrix of the store's width.
    Random,
    /// The store's vectors assigned to the genes in a seeded random permutation.
    Shuffled,
}

crate::choices!(GeneInput {
    Store = "store",
    SelfExpr = "self",
    Random = "random",
    Shuffled = "shuffled",
});

/// The gene-input matrix `[M × D]` and `D`. Random choices use stream 1 of `seed`, so they never
/// shift the training stream.
pub fn gene_inputs(
    mode: GeneInput,
    prep: &Prepared,
    store: &GeneEmbeddings,
    seed: u64,
) -> (Vec<f32>, usize) {
    let m = prep.n_genes();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    let rows = |rows: &[usize]| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| store.row(r).iter().cloned())
            .collect()
    };
    match mode {
        GeneInput::Store => (rows(&prep.store_rows), store.dim),
        GeneInput::Shuffled => {
            let mut perm = prep.store_rows.clone();
            perm.shuffle(&mut rng);
            (rows(&perm), store.dim)
        }
        GeneInput::Random => (normal_vec(m * store.dim, &mut rng), store.dim),
        GeneInput::SelfExpr => {
            let n = prep.n_cells;
            let mut t = vec![0f32; m * n];
            for i in 0..n {
                for j in 0..m {
                    t[j * n + i] = prep.x[i * m + j];
                }
            }
            (t, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(rows: &[&[f32]]) -> CsrMatrix {
        let mut m = CsrMatrix {
            n_rows: rows.len(),
            n_cols: rows[0].len(),
            indptr: vec![0],
            indices: vec![],
            data: vec![],
        };
        for r in rows {
            for (j, &v) in r.iter().enumerate() {
                if v != 0.0 {
                    m.indices.push(j as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len());
        }
        m
    }

    #[test]
    fn scaling_matches_hand_computation_and_hvg_keeps_a_subset() -> Result<()> {
        // 3 cells × 4 genes; gene 3 is not in the store, gene 2 is constant after normalising.
        let c = csr(&[
            &[1.0, 0.0, 1.0, 8.0],
            &[3.0, 2.0, 1.0, 4.0],
            &[0.0, 6.0, 2.0, 2.0],
        ]);
        let rows = [Some(5), Some(7), Some(1), None];
        let p = prepare(&c, &rows, 0, None)?;
        assert_eq!(p.columns, vec![0, 1, 2]);
        assert_eq!(p.store_rows, vec![5, 7, 1]);
        // hand: log1p(count / total · 1e4), z with ddof 1
        let tot = [10.0f64, 10.0, 10.0];
        let l = |v: f64, i: usize| (v / tot[i] * 1e4).ln_1p();
        let g0 = [l(1.0, 0), l(3.0, 1), 0.0];
        let mean = g0.iter().sum::<f64>() / 3.0;
        let sd = (g0.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        for i in 0..3 {
            assert!((p.x[i * 3] as f64 - (g0[i] - mean) / sd).abs() < 1e-5);
        }
        // --hvg keeps a subset in dataset order (its choice is checked against scanpy in
        // tests/scilama_cli.rs)
        let q = prepare(&c, &rows, 2, None)?;
        assert_eq!(q.n_genes(), 2);
        assert!(q.columns.windows(2).all(|w| w[0] < w[1]));
        assert!(q.columns.iter().all(|j| p.columns.contains(j)));
        // projecting the same cells reproduces the training matrix
        let cols: Vec<Option<usize>> = p.columns.iter().map(|&c| Some(c)).collect();
        assert_eq!(scale_new(&c, &cols, &p.mean, &p.std)?, p.x);
        Ok(())
    }
}
