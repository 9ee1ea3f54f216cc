//! `{name: vector}` pickles (GenePT gene embeddings): dict values are lists of Python floats or
//! NumPy 1-D float arrays.
//!
//! NumPy arrays pickle as `numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` followed
//! by BUILD with `(1, shape, dtype, is_fortran, raw_bytes)` (protocols 2-4; protocol 2 spells the
//! bytes `_codecs.encode(str, 'latin1')`), or, from protocol 5, as
//! `numpy._core.numeric._frombuffer(raw_bytes, dtype, shape, order)`. The dtype itself is
//! `numpy.dtype('f4', False, True)` followed by BUILD with `(3, '<', ...)`, whose second field is
//! the byte order. These are the only globals allowed here (plus `collections.OrderedDict`, read
//! as a dict); like the torch globals they are interpreted by the VM, never called.

use super::{printable, Allow, Global, Id, Obj, Unpickler, MAX_DIMS, MAX_UNITS};
use anyhow::{anyhow, bail, Result};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NpGlobal {
    /// `numpy.core.multiarray._reconstruct` / `numpy._core.multiarray._reconstruct`
    Reconstruct,
    /// `numpy.ndarray`: an inert class marker, the first argument of `_reconstruct`.
    Ndarray,
    /// `numpy.dtype`
    Dtype,
    /// `numpy.core.numeric._frombuffer` / `numpy._core.numeric._frombuffer` (protocol 5)
    FromBuffer,
    /// `_codecs.encode`: how protocol 2 writes Python 3 bytes.
    CodecsEncode,
}

pub(super) fn resolve_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
            Global::Numpy(NpGlobal::Reconstruct)
        }
        ("numpy", "ndarray") => Global::Numpy(NpGlobal::Ndarray),
        ("numpy", "dtype") => Global::Numpy(NpGlobal::Dtype),
        ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => {
            Global::Numpy(NpGlobal::FromBuffer)
        }
        ("_codecs", "encode") => Global::Numpy(NpGlobal::CodecsEncode),
        ("collections", "OrderedDict") => Global::OrderedDict,
        _ => return None,
    })
}

/// `numpy.dtype(code, False, True)`; `order` comes from its BUILD state.
#[derive(Debug)]
pub(super) struct NpDtype {
    code: String,
    order: Option<String>,
    /// Subarray, named-field or structured dtype (refused when the array is read).
    structured: bool,
}

/// An ndarray: empty after `_reconstruct`, filled by BUILD (or at once by `_frombuffer`).
#[derive(Debug, Default)]
pub(super) struct NpArray {
    shape: Vec<usize>,
    /// Ids of an `Obj::NpDtype` and of the raw `Obj::Bytes` (an `Obj::List` for object arrays).
    dtype: Option<Id>,
    data: Option<Id>,
}

/// Where a vector came from, for the import manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorKind {
    /// A Python list (or tuple) of floats or ints.
    PyList,
    NumpyF32,
    NumpyF64,
}

impl VectorKind {
    pub fn name(self) -> &'static str {
        match self {
            VectorKind::PyList => "list of Python floats",
            VectorKind::NumpyF32 => "numpy float32 array",
            VectorKind::NumpyF64 => "numpy float64 array",
        }
    }
}

/// One dict entry: its key and its vector as f32 (float64 values rounded to nearest).
#[derive(Debug, Clone)]
pub struct PickledVector {
    pub key: String,
    pub values: Vec<f32>,
    pub kind: VectorKind,
}

