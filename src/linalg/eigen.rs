//! Eigen-decomposition of a dense symmetric matrix: Householder tridiagonalisation + implicit
//! QL (EISPACK `tred2`/`tql2`, as in JAMA). Exact to rounding in O(n³), which the parent
//! module's documentation explains is why it is used rather than Jacobi or power iteration.

use anyhow::{bail, ensure, Result};

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
        for x in &d[..i] {
            scale += x.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
                v[idx(j, i)] = 0.0;
            }
        } else {
            for x in &mut d[..i] {
                *x /= scale;
                h += *x * *x;
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
}
