//! Classification metrics, clustering scores, k-means, cosine KNN and splits against
//! scikit-learn references (tests/fixtures/metrics/refs.json, written by
//! tests/fixtures/metrics/make_metrics_refs.py) and hand-computed cases.
//!
//! Tolerances:
//! - classification metrics: 1e-12 absolute (f64; only summation order can differ);
//! - silhouette (cosine), Calinski-Harabasz, Davies-Bouldin: 1e-5 relative (f32 inputs, f64
//!   arithmetic; scikit-learn uses pairwise-distance formulas with different rounding);
//! - ARI, NMI: 1e-10 absolute;
//! - KNN predicted labels and neighbour indices: exact; vote confidences 1e-6 (f32 output);
//!   neighbour cosine distances 1e-5 (f32 dot products vs scikit-learn's f64);
//! - k-means on well-separated blobs: ARI exactly 1.0, inertia within 1e-4 relative of
//!   scikit-learn's `KMeans(n_init=10, random_state=0)`.

use celltext::classify::knn::{CosineKnn, Prediction, Vote};
use celltext::classify::split::{
    split_from_column, stratified_kfold, stratified_split, DEFAULT_TEST_FRACTION,
};
use celltext::eval::clustering::{
    adjusted_rand_index, calinski_harabasz, davies_bouldin, kmeans, normalized_mutual_info,
    silhouette_cosine, EmbeddingQuality, KMeansConfig,
};
use celltext::eval::metrics::ClassificationReport;
use serde_json::Value;
use std::sync::OnceLock;

fn refs() -> &'static Value {
    static REFS: OnceLock<Value> = OnceLock::new();
    REFS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metrics/refs.json"
        );
        let text = std::fs::read_to_string(path).expect("read refs.json");
        serde_json::from_str(&text).expect("parse refs.json")
    })
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}
fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn close_abs(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, sklearn {want}, |diff| > {tol}"
    );
}
fn close_rel(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1e-300),
        "{what}: got {got}, sklearn {want}, relative diff > {tol}"
    );
}

const CLS_TOL: f64 = 1e-12;

#[test]
fn classification_report_matches_sklearn() {
    let cases = refs()["classification"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let y_true = usizes(&c["y_true"]);
        let y_pred = usizes(&c["y_pred"]);
        let names = strings(&c["class_names"]);
        let r = if c["labels"].is_null() {
            ClassificationReport::new(&y_true, &y_pred, &names).unwrap()
        } else {
            ClassificationReport::with_labels(&y_true, &y_pred, &names, &usizes(&c["labels"]))
                .unwrap()
        };
        let e = &c["expected"];
        assert_eq!(r.labels, usizes(&e["labels"]), "{name}: labels");
        close_abs(
            &format!("{name} accuracy"),
            r.accuracy,
            e["accuracy"].as_f64().unwrap(),
            CLS_TOL,
        );
        let (p, rc, f, s) = (
            f64s(&e["precision"]),
            f64s(&e["recall"]),
            f64s(&e["f1"]),
            usizes(&e["support"]),
        );
        assert_eq!(r.per_class.len(), p.len(), "{name}");
        for (i, cm) in r.per_class.iter().enumerate() {
            close_abs(
                &format!("{name} precision[{i}]"),
                cm.precision,
                p[i],
                CLS_TOL,
            );
            close_abs(&format!("{name} recall[{i}]"), cm.recall, rc[i], CLS_TOL);
            close_abs(&format!("{name} f1[{i}]"), cm.f1, f[i], CLS_TOL);
            assert_eq!(cm.support, s[i], "{name} support[{i}]");
            assert_eq!(cm.name, names[cm.label]);
        }
        let (m, w) = (f64s(&e["macro"]), f64s(&e["weighted"]));
        close_abs(&format!("{name} macro P"), r.macro_precision, m[0], CLS_TOL);
        close_abs(&format!("{name} macro R"), r.macro_recall, m[1], CLS_TOL);
        close_abs(&format!("{name} macro F1"), r.macro_f1, m[2], CLS_TOL);
        close_abs(
            &format!("{name} weighted P"),
            r.weighted_precision,
            w[0],
            CLS_TOL,
        );
        close_abs(
            &format!("{name} weighted R"),
            r.weighted_recall,
            w[1],
            CLS_TOL,
        );
        close_abs(&format!("{name} weighted F1"), r.weighted_f1, w[2], CLS_TOL);
        close_abs(
            &format!("{name} kappa"),
            r.cohen_kappa,
            e["kappa"].as_f64().unwrap(),
            CLS_TOL,
        );
        let cm: Vec<Vec<u64>> = e["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(r.confusion, cm, "{name}: confusion");
        for (i, row) in e["confusion_normalized"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            for (j, v) in f64s(row).iter().enumerate() {
                close_abs(
                    &format!("{name} cm_norm[{i}][{j}]"),
                    r.confusion_normalized[i][j],
                    *v,
                    CLS_TOL,
                );
            }
        }
        // Serialises and renders.
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"macro_f1\""));
        let md = r.to_markdown();
        assert!(md.contains("macro avg") && md.contains(&r.per_class[0].name));
    }
}

