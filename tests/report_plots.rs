//! Report plots and the 2-D embedding map.
//!
//! - PCA against scikit-learn (tests/fixtures/plots/pca_ref.json, written by
//!   tests/fixtures/plots/make_pca_ref.py): coordinates and components within 1e-4 after the
//!   sign convention (largest-|loading| positive), explained-variance ratio within 1e-6,
//!   explained variance and mean within 1e-6 relative.
//! - Neighbour preservation: PCA of perfectly separable clusters scores > 0.9; random labels
//!   score near chance.
//! - Every plot writes a 900 × 700 PNG (signature, size, decoded here with flate2 to check it
//!   is not blank) and an SVG that contains the class / series / row names.
//! - Bad input is an error, not a panic.
//!
//! Set `CELLTEXT_KEEP_PLOTS=/some/dir` to keep the figures for a look.

use celltext::eval::embedding2d::{label_neighbour_preservation, pca_2d};
use celltext::eval::plots::{
    bar_table, confusion_heatmap, embedding_scatter, k_sweep, PlotFiles, MAX_SVG_POINTS,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/// Output directory: `$CELLTEXT_KEEP_PLOTS` if set (kept), else a temp dir (deleted).
struct OutDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn out_dir() -> OutDir {
    match std::env::var_os("CELLTEXT_KEEP_PLOTS") {
        Some(p) => {
            let path = PathBuf::from(p);
            std::fs::create_dir_all(&path).unwrap();
            OutDir { path, _tmp: None }
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            OutDir {
                path: t.path().to_path_buf(),
                _tmp: Some(t),
            }
        }
    }
}

struct Png {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

/// Minimal PNG decoder (8-bit RGB / RGBA, not interlaced: what plotters writes).
fn decode_png(bytes: &[u8]) -> Png {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("unexpected PNG colour type {other}"),
                };
                assert_eq!(data[12], 0, "interlaced PNG");
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width as usize * channels;
    assert_eq!(
        raw.len(),
        height as usize * (stride + 1),
        "decompressed size"
    );
    let mut img = vec![0u8; height as usize * stride];
    for y in 0..height as usize {
        let filter = raw[y * (stride + 1)];
        let src = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                img[y * stride + x - channels] as i32
            } else {
                0
            };
            let b = if y > 0 {
                img[(y - 1) * stride + x] as i32
            } else {
                0
            };
            let c = if x >= channels && y > 0 {
                img[(y - 1) * stride + x - channels] as i32
            } else {
                0
            };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("bad PNG filter {f}"),
            };
            img[y * stride + x] = (src[x] as i32 + pred) as u8;
        }
    }
    let pixels = img
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Png {
        width,
        height,
        pixels,
    }
}

/// Checks both files of a plot; returns the SVG text.
fn check_files(files: &PlotFiles, stem: &Path) -> String {
    assert_eq!(files.png, PathBuf::from(format!("{}.png", stem.display())));
    assert_eq!(files.svg, PathBuf::from(format!("{}.svg", stem.display())));
    let bytes = std::fs::read(&files.png).unwrap();
    assert!(
        bytes.len() > 8 * 1024,
        "{}: only {} bytes",
        files.png.display(),
        bytes.len()
    );
    let png = decode_png(&bytes);
    assert_eq!((png.width, png.height), (900, 700));
    let non_white = png.pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    let frac = non_white as f64 / png.pixels.len() as f64;
    assert!(
        frac > 0.01,
        "{}: only {:.2} % non-white pixels",
        files.png.display(),
        100.0 * frac
    );
    let mut distinct: Vec<[u8; 3]> = png.pixels.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() >= 16,
        "{}: only {} distinct colours",
        files.png.display(),
        distinct.len()
    );
    // No temp files of this plot left behind (other tests may share the directory).
    let dir = files.png.parent().unwrap();
    let base = stem.file_name().unwrap().to_string_lossy().to_string();
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !(name.starts_with(&format!(".{base}.")) && name.contains(".tmp")),
            "temp file left behind: {name}"
        );
    }
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(svg.starts_with("<svg"), "SVG header");
    assert!(svg.trim_end().ends_with("</svg>"), "SVG footer");
    assert!(svg.contains("font-family=\"sans-serif\""));
    svg
}

