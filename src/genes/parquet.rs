//! Gene vectors in parquet: sciLaMA-style (`gene_id` + `embedding` list column) or wide (the gene
//! column + one numeric column per dimension) on import, and `genes export --format parquet`.
//! Behind the `parquet` feature, so the Python extension does not link the parquet crate.

use anyhow::{anyhow, bail, Context, Result};
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, FloatType};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescPtr;
use std::path::Path;
use std::sync::Arc;

use super::import::ImportedVectors;
use super::GeneEmbeddings;

/// Accepted names of the gene column, in order of preference.
pub const GENE_COLUMNS: [&str; 5] = ["gene_id", "gene", "symbol", "gene_symbol", "gene_name"];
/// Accepted names of the list column.
pub const EMBEDDING_COLUMNS: [&str; 2] = ["embedding", "embeddings"];
pub fn load_parquet_vectors(path: &Path) -> Result<ImportedVectors> {
    // The parquet reader is fuzzed but not promised panic-free on hostile bytes; keep any panic
    // an error naming the file.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_parquet(path)))
        .unwrap_or_else(|_| Err(anyhow!("corrupt parquet file (the parquet reader failed)")))
        .map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// An open parquet file's top-level fields and the leaf columns of each.
struct Layout {
    reader: SerializedFileReader<std::fs::File>,
    schema: SchemaDescPtr,
    fields: Vec<String>,
    leaves: Vec<Vec<usize>>,
}

impl Layout {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).context("cannot open")?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| anyhow!("not a readable parquet file: {e}"))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let fields: Vec<String> = schema
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let mut leaves: Vec<Vec<usize>> = vec![Vec::new(); fields.len()];
        for i in 0..schema.num_columns() {
            leaves[schema.get_column_root_idx(i)].push(i);
        }
        Ok(Self {
            reader,
            schema,
            fields,
            leaves,
        })
    }

    /// The fields, quoted, for messages.
    fn found(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first of `names` among the fields: exact first, then ignoring case.
    fn pick(&self, names: &[&str]) -> Option<usize> {
        let fields = &self.fields;
        names
            .iter()
            .find_map(|n| fields.iter().position(|f| f == n))
            .or_else(|| {
                names
                    .iter()
                    .find_map(|n| fields.iter().position(|f| f.eq_ignore_ascii_case(n)))
            })
    }
}

fn read_parquet(path: &Path) -> Result<ImportedVectors> {
    let pq = Layout::open(path)?;
    // pandas writes an unnamed string index as `__index_level_0__`
    let gene_field = pq
        .pick(&GENE_COLUMNS)
        .or_else(|| pq.pick(&["__index_level_0__"]))
        .ok_or_else(|| {
            anyhow!(
                "no gene column: expected one named {} (columns found: {})",
                GENE_COLUMNS.map(|c| format!("`{c}`")).join(", "),
                pq.found()
            )
        })?;
    let genes = read_genes(&pq, gene_field)?;
    match pq.pick(&EMBEDDING_COLUMNS) {
        Some(emb_field) => read_list_layout(&pq, gene_field, emb_field, genes),
        None => read_wide_layout(&pq, gene_field, genes),
    }
}

/// The gene column: one non-null UTF-8 string per row.
fn read_genes(pq: &Layout, gene_field: usize) -> Result<Vec<String>> {
    let (schema, gene_name) = (&pq.schema, &pq.fields[gene_field]);
    let gene_col = match pq.leaves[gene_field][..] {
        [c] if schema.column(c).physical_type() == PhysicalType::BYTE_ARRAY
            && schema.column(c).max_rep_level() == 0 =>
        {
            c
        }
        _ => bail!("column `{gene_name}` must hold one string per row (gene symbols)"),
    };
    let (names, defs, _) = read_column::<ByteArrayType>(&pq.reader, gene_col, |r| match r {
        ColumnReader::ByteArrayColumnReader(r) => Some(r),
        _ => None,
    })?;
    let max_def = schema.column(gene_col).max_def_level();
    if let Some(row) = defs.iter().position(|&d| d < max_def) {
        bail!(
            "row {}: `{gene_name}` is null; every row needs a gene symbol",
            row + 1
        );
    }
    names
        .iter()
        .enumerate()
        .map(|(i, b)| {
            b.as_utf8()
                .map(str::to_owned)
                .map_err(|_| anyhow!("row {}: `{gene_name}` is not valid UTF-8", i + 1))
        })
        .collect()
}

