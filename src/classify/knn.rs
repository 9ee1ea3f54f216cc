//! Exact cosine k-nearest-neighbour classifier on frozen embeddings.
//!
//! Rows are L2-normalised once (a zero row stays zero, so its cosine with anything is 0, never
//! NaN); similarities are a blocked matrix product (candle's CPU matmul), query blocks × all
//! training rows, with rayon over the query blocks; each query keeps its top k by
//! (similarity desc, index asc).
//!
//! Votes:
//! - [`Vote::Majority`]: one vote per neighbour; a tie between classes goes to the tied class
//!   whose nearest neighbour is nearest (scikit-learn would take the smallest label instead).
//! - [`Vote::Distance`]: scikit-learn's `weights="distance"` with cosine distance
//!   d = 1 − cos (clipped to [0, 2]): weight 1/d, and if any neighbour of a query is at
//!   distance 0, those neighbours get weight 1 and all others 0. Ties as for `Majority`.
//!
//! `confidence` is the winner's share of the total vote weight.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Most query rows per block of the similarity product.
const MAX_QUERY_BLOCK: usize = 256;
/// Cap on one block's score buffer (f32 values): 8 Mi values = 32 MiB.
const BLOCK_SCORES: usize = 8 << 20;

/// How neighbours vote (`--vote majority|distance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    Majority,
    Distance,
}

crate::choices!(Vote { Majority = "majority", Distance = "distance" });

/// One predicted class with the winner's share of the votes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub label: usize,
    pub confidence: f32,
}

/// The k nearest training rows of each query, nearest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Neighbors {
    pub k: usize,
    /// n_query × k training-row indices, row-major.
    pub indices: Vec<usize>,
    /// n_query × k cosine similarities, matching `indices`.
    pub similarities: Vec<f32>,
}

impl Neighbors {
    /// Indices of query `q`'s neighbours.
    pub fn row(&self, q: usize) -> &[usize] {
        &self.indices[q * self.k..(q + 1) * self.k]
    }
    /// Similarities of query `q`'s neighbours.
    pub fn sims(&self, q: usize) -> &[f32] {
        &self.similarities[q * self.k..(q + 1) * self.k]
    }
}

/// Fitted cosine KNN: normalised training rows and their labels.
#[derive(Debug, Clone)]
pub struct CosineKnn {
    dim: usize,
    n_train: usize,
    /// dim × n_train: the unit (or zero) training rows, transposed for the matmul.
    train_t: Tensor,
    labels: Vec<usize>,
    n_classes: usize,
}

fn check_matrix(what: &str, x: &[f32], n: usize, dim: usize) -> Result<()> {
    if dim == 0 {
        bail!("{what}: dim is 0");
    }
    if x.len() != n * dim {
        bail!(
            "{what}: {} values but n × dim = {n} × {dim} = {}",
            x.len(),
            n * dim
        );
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "{what}: value at row {}, column {} is not finite ({})",
            i / dim,
            i % dim,
            x[i]
        );
    }
    Ok(())
}

/// L2-normalise rows in f64 precision; zero rows stay zero.
pub fn l2_normalize_rows(x: &[f32], dim: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(dim) {
        let norm = row
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
    }
    out
}

/// Similarities of a block of unit query rows with all training rows (`train_t` is the
/// dim × n_train transpose): candle's CPU matmul (gemm), row-major b × n_train.
///
/// Measured on 2,000 queries × 2,000 training rows × 384 dims (test profile, AMD EPYC Zen 3,
/// 2 cores, top-15 selection included; `cargo test --test metrics knn_timing -- --ignored`):
/// candle matmul 0.16–0.27 s, a hand-written 8-lane dot-product loop 1.10–1.13 s; so candle it is.
fn block_scores(q: &[f32], train_t: &Tensor, dim: usize) -> Result<Vec<f32>> {
    let b = q.len() / dim;
    let qt = Tensor::from_slice(q, (b, dim), &Device::Cpu)?;
    Ok(qt.matmul(train_t)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Top k of one score row by (score desc, index asc).
fn top_k(scores: &[f32], k: usize, idx_out: &mut [usize], sim_out: &mut [f32]) {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    let cmp = |a: &u32, b: &u32| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    };
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, cmp);
        order.truncate(k);
    }
    order.sort_unstable_by(cmp);
    for (j, &i) in order.iter().enumerate() {
        idx_out[j] = i as usize;
        sim_out[j] = scores[i as usize];
    }
}

