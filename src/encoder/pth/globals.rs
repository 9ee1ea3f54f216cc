//! The PyTorch global set for the pickle VM: which globals a checkpoint's pickle may name
//! (tensor-rebuild functions, storage classes), how calls of them become inert tensor and storage
//! references, and how persistent ids name storages. Nothing here touches storage bytes; that is
//! `tensor`'s job once the pickle is read.

use crate::pickle::{
    self, printable, Global, GlobalSet, Id, Obj, Pickle, Unpickler, MAX_DIMS, MAX_UNITS,
};
use anyhow::{anyhow, Result};

/// The only globals a checkpoint may reference besides `collections.OrderedDict` (which the VM
/// admits itself). None of them is ever "called": this module interprets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TorchGlobal {
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
}

/// Reads a checkpoint pickle: torch globals; storages as persistent ids where `persistent` (the
/// state-dict pickle), nowhere else (the legacy header pickles).
#[derive(Debug, Clone, Copy)]
pub(super) struct TorchGlobals {
    persistent: bool,
}

/// The objects torch globals and persistent ids make.
#[derive(Debug)]
pub(super) enum TorchObject {
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// A storage reference from a persistent id.
#[derive(Debug, Clone)]
pub(super) struct StorageRef {
    pub(super) dtype: StDType,
    pub(super) key: String,
    /// Number of elements of the (root) storage.
    pub(super) numel: u64,
    /// Legacy-format storage views: (offset, size) in elements into the root storage.
    pub(super) view: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
pub(super) struct TensorRef {
    /// Id of a `TorchObject::Storage`.
    pub(super) storage: Id,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

/// Unpickle one PyTorch pickle starting at `start` of `data`.
pub(super) fn unpickle(
    data: &[u8],
    start: usize,
    what: &str,
    persistent: bool,
) -> Result<Pickle<TorchGlobals>> {
    pickle::unpickle(
        data,
        start,
        what,
        TorchGlobals { persistent },
        crate::limits::pickle_units(MAX_UNITS),
    )
}

impl GlobalSet for TorchGlobals {
    type Global = TorchGlobal;
    type Object = TorchObject;

    fn resolve(&self, module: &str, name: &str) -> Option<TorchGlobal> {
        resolve_torch_global(module, name)
    }

    fn refuse(&self, module: &str, name: &str) -> anyhow::Error {
        anyhow!(
            "refusing to unpickle global '{}.{}': only PyTorch tensor-rebuild globals are allowed \
             (the checkpoint may be malicious; convert it with a trusted tool)",
            printable(module),
            printable(name)
        )
    }

    fn kind(object: &TorchObject) -> &'static str {
        match object {
            TorchObject::Storage(_) => "storage",
            TorchObject::Tensor(_) => "tensor",
        }
    }

    fn call(vm: &mut Unpickler<'_, Self>, p: usize, g: TorchGlobal, args: &[Id]) -> Result<Id> {
        vm.call_global(p, g, args, true)
    }

    /// Tensor state is accepted and ignored; a storage takes none.
    fn build(vm: &mut Unpickler<'_, Self>, p: usize, target: Id, _state: Id) -> Result<()> {
        match vm.obj(target) {
            Obj::Ext(TorchObject::Tensor(_)) => Ok(()),
            o => {
                let k = o.kind();
                Err(vm.err(p, format!("unsupported pickle: BUILD on a {k}")))
            }
        }
    }

    fn persistent_id(vm: &mut Unpickler<'_, Self>, p: usize, pid: Id) -> Result<Id> {
        if !vm.globals().persistent {
            return Err(vm.unexpected_persistent_id(p));
        }
        let s = vm.persistent_storage(p, pid)?;
        vm.alloc(Obj::Ext(TorchObject::Storage(s)))
    }
}

fn resolve_torch_global(module: &str, name: &str) -> Option<TorchGlobal> {
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => TorchGlobal::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => TorchGlobal::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => TorchGlobal::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => TorchGlobal::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => TorchGlobal::RebuildFromTypeV2,
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => {
            TorchGlobal::Storage(StDType::U8)
        }
        ("torch", "Tensor") | ("torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => {
            TorchGlobal::TensorClass
        }
        ("torch", s) | ("torch.cuda", s) => TorchGlobal::Storage(StDType::from_storage_name(s)?),
        _ => return None,
    })
}

