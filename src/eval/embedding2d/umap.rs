//! A seeded, deterministic UMAP to two dimensions, following umap-learn 0.5 step by step
//! (algorithm and measurements in the parent module's documentation).
//!
//! Hand-written because no maintained crate passed: `umap-rs` takes no seed, `annembed` needs a
//! system OpenBLAS and `linfa` pins a conflicting `sprs`.

use super::pca::pca_2d;
use super::trust::{order_by_distance, Metric, Prepared};
use anyhow::{ensure, Result};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// umap-learn's `find_ab_params(spread = 1.0, min_dist = 0.1)`: the curve
/// `1 / (1 + a d^{2b})` fitted to the min_dist/spread target.
const A: f32 = 1.576_943_5;
const B: f32 = 0.895_060_9;
/// The `min_dist` that [`A`], [`B`] belong to.
pub const MIN_DIST: f32 = 0.1;
/// umap-learn's gradient clip.
const CLIP: f32 = 4.0;

/// UMAP settings; `Default` is umap-learn's (15 neighbours, 5 negative samples, learning
/// rate 1, 500 epochs up to 10 000 points and 200 above), with seed 0 and Euclidean distance.
#[derive(Debug, Clone, PartialEq)]
pub struct UmapParams {
    /// Neighbours per point, the point itself included (as umap-learn counts them).
    pub n_neighbors: usize,
    /// Epochs of SGD; `None` = 500 for ≤ 10 000 points, else 200.
    pub n_epochs: Option<usize>,
    /// Negative samples per positive edge sample.
    pub negative_sample_rate: usize,
    /// Initial learning rate (decays linearly to 0).
    pub learning_rate: f32,
    /// Input-space distance.
    pub metric: Metric,
    /// Seed of the initialisation noise and of the negative samples.
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams {
            n_neighbors: 15,
            n_epochs: None,
            negative_sample_rate: 5,
            learning_rate: 1.0,
            metric: Metric::Euclidean,
            seed: 0,
        }
    }
}

/// A 2-D UMAP of an embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Umap2d {
    /// One `[x, y]` per input row, in input order.
    pub coords: Vec<[f32; 2]>,
    /// The settings used.
    pub params: UmapParams,
    /// Epochs actually run.
    pub n_epochs: usize,
    /// Directed edges of the fuzzy graph that were optimised.
    pub n_edges: usize,
}

impl Umap2d {
    /// Subtitle for a scatter plot, e.g.
    /// `"UMAP (15 neighbours, cosine, min_dist 0.1, 500 epochs, seed 0)"`.
    pub fn method_note(&self) -> String {
        format!(
            "UMAP ({} neighbours, {}, min_dist {}, {} epochs, seed {})",
            self.params.n_neighbors,
            self.params.metric.name(),
            MIN_DIST,
            self.n_epochs,
            self.params.seed
        )
    }
}

/// UMAP of `x` (row-major, `n` rows × `dim` columns) to two dimensions. Bit-identical for the
/// same input and settings: the neighbour search runs in parallel but per row, and the SGD is
/// a single-threaded loop driven by one `ChaCha8Rng`.
///
/// Errors: `n < 3`, `dim < 2`, `x.len() != n * dim`, a non-finite value (named by row and
/// column), `n_neighbors < 2` or `n_epochs == Some(0)`.
pub fn umap_2d(x: &[f32], n: usize, dim: usize, params: &UmapParams) -> Result<Umap2d> {
    ensure!(n >= 3, "UMAP needs at least 3 rows (cells), got {n}");
    ensure!(
        dim >= 2,
        "UMAP needs at least 2 columns (embedding dimensions), got {dim}"
    );
    ensure!(
        params.n_neighbors >= 2,
        "UMAP: n_neighbors must be at least 2, got {}",
        params.n_neighbors
    );
    ensure!(
        params.n_epochs != Some(0),
        "UMAP: n_epochs must be at least 1"
    );
    let prepared = Prepared::new(x, n, dim, params.metric)?;
    let k = params.n_neighbors.min(n);
    let mut edges = fuzzy_graph(&prepared, n, k);

    // 4. epochs, pruning of weak edges and the sampling schedule.
    let n_epochs = params
        .n_epochs
        .unwrap_or(if n <= 10_000 { 500 } else { 200 });
    let w_max = edges.iter().map(|e| e.2).fold(0.0, f64::max);
    let cut = w_max / (if n_epochs > 10 { n_epochs } else { 500 }) as f64;
    edges.retain(|e| e.2 >= cut);
    let epochs_per_sample: Vec<f64> = edges
        .iter()
        .map(|e| {
            let samples = n_epochs as f64 * (e.2 / w_max);
            if samples > 0.0 {
                n_epochs as f64 / samples
            } else {
                -1.0
            }
        })
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut emb = initial_layout(x, n, dim, &mut rng)?;
    optimize_layout(
        &mut emb,
        &edges,
        &epochs_per_sample,
        params,
        n_epochs,
        &mut rng,
    );
    Ok(Umap2d {
        coords: emb,
        params: params.clone(),
        n_epochs,
        n_edges: edges.len(),
    })
}

