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
//! - Several gene stores (`--genes` given `S ≥ 2` times, widths `D_0 … D_{S−1}`): one encoder per
//!   store, `gene_enc{k}.*` with input `D_k` (`gene_enc0`, `gene_enc1`, …), whose (μ_k, σ_k) are
//!   fused into one gene latent ([`Fusion`], the reference's `MultiModalFeatureEncoder` and
//!   `fuse_latents`) that feeds the one `gene_dec` and the gene KL. One store keeps the names
//!   `gene_enc.*` and is not fused (the reference fuses only 2+ sources), so model files written
//!   before several stores existed load unchanged.
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
    /// Width of the (first) gene store's vectors.
    pub gene_dim: usize,
    /// Widths of the second and later gene stores, each with its own encoder (`gene_enc{k}`);
    /// empty for one store (absent from one-store model files, as before several stores existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_gene_dims: Vec<usize>,
    /// How several stores' gene latents are fused: `Some` exactly when there are several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<Fusion>,
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

/// `--fusion`: how the gene latents of several stores become one (the reference's `fuse_latents`;
/// `k` runs over the stores, σ_k² = exp(logvar_k) + var_eps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// μ = mean of μ_k, σ = mean of σ_k (the reference's default, `fusion_method: average`).
    #[default]
    Average,
    /// Mixture of experts as the reference computes it: the precision-weighted mean
    /// μ = Σ μ_k·w_k / Σ w_k, σ² = 1 / Σ w_k with w_k = 1 / (σ_k² + 1e-8) — the same formula as
    /// [`Fusion::Poe`] (in the reference `MoE` and `PoE` compute the same thing).
    Moe,
    /// Product of experts: the precision-weighted mean, as [`Fusion::Moe`].
    Poe,
}

crate::choices!(Fusion {
    Average = "average",
    Moe = "moe" | "MoE",
    Poe = "poe" | "PoE",
});

/// Added to each σ_k² before inverting it (the reference's `1e-8`).
pub const FUSION_EPS: f64 = 1e-8;

impl Fusion {
    /// The fused (μ, σ²) of the stores' `(μ_k, σ_k²)`.
    pub fn fuse(self, parts: &[(Tensor, Tensor)]) -> Result<(Tensor, Tensor)> {
        if parts.is_empty() {
            bail!("no gene latents to fuse");
        }
        let n = parts.len() as f64;
        let sum = |ts: Vec<Tensor>| -> Result<Tensor> {
            let mut it = ts.into_iter();
            let first = it.next().expect("not empty");
            it.try_fold(first, |a, b| Ok(a.add(&b)?))
        };
        Ok(match self {
            Fusion::Average => {
                let mu = (sum(parts.iter().map(|(m, _)| m.clone()).collect())? / n)?;
                let sigmas = parts
                    .iter()
                    .map(|(_, v)| Ok(v.sqrt()?))
                    .collect::<Result<Vec<_>>>()?;
                let sigma = (sum(sigmas)? / n)?;
                (mu, sigma.sqr()?)
            }
            Fusion::Moe | Fusion::Poe => {
                let w = parts
                    .iter()
                    .map(|(_, v)| Ok((v + FUSION_EPS)?.recip()?))
                    .collect::<Result<Vec<_>>>()?;
                let weighted = parts
                    .iter()
                    .zip(&w)
                    .map(|((m, _), w)| Ok(m.mul(w)?))
                    .collect::<Result<Vec<_>>>()?;
                let precision = sum(w)?;
                let mu = sum(weighted)?.div(&precision)?;
                (mu, precision.recip()?)
            }
        })
    }
}

