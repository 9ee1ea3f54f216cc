//! Highly variable genes, scanpy's `highly_variable_genes(flavor="seurat", n_top_genes=N)`
//! (Satija et al. 2015), step for step so the selected set is the same:
//!
//! 1. undo the log: `expm1` of the log-normalized values (f32, as scanpy does on f32 data);
//! 2. per gene, mean and unbiased variance (f64 sums; squares formed in f32, like scanpy's
//!    numba kernel);
//! 3. `mean == 0 → 1e-12`, dispersion = var / mean, `0 → NaN`, then `ln(dispersion)` and
//!    `ln(1 + mean)`;
//! 4. 20 equal-width bins over the log means (pandas `cut`: `np.linspace`, lower edge moved
//!    down by 0.1 % of the range, intervals open on the left);
//! 5. per bin, mean and sample sd (ddof 1) of the non-NaN dispersions; a bin with a single
//!    gene gets sd = its mean and mean = 0 (normalized dispersion 1, as scanpy);
//! 6. normalized dispersion = (dispersion − bin mean) / bin sd; the cut-off is the N-th
//!    highest non-NaN value and every gene at or above it is selected (ties can add genes,
//!    as in scanpy).
//!
//! With batches (`batch_key` in scanpy, [`highly_variable_seurat_batched`]) the genes are chosen
//! within each batch and ranked by how many batches agree, so genes that differ *between*
//! batches (a platform's or a lab's signature) are not taken for biology.

use anyhow::{ensure, Result};

use super::matrix::CsrMatrix;

/// scanpy's default number of mean bins.
pub const N_BINS: usize = 20;

/// Per-gene statistics and the selection (all `n_genes` long).
#[derive(Debug, Clone)]
pub struct HighlyVariable {
    pub highly_variable: Vec<bool>,
    /// ln(1 + mean of the un-logged values).
    pub means: Vec<f64>,
    /// ln(var / mean); NaN where the variance is 0.
    pub dispersions: Vec<f64>,
    pub dispersions_norm: Vec<f64>,
}

impl HighlyVariable {
    /// Selected column indices, ascending.
    pub fn indices(&self) -> Vec<usize> {
        (0..self.highly_variable.len())
            .filter(|&j| self.highly_variable[j])
            .collect()
    }
}

