//! From storage bytes to candle tensors: torch element types, the (possibly strided, offset)
//! view a tensor takes of its storage, bounds checks against the bytes present, and decoding into
//! a contiguous CPU tensor of the matching candle dtype.

use super::globals::{StDType, StorageRef, TensorRef};
use crate::pickle::printable;
use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};

/// Materialized output may exceed the file size only through views sharing one storage (tied
/// weights) or zero strides; cap it so a tiny hostile file cannot demand terabytes.
pub(super) fn output_budget(file_len: usize) -> u64 {
    (file_len as u64)
        .saturating_mul(16)
        .saturating_add(64 << 20)
}

/// Build a contiguous CPU tensor from a (possibly strided, offset) view of a raw storage.
/// `data` holds the whole root storage (at least `numel × element size` bytes).
pub(super) fn materialize(
    name: &str,
    t: &TensorRef,
    s: &StorageRef,
    data: &[u8],
    big_endian: bool,
    budget: &mut u64,
) -> Result<Tensor> {
    let es = s.dtype.size();
    let pname = printable(name);
    let bad = |msg: String| anyhow!("tensor '{pname}': {msg}");

    // Storage (legacy views select a sub-range of the root storage).
    let root_bytes = usize::try_from(s.numel)
        .ok()
        .and_then(|n| n.checked_mul(es))
        .filter(|&n| n <= data.len())
        .ok_or_else(|| {
            bad(format!(
                "storage '{}' is shorter than its declared {} elements",
                printable(&s.key),
                s.numel
            ))
        })?;
    let mut storage = &data[..root_bytes];
    if let Some((voff, vsize)) = s.view {
        let range = voff
            .checked_add(vsize)
            .filter(|&end| end <= s.numel)
            .and_then(|end| {
                Some((
                    usize::try_from(voff).ok()? * es,
                    usize::try_from(end).ok()? * es,
                ))
            });
        let (a, b) = range.ok_or_else(|| {
            bad(format!(
                "storage view [{voff}, +{vsize}) exceeds storage '{}' of {} elements",
                printable(&s.key),
                s.numel
            ))
        })?;
        storage = &storage[a..b];
    }
    let storage_numel = storage.len() / es;

    let numel = t
        .size
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("size {:?} overflows", t.size)))?;
    let shape: &[usize] = &t.size;
    if numel == 0 {
        return to_tensor(&[], s.dtype, shape, big_endian).map_err(|e| bad(format!("{e}")));
    }

    // Highest element index the view touches must lie inside the storage.
    let mut max_index = t.offset;
    for (&d, &st) in t.size.iter().zip(&t.stride) {
        max_index = (d - 1)
            .checked_mul(st)
            .and_then(|x| max_index.checked_add(x))
            .ok_or_else(|| {
                bad(format!(
                    "size {:?} / stride {:?} overflow",
                    t.size, t.stride
                ))
            })?;
    }
    if max_index >= storage_numel {
        return Err(bad(format!(
            "storage too small: size {:?}, stride {:?}, offset {} reach element {max_index} but storage '{}' has {storage_numel} elements",
            t.size,
            t.stride,
            t.offset,
            printable(&s.key)
        )));
    }
    let out_bytes = numel
        .checked_mul(es)
        .filter(|&n| (n as u64) <= *budget)
        .ok_or_else(|| {
            bad(format!(
                "size {:?} is too large for a file of this size (corrupt or hostile)",
                t.size
            ))
        })?;
    *budget -= out_bytes as u64;

    let mut contiguous = true;
    let mut expect = 1usize;
    for (&d, &st) in t.size.iter().zip(&t.stride).rev() {
        if d != 1 && st != expect {
            contiguous = false;
            break;
        }
        expect = expect.saturating_mul(d);
    }

    let gathered;
    let raw: &[u8] = if contiguous {
        let a = t.offset * es; // ≤ max_index * es < storage.len(): no overflow
        storage
            .get(a..a + out_bytes)
            .ok_or_else(|| bad("internal bounds error".to_string()))?
    } else {
        gathered = gather(storage, es, t.offset, &t.size, &t.stride, out_bytes)
            .ok_or_else(|| bad("internal bounds error".to_string()))?;
        &gathered
    };
    to_tensor(raw, s.dtype, shape, big_endian).map_err(|e| bad(format!("{e}")))
}

