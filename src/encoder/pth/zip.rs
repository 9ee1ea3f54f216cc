//! The zip checkpoint format (`torch.save` since torch 1.6): find `<prefix>/data.pkl`, read the
//! optional `byteorder` record, unpickle the state dict and load each storage record
//! `<prefix>/data/<key>` once, dropping it after the last tensor that uses it.

use super::globals::unpickle;
use super::tensor::{materialize, output_budget};
use super::{state_dict_entries, tensor_parts};
use crate::pickle::printable;
use anyhow::{anyhow, bail, Result};
use candle_core::Tensor;
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};

type Zip<'a> = ::zip::ZipArchive<Cursor<&'a [u8]>>;

/// Run a call into the zip crate. It is fuzzed, but should it ever panic on hostile bytes the
/// panic still becomes an error.
fn zip_guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(anyhow!("corrupt zip archive (the zip reader failed)")))
}

/// Read a whole zip entry (CRC-checked by the zip reader). Allocation grows with the bytes
/// actually inflated, never with the size the header claims beyond `file_len`.
fn read_entry(zip: &mut Zip<'_>, name: &str, limit: u64, file_len: u64) -> Result<Vec<u8>> {
    zip_guard(|| read_entry_unguarded(zip, name, limit, file_len))
}

fn read_entry_unguarded(
    zip: &mut Zip<'_>,
    name: &str,
    limit: u64,
    file_len: u64,
) -> Result<Vec<u8>> {
    let mut f = zip.by_name(name).map_err(|e| {
        anyhow!(
            "corrupt zip archive: cannot open entry '{}': {e}",
            printable(name)
        )
    })?;
    let size = f.size();
    if size > limit {
        bail!(
            "entry '{}' claims {size} bytes: {}",
            printable(name),
            limit_message(file_len)
        );
    }
    let mut buf = Vec::with_capacity(usize::try_from(size.min(file_len)).unwrap_or(0));
    (&mut f)
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| {
            anyhow!(
                "corrupt zip archive: cannot read entry '{}': {e}",
                printable(name)
            )
        })?;
    if buf.len() as u64 != size {
        bail!(
            "corrupt zip archive: entry '{}' holds {} bytes but its header says {size}",
            printable(name),
            buf.len()
        );
    }
    Ok(buf)
}

/// The whole archive may inflate to at most `limits::inflate_limit` of its size, all entries
/// together (a 4.7 MB archive cannot unpack gigabytes); the error says how to raise it.
fn limit_message(file_len: u64) -> String {
    crate::limits::inflate_message(file_len, crate::limits::inflate_limit(file_len))
}

pub(super) fn load_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let file_len = bytes.len() as u64;
    let mut inflate_left = crate::limits::inflate_limit(file_len);
    let (mut zip, names) = zip_guard(|| {
        let zip = ::zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| anyhow!("corrupt zip archive: {e}"))?;
        // Entries whose names are not valid text cannot be any of the records we look for.
        let names: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect();
        Ok((zip, names))
    })?;
    let name_set: HashSet<&str> = names.iter().map(String::as_str).collect();
    let pkl_name = names
        .iter()
        .filter(|n| {
            n.as_str() == "data.pkl"
                || n.strip_suffix("/data.pkl")
                    .is_some_and(|pre| !pre.is_empty() && !pre.contains('/'))
        })
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "zip archive has no '<archive>/data.pkl' entry, so it is not a PyTorch checkpoint"
            )
        })?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];

    let byteorder_name = format!("{prefix}byteorder");
    let big_endian = if name_set.contains(byteorder_name.as_str()) {
        let b = read_entry(&mut zip, &byteorder_name, 64, file_len)?;
        inflate_left = inflate_left.saturating_sub(b.len() as u64);
        match String::from_utf8_lossy(&b).trim() {
            "little" => false,
            "big" => true,
            other => bail!(
                "corrupt checkpoint: {byteorder_name} says '{}', expected 'little' or 'big'",
                printable(other)
            ),
        }
    } else {
        false
    };

    // data.pkl is stored uncompressed by torch and is tiny next to the storages.
    let pkl_limit = file_len
        .saturating_mul(4)
        .saturating_add(1 << 20)
        .min(inflate_left);
    let pkl = read_entry(&mut zip, &pkl_name, pkl_limit, file_len)?;
    inflate_left = inflate_left.saturating_sub(pkl.len() as u64);
    let pk = unpickle(&pkl, 0, &pkl_name, true)?;
    let entries = state_dict_entries(&pk)?;

    // How many tensors use each storage, so each storage buffer is dropped after its last use.
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, id) in &entries {
        let (_, s) = tensor_parts(&pk, *id)?;
        *uses.entry(s.key.clone()).or_default() += 1;
    }
    let mut loaded: HashMap<String, Vec<u8>> = HashMap::new();
    let mut budget = output_budget(bytes.len());
    let mut out = Vec::with_capacity(entries.len());
    for (name, id) in entries {
        let (t, s) = tensor_parts(&pk, id)?;
        if !loaded.contains_key(&s.key) {
            let entry = format!("{prefix}data/{}", s.key);
            if !name_set.contains(entry.as_str()) {
                bail!(
                    "missing storage record '{}' (needed by tensor '{}')",
                    printable(&entry),
                    printable(&name)
                );
            }
            let need = s.numel.checked_mul(s.dtype.size() as u64).ok_or_else(|| {
                anyhow!(
                    "corrupt checkpoint: storage '{}' claims {} elements",
                    printable(&s.key),
                    s.numel
                )
            })?;
            if need > inflate_left {
                bail!(
                    "storage '{}' needs {need} bytes: {}",
                    printable(&s.key),
                    limit_message(file_len)
                );
            }
            let data = read_entry(&mut zip, &entry, inflate_left, file_len)?;
            inflate_left = inflate_left.saturating_sub(data.len() as u64);
            if (data.len() as u64) < need {
                bail!(
                    "storage record '{}' has {} bytes but the pickle declares {} elements of {} bytes",
                    printable(&entry),
                    data.len(),
                    s.numel,
                    s.dtype.size()
                );
            }
            loaded.insert(s.key.clone(), data);
        }
        let data = loaded.get(&s.key).map(Vec::as_slice).unwrap_or(&[]);
        let tensor = materialize(&name, t, s, data, big_endian, &mut budget)?;
        out.push((name, tensor));
        if let Some(n) = uses.get_mut(&s.key) {
            *n -= 1;
            if *n == 0 {
                loaded.remove(&s.key);
            }
        }
    }
    Ok(out)
}
