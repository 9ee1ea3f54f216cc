//! Padding-free ("varlen") attention for the CPU f32 path: all real tokens of a batch are packed
//! into one [T, 3H] QKV matrix and each sequence attends only to itself. No mask, no padded
//! compute, no head transposes: every (sequence, head) is two small single-threaded GEMMs
//! (`gemm` crate, the kernel candle itself uses) with strided views straight into QKV, and
//! sequences run in parallel with rayon — small batched matmuls through candle spend most of
//! their time in per-call overhead.

use rayon::prelude::*;

/// ctx [T, H] from packed qkv [T, 3H] (q | k | v, heads contiguous within each), `lens` summing to T.
pub fn packed_attention(
    data: &[f32],
    lens: &[usize],
    heads: usize,
    head_dim: usize,
    out: &mut [f32],
) {
    let h = heads * head_dim;
    let three_h = 3 * h;
    let t: usize = lens.iter().sum();
    debug_assert!(
        data.len() == t * three_h && out.len() == t * h,
        "packed attention shapes"
    );
    // split the output into one contiguous block of rows per sequence
    let mut blocks: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(lens.len());
    let mut rest = out;
    let mut off = 0;
    for &l in lens {
        let (a, b) = rest.split_at_mut(l * h);
        blocks.push((off, l, a));
        rest = b;
        off += l;
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    blocks
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |scores, (off, l, block)| {
            scores.resize(l * l, 0.0);
            let rs = three_h as isize;
            for hd in 0..heads {
                let q = data[off * three_h + hd * head_dim..].as_ptr();
                let k = data[off * three_h + h + hd * head_dim..].as_ptr();
                let v = data[off * three_h + 2 * h + hd * head_dim..].as_ptr();
                // SAFETY: all pointers address `l` rows of `head_dim` columns inside `data`/`scores`/
                // `block`, with the row/column strides given; `block` is this task's exclusive slice.
                unsafe {
                    // scores[i, j] = scale · q_i · k_j   (lhs = Q [l×d], rhs = Kᵀ [d×l])
                    gemm::gemm(
                        l,
                        l,
                        head_dim,
                        scores.as_mut_ptr(),
                        1,
                        l as isize,
                        false,
                        q,
                        1,
                        rs,
                        k,
                        rs,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(l) {
                    super::kernels::softmax_inplace(row);
                }
                unsafe {
                    // ctx[i, hd·d + c] = Σ_j p[i, j] · v[j, c]
                    gemm::gemm(
                        l,
                        head_dim,
                        l,
                        block.as_mut_ptr().add(hd * head_dim),
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        l as isize,
                        v,
                        1,
                        rs,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
}
