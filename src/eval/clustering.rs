//! Clustering scores of an embedding, with scikit-learn's definitions, and seeded k-means.
//!
//! Matrices are f32, row-major, `n` rows of `dim` values; all arithmetic is done in f64.
//! Labels are arbitrary `usize` values (they need not be contiguous).
//!
//! | function | scikit-learn |
//! | --- | --- |
//! | [`silhouette_cosine`] | `silhouette_score(X, labels, metric="cosine")` |
//! | [`calinski_harabasz`] | `calinski_harabasz_score(X, labels)` |
//! | [`davies_bouldin`] | `davies_bouldin_score(X, labels)` |
//! | [`adjusted_rand_index`] | `adjusted_rand_score(a, b)` |
//! | [`normalized_mutual_info`] | `normalized_mutual_info_score(a, b)` (arithmetic mean) |
//! | [`kmeans`] | `KMeans(init="k-means++", algorithm="lloyd")`, own seeded RNG |
//!
//! Parallel parts use fixed-size chunks reduced in a fixed order, so every result is the same
//! whatever the number of rayon threads.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Rows per parallel work item; fixed so reductions don't depend on the thread count.
const CHUNK: usize = 512;

fn check_matrix(x: &[f32], n: usize, dim: usize) -> Result<()> {
    if x.len() != n * dim {
        bail!(
            "matrix has {} values but n × dim = {n} × {dim} = {}",
            x.len(),
            n * dim
        );
    }
    if dim == 0 {
        bail!("matrix has 0 columns");
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "matrix value at row {}, column {} is not finite ({})",
            i / dim,
            i % dim,
            x[i]
        );
    }
    Ok(())
}

/// Maps labels to 0..k in sorted order of value; returns (codes, k).
fn encode(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut uniq: Vec<usize> = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let codes = labels
        .iter()
        .map(|l| uniq.binary_search(l).expect("label present"))
        .collect();
    (codes, uniq.len())
}

/// scikit-learn's `check_number_of_labels`: 2 ≤ k ≤ n − 1.
fn check_labels(n: usize, labels: &[usize]) -> Result<(Vec<usize>, usize)> {
    if labels.len() != n {
        bail!(
            "{} labels for {n} rows: pass one label per row",
            labels.len()
        );
    }
    let (codes, k) = encode(labels);
    if k < 2 || k > n.saturating_sub(1) {
        bail!(
            "number of distinct labels is {k}; valid values are 2 to n_samples - 1 = {} inclusive",
            n.saturating_sub(1)
        );
    }
    Ok((codes, k))
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cluster sizes and per-cluster sums of rows.
fn cluster_sums(x: &[f64], dim: usize, codes: &[usize], k: usize) -> (Vec<usize>, Vec<f64>) {
    let mut counts = vec![0usize; k];
    let mut sums = vec![0.0f64; k * dim];
    for (row, &c) in x.chunks_exact(dim).zip(codes) {
        counts[c] += 1;
        for (s, v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
            *s += v;
        }
    }
    (counts, sums)
}

/// Mean silhouette coefficient with cosine distance `1 − cos(x_i, x_j)`.
///
/// Uses Σ_{j∈C} (1 − u_i·u_j) = |C| − u_i·Σ_{j∈C} u_j with unit rows u, so it costs
/// O(n · k · dim) instead of O(n² · dim). A zero row has cosine distance 1 to every other row
/// and 0 to itself, as in scikit-learn. Rows alone in their cluster score 0.
pub fn silhouette_cosine(x: &[f32], n: usize, dim: usize, labels: &[usize]) -> Result<f64> {
    check_matrix(x, n, dim)?;
    let (codes, k) = check_labels(n, labels)?;
    let mut u = to_f64(x);
    let mut self_dot = vec![0.0f64; n];
    for (row, sd) in u.chunks_exact_mut(dim).zip(self_dot.iter_mut()) {
        let norm = dot(row, row).sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
            *sd = dot(row, row);
        }
    }
    let (counts, sums) = cluster_sums(&u, dim, &codes, k);
    let scores: Vec<f64> = u
        .par_chunks(CHUNK * dim)
        .enumerate()
        .flat_map_iter(|(ci, block)| {
            let codes = &codes;
            let counts = &counts;
            let sums = &sums;
            let self_dot = &self_dot;
            block.chunks_exact(dim).enumerate().map(move |(r, row)| {
                let i = ci * CHUNK + r;
                let own = codes[i];
                if counts[own] <= 1 {
                    return 0.0;
                }
                let mut a = 0.0;
                let mut b = f64::INFINITY;
                for c in 0..k {
                    let s = dot(row, &sums[c * dim..(c + 1) * dim]);
                    if c == own {
                        let total = (counts[c] - 1) as f64 - (s - self_dot[i]);
                        a = total.max(0.0) / (counts[c] - 1) as f64;
                    } else {
                        let total = counts[c] as f64 - s;
                        b = b.min(total.max(0.0) / counts[c] as f64);
                    }
                }
                let m = a.max(b);
                if m == 0.0 {
                    0.0
                } else {
                    (b - a) / m
                }
            })
        })
        .collect();
    Ok(scores.iter().sum::<f64>() / n as f64)
}

