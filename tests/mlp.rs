//! MLP classifier and fusion (src/classify/mlp.rs): accuracy, determinism, early stopping,
//! class weights, fusion, a PyTorch cross-check (tests/fixtures/mlp) and input errors.

use std::collections::HashMap;

use celltext::classify::mlp::{balanced_class_weights, Fusion, MlpConfig, Source, TrainedMlp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// synthetic data
// ------------------------------------------------------------------------------------------

fn randn(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// `n` points, labels cycling over `k` classes, `dim`-D: class mean `means[c]`, noise N(0, sd²).
fn gaussian_blobs(means: &[Vec<f32>], labels: &[usize], sd: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let dim = means[0].len();
    let mut x = Vec::with_capacity(labels.len() * dim);
    for &l in labels {
        for j in 0..dim {
            x.push(means[l][j] + sd * randn(rng));
        }
    }
    x
}

fn random_means(k: usize, dim: usize, scale: f32, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    (0..k)
        .map(|_| (0..dim).map(|_| scale * randn(rng)).collect())
        .collect()
}

/// Every `every`-th cell to test, the rest to train.
fn split(n: usize, every: usize) -> (Vec<usize>, Vec<usize>) {
    (0..n).partition(|i| i % every != 0)
}

fn accuracy(pred: &[(usize, f32)], labels: &[usize], idx: &[usize]) -> f64 {
    let ok = idx
        .iter()
        .zip(pred)
        .filter(|(&i, p)| p.0 == labels[i])
        .count();
    ok as f64 / idx.len() as f64
}

fn recall(pred: &[(usize, f32)], labels: &[usize], idx: &[usize], class: usize) -> f64 {
    let (mut hit, mut n) = (0, 0);
    for (&i, p) in idx.iter().zip(pred) {
        if labels[i] == class {
            n += 1;
            hit += (p.0 == class) as usize;
        }
    }
    hit as f64 / n as f64
}

fn small_cfg(seed: u64) -> MlpConfig {
    MlpConfig {
        hidden: vec![32],
        max_epochs: 40,
        seed,
        ..MlpConfig::default()
    }
}

// ------------------------------------------------------------------------------------------
// (1) accuracy
// ------------------------------------------------------------------------------------------

#[test]
fn separable_gaussians_reach_high_accuracy() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let k = 4;
    let labels: Vec<usize> = (0..600).map(|i| i % k).collect();
    let means = random_means(k, 16, 1.0, &mut rng);
    let x = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let (train, test) = split(600, 5);
    let src = [Source::new("blobs", &x, 16)];
    let cfg = MlpConfig {
        seed: 3,
        ..MlpConfig::default()
    };
    let m = TrainedMlp::fit(&src, &labels, k, &train, &cfg).unwrap();
    let pred = m.predict(&src, &test).unwrap();
    let acc = accuracy(&pred, &labels, &test);
    eprintln!(
        "accuracy {acc:.3}, epochs {}, best {}",
        m.history().train_loss.len(),
        m.history().best_epoch
    );
    assert!(acc >= 0.95, "test accuracy {acc}");
    for &(c, p) in &pred {
        assert!(
            c < k && p > 1.0 / k as f32 - 1e-6 && p <= 1.0,
            "prediction ({c}, {p})"
        );
    }
    let h = m.history();
    assert_eq!(h.val_loss.len(), h.train_loss.len());
    assert_eq!(h.fit_idx.len() + h.val_idx.len(), train.len());
    assert_eq!(h.val_idx.len(), 48); // round(120 × 0.1) per class × 4
    assert!(h.gates.is_empty());
}

// ------------------------------------------------------------------------------------------
// (2) determinism
// ------------------------------------------------------------------------------------------

#[test]
fn same_seed_is_bit_identical_and_seeds_differ() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let labels: Vec<usize> = (0..300).map(|i| i % 3).collect();
    let means = random_means(3, 16, 0.7, &mut rng);
    let x = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let (train, test) = split(300, 4);
    let src = [Source::new("a", &x, 16)];
    for fusion in [Fusion::Concat, Fusion::Gated] {
        let cfg = MlpConfig {
            fusion,
            dropout: 0.3,
            batch_size: 16,
            ..small_cfg(11)
        };
        let a = TrainedMlp::fit(&src, &labels, 3, &train, &cfg).unwrap();
        let b = TrainedMlp::fit(&src, &labels, 3, &train, &cfg).unwrap();
        let (pa, pb) = (
            a.predict(&src, &test).unwrap(),
            b.predict(&src, &test).unwrap(),
        );
        let bits =
            |p: &[(usize, f32)]| p.iter().map(|&(c, v)| (c, v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&pa), bits(&pb));
        assert_eq!(a.history(), b.history());
        assert_eq!(a.weights_for_test().unwrap(), b.weights_for_test().unwrap());

        let c = TrainedMlp::fit(
            &src,
            &labels,
            3,
            &train,
            &MlpConfig {
                seed: 12,
                ..cfg.clone()
            },
        )
        .unwrap();
        let (wa, wc) = (a.weights_for_test().unwrap(), c.weights_for_test().unwrap());
        assert_ne!(wa["hidden.0.weight"], wc["hidden.0.weight"]);
        assert_ne!(a.history().val_idx, c.history().val_idx);
    }
}

