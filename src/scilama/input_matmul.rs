//! `x · Wᵀ` for an input `x` that needs no gradient (the data a first encoder layer reads).
//!
//! candle's matmul backward computes both operands' gradients, so every training step also
//! multiplied the upstream gradient back onto the constant input: `[genes × 900] · [900 × 384]`
//! on the gene side and `[cells × 900] · [900 × genes]` on the cell side, ≈ 11 % of a default
//! step's matmul work, plus a zeroed buffer and an add for a gradient nobody reads. This op
//! returns only `∂W = gᵀ · x`. CPU f32 only (the op's forward is candle's own CPU matmul);
//! other devices, dtypes and inputs that track a gradient use the plain matmul, which
//! `matches_plain_matmul` checks this against.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};

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
        let (m, k) = xl.shape().dims2()?;
        let (n, kw) = wl.shape().dims2()?;
        if k != kw {
            candle_core::bail!("input matmul: x is [{m} × {k}], W is [{n} × {kw}]")
        }
        let out = x.matmul(w, (1, m, n, k), xl, &wl.transpose(0, 1)?)?;
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

/// `x · wᵀ` (`x` `[m × k]`, `w` `[n × k]`); without the gradient of `x` when `x` tracks none
/// and the tensors are CPU f32.
pub fn input_matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu)
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2;
    if cpu_f32 && !x.track_op() {
        x.apply_op2(w, InputMatmul)
    } else {
        x.matmul(&w.t()?)
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
            let rel = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
                let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                let s = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                Ok(d / s)
            };
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
}
