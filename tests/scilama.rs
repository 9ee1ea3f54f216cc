//! sciLaMA against PyTorch: losses and gradients of 3 AdamW steps of each training step, and the
//! weights after all nine steps, from the same initial weights, data, covariates, minibatches and
//! noise, with the KL weight of the warm-up (each step stands for one epoch: 25, 26, 45, weights
//! computed by `ScilamaConfig::kl_weight` and checked against the reference's `_get_kl_weight`)
//! and the learning rate decayed per epoch (`tests/fixtures/scilama/make_scilama_ref.py`).
//! Tolerance: 1e-4 relative (losses: of the value; gradients and weights: of the tensor's largest
//! magnitude).

use std::collections::{HashMap, VecDeque};

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use celltext::scilama::model::{Arch, Network, Noise, Stage, Weights};
use celltext::scilama::ScilamaConfig;
use celltext::training::adamw;

const TOL: f64 = 1e-4;

fn load() -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scilama/ref.safetensors"
    );
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    (
        candle_core::safetensors::load(path, &Device::Cpu).unwrap(),
        meta,
    )
}

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (vec(got), vec(want));
    let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    let err = g
        .iter()
        .zip(&w)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(err <= TOL, "{what}: relative error {err:.3e} > {TOL}");
    err
}

#[test]
fn losses_gradients_and_weights_match_pytorch() {
    let (r, meta) = load();
    let num = |k: &str| meta[k].parse::<f64>().unwrap();
    let hidden: Vec<usize> = meta["hidden"]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let arch = Arch {
        n_genes: num("n_genes") as usize,
        gene_dim: num("gene_dim") as usize,
        hidden,
        latent: num("latent") as usize,
        dropout: 0.0,
        var_eps: num("var_eps"),
        n_cov: num("n_cov") as usize,
    };
    let cfg = ScilamaConfig {
        beta: num("beta"),
        kl_warmup_epochs: num("kl_warmup_epochs") as usize,
        kl_warmup_rate: num("kl_warmup_rate"),
        ..ScilamaConfig::default()
    };
    let epochs: Vec<usize> = meta["epochs"]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let net = Network::build(arch, &Device::Cpu, |name, _| {
        Ok(r[&format!("init.{name}")].flatten_all()?.to_vec1::<f32>()?)
    })
    .unwrap();
    let (x, g, c) = (&r["x"], &r["g"], &r["c"]);
    assert_eq!(c.dims(), [x.dim(0).unwrap(), arch_n_cov(&meta)]);
    let mut worst = 0f64;
    for stage in [Stage::Cell, Stage::Gene, Stage::Joint] {
        let s = stage.name();
        let names: Vec<String> = net
            .vars
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| r.contains_key(&format!("grad.{s}.0.{n}")))
            .collect();
        let trainable = net.trainable(stage);
        assert_eq!(trainable.len(), names.len(), "{s}: trainable set");
        let mut opt = adamw(trainable, num("lr"), num("weight_decay")).unwrap();
        for step in 0..num("steps") as usize {
            // one step per epoch: the epoch's learning rate and KL weight
            opt.set_learning_rate(num("lr") * num("lr_decay").powi(step as i32));
            let beta = cfg.kl_weight(epochs[step]);
            let want_beta = vec(&r[&format!("beta.{s}.{step}")])[0];
            assert!(
                (beta - want_beta).abs() < 1e-12,
                "epoch {}: KL weight {beta} vs the reference's {want_beta}",
                epochs[step]
            );
            let w = Weights {
                beta,
                gamma: num("gamma"),
            };
            let idx = r[&format!("batch.{s}.{step}")]
                .to_dtype(DType::U32)
                .unwrap();
            let xb = x.index_select(&idx, 0).unwrap();
            let cb = c.index_select(&idx, 0).unwrap();
            let mut q = VecDeque::from([r[&format!("eps.{s}.{step}.cell")].clone()]);
            if let Some(e) = r.get(&format!("eps.{s}.{step}.gene")) {
                q.push_back(e.clone());
            }
            let l = net
                .loss(stage, &xb, Some(&cb), g, w, &mut Noise::Given(q))
                .unwrap();
            let got = Tensor::stack(&[&l.total, &l.recon, &l.kl], 0).unwrap();
            let want = &r[&format!("loss.{s}.{step}")];
            for (k, (a, b)) in vec(&got).iter().zip(vec(want)).enumerate() {
                let err = (a - b).abs() / b.abs().max(1e-12);
                assert!(
                    err <= TOL,
                    "{s} step {step} loss {k}: {a} vs {b} ({err:.2e})"
                );
                worst = worst.max(err);
            }
            let grads = l.total.backward().unwrap();
            for n in &names {
                let v = net.vars.iter().find(|(m, _)| m == n).unwrap().1.clone();
                let gr = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{s}: no grad for {n}"));
                let e = assert_close(
                    &format!("{s} step {step} grad {n}"),
                    gr,
                    &r[&format!("grad.{s}.{step}.{n}")],
                );
                worst = worst.max(e);
            }
            opt.step(&grads).unwrap();
        }
    }
    for (n, v) in &net.vars {
        worst = worst.max(assert_close(
            &format!("final {n}"),
            v.as_tensor(),
            &r[&format!("final.{n}")],
        ));
    }
    println!("worst relative error {worst:.2e}");
}

fn arch_n_cov(meta: &HashMap<String, String>) -> usize {
    meta["n_cov"].parse().unwrap()
}