fn pbmc_names() -> Vec<String> {
    [
        "B",
        "CD14+ Mono",
        "CD8 T",
        "DC",
        "FCGR3A+ Mono",
        "Memory CD4 T",
        "NK",
        "Naive CD4 T",
        "Platelet",
        "Plasmacytoid dendritic cell (pDC), interferon-high subset",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Gaussian-ish clusters: `k` classes, `per` points each, in `dim` dimensions, centres
/// `sep` apart on average, unit-ish noise scaled by `noise`.
fn clusters(
    k: usize,
    per: usize,
    dim: usize,
    sep: f64,
    noise: f64,
    seed: u64,
) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..dim).map(|_| rng.gen_range(-sep..sep)).collect())
        .collect();
    let mut x = Vec::with_capacity(k * per * dim);
    let mut labels = Vec::with_capacity(k * per);
    for i in 0..k * per {
        let c = i % k;
        for d in 0..dim {
            let u: f64 =
                rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0);
            x.push((centres[c][d] + noise * u) as f32);
        }
        labels.push(c);
    }
    (x, labels)
}

// ---------------------------------------------------------------------------------------
// font assets
// ---------------------------------------------------------------------------------------

#[test]
fn font_and_licence_are_committed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ttf = std::fs::read(root.join("assets/fonts/DejaVuSans.ttf")).unwrap();
    assert!(ttf.len() > 100_000);
    assert_eq!(&ttf[..4], &[0, 1, 0, 0], "TrueType header");
    let lic = std::fs::read_to_string(root.join("assets/fonts/LICENSE-DejaVu.txt")).unwrap();
    assert!(lic.contains("Bitstream"));
    celltext::eval::plots::ensure_font().unwrap();
    celltext::eval::plots::ensure_font().unwrap();
}

// ---------------------------------------------------------------------------------------
// PCA
// ---------------------------------------------------------------------------------------

#[test]
fn pca_matches_sklearn() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/plots/pca_ref.json"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let n = r["n"].as_u64().unwrap() as usize;
    let dim = r["dim"].as_u64().unwrap() as usize;
    let f64s = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let x: Vec<f32> = f64s(&r["x"]).into_iter().map(|v| v as f32).collect();
    assert_eq!(x.len(), n * dim);
    let pca = pca_2d(&x, n, dim).unwrap();

    let ratio = f64s(&r["explained_variance_ratio"]);
    let var = f64s(&r["explained_variance"]);
    for c in 0..2 {
        assert!(
            (pca.explained_variance_ratio[c] - ratio[c]).abs() < 1e-6,
            "ratio {c}: {} vs {}",
            pca.explained_variance_ratio[c],
            ratio[c]
        );
        assert!(
            (pca.explained_variance[c] - var[c]).abs() < 1e-6 * var[c],
            "variance {c}"
        );
    }
    for (a, b) in pca.mean.iter().zip(f64s(&r["mean"])) {
        assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "mean {a} vs {b}");
    }
    let comps = r["components"].as_array().unwrap();
    for c in 0..2 {
        for (a, b) in pca.components[c].iter().zip(f64s(&comps[c])) {
            assert!((a - b).abs() < 1e-4, "component {c}: {a} vs {b}");
        }
    }
    let coords = r["coords"].as_array().unwrap();
    assert_eq!(pca.coords.len(), n);
    let mut worst = 0.0f64;
    for (i, want) in coords.iter().enumerate() {
        let want = f64s(want);
        for c in 0..2 {
            worst = worst.max((pca.coords[i][c] as f64 - want[c]).abs());
        }
    }
    assert!(worst < 1e-4, "max coordinate error {worst}");
    assert_eq!(
        pca.method_note(),
        format!(
            "PCA (explained variance {:.1} %, {:.1} %)",
            100.0 * ratio[0],
            100.0 * ratio[1]
        )
    );
}