#[test]
fn classification_hand_cases() {
    let names: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
    // Predicted-only class 2: precision 0 (0 of 1 right), recall 0 (zero division → 0), support 0.
    let r = ClassificationReport::new(&[0, 0, 1, 1], &[0, 2, 1, 1], &names).unwrap();
    assert_eq!(r.labels, vec![0, 1, 2]);
    assert_eq!(
        (
            r.per_class[2].precision,
            r.per_class[2].recall,
            r.per_class[2].f1
        ),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(r.per_class[2].support, 0);
    assert_eq!(r.per_class[2].predicted, 1);
    assert_eq!(r.confusion_normalized[2], vec![0.0, 0.0, 0.0]);
    close_abs(
        "macro recall",
        r.macro_recall,
        (0.5 + 1.0 + 0.0) / 3.0,
        1e-15,
    );
    // Everyone one class in both: kappa undefined → NaN (sklearn replace_undefined_by=np.nan).
    let r = ClassificationReport::new(&[1, 1, 1], &[1, 1, 1], &names).unwrap();
    assert!(r.cohen_kappa.is_nan());
    assert_eq!(r.accuracy, 1.0);
    assert!(serde_json::to_string(&r)
        .unwrap()
        .contains("\"cohen_kappa\":null"));
}

#[test]
fn clustering_scores_match_sklearn() {
    // 1e-5 relative, see header.
    for c in refs()["clustering"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (n, dim) = (
            c["n"].as_u64().unwrap() as usize,
            c["dim"].as_u64().unwrap() as usize,
        );
        let x = f32s(&c["x"]);
        let labels = usizes(&c["labels"]);
        close_rel(
            &format!("{name} silhouette"),
            silhouette_cosine(&x, n, dim, &labels).unwrap(),
            c["silhouette_cosine"].as_f64().unwrap(),
            1e-5,
        );
        close_rel(
            &format!("{name} CH"),
            calinski_harabasz(&x, n, dim, &labels).unwrap(),
            c["calinski_harabasz"].as_f64().unwrap(),
            1e-5,
        );
        close_rel(
            &format!("{name} DB"),
            davies_bouldin(&x, n, dim, &labels).unwrap(),
            c["davies_bouldin"].as_f64().unwrap(),
            1e-5,
        );
    }
}

#[test]
fn ari_nmi_match_sklearn() {
    for p in refs()["label_pairs"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let (a, b) = (usizes(&p["a"]), usizes(&p["b"]));
        close_abs(
            &format!("{name} ARI"),
            adjusted_rand_index(&a, &b).unwrap(),
            p["ari"].as_f64().unwrap(),
            1e-10,
        );
        close_abs(
            &format!("{name} NMI"),
            normalized_mutual_info(&a, &b).unwrap(),
            p["nmi"].as_f64().unwrap(),
            1e-10,
        );
    }
}

fn blobs() -> (&'static Value, Vec<f32>, usize, usize, Vec<usize>) {
    let c = &refs()["clustering"][0];
    assert_eq!(c["name"], "three_blobs_300x16");
    (
        c,
        f32s(&c["x"]),
        c["n"].as_u64().unwrap() as usize,
        c["dim"].as_u64().unwrap() as usize,
        usizes(&c["labels"]),
    )
}

#[test]
fn kmeans_recovers_blobs_with_sklearn_inertia() {
    let (c, x, n, dim, labels) = blobs();
    let km = kmeans(&x, n, dim, &KMeansConfig::new(3, 0)).unwrap();
    assert_eq!(adjusted_rand_index(&labels, &km.labels).unwrap(), 1.0);
    close_rel(
        "inertia",
        km.inertia,
        c["kmeans_inertia"].as_f64().unwrap(),
        1e-4,
    );

    let q = EmbeddingQuality::compute(&x, n, dim, &labels, 0).unwrap();
    assert_eq!(q.n_labels, 3);
    assert_eq!(q.kmeans_ari, 1.0);
    assert_eq!(q.kmeans_nmi, 1.0);
    close_rel(
        "EQ silhouette",
        q.silhouette_cosine,
        c["silhouette_cosine"].as_f64().unwrap(),
        1e-5,
    );
    close_rel(
        "EQ CH",
        q.calinski_harabasz,
        c["calinski_harabasz"].as_f64().unwrap(),
        1e-5,
    );
    close_rel(
        "EQ DB",
        q.davies_bouldin,
        c["davies_bouldin"].as_f64().unwrap(),
        1e-5,
    );
}

#[test]
fn kmeans_is_deterministic_across_thread_counts() {
    // Harder data (overlapping blobs) so restarts differ; same seed → bit-identical result,
    // whether rayon has 1 thread or 4.
    let c = &refs()["clustering"][1];
    let (n, dim) = (
        c["n"].as_u64().unwrap() as usize,
        c["dim"].as_u64().unwrap() as usize,
    );
    let x = f32s(&c["x"]);
    let cfg = KMeansConfig::new(4, 42);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| kmeans(&x, n, dim, &cfg).unwrap())
    };
    let a = run(1);
    let b = run(4);
    let c2 = kmeans(&x, n, dim, &cfg).unwrap();
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.inertia.to_bits(), b.inertia.to_bits());
    assert_eq!(a.centers, b.centers);
    assert_eq!(a.labels, c2.labels);
    assert_eq!(a.inertia.to_bits(), c2.inertia.to_bits());
}

