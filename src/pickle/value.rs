//! The inert object model the pickle VM builds: an arena of [`Obj`] values referring to each other
//! by index, plus whatever objects the caller's [`GlobalSet`] makes (tensors, arrays). Nothing in
//! it can run code; shared and even cyclic structures are plain data.

use super::GlobalSet;

/// Index of an object in a pickle's arena.
pub(crate) type Id = usize;

/// An allowed global: `collections.OrderedDict`, which every set admits and the VM reads as a
/// plain dict, or one of the caller's set. None of them is ever "called": they are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global<G> {
    /// `collections.OrderedDict`
    OrderedDict,
    /// A global of the caller's [`GlobalSet`].
    Allowed(G),
}

/// Inert unpickled objects. Containers refer to other objects by arena index, so shared and even
/// cyclic structures are plain data (no reference counting, no recursive drop).
pub(crate) enum Obj<S: GlobalSet> {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A list holding only floats, kept unboxed (only for sets with `UNBOX_FLOATS`; see
    /// `Unpickler::unbox_floats`).
    Floats(Vec<f64>),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global<S::Global>),
    /// An object made by one of the set's globals (a storage, a tensor, a NumPy array, ...).
    Ext(S::Object),
}

impl<S: GlobalSet> Obj<S> {
    /// Python-ish type name, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
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
            Obj::Ext(o) => S::kind(o),
        }
    }
}

/// Result of one pickle: its object arena, the root object and where the pickle ended.
pub(crate) struct Pickle<S: GlobalSet> {
    pub(crate) objs: Vec<Obj<S>>,
    pub(crate) root: Id,
    /// Byte just past the pickle's STOP (where a following pickle of a stream starts).
    pub(crate) end: usize,
}

impl<S: GlobalSet> Pickle<S> {
    pub(crate) fn get(&self, id: Id) -> &Obj<S> {
        // Ids are only ever produced by `Unpickler::alloc`, so they are always in range.
        &self.objs[id]
    }
}