impl Unpickler<'_> {
    /// Interpret a call of an allowed NumPy global. Nothing is executed.
    pub(super) fn call_numpy(&mut self, p: usize, g: NpGlobal, args: &[Id]) -> Result<Id> {
        match g {
            NpGlobal::Reconstruct => {
                // _reconstruct(numpy.ndarray, (0,), b'b'): an empty array of exactly ndarray
                // (subclasses such as np.matrix or np.memmap name other globals).
                match args.first().map(|&a| &self.objs[a]) {
                    Some(Obj::Global(Global::Numpy(NpGlobal::Ndarray))) => {}
                    _ => {
                        return Err(self.err(
                            p,
                            "unsupported pickle: numpy _reconstruct of something other than numpy.ndarray",
                        ))
                    }
                }
                self.alloc(Obj::NpArray(Box::default()))
            }
            NpGlobal::Ndarray => {
                Err(self.err(p, "unsupported pickle: numpy.ndarray called directly"))
            }
            NpGlobal::Dtype => {
                let code = args.first().and_then(|&a| self.str_of(a)).ok_or_else(|| {
                    self.err(p, "corrupt pickle: numpy.dtype without a type code string")
                })?;
                let code = code.to_owned();
                self.alloc(Obj::NpDtype(NpDtype { code, order: None, structured: false }))
            }
            NpGlobal::FromBuffer => {
                // _frombuffer(buf, dtype, shape, order)
                if args.len() < 3 {
                    return Err(self.err(p, "corrupt pickle: numpy _frombuffer with too few arguments"));
                }
                if !matches!(self.objs[args[0]], Obj::Bytes(_)) {
                    return Err(self.err(p, "corrupt pickle: numpy _frombuffer of something other than bytes"));
                }
                if !matches!(self.objs[args[1]], Obj::NpDtype(_)) {
                    return Err(self.err(p, "corrupt pickle: numpy _frombuffer without a dtype"));
                }
                let shape = self.shape_of(p, args[2])?;
                let a = NpArray { shape, dtype: Some(args[1]), data: Some(args[0]) };
                self.alloc(Obj::NpArray(Box::new(a)))
            }
            NpGlobal::CodecsEncode => {
                // _codecs.encode(text, 'latin1'): protocol 2's bytes, one code point per byte.
                let enc = args.get(1).and_then(|&a| self.str_of(a)).unwrap_or("");
                if !matches!(enc, "latin1" | "latin-1") {
                    return Err(self.err(
                        p,
                        format!("unsupported pickle: _codecs.encode with encoding '{}'", printable(enc)),
                    ));
                }
                let text = args.first().and_then(|&a| self.str_of(a)).ok_or_else(|| {
                    self.err(p, "corrupt pickle: _codecs.encode of something other than a string")
                })?;
                let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                let bytes = bytes.ok_or_else(|| {
                    self.err(p, "corrupt pickle: latin1 bytes with a code point above 255")
                })?;
                self.alloc(Obj::Bytes(bytes))
            }
        }
    }

    /// BUILD on a NumPy dtype `(version, byteorder, subarray, names, fields, ...)` or array
    /// `([version,] shape, dtype, is_fortran, data)`.
    pub(super) fn build_numpy(&mut self, p: usize, target: Id, state: Id) -> Result<()> {
        let items: Vec<Id> = self
            .items_of(state)
            .map(|s| s.iter().take(8).copied().collect())
            .ok_or_else(|| self.err(p, "corrupt pickle: numpy object state is not a tuple"))?;
        if matches!(self.objs[target], Obj::NpDtype(_)) {
            let order = items.get(1).and_then(|&i| self.str_of(i)).map(str::to_owned);
            let structured = items.iter().skip(2).take(3).any(|&i| !matches!(self.objs[i], Obj::None));
            if let Obj::NpDtype(d) = &mut self.objs[target] {
                d.order = order;
                d.structured = structured;
            }
            return Ok(());
        }
        let fields = match items.len() {
            5 => &items[1..],
            4 => &items[..],
            n => return Err(self.err(p, format!("corrupt pickle: numpy array state with {n} fields"))),
        };
        let shape = self.shape_of(p, fields[0])?;
        if !matches!(self.objs[fields[1]], Obj::NpDtype(_)) {
            return Err(self.err(p, "corrupt pickle: numpy array state without a dtype"));
        }
        let (dtype, data) = (fields[1], fields[3]);
        if let Obj::NpArray(a) = &mut self.objs[target] {
            a.shape = shape;
            a.dtype = Some(dtype);
            a.data = Some(data);
        }
        Ok(())
    }

    fn shape_of(&self, p: usize, id: Id) -> Result<Vec<usize>> {
        let items = self
            .items_of(id)
            .ok_or_else(|| self.err(p, "corrupt pickle: numpy shape is not a tuple"))?;
        if items.len() > MAX_DIMS {
            return Err(self.err(p, format!("corrupt pickle: numpy shape has {} dimensions", items.len())));
        }
        items
            .iter()
            .map(|&i| {
                self.int_of(i)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| self.err(p, "corrupt pickle: numpy shape entry is not a non-negative integer"))
            })
            .collect()
    }
}