#[test]
fn initial_weights_follow_torch_linear_bounds() {
    // max_epochs 1 with lr tiny: weights stay (almost) at their init.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let labels: Vec<usize> = (0..100).map(|i| i % 2).collect();
    let x: Vec<f32> = (0..100 * 20).map(|_| randn(&mut rng)).collect();
    let src = [Source::new("a", &x, 20)];
    let cfg = MlpConfig {
        hidden: vec![50],
        lr: 1e-9,
        max_epochs: 1,
        ..MlpConfig::default()
    };
    let train: Vec<usize> = (0..100).collect();
    let w = TrainedMlp::fit(&src, &labels, 2, &train, &cfg)
        .unwrap()
        .weights_for_test()
        .unwrap();
    let check = |name: &str, fan_in: usize| {
        let b = 1.0 / (fan_in as f32).sqrt();
        let v = &w[name];
        assert!(
            v.iter().all(|x| x.abs() <= b * 1.0001),
            "{name} exceeds ±{b}"
        );
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max > 0.8 * b, "{name} max |w| {max} vs bound {b}");
    };
    check("hidden.0.weight", 20);
    check("hidden.0.bias", 20);
    check("out.weight", 50);
    assert!(w["norm.0.weight"].iter().all(|&v| (v - 1.0).abs() < 1e-6));
    assert!(w["norm.0.bias"].iter().all(|&v| v.abs() < 1e-6));
}

// ------------------------------------------------------------------------------------------
// (3) early stopping
// ------------------------------------------------------------------------------------------

#[test]
fn early_stopping_restores_best_validation_epoch() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let labels: Vec<usize> = (0..80).map(|i| i % 2).collect();
    let means = vec![
        vec![0.0; 16],
        (0..16)
            .map(|j| if j % 2 == 0 { 0.5 } else { -0.5 })
            .collect(),
    ];
    let x = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let src = [Source::new("noisy", &x, 16)];
    let train: Vec<usize> = (0..80).collect();
    let cfg = MlpConfig {
        hidden: vec![256],
        dropout: 0.0,
        lr: 1e-3,
        weight_decay: 0.0,
        batch_size: 16,
        max_epochs: 500,
        patience: 10,
        val_fraction: 0.3,
        seed: 4,
        ..MlpConfig::default()
    };
    let m = TrainedMlp::fit(&src, &labels, 2, &train, &cfg).unwrap();
    let h = m.history();
    eprintln!(
        "best {} of {} epochs; val {:?}",
        h.best_epoch,
        h.val_loss.len(),
        &h.val_loss
    );
    assert!(h.stopped_early);
    assert!(
        h.best_epoch >= 2,
        "validation loss should first fall, then rise"
    );
    assert_eq!(h.train_loss.len(), h.best_epoch + cfg.patience + 1);
    assert_eq!(h.val_loss.len(), h.train_loss.len());
    let min = h.val_loss.iter().cloned().fold(f32::INFINITY, f32::min);
    assert_eq!(h.val_loss[h.best_epoch], min);
    assert!(h.val_loss[h.best_epoch + 1..].iter().all(|&v| v >= min));
    // validation loss rose while training loss kept falling: stopping used validation, not training loss
    assert!(*h.val_loss.last().unwrap() > min);
    assert!(h.train_loss.last().unwrap() < &h.train_loss[h.best_epoch]);
    // the model holds the best epoch's weights
    let vl = m
        .eval_loss_for_test(&src, &labels, &h.val_idx, None)
        .unwrap();
    assert_eq!(vl, h.val_loss[h.best_epoch]);
    assert_eq!(h.val_idx.len(), 24);
}

