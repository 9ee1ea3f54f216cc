//! The seam between the generic pickle VM and what a caller lets a pickle build: a [`GlobalSet`]
//! names the globals a file may reference and interprets calls of them, persistent ids and BUILD
//! on the objects they make. The VM itself knows only Python's plain data types and
//! `collections.OrderedDict`, so neither PyTorch nor gene import leaks into it.

use super::{Id, Unpickler};
use anyhow::Result;

pub(crate) trait GlobalSet: Sized {
    /// A global this set admits (beyond `collections.OrderedDict`, which every set admits).
    type Global: Copy + PartialEq;
    /// Objects only this set's globals make (tensors, storages, NumPy arrays, ...).
    type Object;

    /// Keep floats appended to an empty or all-float list unboxed (for pickles holding tens of
    /// millions of floats; see `Unpickler::unbox_floats`).
    const UNBOX_FLOATS: bool = false;

    /// `module.name` → an allowed global, or `None` to refuse it.
    fn resolve(&self, module: &str, name: &str) -> Option<Self::Global>;

    /// The error for a global `resolve` refused (it says what this set allows).
    fn refuse(&self, module: &str, name: &str) -> anyhow::Error;

    /// Type name of one of this set's objects, for error messages.
    fn kind(object: &Self::Object) -> &'static str;

    /// Interpret `g(*args)` (REDUCE; `args` holds at most the first 8 arguments). Nothing is
    /// executed: the set builds an inert object and returns its id.
    fn call(vm: &mut Unpickler<'_, Self>, p: usize, g: Self::Global, args: &[Id]) -> Result<Id>;

    /// BUILD with `state` on `target`, one of this set's objects (`Obj::Ext`).
    fn build(vm: &mut Unpickler<'_, Self>, p: usize, target: Id, state: Id) -> Result<()>;

    /// BINPERSID: the object a persistent id stands for. Sets without persistent ids refuse them.
    fn persistent_id(vm: &mut Unpickler<'_, Self>, p: usize, _pid: Id) -> Result<Id> {
        Err(vm.unexpected_persistent_id(p))
    }
}