/// Where the stochastic parts (ε, dropout masks) come from.
pub enum Noise<'a> {
    /// Evaluation: z = μ, no dropout.
    Eval,
    /// Training: ε and dropout masks from the run's RNG (drawn on the host, in call order).
    Rng(&'a mut ChaCha8Rng),
    /// Validation as the reference's: ε from this RNG (z ~ N(μ, σ²)), no dropout.
    Sample(&'a mut ChaCha8Rng),
    /// Given ε tensors, used in order (tests); no dropout.
    Given(std::collections::VecDeque<Tensor>),
}

impl Noise<'_> {
    fn eps(&mut self, mu: &Tensor) -> Result<Option<Tensor>> {
        let (r, c) = mu.dims2()?;
        Ok(match self {
            Noise::Eval => None,
            Noise::Rng(rng) | Noise::Sample(rng) => Some(Tensor::from_vec(
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

    /// A dropout mask for a `[rows × width]` activation (0 with probability `p`, else
    /// 1 / (1 − p)), row-major; none in evaluation or validation, for given noise, or when `p`
    /// is 0.
    fn dropout_mask(&mut self, rows: usize, width: usize, p: f32) -> Option<Vec<f32>> {
        match self {
            Noise::Rng(rng) if p > 0.0 => Some(dropout_draws(rng, rows * width, p)),
            _ => None,
        }
    }

    fn dropout(&mut self, h: Tensor, p: f32) -> Result<Tensor> {
        let (b, w) = h.dims2()?;
        Ok(match self.dropout_mask(b, w, p) {
            Some(mask) => h.mul(&Tensor::from_vec(mask, (b, w), h.device())?)?,
            None => h,
        })
    }
}

/// `n` dropout draws: 0 where `rng.gen::<f32>() < p`, else 1 / (1 − p). rand's f32 is the top
/// 24 bits of a u32 times 2⁻²⁴, so the test is `(u >> 8) < ⌈p·2²⁴⌉` on the same u32s, drawn in one
/// fill: the masks and the generator's stream are what `gen::<f32>()` gives, without the per-draw
/// float work (a serial 4 % of a training step's CPU time).
fn dropout_draws(rng: &mut ChaCha8Rng, n: usize, p: f32) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    let cut = (p as f64 * 16_777_216.0).ceil() as u32;
    let mut bits = vec![0u32; n];
    rng.fill(&mut bits[..]);
    bits.into_iter()
        .map(|u| if (u >> 8) < cut { 0.0 } else { scale })
        .collect()
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
    /// Every parameter, in [`Arch::param_shapes`] order.
    pub vars: Vec<(String, Var)>,
}

/// `8,5` for widths [8, 5] (messages).
pub fn dims_list(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
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
        if self.more_gene_dims.is_empty() != self.fusion.is_none() {
            bail!(
                "a model with {} gene store(s) needs a fusion method exactly when it has several",
                self.n_stores()
            );
        }
        if self.latent == 0 || self.n_genes == 0 || self.gene_dims().contains(&0) {
            bail!(
                "latent, gene count and gene-input widths must be positive (got {}, {}, {})",
                self.latent,
                self.n_genes,
                dims_list(&self.gene_dims())
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
                "a sciLaMA model with --hidden {} and --latent {} over {} genes and gene inputs of \
                 width {}",
                self.hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                self.latent,
                self.n_genes,
                dims_list(&self.gene_dims())
            ),
            params,
        )?;
        Ok(())
    }

    /// The gene stores' widths, in `--genes` order.
    pub fn gene_dims(&self) -> Vec<usize> {
        let mut d = vec![self.gene_dim];
        d.extend(&self.more_gene_dims);
        d
    }

    pub fn n_stores(&self) -> usize {
        1 + self.more_gene_dims.len()
    }

    /// The parameter prefix of store `k`'s gene encoder: `gene_enc` for one store (the names of
    /// model files written before several stores existed), `gene_enc{k}` for several.
    pub fn gene_encoder(&self, k: usize) -> String {
        if self.more_gene_dims.is_empty() {
            "gene_enc".into()
        } else {
            format!("gene_enc{k}")
        }
    }

    /// Parameter names and shapes, in a fixed order (also the initialisation order): the cell
    /// encoder and decoder, each store's gene encoder in `--genes` order, the gene decoder.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let hl = *self.hidden.last().expect("validated");
        let mut rev: Vec<usize> = self.hidden.iter().rev().cloned().collect();
        rev.insert(0, self.latent);
        let mut encoders = vec![("cell_enc".to_string(), self.n_genes + self.n_cov)];
        for (k, d) in self.gene_dims().into_iter().enumerate() {
            encoders.push((self.gene_encoder(k), d));
        }
        for (side, cov) in [("cell", self.n_cov), ("gene", 0)] {
            for (prefix, input) in encoders.iter().filter(|(p, _)| p.starts_with(side)) {
                let mut enc = vec![*input];
                enc.extend(&self.hidden);
                linear_names(prefix, &enc, &mut out);
                for head in ["mu", "logvar"] {
                    out.push((format!("{prefix}.{head}.weight"), vec![self.latent, hl]));
                    out.push((format!("{prefix}.{head}.bias"), vec![self.latent]));
                }
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
        Ok(super::linear::linear(x, w, b)?)
    }

    /// Linear → LayerNorm (no affine) → LeakyReLU → Dropout (one op after the matmul).
    fn block(&self, x: &Tensor, name: &str, noise: &mut Noise) -> Result<Tensor> {
        let w = self.var(&format!("{name}.weight"))?;
        let b = self.var(&format!("{name}.bias"))?;
        let h = super::linear::input_matmul(x, w)?;
        let (rows, width) = h.dims2()?;
        let mask = noise.dropout_mask(rows, width, self.arch.dropout);
        Ok(super::fused::block_activation(&h, b, mask)?)
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

    /// The encoder `prefix` (`cell_enc`, `gene_enc`, `gene_enc{k}`) up to (μ, σ²).
    fn moments(&self, prefix: &str, x: &Tensor, noise: &mut Noise) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for i in 0..self.arch.hidden.len() {
            h = self.block(&h, &format!("{prefix}.{i}"), noise)?;
        }
        let mu = self.linear(&h, &format!("{prefix}.mu"))?;
        let var = (self.linear(&h, &format!("{prefix}.logvar"))?.exp()? + self.arch.var_eps)?;
        Ok((mu, var))
    }

    /// z = μ + σ·ε (z = μ without noise).
    fn sample(mu: Tensor, var: Tensor, noise: &mut Noise) -> Result<Encoded> {
        let z = match noise.eps(&mu)? {
            Some(eps) => (&mu + var.sqrt()?.mul(&eps)?)?,
            None => mu.clone(),
        };
        Ok(Encoded { mu, var, z })
    }

    /// The cell encoder on `x` with the covariates `c`; ε is drawn after the forward pass.
    pub fn encode_cells(
        &self,
        x: &Tensor,
        c: Option<&Tensor>,
        noise: &mut Noise,
    ) -> Result<Encoded> {
        let (mu, var) = self.moments("cell_enc", &self.with_cov(x, c)?, noise)?;
        Self::sample(mu, var, noise)
    }

    /// The gene encoder(s) on each store's inputs `gs` (one `[M × D_k]` tensor per store, the
    /// same genes in the same order): one store's (μ, σ²), or the stores' fused by
    /// `arch.fusion`; ε (one, for the fused latent) is drawn after every encoder's forward pass.
    /// (The reference also samples each store's own z and discards it; that draw is skipped.)
    pub fn encode_genes(&self, gs: &[Tensor], noise: &mut Noise) -> Result<Encoded> {
        let dims = self.arch.gene_dims();
        if gs.len() != dims.len() {
            bail!(
                "{} gene-input matrices for a model with {} gene store(s)",
                gs.len(),
                dims.len()
            );
        }
        let mut parts = Vec::with_capacity(gs.len());
        for (k, g) in gs.iter().enumerate() {
            if g.dims().len() != 2 || g.dim(1)? != dims[k] || g.dim(0)? != gs[0].dim(0)? {
                bail!(
                    "gene inputs of store {} have shape {:?}, the model needs [{}, {}]",
                    k + 1,
                    g.dims(),
                    gs[0].dim(0)?,
                    dims[k]
                );
            }
            parts.push(self.moments(&self.arch.gene_encoder(k), g, noise)?);
        }
        let (mu, var) = match self.arch.fusion {
            Some(f) => f.fuse(&parts)?,
            None => parts.pop().expect("one store"),
        };
        Self::sample(mu, var, noise)
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
    /// (one `[M × D_k]` matrix per store); `w.beta` is this epoch's KL weight. Noise order:
    /// cell-side dropout and ε, then (stage 1) the dropout before the linear head or (stages 2
    /// and 3) gene-side dropout (store by store, then the decoder) and ε.
    pub fn loss(
        &self,
        stage: Stage,
        x: &Tensor,
        c: Option<&Tensor>,
        g: &[Tensor],
        w: Weights,
        noise: &mut Noise,
    ) -> Result<Losses> {
        let cell = self.encode_cells(x, c, noise)?;
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
        let gene = self.encode_genes(g, noise)?;
        let h_gene = self.decode_hidden("gene", &gene.z, None, noise)?;
        let bias = self.var("cell_dec.out.bias")?;
        let pred = super::linear::linear(&h_cell, &h_gene, bias)?;
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
        let latent = super::linear::linear(&cell_z, &gene.z, bias)?;
        let align = Self::sse(&latent, x)?;
        let kl = (Self::kl(&cell)? + kl_gene)?;
        let total = ((&recon + (align * w.gamma)?)? + (&kl * w.beta)?)?;
        Ok(Losses { total, recon, kl })
    }

    /// Encoder means in chunks of `chunk` rows, as a host row-major matrix `[n × K]`: of the cells
    /// `x` (with covariates `c`) for `Side::Cell`, of the genes (`x`: one matrix per store, the
    /// same rows) fused as in training for `Side::Gene`.
    pub fn embed(
        &self,
        side: Side,
        x: &[Tensor],
        c: Option<&Tensor>,
        chunk: usize,
    ) -> Result<Vec<f32>> {
        let n = x.first().map(|t| t.dim(0)).transpose()?.unwrap_or(0);
        let mut out = Vec::with_capacity(n * self.arch.latent);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let xb = x
                .iter()
                .map(|t| Ok(t.narrow(0, start, len)?))
                .collect::<Result<Vec<_>>>()?;
            let e = match side {
                Side::Cell => {
                    let cb = c.map(|c| c.narrow(0, start, len)).transpose()?;
                    self.encode_cells(&xb[0], cb.as_ref(), &mut Noise::Eval)?
                }
                Side::Gene => self.encode_genes(&xb, &mut Noise::Eval)?,
            };
            out.extend(e.mu.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
            start += len;
        }
        Ok(out)
    }
}

/// Which encoder [`Network::embed`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Cell,
    Gene,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masks and the generator state after them equal per-draw `gen::<f32>() < p`, for
    /// dropout rates whose threshold falls between and on 2⁻²⁴ steps, and odd lengths.
    #[test]
    fn dropout_draws_match_per_draw_floats() {
        use rand::SeedableRng;
        for (p, n) in [(0.1f32, 10_001), (0.5, 4_096), (0.37, 777), (0.25, 3)] {
            let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(5), ChaCha8Rng::seed_from_u64(5));
            let _ = (a.gen::<f64>(), b.gen::<f64>()); // an offset stream, as in training
            let ours = dropout_draws(&mut a, n, p);
            let scale = 1.0 / (1.0 - p);
            let want: Vec<f32> = (0..n)
                .map(|_| if b.gen::<f32>() < p { 0.0 } else { scale })
                .collect();
            assert_eq!(ours, want, "p = {p}");
            assert_eq!(a.gen::<u64>(), b.gen::<u64>());
            let dropped = ours.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
            assert!(
                n < 1000 || (dropped - p as f64).abs() < 0.03,
                "{dropped} for p = {p}"
            );
        }
    }

    fn arch(more: Vec<usize>, fusion: Option<Fusion>) -> Arch {
        Arch {
            n_genes: 5,
            gene_dim: 4,
            more_gene_dims: more,
            fusion,
            hidden: vec![3],
            latent: 2,
            dropout: 0.0,
            var_eps: 1e-4,
            n_cov: 0,
        }
    }

    #[test]
    fn one_store_keeps_its_names_and_several_get_an_encoder_each() {
        // one store: the names (and order) of model files written before several stores existed
        let one: Vec<String> = arch(vec![], None)
            .param_shapes()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("gene_"))
            .collect();
        let want = [
            "gene_enc.0.weight",
            "gene_enc.0.bias",
            "gene_enc.mu.weight",
            "gene_enc.mu.bias",
            "gene_enc.logvar.weight",
            "gene_enc.logvar.bias",
            "gene_dec.0.weight",
            "gene_dec.0.bias",
        ];
        assert_eq!(one, want);
        let two = arch(vec![7], Some(Fusion::Poe));
        two.validate().unwrap();
        let shapes: std::collections::HashMap<String, Vec<usize>> =
            two.param_shapes().into_iter().collect();
        assert_eq!(shapes["gene_enc0.0.weight"], [3, 4]);
        assert_eq!(shapes["gene_enc1.0.weight"], [3, 7]);
        assert_eq!(shapes["gene_dec.0.weight"], [3, 2]);
        assert!(!shapes.contains_key("gene_enc.0.weight"));
        // a fusion method exactly when there are several stores
        assert!(arch(vec![7], None).validate().is_err());
        assert!(arch(vec![], Some(Fusion::Average)).validate().is_err());
        // one-store files keep their `arch` JSON (no new fields)
        let json = serde_json::to_string(&arch(vec![], None)).unwrap();
        assert!(!json.contains("more_gene_dims") && !json.contains("fusion"));
        let back: Arch = serde_json::from_str(&serde_json::to_string(&two).unwrap()).unwrap();
        assert_eq!(back, two);
    }

    #[test]
    fn fusion_matches_hand_computation() {
        // two stores, one latent dim: μ = (1, 3), σ² = (1, 4)
        let t = |v: f32| Tensor::new(&[[v]], &Device::Cpu).unwrap();
        let parts = [(t(1.0), t(1.0)), (t(3.0), t(4.0))];
        let get = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        // average: μ = 2, σ = (1 + 2) / 2 = 1.5
        let (mu, var) = Fusion::Average.fuse(&parts).unwrap();
        assert!((get(&mu) - 2.0).abs() < 1e-6 && (get(&var) - 2.25).abs() < 1e-6);
        // precision-weighted: w = (1, 0.25) (+1e-8 in σ²), μ = (1 + 0.75) / 1.25 = 1.4, σ² = 0.8
        for f in [Fusion::Moe, Fusion::Poe] {
            let (mu, var) = f.fuse(&parts).unwrap();
            assert!((get(&mu) - 1.4).abs() < 1e-6, "{f:?}");
            assert!((get(&var) - 0.8).abs() < 1e-6, "{f:?}");
        }
    }
}
