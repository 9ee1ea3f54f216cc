//! The matmuls of training, with only the backward they need (CPU f32; other devices, dtypes
//! and ranks use candle's composed ops, which the tests check these against).
//!
//! - [`input_matmul`]: `x · Wᵀ` for an input `x` that needs no gradient (the data a first
//!   encoder layer reads). candle's matmul backward computes both operands' gradients, so every
//!   step also multiplied the upstream gradient back onto the constant input (`[genes × 900] ·
//!   [900 × 384]` on the gene side, `[cells × 900] · [900 × genes]` on the cell side: ≈ 11 % of
//!   a default step's matmul work) and zeroed and added a gradient nobody reads.
//! - [`linear`]: `x · Wᵀ + b` as one op (the μ/log σ² heads, the decoders' last layers, the joint
//!   decoder `h_cell · h_geneᵀ + b`). Composed, candle keeps the `[rows × out]` product as a node
//!   of its own (one more zeroed gradient buffer and add) and sums the bias gradient on one
//!   thread; here `∂b` is a column sum split across threads and `∂x` is skipped when `x` needs
//!   none.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

struct InputMatmul;

impl CustomOp2 for InputMatmul {
    fn name(&self) -> &'static str {
        "input_matmul"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, m, n) = cpu_matmul_t(x, xl, w, wl)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(grad.t()?.matmul(x)?)))
    }
}

/// `x · wᵀ` on the CPU storages (`x` `[m × k]`, `w` `[n × k]`): candle's own matmul.
fn cpu_matmul_t(
    x: &CpuStorage,
    xl: &Layout,
    w: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, usize, usize)> {
    let (m, k) = xl.shape().dims2()?;
    let (n, kw) = wl.shape().dims2()?;
    if k != kw {
        candle_core::bail!("matmul: x is [{m} × {k}], W is [{n} × {kw}]")
    }
    Ok((x.matmul(w, (1, m, n, k), xl, &wl.transpose(0, 1)?)?, m, n))
}

/// Whether the fused CPU ops apply: CPU, f32, matrices.
fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32)
        && ts[0].rank() == 2
        && ts[1].rank() == 2
}

/// `x · wᵀ` (`x` `[m × k]`, `w` `[n × k]`); without the gradient of `x` when `x` tracks none
/// and the tensors are CPU f32.
pub fn input_matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if cpu_f32(&[x, w]) && !x.track_op() {
        x.apply_op2(w, InputMatmul)
    } else {
        x.matmul(&w.t()?)
    }
}

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (out, m, n) = cpu_matmul_t(x, xl, w, wl)?;
        let (CpuStorage::F32(mut y), CpuStorage::F32(bv)) = (out, b) else {
            candle_core::bail!("linear: f32 only")
        };
        let Some((b0, b1)) = bl.contiguous_offsets().filter(|(a, e)| e - a == n) else {
            candle_core::bail!("linear: the bias must be a contiguous vector of {n}")
        };
        let bias = &bv[b0..b1];
        y.par_chunks_mut(n.max(1)).for_each(|row| {
            for (v, &bj) in row.iter_mut().zip(bias) {
                *v += bj;
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = if x.track_op() {
            Some(grad.matmul(w)?)
        } else {
            None
        };
        if !(w.track_op() || b.track_op()) {
            return Ok((dx, None, None));
        }
        let dw = grad.t()?.matmul(x)?;
        let g = grad.contiguous()?;
        let (m, n) = g.dims2()?;
        let db = {
            let (gs, gl) = g.storage_and_layout();
            let candle_core::Storage::Cpu(CpuStorage::F32(v)) = &*gs else {
                candle_core::bail!("linear: CPU f32 gradient only")
            };
            let (a, e) = gl
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("linear: gradient layout".into()))?;
            super::fused::column_sums(&v[a..e], m, n)
        };
        Ok((dx, Some(dw), Some(Tensor::from_vec(db, n, b.device())?)))
    }
}