#[test]
fn no_validation_trains_max_epochs() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
    let x: Vec<f32> = (0..60 * 4).map(|_| randn(&mut rng)).collect();
    let src = [Source::new("a", &x, 4)];
    let train: Vec<usize> = (0..60).collect();
    let cfg = MlpConfig {
        hidden: vec![8],
        max_epochs: 7,
        val_fraction: 0.0,
        ..MlpConfig::default()
    };
    let h = TrainedMlp::fit(&src, &labels, 3, &train, &cfg)
        .unwrap()
        .history()
        .clone();
    assert_eq!(h.train_loss.len(), 7);
    assert!(h.val_loss.is_empty() && h.val_idx.is_empty());
    assert_eq!(h.best_epoch, 6);
    assert!(!h.stopped_early);
}

// ------------------------------------------------------------------------------------------
// (4) class weights
// ------------------------------------------------------------------------------------------

#[test]
fn class_weights_raise_rare_class_recall() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 25 == 0)).collect(); // 40 rare
    let means = vec![
        vec![0.0; 8],
        (0..8).map(|j| if j < 2 { 1.0 } else { 0.0 }).collect(),
    ];
    let x = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let src = [Source::new("a", &x, 8)];
    let train: Vec<usize> = (0..1000).filter(|i| i % 2 == 0).collect();
    let test: Vec<usize> = (0..1000).filter(|i| i % 2 == 1).collect();
    let cfg = MlpConfig {
        hidden: vec![32],
        max_epochs: 60,
        seed: 8,
        ..MlpConfig::default()
    };
    let plain = TrainedMlp::fit(&src, &labels, 2, &train, &cfg).unwrap();
    let weighted = TrainedMlp::fit(
        &src,
        &labels,
        2,
        &train,
        &MlpConfig {
            class_weights: true,
            ..cfg
        },
    )
    .unwrap();
    let r0 = recall(&plain.predict(&src, &test).unwrap(), &labels, &test, 1);
    let r1 = recall(&weighted.predict(&src, &test).unwrap(), &labels, &test, 1);
    eprintln!("rare recall: plain {r0:.3}, weighted {r1:.3}");
    assert!(r1 > r0 + 0.2, "rare recall plain {r0} weighted {r1}");
    let w = &weighted.history().class_weights;
    assert!(
        (w[0] - 500.0 / (2.0 * 480.0)).abs() < 1e-6 && (w[1] - 500.0 / (2.0 * 20.0)).abs() < 1e-5,
        "{w:?}"
    );
    assert_eq!(plain.history().class_weights, vec![1.0, 1.0]);
}

// ------------------------------------------------------------------------------------------
// (5) fusion
// ------------------------------------------------------------------------------------------