impl CosineKnn {
    /// Normalises and stores the training rows. `train_labels` are class indices.
    pub fn fit(
        train_x: &[f32],
        n_train: usize,
        dim: usize,
        train_labels: &[usize],
    ) -> Result<Self> {
        check_matrix("KNN training matrix", train_x, n_train, dim)?;
        if n_train == 0 {
            bail!("KNN training matrix has no rows");
        }
        if train_labels.len() != n_train {
            bail!(
                "{} training labels for {n_train} training rows: pass one label per row",
                train_labels.len()
            );
        }
        if n_train > u32::MAX as usize {
            bail!("KNN supports at most {} training rows", u32::MAX);
        }
        let n_classes = train_labels.iter().copied().max().unwrap_or(0) + 1;
        Ok(Self {
            dim,
            n_train,
            train_t: Tensor::from_slice(
                &l2_normalize_rows(train_x, dim),
                (n_train, dim),
                &Device::Cpu,
            )?
            .t()?
            .contiguous()?,
            labels: train_labels.to_vec(),
            n_classes,
        })
    }

    pub fn n_train(&self) -> usize {
        self.n_train
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Training labels, by row.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The k nearest training rows (by cosine similarity) of every query row, nearest first;
    /// equal similarities are ordered by training-row index.
    pub fn kneighbors(&self, query_x: &[f32], n_query: usize, k: usize) -> Result<Neighbors> {
        check_matrix("KNN query matrix", query_x, n_query, self.dim)?;
        if k == 0 || k > self.n_train {
            bail!(
                "k = {k} but there are {} training rows: use 1 ≤ k ≤ {}",
                self.n_train,
                self.n_train
            );
        }
        let dim = self.dim;
        let n_train = self.n_train;
        let q = l2_normalize_rows(query_x, dim);
        // Block size depends only on n_train, never on the thread count.
        let block = (BLOCK_SCORES / n_train).clamp(1, MAX_QUERY_BLOCK);
        let mut indices = vec![0usize; n_query * k];
        let mut similarities = vec![0.0f32; n_query * k];
        indices
            .par_chunks_mut(block * k)
            .zip(similarities.par_chunks_mut(block * k))
            .zip(q.par_chunks(block * dim))
            .try_for_each(|((idx, sim), qb)| -> Result<()> {
                let mut scores =
                    block_scores(qb, &self.train_t, dim).context("KNN similarity matmul")?;
                // + 0.0 turns −0.0 into 0.0 so zero rows tie by index, not by sign.
                scores.iter_mut().for_each(|v| *v += 0.0);
                for (r, row) in scores.chunks_exact(n_train).enumerate() {
                    top_k(
                        row,
                        k,
                        &mut idx[r * k..(r + 1) * k],
                        &mut sim[r * k..(r + 1) * k],
                    );
                }
                Ok(())
            })?;
        Ok(Neighbors {
            k,
            indices,
            similarities,
        })
    }

    /// Vote among the first `k` of each query's neighbours (`k ≤ nb.k`).
    pub fn vote(&self, nb: &Neighbors, k: usize, weighting: Vote) -> Result<Vec<Prediction>> {
        if k == 0 || k > nb.k {
            bail!(
                "cannot vote with k = {k}: neighbours were computed for k ≤ {}",
                nb.k
            );
        }
        let n_query = nb.indices.len() / nb.k;
        let preds = (0..n_query)
            .into_par_iter()
            .map(|q| {
                let idx = &nb.row(q)[..k];
                let sims = &nb.sims(q)[..k];
                let weights: Vec<f64> = match weighting {
                    Vote::Majority => vec![1.0; k],
                    Vote::Distance => {
                        let d: Vec<f64> = sims
                            .iter()
                            .map(|&s| (1.0 - s as f64).clamp(0.0, 2.0))
                            .collect();
                        if d.contains(&0.0) {
                            d.iter()
                                .map(|&v| if v == 0.0 { 1.0 } else { 0.0 })
                                .collect()
                        } else {
                            d.iter().map(|&v| 1.0 / v).collect()
                        }
                    }
                };
                let mut score = vec![0.0f64; self.n_classes];
                for (&i, &w) in idx.iter().zip(&weights) {
                    score[self.labels[i]] += w;
                }
                let best = score.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // Ties: the first neighbour (nearest) whose class has the best score.
                let label = idx
                    .iter()
                    .map(|&i| self.labels[i])
                    .find(|&c| score[c] == best)
                    .expect("some neighbour has the best class");
                let total: f64 = weights.iter().sum();
                Prediction {
                    label,
                    confidence: (best / total) as f32,
                }
            })
            .collect();
        Ok(preds)
    }

    /// Predicted class of every query row from its k nearest training rows.
    pub fn predict(
        &self,
        query_x: &[f32],
        n_query: usize,
        k: usize,
        weighting: Vote,
    ) -> Result<Vec<Prediction>> {
        let nb = self.kneighbors(query_x, n_query, k)?;
        self.vote(&nb, k, weighting)
    }

    /// Predictions for several k at once: neighbours are found once for max(ks), then each k
    /// votes. Returns one `Vec<Prediction>` per entry of `ks`, in order.
    pub fn predict_sweep(
        &self,
        query_x: &[f32],
        n_query: usize,
        ks: &[usize],
        weighting: Vote,
    ) -> Result<Vec<Vec<Prediction>>> {
        let kmax = match ks.iter().copied().max() {
            Some(k) => k,
            None => bail!("predict_sweep needs at least one k"),
        };
        let nb = self.kneighbors(query_x, n_query, kmax)?;
        ks.iter().map(|&k| self.vote(&nb, k, weighting)).collect()
    }
}

/// Leave-one-out predictions for the training rows themselves (`train_x` is the matrix `knn` was
/// fitted on, in the same order): each row votes among its `k` nearest *other* training rows, so
/// a training cell is never its own neighbour. Its own index is dropped from its `k + 1` nearest
/// rows (or, when identical rows displaced it from that list, the farthest of them). `k` is
/// capped at `n_train − 1`; with a single training row, that row predicts itself.
pub fn knn_loo(knn: &CosineKnn, train_x: &[f32], k: usize, vote: Vote) -> Result<Vec<Prediction>> {
    let n = knn.n_train();
    if n < 2 {
        return knn.predict(train_x, n, 1, vote);
    }
    let kk = k.min(n - 1);
    let nb = knn.kneighbors(train_x, n, kk + 1)?;
    let mut indices = Vec::with_capacity(n * kk);
    let mut sims = Vec::with_capacity(n * kk);
    for q in 0..n {
        let row = nb.row(q);
        let s = nb.sims(q);
        let drop = row.iter().position(|&j| j == q).unwrap_or(kk);
        for t in 0..=kk {
            if t != drop {
                indices.push(row[t]);
                sims.push(s[t]);
            }
        }
    }
    knn.vote(
        &Neighbors {
            k: kk,
            indices,
            similarities: sims,
        },
        kk,
        vote,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(p: &[Prediction]) -> Vec<usize> {
        p.iter().map(|p| p.label).collect()
    }

    #[test]
    fn loo_removes_self() {
        // three identical class-0 rows and one class-1 row far away: 1-NN LOO of the class-1 row
        // must come from another row (class 0), not itself.
        let x = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        let knn = CosineKnn::fit(&x, 4, 2, &[0, 0, 0, 1]).unwrap();
        let p = knn_loo(&knn, &x, 1, Vote::Majority).unwrap();
        assert_eq!(labels(&p), vec![0, 0, 0, 0]);
    }

    #[test]
    fn loo_votes_among_the_other_rows() {
        // a = (1, 0), b = (1, 0.1) of class 0; c = (0, 1), d = (0.1, 1) of class 1.
        // cos(a, b) = cos(c, d) = 1/√1.01 ≈ 0.995, cos(a, d) = cos(b, c) ≈ 0.0995, cos(a, c) = 0,
        // cos(b, d) = 0.2/1.01 ≈ 0.198.
        let x = [1.0f32, 0.0, 1.0, 0.1, 0.0, 1.0, 0.1, 1.0];
        let knn = CosineKnn::fit(&x, 4, 2, &[0, 0, 1, 1]).unwrap();
        // k = 1: each row's nearest other row is its class partner, one vote of one
        let p = knn_loo(&knn, &x, 1, Vote::Majority).unwrap();
        assert_eq!(labels(&p), vec![0, 0, 1, 1]);
        assert!(p.iter().all(|p| p.confidence == 1.0));
        // k = 5 is capped at n − 1 = 3: each row sees its partner and both rows of the other
        // class, so the other class wins 2 votes to 1
        let p = knn_loo(&knn, &x, 5, Vote::Majority).unwrap();
        assert_eq!(labels(&p), vec![1, 1, 0, 0]);
        assert!(
            p.iter().all(|p| (p.confidence - 2.0 / 3.0).abs() < 1e-6),
            "{p:?}"
        );
    }

    #[test]
    fn loo_with_one_training_row_predicts_itself() {
        let x = [0.5f32, 0.5];
        let knn = CosineKnn::fit(&x, 1, 2, &[3]).unwrap();
        let p = knn_loo(&knn, &x, 10, Vote::Distance).unwrap();
        assert_eq!(labels(&p), vec![3]);
        assert_eq!(p[0].confidence, 1.0);
    }
}
