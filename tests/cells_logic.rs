//! Normalization, weighted-average embeddings, cell sentences and ablations on 54 real pbmc3k
//! cells (tests/data/cells_logic/, references from make_refs.py — NumPy, cross-checked against
//! scanpy).
//!
//! Tolerances (f32 Rust vs f64 NumPy):
//! * normalized values: |rust − ref| ≤ 1e-5 · max(1, |ref|);
//! * gene mean/std: relative 1e-5 (reference stored as f32);
//! * weighted averages: per cell, ‖rust − ref‖∞ ≤ 1e-5 · ‖ref‖∞ (+1e-12), i.e. 1e-5 relative;
//! * everything discrete (rankings, sentences, hashes, goldens, counts): exact.
//!
//! Ablation goldens (golden_ablations.json) are produced by this Rust code — the crate defines
//! the RNG — with `CELLTEXT_BLESS=1 cargo test --test cells_logic ablation_goldens` and
//! committed; the invariant tests below check what can be checked independently.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;

use celltext::cells::ablation::{self, Ablation};
use celltext::cells::matrix::CsrMatrix;
use celltext::cells::normalize::{gene_stats, Normalization};
use celltext::cells::sentences::{
    build_sentences, genes_in_context, render, token_budget, write_jsonl, CellSentence,
    SentenceConfig, Ties, TokenCounter, GENEPT_S_PREFIX,
};
use celltext::cells::weighted::{embed_cells, Aggregation, TopN, Weights};
use celltext::genes::store::GeneEmbeddings;
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// Test-only fixture readers.

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/cells_logic")
}

/// MatrixMarket coordinate (gzipped), rows = cells → CSR.
fn read_mtx_gz(path: &std::path::Path) -> CsrMatrix {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    let mut lines = s.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("%%MatrixMarket matrix coordinate"),
        "{header}"
    );
    let mut lines = lines.filter(|l| !l.starts_with('%') && !l.trim().is_empty());
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let (n_rows, n_cols, nnz) = (dims[0], dims[1], dims[2]);
    let mut trip: Vec<(usize, u32, f32)> = lines
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (
                t[0].parse::<usize>().unwrap() - 1,
                t[1].parse::<u32>().unwrap() - 1,
                t[2].parse::<f32>().unwrap(),
            )
        })
        .collect();
    assert_eq!(trip.len(), nnz);
    trip.sort_by_key(|&(r, c, _)| (r, c));
    let mut indptr = vec![0usize; n_rows + 1];
    for &(r, _, _) in &trip {
        indptr[r + 1] += 1;
    }
    for i in 0..n_rows {
        indptr[i + 1] += indptr[i];
    }
    CsrMatrix {
        n_rows,
        n_cols,
        indptr,
        indices: trip.iter().map(|t| t.1).collect(),
        data: trip.iter().map(|t| t.2).collect(),
    }
}

/// Minimal .npy reader: little-endian f32, C order.
fn read_npy_f32(name: &str) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(dir().join(name)).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    let shape_str = &header[header.find('(').unwrap() + 1..header.find(')').unwrap()];
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

struct Fixture {
    x: CsrMatrix,
    genes: Vec<String>,
    cells: Vec<String>,
    emb: GeneEmbeddings,
    g2r: Vec<Option<usize>>,
    refs: Value,
}