#[test]
fn fusion_of_complementary_sources_beats_each_alone() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 600;
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    // A zero-mean pattern (a constant shift would be removed by the per-source LayerNorm).
    let pat = |v: f32| -> Vec<f32> { (0..8).map(|j| if j % 2 == 0 { v } else { -v }).collect() };
    // A separates class 0 from {1, 2}; B separates class 2 from {0, 1}.
    let a = gaussian_blobs(&[pat(1.5), pat(0.0), pat(0.0)], &labels, 1.0, &mut rng);
    let b = gaussian_blobs(&[pat(0.0), pat(0.0), pat(1.5)], &labels, 1.0, &mut rng);
    let (train, test) = split(n, 4);
    let cfg = MlpConfig {
        hidden: vec![32],
        max_epochs: 80,
        seed: 10,
        ..MlpConfig::default()
    };
    let mut rows = Vec::new();
    let sa = Source::new("A", &a, 8);
    let sb = Source::new("B", &b, 8);
    for (name, srcs, fusion) in [
        ("A", vec![sa.clone()], Fusion::Concat),
        ("B", vec![sb.clone()], Fusion::Concat),
        ("A+B concat", vec![sa.clone(), sb.clone()], Fusion::Concat),
        ("A+B gated", vec![sa.clone(), sb.clone()], Fusion::Gated),
    ] {
        let m = TrainedMlp::fit(
            &srcs,
            &labels,
            3,
            &train,
            &MlpConfig {
                fusion,
                ..cfg.clone()
            },
        )
        .unwrap();
        rows.push((
            name,
            accuracy(&m.predict(&srcs, &test).unwrap(), &labels, &test),
        ));
    }
    eprintln!("{rows:?}");
    let (acc_a, acc_b) = (rows[0].1, rows[1].1);
    for (name, acc) in &rows[2..] {
        assert!(
            *acc > acc_a + 0.15 && *acc > acc_b + 0.15 && *acc > 0.9,
            "{name}: {acc} vs A {acc_a}, B {acc_b}"
        );
    }
}

#[test]
fn gated_fusion_learns_smaller_gate_for_noise() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let n = 600;
    let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
    let means = random_means(3, 8, 1.0, &mut rng);
    let signal = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let noise: Vec<f32> = (0..n * 16).map(|_| randn(&mut rng)).collect();
    let srcs = [
        Source::new("signal", &signal, 8),
        Source::new("noise", &noise, 16),
    ];
    let (train, _) = split(n, 4);
    let cfg = MlpConfig {
        hidden: vec![32],
        lr: 3e-3,
        fusion: Fusion::Gated,
        seed: 14,
        ..MlpConfig::default()
    };
    let m = TrainedMlp::fit(&srcs, &labels, 3, &train, &cfg).unwrap();
    let g = &m.history().gates;
    eprintln!("gates {g:?}, epochs {}", m.history().train_loss.len());
    assert_eq!(g.len(), 2);
    assert_eq!(
        (g[0].source.as_str(), g[1].source.as_str()),
        ("signal", "noise")
    );
    for x in g {
        assert!((x.gate - 1.0 / (1.0 + (-x.logit).exp())).abs() < 1e-6);
    }
    assert!(
        g[1].gate < g[0].gate,
        "noise gate {} vs signal gate {}",
        g[1].gate,
        g[0].gate
    );
}

// ------------------------------------------------------------------------------------------
// (6) PyTorch cross-check
// ------------------------------------------------------------------------------------------

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/mlp/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, torch {w} (|diff| {} > {tol})",
            (g - w).abs()
        );
    }
}

fn assert_params_close(
    what: &str,
    got: &std::collections::BTreeMap<String, Vec<f32>>,
    want: &Value,
    tol: f32,
) {
    let want = want.as_object().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: parameter count");
    for (name, w) in want {
        assert_close(&format!("{what} {name}"), &got[name], &f32s(w), tol);
    }
}