#[test]
fn pca_sign_convention_and_degenerate_cases() {
    // Data along (1, -3, 0.5) mostly, then (0, 0.1, 1): loadings dominated by -3 → flipped.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut x = Vec::new();
    for _ in 0..100 {
        let a: f64 = rng.gen_range(-5.0..5.0);
        let b: f64 = rng.gen_range(-1.0..1.0);
        x.extend_from_slice(&[a as f32, (-3.0 * a + 0.1 * b) as f32, (0.5 * a + b) as f32]);
    }
    let pca = pca_2d(&x, 100, 3).unwrap();
    for comp in &pca.components {
        let big = comp
            .iter()
            .cloned()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        assert!(big > 0.0, "{comp:?}");
        let norm: f64 = comp.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-12);
    }
    assert!(pca.components[0][1] > 0.9);
    assert!(pca.explained_variance_ratio[0] > pca.explained_variance_ratio[1]);

    // Constant data: no variance, ratios 0, coordinates 0.
    let pca = pca_2d(&[1.0; 12], 4, 3).unwrap();
    assert_eq!(pca.explained_variance_ratio, [0.0, 0.0]);
    assert!(pca.coords.iter().all(|p| p[0] == 0.0 && p[1] == 0.0));

    // Errors, not panics.
    assert!(pca_2d(&[], 0, 5).is_err());
    assert!(pca_2d(&[1.0, 2.0], 1, 2).is_err());
    assert!(pca_2d(&[1.0, 2.0, 3.0], 3, 1).is_err());
    assert!(pca_2d(&[1.0; 7], 2, 4).is_err());
    let err = pca_2d(&[1.0, 2.0, f32::NAN, 4.0], 2, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 1, column 0"), "{err}");
}

#[test]
fn pca_keeps_separable_clusters_apart() {
    let (x, labels) = clusters(8, 60, 96, 4.0, 0.3, 11);
    let pca = pca_2d(&x, labels.len(), 96).unwrap();
    let score = label_neighbour_preservation(&pca.coords, &labels, 10).unwrap();
    assert!(score > 0.9, "PCA neighbour preservation {score}");

    // Negative control: the same map with shuffled labels scores near chance (1/8).
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let shuffled: Vec<usize> = labels.iter().map(|_| rng.gen_range(0..8)).collect();
    let chance = label_neighbour_preservation(&pca.coords, &shuffled, 10).unwrap();
    assert!(chance < 0.3, "shuffled labels scored {chance}");
}

#[test]
fn neighbour_preservation_hand_cases() {
    // Two tight pairs far apart: each point's nearest neighbour shares its label.
    let coords = [[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.0, 10.1]];
    assert_eq!(
        label_neighbour_preservation(&coords, &[0, 0, 1, 1], 1).unwrap(),
        1.0
    );
    // k = 2: one of the two neighbours is across the gap for every point.
    assert_eq!(
        label_neighbour_preservation(&coords, &[0, 0, 1, 1], 2).unwrap(),
        0.5
    );
    // Alternating labels along a line: nearest neighbours always differ.
    let line: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, 0.0]).collect();
    let alt: Vec<usize> = (0..10).map(|i| i % 2).collect();
    assert_eq!(label_neighbour_preservation(&line, &alt, 1).unwrap(), 0.0);

    assert!(label_neighbour_preservation(&[], &[], 1).is_err());
    assert!(label_neighbour_preservation(&coords, &[0, 0, 1], 1).is_err());
    assert!(label_neighbour_preservation(&coords, &[0, 0, 1, 1], 0).is_err());
    assert!(label_neighbour_preservation(&coords, &[0, 0, 1, 1], 4).is_err());
    assert!(label_neighbour_preservation(&[[0.0, f32::NAN], [1.0, 1.0]], &[0, 1], 1).is_err());
}