/// `x · wᵀ + b` (`x` `[m × k]`, `w` `[n × k]`, `b` `[n]`): one op on CPU f32 matrices, candle's
/// composed ops elsewhere.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if cpu_f32(&[x, w, b]) && b.rank() == 1 {
        x.apply_op3(w, &b.contiguous()?, Linear)
    } else {
        x.matmul(&w.t()?)?.broadcast_add(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Value and ∂W equal candle's `x.matmul(w.t())` (the same gemm, so to rounding of the
    /// summation order only: 1e-6 relative), for a strided (transposed) input too; `x` gets no
    /// gradient, and an input that tracks one takes the plain path and gets its gradient.
    #[test]
    fn matches_plain_matmul() -> candle_core::Result<()> {
        let mut rng = crate::training::seeded_rng(11);
        let (m, k, n) = (33, 70, 19);
        let x0 = crate::training::normal_vec(m * k, &mut rng);
        let w0 = crate::training::normal_vec(n * k, &mut rng);
        let g0 = crate::training::normal_vec(m * n, &mut rng);
        let g = Tensor::from_vec(g0, (m, n), &Device::Cpu)?;
        let x_rows = Tensor::from_vec(x0.clone(), (m, k), &Device::Cpu)?;
        let x_cols = Tensor::from_vec(x0, (k, m), &Device::Cpu)?.t()?;
        for x in [x_rows, x_cols] {
            let w = Var::from_vec(w0.clone(), (n, k), &Device::Cpu)?;
            let ours = input_matmul(&x, w.as_tensor())?;
            let plain = x.matmul(&w.as_tensor().t()?)?;
            assert!(rel(&ours, &plain)? < 1e-6);
            let go = ours.mul(&g)?.sum_all()?.backward()?;
            let gp = plain.mul(&g)?.sum_all()?.backward()?;
            assert!(
                rel(
                    go.get(w.as_tensor()).unwrap(),
                    gp.get(w.as_tensor()).unwrap()
                )? < 1e-6
            );
            assert!(go.get(&x).is_none());
        }
        // an input with a gradient keeps it
        let x = Var::from_vec(vec![1f32, 2.0, 3.0, 4.0], (2, 2), &Device::Cpu)?;
        let w = Var::from_vec(vec![1f32, 0.0, 0.0, 2.0], (2, 2), &Device::Cpu)?;
        let y = input_matmul(x.as_tensor(), w.as_tensor())?;
        let gx = y.sum_all()?.backward()?;
        // ∂Σ(x·wᵀ)/∂x = 1 · w = column sums of w as every row: [1, 2]
        let dx = gx.get(x.as_tensor()).unwrap().to_vec2::<f32>()?;
        assert_eq!(dx, vec![vec![1.0, 2.0], vec![1.0, 2.0]]);
        Ok(())
    }

    /// `linear` equals candle's `x.matmul(w.t()).broadcast_add(b)` in value and in the gradients
    /// of x, w and b (1e-6 relative: the same gemm; ∂b summed in f64 here), with x a variable,
    /// x a constant (no gradient) and w a transposed view; the hand case `[[1, 2]]·[[1, 0], [0,
    /// 2]]ᵀ + [10, 20] = [11, 24]`.
    #[test]
    fn linear_matches_composed() -> candle_core::Result<()> {
        let mut rng = crate::training::seeded_rng(12);
        let (m, k, n) = (41, 29, 67);
        let x0 = crate::training::normal_vec(m * k, &mut rng);
        let w0 = crate::training::normal_vec(n * k, &mut rng);
        let b0 = crate::training::normal_vec(n, &mut rng);
        let g = Tensor::from_vec(
            crate::training::normal_vec(m * n, &mut rng),
            (m, n),
            &Device::Cpu,
        )?;
        for (x_var, w_view) in [(true, false), (false, false), (true, true)] {
            let xv = Var::from_vec(x0.clone(), (m, k), &Device::Cpu)?;
            let xc = Tensor::from_vec(x0.clone(), (m, k), &Device::Cpu)?;
            let x = if x_var { xv.as_tensor().clone() } else { xc };
            let wv = if w_view {
                Var::from_vec(w0.clone(), (k, n), &Device::Cpu)?
            } else {
                Var::from_vec(w0.clone(), (n, k), &Device::Cpu)?
            };
            let w = if w_view {
                wv.as_tensor().t()?
            } else {
                wv.as_tensor().clone()
            };
            let b = Var::from_vec(b0.clone(), n, &Device::Cpu)?;
            let ours = linear(&x, &w, b.as_tensor())?;
            let plain = x.matmul(&w.t()?)?.broadcast_add(b.as_tensor())?;
            assert!(rel(&ours, &plain)? < 1e-6);
            let go = ours.mul(&g)?.sum_all()?.backward()?;
            let gp = plain.mul(&g)?.sum_all()?.backward()?;
            for t in [wv.as_tensor(), b.as_tensor()] {
                assert!(rel(go.get(t).unwrap(), gp.get(t).unwrap())? < 1e-6);
            }
            if x_var {
                assert!(rel(go.get(&x).unwrap(), gp.get(&x).unwrap())? < 1e-6);
            } else {
                assert!(go.get(&x).is_none());
            }
        }
        let x = Tensor::from_vec(vec![1f32, 2.0], (1, 2), &Device::Cpu)?;
        let w = Tensor::from_vec(vec![1f32, 0.0, 0.0, 2.0], (2, 2), &Device::Cpu)?;
        let b = Tensor::from_vec(vec![10f32, 20.0], 2, &Device::Cpu)?;
        assert_eq!(
            linear(&x, &w, &b)?.to_vec2::<f32>()?,
            vec![vec![11.0, 24.0]]
        );
        Ok(())
    }

    fn rel(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let s = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        Ok(d / s)
    }
}