impl Unpickler<'_, TorchGlobals> {
    /// Interpret a call of an allowed torch global. `_rebuild_from_type_v2` may wrap one of the
    /// rebuild functions, but not itself (`allow_from_type`).
    fn call_global(
        &mut self,
        p: usize,
        g: TorchGlobal,
        args: &[Id],
        allow_from_type: bool,
    ) -> Result<Id> {
        match g {
            TorchGlobal::RebuildTensorV2 | TorchGlobal::RebuildTensor => {
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
                self.alloc(Obj::Ext(TorchObject::Tensor(t)))
            }
            TorchGlobal::RebuildParameter
            | TorchGlobal::RebuildParameterWithState
            | TorchGlobal::TensorClass => {
                // _rebuild_parameter(data, requires_grad, backward_hooks[, state]) → data;
                // old-style Parameter(data, requires_grad) → data.
                match args.first() {
                    Some(&d) if matches!(self.obj(d), Obj::Ext(TorchObject::Tensor(_))) => Ok(d),
                    _ => Err(self.err(p, "corrupt checkpoint: parameter rebuild without a tensor")),
                }
            }
            TorchGlobal::RebuildFromTypeV2 => {
                // _rebuild_from_type_v2(func, new_type, args, state): apply func (an allowed rebuild
                // function) to args; the tensor subclass and its state are ignored.
                if !allow_from_type || args.len() < 3 {
                    return Err(
                        self.err(p, "unsupported checkpoint: malformed _rebuild_from_type_v2")
                    );
                }
                let func = match self.obj(args[0]) {
                    Obj::Global(Global::Allowed(
                        g @ (TorchGlobal::RebuildTensorV2
                        | TorchGlobal::RebuildTensor
                        | TorchGlobal::RebuildParameter
                        | TorchGlobal::RebuildParameterWithState),
                    )) => *g,
                    _ => return Err(self.err(
                        p,
                        "unsupported checkpoint: _rebuild_from_type_v2 of a non-tensor function",
                    )),
                };
                let inner: Vec<Id> =
                    match self.obj(args[2]) {
                        Obj::Tuple(a) => a.iter().take(8).copied().collect(),
                        _ => return Err(self.err(
                            p,
                            "corrupt checkpoint: _rebuild_from_type_v2 arguments are not a tuple",
                        )),
                    };
                self.call_global(p, func, &inner, false)
            }
            TorchGlobal::Storage(_) => Err(self.err(
                p,
                "unsupported checkpoint: storage constructed inline (not as a persistent id)",
            )),
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
        if !matches!(self.obj(storage), Obj::Ext(TorchObject::Storage(_))) {
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
        match self.obj(id) {
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
        let dtype = match self.obj(items[1]) {
            Obj::Global(Global::Allowed(TorchGlobal::Storage(d))) => *d,
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
        let view = match items.get(5).map(|&v| self.obj(v)) {
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

/// Element type of a torch storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StDType {
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
    pub(super) fn size(self) -> usize {
        match self {
            StDType::F64 | StDType::I64 => 8,
            StDType::F32 | StDType::I32 => 4,
            StDType::F16 | StDType::BF16 | StDType::I16 => 2,
            StDType::I8 | StDType::U8 | StDType::Bool => 1,
        }
    }

    pub(super) fn from_storage_name(name: &str) -> Option<StDType> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickle<TorchGlobals>> {
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
    fn numpy_globals_refused_in_torch_mode() {
        let p = b"\x80\x02cnumpy\ndtype\nq\x00.";
        let e = format!("{:#}", unpickle(p, 0, "t", true).err().expect("must fail"));
        assert!(e.contains("'numpy.dtype'") && e.contains("PyTorch"), "{e}");
    }

    #[test]
    fn too_many_dims() {
        // _rebuild_tensor(storage, 0, (1,)*65, (1,)*65)
        let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00(".to_vec();
        p.extend(std::iter::repeat_n(b"K\x01", 65).flatten());
        p.extend(b"t(");
        p.extend(std::iter::repeat_n(b"K\x01", 65).flatten());
        p.extend(b"ttR.");
        let e = format!("{:#}", run(&p).err().expect("must fail"));
        assert!(e.contains("65 dimensions"), "{e}");
    }
}