// ---------------------------------------------------------------------------------------
// plots
// ---------------------------------------------------------------------------------------

fn synthetic_confusion(names: &[String], seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<usize>>) {
    let n = names.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut counts = vec![vec![0usize; n]; n];
    for (i, row) in counts.iter_mut().enumerate() {
        let support = rng.gen_range(20..1500);
        for _ in 0..support {
            let j = if rng.gen_bool(0.8) {
                i
            } else if rng.gen_bool(0.5) {
                (i + 1) % n
            } else {
                rng.gen_range(0..n)
            };
            row[j] += 1;
        }
    }
    let norm = counts
        .iter()
        .map(|r| {
            let s: usize = r.iter().sum();
            r.iter().map(|&c| c as f64 / s as f64).collect()
        })
        .collect();
    (norm, counts)
}

#[test]
fn confusion_heatmap_writes_png_and_svg() {
    let out = out_dir();
    let names = pbmc_names();
    let (norm, counts) = synthetic_confusion(&names, 3);
    let stem = out.path.join("confusion");
    let files = confusion_heatmap(
        &stem,
        &norm,
        &counts,
        &names,
        "pbmc3k — MiniLM + cosine KNN (k = 15)",
    )
    .unwrap();
    let svg = check_files(&files, &stem);
    for name in &names[..9] {
        assert!(
            svg.contains(&name.replace('&', "&amp;")),
            "SVG lacks class name {name}"
        );
    }
    assert!(
        svg.contains("Plasmacytoid"),
        "long name (truncated) missing"
    );
    assert!(svg.contains(">\npredicted") || svg.contains("predicted"));
    assert!(svg.contains("true"));

    // Many classes: labels shrink, annotations drop out, still valid.
    let many: Vec<String> = (0..45).map(|i| format!("cell type number {i}")).collect();
    let (norm, counts) = synthetic_confusion(&many, 4);
    let stem = out.path.join("confusion_many");
    let files = confusion_heatmap(&stem, &norm, &counts, &many, "45 classes").unwrap();
    check_files(&files, &stem);

    // One class.
    let stem = out.path.join("confusion_one");
    confusion_heatmap(
        &stem,
        &[vec![1.0]],
        &[vec![7]],
        &["only".to_string()],
        "one class",
    )
    .unwrap();
}

#[test]
fn confusion_heatmap_rejects_bad_input() {
    let out = out_dir();
    let stem = out.path.join("bad");
    let names: Vec<String> = vec!["a".into(), "b".into()];
    let m = vec![vec![1.0, 0.0], vec![0.5, 0.5]];
    let c = vec![vec![3, 0], vec![1, 1]];
    assert!(confusion_heatmap(&stem, &m, &c, &[], "t").is_err());
    assert!(confusion_heatmap(&stem, &m[..1], &c, &names, "t").is_err());
    assert!(confusion_heatmap(&stem, &m, &c[..1], &names, "t").is_err());
    assert!(confusion_heatmap(&stem, &[vec![1.0], vec![0.5, 0.5]], &c, &names, "t").is_err());
    assert!(confusion_heatmap(&stem, &m, &[vec![3, 0], vec![1]], &names, "t").is_err());
    assert!(confusion_heatmap(
        &stem,
        &[vec![1.0, 0.0], vec![f64::NAN, 0.5]],
        &c,
        &names,
        "t"
    )
    .is_err());
    assert!(confusion_heatmap(&stem, &[vec![3.0, 0.0], vec![1.0, 1.0]], &c, &names, "t").is_err());
    assert!(!out.path.join("bad.png").exists() && !out.path.join("bad.svg").exists());
}

