#!/usr/bin/env python3
"""Largest absolute difference between two float32 .npy matrices, against a tolerance.

  python3 scripts/npy_diff.py --tol 1e-3 [--label TEXT] A.npy B.npy

Standard library only (it runs on machines without NumPy, e.g. scripts/scilama-gpu.sh on a GPU
machine). Prints one line: the label, the shape, max |a - b|, max |a|, and "within" or "OVER" the
tolerance; exits 0 either way (2 on unreadable or mismatched files), so a report goes on.
"""
import argparse
import ast
import struct
import sys
from array import array


def read_f32(path):
    """(rows, cols, values) of a C-order little-endian float32 .npy with 1 or 2 dimensions."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            sys.exit(f"{path}: not a .npy file")
        major = f.read(2)[0]
        size = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = ast.literal_eval(f.read(size).decode("latin1"))
        if header["descr"] != "<f4" or header["fortran_order"]:
            sys.exit(f"{path}: {header['descr']} (fortran_order {header['fortran_order']}); float32 C order expected")
        shape = header["shape"]
        values = array("f")
        values.frombytes(f.read())
    if sys.byteorder != "little":
        values.byteswap()
    rows, cols = (shape[0], 1) if len(shape) == 1 else shape
    if len(values) != rows * cols:
        sys.exit(f"{path}: {len(values)} values for shape {shape}")
    return rows, cols, values


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, required=True)
    p.add_argument("--label", default="")
    a = p.parse_args()
    ra, ca, va = read_f32(a.a)
    rb, cb, vb = read_f32(a.b)
    if (ra, ca) != (rb, cb):
        print(f"{a.label}: shapes differ, {ra}x{ca} vs {rb}x{cb}", flush=True)
        sys.exit(2)
    if any(x != x for x in va) or any(y != y for y in vb):
        print(f"{a.label}: {ra}x{ca}, NaN in the values, OVER {a.tol:g}")
        return
    diff = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
    scale = max((abs(x) for x in va), default=0.0)
    verdict = "within" if diff <= a.tol else "OVER"
    print(f"{a.label}: {ra}x{ca}, max |diff| {diff:.3g} (max |value| {scale:.3g}), {verdict} {a.tol:g}")


if __name__ == "__main__":
    main()
