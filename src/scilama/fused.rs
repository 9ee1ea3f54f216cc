//! LayerNorm without affine (eps 1e-5) followed by LeakyReLU, as one CPU op with its own backward.
//!
//! Composed from candle's elementwise ops this is ~12 single-threaded passes forward and more
//! backward over the `[genes × 900]` activations of the gene side, every minibatch — most of a
//! CPU training step. Fused, it is one pass per row, rows in parallel (rayon). Other devices (and
//! other dtypes) use the composed ops, which `fused_matches_composed` checks this against.
//!
//! Forward per row: `y = (x − mean) / sqrt(var + eps)` (population variance), `out = y` where
//! `y > 0`, else `slope · y`. Backward: `dy = g · (y > 0 ? 1 : slope)`, then the LayerNorm
//! gradient `dx = (dy − mean(dy) − y · mean(dy · y)) / sqrt(var + eps)`.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

pub const LN_EPS: f64 = 1e-5;
pub const LEAKY_SLOPE: f64 = 0.01;

struct LnLeaky;

/// Mean and 1 / sqrt(var + eps) of one row (accumulated in f64).
fn row_stats(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + LN_EPS).sqrt()) as f32)
}

fn rows_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<(&'a [f32], usize, usize)> {
    let (r, c) = l.shape().dims2()?;
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("layer_norm_leaky_relu: f32 only")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("layer_norm_leaky_relu: contiguous input only")
    };
    Ok((&v[a..b], r, c))
}

impl CustomOp1 for LnLeaky {
    fn name(&self) -> &'static str {
        "layer_norm_leaky_relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, r, c) = rows_f32(s, l)?;
        let mut out = vec![0f32; r * c];
        let slope = LEAKY_SLOPE as f32;
        out.par_chunks_mut(c.max(1))
            .zip(x.par_chunks(c.max(1)))
            .for_each(|(o, xr)| {
                let (mean, inv) = row_stats(xr);
                for (o, &v) in o.iter_mut().zip(xr) {
                    let y = (v - mean) * inv;
                    *o = if y > 0.0 { y } else { slope * y };
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (r, c) = arg.dims2()?;
        let x = arg.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let slope = LEAKY_SLOPE as f32;
        let mut dx = vec![0f32; r * c];
        dx.par_chunks_mut(c.max(1))
            .zip(x.par_chunks(c.max(1)).zip(g.par_chunks(c.max(1))))
            .for_each(|(d, (xr, gr))| {
                let (mean, inv) = row_stats(xr);
                let n = xr.len() as f64;
                let (mut s_dy, mut s_dyy) = (0f64, 0f64);
                for (k, (&v, &gv)) in xr.iter().zip(gr).enumerate() {
                    let y = (v - mean) * inv;
                    let dy = if y > 0.0 { gv } else { slope * gv };
                    d[k] = dy;
                    s_dy += dy as f64;
                    s_dyy += (dy * y) as f64;
                }
                let (m_dy, m_dyy) = ((s_dy / n) as f32, (s_dyy / n) as f32);
                for (dk, &v) in d.iter_mut().zip(xr) {
                    let y = (v - mean) * inv;
                    *dk = (*dk - m_dy - y * m_dyy) * inv;
                }
            });
        Ok(Some(Tensor::from_vec(dx, (r, c), arg.device())?))
    }
}

/// The composed form (any device and dtype).
pub fn composed(h: &Tensor) -> candle_core::Result<Tensor> {
    let mean = h.mean_keepdim(1)?;
    let hc = h.broadcast_sub(&mean)?;
    let var = hc.sqr()?.mean_keepdim(1)?;
    let hn = hc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
    candle_nn::ops::leaky_relu(&hn, LEAKY_SLOPE)
}

/// LayerNorm (no affine) then LeakyReLU of a `[rows × width]` tensor: fused on the CPU in f32,
/// composed elsewhere.
pub fn layer_norm_leaky_relu(h: &Tensor) -> candle_core::Result<Tensor> {
    if matches!(h.device(), Device::Cpu) && h.dtype() == DType::F32 && h.rank() == 2 {
        h.contiguous()?.apply_op1(LnLeaky)
    } else {
        composed(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn fused_matches_composed() -> candle_core::Result<()> {
        let mut rng = crate::training::seeded_rng(7);
        let (r, c) = (37, 53);
        let x0 = crate::training::normal_vec(r * c, &mut rng);
        let w0 = crate::training::normal_vec(r * c, &mut rng);
        let x = Var::from_vec(
            x0.iter().map(|v| v * 3.0 + 0.5).collect(),
            (r, c),
            &Device::Cpu,
        )?;
        let w = Tensor::from_vec(w0, (r, c), &Device::Cpu)?;
        let fused = layer_norm_leaky_relu(x.as_tensor())?;
        let comp = composed(x.as_tensor())?;
        let diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        assert!(diff(&fused, &comp)? < 1e-5);
        // gradients of a weighted sum (a non-trivial upstream gradient)
        let gf = fused.mul(&w)?.sum_all()?.backward()?;
        let gc = comp.mul(&w)?.sum_all()?.backward()?;
        let (a, b) = (
            gf.get(x.as_tensor()).unwrap(),
            gc.get(x.as_tensor()).unwrap(),
        );
        let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(
            diff(a, b)? / scale < 1e-5,
            "{} vs scale {scale}",
            diff(a, b)?
        );
        Ok(())
    }
}
