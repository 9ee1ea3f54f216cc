#!/usr/bin/env python3
"""Crash census for h5ad inputs mutated anywhere in their bytes (file metadata included).

Writes N seeded mutations of the h5ad seeds in tests/fuzz/corpus/h5ad/ (bit flips, byte sets,
inserts, deletes, truncation, repeated runs: the operators of tests/fuzz.rs) and runs a celltext
binary on each (`cells sentences`, which reads X, obs and var), each in its own process with a
time limit, then counts exit codes: 0/1/2 are fine, a signal (segfault, abort) or a timeout is a
crash. The same seed gives the same files, so two binaries (e.g. one linked to the system
libhdf5, one built with HDF5 from source) are compared on identical inputs.

    python3 tests/fuzz/h5ad_census.py BINARY [N] [SEED]     # prints a summary, saves crashers

Crashing inputs are copied to h5ad-census-crashes/ in the current folder.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
INTERESTING = [0, 0xFF, 0x7F, 0x80, 0x0A, 0x09, 0x2D, 0x39]


def mutate(seed: bytes, rng: random.Random) -> bytes:
    v = bytearray(seed)
    for _ in range(rng.randint(1, 5)):
        op = rng.choices(["flip", "set", "insert", "delete", "truncate", "repeat"], [3, 3, 1, 1, 1, 1])[0]
        i = rng.randrange(len(v)) if v else 0
        if op == "flip" and v:
            v[i] ^= 1 << rng.randrange(8)
        elif op == "set" and v:
            v[i] = rng.choice(INTERESTING) if rng.random() < 0.8 else rng.randrange(256)
        elif op == "insert":
            v[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == "delete" and v:
            del v[i : i + rng.randint(1, 63)]
        elif op == "truncate":
            del v[i:]
        elif op == "repeat" and v:
            run = v[i : i + rng.randint(1, 31)]
            v[i + len(run) : i + len(run)] = run * rng.randint(1, 63)
    return bytes(v)


def main() -> int:
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    corpus = os.path.join(HERE, "corpus", "h5ad")
    seeds = [open(os.path.join(corpus, f), "rb").read() for f in sorted(os.listdir(corpus)) if f.endswith(".h5ad")]
    counts: dict[str, int] = {}
    crashes = []
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "x.h5ad"), os.path.join(d, "out.jsonl")
        for k in range(n):
            data = mutate(seeds[k % len(seeds)], rng)
            with open(src, "wb") as f:
                f.write(data)
            try:
                r = subprocess.run(
                    [binary, "cells", "sentences", "-i", src, "-o", out, "--quiet"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
                rc = r.returncode
                kind = f"exit {rc}" if rc >= 0 else f"signal {signal.Signals(-rc).name}"
            except subprocess.TimeoutExpired:
                kind = "timeout"
            counts[kind] = counts.get(kind, 0) + 1
            if kind.startswith(("signal", "timeout")) or kind not in ("exit 0", "exit 1", "exit 2"):
                crashes.append((k, kind))
                os.makedirs("h5ad-census-crashes", exist_ok=True)
                shutil.copy(src, os.path.join("h5ad-census-crashes", f"case{k:05d}.h5ad"))
            if os.path.exists(out):
                os.remove(out)
    print(f"{binary}: {n} inputs: " + ", ".join(f"{c} {k}" for k, c in sorted(counts.items())))
    print(f"crashes: {len(crashes)}" + (" (cases " + ", ".join(str(k) for k, _ in crashes[:20]) + ")" if crashes else ""))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
