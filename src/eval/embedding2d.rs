//! 2-D maps of an embedding, for plotting cells coloured by label.
//!
//! # Why PCA and not UMAP
//!
//! The map is an exact **PCA to two components**. A UMAP was considered and rejected, and the
//! rule for adding one later is written down here:
//!
//! - `umap-rs` 0.4 takes no seed (two runs give two different pictures) and, on perfectly
//!   separable clusters, kept only 44–73 % of each point's label-neighbours in 2-D;
//! - `annembed` needs a system OpenBLAS;
//! - `linfa` 0.8 pins an `sprs` version that conflicts with `umap-rs`.
//!
//! A UMAP may replace or join PCA only if it is seeded and passes the neighbour-preservation
//! test in `tests/report_plots.rs` ([`label_neighbour_preservation`] > 0.9 on separable
//! clusters), which this PCA passes. Plots built from [`Pca2d`] say "PCA" in their subtitle
//! ([`Pca2d::method_note`]) so no reader mistakes it for a UMAP.
//!
//! # Algorithm
//!
//! 1. column means (f64, in parallel over row blocks);
//! 2. the covariance `XcᵀXc / (n − 1)` of the centred data, accumulated in f64 from
//!    transposed blocks of 128 rows with rayon (only the upper triangle; `dim × dim`, so a
//!    1024-wide embedding needs 8 MiB per worker whatever the number of cells);
//! 3. a full symmetric eigen-decomposition: Householder tridiagonalisation + implicit QL
//!    (EISPACK `tred2`/`tql2`, as in JAMA). It is O(dim³) and exact to rounding, which is why
//!    it is used instead of Jacobi (several sweeps of O(dim³) each, too slow at dim = 1024) or
//!    power iteration with deflation (its accuracy depends on the eigen-gap and a tolerance);
//! 4. the two largest eigenvalues' vectors, with scikit-learn's deterministic sign convention
//!    (`svd_flip(u_based_decision=False)`): the loading with the largest |value| of each
//!    component is made positive (first such index on ties, like `np.argmax`);
//! 5. coordinates `(x − mean) · component`, explained variance (`ddof = 1`, as scikit-learn)
//!    and its ratio to the total variance (the covariance trace).
//!
//! Cost: the covariance is O(n · dim²) and the eigen-decomposition O(dim³). In the test
//! profile (opt-level 1, 2 cores) 20 000 × 384 takes about 2.6 s and 4 000 × 1024 about
//! 10 s (7 s of it the 1024-wide eigen-decomposition); release builds are several times faster.
//!
//! Checked against `sklearn.decomposition.PCA` (tests/fixtures/plots/make_pca_ref.py):
//! coordinates within 1e-4, explained-variance ratio within 1e-6.

use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Rows per block when accumulating the covariance.
const BLOCK_ROWS: usize = 128;

/// A 2-component PCA of an embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca2d {
    /// One `[pc1, pc2]` per input row, in input order.
    pub coords: Vec<[f32; 2]>,
    /// The two unit-length components (loadings), each `dim` long; sign convention above.
    pub components: [Vec<f64>; 2],
    /// Column means that were subtracted (`dim` long).
    pub mean: Vec<f64>,
    /// Variance along each component (`ddof = 1`, scikit-learn's `explained_variance_`).
    pub explained_variance: [f64; 2],
    /// `explained_variance / total variance` (scikit-learn's `explained_variance_ratio_`);
    /// 0.0 when the data have no variance at all.
    pub explained_variance_ratio: [f64; 2],
}

impl Pca2d {
    /// Subtitle for a scatter plot, e.g. `"PCA (explained variance 41.2 %, 9.8 %)"`.
    pub fn method_note(&self) -> String {
        format!(
            "PCA (explained variance {:.1} %, {:.1} %)",
            100.0 * self.explained_variance_ratio[0],
            100.0 * self.explained_variance_ratio[1]
        )
    }
}

