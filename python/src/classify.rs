//! Cosine KNN on an embedding (`celltext classify --method knn`: the same labels, stratified
//! split, fit and vote) and the classification metrics on label arrays.

use std::collections::BTreeSet;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use celltext::cells::matrix::is_missing_label;
use celltext::choice::parse_choice as parse_value;
use celltext::classify::features::gather_rows;
use celltext::classify::knn::{knn_loo, CosineKnn, Vote};
use celltext::classify::mlp::{Fusion, MlpConfig, Source, TrainedMlp};
use celltext::classify::split::stratified_split;
use celltext::eval::metrics::ClassificationReport;

use crate::guard;

/// Class names (sorted distinct non-missing labels) and each cell's class (`None`: missing).
fn classes(labels: &[String]) -> (Vec<String>, Vec<Option<usize>>) {
    let names: Vec<String> = labels
        .iter()
        .filter(|l| !is_missing_label(l))
        .map(|l| l.trim().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let y = labels
        .iter()
        .map(|l| {
            if is_missing_label(l) {
                None
            } else {
                names.binary_search(&l.trim().to_string()).ok()
            }
        })
        .collect();
    (names, y)
}

/// The CLI's labels and split: class names, each cell's class, labelled train and test cells
/// (cell indices, ascending).
struct Labelled {
    names: Vec<String>,
    y: Vec<Option<usize>>,
    train: Vec<usize>,
    test: Vec<usize>,
}

fn labelled_split(
    labels: &[String],
    label_key: &str,
    n: usize,
    test_fraction: f64,
    seed: u64,
) -> anyhow::Result<Labelled> {
    anyhow::ensure!(
        labels.len() == n,
        "obs['{label_key}'] has {} values but the embedding has {n} rows",
        labels.len()
    );
    let (names, y) = classes(labels);
    anyhow::ensure!(
        names.len() >= 2,
        "obs['{label_key}'] has {} distinct non-empty labels; classification needs at least 2",
        names.len()
    );
    let labelled: Vec<usize> = (0..n).filter(|&i| y[i].is_some()).collect();
    let y_lab: Vec<usize> = labelled.iter().filter_map(|&i| y[i]).collect();
    let s = stratified_split(&y_lab, &names, test_fraction, seed)?;
    anyhow::ensure!(
        !s.test.is_empty(),
        "no test cells: every class has fewer than 2 labelled cells"
    );
    Ok(Labelled {
        train: s.train.iter().map(|&i| labelled[i]).collect(),
        test: s.test.iter().map(|&i| labelled[i]).collect(),
        names,
        y,
    })
}

/// Predicted labels and split names of all cells, and the test report as JSON.
fn finish(
    l: &Labelled,
    pred: &[usize],
    n: usize,
) -> anyhow::Result<(Vec<String>, Vec<String>, String)> {
    let mut split = vec!["unlabeled".to_string(); n];
    for &i in &l.train {
        split[i] = "train".into();
    }
    for &i in &l.test {
        split[i] = "test".into();
    }
    let y_test: Vec<usize> = l.test.iter().filter_map(|&i| l.y[i]).collect();
    let p_test: Vec<usize> = l.test.iter().map(|&i| pred[i]).collect();
    let report = ClassificationReport::new(&y_test, &p_test, &l.names)?;
    let pred = pred.iter().map(|&p| l.names[p].clone()).collect();
    Ok((pred, split, serde_json::to_string(&report)?))
}

/// KNN: stratified split of the labelled cells (seeded), fit on train, predict test and
/// unlabelled cells, leave-one-out for train cells. Returns (predicted labels, confidences,
/// split names, report JSON of the test cells).
#[pyfunction]
#[pyo3(signature = (x, labels, label_key, k=10, vote="majority", test_fraction=0.2, seed=0))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn knn_classify<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    labels: Vec<String>,
    label_key: &str,
    k: usize,
    vote: &str,
    test_fraction: f64,
    seed: u64,
) -> PyResult<(Vec<String>, Bound<'py, PyArray1<f32>>, Vec<String>, String)> {
    let (n, dim) = (x.shape()[0], x.shape()[1]);
    let data = x.as_slice()?;
    let (pred, conf, split, report) = py.allow_threads(|| {
        guard(|| {
            let vote = parse_value::<Vote>("vote", vote, true)?;
            let l = labelled_split(&labels, label_key, n, test_fraction, seed)?;
            let train_x = gather_rows(data, dim, &l.train);
            let train_y: Vec<usize> = l.train.iter().filter_map(|&i| l.y[i]).collect();
            let knn = CosineKnn::fit(&train_x, l.train.len(), dim, &train_y)?;
            let mut pred = vec![0usize; n];
            let mut conf = vec![0f32; n];
            let mut is_train = vec![false; n];
            l.train.iter().for_each(|&i| is_train[i] = true);
            let others: Vec<usize> = (0..n).filter(|&i| !is_train[i]).collect();
            let qx = gather_rows(data, dim, &others);
            for (p, &i) in knn.predict(&qx, others.len(), k, vote)?.iter().zip(&others) {
                (pred[i], conf[i]) = (p.label, p.confidence);
            }
            for (p, &i) in knn_loo(&knn, &train_x, k, vote)?.iter().zip(&l.train) {
                (pred[i], conf[i]) = (p.label, p.confidence);
            }
            let (pred, split, report) = finish(&l, &pred, n)?;
            Ok((pred, conf, split, report))
        })
    })?;
    Ok((pred, conf.into_pyarray(py), split, report))
}

