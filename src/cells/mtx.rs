//! MatrixMarket readers: 10x directories (genes × cells) and cells × genes directories
//! (`matrix.mtx[.gz]` + `genes.tsv` + `cells.tsv`).
//!
//! Coordinate MTX files are not row-sorted in general (10x sorts by cell, cells × genes files often
//! by gene), so rows cannot be streamed straight from the file. The reader makes two streaming passes
//! over the (possibly gzipped) file: the first validates every entry and counts non-zeros per cell,
//! the second fills a CSR matrix of exactly the right size. Peak memory ≈ 8 bytes × nnz plus one
//! line buffer; the returned [`MemorySource`] then slices the in-memory CSR.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::matrix::{infer_obs_column, CsrMatrix, ExpressionMatrix, ObsColumn};
use super::source::{
    check_unique_genes, sort_rows_check_dups, value_problem, MemorySource, ReadOptions, VALUE_FIX,
};
use super::text::TextFile;

/// Find `name` or `name.gz` in `dir`.
fn find_file(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    for n in names {
        for cand in [dir.join(n), dir.join(format!("{n}.gz"))] {
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    None
}

/// Lines of a small text file (gz aware), skipping nothing.
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let mut tf = TextFile::open(path)?;
    let mut out = Vec::new();
    let mut buf = String::new();
    while tf.next_line(&mut buf)? {
        out.push(buf.clone());
    }
    // a trailing empty line (file ending in "\n\n") is not an entry
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    Ok(out)
}

/// Header of a MatrixMarket coordinate file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtxHeader {
    pub n_rows: usize,
    pub n_cols: usize,
    pub nnz: usize,
    pub pattern: bool,
    pub integer: bool,
}