/// sciLaMA's layout: one list<float> (or list<double>) vector per row.
fn read_list_layout(
    pq: &Layout,
    gene_field: usize,
    emb_field: usize,
    genes: Vec<String>,
) -> Result<ImportedVectors> {
    let (gene_name, emb_name) = (&pq.fields[gene_field], &pq.fields[emb_field]);
    let col = match pq.leaves[emb_field][..] {
        [c] => c,
        _ => bail!("column `{emb_name}` must be a list of floats, found a nested structure"),
    };
    let d = pq.schema.column(col);
    if d.max_rep_level() != 1 {
        bail!(
            "column `{emb_name}` must be a list<float> or list<double> column (one vector per row); \
             for one number per column drop it and use the wide layout"
        );
    }
    let (values, defs, reps, elem) = read_floats(&pq.reader, col, emb_name)?;
    let (max_def, list_def) = (d.max_def_level(), d.repeated_ancestor_def_level());
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(genes.len());
    let mut next = 0;
    for (i, &def) in defs.iter().enumerate() {
        if reps.get(i).copied().unwrap_or(0) == 0 {
            rows.push(Vec::new());
        }
        let Some(row) = rows.last_mut() else {
            bail!("corrupt parquet: `{emb_name}` starts mid-list")
        };
        if def == max_def {
            let v = values.get(next).ok_or_else(|| {
                anyhow!("corrupt parquet: `{emb_name}` has fewer values than its levels")
            })?;
            row.push(*v);
            next += 1;
        } else if def >= list_def {
            let r = rows.len();
            let g = genes.get(r - 1).map(String::as_str).unwrap_or("?");
            bail!("row {r} (gene `{g}`): `{emb_name}` has a null element; fill or drop it");
        }
        // otherwise a null or empty list: left empty, reported by validation with the gene
    }
    if rows.len() != genes.len() {
        bail!(
            "corrupt parquet: `{gene_name}` has {} rows but `{emb_name}` {}",
            genes.len(),
            rows.len()
        );
    }
    let layout = format!("parquet `{gene_name}` + `{emb_name}` list<{elem}>");
    Ok(ImportedVectors {
        genes: genes.into_iter().zip(rows).collect(),
        layout,
    })
}

/// The wide layout: every other top-level column is one dimension.
fn read_wide_layout(pq: &Layout, gene_field: usize, genes: Vec<String>) -> Result<ImportedVectors> {
    let (fields, gene_name) = (&pq.fields, &pq.fields[gene_field]);
    let dims: Vec<usize> = (0..fields.len())
        .filter(|&f| f != gene_field && fields[f] != "__index_level_0__")
        .collect();
    if dims.is_empty() {
        bail!(
            "no embedding column: expected a list column named {} or numeric columns beside `{gene_name}` (columns found: {})",
            EMBEDDING_COLUMNS.map(|c| format!("`{c}`")).join(", "),
            pq.found()
        );
    }
    let mut data = vec![0f32; genes.len() * dims.len()];
    let mut elem = "float";
    for (j, &f) in dims.iter().enumerate() {
        let col = match pq.leaves[f][..] {
            [c] if pq.schema.column(c).max_rep_level() == 0 => c,
            _ => bail!(
                "no list column named {}, and column `{}` is not one number per row either (wide layout: one \
                 float column per dimension); rename the vector column to `embedding` (columns found: {})",
                EMBEDDING_COLUMNS.map(|c| format!("`{c}`")).join(" or "),
                fields[f],
                pq.found()
            ),
        };
        let (values, defs, _, e) = read_floats(&pq.reader, col, &fields[f])?;
        if e == "double" {
            elem = "double";
        }
        let max_def = pq.schema.column(col).max_def_level();
        if values.len() != genes.len() {
            // fewer values than rows: some are null
            let r = defs.iter().position(|&d| d < max_def).unwrap_or(0);
            let g = genes.get(r).map(String::as_str).unwrap_or("?");
            bail!(
                "row {} (gene `{g}`): column `{}` is null; fill or drop it",
                r + 1,
                fields[f]
            );
        }
        for (i, v) in values.into_iter().enumerate() {
            data[i * dims.len() + j] = v;
        }
    }
    let n = dims.len();
    let rows = genes
        .into_iter()
        .enumerate()
        .map(|(i, g)| (g, data[i * n..(i + 1) * n].to_vec()))
        .collect();
    Ok(ImportedVectors {
        genes: rows,
        layout: format!("parquet wide: `{gene_name}` + {n} {elem} columns"),
    })
}

