//! A hidden block's activation after its matmul — bias, LayerNorm without affine (eps 1e-5),
//! LeakyReLU, dropout mask — as one CPU op with its own backward.
//!
//! Composed from candle's elementwise ops this is ~15 passes forward and more backward over the
//! `[genes × 900]` activations of the gene side, every minibatch, each into freshly allocated
//! memory — most of a CPU training step after the matmuls. Fused, it is one pass per row forward
//! and one backward, rows in parallel (rayon). Other devices (and other dtypes) use the composed
//! ops, which `fused_matches_composed` checks this against.
//!
//! Forward per row: `h = x + b`, `y = (h − mean) / sqrt(var + eps)` (population variance),
//! `a = y` where `y > 0`, else `slope · y`, `out = a · mask`. Backward: `dy = g · mask · (y > 0 ?
//! 1 : slope)`, the LayerNorm gradient `dh = (dy − mean(dy) − y · mean(dy · y)) / sqrt(var +
//! eps)`; `dx = dh`, `db = Σ_rows dh`. The mask (0 or 1 / (1 − p) per element) is a constant of
//! the op, drawn by the caller.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

pub const LN_EPS: f64 = 1e-5;
pub const LEAKY_SLOPE: f64 = 0.01;

struct BlockActivation {
    /// `[rows × width]` row-major, or none (no dropout).
    mask: Option<Arc<Vec<f32>>>,
}

/// Mean and 1 / sqrt(var + eps) of one row (accumulated in f64).
fn row_stats(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + LN_EPS).sqrt()) as f32)
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("block activation: f32 only")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("block activation: contiguous input only")
    };
    Ok(&v[a..b])
}

/// The f32 values of a contiguous CPU tensor's storage.
fn cpu_values<'a>(s: &'a candle_core::Storage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let candle_core::Storage::Cpu(cpu) = s else {
        candle_core::bail!("block activation: CPU tensors only")
    };
    f32_slice(cpu, l)
}

impl BlockActivation {
    /// `(x + b)` of row `r` into `h`.
    fn biased(xr: &[f32], b: &[f32], h: &mut [f32]) {
        for ((h, &v), &bv) in h.iter_mut().zip(xr).zip(b) {
            *h = v + bv;
        }
    }

    fn mask_row(&self, r: usize, c: usize) -> Option<&[f32]> {
        self.mask.as_ref().map(|m| &m[r * c..(r + 1) * c])
    }

    /// The gradient `d` of row `i`'s input `xr` (bias `b`) from the upstream gradient `gr`.
    fn row_backward(&self, i: usize, xr: &[f32], b: &[f32], gr: &[f32], d: &mut [f32]) {
        let slope = LEAKY_SLOPE as f32;
        // d holds h = x + b, then dy, then the input gradient
        Self::biased(xr, b, d);
        let (mean, inv) = row_stats(d);
        let mask = self.mask_row(i, d.len());
        let n = d.len() as f64;
        let (mut s_dy, mut s_dyy) = (0f64, 0f64);
        for (k, (dk, &gv)) in d.iter_mut().zip(gr).enumerate() {
            let y = (*dk - mean) * inv;
            let gm = mask.map_or(gv, |m| gv * m[k]);
            let dy = if y > 0.0 { gm } else { slope * gm };
            s_dy += dy as f64;
            s_dyy += (dy * y) as f64;
            *dk = dy;
        }
        let (m_dy, m_dyy) = ((s_dy / n) as f32, (s_dyy / n) as f32);
        for (k, dk) in d.iter_mut().enumerate() {
            let y = (xr[k] + b[k] - mean) * inv;
            *dk = (*dk - m_dy - y * m_dyy) * inv;
        }
    }
}