/// Calinski-Harabasz index (variance ratio criterion), euclidean. 1.0 when all clusters are points.
pub fn calinski_harabasz(x: &[f32], n: usize, dim: usize, labels: &[usize]) -> Result<f64> {
    check_matrix(x, n, dim)?;
    let (codes, k) = check_labels(n, labels)?;
    let xf = to_f64(x);
    let (counts, sums) = cluster_sums(&xf, dim, &codes, k);
    let mean: Vec<f64> = (0..dim)
        .map(|d| (0..k).map(|c| sums[c * dim + d]).sum::<f64>() / n as f64)
        .collect();
    let centroids: Vec<f64> = (0..k * dim)
        .map(|i| sums[i] / counts[i / dim] as f64)
        .collect();
    let mut extra = 0.0;
    for c in 0..k {
        extra += counts[c] as f64 * sq_dist(&centroids[c * dim..(c + 1) * dim], &mean);
    }
    let intra: f64 = xf
        .chunks_exact(dim)
        .zip(&codes)
        .map(|(row, &c)| sq_dist(row, &centroids[c * dim..(c + 1) * dim]))
        .sum();
    if intra == 0.0 {
        return Ok(1.0);
    }
    Ok(extra * (n - k) as f64 / (intra * (k - 1) as f64))
}

/// Davies-Bouldin index, euclidean (lower is better).
pub fn davies_bouldin(x: &[f32], n: usize, dim: usize, labels: &[usize]) -> Result<f64> {
    check_matrix(x, n, dim)?;
    let (codes, k) = check_labels(n, labels)?;
    let xf = to_f64(x);
    let (counts, sums) = cluster_sums(&xf, dim, &codes, k);
    let centroids: Vec<f64> = (0..k * dim)
        .map(|i| sums[i] / counts[i / dim] as f64)
        .collect();
    let mut intra = vec![0.0f64; k];
    for (row, &c) in xf.chunks_exact(dim).zip(&codes) {
        intra[c] += sq_dist(row, &centroids[c * dim..(c + 1) * dim]).sqrt();
    }
    for c in 0..k {
        intra[c] /= counts[c] as f64;
    }
    let mut cdist = vec![0.0f64; k * k];
    for i in 0..k {
        for j in 0..k {
            cdist[i * k + j] = sq_dist(
                &centroids[i * dim..(i + 1) * dim],
                &centroids[j * dim..(j + 1) * dim],
            )
            .sqrt();
        }
    }
    let close0 = |v: f64| v.abs() <= 1e-8; // np.allclose(v, 0) with atol 1e-8
    if intra.iter().all(|&v| close0(v)) || cdist.iter().all(|&v| close0(v)) {
        return Ok(0.0);
    }
    let mut total = 0.0;
    for i in 0..k {
        let mut best = f64::NEG_INFINITY;
        for j in 0..k {
            let d = cdist[i * k + j];
            let d = if d == 0.0 { f64::INFINITY } else { d };
            best = best.max((intra[i] + intra[j]) / d);
        }
        total += best;
    }
    Ok(total / k as f64)
}

