//! NumPy array reconstruction for the pickle VM: the NumPy globals an array pickle names, and
//! how they build an inert [`NpArray`] (shape, dtype, raw bytes) without running NumPy.
//!
//! NumPy arrays pickle as `numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` followed
//! by BUILD with `(1, shape, dtype, is_fortran, raw_bytes)` (protocols 2-4; protocol 2 spells the
//! bytes `_codecs.encode(str, 'latin1')`), or, from protocol 5, as
//! `numpy._core.numeric._frombuffer(raw_bytes, dtype, shape, order)`. The dtype itself is
//! `numpy.dtype('f4', False, True)` followed by BUILD with `(3, '<', ...)`, whose second field is
//! the byte order. These are the only globals a set built on this module allows (plus
//! `collections.OrderedDict`, read as a dict); like the torch globals they are interpreted by the
//! VM, never called.

use super::{printable, Global, GlobalSet, Id, Obj, Unpickler, MAX_DIMS};
use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NpGlobal {
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

/// The NumPy globals an array pickle names (`collections.OrderedDict` is admitted by the VM).
pub(super) fn resolve_global(module: &str, name: &str) -> Option<NpGlobal> {
    Some(match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
            NpGlobal::Reconstruct
        }
        ("numpy", "ndarray") => NpGlobal::Ndarray,
        ("numpy", "dtype") => NpGlobal::Dtype,
        ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => NpGlobal::FromBuffer,
        ("_codecs", "encode") => NpGlobal::CodecsEncode,
        _ => return None,
    })
}

/// `numpy.dtype(code, False, True)`; `order` comes from its BUILD state.
#[derive(Debug)]
pub(crate) struct NpDtype {
    pub(super) code: String,
    pub(super) order: Option<String>,
    /// Subarray, named-field or structured dtype (refused when the array is read).
    pub(super) structured: bool,
}

/// An ndarray: empty after `_reconstruct`, filled by BUILD (or at once by `_frombuffer`).
#[derive(Debug, Default)]
pub(crate) struct NpArray {
    pub(super) shape: Vec<usize>,
    /// Ids of an `NpObject::Dtype` and of the raw `Obj::Bytes` (an `Obj::List` for object arrays).
    pub(super) dtype: Option<Id>,
    pub(super) data: Option<Id>,
}

/// The objects NumPy globals make.
#[derive(Debug)]
pub(crate) enum NpObject {
    Dtype(NpDtype),
    Array(Box<NpArray>),
}

impl NpObject {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            NpObject::Dtype(_) => "numpy dtype",
            NpObject::Array(_) => "numpy array",
        }
    }
}

impl<S: GlobalSet<Global = NpGlobal, Object = NpObject>> Unpickler<'_, S> {
    /// Interpret a call of an allowed NumPy global. Nothing is executed.
    pub(super) fn call_numpy(&mut self, p: usize, g: NpGlobal, args: &[Id]) -> Result<Id> {
        match g {
            NpGlobal::Reconstruct => {
                // _reconstruct(numpy.ndarray, (0,), b'b'): an empty array of exactly ndarray
                // (subclasses such as np.matrix or np.memmap name other globals).
                match args.first().map(|&a| &self.objs[a]) {
                    Some(Obj::Global(Global::Allowed(NpGlobal::Ndarray))) => {}
                    _ => {
                        return Err(self.err(
                            p,
                            "unsupported pickle: numpy _reconstruct of something other than numpy.ndarray",
                        ))
                    }
                }
                self.alloc(Obj::Ext(NpObject::Array(Box::default())))
            }
            NpGlobal::Ndarray => {
                Err(self.err(p, "unsupported pickle: numpy.ndarray called directly"))
            }
            NpGlobal::Dtype => {
                let code = args.first().and_then(|&a| self.str_of(a)).ok_or_else(|| {
                    self.err(p, "corrupt pickle: numpy.dtype without a type code string")
                })?;
                let code = code.to_owned();
                self.alloc(Obj::Ext(NpObject::Dtype(NpDtype {
                    code,
                    order: None,
                    structured: false,
                })))
            }
            NpGlobal::FromBuffer => {
                // _frombuffer(buf, dtype, shape, order)
                if args.len() < 3 {
                    return Err(self.err(
                        p,
                        "corrupt pickle: numpy _frombuffer with too few arguments",
                    ));
                }
                if !matches!(self.objs[args[0]], Obj::Bytes(_)) {
                    return Err(self.err(
                        p,
                        "corrupt pickle: numpy _frombuffer of something other than bytes",
                    ));
                }
                if !matches!(self.objs[args[1]], Obj::Ext(NpObject::Dtype(_))) {
                    return Err(self.err(p, "corrupt pickle: numpy _frombuffer without a dtype"));
                }
                let shape = self.shape_of(p, args[2])?;
                let a = NpArray {
                    shape,
                    dtype: Some(args[1]),
                    data: Some(args[0]),
                };
                self.alloc(Obj::Ext(NpObject::Array(Box::new(a))))
            }
            NpGlobal::CodecsEncode => {
                // _codecs.encode(text, 'latin1'): protocol 2's bytes, one code point per byte.
                let enc = args.get(1).and_then(|&a| self.str_of(a)).unwrap_or("");
                if !matches!(enc, "latin1" | "latin-1") {
                    return Err(self.err(
                        p,
                        format!(
                            "unsupported pickle: _codecs.encode with encoding '{}'",
                            printable(enc)
                        ),
                    ));
                }
                let text = args.first().and_then(|&a| self.str_of(a)).ok_or_else(|| {
                    self.err(
                        p,
                        "corrupt pickle: _codecs.encode of something other than a string",
                    )
                })?;
                let bytes: Option<Vec<u8>> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect();
                let bytes = bytes.ok_or_else(|| {
                    self.err(
                        p,
                        "corrupt pickle: latin1 bytes with a code point above 255",
                    )
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
        if matches!(self.objs[target], Obj::Ext(NpObject::Dtype(_))) {
            let order = items
                .get(1)
                .and_then(|&i| self.str_of(i))
                .map(str::to_owned);
            let structured = items
                .iter()
                .skip(2)
                .take(3)
                .any(|&i| !matches!(self.objs[i], Obj::None));
            if let Obj::Ext(NpObject::Dtype(d)) = &mut self.objs[target] {
                d.order = order;
                d.structured = structured;
            }
            return Ok(());
        }
        let fields = match items.len() {
            5 => &items[1..],
            4 => &items[..],
            n => {
                return Err(self.err(
                    p,
                    format!("corrupt pickle: numpy array state with {n} fields"),
                ))
            }
        };
        let shape = self.shape_of(p, fields[0])?;
        if !matches!(self.objs[fields[1]], Obj::Ext(NpObject::Dtype(_))) {
            return Err(self.err(p, "corrupt pickle: numpy array state without a dtype"));
        }
        let (dtype, data) = (fields[1], fields[3]);
        if let Obj::Ext(NpObject::Array(a)) = &mut self.objs[target] {
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
            return Err(self.err(
                p,
                format!("corrupt pickle: numpy shape has {} dimensions", items.len()),
            ));
        }
        items
            .iter()
            .map(|&i| {
                self.int_of(i)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| {
                        self.err(
                            p,
                            "corrupt pickle: numpy shape entry is not a non-negative integer",
                        )
                    })
            })
            .collect()
    }
}