/// MLP (`celltext classify --method mlp`) on one or several embeddings (`fusion`: concat or
/// gated): the same split, training and prediction. Returns (predicted labels, softmax
/// confidences, split names, report JSON of the test cells).
#[pyfunction]
#[pyo3(signature = (xs, labels, label_key, fusion="concat", hidden=vec![256], dropout=0.1, lr=1e-3, weight_decay=1e-2, epochs=200, patience=10, batch_size=64, val_fraction=0.1, class_weights=false, test_fraction=0.2, seed=0))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn mlp_classify<'py>(
    py: Python<'py>,
    xs: Vec<(String, PyReadonlyArray2<'py, f32>)>,
    labels: Vec<String>,
    label_key: &str,
    fusion: &str,
    hidden: Vec<usize>,
    dropout: f32,
    lr: f64,
    weight_decay: f64,
    epochs: usize,
    patience: usize,
    batch_size: usize,
    val_fraction: f32,
    class_weights: bool,
    test_fraction: f64,
    seed: u64,
) -> PyResult<(Vec<String>, Bound<'py, PyArray1<f32>>, Vec<String>, String)> {
    let n = xs.first().map(|(_, x)| x.shape()[0]).unwrap_or(0);
    let mut views = Vec::with_capacity(xs.len());
    for (name, x) in &xs {
        views.push((name.clone(), x.as_slice()?, x.shape()[0], x.shape()[1]));
    }
    let (pred, conf, split, report) = py.allow_threads(|| {
        guard(|| {
            anyhow::ensure!(
                !views.is_empty(),
                "use_rep is empty: name at least one embedding"
            );
            for (name, _, rows, _) in &views {
                anyhow::ensure!(
                    *rows == n,
                    "obsm['{name}'] has {rows} rows but obsm['{}'] has {n}",
                    views[0].0
                );
            }
            let fusion = parse_value::<Fusion>("fusion", fusion, true)?;
            let l = labelled_split(&labels, label_key, n, test_fraction, seed)?;
            let sources: Vec<Source> = views
                .iter()
                .map(|(name, data, _, dim)| Source::new(name.clone(), data, *dim))
                .collect();
            let cfg = MlpConfig {
                hidden,
                dropout,
                lr,
                weight_decay,
                max_epochs: epochs,
                patience,
                batch_size,
                val_fraction,
                class_weights,
                seed,
                // a gate on a lone source has nothing to weigh against (as the CLI)
                fusion: if sources.len() == 1 {
                    Fusion::Concat
                } else {
                    fusion
                },
            };
            let y0: Vec<usize> = l.y.iter().map(|c| c.unwrap_or(0)).collect();
            let model = TrainedMlp::fit(&sources, &y0, l.names.len(), &l.train, &cfg)?;
            let all = model.predict(&sources, &(0..n).collect::<Vec<_>>())?;
            let pred: Vec<usize> = all.iter().map(|p| p.0).collect();
            let conf: Vec<f32> = all.iter().map(|p| p.1).collect();
            let (pred, split, report) = finish(&l, &pred, n)?;
            Ok((pred, conf, split, report))
        })
    })?;
    Ok((pred, conf.into_pyarray(py), split, report))
}

/// The classification report (accuracy, F1s, kappa, per class, confusion) of string labels;
/// classes are the sorted labels of both arrays.
#[pyfunction]
fn classification_report(y_true: Vec<String>, y_pred: Vec<String>) -> PyResult<String> {
    guard(|| {
        let names: Vec<String> = y_true
            .iter()
            .chain(&y_pred)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let idx = |v: &[String]| -> Vec<usize> {
            v.iter()
                .map(|l| names.binary_search(l).unwrap_or(0))
                .collect()
        };
        let r = ClassificationReport::new(&idx(&y_true), &idx(&y_pred), &names)?;
        Ok(serde_json::to_string(&r)?)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(knn_classify, m)?)?;
    m.add_function(wrap_pyfunction!(mlp_classify, m)?)?;
    m.add_function(wrap_pyfunction!(classification_report, m)?)?;
    Ok(())
}
