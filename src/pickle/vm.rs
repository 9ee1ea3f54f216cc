//! The pickle virtual machine: reads the opcode stream of one pickle (protocols 0-5) into an inert
//! object arena, with a stack, a mark stack and a memo, charging every object, push, memo entry
//! and copied item against a work cap so hostile bytes cannot demand unbounded memory or time.
//! Globals go through the caller's [`GlobalSet`]; nothing is ever executed.

use super::input::Input;
use super::{Global, GlobalSet, Id, Obj, Pickle};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;

const MAX_PROTOCOL: u8 = 5;

pub(crate) struct Unpickler<'a, S: GlobalSet> {
    input: Input<'a>,
    pub(super) objs: Vec<Obj<S>>,
    stack: Vec<Id>,
    metastack: Vec<Vec<Id>>,
    memo: HashMap<u64, Id>,
    /// Work done so far, see `charge`.
    units: usize,
    /// Cap on `units`.
    max_units: usize,
    /// The globals this pickle may reference, and how they are interpreted.
    globals: S,
    /// One past the highest object id ever memoized (objects from here on are not in the memo).
    memo_floor: usize,
}

/// Unpickle one pickle starting at `start` of `data`, admitting the globals of `globals` and doing
/// at most `max_units` of work (see `Unpickler::charge`). `what` names the pickle in errors.
pub(crate) fn unpickle<S: GlobalSet>(
    data: &[u8],
    start: usize,
    what: &str,
    globals: S,
    max_units: usize,
) -> Result<Pickle<S>> {
    let mut u = Unpickler {
        input: Input {
            data,
            pos: start,
            what,
        },
        objs: Vec::new(),
        stack: Vec::new(),
        metastack: Vec::new(),
        memo: HashMap::new(),
        units: 0,
        max_units,
        globals,
        memo_floor: 0,
    };
    let root = u.run()?;
    Ok(Pickle {
        objs: u.objs,
        root,
        end: u.input.pos,
    })
}

impl<'a, S: GlobalSet> Unpickler<'a, S> {
    pub(crate) fn err(&self, op_pos: usize, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{msg} [{}, byte {op_pos}]", self.input.what)
    }