/// Steps 1–3: the fuzzy simplicial set as weighted edges `(i, j, w)`, rows in column order.
fn fuzzy_graph(prepared: &Prepared, n: usize, k: usize) -> Vec<(usize, usize, f64)> {
    // 1. exact kNN, the point itself first (distance 0), then the k − 1 nearest others.
    let knn: Vec<Vec<(f64, usize)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut row = Vec::with_capacity(k);
            row.push((0.0, i));
            row.extend(order_by_distance(prepared, n, i).into_iter().take(k - 1));
            row
        })
        .collect();

    // 2. smooth_knn_dist and membership strengths (directed weights).
    let mean_all = knn.iter().flatten().map(|p| p.0).sum::<f64>() / (n * k) as f64;
    let mut directed: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (i, row) in knn.iter().enumerate() {
        let (rho, sigma) = smooth_knn_dist(row, k, mean_all);
        for &(d, j) in row {
            if j == i {
                continue;
            }
            let w = if d - rho <= 0.0 || sigma == 0.0 {
                1.0
            } else {
                (-(d - rho) / sigma).exp()
            };
            directed[i].push((j, w));
        }
    }

    // 3. fuzzy union P = A + Aᵀ − A∘Aᵀ, rows sorted by column (scipy's COO order).
    let mut graph: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (i, row) in directed.iter().enumerate() {
        for &(j, w) in row {
            graph[i].push((j, w));
            graph[j].push((i, w));
        }
    }
    let lookup =
        |i: usize, j: usize| -> f64 { directed[i].iter().find(|p| p.0 == j).map_or(0.0, |p| p.1) };
    let mut edges: Vec<(usize, usize, f64)> = Vec::new();
    for (i, row) in graph.iter_mut().enumerate() {
        row.sort_by_key(|p| p.0);
        row.dedup_by_key(|p| p.0);
        for &(j, _) in row.iter() {
            let (a, b) = (lookup(i, j), lookup(j, i));
            let w = a + b - a * b;
            if w > 0.0 {
                edges.push((i, j, w));
            }
        }
    }
    edges
}

