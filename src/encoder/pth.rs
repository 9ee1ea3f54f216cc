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
//! Unpickling here *executes nothing*: a tiny pickle virtual machine builds an inert object graph
//! in an arena, and the only callables it understands are a fixed allow-list of PyTorch
//! tensor-rebuild functions, interpreted by this module rather than looked up anywhere.
//! Any other global (`posix.system`, `builtins.eval`, ...) aborts the load with an error naming
//! the file and the global. Every read is bounds-checked, lengths are checked against the bytes
//! actually present before anything is allocated, and there is no recursion over the (possibly
//! adversarial) object graph, so hostile bytes yield an error rather than a panic or stack overflow.
//!
//! # Dtypes
//!
//! Tensors keep their dtype: f32, f64, f16, bf16, i64, i32, i16 and u8 map to the candle dtype of
//! the same name. Two torch dtypes have no candle counterpart and are converted: `torch.bool` → `U8`
//! (0/1) and `torch.int8` → `I16` (sign-extended). Complex, quantized and sparse tensors are refused.
//!
//! # Vector dicts
//!
//! The same VM reads `{name: vector}` pickles (GenePT gene embeddings) through
//! [`unpickle_vector_dict`], with a separate allow-list that admits only NumPy array
//! reconstruction (see the `numpy` submodule) and no PyTorch global.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

mod numpy;
pub use numpy::{unpickle_vector_dict, PickledVector, VectorKind};

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
        PthFormat::Zip => load_zip(bytes),
        PthFormat::Legacy => load_legacy(bytes),
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

// ---------------------------------------------------------------------------------------------
// dtypes and allowed globals
// ---------------------------------------------------------------------------------------------

/// Element type of a torch storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StDType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StDType {
    fn size(self) -> usize {
        match self {
            StDType::F64 | StDType::I64 => 8,
            StDType::F32 | StDType::I32 => 4,
            StDType::F16 | StDType::BF16 | StDType::I16 => 2,
            StDType::I8 | StDType::U8 | StDType::Bool => 1,
        }
    }

    fn from_storage_name(name: &str) -> Option<StDType> {
        Some(match name {
            "FloatStorage" => StDType::F32,
            "DoubleStorage" => StDType::F64,
            "HalfStorage" => StDType::F16,
            "BFloat16Storage" => StDType::BF16,
            "LongStorage" => StDType::I64,
            "IntStorage" => StDType::I32,
            "ShortStorage" => StDType::I16,
            "CharStorage" => StDType::I8,
            "ByteStorage" => StDType::U8,
            "BoolStorage" => StDType::Bool,
            _ => return None,
        })
    }
}

/// The only globals a checkpoint may reference. None of them is ever "called": the VM interprets
/// them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    /// `collections.OrderedDict`
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor`
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`
    RebuildFromTypeV2,
    /// `torch.FloatStorage` etc. (also `torch.cuda.*Storage` of old GPU checkpoints and
    /// `torch.UntypedStorage`, read as bytes)
    Storage(StDType),
    /// `torch.Tensor`, `torch._tensor.Tensor`, `torch.nn.parameter.Parameter`: inert class
    /// markers (the `new_type` of `_rebuild_from_type_v2`, or old-style `Parameter(data, ...)`).
    TensorClass,
    /// NumPy array reconstruction (vector-dict pickles only).
    Numpy(numpy::NpGlobal),
}

/// Which allow-list a pickle is read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// PyTorch checkpoints: tensor-rebuild globals only.
    Torch,
    /// `{name: vector}` dicts: NumPy array globals only.
    Vectors,
}

fn resolve_global(module: &str, name: &str, allow: Allow) -> Option<Global> {
    match allow {
        Allow::Torch => resolve_torch_global(module, name),
        Allow::Vectors => numpy::resolve_global(module, name),
    }
}

fn resolve_torch_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => {
            Global::Storage(StDType::U8)
        }
        ("torch", "Tensor") | ("torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => {
            Global::TensorClass
        }
        ("torch", s) | ("torch.cuda", s) => Global::Storage(StDType::from_storage_name(s)?),
        _ => return None,
    })
}

fn refuse_global(module: &str, name: &str, allow: Allow) -> anyhow::Error {
    match allow {
        Allow::Torch => anyhow!(
            "refusing to unpickle global '{}.{}': only PyTorch tensor-rebuild globals are allowed \
             (the checkpoint may be malicious; convert it with a trusted tool)",
            printable(module),
            printable(name)
        ),
        Allow::Vectors => anyhow!(
            "refusing to unpickle global '{}.{}': only a dict of lists of floats or of NumPy float \
             arrays is allowed (the file may be malicious; re-save it with a trusted tool as a dict \
             of lists, or as parquet)",
            printable(module),
            printable(name)
        ),
    }
}

/// Shorten and escape a file-provided string for an error message.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(120)
        .flat_map(|c| c.escape_default())
        .collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// pickle VM
