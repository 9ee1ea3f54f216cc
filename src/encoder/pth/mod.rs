//! Loader for PyTorch `.bin` checkpoints (zip and legacy pickle formats).
//!
//! Two on-disk formats exist:
//!
//! * **zip** (`torch.save` since torch 1.6): a zip archive holding `<prefix>/data.pkl` (the pickled
//!   state dict, in which every storage is a *persistent id*), `<prefix>/data/<key>` (one raw
//!   storage per key), optionally `<prefix>/byteorder` (`little` or `big`) and a few bookkeeping
//!   entries. The prefix directory name varies (`archive/`, the file stem, ...).
//! * **legacy** (before 1.6, or `_use_new_zipfile_serialization=False`): a plain stream of pickles:
//!   the magic number `0x1950a86a20f9469cfc6c`, the protocol version `1001`, a `sys_info` dict, the
//!   state dict itself, the sorted list of storage keys, and then, for each key in that order, a
//!   little-endian `u64` element count followed by the raw little-endian storage bytes.
//!
//! # Security
//!
//! Pickles are read by the allow-listed VM of [`crate::pickle`], which executes nothing: the only
//! callables a checkpoint may name are the PyTorch tensor-rebuild functions of the torch global
//! set (`globals`), interpreted by this module rather than looked up anywhere. Any other global
//! (`posix.system`, `builtins.eval`, ...) aborts the load with an error naming the file and the
//! global. Storage lengths are checked against the bytes actually present before anything is
//! allocated, so hostile bytes yield an error rather than a panic or stack overflow.
//!
//! # Dtypes
//!
//! Tensors keep their dtype: f32, f64, f16, bf16, i64, i32, i16 and u8 map to the candle dtype of
//! the same name. Two torch dtypes have no candle counterpart and are converted: `torch.bool` → `U8`
//! (0/1) and `torch.int8` → `I16` (sign-extended). Complex, quantized and sparse tensors are refused.
//!
//! # Layout
//!
//! * `globals`: the torch global set (rebuild functions, storage classes, persistent ids);
//! * `tensor`: storage bytes → candle tensors (dtypes, strided views, bounds);
//! * `zip` and `legacy`: the two on-disk formats;
//! * this file: format detection, [`read_pth`], and finding the state dict in the pickle.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::pickle::{Id, Obj, Pickle};
use globals::{StorageRef, TensorRef, TorchGlobals, TorchObject};

mod globals;
mod legacy;
mod tensor;
mod zip;

/// Which on-disk format a `.bin` file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PthFormat {
    /// torch >= 1.6 zip archive (`data.pkl` + `data/<key>`).
    Zip,
    /// pre-1.6 stream of pickles followed by raw storages.
    Legacy,
}

/// Sniff the format of a PyTorch checkpoint from its first bytes.
pub fn detect_format(path: &Path) -> Result<PthFormat> {
    let mut f = File::open(path).map_err(|e| anyhow!("{}: cannot open: {e}", path.display()))?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => bail!("{}: cannot read: {e}", path.display()),
        }
    }
    classify(&head[..n]).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

/// Load every tensor of a PyTorch checkpoint (zip or legacy format) onto the CPU, keeping its dtype.
///
/// The state dict may be the top-level object or sit under a `state_dict` / `model` key of a
/// top-level dict. Entries whose value is not a tensor (ints, strings, None, nested dicts) are
/// skipped. Names come back in the dict's order.
pub fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    read_pth_inner(path).map_err(|e| anyhow!("{}: {e:#}", path.display()))
}

fn read_pth_inner(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = File::open(path).context("cannot open")?;
    let len = file.metadata().context("cannot stat")?.len();
    if len == 0 {
        bail!("file is empty, not a PyTorch checkpoint");
    }
    // SAFETY: read-only mapping of a regular file; as for any mmap-based weight loader
    // (safetensors, candle's VarBuilder) the file must not be truncated while it is being read.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.context("cannot memory-map")?;
    let bytes: &[u8] = &mmap;
    match classify(bytes)? {
        PthFormat::Zip => zip::load_zip(bytes),
        PthFormat::Legacy => legacy::load_legacy(bytes),
    }
}