/// Contingency table of two labelings: (table row-major ka × kb, ka, kb).
fn contingency(a: &[usize], b: &[usize]) -> Result<(Vec<u64>, usize, usize)> {
    if a.len() != b.len() {
        bail!(
            "labelings have different lengths ({} and {})",
            a.len(),
            b.len()
        );
    }
    let (ca, ka) = encode(a);
    let (cb, kb) = encode(b);
    let mut t = vec![0u64; ka * kb];
    for (&i, &j) in ca.iter().zip(&cb) {
        t[i * kb + j] += 1;
    }
    Ok((t, ka, kb))
}

/// Adjusted Rand index (`adjusted_rand_score`), exact integer pair counts.
pub fn adjusted_rand_index(labels_true: &[usize], labels_pred: &[usize]) -> Result<f64> {
    let (t, ka, kb) = contingency(labels_true, labels_pred)?;
    let n = labels_true.len() as i128;
    let n_c: Vec<i128> = (0..ka)
        .map(|i| (0..kb).map(|j| t[i * kb + j] as i128).sum())
        .collect();
    let n_k: Vec<i128> = (0..kb)
        .map(|j| (0..ka).map(|i| t[i * kb + j] as i128).sum())
        .collect();
    let sum_squares: i128 = t.iter().map(|&v| (v as i128) * (v as i128)).sum();
    let mut cn_k = 0i128; // contingency · n_k summed
    let mut ctn_c = 0i128;
    for i in 0..ka {
        for j in 0..kb {
            let v = t[i * kb + j] as i128;
            cn_k += v * n_k[j];
            ctn_c += v * n_c[i];
        }
    }
    let tp = sum_squares - n;
    let fp = cn_k - sum_squares; // C[0,1]
    let fn_ = ctn_c - sum_squares; // C[1,0]
    let tn = n * n - fp - fn_ - sum_squares;
    if fn_ == 0 && fp == 0 {
        return Ok(1.0);
    }
    let num = tp * tn - fn_ * fp;
    let den = (tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn);
    Ok(2.0 * (num as f64) / den as f64)
}

fn entropy_of_counts(counts: &[f64]) -> f64 {
    let pi: Vec<f64> = counts.iter().copied().filter(|&v| v > 0.0).collect();
    if pi.len() <= 1 {
        return 0.0;
    }
    let s: f64 = pi.iter().sum();
    -pi.iter().map(|&p| (p / s) * (p.ln() - s.ln())).sum::<f64>()
}

/// Normalized mutual information with the arithmetic mean of the entropies
/// (`normalized_mutual_info_score`, default `average_method="arithmetic"`).
pub fn normalized_mutual_info(labels_true: &[usize], labels_pred: &[usize]) -> Result<f64> {
    let (t, ka, kb) = contingency(labels_true, labels_pred)?;
    if (ka == 1 && kb == 1) || (ka == 0 && kb == 0) {
        return Ok(1.0);
    }
    let pi: Vec<f64> = (0..ka)
        .map(|i| (0..kb).map(|j| t[i * kb + j]).sum::<u64>() as f64)
        .collect();
    let pj: Vec<f64> = (0..kb)
        .map(|j| (0..ka).map(|i| t[i * kb + j]).sum::<u64>() as f64)
        .collect();
    let mi = if ka == 1 || kb == 1 {
        0.0
    } else {
        let total: f64 = pi.iter().sum();
        let mut mi = 0.0;
        for i in 0..ka {
            for j in 0..kb {
                let v = t[i * kb + j];
                if v == 0 {
                    continue;
                }
                let v = v as f64;
                let c_nm = v / total;
                let outer = pi[i] * pj[j];
                let log_outer = -outer.ln() + total.ln() + total.ln();
                let term = c_nm * (v.ln() - total.ln()) + c_nm * log_outer;
                if term.abs() >= f64::EPSILON {
                    mi += term;
                }
            }
        }
        mi.max(0.0)
    };
    if mi == 0.0 {
        return Ok(0.0);
    }
    let h_true = entropy_of_counts(&pi);
    let h_pred = entropy_of_counts(&pj);
    Ok(mi / ((h_true + h_pred) / 2.0))
}