/// Copy a strided view into a contiguous buffer. All indices were bounds-checked by the caller;
/// `None` only if that check was wrong.
fn gather(
    storage: &[u8],
    es: usize,
    offset: usize,
    size: &[usize],
    stride: &[usize],
    out_bytes: usize,
) -> Option<Vec<u8>> {
    let nd = size.len();
    let mut out = Vec::with_capacity(out_bytes);
    let (inner_len, inner_stride) = (*size.last()?, *stride.last()?);
    let mut idx = vec![0usize; nd - 1];
    loop {
        let base = offset + idx.iter().zip(stride).map(|(&i, &s)| i * s).sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(storage.get(base * es..(base + inner_len) * es)?);
        } else {
            for j in 0..inner_len {
                let e = base + j * inner_stride;
                out.extend_from_slice(storage.get(e * es..(e + 1) * es)?);
            }
        }
        let mut carry = true;
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < size[d] {
                carry = false;
                break;
            }
            idx[d] = 0;
        }
        if carry {
            break;
        }
    }
    Some(out)
}

/// Decode raw element bytes into a candle tensor of the matching dtype.
fn to_tensor(raw: &[u8], dtype: StDType, shape: &[usize], big_endian: bool) -> Result<Tensor> {
    fn decode<T, const N: usize>(raw: &[u8], big_endian: bool, f: fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                if big_endian {
                    a.reverse();
                }
                f(a)
            })
            .collect()
    }
    let dev = Device::Cpu;
    let be = big_endian;
    // Fast path: little-endian data of a dtype candle has is a plain copy (candle checks that
    // the byte count matches the shape).
    let direct = match dtype {
        StDType::F32 => Some(DType::F32),
        StDType::F64 => Some(DType::F64),
        StDType::F16 => Some(DType::F16),
        StDType::BF16 => Some(DType::BF16),
        StDType::I64 => Some(DType::I64),
        StDType::I32 => Some(DType::I32),
        StDType::I16 => Some(DType::I16),
        StDType::U8 => Some(DType::U8),
        StDType::I8 | StDType::Bool => None,
    };
    if let (Some(d), false) = (direct, big_endian) {
        let bytes = shape
            .iter()
            .try_fold(d.size_in_bytes(), |a, &n| a.checked_mul(n));
        if bytes != Some(raw.len()) {
            bail!("{} bytes do not hold a {shape:?} {d:?} tensor", raw.len());
        }
        return Ok(Tensor::from_raw_buffer(raw, d, shape, &dev)?);
    }
    let t = match dtype {
        StDType::F32 => Tensor::from_vec(decode(raw, be, f32::from_le_bytes), shape, &dev),
        StDType::F64 => Tensor::from_vec(decode(raw, be, f64::from_le_bytes), shape, &dev),
        StDType::F16 => Tensor::from_vec(decode(raw, be, half::f16::from_le_bytes), shape, &dev),
        StDType::BF16 => Tensor::from_vec(decode(raw, be, half::bf16::from_le_bytes), shape, &dev),
        StDType::I64 => Tensor::from_vec(decode(raw, be, i64::from_le_bytes), shape, &dev),
        StDType::I32 => Tensor::from_vec(decode(raw, be, i32::from_le_bytes), shape, &dev),
        StDType::I16 => Tensor::from_vec(decode(raw, be, i16::from_le_bytes), shape, &dev),
        // candle has no i8: widen to I16, sign-extending.
        StDType::I8 => Tensor::from_vec(
            raw.iter().map(|&b| b as i8 as i16).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
        StDType::U8 => Tensor::from_vec(raw.to_vec(), shape, &dev),
        // candle has no bool: U8 holding 0 or 1.
        StDType::Bool => Tensor::from_vec(
            raw.iter().map(|&b| (b != 0) as u8).collect::<Vec<_>>(),
            shape,
            &dev,
        ),
    }?;
    debug_assert!(matches!(
        t.dtype(),
        DType::F32
            | DType::F64
            | DType::F16
            | DType::BF16
            | DType::I64
            | DType::I32
            | DType::I16
            | DType::U8
    ));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_gather() {
        // storage 0..6 as a 2×3 matrix; transpose → 3×2
        let st: Vec<u8> = (0u8..6).collect();
        let g = gather(&st, 1, 0, &[3, 2], &[1, 3], 6).expect("in bounds");
        assert_eq!(g, vec![0, 3, 1, 4, 2, 5]);
        let g = gather(&st, 1, 0, &[2, 2], &[3, 2], 4).expect("in bounds");
        assert_eq!(g, vec![0, 2, 3, 5]);
        // 2-byte elements, inner stride 1 (row runs), offset 1
        let st: Vec<u8> = (0u8..12).collect();
        let g = gather(&st, 2, 1, &[2, 2], &[3, 1], 8).expect("in bounds");
        assert_eq!(g, vec![2, 3, 4, 5, 8, 9, 10, 11]);
    }
}