fn parse_header(tf: &mut TextFile, buf: &mut String) -> Result<MtxHeader> {
    let p = tf.path.display().to_string();
    if !tf.next_line(buf)? {
        bail!("{p}: empty file (expected a '%%MatrixMarket matrix coordinate ...' header)")
    }
    let banner: Vec<String> = buf
        .split_whitespace()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if banner.first().map(String::as_str) != Some("%%matrixmarket") || banner.len() < 5 {
        bail!("{p}: line 1: not a MatrixMarket file (expected '%%MatrixMarket matrix coordinate <real|integer|pattern> general', found '{}')", truncate(buf, 80))
    }
    if banner[1] != "matrix" {
        bail!(
            "{p}: MatrixMarket object '{}' is not supported (only 'matrix')",
            banner[1]
        )
    }
    if banner[2] != "coordinate" {
        bail!("{p}: MatrixMarket format '{}' is not supported; only sparse 'coordinate' files are read (write it with scipy.io.mmwrite from a sparse matrix)", banner[2])
    }
    let (pattern, integer) = match banner[3].as_str() {
        "real" | "double" => (false, false),
        "integer" => (false, true),
        "pattern" => (true, false),
        other => {
            bail!("{p}: MatrixMarket field '{other}' is not supported (real, integer or pattern)")
        }
    };
    if banner[4] != "general" {
        bail!("{p}: MatrixMarket symmetry '{}' is not supported; an expression matrix must be 'general'", banner[4])
    }
    loop {
        if !tf.next_line(buf)? {
            bail!("{p}: missing the size line ('<rows> <cols> <entries>') after the header")
        }
        let t = buf.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let nums: Option<Vec<usize>> = f.iter().map(|s| s.parse::<usize>().ok()).collect();
        match nums {
            Some(v) if v.len() == 3 => {
                return Ok(MtxHeader {
                    n_rows: v[0],
                    n_cols: v[1],
                    nnz: v[2],
                    pattern,
                    integer,
                })
            }
            _ => bail!(
                "{p}: line {}: expected the size line '<rows> <cols> <entries>', found '{}'",
                tf.line_no,
                truncate(t, 80)
            ),
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Read a coordinate MTX into cells × genes CSR. `transpose` = the file is genes × cells (10x).
/// `cell_ids`/`genes` are used for messages only.
pub fn read_mtx_csr(
    path: &Path,
    transpose: bool,
    cell_ids: &[String],
    genes: &[String],
) -> Result<CsrMatrix> {
    let p = path.display().to_string();
    let mut buf = String::new();

    // ---- pass 1: validate and count per cell
    let mut tf = TextFile::open(path)?;
    let h = parse_header(&mut tf, &mut buf)?;
    let (n_cells, n_genes) = if transpose {
        (h.n_cols, h.n_rows)
    } else {
        (h.n_rows, h.n_cols)
    };
    if n_cells == 0 || n_genes == 0 {
        bail!(
            "{p}: empty matrix ({} × {} in the size line); nothing to read",
            h.n_rows,
            h.n_cols
        )
    }
    if n_cells > u32::MAX as usize || n_genes > u32::MAX as usize {
        bail!(
            "{p}: matrix dimensions {} × {} are too large",
            h.n_rows,
            h.n_cols
        )
    }
    let indptr = count_per_cell(&mut tf, &mut buf, &h, transpose, n_cells, cell_ids, genes)?;

    // ---- pass 2: fill
    let mut tf = TextFile::open(path)?;
    parse_header(&mut tf, &mut buf)?;
    let (indices, data) = fill_rows(&mut tf, &mut buf, &h, transpose, &indptr)?;
    let mut m = CsrMatrix {
        n_rows: n_cells,
        n_cols: n_genes,
        indptr,
        indices,
        data,
    };
    sort_rows_check_dups(&mut m, 0, path, "matrix entries")?;
    Ok(m)
}

/// Pass 1 over the entries after the size line: every value checked, the declared count
/// matched; returns the row pointers (entries per cell, accumulated).
fn count_per_cell(
    tf: &mut TextFile,
    buf: &mut String,
    h: &MtxHeader,
    transpose: bool,
    n_cells: usize,
    cell_ids: &[String],
    genes: &[String],
) -> Result<Vec<usize>> {
    let p = tf.path.display().to_string();
    let mut counts = vec![0usize; n_cells + 1];
    let mut seen = 0usize;
    while tf.next_line(buf)? {
        let t = buf.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let (i, j, v) = parse_entry(t, h, tf)?;
        let (cell, gene) = if transpose { (j, i) } else { (i, j) };
        if let Some(what) = value_problem(v, "NaN value") {
            bail!(
                "{p}: line {}: {what} at cell {cell}{} gene {gene}{}. {VALUE_FIX}",
                tf.line_no,
                cell_ids
                    .get(cell)
                    .map(|c| format!(" ('{c}')"))
                    .unwrap_or_default(),
                genes
                    .get(gene)
                    .map(|g| format!(" ('{g}')"))
                    .unwrap_or_default(),
            )
        }
        seen += 1;
        if seen > h.nnz {
            bail!(
                "{p}: line {}: more entries than the {} declared in the size line",
                tf.line_no,
                h.nnz
            )
        }
        counts[cell + 1] += 1;
    }
    if seen < h.nnz {
        bail!(
            "{p}: only {seen} entries but the size line declares {}; the file is truncated{}",
            h.nnz,
            if tf.gz {
                " (or the gzip stream ended early)"
            } else {
                ""
            }
        )
    }
    if seen == 0 {
        bail!(
            "{p}: empty matrix: {} × {} with no non-zero entries",
            h.n_rows,
            h.n_cols
        )
    }
    for r in 0..n_cells {
        counts[r + 1] += counts[r];
    }
    Ok(counts)
}

/// Pass 2: each entry into its cell's slot of the row pointers from pass 1.
fn fill_rows(
    tf: &mut TextFile,
    buf: &mut String,
    h: &MtxHeader,
    transpose: bool,
    indptr: &[usize],
) -> Result<(Vec<u32>, Vec<f32>)> {
    let seen = indptr[indptr.len() - 1];
    let mut fill = indptr.to_vec();
    let mut indices = vec![0u32; seen];
    let mut data = vec![0f32; seen];
    while tf.next_line(buf)? {
        let t = buf.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let (i, j, v) = parse_entry(t, h, tf)?;
        let (cell, gene) = if transpose { (j, i) } else { (i, j) };
        let k = fill[cell];
        if k >= indptr[cell + 1] {
            bail!(
                "{}: the file changed while it was being read (line {})",
                tf.path.display(),
                tf.line_no
            )
        }
        indices[k] = gene as u32;
        data[k] = v;
        fill[cell] += 1;
    }
    Ok((indices, data))
}

/// One `i j [v]` entry as 0-based (row, col, value).
#[inline]
fn parse_entry(t: &str, h: &MtxHeader, tf: &TextFile) -> Result<(usize, usize, f32)> {
    let mut it = t.split_ascii_whitespace();
    let bad = |what: &str| {
        anyhow::anyhow!(
            "{}: line {}: {what} in entry '{}'",
            tf.path.display(),
            tf.line_no,
            truncate(t, 80)
        )
    };
    let i: usize = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad row index"))?;
    let j: usize = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad column index"))?;
    let v: f32 = if h.pattern {
        1.0
    } else {
        let s = it.next().ok_or_else(|| bad("missing value"))?;
        match s.parse::<f64>() {
            Ok(x) => x as f32,
            Err(_) => return Err(bad("unparseable value")),
        }
    };
    if i == 0 || i > h.n_rows || j == 0 || j > h.n_cols {
        bail!(
            "{}: line {}: index ({i}, {j}) out of range for a {} × {} matrix (MatrixMarket indices are 1-based)",
            tf.path.display(),
            tf.line_no,
            h.n_rows,
            h.n_cols
        )
    }
    Ok((i - 1, j - 1, v))
}

/// Read only the header (dimensions) of an MTX file.
pub fn read_mtx_header(path: &Path) -> Result<MtxHeader> {
    let mut tf = TextFile::open(path)?;
    let mut buf = String::new();
    parse_header(&mut tf, &mut buf)
}

/// A MatrixMarket directory held as CSR in memory (see the module docs): the source reports the
/// directory as its path and the matrix file name as its field.
fn memory_source(dir: &Path, matrix_path: &Path, m: ExpressionMatrix) -> MemorySource {
    let field = matrix_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    MemorySource {
        path: Some(dir.to_path_buf()),
        field,
        m,
    }
}

/// A cells × genes directory: `matrix.mtx[.gz]` (cells × genes), `genes.tsv`, `cells.tsv` (header,
/// first column = cell id, other columns = obs).
pub fn open_cells_by_genes_dir(dir: &Path, opts: &ReadOptions) -> Result<MemorySource> {
    let matrix_path = find_file(dir, &["matrix.mtx"])
        .with_context(|| format!("{}: no matrix.mtx or matrix.mtx.gz", dir.display()))?;
    let genes_path = find_file(dir, &["genes.tsv"])
        .with_context(|| format!("{}: no genes.tsv (one gene symbol per line)", dir.display()))?;
    let cells_path = find_file(dir, &["cells.tsv"])
        .with_context(|| format!("{}: no cells.tsv", dir.display()))?;
    let h0 = read_mtx_header(&matrix_path)?;
    let (genes, gene_field) =
        read_gene_table(&genes_path, h0.n_cols, opts.gene_symbols_key.as_deref())?;
    let (cell_ids, obs) = read_cells_tsv(&cells_path)?;

    let h = h0;
    if h.n_rows != cell_ids.len() || h.n_cols != genes.len() {
        let transposed = h.n_rows == genes.len() && h.n_cols == cell_ids.len();
        bail!(
            "{}: dimension mismatch: the matrix is {} rows (cells) × {} columns (genes), but {} lists {} cells and {} lists {} genes{}",
            matrix_path.display(),
            h.n_rows,
            h.n_cols,
            cells_path.display(),
            cell_ids.len(),
            genes_path.display(),
            genes.len(),
            if transposed {
                " — the matrix looks transposed (genes × cells, the 10x orientation); this layout is cells × genes, or name the cell file barcodes.tsv for the 10x layout"
            } else {
                ""
            }
        )
    }
    check_unique_genes(&genes, &genes_path, &gene_field)?;
    let x = read_mtx_csr(&matrix_path, false, &cell_ids, &genes)?;
    Ok(memory_source(
        dir,
        &matrix_path,
        ExpressionMatrix {
            x,
            cell_ids,
            genes,
            obs,
        },
    ))
}

/// A 10x directory: `matrix.mtx[.gz]` (genes × cells), `features.tsv[.gz]` (id, symbol, type)
/// or `genes.tsv[.gz]` (id, symbol), `barcodes.tsv[.gz]`.
pub fn open_10x_dir(dir: &Path, opts: &ReadOptions) -> Result<MemorySource> {
    let matrix_path = find_file(dir, &["matrix.mtx"])
        .with_context(|| format!("{}: no matrix.mtx or matrix.mtx.gz", dir.display()))?;
    let feat_path = find_file(dir, &["features.tsv", "genes.tsv"])
        .with_context(|| format!("{}: no features.tsv[.gz] or genes.tsv[.gz]", dir.display()))?;
    let bc_path = find_file(dir, &["barcodes.tsv"])
        .with_context(|| format!("{}: no barcodes.tsv[.gz]", dir.display()))?;
    let use_ids = match opts.gene_symbols_key.as_deref() {
        None => false,
        Some("gene_ids" | "id" | "gene_id") => true,
        Some("gene_symbols" | "symbol" | "name" | "feature_name") => false,
        Some(k) => bail!(
            "{}: --gene-symbols-key '{k}' is not a column of a 10x features file; use 'gene_ids' (first column) or 'gene_symbols' (second column)",
            feat_path.display()
        ),
    };
    let mut genes = Vec::new();
    let lines = read_lines(&feat_path)?;
    let width = lines.first().map(|l| l.split('\t').count()).unwrap_or(0);
    for (n, l) in lines.into_iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != width {
            bail!(
                "{}: line {}: {} tab-separated columns but line 1 has {width}; every row of a 10x \
                 features file has the same columns (gene id, symbol[, feature type])",
                feat_path.display(),
                n + 1,
                f.len()
            )
        }
        let g = if use_ids || f.len() < 2 { f[0] } else { f[1] };
        if g.trim().is_empty() {
            bail!("{}: line {}: empty gene name", feat_path.display(), n + 1)
        }
        genes.push(g.trim().to_string());
    }
    let cell_ids: Vec<String> = read_lines(&bc_path)?
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .collect();

    let h = read_mtx_header(&matrix_path)?;
    if h.n_rows != genes.len() || h.n_cols != cell_ids.len() {
        let transposed = h.n_rows == cell_ids.len() && h.n_cols == genes.len();
        bail!(
            "{}: dimension mismatch: the matrix is {} rows (genes) × {} columns (cells), but {} lists {} genes and {} lists {} barcodes{}",
            matrix_path.display(),
            h.n_rows,
            h.n_cols,
            feat_path.display(),
            genes.len(),
            bc_path.display(),
            cell_ids.len(),
            if transposed { " — the matrix looks transposed (cells × genes); 10x matrices are genes × cells" } else { "" }
        )
    }
    check_unique_genes(&genes, &feat_path, "gene names")?;
    let x = read_mtx_csr(&matrix_path, true, &cell_ids, &genes)?;
    Ok(memory_source(
        dir,
        &matrix_path,
        ExpressionMatrix {
            x,
            cell_ids,
            genes,
            obs: Vec::new(),
        },
    ))
}

/// Header names that mark the first line of a cells × genes directory's `genes.tsv` as a header row.
const GENE_HEADERS: &[&str] = &[
    "symbol",
    "gene",
    "genes",
    "gene_symbol",
    "gene_symbols",
    "gene_name",
    "name",
    "feature_name",
    "gene_id",
    "gene_ids",
    "id",
    "ensembl_id",
];

/// `genes.tsv` of a cells × genes directory: one symbol per line, or a tab-separated table. A first line whose
/// first field is a known header name (`symbol`, `gene_id`, ...) is a header when the file has one
/// line more than the matrix has genes; then the symbol column is `key` (if given), else `symbol`,
/// else the first column. Without a header, a 10x-style `id<TAB>symbol` file gives the second
/// column (`key` = `gene_ids`/`id` picks the first). Returns the names and a field description.
pub fn read_gene_table(
    path: &Path,
    n_genes: usize,
    key: Option<&str>,
) -> Result<(Vec<String>, String)> {
    let lines = read_lines(path)?;
    let first: Vec<&str> = lines
        .first()
        .map(|l| l.split('\t').collect())
        .unwrap_or_default();
    let header = lines.len() == n_genes + 1
        && first
            .first()
            .is_some_and(|f| GENE_HEADERS.contains(&f.trim().to_ascii_lowercase().as_str()));
    if header {
        let names: Vec<String> = first.iter().map(|s| s.trim().to_string()).collect();
        let col = match key {
            Some(k) => names.iter().position(|n| n == k).with_context(|| {
                format!(
                    "{}: --gene-symbols-key '{k}' is not a column; columns: {}",
                    path.display(),
                    names.join(", ")
                )
            })?,
            None => names
                .iter()
                .position(|n| n.eq_ignore_ascii_case("symbol"))
                .unwrap_or(0),
        };
        let mut out = Vec::with_capacity(n_genes);
        for (n, l) in lines.iter().enumerate().skip(1) {
            let v = l.split('\t').nth(col).unwrap_or("").trim();
            if v.is_empty() {
                bail!(
                    "{}: line {}: empty gene name in column '{}'",
                    path.display(),
                    n + 1,
                    names[col]
                )
            }
            out.push(v.to_string());
        }
        return Ok((out, format!("gene names (column '{}')", names[col])));
    }
    let use_first = match key {
        None => false,
        Some("gene_ids" | "id" | "gene_id") => true,
        Some("gene_symbols" | "symbol" | "name") => false,
        Some(k) => bail!(
            "{}: --gene-symbols-key '{k}': this genes.tsv has no header row naming columns; use 'gene_ids' (first column) or 'gene_symbols' (second column)",
            path.display()
        ),
    };
    let mut out = Vec::with_capacity(lines.len());
    for (n, l) in lines.iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        let v = if use_first || f.len() < 2 { f[0] } else { f[1] }.trim();
        if v.is_empty() {
            bail!("{}: line {}: empty gene name", path.display(), n + 1)
        }
        out.push(v.to_string());
    }
    Ok((out, "gene names".to_string()))
}

/// `cells.tsv`: header row; first column = cell id; other columns become obs (numeric if every
/// non-empty value parses as a number, text otherwise).
pub fn read_cells_tsv(path: &Path) -> Result<(Vec<String>, Vec<(String, ObsColumn)>)> {
    let lines = read_lines(path)?;
    let Some(header) = lines.first() else {
        bail!(
            "{}: empty file (expected a header row 'cell_id<TAB>...' and one row per cell)",
            path.display()
        )
    };
    let names: Vec<String> = header.split('\t').map(|s| s.trim().to_string()).collect();
    let mut cols: Vec<Vec<String>> = vec![Vec::with_capacity(lines.len()); names.len()];
    for (n, l) in lines.iter().enumerate().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() != names.len() {
            bail!(
                "{}: line {}: {} tab-separated fields but the header has {} ({})",
                path.display(),
                n + 1,
                f.len(),
                names.len(),
                names.join(", ")
            )
        }
        for (c, v) in f.into_iter().enumerate() {
            cols[c].push(v.to_string());
        }
    }
    let mut it = names.into_iter().zip(cols);
    let (_, cell_ids) = it.next().unwrap_or_default();
    let obs = it.map(|(n, v)| (n, infer_obs_column(v))).collect();
    Ok((cell_ids, obs))
}