/// k-means settings.
#[derive(Debug, Clone, Serialize)]
pub struct KMeansConfig {
    pub k: usize,
    /// Restarts from different k-means++ seeds; the lowest inertia is kept.
    pub n_init: usize,
    pub max_iter: usize,
    /// Relative tolerance: stop when the squared center shift ≤ tol × mean feature variance.
    pub tol: f64,
    pub seed: u64,
}

impl KMeansConfig {
    /// scikit-learn's defaults: n_init 10, max_iter 300, tol 1e-4.
    pub fn new(k: usize, seed: u64) -> Self {
        Self {
            k,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
            seed,
        }
    }
}

/// A k-means fit.
#[derive(Debug, Clone, Serialize)]
pub struct KMeansResult {
    /// Cluster of each row, 0..k.
    pub labels: Vec<usize>,
    /// k × dim, row-major.
    pub centers: Vec<f64>,
    /// Sum of squared distances of rows to their center.
    pub inertia: f64,
    /// Lloyd iterations of the kept run.
    pub n_iter: usize,
}

/// Nearest center for every row (ties → lowest center index), with squared distances.
fn assign(x: &[f64], dim: usize, centers: &[f64]) -> Vec<(usize, f64)> {
    x.par_chunks(CHUNK * dim)
        .flat_map_iter(|block| {
            block.chunks_exact(dim).map(|row| {
                let mut best = (0usize, f64::INFINITY);
                for (c, center) in centers.chunks_exact(dim).enumerate() {
                    let d = sq_dist(row, center);
                    if d < best.1 {
                        best = (c, d);
                    }
                }
                best
            })
        })
        .collect()
}

/// Per-cluster sums and counts, reduced chunk by chunk in a fixed order.
fn sums_by_cluster(x: &[f64], dim: usize, labels: &[usize], k: usize) -> (Vec<f64>, Vec<usize>) {
    let partials: Vec<(Vec<f64>, Vec<usize>)> = x
        .par_chunks(CHUNK * dim)
        .zip(labels.par_chunks(CHUNK))
        .map(|(block, lab)| {
            let mut s = vec![0.0f64; k * dim];
            let mut c = vec![0usize; k];
            for (row, &l) in block.chunks_exact(dim).zip(lab) {
                c[l] += 1;
                for (a, b) in s[l * dim..(l + 1) * dim].iter_mut().zip(row) {
                    *a += b;
                }
            }
            (s, c)
        })
        .collect();
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (s, c) in partials {
        sums.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(&c).for_each(|(a, b)| *a += b);
    }
    (sums, counts)
}

/// Sum in fixed-size chunks, chunk sums added in order (thread-count independent).
fn ordered_sum(v: &[f64]) -> f64 {
    let parts: Vec<f64> = v.par_chunks(CHUNK).map(|c| c.iter().sum::<f64>()).collect();
    parts.iter().sum()
}

