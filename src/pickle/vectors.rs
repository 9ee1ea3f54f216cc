//! `{name: vector}` pickles (GenePT gene embeddings): dict values are lists of Python floats or
//! NumPy 1-D float arrays. Read under [`VectorGlobals`], which admits only NumPy array
//! reconstruction (see the `numpy` module) and no PyTorch global, and keeps float lists unboxed so
//! a pickle of tens of millions of floats stays small.

use super::numpy::{NpArray, NpGlobal, NpObject};
use super::{printable, unpickle, GlobalSet, Id, Obj, Unpickler, MAX_UNITS};
use anyhow::{anyhow, bail, Result};
use std::collections::HashSet;

/// The globals a vector dict may name: NumPy array reconstruction only.
pub(super) struct VectorGlobals;

impl GlobalSet for VectorGlobals {
    type Global = NpGlobal;
    type Object = NpObject;

    const UNBOX_FLOATS: bool = true;

    fn resolve(&self, module: &str, name: &str) -> Option<NpGlobal> {
        super::numpy::resolve_global(module, name)
    }

    fn refuse(&self, module: &str, name: &str) -> anyhow::Error {
        anyhow!(
            "refusing to unpickle global '{}.{}': only a dict of lists of floats or of NumPy float \
             arrays is allowed (the file may be malicious; re-save it with a trusted tool as a dict \
             of lists, or as parquet)",
            printable(module),
            printable(name)
        )
    }

    fn kind(object: &NpObject) -> &'static str {
        object.kind()
    }

    fn call(vm: &mut Unpickler<'_, Self>, p: usize, g: NpGlobal, args: &[Id]) -> Result<Id> {
        vm.call_numpy(p, g, args)
    }

    fn build(vm: &mut Unpickler<'_, Self>, p: usize, target: Id, state: Id) -> Result<()> {
        vm.build_numpy(p, target, state)
    }
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
    let units = crate::limits::pickle_units(MAX_UNITS.max(bytes.len()));
    let pk = unpickle(bytes, 0, what, VectorGlobals, units)?;
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
            Obj::Int(n) => bail!(
                "dict key #{} is the int {n}, not a string; keys must be gene symbols",
                i + 1
            ),
            o => bail!(
                "dict key #{} is a {}, not a string; keys must be gene symbols",
                i + 1,
                o.kind()
            ),
        };
        if !seen.insert(key.clone()) {
            bail!("gene `{}` appears twice in the dict", printable(&key));
        }
        let (values, kind) =
            vector_of(&pk.objs, v).map_err(|e| anyhow!("gene `{}`: {e}", printable(&key)))?;
        out.push(PickledVector { key, values, kind });
    }
    Ok(out)
}

fn vector_of(objs: &[Obj<VectorGlobals>], id: Id) -> Result<(Vec<f32>, VectorKind)> {
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
        Obj::Ext(NpObject::Array(a)) => array_values(objs, a),
        o => bail!(
            "value is a {}; expected a list of floats or a 1-D numpy float array",
            o.kind()
        ),
    }
}

fn array_values(objs: &[Obj<VectorGlobals>], a: &NpArray) -> Result<(Vec<f32>, VectorKind)> {
    let (Some(dt), Some(data)) = (a.dtype, a.data) else {
        bail!("numpy array without its data (corrupt pickle)");
    };
    let Obj::Ext(NpObject::Dtype(dt)) = &objs[dt] else {
        bail!("numpy array without a dtype (corrupt pickle)")
    };
    let order = dt.order.as_deref().unwrap_or("|");
    let code = dt.code.as_str();
    if dt.structured {
        bail!(
            "numpy array of a structured dtype `{}`; expected float32 or float64",
            printable(code)
        );
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
        bail!(
            "numpy array of shape {:?}; expected a 1-D vector (use v.ravel())",
            a.shape
        );
    };
    let Obj::Bytes(raw) = &objs[data] else {
        bail!("numpy array data is a {}, not raw bytes", objs[data].kind());
    };
    let size = if kind == VectorKind::NumpyF32 { 4 } else { 8 };
    if n.checked_mul(size) != Some(raw.len()) {
        bail!(
            "numpy array of shape ({n},) holds {} bytes, expected {} (corrupt pickle)",
            raw.len(),
            n.saturating_mul(size)
        );
    }
    let values = if size == 4 {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
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
        assert!(
            e.contains("refusing to unpickle global 'torch._utils._rebuild_tensor_v2'"),
            "{e}"
        );
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
        let pk = unpickle(&p, 0, "t", VectorGlobals, MAX_UNITS).unwrap();
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
        assert!(
            e.contains("gene `A`") && e.contains("element 1") && e.contains("None"),
            "{e}"
        );
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