struct KnnData {
    dim: usize,
    n_query: usize,
    knn: CosineKnn,
    query: Vec<f32>,
}

fn knn_data() -> (&'static Value, KnnData) {
    let k = &refs()["knn"];
    let dim = k["dim"].as_u64().unwrap() as usize;
    let n_train = k["n_train"].as_u64().unwrap() as usize;
    let n_query = k["n_query"].as_u64().unwrap() as usize;
    let knn = CosineKnn::fit(&f32s(&k["train_x"]), n_train, dim, &usizes(&k["train_y"])).unwrap();
    (
        k,
        KnnData {
            dim,
            n_query,
            knn,
            query: f32s(&k["query_x"]),
        },
    )
}

#[test]
fn knn_matches_sklearn() {
    let (r, d) = knn_data();
    assert!(d.n_query >= 100, "generator kept too few tie-free queries");
    // Neighbour indices, exact; distances 1e-5.
    let nb = d.knn.kneighbors(&d.query, d.n_query, 15).unwrap();
    assert_eq!(nb.indices, usizes(&r["neighbors_k15"]), "neighbour indices");
    for (s, dist) in nb
        .similarities
        .iter()
        .zip(f64s(&r["neighbor_distances_k15"]))
    {
        close_abs("neighbour distance", 1.0 - *s as f64, dist, 1e-5);
    }
    // Same neighbours, bit for bit, whatever the thread count.
    for threads in [1, 3] {
        let other = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| d.knn.kneighbors(&d.query, d.n_query, 15).unwrap());
        assert_eq!(other, nb, "{threads} threads");
    }
    let ks = usizes(&r["ks"]);
    for (vote, key) in [(Vote::Majority, "uniform"), (Vote::Distance, "distance")] {
        let sweep = d.knn.predict_sweep(&d.query, d.n_query, &ks, vote).unwrap();
        for (preds, k) in sweep.iter().zip(&ks) {
            let e = &r[key][k.to_string()];
            let labels: Vec<usize> = preds.iter().map(|p| p.label).collect();
            assert_eq!(labels, usizes(&e["pred"]), "{key} k={k} predictions");
            for (p, c) in preds.iter().zip(f64s(&e["confidence"])) {
                close_abs(
                    &format!("{key} k={k} confidence"),
                    p.confidence as f64,
                    c,
                    1e-6,
                );
            }
            // Sweep == single predict.
            assert_eq!(
                preds,
                &d.knn.predict(&d.query, d.n_query, *k, vote).unwrap()
            );
        }
    }
    assert_eq!(d.dim, d.knn.dim());
}

