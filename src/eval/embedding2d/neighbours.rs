//! Label neighbour preservation of a 2-D map: for each point, the share of its k nearest
//! neighbours in the map that carry its label, found with a small deterministic k-d tree.

use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Mean, over points, of the fraction of each point's `k` nearest 2-D neighbours (Euclidean,
/// the point itself excluded) that share its label.
///
/// 1.0 means every label forms its own tight group in the map; a map that ignored labels
/// scores about Σ p_c² (the chance that two random points share a label). Distance ties are
/// broken by the lower point index, so the result is deterministic. Uses a k-d tree, so
/// 100 k points take well under a second.
///
/// Errors: empty input, `labels.len() != coords2d.len()`, `k == 0`, `k >= n`, or a
/// non-finite coordinate.
pub fn label_neighbour_preservation(
    coords2d: &[[f32; 2]],
    labels: &[usize],
    k: usize,
) -> Result<f64> {
    let n = coords2d.len();
    ensure!(n > 0, "neighbour preservation: no points");
    ensure!(
        labels.len() == n,
        "neighbour preservation: {} labels for {} points; pass one label per point",
        labels.len(),
        n
    );
    ensure!(k >= 1, "neighbour preservation: k must be at least 1");
    ensure!(
        k < n,
        "neighbour preservation: k = {k} needs more than {k} points, got {n}"
    );
    if let Some(i) = coords2d
        .iter()
        .position(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        bail!(
            "neighbour preservation: point {i} has a non-finite coordinate {:?}",
            coords2d[i]
        );
    }
    let pts: Vec<[f64; 2]> = coords2d
        .iter()
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    let tree = KdTree::build(&pts);
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let nb = tree.knn(&pts, i, k);
            let same = nb.iter().filter(|&&j| labels[j] == labels[i]).count();
            same as f64 / k as f64
        })
        .sum();
    Ok(total / n as f64)
}

/// Candidate neighbour in the max-heap: ordered by (distance², index).
#[derive(Clone, Copy, PartialEq)]
struct Cand(f64, usize);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// A 2-D k-d tree over point indices (implicit: median splits of `idx`).
struct KdTree {
    /// Point indices, arranged so that each node's subtree is a contiguous range whose middle
    /// element is the node.
    idx: Vec<usize>,
    /// Split axis of the node at each position of `idx`.
    axis: Vec<u8>,
}

const KD_LEAF: usize = 8;

impl KdTree {
    fn build(pts: &[[f64; 2]]) -> Self {
        let mut idx: Vec<usize> = (0..pts.len()).collect();
        let mut axis = vec![0u8; pts.len()];
        Self::build_rec(pts, &mut idx, &mut axis);
        KdTree { idx, axis }
    }

    fn build_rec(pts: &[[f64; 2]], idx: &mut [usize], axis: &mut [u8]) {
        if idx.len() <= KD_LEAF {
            return;
        }
        // Split on the axis with the larger spread.
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for &i in idx.iter() {
            for a in 0..2 {
                lo[a] = lo[a].min(pts[i][a]);
                hi[a] = hi[a].max(pts[i][a]);
            }
        }
        let ax = if hi[1] - lo[1] > hi[0] - lo[0] { 1 } else { 0 };
        let mid = idx.len() / 2;
        idx.select_nth_unstable_by(mid, |&a, &b| {
            pts[a][ax].total_cmp(&pts[b][ax]).then(a.cmp(&b))
        });
        axis[mid] = ax as u8;
        let (left, right) = idx.split_at_mut(mid);
        let (al, ar) = axis.split_at_mut(mid);
        Self::build_rec(pts, left, al);
        Self::build_rec(pts, &mut right[1..], &mut ar[1..]);
    }

    /// Indices of the k nearest points to point `q` (excluding `q`).
    fn knn(&self, pts: &[[f64; 2]], q: usize, k: usize) -> Vec<usize> {
        let mut heap: BinaryHeap<Cand> = BinaryHeap::with_capacity(k + 1);
        self.search(pts, q, k, 0, self.idx.len(), &mut heap);
        heap.into_iter().map(|c| c.1).collect()
    }

    fn offer(heap: &mut BinaryHeap<Cand>, k: usize, c: Cand) {
        if heap.len() < k {
            heap.push(c);
        } else if let Some(top) = heap.peek() {
            if c < *top {
                heap.pop();
                heap.push(c);
            }
        }
    }

    fn search(
        &self,
        pts: &[[f64; 2]],
        q: usize,
        k: usize,
        start: usize,
        end: usize,
        heap: &mut BinaryHeap<Cand>,
    ) {
        let len = end - start;
        let qp = pts[q];
        let d2 = |j: usize| {
            let dx = pts[j][0] - qp[0];
            let dy = pts[j][1] - qp[1];
            dx * dx + dy * dy
        };
        if len <= KD_LEAF {
            for &j in &self.idx[start..end] {
                if j != q {
                    Self::offer(heap, k, Cand(d2(j), j));
                }
            }
            return;
        }
        let mid = start + len / 2;
        let node = self.idx[mid];
        let ax = self.axis[mid] as usize;
        if node != q {
            Self::offer(heap, k, Cand(d2(node), node));
        }
        let diff = qp[ax] - pts[node][ax];
        let (near, far) = if diff <= 0.0 {
            ((start, mid), (mid + 1, end))
        } else {
            ((mid + 1, end), (start, mid))
        };
        self.search(pts, q, k, near.0, near.1, heap);
        // Points on the far side are at least |diff| away along this axis; `<=` keeps
        // equal-distance candidates with lower indices reachable.
        let need_far = heap.len() < k || heap.peek().is_some_and(|top| diff * diff <= top.0);
        if need_far {
            self.search(pts, q, k, far.0, far.1, heap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn knn_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Include duplicated points to exercise tie-breaking.
        let mut pts: Vec<[f64; 2]> = (0..300)
            .map(|_| [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)])
            .collect();
        for i in 0..30 {
            pts.push(pts[i * 3]);
        }
        let tree = KdTree::build(&pts);
        for q in 0..pts.len() {
            for &k in &[1usize, 5, 16] {
                let mut got = tree.knn(&pts, q, k);
                got.sort_unstable();
                let mut all: Vec<Cand> = (0..pts.len())
                    .filter(|&j| j != q)
                    .map(|j| {
                        let dx = pts[j][0] - pts[q][0];
                        let dy = pts[j][1] - pts[q][1];
                        Cand(dx * dx + dy * dy, j)
                    })
                    .collect();
                all.sort();
                let mut want: Vec<usize> = all[..k].iter().map(|c| c.1).collect();
                want.sort_unstable();
                assert_eq!(got, want, "q={q} k={k}");
            }
        }
    }
}