/// Seurat-flavor highly variable genes of log1p-normalized data `x` (cells × genes).
pub fn highly_variable_seurat(x: &CsrMatrix, n_top_genes: usize) -> Result<HighlyVariable> {
    ensure!(n_top_genes >= 1, "--n-top-genes must be at least 1");
    let (n, g) = (x.n_rows, x.n_cols);
    ensure!(
        n >= 2,
        "highly variable genes need at least 2 cells, got {n}"
    );
    ensure!(g >= 1, "highly variable genes need at least 1 gene");
    let mut sum = vec![0.0f64; g];
    let mut sum_sq = vec![0.0f64; g];
    for (&j, &v) in x.indices.iter().zip(&x.data) {
        let e = v.exp_m1();
        sum[j as usize] += e as f64;
        sum_sq[j as usize] += (e * e) as f64;
    }
    let nf = n as f64;
    let mut means = Vec::with_capacity(g);
    let mut dispersions = Vec::with_capacity(g);
    for j in 0..g {
        let mut mean = sum[j] / nf;
        let var = (sum_sq[j] / nf - mean * mean) * (nf / (nf - 1.0));
        if mean == 0.0 {
            mean = 1e-12;
        }
        let mut disp = var / mean;
        if disp == 0.0 {
            disp = f64::NAN;
        }
        dispersions.push(disp.ln());
        means.push(mean.ln_1p());
    }
    let bins = mean_bins(&means);
    let n_bins = bins.iter().copied().max().unwrap_or(0) + 1;
    let mut count = vec![0usize; n_bins];
    let mut total = vec![0.0f64; n_bins];
    for (&b, &d) in bins.iter().zip(&dispersions) {
        if !d.is_nan() {
            count[b] += 1;
            total[b] += d;
        }
    }
    let avg: Vec<f64> = (0..n_bins)
        .map(|b| {
            if count[b] > 0 {
                total[b] / count[b] as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut ss = vec![0.0f64; n_bins];
    for (&b, &d) in bins.iter().zip(&dispersions) {
        if !d.is_nan() {
            ss[b] += (d - avg[b]) * (d - avg[b]);
        }
    }
    let mut bin_avg = avg.clone();
    let mut bin_dev = vec![f64::NAN; n_bins];
    for b in 0..n_bins {
        if count[b] >= 2 {
            bin_dev[b] = (ss[b] / (count[b] - 1) as f64).sqrt();
        } else {
            // pandas' std is NaN here; scanpy sets dev = avg, avg = 0.
            bin_dev[b] = avg[b];
            bin_avg[b] = 0.0;
        }
    }
    let dispersions_norm: Vec<f64> = (0..g)
        .map(|j| (dispersions[j] - bin_avg[bins[j]]) / bin_dev[bins[j]])
        .collect();
    let mut finite: Vec<f64> = dispersions_norm
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .collect();
    let highly_variable = if finite.is_empty() {
        vec![false; g]
    } else {
        let n_top = n_top_genes.min(g).min(finite.len());
        finite.sort_by(|a, b| b.total_cmp(a));
        let cut = finite[n_top - 1];
        dispersions_norm
            .iter()
            .map(|&v| !v.is_nan() && v >= cut)
            .collect()
    };
    Ok(HighlyVariable {
        highly_variable,
        means,
        dispersions,
        dispersions_norm,
    })
}

/// The batch-aware selection and the statistics it ranks by (all `n_genes` long).
#[derive(Debug, Clone)]
pub struct BatchedHighlyVariable {
    pub highly_variable: Vec<bool>,
    /// In how many batches the gene is among that batch's top genes.
    pub n_batches: Vec<usize>,
    /// Mean over batches of the normalized dispersion (a batch where the gene is never
    /// expressed counts as 0; NaN only where every batch's value is NaN).
    pub dispersions_norm: Vec<f64>,
}

impl BatchedHighlyVariable {
    /// Selected column indices, ascending.
    pub fn indices(&self) -> Vec<usize> {
        (0..self.highly_variable.len())
            .filter(|&j| self.highly_variable[j])
            .collect()
    }
}

/// scanpy's `highly_variable_genes(flavor="seurat", n_top_genes=N, batch_key=…)`: the genes
/// expressed in each batch (`batch[i]` = batch of cell `i`, codes `0..B`) get the single-batch
/// statistics above; genes are ranked by the number of batches that select them, then by the
/// mean normalized dispersion (NaN last), ties in gene-name order (`names`, pandas' `groupby`
/// order), and exactly the first `n_top_genes` are kept.
pub fn highly_variable_seurat_batched(
    x: &CsrMatrix,
    batch: &[usize],
    names: &[String],
    n_top_genes: usize,
) -> Result<BatchedHighlyVariable> {
    ensure!(n_top_genes >= 1, "--n-top-genes must be at least 1");
    let (n, g) = (x.n_rows, x.n_cols);
    ensure!(
        batch.len() == n && names.len() == g,
        "{} batch codes and {} gene names for a {n} × {g} matrix",
        batch.len(),
        names.len()
    );
    let n_b = batch.iter().copied().max().map_or(0, |b| b + 1);
    let mut n_batches = vec![0usize; g];
    let mut dn_sum = vec![0.0f64; g];
    let mut dn_count = vec![0usize; g];
    for b in 0..n_b {
        let rows: Vec<usize> = (0..n).filter(|&i| batch[i] == b).collect();
        if rows.is_empty() {
            continue;
        }
        ensure!(
            rows.len() >= 2,
            "batch {b} has a single cell; highly variable genes per batch need at least 2 cells \
             in every batch (merge or drop that batch)"
        );
        let mut expressed = vec![false; g];
        for &i in &rows {
            for (j, v) in x.row(i) {
                if v > 0.0 {
                    expressed[j] = true;
                }
            }
        }
        let cols: Vec<usize> = (0..g).filter(|&j| expressed[j]).collect();
        // scanpy gives the genes a batch never expresses zeros, which enter the mean
        for j in 0..g {
            if !expressed[j] {
                dn_count[j] += 1;
            }
        }
        if cols.is_empty() {
            continue;
        }
        let hv = highly_variable_seurat(&x.select(&rows, &cols), n_top_genes)?;
        for (k, &j) in cols.iter().enumerate() {
            n_batches[j] += hv.highly_variable[k] as usize;
            let d = hv.dispersions_norm[k];
            if !d.is_nan() {
                dn_sum[j] += d;
                dn_count[j] += 1;
            }
        }
    }
    let dispersions_norm: Vec<f64> = (0..g)
        .map(|j| {
            if dn_count[j] > 0 {
                dn_sum[j] / dn_count[j] as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..g).collect();
    order.sort_by(|&a, &b| {
        let (da, db) = (dispersions_norm[a], dispersions_norm[b]);
        n_batches[b]
            .cmp(&n_batches[a])
            .then_with(|| match (da.is_nan(), db.is_nan()) {
                (false, false) => db.partial_cmp(&da).expect("not NaN"),
                (na, nb) => na.cmp(&nb),
            })
            .then_with(|| names[a].cmp(&names[b]))
    });
    let mut highly_variable = vec![false; g];
    for &j in order.iter().take(n_top_genes) {
        highly_variable[j] = true;
    }
    Ok(BatchedHighlyVariable {
        highly_variable,
        n_batches,
        dispersions_norm,
    })
}

/// pandas `cut(means, bins=20)` bin index of each value (0-based).
fn mean_bins(means: &[f64]) -> Vec<usize> {
    let mut mn = means.iter().copied().fold(f64::INFINITY, f64::min);
    let mut mx = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let nb = N_BINS;
    let mut edges: Vec<f64>;
    if mn == mx {
        mn -= if mn != 0.0 { 0.001 * mn.abs() } else { 0.001 };
        mx += if mx != 0.0 { 0.001 * mx.abs() } else { 0.001 };
        edges = linspace(mn, mx, nb + 1);
    } else {
        edges = linspace(mn, mx, nb + 1);
        edges[0] -= (mx - mn) * 0.001;
    }
    means
        .iter()
        .map(|&x| {
            // searchsorted(side="left"): first edge >= x; the bin is the interval before it.
            let i = edges.partition_point(|&e| e < x);
            i.clamp(1, nb) - 1
        })
        .collect()
}

/// `np.linspace(start, stop, num)`: `i * step + start`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_selection_refuses_a_single_cell_batch_and_keeps_exactly_n() {
        let x = CsrMatrix {
            n_rows: 5,
            n_cols: 4,
            indptr: vec![0, 2, 4, 6, 8, 10],
            indices: vec![0, 1, 1, 2, 0, 3, 2, 3, 0, 1],
            data: vec![1.0, 2.0, 0.5, 1.5, 2.5, 0.3, 1.0, 2.0, 0.7, 0.2],
        };
        let names: Vec<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
        let err = highly_variable_seurat_batched(&x, &[0, 0, 0, 0, 1], &names, 2).unwrap_err();
        assert!(
            err.to_string().contains("batch 1 has a single cell"),
            "{err}"
        );
        let hv = highly_variable_seurat_batched(&x, &[0, 0, 1, 1, 1], &names, 2).unwrap();
        assert_eq!(hv.indices().len(), 2);
        assert!(hv.n_batches.iter().all(|&k| k <= 2));
    }

    #[test]
    fn linspace_and_bins_follow_pandas() {
        // Values on an inner edge go to the lower bin (intervals are (a, b]); the minimum goes
        // to the first bin thanks to the 0.1 % extension.
        let means: Vec<f64> = (0..=20).map(|i| i as f64).collect();
        let bins = mean_bins(&means);
        assert_eq!(bins[0], 0);
        assert_eq!(bins[1], 0);
        assert_eq!(bins[2], 1);
        assert_eq!(bins[20], 19);
    }
}
