//! The sciLaMA network: a cell VAE and a gene VAE whose decoders meet in a dot product.
//!
//! Layer names (also the safetensors names) and shapes, for `hidden = [h1, …, hL]`, latent `K`,
//! `M` genes and gene-input width `D` (torch `nn.Linear` layout, weight `[out × in]`):
//!
//! - `cell_enc.{i}` Linear, `i < L`: `M + C → h1 → … → hL`, each followed by LayerNorm (no affine,
//!   eps 1e-5), LeakyReLU(0.01) and Dropout; `cell_enc.mu`, `cell_enc.logvar`: `hL → K`. `C` is
//!   the number of covariate columns (one-hot batches, z-scored continuous values), concatenated
//!   to the cell encoder's input and to the cell decoder's input, as in the reference and scVI.
//! - `cell_dec.{i}`: `K + C → hL → … → h1`; every layer but the last is followed by LayerNorm,
//!   LeakyReLU and Dropout; the last one's output is `h_cell ∈ R^{h1}`. `cell_dec.out`: `h1 → M`
//!   (the linear head of the cell-VAE-only loss, applied after Dropout of `h_cell` as in the
//!   reference's `final_layer`; its bias is the `b` of `ĉ = h_cell · h_gene + b`).
//! - `gene_enc.*`, `gene_dec.*`: the same with input `D`, no covariates and no output head.
//!
//! σ² = exp(logvar) + var_eps; z = μ + σ·ε. KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − ln σ²).

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::training::normal_vec;

/// The shape of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub n_genes: usize,
    pub gene_dim: usize,
    pub hidden: Vec<usize>,
    pub latent: usize,
    pub dropout: f32,
    pub var_eps: f64,
    /// Covariate columns `C` fed to the cell encoder and decoder (0: none; absent in model files
    /// written before covariates existed).
    #[serde(default)]
    pub n_cov: usize,
}

/// Which parts a loss trains (the three steps of the method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Cell VAE with its linear head.
    Cell,
    /// Gene VAE, cell VAE frozen.
    Gene,
    /// Everything, with the latent alignment term.
    Joint,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Cell => "cell",
            Stage::Gene => "gene",
            Stage::Joint => "joint",
        }
    }
}

/// Where the stochastic parts (ε, dropout masks) come from.
pub enum Noise<'a> {
    /// Evaluation: z = μ, no dropout.
    Eval,
    /// Training: ε and dropout masks from the run's RNG (drawn on the host, in call order).
    Rng(&'a mut ChaCha8Rng),
    /// Given ε tensors, used in order (tests); no dropout.
    Given(std::collections::VecDeque<Tensor>),
}

impl Noise<'_> {
    fn eps(&mut self, mu: &Tensor) -> Result<Option<Tensor>> {
        let (r, c) = mu.dims2()?;
        Ok(match self {
            Noise::Eval => None,
            Noise::Rng(rng) => Some(Tensor::from_vec(
                normal_vec(r * c, rng),
                (r, c),
                mu.device(),
            )?),
            Noise::Given(q) => {
                let t = q
                    .pop_front()
                    .ok_or_else(|| anyhow::anyhow!("no more given ε tensors"))?;
                if t.dims() != [r, c] {
                    bail!(
                        "given ε has shape {:?}, the layer needs [{r}, {c}]",
                        t.dims()
                    );
                }
                Some(t.to_device(mu.device())?)
            }
        })
    }

    fn dropout(&mut self, h: Tensor, p: f32) -> Result<Tensor> {
        match self {
            Noise::Rng(rng) if p > 0.0 => {
                let (b, w) = h.dims2()?;
                let scale = 1.0 / (1.0 - p);
                let mask: Vec<f32> = (0..b * w)
                    .map(|_| if rng.gen::<f32>() < p { 0.0 } else { scale })
                    .collect();
                Ok(h.mul(&Tensor::from_vec(mask, (b, w), h.device())?)?)
            }
            _ => Ok(h),
        }
    }
}

