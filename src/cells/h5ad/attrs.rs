//! Low-level HDF5 reads for the h5ad reader: string and number attributes and datasets in any of
//! the dtypes AnnData writers have used (vlen or fixed, UTF-8 or ASCII, integer/float/bool), and
//! member lookups that do not fail on a missing name.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Group, H5Type, Location, LocationType};

pub(super) fn h5err(path: &Path, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    let raw = e.to_string();
    // HDF5's own words name neither the file nor what was expected: say both.
    let why = if raw.contains("no conversion path") {
        "its HDF5 type cannot be read as the expected strings or numbers"
    } else if raw.contains("ndim") {
        "it has an unexpected number of dimensions"
    } else if raw.contains("not found") || raw.contains("doesn't exist") {
        "it is missing"
    } else {
        return anyhow!("{}: {what}: {raw}", path.display());
    };
    anyhow!(
        "{}: {what}: {why} ({raw}); the file is corrupt or was not written by anndata",
        path.display()
    )
}

/// A string attribute (scalar; vlen or fixed, UTF-8 or ASCII). `None` when absent.
pub(super) fn attr_string(loc: &Location, name: &str) -> Result<Option<String>> {
    let names = loc
        .attr_names()
        .map_err(|e| anyhow!("cannot list attributes of {}: {e}", loc.name()))?;
    if !names.iter().any(|n| n == name) {
        return Ok(None);
    }
    let attr = loc
        .attr(name)
        .map_err(|e| anyhow!("cannot open attribute {name} of {}: {e}", loc.name()))?;
    let v = read_strings(&attr).map_err(|e| anyhow!("attribute {name} of {}: {e}", loc.name()))?;
    Ok(v.into_iter().next())
}

/// Refuse a whole-dataset read whose declared size would need more memory than the file could
/// hold even compressed (the inflate limit of the file's size): a corrupt dataspace can declare
/// 2⁶⁰ elements, and allocating for it aborts the process.
pub(super) fn check_declared_size(c: &Container, elem_bytes: usize) -> Result<()> {
    let n = c.size() as u128;
    let need = n.saturating_mul(elem_bytes as u128);
    let file_bytes = c.file().map(|f| f.size()).unwrap_or(0);
    let limit = crate::limits::inflate_limit(file_bytes);
    if need > limit as u128 {
        bail!(
            "declares {n} values ({need} bytes in memory), {}",
            crate::limits::inflate_message(file_bytes, limit)
        );
    }
    Ok(())
}

fn read_with<T: H5Type>(c: &Container, f: impl Fn(&T) -> String) -> Result<Vec<String>> {
    check_declared_size(c, std::mem::size_of::<T>())?;
    let v: Vec<T> = c.read_raw::<T>().map_err(|e| anyhow!("{e}"))?;
    Ok(v.iter().map(f).collect())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

macro_rules! read_fixed {
    ($c:expr, $n:expr, $ty:ident) => {{
        let n = $n;
        if n <= 16 {
            read_with::<$ty<16>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 64 {
            read_with::<$ty<64>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 256 {
            read_with::<$ty<256>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 1024 {
            read_with::<$ty<1024>>($c, |s| lossy(s.as_bytes()))
        } else if n <= 8192 {
            read_with::<$ty<8192>>($c, |s| lossy(s.as_bytes()))
        } else {
            Err(anyhow!(
                "fixed-length strings of {n} bytes are not supported"
            ))
        }
    }};
}

/// Read a whole string dataset/attribute; numeric data are formatted as text.
pub(super) fn read_strings(c: &Container) -> Result<Vec<String>> {
    let td = c
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| anyhow!("unsupported datatype: {e}"))?;
    match td {
        TypeDescriptor::VarLenUnicode => read_with::<VarLenUnicode>(c, |s| lossy(s.as_bytes())),
        TypeDescriptor::VarLenAscii => read_with::<VarLenAscii>(c, |s| lossy(s.as_bytes())),
        TypeDescriptor::FixedAscii(n) => read_fixed!(c, n, FixedAscii),
        TypeDescriptor::FixedUnicode(n) => read_fixed!(c, n, FixedUnicode),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
            Ok(read_numbers(c)?.into_iter().map(fmt_num).collect())
        }
        TypeDescriptor::Boolean => {
            check_declared_size(c, 1)?;
            Ok(c.read_raw::<bool>()?
                .into_iter()
                .map(|b| if b { "True" } else { "False" }.to_string())
                .collect())
        }
        other => bail!("expected strings, found HDF5 type {other:?}"),
    }
}

pub(super) fn read_numbers(c: &Container) -> Result<Vec<f64>> {
    let td = c
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| anyhow!("unsupported datatype: {e}"))?;
    match td {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_) => {
            check_declared_size(c, 8)?;
            Ok(c.read_raw::<f64>()?)
        }
        TypeDescriptor::Boolean => {
            check_declared_size(c, 1)?;
            Ok(c.read_raw::<bool>()?
                .into_iter()
                .map(|b| b as u8 as f64)
                .collect())
        }
        other => bail!("expected numbers, found HDF5 type {other:?}"),
    }
}

pub(super) fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

pub(super) fn is_string_type(c: &Container) -> bool {
    matches!(
        c.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::VarLenUnicode
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_))
    )
}

pub(super) fn member_kind(g: &Group, name: &str) -> Option<LocationType> {
    if !g.link_exists(name) {
        return None;
    }
    g.loc_type_by_name(name).ok()
}