/// Greedy k-means++ (as scikit-learn: 2 + ⌊ln k⌋ candidates per step, keep the one that
/// lowers the potential most).
fn kmeans_pp(x: &[f64], n: usize, dim: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n_local_trials = 2 + (k as f64).ln().floor() as usize;
    let mut centers = Vec::with_capacity(k * dim);
    let first = rng.gen_range(0..n);
    centers.extend_from_slice(&x[first * dim..(first + 1) * dim]);
    let closest = |c: &[f64]| -> Vec<f64> {
        x.par_chunks(CHUNK * dim)
            .flat_map_iter(|b| b.chunks_exact(dim).map(move |r| sq_dist(r, c)))
            .collect()
    };
    let mut closest_d = closest(&centers[0..dim]);
    // Sample proportionally to distance² via prefix sums.
    for _ in 1..k {
        let mut cum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &d in &closest_d {
            acc += d;
            cum.push(acc);
        }
        let total = acc;
        let mut best: Option<(usize, f64, Vec<f64>)> = None;
        for _ in 0..n_local_trials {
            let cand = if total > 0.0 {
                let r: f64 = rng.gen::<f64>() * total;
                cum.partition_point(|&c| c <= r).min(n - 1)
            } else {
                rng.gen_range(0..n)
            };
            let dc = closest(&x[cand * dim..(cand + 1) * dim]);
            let new_d: Vec<f64> = closest_d.iter().zip(&dc).map(|(a, b)| a.min(*b)).collect();
            let p = ordered_sum(&new_d);
            if best.as_ref().is_none_or(|b| p < b.1) {
                best = Some((cand, p, new_d));
            }
        }
        let (cand, _, new_d) = best.expect("at least one trial");
        centers.extend_from_slice(&x[cand * dim..(cand + 1) * dim]);
        closest_d = new_d;
    }
    centers
}

fn lloyd(
    x: &[f64],
    n: usize,
    dim: usize,
    k: usize,
    mut centers: Vec<f64>,
    max_iter: usize,
    tol_abs: f64,
) -> KMeansResult {
    let mut labels: Vec<usize> = vec![usize::MAX; n];
    let mut n_iter = 0;
    for it in 0..max_iter {
        n_iter = it + 1;
        let a = assign(x, dim, &centers);
        let new_labels: Vec<usize> = a.iter().map(|p| p.0).collect();
        let (sums, counts) = sums_by_cluster(x, dim, &new_labels, k);
        let mut new_centers = vec![0.0f64; k * dim];
        // Empty clusters take the rows farthest from their centers (as scikit-learn).
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        let mut far: Vec<usize> = Vec::new();
        if !empty.is_empty() {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| a[j].1.total_cmp(&a[i].1).then(i.cmp(&j)));
            far = order.into_iter().take(empty.len()).collect();
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..dim {
                    new_centers[c * dim + d] = sums[c * dim + d] / counts[c] as f64;
                }
            }
        }
        for (c, &row) in empty.iter().zip(&far) {
            new_centers[c * dim..(c + 1) * dim].copy_from_slice(&x[row * dim..(row + 1) * dim]);
        }
        let shift = sq_dist(&centers, &new_centers);
        let same = new_labels == labels;
        centers = new_centers;
        labels = new_labels;
        if same || shift <= tol_abs {
            break;
        }
    }
    // Final E-step so labels match the returned centers.
    let a = assign(x, dim, &centers);
    let labels: Vec<usize> = a.iter().map(|p| p.0).collect();
    let d: Vec<f64> = a.iter().map(|p| p.1).collect();
    KMeansResult {
        labels,
        centers,
        inertia: ordered_sum(&d),
        n_iter,
    }
}

