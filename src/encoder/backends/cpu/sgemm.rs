//! f32 GEMM for the CPU encoder's linear layers: `out = act(x·W + bias [+ residual])`.
//!
//! Weights are constant, so they are packed once at load into 16-column panels; activations are
//! packed per call into 6-row micro-panels (BLIS layout) and a 6×16 AVX2/FMA micro-kernel does
//! the work, with bias, residual and erf-GELU fused into its final store. Hand-written because
//! at BERT shapes on 2 AMD EPYC Zen 3 cores (AVX2/FMA) the `gemm` crate reached 95–110 GFLOP/s against
//! 90–145 for MKL (through PyTorch) and 128–152 for NumPy's OpenBLAS, and no GEMM crate takes
//! pre-packed weights or a fused epilogue.
//!
//! The AVX2/FMA path is chosen at run time (`is_x86_feature_detected!`), so one generic x86-64
//! binary runs everywhere; CPUs without AVX2/FMA and non-x86 targets use the `gemm` crate.

use super::features::use_avx2;
use rayon::prelude::*;

const MR: usize = 6;
const NR: usize = 16;
/// k-block: a 16-column B micro-panel (≤ 24 KiB) stays in L1 while 6-row A panels stream; 384
/// keeps MiniLM's K in one block. Tuned on 2 Zen 3 cores among KC 256/384/512 × MC 72/144/288.
const KC: usize = 384;
/// Rows of A packed per block (≤ 216 KiB with KC, kept in the 512 KiB L2).
const MC: usize = 144;

/// Activation applied in the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    GeluErf,
}

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Lane8([f32; 8]);

/// A [k, n] weight matrix in the layout the micro-kernel reads.
pub struct PackedWeights {
    k: usize,
    n: usize,
    /// panel p (columns 16p..16p+16) row kk at floats [(p·k + kk)·16, +16); zero past column n.
    panels: Vec<Lane8>,
    /// row-major [k, n] for the `gemm` crate fallback (no AVX2/FMA).
    plain: Vec<f32>,
}

/// Name of the kernel path this CPU takes (recorded in bench output).
pub fn kernel_name() -> &'static str {
    if use_avx2() {
        "celltext avx2-fma 6x16"
    } else {
        "gemm crate"
    }
}

impl PackedWeights {
    /// Pack row-major `w` [k, n].
    pub fn pack(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight shape");
        if !use_avx2() {
            return Self {
                k,
                n,
                panels: Vec::new(),
                plain: w.to_vec(),
            };
        }
        let np = n.div_ceil(NR);
        let mut panels = vec![Lane8([0.0; 8]); np * k * 2];
        let flat = lanes_mut(&mut panels);
        for p in 0..np {
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            for kk in 0..k {
                let dst = &mut flat[(p * k + kk) * NR..][..cols];
                dst.copy_from_slice(&w[kk * n + c0..kk * n + c0 + cols]);
            }
        }
        Self {
            k,
            n,
            panels,
            plain: Vec::new(),
        }
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
}

fn lanes_mut(v: &mut [Lane8]) -> &mut [f32] {
    // SAFETY: Lane8 is repr(C) [f32; 8] with no padding.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut f32, v.len() * 8) }
}
fn lanes(v: &[Lane8]) -> &[f32] {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const f32, v.len() * 8) }
}