#[test]
fn embedding_scatter_of_pca_writes_png_and_svg() {
    let out = out_dir();
    let names = pbmc_names();
    let (x, labels) = clusters(names.len(), 150, 64, 2.0, 0.8, 21);
    let pca = pca_2d(&x, labels.len(), 64).unwrap();
    let stem = out.path.join("scatter");
    let files = embedding_scatter(
        &stem,
        &pca.coords,
        &labels,
        &names,
        "pbmc3k cell embeddings",
        &pca.method_note(),
    )
    .unwrap();
    let svg = check_files(&files, &stem);
    for name in &names[..9] {
        assert!(svg.contains(name.as_str()), "SVG lacks class name {name}");
    }
    assert!(svg.contains("PCA (explained variance"));
    assert!(svg.contains("PC1") && svg.contains("PC2"));

    // 30 classes: colours cycle with a second marker shape; legend gets two columns or
    // a smaller font, still inside the figure.
    let many: Vec<String> = (0..30).map(|i| format!("type {i:02}")).collect();
    let (x, labels) = clusters(30, 40, 32, 3.0, 0.5, 22);
    let pca = pca_2d(&x, labels.len(), 32).unwrap();
    let stem = out.path.join("scatter_many");
    let files = embedding_scatter(
        &stem,
        &pca.coords,
        &labels,
        &many,
        "30 classes",
        &pca.method_note(),
    )
    .unwrap();
    let svg = check_files(&files, &stem);
    assert!(svg.contains("type 29"));
    assert!(svg.contains("<polygon"), "classes 25+ should use triangles");
}

#[test]
fn embedding_scatter_caps_svg_points() {
    let out = out_dir();
    let n = MAX_SVG_POINTS + 500;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let coords: Vec<[f32; 2]> = (0..n)
        .map(|i| {
            [
                rng.gen_range(-1.0..1.0) + (i % 3) as f32 * 3.0,
                rng.gen_range(-1.0..1.0),
            ]
        })
        .collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let names: Vec<String> = vec!["x".into(), "y".into(), "z".into()];
    let stem = out.path.join("scatter_big");
    let files = embedding_scatter(&stem, &coords, &labels, &names, "big", "some 2-D map").unwrap();
    let svg = check_files(&files, &stem);
    let circles = svg.matches("<circle").count();
    assert!(circles <= MAX_SVG_POINTS + 10, "{circles} circles");
    assert!(svg.contains("SVG shows a random"));
    assert!(svg.contains("dim 1"));
}

#[test]
fn embedding_scatter_rejects_bad_input() {
    let out = out_dir();
    let stem = out.path.join("bad");
    let names: Vec<String> = vec!["a".into(), "b".into()];
    let coords = [[0.0f32, 0.0], [1.0, 1.0]];
    assert!(embedding_scatter(&stem, &[], &[], &names, "t", "").is_err());
    assert!(embedding_scatter(&stem, &coords, &[0], &names, "t", "").is_err());
    assert!(embedding_scatter(&stem, &coords, &[0, 2], &names, "t", "").is_err());
    assert!(embedding_scatter(&stem, &coords, &[0, 1], &[], "t", "").is_err());
    assert!(embedding_scatter(
        &stem,
        &[[0.0, f32::INFINITY], [1.0, 1.0]],
        &[0, 1],
        &names,
        "t",
        ""
    )
    .is_err());
    assert!(!out.path.join("bad.png").exists());
}

#[test]
fn k_sweep_writes_png_and_svg() {
    let out = out_dir();
    let ks = [1usize, 3, 5, 10, 15, 20, 30, 50, 100];
    let acc: Vec<f64> = ks
        .iter()
        .map(|&k| 0.80 + 0.05 * (k as f64).ln().min(3.0) / 3.0 - 0.0004 * k as f64)
        .collect();
    let f1: Vec<f64> = acc.iter().map(|a| a - 0.03).collect();
    let series = vec![
        ("accuracy".to_string(), acc),
        ("weighted F1".to_string(), f1),
    ];
    let stem = out.path.join("k_sweep");
    let files = k_sweep(
        &stem,
        &ks,
        &series,
        "score",
        "cosine KNN on pbmc3k: score vs k",
    )
    .unwrap();
    let svg = check_files(&files, &stem);
    assert!(svg.contains("accuracy") && svg.contains("weighted F1"));
    assert!(svg.contains("k (log scale)"));
    for k in ["1", "10", "100"] {
        assert!(
            svg.contains(&format!(">\n{k}\n<")) || svg.contains(&format!(">{k}<")),
            "tick {k} missing"
        );
    }

    // Unsorted ks are sorted with their values; a single k works.
    let stem = out.path.join("k_sweep_one");
    k_sweep(
        &stem,
        &[7],
        &[("acc".to_string(), vec![0.5])],
        "accuracy",
        "one k",
    )
    .unwrap();
    let stem = out.path.join("k_sweep_unsorted");
    k_sweep(
        &stem,
        &[10, 1, 5],
        &[("acc".to_string(), vec![0.9, 0.7, 0.8])],
        "accuracy",
        "unsorted",
    )
    .unwrap();
}