// ---------------------------------------------------------------------------------------------

type Id = usize;

/// A storage reference from a persistent id.
#[derive(Debug, Clone)]
struct StorageRef {
    dtype: StDType,
    key: String,
    /// Number of elements of the (root) storage.
    numel: u64,
    /// Legacy-format storage views: (offset, size) in elements into the root storage.
    view: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct TensorRef {
    /// Id of an `Obj::Storage`.
    storage: Id,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Inert unpickled objects. Containers refer to other objects by arena index, so shared and even
/// cyclic structures are plain data (no reference counting, no recursive drop).
#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A list holding only floats, kept unboxed (vector-dict pickles only; see `unbox_floats`).
    Floats(Vec<f64>),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
    NpDtype(numpy::NpDtype),
    NpArray(Box<numpy::NpArray>),
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) => "int",
            Obj::Float(_) => "float",
            Obj::Floats(_) => "list",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
            Obj::NpDtype(_) => "numpy dtype",
            Obj::NpArray(_) => "numpy array",
        }
    }
}

/// Result of one pickle: its object arena, the root object and where the pickle ended.
struct Pickle {
    objs: Vec<Obj>,
    root: Id,
    end: usize,
}

impl Pickle {
    fn get(&self, id: Id) -> &Obj {
        // Ids are only ever produced by `Unpickler::alloc`, so they are always in range.
        &self.objs[id]
    }
}

const MAX_PROTOCOL: u8 = 5;
/// Upper bound on objects + stack pushes + memo entries + copied items of one pickle. A BERT
/// state dict needs a few thousand; even 100k tensors stay far below.
const MAX_UNITS: usize = 1 << 23;
/// PyTorch tensors have at most 64 dimensions.
const MAX_DIMS: usize = 64;

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    /// What this pickle is, for error messages (e.g. `archive/data.pkl`).
    what: &'a str,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    metastack: Vec<Vec<Id>>,
    memo: HashMap<u64, Id>,
    /// Whether persistent ids (storages) may appear.
    persistent: bool,
    /// Work done so far, see `charge`.
    units: usize,
    /// Cap on `units`.
    max_units: usize,
    allow: Allow,
    /// One past the highest object id ever memoized (objects from here on are not in the memo).
    memo_floor: usize,
}

/// Unpickle one PyTorch pickle starting at `start` of `data`.
fn unpickle(data: &[u8], start: usize, what: &str, persistent: bool) -> Result<Pickle> {
    unpickle_as(data, start, what, persistent, Allow::Torch, MAX_UNITS)
}

fn unpickle_as(
    data: &[u8],
    start: usize,
    what: &str,
    persistent: bool,
    allow: Allow,
    max_units: usize,
) -> Result<Pickle> {
    let mut u = Unpickler {
        data,
        pos: start,
        what,
        objs: Vec::new(),
        stack: Vec::new(),
        metastack: Vec::new(),
        memo: HashMap::new(),
        persistent,
        units: 0,
        max_units,
        allow,
        memo_floor: 0,
    };
    let root = u.run()?;
    Ok(Pickle {
        objs: u.objs,
        root,
        end: u.pos,
    })
}

