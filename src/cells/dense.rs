//! Dense CSV/TSV tables (optionally gzipped): one row per cell, first column = cell id,
//! header row = (anything for the id column, then) gene names. The delimiter is taken from the
//! extension (`.csv` comma, `.tsv`/`.tab` tab) or sniffed from the header line (tab, comma,
//! semicolon). The table is parsed once and kept as CSR (zeros dropped).

use std::path::Path;

use anyhow::{bail, Result};

use super::matrix::{CsrMatrix, ExpressionMatrix};
use super::source::{check_unique_genes, value_problem, MemorySource, VALUE_FIX};
use super::text::TextFile;

fn sniff_delimiter(path: &Path, header: &str) -> u8 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let stem = name.trim_end_matches(".gz");
    if stem.ends_with(".csv") {
        return b',';
    }
    if stem.ends_with(".tsv") || stem.ends_with(".tab") {
        return b'\t';
    }
    let count = |c: char| header.matches(c).count();
    let (t, c, s) = (count('\t'), count(','), count(';'));
    if t >= c && t >= s && t > 0 {
        b'\t'
    } else if c >= s && c > 0 {
        b','
    } else if s > 0 {
        b';'
    } else {
        b'\t'
    }
}

/// Read a dense table into memory; the source's field is `table`.
pub fn open_dense_table(path: &Path) -> Result<MemorySource> {
    let p = path.display().to_string();
    let mut tf = TextFile::open(path)?;
    let mut header = String::new();
    if !tf.next_line(&mut header)? {
        bail!("{p}: empty file (expected a header row of gene names, then one row per cell)")
    }
    let header = header.trim_start_matches('\u{feff}').to_string();
    let delim = sniff_delimiter(path, &header);
    let gz = tf.gz;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .from_reader(tf.into_reader());
    let genes = header_genes(path, &header, delim)?;

    let n_cols = genes.len();
    let mut cell_ids = Vec::new();
    let mut indptr = vec![0usize];
    let mut indices = Vec::new();
    let mut data = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut line = 1usize;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(record_error(path, e, gz, line)),
        }
        line += 1;
        if rec.len() == 1 && rec.get(0).is_some_and(|s| s.trim().is_empty()) {
            continue; // blank line
        }
        if rec.len() != n_cols + 1 {
            bail!(
                "{p}: line {line}: dimension mismatch: {} fields but the header has {} genes + the cell id column",
                rec.len(),
                n_cols
            )
        }
        let cell = rec.get(0).unwrap_or("").trim().to_string();
        for (j, s) in rec.iter().skip(1).enumerate() {
            let v = parse_value(path, line, &cell, &genes[j], j, s)?;
            if v != 0.0 {
                indices.push(j as u32);
                data.push(v);
            }
        }
        cell_ids.push(cell);
        indptr.push(data.len());
    }
    if cell_ids.is_empty() {
        bail!("{p}: empty matrix: a header but no cell rows")
    }
    let x = CsrMatrix {
        n_rows: cell_ids.len(),
        n_cols,
        indptr,
        indices,
        data,
    };
    let m = ExpressionMatrix {
        x,
        cell_ids,
        genes,
        obs: Vec::new(),
    };
    Ok(MemorySource {
        path: Some(path.to_path_buf()),
        field: "table".to_string(),
        m,
    })
}

/// The header row's gene names (every column after the cell id): non-empty and unique.
fn header_genes(path: &Path, header: &str, delim: u8) -> Result<Vec<String>> {
    let p = path.display();
    let hdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .from_reader(header.as_bytes())
        .records()
        .next()
        .transpose()
        .map_err(|e| anyhow::anyhow!("{p}: line 1: cannot parse the header: {e}"))?;
    let Some(hdr) = hdr else {
        bail!("{p}: empty header row")
    };
    let genes: Vec<String> = hdr.iter().skip(1).map(|s| s.trim().to_string()).collect();
    if genes.is_empty() {
        bail!(
            "{p}: the header has no gene columns (delimiter {:?}); expected 'cell_id{}GENE1{}GENE2...'",
            delim as char,
            delim as char,
            delim as char
        )
    }
    if let Some(i) = genes.iter().position(|g| g.is_empty()) {
        bail!("{p}: line 1: gene name in column {} is empty", i + 2)
    }
    check_unique_genes(&genes, path, "header (gene names)")?;
    Ok(genes)
}

/// What a failed record read means: the inflate limit, a damaged gzip stream, or a bad line
/// (`line` is the last line read).
fn record_error(path: &Path, e: csv::Error, gz: bool, line: usize) -> anyhow::Error {
    let p = path.display();
    if let csv::ErrorKind::Io(io) = e.kind() {
        if crate::limits::is_inflate_limit(io) {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let limit = crate::limits::inflate_limit(len);
            return crate::limits::inflate_error(path, len, limit);
        }
    }
    if gz {
        return anyhow::anyhow!("{p}: gzip stream is truncated or corrupt after line {line} ({e}); re-download or re-compress the file");
    }
    anyhow::anyhow!("{p}: line {}: {e}", line + 1)
}

/// One cell's value of gene `gene` (column `j` after the id): a finite number ≥ 0 (`NA` or empty
/// read as missing and refused by name).
fn parse_value(path: &Path, line: usize, cell: &str, gene: &str, j: usize, s: &str) -> Result<f32> {
    let p = path.display();
    let s = s.trim();
    let v: f32 = match s.parse::<f64>() {
        Ok(x) => x as f32,
        Err(_) if s.eq_ignore_ascii_case("na") || s.is_empty() => f32::NAN,
        Err(_) => bail!(
            "{p}: line {line}, column {} (gene '{gene}'): '{s}' is not a number",
            j + 2
        ),
    };
    if let Some(what) = value_problem(v, "NaN/missing value") {
        bail!("{p}: line {line}: {what} at cell '{cell}' gene '{gene}'. {VALUE_FIX}")
    }
    Ok(v)
}
