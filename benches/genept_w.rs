//! GenePT-w at scale: `cargo bench --bench genept_w -- [--cells 1000000] [--genes 20000]
//! [--nnz-per-cell 1500] [--dim 384] [--top-n 100] [--chunk 20000]`.
//!
//! Streams a synthetic sparse count matrix (seeded; per-cell expressed genes drawn with a
//! Zipf-like preference for low gene indices, counts geometric-ish) in row chunks, as the CLI
//! reads files, and runs `embed_cells` per chunk. Reports cells/s, peak RSS and the projection
//! for 1M cells. Memory stays bounded by the chunk.
//!
//! `-- --h5ad FILE --store STORE [--layer NAME] [--repeat 20]` instead times what
//! `celltext cells embed` computes once its files are read (gene totals, gene mapping, top-100
//! weighted average): the baseline `benches/python_genept_w.py` compares `tl.genept_w` with.

use celltext::cells::matrix::CsrMatrix;
use celltext::cells::weighted::{embed_cells, Aggregation, TopN, Weights};
use celltext::genes::GeneEmbeddings;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn sarg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .cloned()
}

/// The CLI's `cells embed` minus file I/O, `repeat` times; prints the median and minimum.
fn h5ad_mode(input: &str, store: &str) -> anyhow::Result<()> {
    use celltext::cells::pipeline::{read_normalized, InputNorm};
    let read = celltext::cells::read::ReadOptions {
        layer: sarg("--layer"),
        ..Default::default()
    };
    let repeat = arg("--repeat", 20).max(1);
    let m = read_normalized(std::path::Path::new(input), &read, InputNorm::Raw, true)?;
    let store = GeneEmbeddings::load(std::path::Path::new(store))?;
    let agg = Aggregation::WeightedMean {
        weights: Weights::Expr,
        top_n: TopN::N(100),
    };
    let mut secs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        let (rows, _) = celltext::genes::pipeline::coverage(
            &store.symbols,
            &m.genes,
            celltext::genes::Species::Human,
            false,
            Some((&m.x.indices, &m.x.data)),
        )?;
        let emb = embed_cells(&m.x, &rows, &store, &agg)?;
        std::hint::black_box(&emb);
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "input": input, "cells": m.x.n_rows, "genes": m.x.n_cols, "dim": store.dim,
            "repeat": repeat, "threads": rayon::current_num_threads(),
            "median_seconds": secs[repeat / 2], "min_seconds": secs[0],
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let (Some(input), Some(store)) = (sarg("--h5ad"), sarg("--store")) {
        return h5ad_mode(&input, &store);
    }
    let cells = arg("--cells", 1_000_000);
    let genes = arg("--genes", 20_000);
    let nnz = arg("--nnz-per-cell", 1500).min(genes);
    let dim = arg("--dim", 384);
    let top = arg("--top-n", 100);
    let chunk = arg("--chunk", 20_000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // 80 % of genes have an embedding, as with RefSeq summaries
    let mut gene_to_row = vec![None; genes];
    let mut n_emb = 0;
    for g in gene_to_row.iter_mut() {
        if rng.gen_bool(0.8) {
            *g = Some(n_emb);
            n_emb += 1;
        }
    }
    let store = GeneEmbeddings {
        symbols: (0..n_emb).map(|i| format!("G{i}")).collect(),
        dim,
        data: (0..n_emb * dim)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect(),
    };
    let agg = Aggregation::WeightedMean {
        weights: Weights::Expr,
        top_n: TopN::N(top),
    };
    let t0 = Instant::now();
    let mut gen_secs = 0.0;
    let mut done = 0;
    let mut checksum = 0f64;
    while done < cells {
        let n = chunk.min(cells - done);
        let tg = Instant::now();
        let mut indptr = vec![0usize];
        let mut indices = Vec::with_capacity(n * nnz);
        let mut data = Vec::with_capacity(n * nnz);
        let mut row = Vec::with_capacity(nnz);
        for _ in 0..n {
            row.clear();
            // Zipf-like: low indices are expressed more often; draw, sort and dedup once
            // (duplicates make the row a little shorter than `nnz`, as real cells vary)
            for _ in 0..nnz {
                let u: f64 = rng.gen();
                row.push((((genes as f64) * u * u) as u32).min(genes as u32 - 1));
            }
            row.sort_unstable();
            row.dedup();
            for &j in &row {
                indices.push(j);
                data.push(1.0 + (rng.gen::<f32>() * 4.0).exp().floor());
            }
            indptr.push(indices.len());
        }
        gen_secs += tg.elapsed().as_secs_f64();
        let x = CsrMatrix {
            n_rows: n,
            n_cols: genes,
            indptr,
            indices,
            data,
        };
        let emb = embed_cells(&x, &gene_to_row, &store, &agg)?;
        checksum += emb.data.iter().take(dim).map(|v| *v as f64).sum::<f64>();
        done += n;
    }
    let total = t0.elapsed().as_secs_f64();
    let compute = total - gen_secs;
    println!(
        "{}",
        serde_json::json!({
            "cells": cells, "genes": genes, "nnz_per_cell_drawn": nnz, "dim": dim, "top_n": top, "chunk": chunk,
            "threads": rayon::current_num_threads(),
            "seconds_total": total, "seconds_generating": gen_secs, "seconds_genept_w": compute,
            "cells_per_s": cells as f64 / compute, "projected_seconds_1m_cells": 1e6 / (cells as f64 / compute),
            "peak_rss_mib": peak_rss_mib(), "checksum": checksum,
        })
    );
    Ok(())
}
