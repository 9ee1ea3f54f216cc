//! A pickle reader that executes nothing, shared by the PyTorch checkpoint loader
//! ([`crate::encoder::pth`]) and gene-vector import ([`crate::genes::import`]).
//!
//! # Security
//!
//! Unpickling here *executes nothing*: a tiny pickle virtual machine builds an inert object graph
//! in an arena, and the only callables it understands are a fixed allow-list of globals,
//! interpreted by Rust code rather than looked up anywhere. Which globals are allowed is chosen by
//! the caller as a `GlobalSet`: the checkpoint loader admits PyTorch tensor-rebuild functions,
//! the vector-dict reader only NumPy array reconstruction. Any other global (`posix.system`,
//! `builtins.eval`, ...) aborts the load with an error naming the file and the global. Every read
//! is bounds-checked, lengths are checked against the bytes actually present before anything is
//! allocated, total work is capped (`MAX_UNITS`), and there is no recursion over the (possibly
//! adversarial) object graph, so hostile bytes yield an error rather than a panic or stack overflow.
//!
//! # Layout
//!
//! * `value`: the inert object model (arena of `Obj`, ids, the finished `Pickle`);
//! * `globals`: the `GlobalSet` seam through which a caller admits and interprets globals;
//! * `input`: the bounds-checked byte cursor;
//! * `vm`: the opcode loop, stack, memo and work accounting (`Unpickler`);
//! * `numpy`: NumPy array and dtype reconstruction;
//! * `vectors`: `{name: vector}` dicts (GenePT gene embeddings), [`unpickle_vector_dict`].

mod globals;
mod input;
mod numpy;
mod value;
mod vectors;
mod vm;

pub(crate) use globals::GlobalSet;
pub(crate) use value::{Global, Id, Obj, Pickle};
pub use vectors::{unpickle_vector_dict, PickledVector, VectorKind};
pub(crate) use vm::{unpickle, Unpickler};

#[cfg(test)]
mod tests;

/// Upper bound on objects + stack pushes + memo entries + copied items of one pickle. A BERT
/// state dict needs a few thousand; even 100k tensors stay far below.
pub(crate) const MAX_UNITS: usize = 1 << 23;
/// PyTorch tensors have at most 64 dimensions (NumPy arrays are held to the same cap).
pub(crate) const MAX_DIMS: usize = 64;

/// Shorten and escape a file-provided string for an error message.
pub(crate) fn printable(s: &str) -> String {
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