/// Read a pickled dict `{name: vector}` whose values are lists of floats or NumPy 1-D float32 /
/// float64 arrays (little-endian), in dict order. Executes nothing: any global beyond NumPy array
/// reconstruction is refused. `what` names the file in errors.
///
/// Errors name the offending key: non-string keys, duplicate keys, values of another type,
/// big-endian, object or non-float arrays, arrays of more than one dimension.
pub fn unpickle_vector_dict(bytes: &[u8], what: &str) -> Result<Vec<PickledVector>> {
    if bytes.is_empty() {
        bail!("file is empty, not a pickle");
    }
    if bytes[0] != 0x80 && !matches!(bytes[0], b'(' | b'}' | b'c') {
        bail!(
            "not a pickle: starts with bytes {:02x?} (a pickle written by Python starts with 0x80)",
            &bytes[..bytes.len().min(4)]
        );
    }
    // Work is bounded by the file size: a pickle spends at least one byte per object it makes.
    let pk = super::unpickle_as(bytes, 0, what, false, Allow::Vectors, MAX_UNITS.max(bytes.len()))?;
    let Obj::Dict(items) = pk.get(pk.root) else {
        bail!(
            "the pickle holds a {}, not a dict {{gene: vector}} (GenePT layout)",
            pk.get(pk.root).kind()
        );
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, &(k, v)) in items.iter().enumerate() {
        let key = match pk.get(k) {
            Obj::Str(s) => s.clone(),
            Obj::Int(n) => bail!("dict key #{} is the int {n}, not a string; keys must be gene symbols", i + 1),
            o => bail!("dict key #{} is a {}, not a string; keys must be gene symbols", i + 1, o.kind()),
        };
        if !seen.insert(key.clone()) {
            bail!("gene `{}` appears twice in the dict", printable(&key));
        }
        let (values, kind) = vector_of(&pk.objs, v)
            .map_err(|e| anyhow!("gene `{}`: {e}", printable(&key)))?;
        out.push(PickledVector { key, values, kind });
    }
    Ok(out)
}

fn vector_of(objs: &[Obj], id: Id) -> Result<(Vec<f32>, VectorKind)> {
    match &objs[id] {
        Obj::Floats(f) => Ok((f.iter().map(|&x| x as f32).collect(), VectorKind::PyList)),
        Obj::List(items) | Obj::Tuple(items) => {
            let mut v = Vec::with_capacity(items.len());
            for (j, &it) in items.iter().enumerate() {
                v.push(match &objs[it] {
                    Obj::Float(x) => *x as f32,
                    Obj::Int(n) => *n as f32,
                    o => bail!("element {j} of its list is a {}, not a number", o.kind()),
                });
            }
            Ok((v, VectorKind::PyList))
        }
        Obj::NpArray(a) => array_values(objs, a),
        o => bail!("value is a {}; expected a list of floats or a 1-D numpy float array", o.kind()),
    }
}