#[test]
fn knn_tie_goes_to_nearest_neighbours_class() {
    // Training rows at angles from the query direction (1, 0); labels chosen so that
    // k=4 gives 2 votes to class 1 and 2 votes to class 0.
    let ang = |deg: f32| {
        let r = deg.to_radians();
        [r.cos(), r.sin()]
    };
    let train: Vec<f32> = [ang(30.0), ang(5.0), ang(50.0), ang(10.0), ang(80.0)].concat();
    let labels = [0, 1, 0, 1, 2];
    let knn = CosineKnn::fit(&train, 5, 2, &labels).unwrap();
    // Query at 0°: rows 1 (5°, class 1), 3 (10°, class 1), 0 (30°, 0), 2 (50°, 0) → 2:2 tie →
    // class 1, the class of the nearest neighbour.
    let p = knn.predict(&[1.0, 0.0], 1, 4, Vote::Majority).unwrap();
    assert_eq!(
        p,
        vec![Prediction {
            label: 1,
            confidence: 0.5
        }]
    );
    // (scikit-learn would answer 0, the smallest tied label.) Query at 8°: rows 3 (10°, class 1),
    // 1 (5°, 1), 0 (30°, 0), 2 (50°, 0) → tie → class 1 again.
    let q = ang(8.0);
    let p = knn.predict(&q, 1, 4, Vote::Majority).unwrap();
    assert_eq!(p[0].label, 1);
    let nb = knn.kneighbors(&q, 1, 4).unwrap();
    assert_eq!(nb.row(0), &[3, 1, 0, 2]);
    // k=5 at 60°: rows 2 (50°,0), 4 (80°,2), 0 (30°,0), 3 (10°,1), 1 (5°,1): class 0 wins 2:2:1
    // against class 1 because row 2 is nearer than row 3.
    let p = knn.predict(&ang(60.0), 1, 5, Vote::Majority).unwrap();
    assert_eq!(
        p[0],
        Prediction {
            label: 0,
            confidence: 0.4
        }
    );
}

#[test]
fn knn_zero_vectors_do_not_make_nan() {
    // Training row 1 is zero: cosine 0 with everything.
    let train = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 1.0];
    let labels = [0, 1, 2, 3];
    let knn = CosineKnn::fit(&train, 4, 2, &labels).unwrap();
    // Zero query: all similarities 0 → neighbours in index order, no NaN anywhere.
    let nb = knn.kneighbors(&[0.0, 0.0], 1, 4).unwrap();
    assert_eq!(nb.row(0), &[0, 1, 2, 3]);
    assert!(nb.similarities.iter().all(|s| *s == 0.0));
    for vote in [Vote::Majority, Vote::Distance] {
        let p = knn.predict(&[0.0, 0.0], 1, 3, vote).unwrap();
        assert_eq!(p[0].label, 0, "{vote:?}");
        assert!(p[0].confidence.is_finite());
        assert!((p[0].confidence - 1.0 / 3.0).abs() < 1e-6);
    }
    // Query (1, 1): similarities 0.707 (row 0), 0 (row 1), −0.707 (row 2), 0.707 (row 3).
    let nb = knn.kneighbors(&[1.0, 1.0], 1, 4).unwrap();
    assert_eq!(nb.row(0), &[0, 3, 1, 2]);
    assert!(nb.similarities.iter().all(|s| s.is_finite()));
    // Exact duplicate direction: distance 0 → only that neighbour votes (sklearn rule).
    let p = knn.predict(&[2.0, 0.0], 1, 3, Vote::Distance).unwrap();
    assert_eq!(
        p[0],
        Prediction {
            label: 0,
            confidence: 1.0
        }
    );
    // Bad input is an error, not a panic.
    assert!(knn.predict(&[0.0, 0.0], 1, 5, Vote::Majority).is_err());
    assert!(knn.predict(&[0.0, f32::NAN], 1, 1, Vote::Majority).is_err());
    assert!(CosineKnn::fit(&train, 4, 2, &labels[..3]).is_err());
}

fn class_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("type_{i}")).collect()
}