impl CustomOp2 for BlockActivation {
    fn name(&self) -> &'static str {
        "bias_layer_norm_leaky_relu_dropout"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (r, c) = l1.shape().dims2()?;
        let (x, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        if b.len() != c || self.mask.as_ref().is_some_and(|m| m.len() != r * c) {
            candle_core::bail!("block activation: bias or mask does not match [{r} × {c}]")
        }
        let slope = LEAKY_SLOPE as f32;
        let mut out = vec![0f32; r * c];
        out.par_chunks_mut(c.max(1))
            .zip(x.par_chunks(c.max(1)))
            .enumerate()
            .for_each(|(i, (o, xr))| {
                Self::biased(xr, b, o);
                let (mean, inv) = row_stats(o);
                let mask = self.mask_row(i, c);
                for (k, o) in o.iter_mut().enumerate() {
                    let y = (*o - mean) * inv;
                    let a = if y > 0.0 { y } else { slope * y };
                    *o = mask.map_or(a, |m| a * m[k]);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (r, c) = x.dims2()?;
        let mut dx = vec![0f32; r * c];
        let (x, b, g) = (x.contiguous()?, b.contiguous()?, grad.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (xv, bv, gv) = (
            cpu_values(&xs, xl)?,
            cpu_values(&bs, bl)?,
            cpu_values(&gs, gl)?,
        );
        dx.par_chunks_mut(c.max(1))
            .zip(xv.par_chunks(c.max(1)).zip(gv.par_chunks(c.max(1))))
            .enumerate()
            .for_each(|(i, (d, (xr, gr)))| self.row_backward(i, xr, bv, gr, d));
        let db = column_sums(&dx, r, c);
        Ok((
            Some(Tensor::from_vec(dx, (r, c), x.device())?),
            Some(Tensor::from_vec(db, c, b.device())?),
        ))
    }
}

/// Σ over rows of a `[r × c]` row-major matrix, in row order per column (f64 accumulation),
/// columns split across threads.
pub(super) fn column_sums(m: &[f32], r: usize, c: usize) -> Vec<f32> {
    const COLS: usize = 64;
    let mut out = vec![0f32; c];
    out.par_chunks_mut(COLS).enumerate().for_each(|(j, o)| {
        let j0 = j * COLS;
        let mut acc = vec![0f64; o.len()];
        for i in 0..r {
            for (a, &v) in acc.iter_mut().zip(&m[i * c + j0..i * c + j0 + o.len()]) {
                *a += v as f64;
            }
        }
        for (o, a) in o.iter_mut().zip(acc) {
            *o = a as f32;
        }
    });
    out
}

/// The composed form (any device and dtype).
pub fn composed(h: &Tensor, b: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let h = h.broadcast_add(b)?;
    let mean = h.mean_keepdim(1)?;
    let hc = h.broadcast_sub(&mean)?;
    let var = hc.sqr()?.mean_keepdim(1)?;
    let hn = hc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
    let a = candle_nn::ops::leaky_relu(&hn, LEAKY_SLOPE)?;
    match mask {
        Some(m) => a.mul(m),
        None => Ok(a),
    }
}

/// A hidden block's activation of the matmul output `h` (`[rows × width]`): LeakyReLU of the
/// LayerNorm (no affine) of `h + b`, times the dropout `mask` (row-major `[rows × width]`, or
/// none). Fused on the CPU in f32, composed elsewhere.
pub fn block_activation(
    h: &Tensor,
    b: &Tensor,
    mask: Option<Vec<f32>>,
) -> candle_core::Result<Tensor> {
    if matches!(h.device(), Device::Cpu) && h.dtype() == DType::F32 && h.rank() == 2 {
        let op = BlockActivation {
            mask: mask.map(Arc::new),
        };
        h.contiguous()?.apply_op2(&b.contiguous()?, op)
    } else {
        let mask = mask
            .map(|m| Tensor::from_vec(m, h.shape(), h.device())?.to_dtype(h.dtype()))
            .transpose()?;
        composed(h, b, mask.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn max_abs(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// The fused op and candle's composed ops agree in value and in the gradients of `x` and `b`,
    /// with and without a dropout mask (relative to the largest gradient, 1e-5).
    #[test]
    fn fused_matches_composed() -> candle_core::Result<()> {
        let mut rng = crate::training::seeded_rng(7);
        let (r, c) = (37, 53);
        let x0 = crate::training::normal_vec(r * c, &mut rng);
        let w0 = crate::training::normal_vec(r * c, &mut rng);
        let b0 = crate::training::normal_vec(c, &mut rng);
        let mask: Vec<f32> = (0..r * c)
            .map(|i| if i % 7 == 3 { 0.0 } else { 1.0 / 0.9 })
            .collect();
        for mask in [None, Some(mask)] {
            let x = Var::from_vec(
                x0.iter().map(|v| v * 3.0 + 0.5).collect(),
                (r, c),
                &Device::Cpu,
            )?;
            let b = Var::from_vec(b0.clone(), c, &Device::Cpu)?;
            let w = Tensor::from_vec(w0.clone(), (r, c), &Device::Cpu)?;
            let mask_t = mask
                .clone()
                .map(|m| Tensor::from_vec(m, (r, c), &Device::Cpu))
                .transpose()?;
            let fused = block_activation(x.as_tensor(), b.as_tensor(), mask.clone())?;
            let comp = composed(x.as_tensor(), b.as_tensor(), mask_t.as_ref())?;
            assert!(max_abs(&fused, &comp)? < 1e-5);
            // gradients of a weighted sum (a non-trivial upstream gradient)
            let gf = fused.mul(&w)?.sum_all()?.backward()?;
            let gc = comp.mul(&w)?.sum_all()?.backward()?;
            for v in [x.as_tensor(), b.as_tensor()] {
                let (a, e) = (gf.get(v).unwrap(), gc.get(v).unwrap());
                let scale = e.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                let d = max_abs(a, e)?;
                assert!(d / scale < 1e-5, "{d} vs scale {scale}");
            }
            if mask.is_some() {
                // dropped elements are exactly zero
                let v = fused.flatten_all()?.to_vec1::<f32>()?;
                assert!((0..r * c).filter(|i| i % 7 == 3).all(|i| v[i] == 0.0));
            }
        }
        Ok(())
    }

    #[test]
    fn column_sums_match_hand_computation() {
        let m: Vec<f32> = (0..3 * 70).map(|v| v as f32).collect();
        let s = column_sums(&m, 3, 70);
        assert_eq!(s[0], 0.0 + 70.0 + 140.0);
        assert_eq!(s[69], 69.0 + 139.0 + 209.0);
        assert_eq!(s.len(), 70);
    }
}
