//! sciLaMA against PyTorch: losses and gradients of 3 AdamW steps of each training step, and the
//! weights after all nine steps, from the same initial weights, data, covariates, minibatches and
//! noise, with the KL weight of the warm-up (each step stands for one epoch: 25, 26, 45, weights
//! computed by `ScilamaConfig::kl_weight` and checked against the reference's `_get_kl_weight`)
//! and the learning rate decayed per epoch (`tests/fixtures/scilama/make_scilama_ref.py`).
//! Several gene stores: two stores of different widths, each with its own gene encoder, fused by
//! each `--fusion` (average, MoE, PoE): losses and gradients of 2 AdamW steps of the gene and the
//! joint step, and the weights after them (`tests/fixtures/scilama/make_scilama_multi_ref.py`).
//! Tolerance: 1e-4 relative (losses: of the value; gradients and weights: of the tensor's largest
//! magnitude).

use std::collections::{HashMap, VecDeque};

use candle_core::{DType, Device, Tensor};
use celltext::scilama::model::{Arch, Fusion, Network, Noise, Stage, Weights};
use celltext::scilama::ScilamaConfig;
use celltext::training::adamw;

const TOL: f64 = 1e-4;

fn load() -> (HashMap<String, Tensor>, HashMap<String, String>) {
    load_fixture("ref.safetensors")
}

fn load_fixture(name: &str) -> (HashMap<String, Tensor>, HashMap<String, String>) {
    let path = format!(
        "{}/tests/fixtures/scilama/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let path = path.as_str();
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
        more_gene_dims: vec![],
        fusion: None,
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
                .loss(
                    stage,
                    &xb,
                    Some(&cb),
                    std::slice::from_ref(g),
                    w,
                    &mut Noise::Given(q),
                )
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

/// One fusion's run of the multi-store fixture: the gene step, then the joint step, 2 AdamW steps
/// each; returns the worst relative error.
fn check_fusion(
    fusion: Fusion,
    r: &HashMap<String, Tensor>,
    meta: &HashMap<String, String>,
) -> f64 {
    let num = |k: &str| meta[k].parse::<f64>().unwrap();
    let list = |k: &str| -> Vec<f64> { meta[k].split(',').map(|v| v.parse().unwrap()).collect() };
    let dims: Vec<usize> = list("gene_dims").iter().map(|&d| d as usize).collect();
    let arch = Arch {
        n_genes: num("n_genes") as usize,
        gene_dim: dims[0],
        more_gene_dims: dims[1..].to_vec(),
        fusion: Some(fusion),
        hidden: list("hidden").iter().map(|&d| d as usize).collect(),
        latent: num("latent") as usize,
        dropout: 0.0,
        var_eps: num("var_eps"),
        n_cov: 0,
    };
    let net = Network::build(arch, &Device::Cpu, |name, _| {
        Ok(r[&format!("init.{name}")].flatten_all()?.to_vec1::<f32>()?)
    })
    .unwrap();
    // every parameter of the fixture is one of the network's, and the other way round
    let n_init = r.keys().filter(|k| k.starts_with("init.")).count();
    assert_eq!(net.vars.len(), n_init, "parameter names");
    assert!(net.vars.iter().any(|(n, _)| n == "gene_enc1.mu.weight"));
    let gs: Vec<Tensor> = (0..dims.len())
        .map(|k| r[&format!("g{k}")].clone())
        .collect();
    let f = celltext::choice::Choice::name(fusion);
    let betas = list("betas");
    let mut worst = 0f64;
    for stage in [Stage::Gene, Stage::Joint] {
        let s = stage.name();
        let trainable = net.trainable(stage);
        let names: Vec<String> = net
            .vars
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| r.contains_key(&format!("grad.{f}.{s}.0.{n}")))
            .collect();
        assert_eq!(trainable.len(), names.len(), "{f} {s}: trainable set");
        let mut opt = adamw(trainable, num("lr"), num("weight_decay")).unwrap();
        for step in 0..num("steps") as usize {
            let key = format!("{f}.{s}.{step}");
            opt.set_learning_rate(num("lr") * num("lr_decay").powi(step as i32));
            let w = Weights {
                beta: betas[step],
                gamma: num("gamma"),
            };
            let idx = r[&format!("batch.{key}")].to_dtype(DType::U32).unwrap();
            let xb = r["x"].index_select(&idx, 0).unwrap();
            let q = VecDeque::from([
                r[&format!("eps.{key}.cell")].clone(),
                r[&format!("eps.{key}.gene")].clone(),
            ]);
            let l = net
                .loss(stage, &xb, None, &gs, w, &mut Noise::Given(q))
                .unwrap();
            let got = Tensor::stack(&[&l.total, &l.recon, &l.kl], 0).unwrap();
            for (k, (a, b)) in vec(&got)
                .iter()
                .zip(vec(&r[&format!("loss.{key}")]))
                .enumerate()
            {
                let err = (a - b).abs() / b.abs().max(1e-12);
                assert!(err <= TOL, "{key} loss {k}: {a} vs {b} ({err:.2e})");
                worst = worst.max(err);
            }
            let grads = l.total.backward().unwrap();
            for n in &names {
                let v = net.vars.iter().find(|(m, _)| m == n).unwrap().1.clone();
                let gr = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("{key}: no grad for {n}"));
                worst = worst.max(assert_close(
                    &format!("{key} grad {n}"),
                    gr,
                    &r[&format!("grad.{key}.{n}")],
                ));
            }
            opt.step(&grads).unwrap();
        }
    }
    for (n, v) in &net.vars {
        worst = worst.max(assert_close(
            &format!("{f} final {n}"),
            v.as_tensor(),
            &r[&format!("final.{f}.{n}")],
        ));
    }
    worst
}

#[test]
fn several_gene_stores_match_pytorch_for_every_fusion() {
    let (r, meta) = load_fixture("ref_multi.safetensors");
    assert_eq!(meta["fusions"], "average,moe,poe");
    let mut finals = Vec::new();
    for fusion in [Fusion::Average, Fusion::Moe, Fusion::Poe] {
        let worst = check_fusion(fusion, &r, &meta);
        println!(
            "{}: worst relative error {worst:.2e}",
            celltext::choice::Choice::name(fusion)
        );
        finals.push(vec(&r[&format!(
            "final.{}.gene_enc0.0.weight",
            celltext::choice::Choice::name(fusion)
        )]));
    }
    // the fixture tells the fusions apart: average differs from the precision-weighted MoE,
    // which the reference computes as PoE (the same formula, in another order of operations)
    let rel = |a: &[f64], b: &[f64]| {
        let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    let (avg_moe, moe_poe) = (rel(&finals[0], &finals[1]), rel(&finals[1], &finals[2]));
    println!("final gene_enc0.0.weight: average vs MoE {avg_moe:.2e}, MoE vs PoE {moe_poe:.2e}");
    assert!(
        avg_moe > 1e-3,
        "average and MoE trained alike ({avg_moe:.2e})"
    );
    assert!(moe_poe < 1e-5, "MoE and PoE differ ({moe_poe:.2e})");
}