#[test]
fn split_single_cell_class_goes_to_train_and_is_reported() {
    let names = class_names(4);
    // class 0: 20 cells, class 1: 3, class 2: 1 (cell 23), class 3: 2.
    let labels: Vec<usize> = [vec![0; 20], vec![1; 3], vec![2; 1], vec![3; 2]].concat();
    let s = stratified_split(&labels, &names, DEFAULT_TEST_FRACTION, 7).unwrap();
    assert_eq!(s.excluded_classes, vec!["type_2".to_string()]);
    assert!(s.train.contains(&23) && !s.test.contains(&23));
    // Every class with ≥ 2 cells is on both sides; test count = clamp(round(n·0.2), 1, n−1).
    for (c, want_test) in [(0usize, 4usize), (1, 1), (3, 1)] {
        let nt = s.test.iter().filter(|&&i| labels[i] == c).count();
        let ntr = s.train.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(nt, want_test, "class {c}");
        assert!(ntr >= 1, "class {c}");
    }
    // A partition of all cells, sorted.
    let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
    assert!(s.train.windows(2).all(|w| w[0] < w[1]) && s.test.windows(2).all(|w| w[0] < w[1]));
    assert!(s.val.is_empty());
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"excluded_classes\":[\"type_2\"]"));

    assert!(stratified_split(&labels, &names, 1.0, 7).is_err());
    assert!(stratified_split(&[0, 9], &names, 0.2, 7).is_err());
}

#[test]
fn split_determinism() {
    let names = class_names(5);
    let labels: Vec<usize> = (0..500).map(|i| (i * 3) % 5).collect(); // 100 cells per class
    let a = stratified_split(&labels, &names, 0.2, 123).unwrap();
    let b = stratified_split(&labels, &names, 0.2, 123).unwrap();
    let c = stratified_split(&labels, &names, 0.2, 124).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.test, c.test);
    assert_eq!(a.test.len(), c.test.len());
    assert_eq!(a.test.len(), 100);

    let fa = stratified_kfold(&labels, &names, 5, 1).unwrap();
    let fb = stratified_kfold(&labels, &names, 5, 1).unwrap();
    let fc = stratified_kfold(&labels, &names, 5, 2).unwrap();
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
    // Each cell is in exactly one test fold; folds balanced per class.
    let mut seen = vec![0; labels.len()];
    for f in &fa {
        assert_eq!(f.train.len() + f.test.len(), labels.len());
        assert_eq!(f.test.len(), 100);
        for &i in &f.test {
            seen[i] += 1;
        }
        for c in 0..5 {
            assert_eq!(f.test.iter().filter(|&&i| labels[i] == c).count(), 20);
        }
    }
    assert!(seen.iter().all(|&v| v == 1));
}

#[test]
fn kfold_small_classes() {
    let names = class_names(3);
    let labels = [0, 0, 0, 0, 0, 0, 1, 1, 2];
    let folds = stratified_kfold(&labels, &names, 3, 0).unwrap();
    for f in &folds {
        assert_eq!(f.excluded_classes, vec!["type_2".to_string()]);
        assert!(f.train.contains(&8));
        assert_eq!(f.test.iter().filter(|&&i| labels[i] == 0).count(), 2);
    }
    assert!(stratified_kfold(&labels, &names, 1, 0).is_err());
}

#[test]
fn split_from_column_values() {
    let s = split_from_column(&["train", "test", " Val ", "TRAIN"], "obs/split").unwrap();
    assert_eq!((s.train, s.test, s.val), (vec![0, 3], vec![1], vec![2]));
    let err = split_from_column(&["train", "validation"], "obs/split")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("obs/split") && err.contains("row 1") && err.contains("\"validation\""),
        "{err}"
    );
}

/// Timing of exact cosine KNN on 2,000 × 2,000 × 384, k = 15 (not a pass/fail check).
/// Run: cargo test --test metrics knn_timing -- --ignored --nocapture
#[test]
#[ignore]
fn knn_timing() {
    let (n, dim) = (2000usize, 384usize);
    let mut s = 12345u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let train: Vec<f32> = (0..n * dim).map(|_| next()).collect();
    let query: Vec<f32> = (0..n * dim).map(|_| next()).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
    let knn = CosineKnn::fit(&train, n, dim, &labels).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let nb = knn.kneighbors(&query, n, 15).unwrap();
        println!(
            "kneighbors: {:.3} s (first index {})",
            t.elapsed().as_secs_f64(),
            nb.indices[0]
        );
    }
}