fn classify(head: &[u8]) -> Result<PthFormat> {
    if head.is_empty() {
        bail!("file is empty, not a PyTorch checkpoint");
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(PthFormat::Zip);
    }
    // Legacy files start with the pickled magic number: PROTO n, then LONG1 (protocol 2+).
    // Protocol 0/1 pickles start directly with LONG1 / text LONG.
    if head[0] == 0x80 || head[0] == 0x8a || head[0] == b'L' {
        return Ok(PthFormat::Legacy);
    }
    if head.len() >= 9 && head[8] == b'{' {
        bail!(
            "not a PyTorch checkpoint (this looks like a safetensors file; load it as safetensors)"
        );
    }
    if head.starts_with(b"\x1f\x8b") {
        bail!("not a PyTorch checkpoint (this is a gzip file; decompress it first)");
    }
    bail!(
        "not a PyTorch checkpoint: starts with bytes {:02x?}, expected a zip archive ('PK') or a legacy pickle stream (0x80)",
        &head[..head.len().min(4)]
    )
}

/// Find the state dict in the unpickled object and return its (name, tensor-object id) pairs in
/// order, skipping non-tensor values. Later duplicates of a key replace earlier ones in place
/// (Python dict semantics).
fn state_dict_entries(pk: &Pickle<TorchGlobals>) -> Result<Vec<(String, Id)>> {
    let mut cur = pk.root;
    // Descend through at most a few `{'state_dict': {...}}` / `{'model': {...}}` wrappers.
    for _ in 0..4 {
        let Obj::Dict(items) = pk.get(cur) else {
            bail!(
                "the checkpoint's top-level object is a {}, not a dict of tensors (state dict)",
                pk.get(cur).kind()
            );
        };
        let has_tensor = items
            .iter()
            .any(|&(_, v)| matches!(pk.get(v), Obj::Ext(TorchObject::Tensor(_))));
        if has_tensor {
            break;
        }
        let inner = ["state_dict", "model"].iter().find_map(|want| {
            items
                .iter()
                .rev()
                .find_map(|&(k, v)| match (pk.get(k), pk.get(v)) {
                    (Obj::Str(s), Obj::Dict(_)) if s == want => Some(v),
                    _ => None,
                })
        });
        match inner {
            Some(v) => cur = v,
            None => break,
        }
    }
    let Obj::Dict(items) = pk.get(cur) else {
        bail!("the checkpoint's top-level object is not a dict of tensors (state dict)");
    };
    let mut out: Vec<(String, Id)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for &(k, v) in items {
        let Obj::Str(name) = pk.get(k) else { continue };
        if !matches!(pk.get(v), Obj::Ext(TorchObject::Tensor(_))) {
            // a later non-tensor value for the same key removes the tensor (Python semantics)
            if let Some(&i) = index.get(name) {
                out[i].1 = usize::MAX;
            }
            continue;
        }
        match index.get(name) {
            Some(&i) => out[i].1 = v,
            None => {
                index.insert(name.clone(), out.len());
                out.push((name.clone(), v));
            }
        }
    }
    out.retain(|(_, v)| *v != usize::MAX);
    Ok(out)
}

/// (tensor ref, storage ref) for an entry id known to be a tensor.
fn tensor_parts(pk: &Pickle<TorchGlobals>, id: Id) -> Result<(&TensorRef, &StorageRef)> {
    let Obj::Ext(TorchObject::Tensor(t)) = pk.get(id) else {
        bail!("internal error: not a tensor")
    };
    let Obj::Ext(TorchObject::Storage(s)) = pk.get(t.storage) else {
        bail!("internal error: tensor without storage")
    };
    Ok((t, s))
}