/// Seeded k-means: k-means++ initialisation, Lloyd iterations, `n_init` restarts keeping the
/// lowest inertia (ties → earliest restart). Deterministic for a given seed, whatever the
/// number of threads.
pub fn kmeans(x: &[f32], n: usize, dim: usize, cfg: &KMeansConfig) -> Result<KMeansResult> {
    check_matrix(x, n, dim)?;
    if cfg.k == 0 || cfg.k > n {
        bail!(
            "k-means with k = {} on {n} rows: k must be between 1 and the number of rows",
            cfg.k
        );
    }
    if cfg.n_init == 0 || cfg.max_iter == 0 {
        bail!("k-means needs n_init ≥ 1 and max_iter ≥ 1");
    }
    let xf = to_f64(x);
    // tol is relative to the mean per-feature variance, as scikit-learn's `_tolerance`.
    let mut mean_var = 0.0;
    for d in 0..dim {
        let m = (0..n).map(|i| xf[i * dim + d]).sum::<f64>() / n as f64;
        mean_var += (0..n).map(|i| (xf[i * dim + d] - m).powi(2)).sum::<f64>() / n as f64;
    }
    let tol_abs = cfg.tol * mean_var / dim as f64;
    let mut master = ChaCha8Rng::seed_from_u64(cfg.seed);
    let seeds: Vec<u64> = (0..cfg.n_init).map(|_| master.gen()).collect();
    let runs: Vec<KMeansResult> = seeds
        .par_iter()
        .map(|&s| {
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            let init = kmeans_pp(&xf, n, dim, cfg.k, &mut rng);
            lloyd(&xf, n, dim, cfg.k, init, cfg.max_iter, tol_abs)
        })
        .collect();
    let mut best = 0;
    for (i, r) in runs.iter().enumerate() {
        if r.inertia < runs[best].inertia {
            best = i;
        }
    }
    Ok(runs.into_iter().nth(best).expect("n_init ≥ 1"))
}

/// Clustering quality of an embedding against known cell-type labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingQuality {
    pub n_cells: usize,
    pub n_labels: usize,
    /// Mean silhouette, cosine distance (higher is better, −1..1).
    pub silhouette_cosine: f64,
    /// Calinski-Harabasz, euclidean (higher is better).
    pub calinski_harabasz: f64,
    /// Davies-Bouldin, euclidean (lower is better).
    pub davies_bouldin: f64,
    /// ARI between the labels and k-means (k = number of labels) on the raw vectors.
    pub kmeans_ari: f64,
    /// NMI between the labels and the same k-means clusters.
    pub kmeans_nmi: f64,
}

impl EmbeddingQuality {
    /// All scores; k-means uses `KMeansConfig::new(n_labels, seed)`.
    pub fn compute(x: &[f32], n: usize, dim: usize, labels: &[usize], seed: u64) -> Result<Self> {
        check_matrix(x, n, dim)?;
        let (_, k) = check_labels(n, labels)?;
        let km = kmeans(x, n, dim, &KMeansConfig::new(k, seed))?;
        Ok(Self {
            n_cells: n,
            n_labels: k,
            silhouette_cosine: silhouette_cosine(x, n, dim, labels)?,
            calinski_harabasz: calinski_harabasz(x, n, dim, labels)?,
            davies_bouldin: davies_bouldin(x, n, dim, labels)?,
            kmeans_ari: adjusted_rand_index(labels, &km.labels)?,
            kmeans_nmi: normalized_mutual_info(labels, &km.labels)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_nmi_hand_cases() {
        assert_eq!(
            adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 3, 3]).unwrap(),
            1.0
        );
        assert_eq!(
            normalized_mutual_info(&[0, 0, 1, 1], &[5, 5, 3, 3]).unwrap(),
            1.0
        );
        assert_eq!(normalized_mutual_info(&[0, 0, 0], &[1, 1, 1]).unwrap(), 1.0);
        assert_eq!(
            normalized_mutual_info(&[0, 0, 1, 1], &[0, 0, 0, 0]).unwrap(),
            0.0
        );
        // sklearn: adjusted_rand_score([0,0,1,1],[0,1,0,1]) == -0.5
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap() + 0.5).abs() < 1e-15);
    }

    #[test]
    fn silhouette_zero_rows_and_errors() {
        // Two zero rows in cluster 0, two identical rows in cluster 1.
        let x = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let s = silhouette_cosine(&x, 4, 2, &[0, 0, 1, 1]).unwrap();
        // zero rows: a = d(0,1) = 1 (cos with zero is 0), b = 1 → 0; ones: a = 0, b = 1 → 1.
        assert!((s - 0.5).abs() < 1e-12, "{s}");
        assert!(silhouette_cosine(&x, 4, 2, &[0, 0, 0, 0]).is_err());
        assert!(calinski_harabasz(&x, 4, 2, &[0, 1, 2, 3]).is_err());
    }
}