#[test]
fn matches_pytorch_logits_loss_grads_and_adamw() {
    const TOL: f32 = 1e-5;
    let weights = fixture("weights.json");
    let expected = fixture("expected.json");
    let (lr, wd) = (
        weights["lr"].as_f64().unwrap(),
        weights["weight_decay"].as_f64().unwrap(),
    );
    let cases = weights["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let exp = &expected["cases"][name];
        let dims = usizes(&case["source_dims"]);
        let hidden = usizes(&case["hidden"]);
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let fusion = match case["fusion"].as_str().unwrap() {
            "concat" => Fusion::Concat,
            "gated" => Fusion::Gated,
            f => panic!("fusion {f}"),
        };
        let params: HashMap<String, Vec<f32>> = case["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), f32s(v)))
            .collect();
        let data: Vec<Vec<f32>> = case["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(f32s)
            .collect();
        let srcs: Vec<Source> = data
            .iter()
            .zip(&dims)
            .enumerate()
            .map(|(s, (d, &dim))| Source::new(format!("s{s}"), d, dim))
            .collect();
        let named: Vec<(String, usize)> = srcs.iter().map(|s| (s.name.clone(), s.dim)).collect();
        let labels = usizes(&case["labels"]);
        let cw = f32s(&case["class_weights"]);
        let idx: Vec<usize> = (0..labels.len()).collect();

        // our balanced weights = sklearn's compute_class_weight("balanced")
        assert_close(
            &format!("{name} class weights"),
            &balanced_class_weights(&labels, k),
            &cw,
            1e-6,
        );

        let m = TrainedMlp::from_weights(&named, &hidden, k, fusion, &params).unwrap();
        assert_close(
            &format!("{name} logits"),
            &m.logits_for_test(&srcs, &idx).unwrap(),
            &f32s(&exp["logits"]),
            TOL,
        );
        for (tag, w) in [("unweighted", None), ("weighted", Some(cw.as_slice()))] {
            let loss = m.loss_for_test(&srcs, &labels, &idx, w).unwrap();
            let want = exp[format!("loss_{tag}")].as_f64().unwrap() as f32;
            assert!(
                (loss - want).abs() <= TOL,
                "{name} loss_{tag}: {loss} vs torch {want}"
            );
            let el = m.eval_loss_for_test(&srcs, &labels, &idx, w).unwrap();
            assert!(
                (el - want).abs() <= TOL,
                "{name} eval loss_{tag}: {el} vs torch {want}"
            );
            let grads = m.grads_for_test(&srcs, &labels, &idx, w).unwrap();
            assert_params_close(
                &format!("{name} grads_{tag}"),
                &grads,
                &exp[format!("grads_{tag}")],
                TOL,
            );
            for steps in [1usize, 3] {
                let e = &exp[format!("adamw{steps}_{tag}")];
                let mut m2 = TrainedMlp::from_weights(&named, &hidden, k, fusion, &params).unwrap();
                let losses = m2
                    .train_steps_for_test(&srcs, &labels, &idx, w, lr, wd, steps)
                    .unwrap();
                assert_close(
                    &format!("{name} adamw{steps}_{tag} losses"),
                    &losses,
                    &f32s(&e["losses"]),
                    TOL,
                );
                assert_params_close(
                    &format!("{name} adamw{steps}_{tag}"),
                    &m2.weights_for_test().unwrap(),
                    &e["params"],
                    TOL,
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// errors
// ------------------------------------------------------------------------------------------

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let labels = vec![0usize, 1, 0, 1, 0, 1, 0, 1];
    let x: Vec<f32> = (0..8 * 3).map(|i| i as f32 * 0.1).collect();
    let src = [Source::new("a", &x, 3)];
    let all: Vec<usize> = (0..8).collect();
    let cfg = MlpConfig {
        hidden: vec![4],
        max_epochs: 2,
        val_fraction: 0.25,
        ..MlpConfig::default()
    };

    let e = err_text(TrainedMlp::fit(&src, &labels, 2, &[], &cfg));
    assert!(e.contains("empty"), "{e}");

    let bad_labels = vec![0usize, 1, 0, 2, 0, 1, 0, 1];
    let e = err_text(TrainedMlp::fit(&src, &bad_labels, 2, &all, &cfg));
    assert!(e.contains("label 2") && e.contains("2 classes"), "{e}");

    let short: Vec<f32> = x[..7 * 3].to_vec();
    let two = [Source::new("a", &x, 3), Source::new("b", &short, 3)];
    let e = err_text(TrainedMlp::fit(&two, &labels, 2, &all, &cfg));
    assert!(
        e.contains("'b' has 7 rows") && e.contains("'a' has 8"),
        "{e}"
    );

    let ragged = [Source::new("r", &x[..23], 3)];
    let e = err_text(TrainedMlp::fit(&ragged, &labels, 2, &all, &cfg));
    assert!(e.contains("not a multiple"), "{e}");

    let mut nan = x.clone();
    nan[3 * 5 + 1] = f32::NAN;
    let nan_src = [Source::new("n", &nan, 3)];
    let e = err_text(TrainedMlp::fit(&nan_src, &labels, 2, &all, &cfg));
    assert!(
        e.contains("'n'") && e.contains("cell 5") && e.contains("column 1"),
        "{e}"
    );

    let e = err_text(TrainedMlp::fit(&src, &labels, 2, &[0, 99], &cfg));
    assert!(e.contains("99") && e.contains("out of range"), "{e}");
    let e = err_text(TrainedMlp::fit(&src, &labels, 2, &[0, 1, 1], &cfg));
    assert!(e.contains("twice"), "{e}");
    let e = err_text(TrainedMlp::fit(&src, &labels[..7], 2, &all, &cfg));
    assert!(e.contains("7 labels"), "{e}");
    let e = err_text(TrainedMlp::fit(&[], &labels, 2, &all, &cfg));
    assert!(e.contains("at least one input source"), "{e}");
    let e = err_text(TrainedMlp::fit(
        &src,
        &labels,
        2,
        &all,
        &MlpConfig {
            dropout: 1.0,
            ..cfg.clone()
        },
    ));
    assert!(e.contains("dropout"), "{e}");
    let e = err_text(TrainedMlp::fit(
        &src,
        &labels,
        2,
        &all,
        &MlpConfig {
            batch_size: 0,
            ..cfg.clone()
        },
    ));
    assert!(e.contains("batch size"), "{e}");
    let e = err_text(TrainedMlp::fit(&src, &labels, 2, &[0, 1], &cfg));
    assert!(e.contains("no validation cells"), "{e}");
    let dup = [Source::new("a", &x, 3), Source::new("a", &x, 3)];
    let e = err_text(TrainedMlp::fit(&dup, &labels, 2, &all, &cfg));
    assert!(e.contains("twice"), "{e}");

    // predict: NaN in a requested cell, wrong sources, out-of-range cell
    let m = TrainedMlp::fit(&src, &labels, 2, &all, &cfg).unwrap();
    let nan_a = [Source::new("a", &nan, 3)];
    let e = err_text(m.predict(&nan_a, &[5]));
    assert!(e.contains("non-finite") && e.contains("cell 5"), "{e}");
    assert_eq!(m.predict(&nan_a, &[4, 6]).unwrap().len(), 2); // NaN cell not requested
    let e = err_text(m.predict(&[Source::new("other", &x, 3)], &[0]));
    assert!(e.contains("same --embedding sources"), "{e}");
    let e = err_text(m.predict(&src, &[8]));
    assert!(e.contains("out of range"), "{e}");
}

// ------------------------------------------------------------------------------------------
// timing (not asserted; run with `cargo test --test mlp -- --ignored --nocapture`)
// ------------------------------------------------------------------------------------------

#[test]
#[ignore]
fn timing_2000_cells_384_dims_9_classes_default_config() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let n = 2000;
    let labels: Vec<usize> = (0..n).map(|i| i % 9).collect();
    let means = random_means(9, 384, 0.15, &mut rng);
    let x = gaussian_blobs(&means, &labels, 1.0, &mut rng);
    let src = [Source::new("emb", &x, 384)];
    let (train, test) = split(n, 5);
    let t = std::time::Instant::now();
    let m = TrainedMlp::fit(&src, &labels, 9, &train, &MlpConfig::default()).unwrap();
    let fit_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let pred = m.predict(&src, &test).unwrap();
    let pred_s = t.elapsed().as_secs_f64();
    let h = m.history();
    eprintln!(
        "fit {fit_s:.2}s ({} epochs, best {}, stopped_early {}, {:.1} ms/epoch), predict {} cells {pred_s:.3}s, accuracy {:.3}",
        h.train_loss.len(),
        h.best_epoch,
        h.stopped_early,
        1e3 * fit_s / h.train_loss.len() as f64,
        test.len(),
        accuracy(&pred, &labels, &test)
    );
}
