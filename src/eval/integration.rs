//! Batch-integration scores with the scIB definitions (Luecken et al. 2022, as implemented by
//! `scib-metrics` 0.5): batch ASW, iLISI and cLISI on a kNN graph.
//!
//! - **Batch ASW** (`silhouette_batch`): for each cell-type label with ≥ 2 batches (and fewer
//!   batches than cells), euclidean silhouette of the label's cells against their batches;
//!   per cell `1 − |s|`; mean per label, then mean over labels. 1 = batches fully mixed.
//! - **LISI** (`lisi_knn`): on the `k` euclidean nearest neighbours of each cell (the cell itself
//!   included, as scanpy / pynndescent return them, then masked out), Gaussian weights
//!   `exp(−d·β)` with β found by bisection (≤ 50 tries, |H − ln perplexity| < 1e-5,
//!   perplexity = ⌊k / 3⌋); Simpson index Σ_label (Σ weights of the label)²; LISI = 1 / Simpson.
//! - **iLISI** = (median LISI over batches − 1) / (n_batches − 1); **cLISI** =
//!   (n_labels − median LISI over labels) / (n_labels − 1). Both in [0, 1], higher is better.
//!
//! All arithmetic in f64 (`scib-metrics` runs the LISI search in float32 through JAX).

use anyhow::{bail, Result};
use rayon::prelude::*;
use serde::Serialize;

/// The kNN size scib-metrics' `Benchmarker` uses for LISI.
pub const DEFAULT_K: usize = 90;

/// Integration scores of one embedding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrationScores {
    pub n_batches: usize,
    pub k: usize,
    pub batch_asw: f64,
    pub ilisi: f64,
    pub clisi: f64,
}

fn codes(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut u = labels.to_vec();
    u.sort_unstable();
    u.dedup();
    let c = labels
        .iter()
        .map(|l| u.binary_search(l).expect("present"))
        .collect();
    (c, u.len())
}

fn check(x: &[f32], n: usize, dim: usize, vecs: &[&[usize]]) -> Result<()> {
    if dim == 0 || x.len() != n * dim {
        bail!(
            "embedding has {} values, not {n} cells × {dim} dims",
            x.len()
        );
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!("embedding value of cell {} is not finite", i / dim);
    }
    for v in vecs {
        if v.len() != n {
            bail!("{} labels for {n} cells", v.len());
        }
    }
    Ok(())
}

fn dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Euclidean silhouette of every row (sklearn `silhouette_samples`; singleton clusters get 0).
fn silhouette_samples(rows: &[&[f32]], labels: &[usize]) -> Vec<f64> {
    let (c, k) = codes(labels);
    let mut size = vec![0usize; k];
    for &l in &c {
        size[l] += 1;
    }
    (0..rows.len())
        .into_par_iter()
        .map(|i| {
            let mut sums = vec![0f64; k];
            for j in 0..rows.len() {
                if j != i {
                    sums[c[j]] += dist(rows[i], rows[j]);
                }
            }
            if size[c[i]] <= 1 {
                return 0.0;
            }
            let a = sums[c[i]] / (size[c[i]] - 1) as f64;
            let b = (0..k)
                .filter(|&l| l != c[i] && size[l] > 0)
                .map(|l| sums[l] / size[l] as f64)
                .fold(f64::INFINITY, f64::min);
            let s = (b - a) / a.max(b);
            if s.is_finite() {
                s
            } else {
                0.0
            }
        })
        .collect()
}

/// scIB batch ASW (rescaled: 1 − |silhouette|), see the module docs.
pub fn batch_asw(
    x: &[f32],
    n: usize,
    dim: usize,
    labels: &[usize],
    batches: &[usize],
) -> Result<f64> {
    check(x, n, dim, &[labels, batches])?;
    let (lc, nl) = codes(labels);
    let mut means = Vec::new();
    for l in 0..nl {
        let idx: Vec<usize> = (0..n).filter(|&i| lc[i] == l).collect();
        let b: Vec<usize> = idx.iter().map(|&i| batches[i]).collect();
        let nb = codes(&b).1;
        if nb == 1 || nb == idx.len() {
            continue;
        }
        let rows: Vec<&[f32]> = idx.iter().map(|&i| &x[i * dim..(i + 1) * dim]).collect();
        let s = silhouette_samples(&rows, &b);
        means.push(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64);
    }
    if means.is_empty() {
        bail!("no cell-type label has cells from two or more batches; batch ASW is undefined");
    }
    Ok(means.iter().sum::<f64>() / means.len() as f64)
}

