//! `Encoder`: a loaded text encoder (the CLI's `--model/--device/--dtype/--backend`) and its
//! `embed`, the same `Encoder::embed_texts` that `celltext embed` runs.

use numpy::{IntoPyArray, PyArray2, PyArrayMethods};
use pyo3::prelude::*;

use celltext::choice::parse_choice as parse_value;
use celltext::encoder::{self, BackendChoice, EncoderOptions, Pooling};

use crate::{check_and_report, guard};

#[pyclass(module = "celltext._celltext", name = "Encoder")]
pub struct PyEncoder {
    pub(crate) inner: encoder::Encoder,
    /// The pooling the model was loaded with (its checkpoint's or card's).
    default_pooling: Pooling,
}

#[pymethods]
impl PyEncoder {
    #[new]
    #[allow(clippy::too_many_arguments)] // the Python keyword arguments
    #[pyo3(signature = (model, device="cpu", dtype="f32", backend="auto", max_length=None, lowercase=None, progress=true))]
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: &str,
        backend: &str,
        max_length: Option<usize>,
        lowercase: Option<bool>,
        progress: bool,
    ) -> PyResult<Self> {
        let inner = py.allow_threads(|| {
            guard(|| {
                let mut opts = EncoderOptions {
                    max_length,
                    lowercase,
                    devices: encoder::parse_devices(device)?,
                    backend: parse_value::<BackendChoice>("backend", backend, true)?,
                    ..EncoderOptions::default()
                };
                opts.set_dtype(dtype)?;
                encoder::Encoder::load(model, &opts, !progress)
            })
        })?;
        Ok(Self {
            default_pooling: inner.pooling,
            inner,
        })
    }

    /// Embed texts: float32 [len(texts), dim], input order. `progress`: a callable given
    /// (texts done, total) between batches.
    #[pyo3(signature = (texts, pooling=None, normalize=false, batch_tokens=8192, progress=None))]
    fn embed<'py>(
        mut slf: PyRefMut<'py, Self>,
        py: Python<'py>,
        texts: Vec<String>,
        pooling: Option<&str>,
        normalize: bool,
        batch_tokens: usize,
        progress: Option<PyObject>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let pooling = match pooling {
            Some(p) => guard(|| parse_value::<Pooling>("pooling", p, true))?,
            None => slf.default_pooling,
        };
        if batch_tokens == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "batch_tokens must be at least 1",
            ));
        }
        let enc = &mut slf.inner;
        let (data, n, dim) = py.allow_threads(move || {
            guard(|| {
                enc.pooling = pooling;
                enc.normalize = normalize;
                enc.identity.pooling = pooling;
                enc.identity.normalize = normalize;
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let check = check_and_report(progress.as_ref());
                let out = celltext::progress::observe(|| {
                    let pb = celltext::progress::bar(refs.len() as u64, "texts", true);
                    enc.embed_texts_cancellable(&refs, batch_tokens, Some(&pb), Some(&check))
                })?;
                Ok((out.data, refs.len(), out.dim))
            })
        })?;
        data.into_pyarray(py).reshape([n, dim])
    }

    /// Number of tokens of `text` before truncation.
    fn count_tokens(&self, text: &str) -> PyResult<usize> {
        guard(|| self.inner.tokenizer.count_untruncated(text))
    }

    /// Model identity as JSON: id, revision, weights sha256, pooling, max length, ...
    #[getter]
    fn info_json(&self) -> PyResult<String> {
        let mut id = self.inner.identity.clone();
        id.pooling = self.default_pooling;
        id.normalize = false;
        guard(|| Ok(serde_json::to_string(&id)?))
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Tokenizer setup warnings (a guessed casing, an ignored casing flag).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.tokenizer.warnings.clone()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEncoder>()
}