/// Exact PCA of `x` (row-major, `n` rows × `dim` columns) to two components.
///
/// Errors: `n < 2`, `dim < 2`, `x.len() != n * dim`, or a non-finite value (named by row and
/// column).
pub fn pca_2d(x: &[f32], n: usize, dim: usize) -> Result<Pca2d> {
    ensure!(n >= 2, "PCA needs at least 2 rows (cells), got {n}");
    ensure!(
        dim >= 2,
        "PCA to 2 components needs at least 2 columns (embedding dimensions), got {dim}"
    );
    ensure!(
        x.len() == n * dim,
        "PCA input has {} values, expected n {} × dim {} = {}",
        x.len(),
        n,
        dim,
        n * dim
    );
    if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "PCA input has a non-finite value {} at row {}, column {}; drop or repair that cell first",
            x[pos],
            pos / dim,
            pos % dim
        );
    }

    let mean = column_means(x, n, dim);
    let mut cov = centred_gram_upper(x, n, dim, &mean);
    let denom = (n - 1) as f64;
    // Fill the lower triangle and scale.
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / denom;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    let total_var: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();

    let (eigenvalues, vectors) = symmetric_eigen(cov, dim)?;
    // Ascending order: the two largest are the last two.
    let mut components: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut explained_variance = [0.0; 2];
    for (c, idx) in [dim - 1, dim - 2].into_iter().enumerate() {
        let mut v: Vec<f64> = (0..dim).map(|r| vectors[r * dim + idx]).collect();
        let mut best = 0;
        for (j, val) in v.iter().enumerate() {
            if val.abs() > v[best].abs() {
                best = j;
            }
        }
        if v[best] < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        components[c] = v;
        explained_variance[c] = eigenvalues[idx].max(0.0);
    }
    let explained_variance_ratio = if total_var > 0.0 {
        [
            explained_variance[0] / total_var,
            explained_variance[1] / total_var,
        ]
    } else {
        [0.0, 0.0]
    };

    let coords: Vec<[f32; 2]> = x
        .par_chunks(dim)
        .map(|row| {
            let mut out = [0.0f64; 2];
            for (c, comp) in components.iter().enumerate() {
                out[c] = row
                    .iter()
                    .zip(&mean)
                    .zip(comp)
                    .map(|((&v, &m), &w)| (v as f64 - m) * w)
                    .sum();
            }
            [out[0] as f32, out[1] as f32]
        })
        .collect();

    Ok(Pca2d {
        coords,
        components,
        mean,
        explained_variance,
        explained_variance_ratio,
    })
}