/// The `k` nearest rows of every row by euclidean distance, the row itself included (ties by
/// index): (indices, distances), each row-major `[n × k]`.
pub fn knn(x: &[f32], n: usize, dim: usize, k: usize) -> (Vec<usize>, Vec<f64>) {
    let rows: Vec<(Vec<usize>, Vec<f64>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let a = &x[i * dim..(i + 1) * dim];
            let mut d: Vec<(f64, usize)> = (0..n)
                .map(|j| (dist(a, &x[j * dim..(j + 1) * dim]), j))
                .collect();
            d.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
            d.truncate(k);
            (
                d.iter().map(|p| p.1).collect(),
                d.iter().map(|p| p.0).collect(),
            )
        })
        .collect();
    let mut idx = Vec::with_capacity(n * k);
    let mut ds = Vec::with_capacity(n * k);
    for (i, d) in rows {
        idx.extend(i);
        ds.extend(d);
    }
    (idx, ds)
}

/// Entropy and normalised weights of one row at precision `beta` (self edges masked).
fn h_beta(d: &[f64], keep: &[bool], beta: f64) -> (f64, Vec<f64>) {
    let p: Vec<f64> = d
        .iter()
        .zip(keep)
        .map(|(&v, &k)| if k { (-v * beta).exp() } else { 0.0 })
        .collect();
    let sum: f64 = p.iter().sum();
    if sum == 0.0 {
        return (0.0, vec![0.0; d.len()]);
    }
    let h = sum.ln() + beta * d.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() / sum;
    (h, p.iter().map(|v| v / sum).collect())
}

/// LISI of every cell from a kNN graph (`k` columns, self included) and per-cell labels.
pub fn lisi(knn_idx: &[usize], knn_dist: &[f64], k: usize, labels: &[usize]) -> Vec<f64> {
    let (c, nl) = codes(labels);
    let perplexity = (k / 3) as f64;
    let target = perplexity.ln();
    (0..labels.len())
        .into_par_iter()
        .map(|i| {
            let idx = &knn_idx[i * k..(i + 1) * k];
            let d = &knn_dist[i * k..(i + 1) * k];
            let keep: Vec<bool> = idx.iter().map(|&j| j != i).collect();
            let (mut beta, mut lo, mut hi) = (1f64, f64::NEG_INFINITY, f64::INFINITY);
            let (mut h, mut p) = h_beta(d, &keep, beta);
            let mut diff = h - target;
            let mut tries = 0;
            while diff.abs() >= 1e-5 && tries < 50 {
                if diff > 0.0 {
                    lo = beta;
                    beta = if hi == f64::INFINITY {
                        beta * 2.0
                    } else {
                        (beta + hi) / 2.0
                    };
                } else {
                    hi = beta;
                    beta = if lo == f64::NEG_INFINITY {
                        beta / 2.0
                    } else {
                        (beta + lo) / 2.0
                    };
                }
                (h, p) = h_beta(d, &keep, beta);
                diff = h - target;
                tries += 1;
            }
            if h == 0.0 {
                return -1.0; // scib-metrics: Simpson −1 when no neighbour has weight
            }
            let mut s = vec![0f64; nl];
            for (&j, &w) in idx.iter().zip(&p) {
                s[c[j]] += w;
            }
            1.0 / s.iter().map(|v| v * v).sum::<f64>()
        })
        .collect()
}

/// numpy `nanmedian`.
fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().cloned().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Scaled iLISI and cLISI from one kNN graph.
pub fn ilisi_clisi(
    knn_idx: &[usize],
    knn_dist: &[f64],
    k: usize,
    labels: &[usize],
    batches: &[usize],
) -> (f64, f64) {
    let nb = codes(batches).1 as f64;
    let nl = codes(labels).1 as f64;
    let il = median(&lisi(knn_idx, knn_dist, k, batches));
    let cl = median(&lisi(knn_idx, knn_dist, k, labels));
    ((il - 1.0) / (nb - 1.0), (nl - cl) / (nl - 1.0))
}

impl IntegrationScores {
    /// All three scores; `k` neighbours (self included) for LISI.
    pub fn compute(
        x: &[f32],
        n: usize,
        dim: usize,
        labels: &[usize],
        batches: &[usize],
        k: usize,
    ) -> Result<Self> {
        check(x, n, dim, &[labels, batches])?;
        let nb = codes(batches).1;
        if nb < 2 || codes(labels).1 < 2 {
            bail!("integration scores need ≥ 2 batches and ≥ 2 labels (got {nb} batches)");
        }
        if k < 4 || k > n {
            bail!("LISI needs 4 ≤ k ≤ n cells (k = {k}, {n} cells)");
        }
        let (idx, d) = knn(x, n, dim, k);
        let (ilisi, clisi) = ilisi_clisi(&idx, &d, k, labels, batches);
        Ok(Self {
            n_batches: nb,
            k,
            batch_asw: batch_asw(x, n, dim, labels, batches)?,
            ilisi,
            clisi,
        })
    }
}
