//! In-memory expression matrices: cells × genes, CSR, f32 values.

/// Compressed sparse rows: row `i` holds `indices[indptr[i]..indptr[i+1]]` with `data` alongside.
/// Rows are cells, columns are genes. Column indices within a row are strictly increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl CsrMatrix {
    /// Non-zero (column, value) pairs of one row.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        self.indices[a..b].iter().zip(&self.data[a..b]).map(|(&j, &v)| (j as usize, v))
    }
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
}

/// Per-cell annotation column (AnnData `obs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ObsColumn {
    Text(Vec<String>),
    Number(Vec<f64>),
}

/// An expression matrix with its row (cell) and column (gene) names and cell annotations.
#[derive(Debug, Clone)]
pub struct ExpressionMatrix {
    pub x: CsrMatrix,
    pub cell_ids: Vec<String>,
    pub genes: Vec<String>,
    /// obs columns in file order.
    pub obs: Vec<(String, ObsColumn)>,
}

impl ObsColumn {
    pub fn len(&self) -> usize {
        match self {
            ObsColumn::Text(v) => v.len(),
            ObsColumn::Number(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values as label strings: text as is; numbers without a trailing `.0` when integral;
    /// NaN (missing) as "".
    pub fn to_labels(&self) -> Vec<String> {
        match self {
            ObsColumn::Text(v) => v.clone(),
            ObsColumn::Number(v) => v
                .iter()
                .map(|&x| {
                    if x.is_nan() {
                        String::new()
                    } else if x.fract() == 0.0 && x.abs() < 1e15 {
                        format!("{}", x as i64)
                    } else {
                        format!("{x}")
                    }
                })
                .collect(),
        }
    }
}

impl ExpressionMatrix {
    /// An obs column by name; the error lists the available columns.
    pub fn obs_column(&self, name: &str) -> anyhow::Result<&ObsColumn> {
        crate::cells::read::find_obs_column(&self.obs, name, None)
    }
}