/// One VAE side's encoder output.
pub struct Encoded {
    pub mu: Tensor,
    pub var: Tensor,
    pub z: Tensor,
}

/// The scalar losses of one batch (all 0-d tensors on the model's device).
pub struct Losses {
    pub total: Tensor,
    /// Σ_genes squared error of the stage's main reconstruction, mean over cells.
    pub recon: Tensor,
    /// β-free KL (cell + gene means, whichever the stage uses).
    pub kl: Tensor,
}

/// Loss weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub beta: f64,
    pub gamma: f64,
}

pub struct Network {
    pub arch: Arch,
    pub device: Device,
    /// Every parameter, in [`Network::param_shapes`] order.
    pub vars: Vec<(String, Var)>,
}

fn linear_names(prefix: &str, dims: &[usize], out: &mut Vec<(String, Vec<usize>)>) {
    for i in 0..dims.len() - 1 {
        out.push((format!("{prefix}.{i}.weight"), vec![dims[i + 1], dims[i]]));
        out.push((format!("{prefix}.{i}.bias"), vec![dims[i + 1]]));
    }
}

impl Arch {
    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            bail!("--hidden needs at least one positive width, e.g. 256,128");
        }
        if self.latent == 0 || self.n_genes == 0 || self.gene_dim == 0 {
            bail!(
                "latent, gene count and gene-input width must be positive (got {}, {}, {})",
                self.latent,
                self.n_genes,
                self.gene_dim
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("--dropout must be in [0, 1), got {}", self.dropout);
        }
        // sizes come from flags (--latent, --hidden) or a model file: refuse before allocating
        let params: u128 = self
            .param_shapes()
            .iter()
            .map(|(_, s)| s.iter().map(|&d| d as u128).product::<u128>())
            .sum();
        crate::limits::check_elements(
            &format!(
                "a sciLaMA model with --hidden {} and --latent {} over {} genes and {}-dim gene                  inputs",
                self.hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                self.latent,
                self.n_genes,
                self.gene_dim
            ),
            params,
        )?;
        Ok(())
    }

    /// Parameter names and shapes, in a fixed order (also the initialisation order).
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let hl = *self.hidden.last().expect("validated");
        let mut rev: Vec<usize> = self.hidden.iter().rev().cloned().collect();
        rev.insert(0, self.latent);
        for (side, input, cov) in [
            ("cell", self.n_genes, self.n_cov),
            ("gene", self.gene_dim, 0),
        ] {
            let mut enc = vec![input + cov];
            enc.extend(&self.hidden);
            linear_names(&format!("{side}_enc"), &enc, &mut out);
            for head in ["mu", "logvar"] {
                out.push((format!("{side}_enc.{head}.weight"), vec![self.latent, hl]));
                out.push((format!("{side}_enc.{head}.bias"), vec![self.latent]));
            }
            let mut dec = rev.clone();
            dec[0] += cov;
            linear_names(&format!("{side}_dec"), &dec, &mut out);
            if side == "cell" {
                out.push((
                    "cell_dec.out.weight".into(),
                    vec![self.n_genes, self.hidden[0]],
                ));
                out.push(("cell_dec.out.bias".into(), vec![self.n_genes]));
            }
        }
        out
    }
}

impl Network {
    /// Builds the network from values for every parameter (`init(name, shape)`).
    pub fn build(
        arch: Arch,
        device: &Device,
        mut init: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        arch.validate()?;
        let mut vars = Vec::new();
        for (name, shape) in arch.param_shapes() {
            let v = init(&name, &shape)?;
            let numel: usize = shape.iter().product();
            if v.len() != numel {
                bail!(
                    "parameter {name} has {} values, shape {shape:?} needs {numel}",
                    v.len()
                );
            }
            let t = Tensor::from_vec(v, shape.as_slice(), device)?;
            vars.push((name, Var::from_tensor(&t)?));
        }
        Ok(Self {
            arch,
            device: device.clone(),
            vars,
        })
    }

