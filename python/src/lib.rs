//! `celltext._celltext`: the celltext library in Python. Every function here calls the same
//! library code as the CLI; the pure-Python package `celltext` turns AnnData objects into the
//! buffers these take and writes the results back. Errors come back as Python exceptions with
//! the CLI's messages; a panic becomes a `RuntimeError`, never an abort.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use celltext::cells::matrix::CsrView;
use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod cells;
mod classify;
mod encoder;
mod genes;
mod scilama;

/// A library error as a Python exception: the interrupt the work stopped for (Ctrl-C) as is,
/// a missing file as `FileNotFoundError`, anything else as `ValueError`, with the message the
/// CLI prints after `error:`.
pub(crate) fn to_py(e: anyhow::Error) -> PyErr {
    for cause in e.chain() {
        if let Some(pe) = cause.downcast_ref::<PyErr>() {
            return Python::with_gil(|py| pe.clone_ref(py));
        }
    }
    let msg = format!("{e:#}");
    let not_found = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    }) || msg.contains(": missing; a gene store is");
    if not_found {
        PyFileNotFoundError::new_err(msg)
    } else {
        PyValueError::new_err(msg)
    }
}

/// Run library code, turning its error into a Python exception and a panic into a
/// `RuntimeError` (a bug, reported rather than unwound into the interpreter).
pub(crate) fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in celltext (please report): {what}"
            )))
        }
    }
}

/// Between batches, from code that released the GIL: Ctrl-C (Python's signal handlers run with
/// the GIL taken back for a moment, KeyboardInterrupt stops the work), then, when given a
/// callable, hand it the (done, total) of the progress bar the work made inside
/// `celltext::progress::observe`; the Python package draws its notebook bar from these.
pub(crate) fn check_and_report(
    progress: Option<&PyObject>,
) -> impl Fn() -> anyhow::Result<()> + Send + Sync + '_ {
    move || {
        Python::with_gil(|py| {
            py.check_signals()?;
            if let (Some(cb), Some((done, total))) = (progress, celltext::progress::observed()) {
                cb.call1(py, (done, total))?;
            }
            Ok::<(), PyErr>(())
        })
        .map_err(anyhow::Error::from)
    }
}

/// An index array from NumPy: int64 read in place (as usize), int32 widened (a copy).
pub(crate) fn index_array<'a>(a: &'a Bound<'_, PyAny>, what: &str) -> PyResult<IndexArray<'a>> {
    if let Ok(x) = a.extract::<PyReadonlyArray1<i64>>() {
        return Ok(IndexArray::I64(x));
    }
    if let Ok(x) = a.extract::<PyReadonlyArray1<i32>>() {
        return Ok(IndexArray::I32(x));
    }
    Err(PyValueError::new_err(format!(
        "{what} must be a 1-D int32 or int64 NumPy array"
    )))
}

pub(crate) enum IndexArray<'py> {
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
}

impl IndexArray<'_> {
    /// As usize values; negative entries are an error naming `what`.
    pub fn as_usize(&self, what: &str) -> PyResult<Cow<'_, [usize]>> {
        let bad = || PyValueError::new_err(format!("{what} has a negative entry"));
        match self {
            IndexArray::I64(x) => {
                let s = x.as_slice()?;
                if s.iter().any(|&v| v < 0) {
                    return Err(bad());
                }
                Ok(Cow::Borrowed(bytemuck::cast_slice(s)))
            }
            IndexArray::I32(x) => {
                let s = x.as_slice()?;
                if s.iter().any(|&v| v < 0) {
                    return Err(bad());
                }
                Ok(Cow::Owned(s.iter().map(|&v| v as usize).collect()))
            }
        }
    }

    /// As u32 column indices: int32 read in place, int64 narrowed (a copy).
    pub fn as_u32(&self, what: &str) -> PyResult<Cow<'_, [u32]>> {
        let bad = || PyValueError::new_err(format!("{what} has an entry outside 0..2^32"));
        match self {
            IndexArray::I32(x) => {
                let s = x.as_slice()?;
                if s.iter().any(|&v| v < 0) {
                    return Err(bad());
                }
                Ok(Cow::Borrowed(bytemuck::cast_slice(s)))
            }
            IndexArray::I64(x) => {
                let s = x.as_slice()?;
                s.iter()
                    .map(|&v| u32::try_from(v).map_err(|_| bad()))
                    .collect::<PyResult<Vec<u32>>>()
                    .map(Cow::Owned)
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            IndexArray::I64(x) => x.len(),
            IndexArray::I32(x) => x.len(),
        }
    }
}

/// The library's version (the CLI's `--version`).
/// A cells × genes CSR matrix over NumPy buffers: float32 data and int32 indices are read in
/// place, int64 indptr too; int32 indptr is widened (n_rows + 1 values).
pub(crate) struct Csr<'a> {
    n_rows: usize,
    n_cols: usize,
    indptr: Cow<'a, [usize]>,
    indices: Cow<'a, [u32]>,
    data: &'a [f32],
}

impl<'a> Csr<'a> {
    pub fn new(
        indptr: &'a IndexArray<'_>,
        indices: &'a IndexArray<'_>,
        data: &'a PyReadonlyArray1<'_, f32>,
        n_rows: usize,
        n_cols: usize,
    ) -> PyResult<Self> {
        if indptr.len() != n_rows + 1 {
            return Err(PyValueError::new_err(format!(
                "indptr has {} entries but the matrix has {n_rows} rows (expected {})",
                indptr.len(),
                n_rows + 1
            )));
        }
        Ok(Self {
            n_rows,
            n_cols,
            indptr: indptr.as_usize("indptr")?,
            indices: indices.as_u32("indices")?,
            data: data.as_slice()?,
        })
    }

    pub fn view(&self) -> CsrView<'_> {
        CsrView {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: &self.indptr,
            indices: &self.indices,
            data: self.data,
        }
    }
}

#[pyfunction]
fn version() -> &'static str {
    celltext::io::TOOL_VERSION
}

#[pymodule]
fn _celltext(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add(
        "GENEPT_S_PREFIX",
        celltext::cells::sentences::GENEPT_S_PREFIX,
    )?;
    encoder::register(m)?;
    genes::register(m)?;
    cells::register(m)?;
    classify::register(m)?;
    scilama::register(m)?;
    Ok(())
}
