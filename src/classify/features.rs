//! Helpers on row-major `f32` feature matrices (`n_cells × dim`) shared by the classifiers and
//! their reports: gathering rows, keeping the highest-variance columns (for 2-D maps and quality
//! scores of wide matrices such as normalized counts), and fusing several sources for cosine KNN.

use super::knn::l2_normalize_rows;

/// Rows `idx` of the row-major matrix `x` (`dim` columns), in the order given:
/// a row-major `[idx.len() × dim]` matrix.
pub fn gather_rows(x: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * dim);
    for &i in idx {
        out.extend_from_slice(&x[i * dim..(i + 1) * dim]);
    }
    out
}

/// Columns `cols` of rows `rows` of the row-major matrix `x` (`dim` columns), both in the order
/// given: a row-major `[rows.len() × cols.len()]` matrix.
pub fn select_columns(x: &[f32], dim: usize, rows: &[usize], cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &i in rows {
        let r = &x[i * dim..(i + 1) * dim];
        out.extend(cols.iter().map(|&j| r[j]));
    }
    out
}

/// Indices (ascending) of the `m` columns of `x` (`dim` columns) with the largest variance over
/// the rows `rows`; equal variances go to the lower index. Asking for more columns than `dim`
/// gives all of them.
pub fn top_variance_columns(x: &[f32], dim: usize, rows: &[usize], m: usize) -> Vec<usize> {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; dim];
    for &i in rows {
        for (j, &v) in x[i * dim..(i + 1) * dim].iter().enumerate() {
            mean[j] += v as f64;
        }
    }
    mean.iter_mut().for_each(|v| *v /= n);
    let mut var = vec![0f64; dim];
    for &i in rows {
        for (j, &v) in x[i * dim..(i + 1) * dim].iter().enumerate() {
            var[j] += (v as f64 - mean[j]).powi(2);
        }
    }
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| var[b].total_cmp(&var[a]).then(a.cmp(&b)));
    order.truncate(m.min(dim));
    order.sort_unstable();
    order
}

/// Cosine-KNN features of several sources over the same `n` cells: each source (row-major data,
/// dim) has its rows L2-normalized, then each cell's rows are concatenated in source order, so
/// every source weighs equally in the cosine. Returns the `[n × Σ dim]` matrix and its width.
pub fn concat_normalized(sources: &[(&[f32], usize)], n: usize) -> (Vec<f32>, usize) {
    let dim: usize = sources.iter().map(|&(_, d)| d).sum();
    let normed: Vec<Vec<f32>> = sources
        .iter()
        .map(|&(x, d)| l2_normalize_rows(x, d))
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        for (&(_, d), x) in sources.iter().zip(&normed) {
            out.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
    }
    (out, dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 3 × 3, row-major: rows (1, 0, 0), (1, 5, 1), (1, 10, 2)
    const X: [f32; 9] = [1.0, 0.0, 0.0, 1.0, 5.0, 1.0, 1.0, 10.0, 2.0];

    #[test]
    fn gather_rows_keeps_the_given_order() {
        assert_eq!(
            gather_rows(&X, 3, &[2, 0]),
            vec![1.0, 10.0, 2.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            gather_rows(&X, 3, &[1, 1]),
            vec![1.0, 5.0, 1.0, 1.0, 5.0, 1.0]
        );
        assert!(gather_rows(&X, 3, &[]).is_empty());
    }

    #[test]
    fn select_columns_picks_rows_then_columns() {
        assert_eq!(
            select_columns(&X, 3, &[0, 2], &[2, 1]),
            vec![0.0, 0.0, 2.0, 10.0]
        );
        assert_eq!(select_columns(&X, 3, &[1], &[0]), vec![1.0]);
    }

    #[test]
    fn top_variance_picks_varying_columns() {
        // column 1 varies most (variance 50/3), then column 2 (2/3); column 0 is constant
        assert_eq!(top_variance_columns(&X, 3, &[0, 1, 2], 2), vec![1, 2]);
        assert_eq!(top_variance_columns(&X, 3, &[0, 1, 2], 1), vec![1]);
        // more columns than there are: all of them
        assert_eq!(top_variance_columns(&X, 3, &[0, 1, 2], 5), vec![0, 1, 2]);
        // over rows 0 and 1 only: column 1 (0, 5) still varies most, column 2 (0, 1) next
        assert_eq!(top_variance_columns(&X, 3, &[0, 1], 2), vec![1, 2]);
    }

    #[test]
    fn top_variance_ties_go_to_the_lower_index() {
        // columns 0 and 2 both have variance 1 over the two rows, column 1 none
        let x = [0.0f32, 7.0, 5.0, 2.0, 7.0, 3.0];
        assert_eq!(top_variance_columns(&x, 3, &[0, 1], 1), vec![0]);
        assert_eq!(top_variance_columns(&x, 3, &[0, 1], 2), vec![0, 2]);
    }

    #[test]
    fn concat_normalized_gives_each_source_unit_rows() {
        // source a: rows (3, 4) and (0, 0); source b: rows (2) and (-5)
        let a = [3.0f32, 4.0, 0.0, 0.0];
        let b = [2.0f32, -5.0];
        let (x, dim) = concat_normalized(&[(&a, 2), (&b, 1)], 2);
        assert_eq!(dim, 3);
        // (3, 4)/5 = (0.6, 0.8); a zero row stays zero; 2/2 = 1, -5/5 = -1
        assert_eq!(x, vec![0.6, 0.8, 1.0, 0.0, 0.0, -1.0]);
        // one source: just its normalized rows
        assert_eq!(concat_normalized(&[(&b, 1)], 2), (vec![1.0, -1.0], 1));
    }
}