    /// torch `xavier_normal_` weights (std √(2 / (fan_in + fan_out))), zero biases, drawn in
    /// parameter order from `rng`.
    pub fn xavier(arch: Arch, device: &Device, rng: &mut ChaCha8Rng) -> Result<Self> {
        Self::build(arch, device, |name, shape| {
            let n: usize = shape.iter().product();
            if name.ends_with(".bias") {
                return Ok(vec![0.0; n]);
            }
            let std = (2.0 / (shape[0] + shape[1]) as f64).sqrt() as f32;
            Ok(normal_vec(n, rng).into_iter().map(|v| v * std).collect())
        })
    }

    pub fn var(&self, name: &str) -> Result<&Tensor> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor())
            .ok_or_else(|| anyhow::anyhow!("sciLaMA model has no parameter {name}"))
    }

    /// The parameters a stage trains (stage 3 leaves the unused linear head's weight out).
    pub fn trainable(&self, stage: Stage) -> Vec<Var> {
        self.vars
            .iter()
            .filter(|(n, _)| match stage {
                Stage::Cell => n.starts_with("cell_"),
                Stage::Gene => n.starts_with("gene_"),
                Stage::Joint => n != "cell_dec.out.weight",
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.var(&format!("{name}.weight"))?;
        let b = self.var(&format!("{name}.bias"))?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }

    /// Linear → LayerNorm (no affine) → LeakyReLU → Dropout.
    fn block(&self, x: &Tensor, name: &str, noise: &mut Noise) -> Result<Tensor> {
        let h = self.linear(x, name)?;
        let a = super::fused::layer_norm_leaky_relu(&h)?;
        noise.dropout(a, self.arch.dropout)
    }

    /// `x` with the covariate columns `c` appended (the cell side's inputs).
    fn with_cov(&self, x: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        match c {
            Some(c) if self.arch.n_cov > 0 => {
                if c.dims() != [x.dim(0)?, self.arch.n_cov] {
                    bail!(
                        "covariates have shape {:?}, the model needs [{}, {}]",
                        c.dims(),
                        x.dim(0)?,
                        self.arch.n_cov
                    );
                }
                Ok(Tensor::cat(&[x, c], 1)?)
            }
            None if self.arch.n_cov > 0 => {
                bail!(
                    "the model takes {} covariate columns; none given",
                    self.arch.n_cov
                )
            }
            _ => Ok(x.clone()),
        }
    }

    /// Encoder of `side` ("cell" or "gene"; `c`: the cell side's covariates); ε is drawn after the
    /// forward pass.
    pub fn encode(
        &self,
        side: &str,
        x: &Tensor,
        c: Option<&Tensor>,
        noise: &mut Noise,
    ) -> Result<Encoded> {
        let mut h = if side == "cell" {
            self.with_cov(x, c)?
        } else {
            x.clone()
        };
        for i in 0..self.arch.hidden.len() {
            h = self.block(&h, &format!("{side}_enc.{i}"), noise)?;
        }
        let mu = self.linear(&h, &format!("{side}_enc.mu"))?;
        let var = (self.linear(&h, &format!("{side}_enc.logvar"))?.exp()? + self.arch.var_eps)?;
        let z = match noise.eps(&mu)? {
            Some(eps) => (&mu + var.sqrt()?.mul(&eps)?)?,
            None => mu.clone(),
        };
        Ok(Encoded { mu, var, z })
    }

    /// Decoder of `side` up to the hidden representation `h ∈ R^{h1}`.
    pub fn decode_hidden(
        &self,
        side: &str,
        z: &Tensor,
        c: Option<&Tensor>,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let last = self.arch.hidden.len() - 1;
        let mut h = if side == "cell" {
            self.with_cov(z, c)?
        } else {
            z.clone()
        };
        for i in 0..last {
            h = self.block(&h, &format!("{side}_dec.{i}"), noise)?;
        }
        self.linear(&h, &format!("{side}_dec.{last}"))
    }

    /// Mean over rows of Σ_k KL(N(μ, σ²) ‖ N(0, 1)).
    fn kl(e: &Encoded) -> Result<Tensor> {
        let t = ((e.var.clone() + e.mu.sqr()?)? - e.var.log()?)?;
        let per_row = ((t - 1.0)? * 0.5)?.sum(1)?;
        Ok(per_row.mean_all()?)
    }

    /// Mean over rows of Σ_j (pred − x)².
    fn sse(pred: &Tensor, x: &Tensor) -> Result<Tensor> {
        Ok((pred - x)?.sqr()?.sum(1)?.mean_all()?)
    }

    /// The stage's loss on cells `x` (`[b × M]`, covariates `c` `[b × C]`) with gene inputs `g`
    /// (`[M × D]`); `w.beta` is this epoch's KL weight. Noise order: cell-side dropout and ε,
    /// then (stage 1) the dropout before the linear head or (stages 2 and 3) gene-side dropout
    /// and ε.
    pub fn loss(
        &self,
        stage: Stage,
        x: &Tensor,
        c: Option<&Tensor>,
        g: &Tensor,
        w: Weights,
        noise: &mut Noise,
    ) -> Result<Losses> {
        let cell = self.encode("cell", x, c, noise)?;
        let h_cell = self.decode_hidden("cell", &cell.z, c, noise)?;
        if stage == Stage::Cell {
            let h_drop = noise.dropout(h_cell, self.arch.dropout)?;
            let pred = self.linear(&h_drop, "cell_dec.out")?;
            let recon = Self::sse(&pred, x)?;
            let kl = Self::kl(&cell)?;
            let total = (&recon + (&kl * w.beta)?)?;
            return Ok(Losses { total, recon, kl });
        }
        let (h_cell, cell_z) = if stage == Stage::Gene {
            (h_cell.detach(), cell.z.detach())
        } else {
            (h_cell, cell.z.clone())
        };
        let gene = self.encode("gene", g, None, noise)?;
        let h_gene = self.decode_hidden("gene", &gene.z, None, noise)?;
        let bias = self.var("cell_dec.out.bias")?;
        let pred = h_cell.matmul(&h_gene.t()?)?.broadcast_add(bias)?;
        let recon = Self::sse(&pred, x)?;
        let kl_gene = Self::kl(&gene)?;
        if stage == Stage::Gene {
            let total = (&recon + (&kl_gene * w.beta)?)?;
            return Ok(Losses {
                total,
                recon,
                kl: kl_gene,
            });
        }
        let latent = cell_z.matmul(&gene.z.t()?)?.broadcast_add(bias)?;
        let align = Self::sse(&latent, x)?;
        let kl = (Self::kl(&cell)? + kl_gene)?;
        let total = ((&recon + (align * w.gamma)?)? + (&kl * w.beta)?)?;
        Ok(Losses { total, recon, kl })
    }

    /// Encoder means of `x` (covariates `c` on the cell side) in chunks of `chunk` rows, as a host
    /// row-major matrix `[n × K]`.
    pub fn embed(
        &self,
        side: &str,
        x: &Tensor,
        c: Option<&Tensor>,
        chunk: usize,
    ) -> Result<Vec<f32>> {
        let n = x.dim(0)?;
        let mut out = Vec::with_capacity(n * self.arch.latent);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let cb = c.map(|c| c.narrow(0, start, len)).transpose()?;
            let e = self.encode(
                side,
                &x.narrow(0, start, len)?,
                cb.as_ref(),
                &mut Noise::Eval,
            )?;
            out.extend(e.mu.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
            start += len;
        }
        Ok(out)
    }
}