fn column_means(x: &[f32], n: usize, dim: usize) -> Vec<f64> {
    let sums = x
        .par_chunks(BLOCK_ROWS * dim)
        .map(|block| {
            let mut s = vec![0.0f64; dim];
            for row in block.chunks_exact(dim) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v as f64;
                }
            }
            s
        })
        .reduce(
            || vec![0.0f64; dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sums.into_iter().map(|s| s / n as f64).collect()
}

/// Upper triangle (row-major `dim × dim`, `j >= i` filled) of `XcᵀXc`, Xc = x − mean.
fn centred_gram_upper(x: &[f32], _n: usize, dim: usize, mean: &[f64]) -> Vec<f64> {
    x.par_chunks(BLOCK_ROWS * dim)
        .fold(
            || (vec![0.0f64; dim * dim], vec![0.0f64; dim * BLOCK_ROWS]),
            |(mut acc, mut t), block| {
                let b = block.len() / dim;
                // Transposed, centred block: t[i * b + r] = x[r][i] - mean[i].
                for (r, row) in block.chunks_exact(dim).enumerate() {
                    for i in 0..dim {
                        t[i * b + r] = row[i] as f64 - mean[i];
                    }
                }
                for i in 0..dim {
                    let ti = &t[i * b..(i + 1) * b];
                    let acc_row = &mut acc[i * dim..(i + 1) * dim];
                    for j in i..dim {
                        acc_row[j] += dot(ti, &t[j * b..(j + 1) * b]);
                    }
                }
                (acc, t)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(
            || vec![0.0f64; dim * dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        s[0] += x[0] * y[0];
        s[1] += x[1] * y[1];
        s[2] += x[2] * y[2];
        s[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// Eigen-decomposition of a symmetric `n × n` matrix (row-major).
///
/// Returns the eigenvalues in ascending order and the eigenvectors as the columns of a
/// row-major `n × n` matrix (`vectors[r * n + c]` is row `r` of eigenvector `c`).
/// Householder tridiagonalisation + implicit QL with shifts (EISPACK tred2/tql2 as in JAMA).
pub(crate) fn symmetric_eigen(a: Vec<f64>, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    ensure!(
        a.len() == n * n,
        "symmetric_eigen: matrix has {} values, expected {}",
        a.len(),
        n * n
    );
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    // `a` is symmetric, so its row-major layout is also its column-major layout: tred2 works
    // column-major (its inner loops run down columns), and hands tql2 the transformation
    // with each column contiguous, which is what tql2's rotations want.
    let mut v = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    tred2(&mut v, &mut d, &mut e, n);
    tql2(&mut v, &mut d, &mut e, n)?;
    Ok((d, transpose(&v, n)))
}

fn transpose(m: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = m[i * n + j];
        }
    }
    t
}

/// Householder reduction to tridiagonal form. `v` holds the symmetric matrix on entry and
/// the accumulated orthogonal transformation on exit, COLUMN-major (`V[i][j]` at `j * n + i`);
/// `d` the diagonal, `e` the sub-diagonal (in `e[1..]`).
fn tred2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let idx = |i: usize, j: usize| j * n + i;
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
                v[idx(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[idx(j, i)] = f;
                g = e[j] + v[idx(j, j)] * f;
                for k in (j + 1)..i {
                    g += v[idx(k, j)] * d[k];
                    e[k] += v[idx(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[idx(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate transformations.
    for i in 0..n - 1 {
        v[idx(n - 1, i)] = v[idx(i, i)];
        v[idx(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[idx(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[idx(k, i + 1)] * v[idx(k, j)];
                }
                for k in 0..=i {
                    v[idx(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[idx(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
        v[idx(n - 1, j)] = 0.0;
    }
    v[idx(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL on the tridiagonal (d, e). `vt` is the tred2 transformation, column-major
/// (column c of V contiguous at `c * n`); on exit its columns are the eigenvectors and `d`
/// the eigenvalues, both sorted ascending.
fn tql2(vt: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) -> Result<()> {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        // e[n-1] == 0, so m < n always; guard anyway.
        let m = m.min(n - 1);
        if m > l {
            let mut iter = 0;
            loop {
                iter += 1;
                if iter > 60 {
                    bail!("eigen-decomposition did not converge (QL iteration {iter} on eigenvalue {l})");
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().take(n).skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    // Rotate eigenvector columns i and i+1 (contiguous in column-major vt).
                    let (lo, hi) = vt.split_at_mut((i + 1) * n);
                    let col_i = &mut lo[i * n..(i + 1) * n];
                    let col_i1 = &mut hi[..n];
                    for (a, b) in col_i.iter_mut().zip(col_i1.iter_mut()) {
                        let hb = *b;
                        *b = s * *a + c * hb;
                        *a = c * *a - s * hb;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    // Selection sort, ascending (stable for equal values: keeps the first).
    for i in 0..n.saturating_sub(1) {
        let mut k = i;
        let mut p = d[i];
        for (j, &dj) in d.iter().enumerate().skip(i + 1) {
            if dj < p {
                k = j;
                p = dj;
            }
        }
        if k != i {
            d[k] = d[i];
            d[i] = p;
            for r in 0..n {
                vt.swap(i * n + r, k * n + r);
            }
        }
    }
    Ok(())
}

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
        Self::build_rec(pts, &mut idx, &mut axis, 0);
        KdTree { idx, axis }
    }

    fn build_rec(pts: &[[f64; 2]], idx: &mut [usize], axis: &mut [u8], depth: usize) {
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
        Self::build_rec(pts, left, al, depth + 1);
        Self::build_rec(pts, &mut right[1..], &mut ar[1..], depth + 1);
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
    fn eigen_residuals_and_orthogonality() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &n in &[1usize, 2, 3, 5, 17, 40] {
            let mut a = vec![0.0f64; n * n];
            for i in 0..n {
                for j in i..n {
                    let v: f64 = rng.gen_range(-1.0..1.0);
                    a[i * n + j] = v;
                    a[j * n + i] = v;
                }
            }
            let (vals, vecs) = symmetric_eigen(a.clone(), n).unwrap();
            for w in vals.windows(2) {
                assert!(w[0] <= w[1]);
            }
            for c in 0..n {
                for r in 0..n {
                    let av: f64 = (0..n).map(|k| a[r * n + k] * vecs[k * n + c]).sum();
                    assert!(
                        (av - vals[c] * vecs[r * n + c]).abs() < 1e-10,
                        "n={n} residual"
                    );
                }
                for c2 in 0..n {
                    let d: f64 = (0..n).map(|k| vecs[k * n + c] * vecs[k * n + c2]).sum();
                    let want = if c == c2 { 1.0 } else { 0.0 };
                    assert!((d - want).abs() < 1e-10, "n={n} orthogonality");
                }
            }
        }
    }

    #[test]
    fn eigen_handles_diagonal_and_zero_matrices() {
        let (vals, _) =
            symmetric_eigen(vec![3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0], 3).unwrap();
        assert_eq!(vals, vec![1.0, 2.0, 3.0]);
        let (vals, _) = symmetric_eigen(vec![0.0; 16], 4).unwrap();
        assert!(vals.iter().all(|&v| v == 0.0));
    }

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