fn array_values(objs: &[Obj], a: &NpArray) -> Result<(Vec<f32>, VectorKind)> {
    let (Some(dt), Some(data)) = (a.dtype, a.data) else {
        bail!("numpy array without its data (corrupt pickle)");
    };
    let Obj::NpDtype(dt) = &objs[dt] else { bail!("numpy array without a dtype (corrupt pickle)") };
    let order = dt.order.as_deref().unwrap_or("|");
    let code = dt.code.as_str();
    if dt.structured {
        bail!("numpy array of a structured dtype `{}`; expected float32 or float64", printable(code));
    }
    let kind = match code {
        "f4" | "float32" => VectorKind::NumpyF32,
        "f8" | "float64" => VectorKind::NumpyF64,
        _ if code.starts_with('O') => {
            bail!("numpy array of object dtype; expected float32 or float64 (convert with np.asarray(v, dtype=np.float32))")
        }
        _ => bail!(
            "numpy array of dtype `{}`; expected float32 or float64 (convert with v.astype(np.float32))",
            printable(code)
        ),
    };
    match order {
        "<" | "|" => {}
        // '=' is the writer's native order; every platform NumPy ships on is little-endian.
        "=" if cfg!(target_endian = "little") => {}
        ">" => bail!("numpy array is big-endian ('>{code}'); convert it with v.astype('<{code}') before pickling"),
        o => bail!("numpy dtype with unknown byte order `{}`", printable(o)),
    }
    let [n] = a.shape[..] else {
        bail!("numpy array of shape {:?}; expected a 1-D vector (use v.ravel())", a.shape);
    };
    let Obj::Bytes(raw) = &objs[data] else {
        bail!("numpy array data is a {}, not raw bytes", objs[data].kind());
    };
    let size = if kind == VectorKind::NumpyF32 { 4 } else { 8 };
    if n.checked_mul(size) != Some(raw.len()) {
        bail!("numpy array of shape ({n},) holds {} bytes, expected {} (corrupt pickle)", raw.len(), n.saturating_mul(size));
    }
    let values = if size == 4 {
        raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        raw.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((values, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &[u8]) -> Result<Vec<PickledVector>> {
        unpickle_vector_dict(p, "test")
    }

    #[test]
    fn torch_globals_refused_in_vector_mode() {
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00actorch._utils\n_rebuild_tensor_v2\nq\x01s.";
        let e = format!("{:#}", run(p).unwrap_err());
        assert!(e.contains("refusing to unpickle global 'torch._utils._rebuild_tensor_v2'"), "{e}");
    }

    #[test]
    fn numpy_globals_refused_in_torch_mode() {
        let p = b"\x80\x02cnumpy\ndtype\nq\x00.";
        let e = format!("{:#}", super::super::unpickle(p, 0, "t", true).err().expect("must fail"));
        assert!(e.contains("'numpy.dtype'") && e.contains("PyTorch"), "{e}");
    }

    #[test]
    fn unboxed_floats_reclaim_arena_and_units() {
        // {'A': [1.0, 2.0, 3.0]} written with APPENDS (protocol 2 layout)
        let mut p = b"\x80\x02}q\x00X\x01\x00\x00\x00Aq\x01]q\x02(".to_vec();
        for x in [1.0f64, 2.0, 3.0] {
            p.push(b'G');
            p.extend(x.to_be_bytes());
        }
        p.extend(b"es.");
        let pk = super::super::unpickle_as(&p, 0, "t", false, Allow::Vectors, MAX_UNITS).unwrap();
        // dict, key, list: the three floats gave their slots back
        assert_eq!(pk.objs.len(), 3);
        let v = run(&p).unwrap();
        assert_eq!(v[0].values, vec![1.0, 2.0, 3.0]);
        // a memoized float is kept (and still read correctly)
        let mut p = b"\x80\x02}q\x00X\x01\x00\x00\x00Aq\x01]q\x02(G".to_vec();
        p.extend(1.5f64.to_be_bytes());
        p.extend(b"q\x03h\x03es.");
        let v = run(&p).unwrap();
        assert_eq!(v[0].values, vec![1.5, 1.5]);
        // a non-float after floats boxes the list back (and is then refused as a value)
        let mut p = b"\x80\x02}q\x00X\x01\x00\x00\x00Aq\x01]q\x02(G".to_vec();
        p.extend(1.5f64.to_be_bytes());
        p.extend(b"eNas.");
        let e = format!("{:#}", run(&p).unwrap_err());
        assert!(e.contains("gene `A`") && e.contains("element 1") && e.contains("None"), "{e}");
    }

    #[test]
    fn bad_values_name_the_gene() {
        // {'A': 'text'}
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00AX\x01\x00\x00\x00xs.";
        let e = format!("{:#}", run(p).unwrap_err());
        assert!(e.contains("gene `A`") && e.contains("str"), "{e}");
        // {1: [1.0]}
        let mut p = b"\x80\x02}K\x01](G".to_vec();
        p.extend(1.0f64.to_be_bytes());
        p.extend(b"es.");
        let e = format!("{:#}", run(&p).unwrap_err());
        assert!(e.contains("key #1 is the int 1"), "{e}");
        // a list at the top
        let e = format!("{:#}", run(b"\x80\x02].").unwrap_err());
        assert!(e.contains("not a dict"), "{e}");
        assert!(run(b"").is_err() && run(b"PK\x03\x04").is_err());
    }
}