/// A float or double column as f32 (doubles rounded to nearest), with its levels.
fn read_floats(
    reader: &SerializedFileReader<std::fs::File>,
    col: usize,
    name: &str,
) -> Result<(Vec<f32>, Vec<i16>, Vec<i16>, &'static str)> {
    let ty = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .column(col)
        .physical_type();
    Ok(match ty {
        PhysicalType::FLOAT => {
            let (v, d, r) = read_column::<FloatType>(reader, col, |c| match c {
                ColumnReader::FloatColumnReader(r) => Some(r),
                _ => None,
            })?;
            (v, d, r, "float")
        }
        PhysicalType::DOUBLE => {
            let (v, d, r) =
                read_column::<parquet::data_type::DoubleType>(reader, col, |c| match c {
                    ColumnReader::DoubleColumnReader(r) => Some(r),
                    _ => None,
                })?;
            (v.into_iter().map(|x| x as f32).collect(), d, r, "double")
        }
        other => bail!("column `{name}` holds {other} values; expected float or double"),
    })
}

/// All values and levels of leaf column `col`, over every row group.
fn read_column<T: DataType>(
    reader: &SerializedFileReader<std::fs::File>,
    col: usize,
    typed: impl Fn(ColumnReader) -> Option<ColumnReaderImpl<T>>,
) -> Result<(Vec<T::T>, Vec<i16>, Vec<i16>)> {
    let (mut values, mut defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
    let meta = reader.metadata();
    for rg in 0..meta.num_row_groups() {
        let chunk = meta.row_group(rg).column(col);
        match chunk.compression() {
            Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::GZIP(_) => {}
            c => bail!(
                "column `{}` is compressed with {}, which this build does not read (snappy, gzip or none); \
                 rewrite it, e.g. pandas `df.to_parquet(path, compression='snappy')`",
                chunk.column_path().string(),
                // `ZSTD(ZstdLevel(1))` → `ZSTD`
                c.to_string().split('(').next().unwrap_or_default()
            ),
        }
        let rows = usize::try_from(meta.row_group(rg).num_rows())
            .map_err(|_| anyhow!("corrupt parquet: negative row count"))?;
        let group = reader
            .get_row_group(rg)
            .map_err(|e| anyhow!("row group {rg}: {e}"))?;
        let cr = group
            .get_column_reader(col)
            .map_err(|e| anyhow!("row group {rg}: {e}"))?;
        let mut r =
            typed(cr).ok_or_else(|| anyhow!("internal: column reader of an unexpected type"))?;
        let mut done = 0;
        while done < rows {
            let (records, _, _) = r
                .read_records(rows - done, Some(&mut defs), Some(&mut reps), &mut values)
                .map_err(|e| {
                    anyhow!(
                        "row group {rg}, column `{}`: {e}",
                        chunk.column_path().string()
                    )
                })?;
            if records == 0 {
                bail!("corrupt parquet: row group {rg} ends after {done} of {rows} rows");
            }
            done += records;
        }
    }
    Ok((values, defs, reps))
}

const ROW_GROUP_GENES: usize = 8192;

/// Write a store as sciLaMA-style parquet: `gene_id` (string) and `embedding` (list<float32>), one
/// row per gene in store order, snappy-compressed; the store manifest goes into the file's
/// key-value metadata under `celltext.manifest`.
pub fn write_parquet(
    path: &Path,
    g: &GeneEmbeddings,
    manifest: Option<&serde_json::Value>,
) -> Result<()> {
    // Levels below assume non-empty lists.
    anyhow::ensure!(
        g.dim > 0,
        "{}: the store has 0-dimensional vectors; nothing to write",
        path.display()
    );
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message gene_embeddings {
               REQUIRED BYTE_ARRAY gene_id (STRING);
               REQUIRED GROUP embedding (LIST) {
                 REPEATED GROUP list {
                   REQUIRED FLOAT element;
                 }
               }
             }",
        )
        .map_err(|e| anyhow!("internal: parquet schema: {e}"))?,
    );
    let kv = manifest.map(|m| {
        vec![KeyValue::new(
            "celltext.manifest".to_string(),
            m.to_string(),
        )]
    });
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            // symbols are unique and floats rarely repeat: dictionaries would only cost
            .set_dictionary_enabled(false)
            .set_created_by(format!("{} (parquet-rs)", crate::io::TOOL_VERSION))
            .set_key_value_metadata(kv)
            .build(),
    );
    let pq =
        |e: parquet::errors::ParquetError| anyhow!("{}: parquet write failed: {e}", path.display());
    crate::io::atomic_write_with(path, |tmp| {
        let file = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = SerializedFileWriter::new(file, schema.clone(), props.clone()).map_err(pq)?;
        let dim = g.dim;
        // list levels: each row starts at repetition 0; every element is present (definition 1)
        let row_reps: Vec<i16> = (0..dim).map(|j| i16::from(j > 0)).collect();
        for start in (0..g.len()).step_by(ROW_GROUP_GENES) {
            let end = (start + ROW_GROUP_GENES).min(g.len());
            let mut rg = w.next_row_group().map_err(pq)?;
            let mut col = rg
                .next_column()
                .map_err(pq)?
                .context("internal: parquet schema lacks gene_id")?;
            let names: Vec<ByteArray> = g.symbols[start..end]
                .iter()
                .map(|s| ByteArray::from(s.as_str()))
                .collect();
            col.typed::<ByteArrayType>()
                .write_batch(&names, None, None)
                .map_err(pq)?;
            col.close().map_err(pq)?;
            let mut col = rg
                .next_column()
                .map_err(pq)?
                .context("internal: parquet schema lacks embedding")?;
            let values = &g.data[start * dim..end * dim];
            let defs = vec![1i16; values.len()];
            let reps: Vec<i16> = row_reps
                .iter()
                .copied()
                .cycle()
                .take(values.len())
                .collect();
            col.typed::<FloatType>()
                .write_batch(values, Some(&defs), Some(&reps))
                .map_err(pq)?;
            col.close().map_err(pq)?;
            rg.close().map_err(pq)?;
        }
        let file = w.into_inner().map_err(pq)?;
        file.sync_all().ok();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genes::import::to_store;

    #[test]
    fn parquet_round_trip_across_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let n = ROW_GROUP_GENES + 3;
        let g = GeneEmbeddings {
            symbols: (0..n).map(|i| format!("G{i}")).collect(),
            dim: 3,
            data: (0..n * 3).map(|i| i as f32 * 0.25 - 7.0).collect(),
        };
        let p = dir.path().join("g.parquet");
        write_parquet(&p, &g, Some(&serde_json::json!({"a": 1}))).unwrap();
        let back = to_store(load_parquet_vectors(&p).unwrap(), &p).unwrap();
        assert_eq!(back.symbols, g.symbols);
        assert_eq!(back.data, g.data);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
