//! The legacy checkpoint format (before torch 1.6, or `_use_new_zipfile_serialization=False`): a
//! stream of pickles (magic number, protocol version, `sys_info`, the state dict, the storage-key
//! list) followed by one `u64` element count and the raw little-endian bytes per storage.

use super::globals::StDType;
use super::globals::{unpickle, TorchObject};
use super::tensor::{materialize, output_budget};
use super::{state_dict_entries, tensor_parts};
use crate::pickle::{printable, Obj};
use anyhow::{anyhow, bail, Result};
use candle_core::Tensor;
use std::collections::HashMap;

/// `0x1950a86a20f9469cfc6c`, torch.serialization.MAGIC_NUMBER.
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
const LEGACY_PROTOCOL_VERSION: i128 = 1001;

pub(super) fn load_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let magic = unpickle(bytes, 0, "legacy header: magic number", false)?;
    if !matches!(magic.get(magic.root), Obj::Int(LEGACY_MAGIC)) {
        bail!("not a PyTorch checkpoint: bad magic number in the legacy header (corrupt file, or a plain pickle)");
    }
    let proto = unpickle(bytes, magic.end, "legacy header: protocol version", false)?;
    match proto.get(proto.root) {
        Obj::Int(LEGACY_PROTOCOL_VERSION) => {}
        Obj::Int(v) => bail!("unsupported legacy checkpoint protocol version {v} (expected 1001)"),
        o => bail!("corrupt legacy header: protocol version is a {}", o.kind()),
    }
    // sys_info: {'protocol_version', 'little_endian', 'type_sizes'}. Storages are always written
    // little-endian by torch's writer, so nothing here changes how they are read.
    let sys_info = unpickle(bytes, proto.end, "legacy header: sys_info", false)?;
    let main = unpickle(bytes, sys_info.end, "legacy state-dict pickle", true)?;
    let keys_pk = unpickle(bytes, main.end, "legacy storage-key list", false)?;
    let keys: Vec<String> = match keys_pk.get(keys_pk.root) {
        Obj::List(items) | Obj::Tuple(items) => items
            .iter()
            .map(|&k| match keys_pk.get(k) {
                Obj::Str(s) => Ok(s.clone()),
                Obj::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                Obj::Int(i) => Ok(i.to_string()),
                o => bail!("corrupt checkpoint: storage key is a {}", o.kind()),
            })
            .collect::<Result<_>>()?,
        o => bail!("corrupt checkpoint: storage-key list is a {}", o.kind()),
    };

    // dtype and element count of every root storage, as declared by the pickle.
    let mut declared: HashMap<&str, (StDType, u64)> = HashMap::new();
    for o in &main.objs {
        if let Obj::Ext(TorchObject::Storage(s)) = o {
            match declared.get(s.key.as_str()) {
                Some(&(d, n)) if d != s.dtype || n != s.numel => bail!(
                    "corrupt checkpoint: storage '{}' declared twice with different types or sizes",
                    printable(&s.key)
                ),
                _ => {
                    declared.insert(&s.key, (s.dtype, s.numel));
                }
            }
        }
    }

    let mut pos = keys_pk.end;
    let mut records: HashMap<&str, &[u8]> = HashMap::new();
    for key in &keys {
        let Some(&(dtype, numel)) = declared.get(key.as_str()) else {
            bail!(
                "corrupt checkpoint: storage key '{}' is listed but no tensor uses it",
                printable(key)
            );
        };
        let count_bytes = bytes
            .get(pos..pos.saturating_add(8))
            .filter(|s| s.len() == 8)
            .ok_or_else(|| {
                anyhow!(
                    "truncated file: storage record '{}' missing at byte {pos}",
                    printable(key)
                )
            })?;
        let mut a = [0u8; 8];
        a.copy_from_slice(count_bytes);
        let count = u64::from_le_bytes(a);
        if count != numel {
            bail!(
                "corrupt checkpoint: storage record '{}' at byte {pos} holds {count} elements but the pickle declares {numel}",
                printable(key)
            );
        }
        let start = pos + 8;
        let remaining = bytes.len() - start;
        let nbytes = count
            .checked_mul(dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= remaining)
            .ok_or_else(|| {
                anyhow!(
                    "truncated file: storage '{}' needs {count} × {} bytes at byte {start} but only {remaining} remain",
                    printable(key),
                    dtype.size()
                )
            })?;
        if records
            .insert(key.as_str(), &bytes[start..start + nbytes])
            .is_some()
        {
            bail!(
                "corrupt checkpoint: storage key '{}' listed twice",
                printable(key)
            );
        }
        pos = start + nbytes;
    }

    let entries = state_dict_entries(&main)?;
    let mut budget = output_budget(bytes.len());
    let mut out = Vec::with_capacity(entries.len());
    for (name, id) in entries {
        let (t, s) = tensor_parts(&main, id)?;
        let data = records.get(s.key.as_str()).ok_or_else(|| {
            anyhow!(
                "missing storage record '{}' (needed by tensor '{}')",
                printable(&s.key),
                printable(&name)
            )
        })?;
        let tensor = materialize(&name, t, s, data, false, &mut budget)?;
        out.push((name, tensor));
    }
    Ok(out)
}