/// Step 5: the starting layout (`rng` draws the noise, then drives the SGD).
fn initial_layout(x: &[f32], n: usize, dim: usize, rng: &mut ChaCha8Rng) -> Result<Vec<[f32; 2]>> {
    // 5. initialisation: PCA, scaled to max |coordinate| 10, tiny seeded noise, then each
    //    axis rescaled to [0, 10] (umap-learn's init="pca").
    let pca = pca_2d(x, n, dim)?;
    let max_abs = pca
        .coords
        .iter()
        .flat_map(|p| p.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let expand = if max_abs > 0.0 { 10.0 / max_abs } else { 1.0 };
    let mut emb: Vec<[f32; 2]> = pca
        .coords
        .iter()
        .map(|p| {
            let mut q = [p[0] * expand, p[1] * expand];
            for v in &mut q {
                *v += 1e-4 * standard_normal(rng);
            }
            q
        })
        .collect();
    for d in 0..2 {
        let lo = emb.iter().map(|p| p[d]).fold(f32::INFINITY, f32::min);
        let hi = emb.iter().map(|p| p[d]).fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        emb.iter_mut()
            .for_each(|p| p[d] = 10.0 * (p[d] - lo) / span);
    }
    Ok(emb)
}

/// Step 6: the layout optimised in place.
fn optimize_layout(
    emb: &mut [[f32; 2]],
    edges: &[(usize, usize, f64)],
    epochs_per_sample: &[f64],
    params: &UmapParams,
    n_epochs: usize,
    rng: &mut ChaCha8Rng,
) {
    let n = emb.len();
    // 6. SGD with negative sampling (optimize_layout_euclidean, move_other = true).
    let neg_rate = params.negative_sample_rate as f64;
    let per_negative: Vec<f64> = epochs_per_sample.iter().map(|e| e / neg_rate).collect();
    let mut next_negative = per_negative.clone();
    let mut next_sample = epochs_per_sample.to_vec();
    for epoch in 0..n_epochs {
        let alpha = params.learning_rate * (1.0 - epoch as f32 / n_epochs as f32);
        let ef = epoch as f64;
        for (e, &(j, kk, _)) in edges.iter().enumerate() {
            if next_sample[e] > ef {
                continue;
            }
            let (cur, oth) = (emb[j], emb[kk]);
            let d2 = rdist(cur, oth);
            let coeff = if d2 > 0.0 {
                -2.0 * A * B * d2.powf(B - 1.0) / (A * d2.powf(B) + 1.0)
            } else {
                0.0
            };
            let mut c = cur;
            let mut o = oth;
            for d in 0..2 {
                let g = clip(coeff * (c[d] - o[d]));
                c[d] += g * alpha;
                o[d] -= g * alpha;
            }
            emb[j] = c;
            emb[kk] = o;
            next_sample[e] += epochs_per_sample[e];

            let n_neg = ((ef - next_negative[e]) / per_negative[e]).max(0.0) as usize;
            for _ in 0..n_neg {
                let t = rng.gen_range(0..n);
                let other = emb[t];
                let c = emb[j];
                let d2 = rdist(c, other);
                let coeff = if d2 > 0.0 {
                    2.0 * B / ((0.001 + d2) * (A * d2.powf(B) + 1.0))
                } else if j == t {
                    continue;
                } else {
                    0.0
                };
                if coeff > 0.0 {
                    let mut c = c;
                    for d in 0..2 {
                        c[d] += clip(coeff * (c[d] - other[d])) * alpha;
                    }
                    emb[j] = c;
                }
            }
            next_negative[e] += n_neg as f64 * per_negative[e];
        }
    }
}

/// umap-learn's `smooth_knn_dist` for one row (local_connectivity 1, bandwidth 1): `rho` is
/// the distance to the nearest non-identical neighbour and `sigma` is found by bisection so
/// that `Σ_{j ≥ 1} exp(−max(0, d_j − rho) / sigma) = log2(k)`.
fn smooth_knn_dist(row: &[(f64, usize)], k: usize, mean_all: f64) -> (f64, f64) {
    let target = (k as f64).log2();
    let rho = row.iter().map(|p| p.0).find(|&d| d > 0.0).unwrap_or(0.0);
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let psum: f64 = row[1..]
            .iter()
            .map(|p| {
                let d = p.0 - rho;
                if d > 0.0 {
                    (-(d / mid)).exp()
                } else {
                    1.0
                }
            })
            .sum();
        if (psum - target).abs() < 1e-5 {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi == f64::INFINITY {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    let floor = if rho > 0.0 {
        1e-3 * row.iter().map(|p| p.0).sum::<f64>() / row.len() as f64
    } else {
        1e-3 * mean_all
    };
    (rho, mid.max(floor))
}

fn rdist(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
}

fn clip(v: f32) -> f32 {
    v.clamp(-CLIP, CLIP)
}

/// A standard normal draw (Box–Muller) from the seeded generator.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