impl<'a> Unpickler<'a> {
    fn err(&self, op_pos: usize, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{msg} [{}, byte {op_pos}]", self.what)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                anyhow!(
                "truncated file: pickle needs {n} more bytes at byte {} but only {} remain [{}]",
                self.pos,
                data.len().saturating_sub(self.pos),
                self.what
            )
            })?;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    /// Length prefix → usize (still bounds-checked by `take` before any allocation).
    fn len_u64(&mut self, n: u64) -> Result<usize> {
        usize::try_from(n)
            .map_err(|_| anyhow!("corrupt pickle: length {n} too large [{}]", self.what))
    }

    /// A `\n`-terminated line for the text opcodes (without the newline).
    fn line(&mut self) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let s = &rest[..i];
                self.pos += i + 1;
                Ok(s)
            }
            None => bail!(
                "truncated file: unterminated line in pickle at byte {} [{}]",
                self.pos,
                self.what
            ),
        }
    }

    /// Count work against `MAX_UNITS` (objects, stack pushes, memo entries, copied items), so
    /// memory and time stay bounded whatever the pickle says.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.units = self.units.saturating_add(n);
        if self.units > self.max_units {
            bail!(
                "pickle too large: more than {} objects (corrupt or hostile checkpoint) [{}, byte {}]",
                self.max_units,
                self.what,
                self.pos
            );
        }
        Ok(())
    }

    fn alloc(&mut self, o: Obj) -> Result<Id> {
        self.charge(1)?;
        self.objs.push(o);
        Ok(self.objs.len() - 1)
    }

    fn push(&mut self, o: Obj) -> Result<()> {
        let id = self.alloc(o)?;
        self.push_id(id)
    }

    fn push_id(&mut self, id: Id) -> Result<()> {
        self.charge(1)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self, op_pos: usize) -> Result<Id> {
        self.stack
            .pop()
            .ok_or_else(|| self.err(op_pos, "corrupt pickle: stack underflow"))
    }

    fn top(&self, op_pos: usize) -> Result<Id> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err(op_pos, "corrupt pickle: empty stack"))
    }

    fn pop_mark(&mut self, op_pos: usize) -> Result<Vec<Id>> {
        let prev = self
            .metastack
            .pop()
            .ok_or_else(|| self.err(op_pos, "corrupt pickle: no MARK on the stack"))?;
        Ok(std::mem::replace(&mut self.stack, prev))
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn int_of(&self, id: Id) -> Option<i128> {
        match &self.objs[id] {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(*b as i128),
            _ => None,
        }
    }

    fn items_of(&self, id: Id) -> Option<&[Id]> {
        match &self.objs[id] {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    fn memo_get(&self, op_pos: usize, idx: u64) -> Result<Id> {
        self.memo
            .get(&idx)
            .copied()
            .ok_or_else(|| self.err(op_pos, format!("corrupt pickle: memo key {idx} not found")))
    }

    fn memo_put(&mut self, op_pos: usize, idx: u64) -> Result<()> {
        let top = self.top(op_pos)?;
        self.charge(1)?;
        self.memo.insert(idx, top);
        self.memo_floor = self.memo_floor.max(top + 1);
        Ok(())
    }

    fn global(&mut self, op_pos: usize, module: &str, name: &str) -> Result<()> {
        match resolve_global(module, name, self.allow) {
            Some(g) => {
                self.push(Obj::Global(g))?;
                Ok(())
            }
            None => Err(self.err(op_pos, refuse_global(module, name, self.allow))),
        }
    }

    fn run(&mut self) -> Result<Id> {
        loop {
            let p = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let v = self.u8()?;
                    if v > MAX_PROTOCOL {
                        return Err(self.err(p, format!("unsupported pickle protocol {v}")));
                    }
                }
                // FRAME: framing is transparent to the opcode stream.
                0x95 => {
                    let n = self.u64()?;
                    let remaining = (self.data.len() - self.pos) as u64;
                    if n > remaining {
                        return Err(self.err(p, format!("truncated file: pickle frame of {n} bytes but only {remaining} remain")));
                    }
                }
                // STOP
                b'.' => {
                    let root = self.pop(p)?;
                    return Ok(root);
                }
                // MARK
                b'(' => {
                    self.charge(1)?;
                    let s = std::mem::take(&mut self.stack);
                    self.metastack.push(s);
                }
                // POP
                b'0' => {
                    if self.stack.is_empty() {
                        // CPython pops a mark when the stack is empty.
                        self.pop_mark(p)?;
                    } else {
                        self.pop(p)?;
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark(p)?;
                }
                // DUP
                b'2' => {
                    let t = self.top(p)?;
                    self.push_id(t)?;
                }
                b'N' => self.push(Obj::None)?,
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Obj::Int(v as i128))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(v as i128))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Obj::Int(v as i128))?;
                }
                // LONG1, LONG4
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = i32::from_le_bytes(self.arr()?);
                        if n < 0 {
                            return Err(self.err(p, "corrupt pickle: negative LONG4 length"));
                        }
                        n as usize
                    };
                    if n > 16 {
                        return Err(self.err(p, format!("unsupported pickle: {n}-byte integer")));
                    }
                    let b = self.take(n)?;
                    self.push(Obj::Int(int_from_le(b)))?;
                }
                // BINFLOAT (big-endian)
                b'G' => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Obj::Float(v))?;
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len_u64(n)?;
                    let b = self.take(n)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| self.err(p, "corrupt pickle: string is not valid UTF-8"))?;
                    self.push(Obj::Str(s.to_owned()))?;
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len_u64(n)?;
                    let b = self.take(n)?;
                    self.push(Obj::Bytes(b.to_vec()))?;
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str; decoded as latin-1, losslessly)
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.arr()?);
                        if n < 0 {
                            return Err(self.err(p, "corrupt pickle: negative BINSTRING length"));
                        }
                        n as usize
                    } else {
                        self.u8()? as usize
                    };
                    let b = self.take(n)?;
                    self.push(Obj::Str(b.iter().map(|&c| c as char).collect()))?;
                }
                // text INT, LONG, FLOAT (protocol 0/1)
                b'I' | b'L' | b'F' => {
                    let line = self.line()?;
                    let s = std::str::from_utf8(line)
                        .map_err(|_| self.err(p, "corrupt pickle: bad number"))?;
                    let o = match (op, s) {
                        (b'I', "01") => Obj::Bool(true),
                        (b'I', "00") => Obj::Bool(false),
                        (b'F', s) => Obj::Float(
                            s.parse::<f64>()
                                .map_err(|_| self.err(p, "corrupt pickle: bad float"))?,
                        ),
                        (_, s) => {
                            Obj::Int(s.trim_end_matches('L').parse::<i128>().map_err(|_| {
                                self.err(p, "corrupt pickle: bad or oversized integer")
                            })?)
                        }
                    };
                    self.push(o)?;
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1..3
                b')' => self.push(Obj::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark(p)?;
                    self.push(Obj::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err(p, "corrupt pickle: stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Obj::Tuple(items))?;
                }
                // EMPTY_LIST, LIST, EMPTY_SET, FROZENSET (sets are kept as lists)
                b']' | 0x8f => self.push(Obj::List(Vec::new()))?,
                b'l' | 0x91 => {
                    let items = self.pop_mark(p)?;
                    self.push(Obj::List(items))?;
                }
                // APPEND
                b'a' => {
                    let v = self.pop(p)?;
                    self.list_extend(p, "APPEND", vec![v])?;
                }
                // APPENDS, ADDITEMS
                b'e' | 0x90 => {
                    let vs = self.pop_mark(p)?;
                    self.list_extend(p, "APPENDS", vs)?;
                }
                // EMPTY_DICT, DICT
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark(p)?;
                    let pairs = self.pairs(p, items)?;
                    self.push(Obj::Dict(pairs))?;
                }
                // SETITEM
                b's' => {
                    let v = self.pop(p)?;
                    let k = self.pop(p)?;
                    self.dict_extend(p, vec![(k, v)])?;
                }
                // SETITEMS
                b'u' => {
                    let items = self.pop_mark(p)?;
                    let pairs = self.pairs(p, items)?;
                    self.dict_extend(p, pairs)?;
                }
                // BINPUT, LONG_BINPUT, MEMOIZE, PUT
                b'q' => {
                    let i = self.u8()? as u64;
                    self.memo_put(p, i)?;
                }
                b'r' => {
                    let i = self.u32()? as u64;
                    self.memo_put(p, i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(p, i)?;
                }
                b'p' => {
                    let i = self.text_index(p)?;
                    self.memo_put(p, i)?;
                }
                // BINGET, LONG_BINGET, GET
                b'h' => {
                    let i = self.u8()? as u64;
                    let id = self.memo_get(p, i)?;
                    self.push_id(id)?;
                }
                b'j' => {
                    let i = self.u32()? as u64;
                    let id = self.memo_get(p, i)?;
                    self.push_id(id)?;
                }
                b'g' => {
                    let i = self.text_index(p)?;
                    let id = self.memo_get(p, i)?;
                    self.push_id(id)?;
                }
                // GLOBAL, INST (INST is refused after the allow-list check so the error names
                // the global when it is a foreign one)
                b'c' | b'i' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    if op == b'i' {
                        if resolve_global(&module, &name, self.allow).is_none() {
                            return Err(self.err(p, refuse_global(&module, &name, self.allow)));
                        }
                        return Err(self.err(p, "unsupported pickle opcode INST"));
                    }
                    self.global(p, &module, &name)?;
                }
                // STACK_GLOBAL
                0x93 => {
                    let n = self.pop(p)?;
                    let m = self.pop(p)?;
                    let (Some(module), Some(name)) = (self.str_of(m), self.str_of(n)) else {
                        return Err(self.err(p, "corrupt pickle: STACK_GLOBAL needs two strings"));
                    };
                    let (module, name) = (module.to_owned(), name.to_owned());
                    self.global(p, &module, &name)?;
                }
                // REDUCE
                b'R' => {
                    let args = self.pop(p)?;
                    let f = self.pop(p)?;
                    let r = self.call(p, f, args)?;
                    self.push_id(r)?;
                }
                // NEWOBJ, NEWOBJ_EX
                0x81 | 0x92 => {
                    if op == 0x92 {
                        let kw = self.pop(p)?;
                        if !matches!(&self.objs[kw], Obj::Dict(d) if d.is_empty()) {
                            return Err(
                                self.err(p, "unsupported pickle: NEWOBJ_EX with keyword arguments")
                            );
                        }
                    }
                    let args = self.pop(p)?;
                    let cls = self.pop(p)?;
                    if !matches!(self.objs[cls], Obj::Global(Global::OrderedDict)) {
                        return Err(self.err(
                            p,
                            "unsupported pickle: NEWOBJ of a class other than OrderedDict",
                        ));
                    }
                    let r = self.call(p, cls, args)?;
                    self.push_id(r)?;
                }
                // BUILD: the OrderedDict `_metadata` attribute and tensor state are accepted and
                // ignored; NumPy arrays and dtypes take their state (vector dicts only).
                b'b' => {
                    let state = self.pop(p)?;
                    let target = self.top(p)?;
                    match &self.objs[target] {
                        Obj::Dict(_) | Obj::Tensor(_) => {}
                        Obj::NpArray(_) | Obj::NpDtype(_) => self.build_numpy(p, target, state)?,
                        o => {
                            let k = o.kind();
                            return Err(self.err(p, format!("unsupported pickle: BUILD on a {k}")));
                        }
                    }
                }
                // BINPERSID
                b'Q' => {
                    let pid = self.pop(p)?;
                    if !self.persistent {
                        return Err(self.err(p, "corrupt checkpoint: unexpected persistent id"));
                    }
                    let s = self.persistent_storage(p, pid)?;
                    self.push(Obj::Storage(s))?;
                }
                b'P' => return Err(self.err(p, "unsupported pickle: text persistent id (PERSID)")),
                0x82..=0x84 => {
                    return Err(self.err(p, "unsupported pickle: extension registry (EXT*) opcodes"))
                }
                0x97 | 0x98 => return Err(self.err(p, "unsupported pickle: out-of-band buffers")),
                b'o' => return Err(self.err(p, "unsupported pickle opcode OBJ")),
                _ => {
                    return Err(self.err(
                        p,
                        format!("corrupt or unsupported pickle: unknown opcode 0x{op:02x}"),
                    ))
                }
            }
        }
    }

    fn text_index(&mut self, p: usize) -> Result<u64> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| self.err(p, "corrupt pickle: bad memo index"))
    }

    /// APPEND / APPENDS `vs` to the list on top of the stack.
    fn list_extend(&mut self, p: usize, op: &str, vs: Vec<Id>) -> Result<()> {
        let l = self.top(p)?;
        if self.allow == Allow::Vectors && self.unbox_floats(l, &vs) {
            return Ok(());
        }
        if let Obj::Floats(f) = &mut self.objs[l] {
            // something other than a float joins an unboxed list: box it back
            let f = std::mem::take(f);
            let mut ids = Vec::with_capacity(f.len());
            for x in f {
                ids.push(self.alloc(Obj::Float(x))?);
            }
            self.objs[l] = Obj::List(ids);
        }
        match &mut self.objs[l] {
            Obj::List(items) => {
                items.extend(vs);
                Ok(())
            }
            o => {
                let k = o.kind();
                Err(self.err(p, format!("corrupt pickle: {op} to a {k}")))
            }
        }
    }

    /// Keep floats appended to an empty or all-float list unboxed (8 bytes each rather than an
    /// arena object) and give back their arena slots and work units when nothing else can refer
    /// to them, so a GenePT pickle (tens of millions of floats) stays small. Returns whether the
    /// items were taken.
    fn unbox_floats(&mut self, l: Id, vs: &[Id]) -> bool {
        let target_ok = match &self.objs[l] {
            Obj::List(items) => items.is_empty(),
            Obj::Floats(_) => true,
            _ => false,
        };
        if !target_ok || vs.is_empty() {
            return false;
        }
        let mut vals = Vec::with_capacity(vs.len());
        for &v in vs {
            match self.objs[v] {
                Obj::Float(x) => vals.push(x),
                _ => return false,
            }
        }
        match &mut self.objs[l] {
            Obj::Floats(f) => f.extend(vals),
            o => *o = Obj::Floats(vals),
        }
        // The items were just popped off the stack. An object gets into a container only by being
        // popped, and back onto the stack only through DUP (which would repeat an id here) or the
        // memo; so if they are the newest objects, distinct, in order and never memoized (CPython
        // does not memoize floats), nothing refers to them any more.
        if let Some(start) = self.objs.len().checked_sub(vs.len()) {
            let tail = vs.iter().enumerate().all(|(i, &id)| id == start + i);
            if tail && start >= self.memo_floor && l < start {
                self.objs.truncate(start);
                // one unit for the object, one for its stack push
                self.units = self.units.saturating_sub(2 * vs.len());
            }
        }
        true
    }

    fn pairs(&self, p: usize, items: Vec<Id>) -> Result<Vec<(Id, Id)>> {
        if items.len() % 2 != 0 {
            return Err(self.err(p, "corrupt pickle: odd number of dict items"));
        }
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    fn dict_extend(&mut self, p: usize, pairs: Vec<(Id, Id)>) -> Result<()> {
        let d = self.top(p)?;
        match &mut self.objs[d] {
            Obj::Dict(items) => {
                items.extend(pairs);
                Ok(())
            }
            o => {
                let k = o.kind();
                Err(self.err(p, format!("corrupt pickle: SETITEM on a {k}")))
            }
        }
    }

    /// Interpret a call of an allowed global. Nothing is executed.
    fn call(&mut self, p: usize, f: Id, args: Id) -> Result<Id> {
        let g = match &self.objs[f] {
            Obj::Global(g) => *g,
            o => {
                let k = o.kind();
                return Err(self.err(
                    p,
                    format!("corrupt pickle: REDUCE on a {k}, not a callable"),
                ));
            }
        };
        // Only the first few arguments are ever used; never clone a (possibly huge) tuple.
        let args: Vec<Id> = match &self.objs[args] {
            Obj::Tuple(a) => a.iter().take(8).copied().collect(),
            o => {
                let k = o.kind();
                return Err(self.err(
                    p,
                    format!("corrupt pickle: REDUCE arguments are a {k}, not a tuple"),
                ));
            }
        };
        self.call_global(p, g, &args, true)
    }

    fn call_global(
        &mut self,
        p: usize,
        g: Global,
        args: &[Id],
        allow_from_type: bool,
    ) -> Result<Id> {
        match g {
            Global::OrderedDict => {
                let mut pairs = Vec::new();
                if let Some(&src) = args.first() {
                    // OrderedDict(iterable_of_pairs) or OrderedDict(dict)
                    match &self.objs[src] {
                        Obj::Dict(d) => {
                            let d = d.clone();
                            self.charge(d.len())?;
                            pairs.extend(d);
                        }
                        Obj::List(items) | Obj::Tuple(items) => {
                            for &it in items {
                                match self.items_of(it) {
                                    Some([k, v]) => pairs.push((*k, *v)),
                                    _ => {
                                        return Err(self.err(
                                            p,
                                            "corrupt pickle: OrderedDict item is not a pair",
                                        ))
                                    }
                                }
                            }
                        }
                        _ => return Err(self.err(p, "corrupt pickle: bad OrderedDict argument")),
                    }
                }
                self.alloc(Obj::Dict(pairs))
            }
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                if args.len() < 4 {
                    return Err(self.err(
                        p,
                        format!(
                            "corrupt checkpoint: tensor rebuild with {} arguments",
                            args.len()
                        ),
                    ));
                }
                let t = self.tensor_ref(p, args[0], args[1], args[2], args[3])?;
                self.alloc(Obj::Tensor(t))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState | Global::TensorClass => {
                // _rebuild_parameter(data, requires_grad, backward_hooks[, state]) → data;
                // old-style Parameter(data, requires_grad) → data.
                match args.first() {
                    Some(&d) if matches!(self.objs[d], Obj::Tensor(_)) => Ok(d),
                    _ => Err(self.err(p, "corrupt checkpoint: parameter rebuild without a tensor")),
                }
            }
            Global::RebuildFromTypeV2 => {
                // _rebuild_from_type_v2(func, new_type, args, state): apply func (an allowed rebuild
                // function) to args; the tensor subclass and its state are ignored.
                if !allow_from_type || args.len() < 3 {
                    return Err(
                        self.err(p, "unsupported checkpoint: malformed _rebuild_from_type_v2")
                    );
                }
                let func = match &self.objs[args[0]] {
                    Obj::Global(
                        g @ (Global::RebuildTensorV2
                        | Global::RebuildTensor
                        | Global::RebuildParameter
                        | Global::RebuildParameterWithState),
                    ) => *g,
                    _ => return Err(self.err(
                        p,
                        "unsupported checkpoint: _rebuild_from_type_v2 of a non-tensor function",
                    )),
                };
                let inner: Vec<Id> =
                    match &self.objs[args[2]] {
                        Obj::Tuple(a) => a.iter().take(8).copied().collect(),
                        _ => return Err(self.err(
                            p,
                            "corrupt checkpoint: _rebuild_from_type_v2 arguments are not a tuple",
                        )),
                    };
                self.call_global(p, func, &inner, false)
            }
            Global::Storage(_) => Err(self.err(
                p,
                "unsupported checkpoint: storage constructed inline (not as a persistent id)",
            )),
            Global::Numpy(g) => self.call_numpy(p, g, args),
        }
    }

    fn usize_of(&self, p: usize, id: Id, what: &str) -> Result<usize> {
        self.int_of(id)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                self.err(
                    p,
                    format!("corrupt checkpoint: tensor {what} is not a non-negative integer"),
                )
            })
    }

    fn dims_of(&self, p: usize, id: Id, what: &str) -> Result<Vec<usize>> {
        let items = self.items_of(id).ok_or_else(|| {
            self.err(
                p,
                format!("corrupt checkpoint: tensor {what} is not a tuple"),
            )
        })?;
        if items.len() > MAX_DIMS {
            return Err(self.err(
                p,
                format!(
                    "corrupt checkpoint: tensor {what} has {} dimensions",
                    items.len()
                ),
            ));
        }
        items.iter().map(|&i| self.usize_of(p, i, what)).collect()
    }

    fn tensor_ref(
        &self,
        p: usize,
        storage: Id,
        offset: Id,
        size: Id,
        stride: Id,
    ) -> Result<TensorRef> {
        if !matches!(self.objs[storage], Obj::Storage(_)) {
            return Err(self.err(
                p,
                "corrupt checkpoint: tensor rebuilt from something that is not a storage",
            ));
        }
        let offset = self.usize_of(p, offset, "storage offset")?;
        let size = self.dims_of(p, size, "size")?;
        let stride = self.dims_of(p, stride, "stride")?;
        if size.len() != stride.len() {
            return Err(self.err(
                p,
                format!(
                    "corrupt checkpoint: tensor size {:?} and stride {:?} differ in length",
                    size, stride
                ),
            ));
        }
        Ok(TensorRef {
            storage,
            offset,
            size,
            stride,
        })
    }

    fn key_of(&self, id: Id) -> Option<String> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s.clone()),
            Obj::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Obj::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`
    fn persistent_storage(&self, p: usize, pid: Id) -> Result<StorageRef> {
        let items = self
            .items_of(pid)
            .ok_or_else(|| self.err(p, "corrupt checkpoint: persistent id is not a tuple"))?;
        let tag = items.first().and_then(|&t| self.key_of(t));
        if tag.as_deref() != Some("storage") {
            return Err(self.err(
                p,
                format!(
                    "unsupported checkpoint: persistent id of kind {:?} (only 'storage' is supported)",
                    tag.map(|t| printable(&t))
                ),
            ));
        }
        if items.len() != 5 && items.len() != 6 {
            return Err(self.err(
                p,
                format!(
                    "corrupt checkpoint: storage persistent id has {} fields",
                    items.len()
                ),
            ));
        }
        let dtype = match &self.objs[items[1]] {
            Obj::Global(Global::Storage(d)) => *d,
            _ => {
                return Err(self.err(
                    p,
                    "corrupt checkpoint: storage type is not a torch storage class",
                ))
            }
        };
        let key = self
            .key_of(items[2])
            .ok_or_else(|| self.err(p, "corrupt checkpoint: storage key is not a string"))?;
        let numel = self
            .int_of(items[4])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                self.err(
                    p,
                    "corrupt checkpoint: storage size is not a non-negative integer",
                )
            })?;
        let view = match items.get(5).map(|&v| &self.objs[v]) {
            None | Some(Obj::None) => None,
            Some(Obj::Tuple(v)) if v.len() == 3 => {
                let off = self.int_of(v[1]).and_then(|x| u64::try_from(x).ok());
                let sz = self.int_of(v[2]).and_then(|x| u64::try_from(x).ok());
                match (off, sz) {
                    (Some(o), Some(s)) => Some((o, s)),
                    _ => return Err(self.err(p, "corrupt checkpoint: bad storage view metadata")),
                }
            }
            Some(_) => return Err(self.err(p, "corrupt checkpoint: bad storage view metadata")),
        };
        Ok(StorageRef {
            dtype,
            key,
            numel,
            view,
        })
    }
}

/// Little-endian two's-complement bytes (at most 16) → i128.
fn int_from_le(b: &[u8]) -> i128 {
    if b.is_empty() {
        return 0;
    }
    let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
    let mut a = [fill; 16];
    a[..b.len()].copy_from_slice(b);
    i128::from_le_bytes(a)
}

// ---------------------------------------------------------------------------------------------
// state dict extraction
// ---------------------------------------------------------------------------------------------

/// Find the state dict in the unpickled object and return its (name, tensor-object id) pairs in
/// order, skipping non-tensor values. Later duplicates of a key replace earlier ones in place
/// (Python dict semantics).
fn state_dict_entries(pk: &Pickle) -> Result<Vec<(String, Id)>> {
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
            .any(|&(_, v)| matches!(pk.get(v), Obj::Tensor(_)));
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
        if !matches!(pk.get(v), Obj::Tensor(_)) {
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
fn tensor_parts(pk: &Pickle, id: Id) -> Result<(&TensorRef, &StorageRef)> {
    let Obj::Tensor(t) = pk.get(id) else {
        bail!("internal error: not a tensor")
    };
    let Obj::Storage(s) = pk.get(t.storage) else {
        bail!("internal error: tensor without storage")
    };
    Ok((t, s))
}

/// Deflate can expand at most ~1032×; anything claiming more than this is corrupt.
const MAX_INFLATE_RATIO: u64 = 1100;

/// Materialized output may exceed the file size only through views sharing one storage (tied
/// weights) or zero strides; cap it so a tiny hostile file cannot demand terabytes.
fn output_budget(file_len: usize) -> u64 {
    (file_len as u64)
        .saturating_mul(16)
        .saturating_add(64 << 20)
}

// ---------------------------------------------------------------------------------------------
// zip format
// ---------------------------------------------------------------------------------------------

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

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
            "corrupt zip archive: entry '{}' claims {size} bytes (limit {limit})",
            printable(name)
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

fn load_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let file_len = bytes.len() as u64;
    let max_entry = file_len.saturating_mul(MAX_INFLATE_RATIO);
    let (mut zip, names) = zip_guard(|| {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
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
    let pkl_limit = file_len.saturating_mul(4).saturating_add(1 << 20);
    let pkl = read_entry(&mut zip, &pkl_name, pkl_limit, file_len)?;
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
            let need = s
                .numel
                .checked_mul(s.dtype.size() as u64)
                .filter(|&n| n <= max_entry)
                .ok_or_else(|| {
                    anyhow!(
                        "corrupt checkpoint: storage '{}' claims {} elements",
                        printable(&s.key),
                        s.numel
                    )
                })?;
            let data = read_entry(&mut zip, &entry, max_entry, file_len)?;
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

// ---------------------------------------------------------------------------------------------
// legacy format
// ---------------------------------------------------------------------------------------------

/// `0x1950a86a20f9469cfc6c`, torch.serialization.MAGIC_NUMBER.
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
const LEGACY_PROTOCOL_VERSION: i128 = 1001;

fn load_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
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
        if let Obj::Storage(s) = o {
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

// ---------------------------------------------------------------------------------------------
// tensors
// ---------------------------------------------------------------------------------------------

/// Build a contiguous CPU tensor from a (possibly strided, offset) view of a raw storage.
/// `data` holds the whole root storage (at least `numel × element size` bytes).
fn materialize(
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

    fn run(bytes: &[u8]) -> Result<Pickle> {
        unpickle(bytes, 0, "test", true)
    }

    #[test]
    fn refuses_foreign_global() {
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let e = format!("{:#}", run(p).err().expect("must fail"));
        assert!(
            e.contains("refusing to unpickle global 'posix.system'"),
            "{e}"
        );
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        let e = format!("{:#}", run(p).err().expect("must fail"));
        assert!(e.contains("'builtins.eval'"), "{e}");
        // INST names the global too
        let p = b"(ios\nsystem\n.";
        let e = format!("{:#}", run(p).err().expect("must fail"));
        assert!(e.contains("'os.system'"), "{e}");
    }

    #[test]
    fn memo_shares_mutable_containers() {
        // l = []; d = {'a': l}; l.append(1)  -- via memo
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02sh\x02K\x01a0h\x00.";
        let pk = run(p).expect("ok");
        let Obj::Dict(items) = pk.get(pk.root) else {
            panic!()
        };
        let Obj::List(l) = pk.get(items[0].1) else {
            panic!()
        };
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat(0x85u8).take(1_000_000));
        p.push(b'.');
        assert!(run(&p).is_ok());
        let mut p = vec![0x80, 2];
        p.extend(std::iter::repeat(b']').take(200_000));
        p.extend(std::iter::repeat(b'a').take(199_999));
        p.push(b'.');
        assert!(run(&p).is_ok());
    }

    #[test]
    fn adversarial_lengths_and_opcodes() {
        for p in [
            &b"\x80\x02X\xff\xff\xff\xff"[..],
            b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\x8b\xff\xff\xff\x7f",
            b"\x80\x02\x95\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x80\x02\xff",
            b"\x80\x09.",
            b"\x80\x02.",
            b"\x80\x02h\x05.",
            b"\x80\x02K\x01K\x02s.",
            b"\x80\x02t.",
            b"",
        ] {
            assert!(run(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn work_is_bounded() {
        // a million DUPs of one tuple, nine times over the budget
        let mut p = vec![0x80, 2, b')'];
        p.extend(std::iter::repeat(b'2').take(MAX_UNITS + 10));
        p.push(b'.');
        let e = format!("{:#}", run(&p).err().expect("must fail"));
        assert!(e.contains("pickle too large"), "{e}");
        // OrderedDict(d) copies d: repeating it on a memoized 1000-entry dict must hit the cap
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00}q\x01(".to_vec();
        for i in 0..1000u32 {
            p.push(b'J');
            p.extend(i.to_le_bytes());
            p.push(b'N');
        }
        p.push(b'u');
        for _ in 0..10_000 {
            p.extend(b"h\x00h\x01\x85R0");
        }
        p.push(b'.');
        let e = format!("{:#}", run(&p).err().expect("must fail"));
        assert!(e.contains("pickle too large"), "{e}");
    }

    #[test]
    fn too_many_dims() {
        // _rebuild_tensor(storage, 0, (1,)*65, (1,)*65)
        let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00(".to_vec();
        p.extend(std::iter::repeat(b"K\x01").take(65).flatten());
        p.extend(b"t(");
        p.extend(std::iter::repeat(b"K\x01").take(65).flatten());
        p.extend(b"ttR.");
        let e = format!("{:#}", run(&p).err().expect("must fail"));
        assert!(e.contains("65 dimensions"), "{e}");
    }

    #[test]
    fn ints() {
        assert_eq!(
            int_from_le(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]),
            LEGACY_MAGIC
        );
        assert_eq!(int_from_le(&[0xff]), -1);
        assert_eq!(int_from_le(&[0xff, 0x00]), 255);
    }

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