/// Exact-form GELU, 0.5·x·(1 + erf(x/√2)), with the erf of `cpu_kernels::erf_f32`.
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + super::kernels::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// out [m, n] = act(x [m, k] · W + bias (+ residual [m, n])). Panics on shape mismatch (callers
/// are the model code, whose shapes come from the checked config).
pub fn linear(
    x: &[f32],
    m: usize,
    w: &PackedWeights,
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    let (k, n) = (w.k, w.n);
    if !check_shapes(x, m, k, n, bias, residual, out) {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    // the layout chosen at pack time decides the path (only AVX2/FMA CPUs get panels)
    if w.panels.is_empty() {
        return fallback(x, m, w, bias, residual, act, out, threads);
    }
    // a few row tasks per thread for balance; each packs its own A blocks
    let rows_per_task = (m.div_ceil(threads * 4))
        .next_multiple_of(MR)
        .max(MC.min(m.next_multiple_of(MR)));
    out.par_chunks_mut(rows_per_task * n)
        .enumerate()
        .for_each_init(Vec::<f32>::new, |apack, (t, o)| {
            let r0 = t * rows_per_task;
            let rows = o.len() / n;
            let xs = &x[r0 * k..(r0 + rows) * k];
            let res = residual.map(|r| &r[r0 * n..(r0 + rows) * n]);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: use_avx2() checked the CPU features; slices have the asserted shapes.
            unsafe {
                gemm_rows_avx2(xs, rows, k, n, w, bias, res, act, o, apack)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (xs, res, apack);
        });
}

/// Assert a linear layer's slice shapes (callers are the model code, whose shapes come from the
/// checked config); false when there is nothing to compute.
pub(super) fn check_shapes(
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    bias: &[f32],
    residual: Option<&[f32]>,
    out: &[f32],
) -> bool {
    assert!(
        x.len() == m * k && out.len() == m * n && bias.len() == n,
        "internal: linear shape mismatch"
    );
    if let Some(r) = residual {
        assert_eq!(r.len(), m * n, "internal: residual shape mismatch");
    }
    m > 0 && n > 0
}

#[allow(clippy::too_many_arguments)]
fn fallback(
    x: &[f32],
    m: usize,
    w: &PackedWeights,
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
    threads: usize,
) {
    let (k, n) = (w.k, w.n);
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        row.copy_from_slice(bias);
        if let Some(r) = residual {
            for (o, r) in row.iter_mut().zip(&r[i * n..(i + 1) * n]) {
                *o += *r;
            }
        }
    });
    // SAFETY: out [m, n], x [m, k], plain [k, n], row-major, in bounds.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.plain.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        );
    }
    if act == Act::GeluErf {
        out.par_chunks_mut(1 << 14)
            .for_each(|c| c.iter_mut().for_each(|v| *v = gelu_scalar(*v)));
    }
}

/// k-block sizes: equal blocks of at most KC (1536 → 4 × 384; 1024 → 3 × 342, not 384 + 384 + 256).
fn k_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    let nb = k.div_ceil(KC).max(1);
    let kc = k.div_ceil(nb).max(1);
    (0..nb)
        .map(move |b| (b * kc, kc.min(k.saturating_sub(b * kc))))
        .filter(|&(_, len)| len > 0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_rows_avx2(
    x: &[f32],
    rows: usize,
    k: usize,
    n: usize,
    w: &PackedWeights,
    bias: &[f32],
    residual: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
    apack: &mut Vec<f32>,
) {
    let np = n.div_ceil(NR);
    let bp = lanes(&w.panels);
    if k == 0 {
        for i in 0..rows {
            for j in 0..n {
                let mut v = bias[j] + residual.map_or(0.0, |r| r[i * n + j]);
                if act == Act::GeluErf {
                    v = gelu_scalar(v);
                }
                out[i * n + j] = v;
            }
        }
        return;
    }
    for (pc, kc) in k_blocks(k) {
        let first = pc == 0;
        let last = pc + kc == k;
        let mut ic = 0;
        while ic < rows {
            let mc = MC.min(rows - ic);
            let panels = mc.div_ceil(MR);
            apack.clear();
            apack.resize(panels * MR * kc, 0.0);
            // A block rows ic..ic+mc, columns pc..pc+kc → [panel][kk][6]; rows past the end stay 0
            for r in 0..mc {
                let src = &x[(ic + r) * k + pc..(ic + r) * k + pc + kc];
                let (p, rr) = (r / MR, r % MR);
                let dst = &mut apack[p * MR * kc..(p + 1) * MR * kc];
                for (kk, v) in src.iter().enumerate() {
                    *dst.get_unchecked_mut(kk * MR + rr) = *v;
                }
            }
            for jp in 0..np {
                let j0 = jp * NR;
                let cols = NR.min(n - j0);
                let b = bp.as_ptr().add((jp * k + pc) * NR);
                for p in 0..panels {
                    let i0 = ic + p * MR;
                    let rws = MR.min(rows - i0);
                    let a = apack.as_ptr().add(p * MR * kc);
                    let c = out.as_mut_ptr().add(i0 * n + j0);
                    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr().add(i0 * n + j0));
                    kernel_6x16(
                        kc,
                        a,
                        b,
                        c,
                        n,
                        rws,
                        cols,
                        first,
                        last,
                        bias.as_ptr().add(j0),
                        res,
                        act,
                    );
                }
            }
            ic += mc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
    let z2 = _mm256_mul_ps(z, z);
    let mut p = _mm256_set1_ps(-2.726_142_3e-10);
    for c in [
        2.770_681_4e-8f32,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600e-3,
        -1.609_603_3e-2,
    ] {
        p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(c));
    }
    let mut q = _mm256_set1_ps(-1.456_607_2e-5);
    for c in [
        -2.133_740_6e-4f32,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_474e-2,
    ] {
        q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(c));
    }
    let erf = _mm256_div_ps(_mm256_mul_ps(z, p), q);
    let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
    _mm256_fmadd_ps(half_x, erf, half_x)
}

