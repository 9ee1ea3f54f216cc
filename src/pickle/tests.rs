//! Tests of the pickle VM itself (opcodes, memo, limits), under a global set that admits nothing
//! beyond `collections.OrderedDict`; the PyTorch and vector-dict sets are tested with their code.

use super::vm::int_from_le;
use super::*;
use anyhow::{anyhow, Result};

/// Admits no global of its own.
struct NoGlobals;

impl GlobalSet for NoGlobals {
    type Global = ();
    type Object = ();

    fn resolve(&self, _module: &str, _name: &str) -> Option<()> {
        None
    }

    fn refuse(&self, module: &str, name: &str) -> anyhow::Error {
        anyhow!(
            "refusing to unpickle global '{}.{}'",
            printable(module),
            printable(name)
        )
    }

    fn kind(_object: &()) -> &'static str {
        "object"
    }

    fn call(vm: &mut Unpickler<'_, Self>, p: usize, _g: (), _args: &[Id]) -> Result<Id> {
        Err(vm.err(p, "no globals"))
    }

    fn build(vm: &mut Unpickler<'_, Self>, p: usize, _target: Id, _state: Id) -> Result<()> {
        Err(vm.err(p, "no globals"))
    }
}

fn run(bytes: &[u8]) -> Result<Pickle<NoGlobals>> {
    unpickle(bytes, 0, "test", NoGlobals, MAX_UNITS)
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
    p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    p.push(b'.');
    assert!(run(&p).is_ok());
    let mut p = vec![0x80, 2];
    p.extend(std::iter::repeat_n(b']', 200_000));
    p.extend(std::iter::repeat_n(b'a', 199_999));
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
    p.extend(std::iter::repeat_n(b'2', MAX_UNITS + 10));
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
fn ints() {
    assert_eq!(
        int_from_le(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]),
        0x1950a86a20f9469cfc6c // torch's legacy-format magic number
    );
    assert_eq!(int_from_le(&[0xff]), -1);
    assert_eq!(int_from_le(&[0xff, 0x00]), 255);
}