    /// Count work against `MAX_UNITS` (objects, stack pushes, memo entries, copied items), so
    /// memory and time stay bounded whatever the pickle says.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.units = self.units.saturating_add(n);
        if self.units > self.max_units {
            bail!(
                "pickle too large: more than {} objects (corrupt or hostile file; if it is genuine, \
                 raise the limit: {}={}) [{}, byte {}]",
                self.max_units,
                crate::limits::PICKLE_OBJECTS_ENV,
                self.max_units.saturating_mul(4),
                self.input.what,
                self.input.pos
            );
        }
        Ok(())
    }

    pub(crate) fn alloc(&mut self, o: Obj<S>) -> Result<Id> {
        self.charge(1)?;
        self.objs.push(o);
        Ok(self.objs.len() - 1)
    }

    fn push(&mut self, o: Obj<S>) -> Result<()> {
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

    pub(crate) fn str_of(&self, id: Id) -> Option<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn int_of(&self, id: Id) -> Option<i128> {
        match &self.objs[id] {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(*b as i128),
            _ => None,
        }
    }

    pub(crate) fn items_of(&self, id: Id) -> Option<&[Id]> {
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

    /// `module.name` → an allowed global: `collections.OrderedDict` or one of the set's.
    fn resolve_global(&self, module: &str, name: &str) -> Option<Global<S::Global>> {
        if (module, name) == ("collections", "OrderedDict") {
            return Some(Global::OrderedDict);
        }
        self.globals.resolve(module, name).map(Global::Allowed)
    }

    fn global(&mut self, op_pos: usize, module: &str, name: &str) -> Result<()> {
        match self.resolve_global(module, name) {
            Some(g) => {
                self.push(Obj::Global(g))?;
                Ok(())
            }
            None => Err(self.err(op_pos, self.globals.refuse(module, name))),
        }
    }

    // One arm per opcode, long on purpose: the pickle format's opcode table reads top to bottom.
    fn run(&mut self) -> Result<Id> {
        loop {
            let p = self.input.pos;
            let op = self.input.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let v = self.input.u8()?;
                    if v > MAX_PROTOCOL {
                        return Err(self.err(p, format!("unsupported pickle protocol {v}")));
                    }
                }
                // FRAME: framing is transparent to the opcode stream.
                0x95 => {
                    let n = self.input.u64()?;
                    let remaining = (self.input.data.len() - self.input.pos) as u64;
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
                    let v = i32::from_le_bytes(self.input.arr()?);
                    self.push(Obj::Int(v as i128))?;
                }
                b'K' => {
                    let v = self.input.u8()?;
                    self.push(Obj::Int(v as i128))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.input.arr()?);
                    self.push(Obj::Int(v as i128))?;
                }
                // LONG1, LONG4
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.input.u8()? as usize
                    } else {
                        let n = i32::from_le_bytes(self.input.arr()?);
                        if n < 0 {
                            return Err(self.err(p, "corrupt pickle: negative LONG4 length"));
                        }
                        n as usize
                    };
                    if n > 16 {
                        return Err(self.err(p, format!("unsupported pickle: {n}-byte integer")));
                    }
                    let b = self.input.take(n)?;
                    self.push(Obj::Int(int_from_le(b)))?;
                }
                // BINFLOAT (big-endian)
                b'G' => {
                    let v = f64::from_be_bytes(self.input.arr()?);
                    self.push(Obj::Float(v))?;
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.input.u32()? as u64,
                        0x8c => self.input.u8()? as u64,
                        _ => self.input.u64()?,
                    };
                    let n = self.input.len_u64(n)?;
                    let b = self.input.take(n)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| self.err(p, "corrupt pickle: string is not valid UTF-8"))?;
                    self.push(Obj::Str(s.to_owned()))?;
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.input.u32()? as u64,
                        b'C' => self.input.u8()? as u64,
                        _ => self.input.u64()?,
                    };
                    let n = self.input.len_u64(n)?;
                    let b = self.input.take(n)?;
                    self.push(Obj::Bytes(b.to_vec()))?;
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str; decoded as latin-1, losslessly)
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.input.arr()?);
                        if n < 0 {
                            return Err(self.err(p, "corrupt pickle: negative BINSTRING length"));
                        }
                        n as usize
                    } else {
                        self.input.u8()? as usize
                    };
                    let b = self.input.take(n)?;
                    self.push(Obj::Str(b.iter().map(|&c| c as char).collect()))?;
                }
                // text INT, LONG, FLOAT (protocol 0/1)
                b'I' | b'L' | b'F' => {
                    let line = self.input.line()?;
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
                    let i = self.input.u8()? as u64;
                    self.memo_put(p, i)?;
                }
                b'r' => {
                    let i = self.input.u32()? as u64;
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
                    let i = self.input.u8()? as u64;
                    let id = self.memo_get(p, i)?;
                    self.push_id(id)?;
                }
                b'j' => {
                    let i = self.input.u32()? as u64;
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
                    let module = String::from_utf8_lossy(self.input.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.input.line()?).into_owned();
                    if op == b'i' {
                        if self.resolve_global(&module, &name).is_none() {
                            return Err(self.err(p, self.globals.refuse(&module, &name)));
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
                // BUILD: the OrderedDict `_metadata` attribute is accepted and ignored; the set
                // decides for its own objects (tensor state is ignored, NumPy arrays take theirs).
                b'b' => {
                    let state = self.pop(p)?;
                    let target = self.top(p)?;
                    match &self.objs[target] {
                        Obj::Dict(_) => {}
                        Obj::Ext(_) => S::build(self, p, target, state)?,
                        o => {
                            let k = o.kind();
                            return Err(self.err(p, format!("unsupported pickle: BUILD on a {k}")));
                        }
                    }
                }
                // BINPERSID
                b'Q' => {
                    let pid = self.pop(p)?;
                    let id = S::persistent_id(self, p, pid)?;
                    self.push_id(id)?;
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
        let line = self.input.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| self.err(p, "corrupt pickle: bad memo index"))
    }

    /// APPEND / APPENDS `vs` to the list on top of the stack.
    fn list_extend(&mut self, p: usize, op: &str, vs: Vec<Id>) -> Result<()> {
        let l = self.top(p)?;
        if S::UNBOX_FLOATS && self.unbox_floats(l, &vs) {
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
        if !items.len().is_multiple_of(2) {
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
        match g {
            Global::OrderedDict => self.ordered_dict(p, &args),
            Global::Allowed(g) => S::call(self, p, g, &args),
        }
    }

    /// `OrderedDict(iterable_of_pairs)` or `OrderedDict(dict)`, read as a plain dict.
    fn ordered_dict(&mut self, p: usize, args: &[Id]) -> Result<Id> {
        let mut pairs = Vec::new();
        if let Some(&src) = args.first() {
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
                                return Err(
                                    self.err(p, "corrupt pickle: OrderedDict item is not a pair")
                                )
                            }
                        }
                    }
                }
                _ => return Err(self.err(p, "corrupt pickle: bad OrderedDict argument")),
            }
        }
        self.alloc(Obj::Dict(pairs))
    }

    /// The object `id` (an id handed out by this VM).
    pub(crate) fn obj(&self, id: Id) -> &Obj<S> {
        &self.objs[id]
    }

    /// The global set this pickle is read under.
    pub(crate) fn globals(&self) -> &S {
        &self.globals
    }

    /// The error for a persistent id in a pickle that may not have any.
    pub(crate) fn unexpected_persistent_id(&self, p: usize) -> anyhow::Error {
        self.err(p, "corrupt checkpoint: unexpected persistent id")
    }
}

/// Little-endian two's-complement bytes (at most 16) → i128.
pub(super) fn int_from_le(b: &[u8]) -> i128 {
    if b.is_empty() {
        return 0;
    }
    let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
    let mut a = [fill; 16];
    a[..b.len()].copy_from_slice(b);
    i128::from_le_bytes(a)
}