/// GELU in place over `v`: 8 lanes at a time with [`gelu8`], the remainder through a zero-padded
/// 8-lane block (so a value never depends on where a slice ends).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gelu_slice_avx2(v: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut chunks = v.chunks_exact_mut(8);
    for ch in &mut chunks {
        _mm256_storeu_ps(ch.as_mut_ptr(), gelu8(_mm256_loadu_ps(ch.as_ptr())));
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0f32; 8];
        buf[..rest.len()].copy_from_slice(rest);
        _mm256_storeu_ps(buf.as_mut_ptr(), gelu8(_mm256_loadu_ps(buf.as_ptr())));
        rest.copy_from_slice(&buf[..rest.len()]);
    }
}

/// C[rows, cols] (row stride ldc) = epilogue(A panel [kc][6] · B panel [kc][16]).
/// First k-block: acc + bias (+ residual); later blocks: acc + C. Last block applies `act`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
    last: bool,
    bias: *const f32,
    res: *const f32,
    act: Act,
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 12];
    let (mut a, mut b) = (a, b);
    // the C tile is read in the epilogue: start fetching it now
    for r in 0..rows {
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + 8) as *const i8);
    }
    macro_rules! step {
        ($u:expr) => {{
            let b0 = _mm256_load_ps(b.add($u * NR));
            let b1 = _mm256_load_ps(b.add($u * NR + 8));
            for r in 0..MR {
                let av = _mm256_broadcast_ss(&*a.add($u * MR + r));
                acc[2 * r] = _mm256_fmadd_ps(av, b0, acc[2 * r]);
                acc[2 * r + 1] = _mm256_fmadd_ps(av, b1, acc[2 * r + 1]);
            }
        }};
    }
    // unrolled ×4: loop overhead is otherwise 3 of every 17 instructions
    for _ in 0..kc / 4 {
        step!(0);
        step!(1);
        step!(2);
        step!(3);
        a = a.add(4 * MR);
        b = b.add(4 * NR);
    }
    for _ in 0..kc % 4 {
        step!(0);
        a = a.add(MR);
        b = b.add(NR);
    }
    let gelu = last && act == Act::GeluErf;
    if rows == MR && cols == NR {
        for r in 0..MR {
            for h in 0..2 {
                let cp = c.add(r * ldc + 8 * h);
                let mut v = acc[2 * r + h];
                if first {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(bias.add(8 * h)));
                    if !res.is_null() {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(res.add(r * ldc + 8 * h)));
                    }
                } else {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(cp));
                }
                if gelu {
                    v = gelu8(v);
                }
                _mm256_storeu_ps(cp, v);
            }
        }
    } else {
        let mut tile = [0f32; MR * NR];
        for (i, v) in acc.iter().enumerate() {
            _mm256_storeu_ps(tile.as_mut_ptr().add(8 * i), *v);
        }
        for r in 0..rows {
            for j in 0..cols {
                let cp = c.add(r * ldc + j);
                let mut v = tile[r * NR + j];
                if first {
                    v += *bias.add(j);
                    if !res.is_null() {
                        v += *res.add(r * ldc + j);
                    }
                } else {
                    v += *cp;
                }
                tile[r * NR + j] = v;
            }
        }
        // the same 8-lane GELU as full tiles, so a row's values never depend on where its batch
        // cut the rows (sharded runs are bit-identical to one run)
        if gelu {
            for ch in tile.chunks_exact_mut(8) {
                _mm256_storeu_ps(ch.as_mut_ptr(), gelu8(_mm256_loadu_ps(ch.as_ptr())));
            }
        }
        for r in 0..rows {
            for j in 0..cols {
                *c.add(r * ldc + j) = tile[r * NR + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::erf64;
    use super::*;
    use rand::{Rng, SeedableRng};

    /// f64 reference: act(x·W + b + r)
    #[allow(clippy::too_many_arguments)] // mirrors the kernel's signature, argument for argument
    fn reference(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[f32],
        n: usize,
        b: &[f32],
        r: Option<&[f32]>,
        act: Act,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = b[j] as f64 + r.map_or(0.0, |r| r[i * n + j] as f64);
                for p in 0..k {
                    s += x[i * k + p] as f64 * w[p * n + j] as f64;
                }
                if act == Act::GeluErf {
                    s = 0.5 * s * (1.0 + erf64(s / std::f64::consts::SQRT_2));
                }
                out[i * n + j] = s;
            }
        }
        out
    }
    #[test]
    fn matches_f64_reference_on_edge_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let shapes = [
            (1, 1, 1),
            (5, 3, 17),
            (6, 16, 16),
            (7, 300, 33),
            (13, 513, 40),
            (73, 64, 31),
            (150, 384, 48),
            (9, 0, 5),
        ];
        for &(m, k, n) in &shapes {
            let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let w: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let r: Vec<f32> = (0..m * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let packed = PackedWeights::pack(&w, k, n);
            // the `gemm` crate path that CPUs without AVX2/FMA take
            let plain = PackedWeights {
                k,
                n,
                panels: Vec::new(),
                plain: w.clone(),
            };
            for (pw, (res, act)) in [&packed, &plain].into_iter().flat_map(|pw| {
                [
                    (None, Act::None),
                    (Some(&r[..]), Act::None),
                    (None, Act::GeluErf),
                    (Some(&r[..]), Act::GeluErf),
                ]
                .map(|c| (pw, c))
            }) {
                let mut out = vec![f32::NAN; m * n];
                linear(&x, m, pw, &b, res, act, &mut out);
                let want = reference(&x, m, k, &w, n, &b, res, act);
                let tol = 1e-5 * (k as f64).sqrt().max(1.0) + 1e-6;
                for (i, (g, e)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        ((*g as f64) - e).abs() <= tol * e.abs().max(1.0),
                        "{m}x{k}x{n} {act:?} res={} plain={} [{i}]: {g} vs {e}",
                        res.is_some(),
                        pw.panels.is_empty()
                    );
                }
            }
        }
    }

    #[test]
    fn k_blocks_cover_k_evenly() {
        for k in [1, 255, 256, 257, 384, 768, 1536, 3072, 4096] {
            let b: Vec<_> = k_blocks(k).collect();
            assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), k);
            assert!(b.iter().all(|x| x.1 <= KC));
            assert_eq!(b[0].0, 0);
        }
    }
}