#[test]
fn k_sweep_rejects_bad_input() {
    let out = out_dir();
    let stem = out.path.join("bad");
    let s = vec![("acc".to_string(), vec![0.5, 0.6])];
    assert!(k_sweep(&stem, &[], &[], "m", "t").is_err());
    assert!(k_sweep(&stem, &[1, 2], &[], "m", "t").is_err());
    assert!(k_sweep(&stem, &[1, 2, 3], &s, "m", "t").is_err());
    assert!(k_sweep(&stem, &[0, 2], &s, "m", "t").is_err());
    assert!(k_sweep(&stem, &[2, 2], &s, "m", "t").is_err());
    assert!(k_sweep(
        &stem,
        &[1, 2],
        &[("acc".to_string(), vec![0.5, f64::NAN])],
        "m",
        "t"
    )
    .is_err());
    assert!(!out.path.join("bad.png").exists());
}

#[test]
fn bar_table_writes_png_and_svg() {
    let out = out_dir();
    let rows: Vec<(String, f64, f64)> = vec![
        (
            "MiniLM mean-pool + cosine KNN (k = 15)".to_string(),
            0.874,
            0.012,
        ),
        ("MiniLM CLS + cosine KNN".to_string(), 0.851, 0.018),
        (
            "gene-embedding weighted average + KNN".to_string(),
            0.902,
            0.009,
        ),
        (
            "gene-embedding weighted average + MLP, 2 hidden layers, dropout 0.1, 200 epochs"
                .to_string(),
            0.915,
            0.007,
        ),
        ("fusion (text + expression)".to_string(), 0.931, 0.006),
        ("random baseline".to_string(), 0.112, 0.0),
    ];
    let stem = out.path.join("bars");
    let files = bar_table(
        &stem,
        &rows,
        "weighted F1",
        "5-fold cross-validation on pbmc3k",
    )
    .unwrap();
    let svg = check_files(&files, &stem);
    for (name, _, _) in &rows[..3] {
        assert!(svg.contains(name.as_str()), "SVG lacks row {name}");
    }
    assert!(svg.contains("0.874 ± 0.012"));
    assert!(svg.contains("weighted F1 (mean ± sd)"));

    // Negative means and many rows.
    let rows: Vec<(String, f64, f64)> = (0..40)
        .map(|i| (format!("experiment {i}"), (i as f64 - 10.0) / 30.0, 0.05))
        .collect();
    let stem = out.path.join("bars_many");
    let files = bar_table(&stem, &rows, "Δ accuracy", "40 rows, some negative").unwrap();
    check_files(&files, &stem);
}

#[test]
fn bar_table_rejects_bad_input() {
    let out = out_dir();
    let stem = out.path.join("bad");
    assert!(bar_table(&stem, &[], "m", "t").is_err());
    assert!(bar_table(&stem, &[("a".to_string(), f64::NAN, 0.1)], "m", "t").is_err());
    assert!(bar_table(&stem, &[("a".to_string(), 0.5, -0.1)], "m", "t").is_err());
    assert!(bar_table(&stem, &[("a".to_string(), 0.5, f64::INFINITY)], "m", "t").is_err());
    assert!(!out.path.join("bad.png").exists());
}