fn fixture() -> Fixture {
    let d = dir();
    let x = read_mtx_gz(&d.join("matrix.mtx.gz"));
    let genes: Vec<String> = std::fs::read_to_string(d.join("genes.tsv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let cells: Vec<String> = std::fs::read_to_string(d.join("cells.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let ej: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("embeddings.json")).unwrap()).unwrap();
    let dim = ej["dim"].as_u64().unwrap() as usize;
    let symbols: Vec<String> = ej["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().into())
        .collect();
    let data: Vec<f32> = ej["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let emb = GeneEmbeddings { symbols, dim, data };
    let idx: HashMap<&str, usize> = emb
        .symbols
        .iter()
        .enumerate()
        .map(|(k, s)| (s.as_str(), k))
        .collect();
    let g2r = genes.iter().map(|g| idx.get(g.as_str()).copied()).collect();
    let refs =
        serde_json::from_str(&std::fs::read_to_string(d.join("refs.json")).unwrap()).unwrap();
    assert_eq!((x.n_rows, x.n_cols), (cells.len(), genes.len()));
    Fixture {
        x,
        genes,
        cells,
        emb,
        g2r,
        refs,
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `tokenizers::Tokenizer` as a [`TokenCounter`] (test-only; the real one lives in the encoder).
/// The fixture is all-MiniLM-L6-v2's tokenizer.json (BERT uncased WordPiece) with truncation
/// and padding removed.
struct HfCounter {
    tok: tokenizers::Tokenizer,
    max_len: usize,
}

impl TokenCounter for HfCounter {
    fn count(&self, text: &str) -> usize {
        self.tok.encode(text, true).expect("tokenize").len()
    }
    fn max_len(&self) -> usize {
        self.max_len
    }
}

fn counter(max_len: usize) -> HfCounter {
    let mut b = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir().join("tokenizer.json.gz")).unwrap())
        .read_to_end(&mut b)
        .unwrap();
    HfCounter {
        tok: tokenizers::Tokenizer::from_bytes(&b).unwrap(),
        max_len,
    }
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

// ------------------------------------------------------------------------------------------
// Normalization vs NumPy/scanpy.

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn normalizations_match_scanpy() {
    let f = fixture();
    let (shape, norm) = read_npy_f32("norm_values.npy");
    let k = shape[1];
    let nc = f.refs["norm_cells"].as_u64().unwrap() as usize;
    assert_eq!(f.x.indptr[nc], k);
    let row = |r: usize| &norm[r * k..(r + 1) * k];

    let log = Normalization::Log1pCp10k.apply(&f.x).unwrap();
    assert!(log.implicit.is_none());
    assert_eq!(
        (&log.x.indptr, &log.x.indices),
        (&f.x.indptr, &f.x.indices),
        "pattern kept"
    );
    for (e, (&a, &b)) in log.x.data[..k].iter().zip(row(0)).enumerate() {
        assert!(
            close(a as f64, b as f64, 1e-5),
            "log1p entry {e}: {a} vs {b}"
        );
    }

    let (gshape, gs) = read_npy_f32("gene_stats.npy");
    let m = gshape[1];
    assert_eq!(m, f.x.n_cols);
    for (input, mat, zrow, srow) in [("raw", &f.x, 1usize, 0usize), ("log1p", &log.x, 2, 2)] {
        let z = Normalization::ZScore.apply(mat).unwrap();
        for (e, (&a, &b)) in z.x.data[..k].iter().zip(row(zrow)).enumerate() {
            assert!(
                close(a as f64, b as f64, 1e-5),
                "zscore({input}) entry {e}: {a} vs {b}"
            );
        }
        let st = gene_stats(mat).unwrap();
        let (mean, std) = (
            &gs[srow * m..(srow + 1) * m],
            &gs[(srow + 1) * m..(srow + 2) * m],
        );
        let implicit = z.implicit.as_ref().unwrap();
        for j in 0..m {
            let (rm, rs) = (mean[j] as f64, std[j] as f64);
            assert!(
                (st.mean[j] - rm).abs() <= 1e-5 * rm.abs() + 1e-12,
                "{input} mean gene {j}"
            );
            assert_eq!(
                st.std[j] == 0.0,
                rs == 0.0,
                "{input} zero-variance flag gene {j}"
            );
            assert!(
                (st.std[j] - rs).abs() <= 1e-5 * rs,
                "{input} std gene {j}: {} vs {rs}",
                st.std[j]
            );
            let ri = if rs == 0.0 { 0.0 } else { -rm / rs };
            assert!(
                close(implicit[j] as f64, ri, 1e-5),
                "{input} implicit gene {j}: {} vs {ri}",
                implicit[j]
            );
        }
        // logical (dense) view agrees with get() and with the stored values
        let dense = z.to_dense();
        for i in [0usize, 17, 53] {
            for j in (0..m).step_by(97) {
                assert_eq!(dense[i * m + j], z.get(i, j));
            }
        }
    }
}

#[test]
fn normalization_errors_not_panics() {
    let f = fixture();
    let mut bad = f.x.clone();
    bad.data[5] = f32::NAN;
    for n in [
        Normalization::Raw,
        Normalization::Log1pCp10k,
        Normalization::ZScore,
    ] {
        assert!(n.apply(&bad).is_err());
    }
    let empty = CsrMatrix {
        n_rows: 0,
        n_cols: 0,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    assert!(Normalization::ZScore.apply(&empty).is_err());
    let mut broken = f.x.clone();
    broken.indptr.pop();
    assert!(Normalization::Log1pCp10k.apply(&broken).is_err());
}

// ------------------------------------------------------------------------------------------
// Weighted averages vs NumPy.

fn agg_of(r: &Value) -> Aggregation {
    match r["agg"].as_str().unwrap() {
        "genept" => Aggregation::GenePtMean,
        "scelmo" => Aggregation::ScElmoWa,
        "weighted" => Aggregation::WeightedMean {
            weights: celltext::choice::parse_choice::<Weights>(
                "weights",
                r["weights"].as_str().unwrap(),
                true,
            )
            .unwrap(),
            top_n: match &r["top_n"] {
                Value::String(s) => s.parse().unwrap(),
                v => TopN::N(v.as_u64().unwrap() as usize),
            },
        },
        other => panic!("unknown agg {other}"),
    }
}

#[test]
fn weighted_matches_numpy() {
    let f = fixture();
    let log = Normalization::Log1pCp10k.apply(&f.x).unwrap().x;
    let mut checked = 0;
    for r in f.refs["weighted"].as_array().unwrap() {
        let agg = agg_of(r);
        let x = if r["input"] == "raw" { &f.x } else { &log };
        let out = embed_cells(x, &f.g2r, &f.emb, &agg).unwrap();
        let want = r["data"].as_array().unwrap();
        for i in 0..x.n_rows {
            let w = f64s(&want[i]);
            let got = out.row(i);
            let norm = w.iter().fold(0f64, |a, v| a.max(v.abs()));
            let err = got
                .iter()
                .zip(&w)
                .fold(0f64, |a, (&g, &v)| a.max((g as f64 - v).abs()));
            // 1e-5 relative to the vector's largest component (f32 output vs f64 reference)
            assert!(
                err <= 1e-5 * norm + 1e-12,
                "{agg:?} on {} cell {i}: err {err:e} (|ref| {norm})",
                r["input"]
            );
            assert!(got.iter().all(|v| v.is_finite()));
        }
        if let Some(e) = r.get("empty") {
            let e: Vec<bool> = e
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_bool().unwrap())
                .collect();
            assert_eq!(out.empty, e);
            let nu: Vec<usize> = r["n_used"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(out.n_used, nu, "{agg:?}");
        }
        // diagnostics are independent of the aggregation (raw and log1p share the pattern)
        let nm: Vec<usize> = f.refs["n_mapped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let nu: Vec<usize> = f.refs["n_unmapped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(out.n_mapped, nm);
        assert_eq!(out.n_unmapped, nu);
        if r["input"] == "raw" {
            for (a, b) in out.coverage.iter().zip(f64s(&f.refs["coverage"])) {
                assert!((*a as f64 - b).abs() <= 1e-6, "coverage {a} vs {b}");
            }
        }
        checked += 1;
    }
    assert_eq!(
        checked, 20,
        "16 GenePT-w configurations + GenePT X·E/n + scELMo wa, raw and log1p"
    );
}

#[test]
fn weighted_relations_between_aggregations() {
    // scELMo wa = coverage × WeightedMean{Expr, All}; GenePT = (Σ_j x_ij) / n_cols × scELMo.
    let f = fixture();
    let wm = embed_cells(
        &f.x,
        &f.g2r,
        &f.emb,
        &Aggregation::WeightedMean {
            weights: Weights::Expr,
            top_n: TopN::All,
        },
    )
    .unwrap();
    let sc = embed_cells(&f.x, &f.g2r, &f.emb, &Aggregation::ScElmoWa).unwrap();
    let gp = embed_cells(&f.x, &f.g2r, &f.emb, &Aggregation::GenePtMean).unwrap();
    for i in 0..f.x.n_rows {
        let total: f64 = f.x.row(i).map(|(_, v)| v as f64).sum();
        for d in 0..f.emb.dim {
            let (w, s, g) = (
                wm.row(i)[d] as f64,
                sc.row(i)[d] as f64,
                gp.row(i)[d] as f64,
            );
            assert!((s - wm.coverage[i] as f64 * w).abs() <= 1e-5 * w.abs().max(1e-3));
            assert!((g - s * total / f.x.n_cols as f64).abs() <= 1e-5 * g.abs().max(1e-6));
        }
    }
}

#[test]
fn weighted_independent_of_thread_count() {
    let f = fixture();
    for agg in [
        Aggregation::WeightedMean {
            weights: Weights::ZScore,
            top_n: TopN::N(10),
        },
        Aggregation::WeightedMean {
            weights: Weights::Log1p,
            top_n: TopN::All,
        },
        Aggregation::GenePtMean,
    ] {
        let a = pool(1)
            .install(|| embed_cells(&f.x, &f.g2r, &f.emb, &agg))
            .unwrap();
        let b = pool(3)
            .install(|| embed_cells(&f.x, &f.g2r, &f.emb, &agg))
            .unwrap();
        assert_eq!(a, b, "{agg:?}");
    }
}

#[test]
fn weighted_empty_cells_flagged_never_nan() {
    let emb = GeneEmbeddings {
        symbols: vec!["A".into(), "B".into()],
        dim: 2,
        data: vec![1.0, 2.0, 3.0, 4.0],
    };
    // cell 0: only unmapped gene; cell 1: nothing; cell 2: A only (constant → z-score weight 0)
    let x = CsrMatrix {
        n_rows: 3,
        n_cols: 3,
        indptr: vec![0, 1, 1, 2],
        indices: vec![2, 0],
        data: vec![5.0, 1.0],
    };
    let g2r = vec![Some(0), Some(1), None];
    for agg in [
        Aggregation::WeightedMean {
            weights: Weights::Expr,
            top_n: TopN::N(10),
        },
        Aggregation::WeightedMean {
            weights: Weights::Uniform,
            top_n: TopN::All,
        },
        Aggregation::WeightedMean {
            weights: Weights::ZScore,
            top_n: TopN::All,
        },
        Aggregation::GenePtMean,
        Aggregation::ScElmoWa,
    ] {
        let r = embed_cells(&x, &g2r, &emb, &agg).unwrap();
        assert!(r.empty[0] && r.empty[1], "{agg:?}");
        assert!(r.data.iter().all(|v| v.is_finite()));
        assert_eq!(&r.data[..4], &[0.0; 4]);
        assert_eq!((r.n_mapped[0], r.n_unmapped[0], r.coverage[0]), (0, 1, 0.0));
        assert_eq!(r.coverage[1], 0.0);
    }
    // gene A: values [0, 0, 1] → mean 1/3, std ddof1 = sqrt(1/3) ⇒ z(1) = (2/3)/0.577 ≠ 0 → not empty
    let r = embed_cells(
        &x,
        &g2r,
        &emb,
        &Aggregation::WeightedMean {
            weights: Weights::ZScore,
            top_n: TopN::All,
        },
    )
    .unwrap();
    assert!(!r.empty[2]);
    assert_eq!(r.row(2), &[1.0, 2.0]);
}

#[test]
fn weighted_errors_not_panics() {
    let f = fixture();
    let agg = Aggregation::WeightedMean {
        weights: Weights::Expr,
        top_n: TopN::N(10),
    };
    // gene_to_row of the wrong length
    let e = embed_cells(&f.x, &f.g2r[1..], &f.emb, &agg).unwrap_err();
    assert!(format!("{e:#}").contains("gene_to_row"), "{e:#}");
    // NaN in the matrix
    let mut bad = f.x.clone();
    bad.data[3] = f32::NAN;
    assert!(embed_cells(&bad, &f.g2r, &f.emb, &agg).is_err());
    // negative values (a z-scored matrix passed by mistake)
    let z = Normalization::ZScore.apply(&f.x).unwrap().x;
    assert!(embed_cells(&z, &f.g2r, &f.emb, &agg).is_err());
    // empty matrix
    let empty = CsrMatrix {
        n_rows: 0,
        n_cols: f.x.n_cols,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    assert!(embed_cells(&empty, &f.g2r, &f.emb, &agg).is_err());
    // top-N of 0, row index out of range, inconsistent embedding store, NaN embedding
    assert!(embed_cells(
        &f.x,
        &f.g2r,
        &f.emb,
        &Aggregation::WeightedMean {
            weights: Weights::Expr,
            top_n: TopN::N(0)
        }
    )
    .is_err());
    let mut g2r = f.g2r.clone();
    g2r[0] = Some(f.emb.len());
    assert!(embed_cells(&f.x, &g2r, &f.emb, &agg).is_err());
    let mut emb = f.emb.clone();
    emb.data.pop();
    assert!(embed_cells(&f.x, &f.g2r, &emb, &agg).is_err());
    let mut emb = f.emb.clone();
    emb.data[0] = f32::NAN;
    assert!(embed_cells(&f.x, &f.g2r, &emb, &agg).is_err());
    assert!(
        celltext::choice::parse_choice::<Weights>("weights", "bogus", true).is_err()
            && "0".parse::<TopN>().is_err()
    );
}

// ------------------------------------------------------------------------------------------
// Cell sentences.

#[test]
fn sentences_match_numpy_stable_ties() {
    let f = fixture();
    let s = build_sentences(&f.x, &f.cells, &f.genes, &SentenceConfig::default()).unwrap();
    for (k, r) in f.refs["sentences_stable"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(s[k].cell_id, r["cell_id"].as_str().unwrap());
        assert_eq!(s[k].text, r["text"].as_str().unwrap(), "cell {k}");
    }
    let n_expr = f.refs["n_expressed"].as_array().unwrap();
    for (sent, n) in s.iter().zip(n_expr) {
        assert_eq!(sent.genes.len() as u64, n.as_u64().unwrap());
        assert_eq!(sent.text, render(GENEPT_S_PREFIX, &sent.genes));
        assert!(sent
            .text
            .starts_with("A cell with genes ranked by expression: "));
    }
    // log-normalization is monotone within a cell: identical sentences, ties included
    let log = Normalization::Log1pCp10k.apply(&f.x).unwrap().x;
    assert_eq!(
        build_sentences(&log, &f.cells, &f.genes, &SentenceConfig::default()).unwrap(),
        s
    );
    // max_genes truncates after ranking
    let cfg = SentenceConfig {
        max_genes: Some(25),
        prefix: String::new(),
        ..Default::default()
    };
    let t = build_sentences(&f.x, &f.cells, &f.genes, &cfg).unwrap();
    for (a, b) in t.iter().zip(&s) {
        assert_eq!(a.genes[..], b.genes[..25.min(b.genes.len())]);
        assert_eq!(a.text, a.genes.join(" "));
    }
}

#[test]
fn sentences_shuffled_ties_are_seeded_and_valid() {
    let f = fixture();
    let stable = build_sentences(&f.x, &f.cells, &f.genes, &SentenceConfig::default()).unwrap();
    let cfg = |seed| SentenceConfig {
        ties: Ties::Shuffle { seed },
        ..Default::default()
    };
    let a = pool(1)
        .install(|| build_sentences(&f.x, &f.cells, &f.genes, &cfg(7)))
        .unwrap();
    let b = pool(3)
        .install(|| build_sentences(&f.x, &f.cells, &f.genes, &cfg(7)))
        .unwrap();
    let c = build_sentences(&f.x, &f.cells, &f.genes, &cfg(8)).unwrap();
    assert_eq!(a, b, "same seed, different thread counts");
    assert_ne!(a, c, "different seeds");
    assert_ne!(a, stable, "raw counts have many ties");
    let col: HashMap<&str, usize> = f
        .genes
        .iter()
        .enumerate()
        .map(|(j, g)| (g.as_str(), j))
        .collect();
    for (i, (sh, st)) in a.iter().zip(&stable).enumerate() {
        // same multiset, non-increasing values, and a tie run is a permutation of the stable run
        let val = |g: &String| {
            let j = col[g.as_str()];
            f.x.row(i).find(|&(c, _)| c == j).unwrap().1
        };
        let vs: Vec<f32> = sh.genes.iter().map(val).collect();
        assert!(vs.windows(2).all(|w| w[0] >= w[1]), "cell {i} not ranked");
        assert_eq!(vs, st.genes.iter().map(val).collect::<Vec<_>>());
        let mut x = sh.genes.clone();
        let mut y = st.genes.clone();
        x.sort();
        y.sort();
        assert_eq!(x, y);
    }
}

#[test]
fn sentence_errors_not_panics() {
    let f = fixture();
    let cfg = SentenceConfig::default();
    assert!(build_sentences(&f.x, &f.cells, &f.genes[1..], &cfg).is_err());
    assert!(build_sentences(&f.x, &f.cells[1..], &f.genes, &cfg).is_err());
    let mut bad = f.x.clone();
    bad.data[0] = f32::INFINITY;
    assert!(build_sentences(&bad, &f.cells, &f.genes, &cfg).is_err());
    let z = Normalization::ZScore.apply(&f.x).unwrap().x;
    assert!(build_sentences(&z, &f.cells, &f.genes, &cfg).is_err());
    let empty = CsrMatrix {
        n_rows: 0,
        n_cols: 0,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    assert!(build_sentences(&empty, &[], &[], &cfg).is_err());
}

#[test]
fn jsonl_is_written_atomically() {
    let f = fixture();
    let s = build_sentences(
        &f.x,
        &f.cells,
        &f.genes,
        &SentenceConfig {
            max_genes: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sentences.jsonl");
    std::fs::write(&path, "old contents\n").unwrap();
    write_jsonl(&path, &s).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), s.len());
    for (l, sent) in lines.iter().zip(&s) {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(v["id"], sent.cell_id.as_str());
        assert_eq!(v["text"], sent.text.as_str());
    }
    assert!(lines[0].starts_with("{\"id\":"));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    assert!(write_jsonl(&tmp.path().join("missing-dir/x.jsonl"), &s).is_err());
}

#[test]
fn token_budget_with_real_tokenizer() {
    let f = fixture();
    let c = counter(128);
    let s = build_sentences(&f.x, &f.cells, &f.genes, &SentenceConfig::default()).unwrap();
    let budget = token_budget(&s[..12], &c).unwrap();
    for (i, (&k, sent)) in budget.in_context.iter().zip(&s).enumerate() {
        // k fits, k+1 does not: with a count that grows with the gene prefix, k is the maximum
        assert!(
            c.count(&render(&sent.prefix, &sent.genes[..k])) <= 128,
            "cell {i}"
        );
        assert!(k < sent.genes.len(), "every real cell overflows 128 tokens");
        assert!(
            c.count(&render(&sent.prefix, &sent.genes[..k + 1])) > 128,
            "cell {i}"
        );
        assert!(k > 5);
    }
    let sm = &budget.summary;
    assert!(sm.min as f64 <= sm.median && sm.median <= sm.max as f64);
    assert_eq!(sm.min, *budget.in_context.iter().min().unwrap());
    assert_eq!(budget.n_truncated, 12);
    // a context that holds everything
    let big = counter(1_000_000);
    let all = token_budget(&s[..2], &big).unwrap();
    assert_eq!(all.in_context, all.n_genes);
    assert_eq!(all.n_truncated, 0);
    // the bare prefix (10 tokens with [CLS]/[SEP]) does not fit in 5
    assert_eq!(
        genes_in_context(GENEPT_S_PREFIX, &s[0].genes, &counter(5)),
        0
    );
    assert!(token_budget(&[], &c).is_err());
}

// ------------------------------------------------------------------------------------------
// Ablations.

const SEED: u64 = 42;
const GOLDEN_MAX_GENES: usize = 80;
const MAX_LEN: usize = 128;

fn golden_sentences(f: &Fixture) -> Vec<CellSentence> {
    let cfg = SentenceConfig {
        max_genes: Some(GOLDEN_MAX_GENES),
        ..Default::default()
    };
    let mut s = build_sentences(&f.x, &f.cells, &f.genes, &cfg).unwrap();
    s.truncate(10);
    s
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[test]
fn ablation_invariants() {
    let f = fixture();
    let c = counter(MAX_LEN);
    let src = golden_sentences(&f);
    let hash_refs = f.refs["hash_refs"].as_object().unwrap();
    let run = |a: Ablation, seed: u64| ablation::apply_all(&src, &a, seed, Some(&c)).unwrap();
    let mut any_shuffle_differs = [false; 4];
    for a in Ablation::protocol() {
        let out = run(a, SEED);
        assert_eq!(out, run(a, SEED), "{a} deterministic");
        assert_eq!(
            out,
            pool(1).install(|| run(a, SEED)),
            "{a} thread-independent"
        );
        for (s, o) in src.iter().zip(&out) {
            assert_eq!((&o.cell_id, &o.prefix), (&s.cell_id, &s.prefix));
            assert_eq!(o.text, render(&o.prefix, &o.genes));
            let k = genes_in_context(&s.prefix, &s.genes, &c);
            assert!(
                k > 0 && k < s.genes.len(),
                "fixture: context boundary inside the sentence"
            );
            match a {
                Ablation::None => assert_eq!(o, s),
                Ablation::Hash => {
                    for (g, h) in s.genes.iter().zip(&o.genes) {
                        assert_eq!(
                            h,
                            hash_refs[g].as_str().unwrap(),
                            "hashlib sha256[:10] of {g}"
                        );
                    }
                }
                Ablation::HashInstance => {
                    assert_eq!(o.genes.len(), s.genes.len());
                    for h in &o.genes {
                        assert!(
                            h.len() == 10
                                && h.chars()
                                    .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
                        );
                    }
                }
                Ablation::ShuffleAll => assert_eq!(sorted(&o.genes), sorted(&s.genes)),
                Ablation::ShuffleInContext => {
                    assert_eq!(sorted(&o.genes[..k]), sorted(&s.genes[..k]));
                    assert_eq!(o.genes[k..], s.genes[k..]);
                }
                Ablation::ShuffleTop10 => {
                    let m = ablation::top10_len(k);
                    assert_eq!(m, k.div_ceil(10).max(2));
                    assert_eq!(sorted(&o.genes[..m]), sorted(&s.genes[..m]));
                    assert_eq!(o.genes[m..], s.genes[m..]);
                }
                Ablation::HashShuffleInContext => {
                    let hashed: Vec<String> = s
                        .genes
                        .iter()
                        .map(|g| hash_refs[g].as_str().unwrap().to_string())
                        .collect();
                    let kh = genes_in_context(&s.prefix, &hashed, &c);
                    assert_eq!(sorted(&o.genes[..kh]), sorted(&hashed[..kh]));
                    assert_eq!(o.genes[kh..], hashed[kh..]);
                }
                Ablation::Shorten(p) => {
                    let r = ((k * p as usize) as f64 / 100.0).round().max(1.0) as usize;
                    assert_eq!(o.genes.len(), r, "shorten:{p} of k={k}");
                    assert_eq!(o.genes[..], s.genes[..r]);
                }
            }
        }
        // a different seed changes the random ablations (for at least one of the 10 cells)
        let other = run(a, SEED + 1);
        let idx = match a {
            Ablation::HashInstance => Some(0),
            Ablation::ShuffleAll => Some(1),
            Ablation::ShuffleInContext => Some(2),
            Ablation::HashShuffleInContext => Some(3),
            Ablation::ShuffleTop10 => {
                assert_ne!(out, other, "{a}");
                None
            }
            _ => {
                assert_eq!(out, other, "{a} does not depend on the seed");
                None
            }
        };
        if let Some(ix) = idx {
            any_shuffle_differs[ix] = out.iter().zip(&other).all(|(x, y)| x != y);
        }
    }
    assert_eq!(
        any_shuffle_differs, [true; 4],
        "every cell changes with the seed"
    );
    // hash-instance differs from hash and repeats no token within a cell
    let hi = run(Ablation::HashInstance, SEED);
    let h = run(Ablation::Hash, SEED);
    for (x, y) in hi.iter().zip(&h) {
        assert!(x.genes.iter().zip(&y.genes).all(|(a, b)| a != b));
    }
    // counter-dependent ablations need a counter
    assert!(ablation::apply_all(&src, &Ablation::ShuffleInContext, SEED, None).is_err());
    assert!(ablation::apply(&src[0], &Ablation::Shorten(10), SEED, 0, None).is_err());
    assert!(ablation::apply(&src[0], &Ablation::ShuffleAll, SEED, 0, None).is_ok());
}

#[test]
fn ablation_parser() {
    let cases = [
        ("hash", Ablation::Hash),
        ("hash-instance", Ablation::HashInstance),
        ("shuffle-all", Ablation::ShuffleAll),
        ("shuffle-in-context", Ablation::ShuffleInContext),
        ("shuffle-top10", Ablation::ShuffleTop10),
        ("hash+shuffle-in-context", Ablation::HashShuffleInContext),
        ("shorten:10", Ablation::Shorten(10)),
        ("shorten:20", Ablation::Shorten(20)),
        ("shorten:50", Ablation::Shorten(50)),
        ("none", Ablation::None),
    ];
    for (s, a) in cases {
        assert_eq!(s.parse::<Ablation>().unwrap(), a);
        assert_eq!(a.to_string(), s);
    }
    for bad in [
        "shorten",
        "shorten:0",
        "shorten:x",
        "shuffle",
        "hash+shuffle",
        "",
    ] {
        let e = bad.parse::<Ablation>().unwrap_err().to_string();
        assert!(
            e.contains("valid values")
                && e.contains("hash+shuffle-in-context")
                && e.contains("shorten:50"),
            "{e}"
        );
    }
}

#[test]
fn ablation_goldens() {
    let f = fixture();
    let c = counter(MAX_LEN);
    let src = golden_sentences(&f);
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in Ablation::protocol() {
        let out = ablation::apply_all(&src, &a, SEED, Some(&c)).unwrap();
        got.insert(a.to_string(), out.into_iter().map(|s| s.text).collect());
    }
    let cfg = SentenceConfig {
        ties: Ties::Shuffle { seed: SEED },
        max_genes: Some(GOLDEN_MAX_GENES),
        ..Default::default()
    };
    let ties = build_sentences(&f.x, &f.cells, &f.genes, &cfg).unwrap();
    got.insert(
        "ties-shuffle".into(),
        ties.into_iter().take(10).map(|s| s.text).collect(),
    );
    let golden = serde_json::json!({
        "note": "Produced by tests/cells_logic.rs (CELLTEXT_BLESS=1): the Rust code defines the RNG. \
                 First 10 fixture cells, GenePT-s prefix, max_genes 80, seed 42, all-MiniLM-L6-v2 \
                 tokenizer with max_len 128.",
        "cell_ids": src.iter().map(|s| s.cell_id.clone()).collect::<Vec<_>>(),
        "texts": got,
    });
    let path = dir().join("golden_ablations.json");
    if std::env::var_os("CELLTEXT_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&golden).unwrap() + "\n").unwrap();
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("golden file; run with CELLTEXT_BLESS=1 once"),
    )
    .unwrap();
    assert_eq!(want["cell_ids"], golden["cell_ids"]);
    for (name, texts) in want["texts"].as_object().unwrap() {
        assert_eq!(&golden["texts"][name], texts, "golden mismatch for {name}");
    }
    assert_eq!(
        want["texts"].as_object().unwrap().len(),
        golden["texts"].as_object().unwrap().len()
    );
}
