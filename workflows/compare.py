"""Compare two celltext outputs the way the sharding contract promises: vectors bit for bit,
manifests equal once the timing fields (`seconds`, `tokens_per_second`, at any depth) are left out.

    python3 workflows/compare.py A B     # A, B: .h5ad files, or gene-store prefixes

h5ad: every obsm array (dtype, shape, bytes), every obs column, every uns/celltext_* manifest,
and the OUT.manifest.json beside each; its `output_sha256` is checked against its own file and
then left out (a merged h5ad holds the same values in other HDF5 bytes than a whole one). Store: PREFIX.safetensors and PREFIX.genes.tsv byte for
byte, PREFIX.manifest.json as above. Exit 1 naming the first difference.
"""
import hashlib
import json
import os
import sys

TIMING = {"seconds", "tokens_per_second"}


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def manifest(path):
    with open(path) as f:
        return strip(json.load(f))


def fail(msg):
    print(f"DIFFERENT: {msg}")
    sys.exit(1)


def compare_h5ad(a, b):
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ka, kb = sorted(fa["obsm"].keys()), sorted(fb["obsm"].keys())
        if ka != kb:
            fail(f"obsm keys {ka} vs {kb}")
        for k in ka:
            x, y = fa["obsm"][k][()], fb["obsm"][k][()]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                fail(f"obsm/{k}")
        ca, cb = sorted(fa["obs"].keys()), sorted(fb["obs"].keys())
        if ca != cb:
            fail(f"obs columns {ca} vs {cb}")
        for k in ca:
            if isinstance(fa["obs"][k], h5py.Dataset):
                x, y = fa["obs"][k][()], fb["obs"][k][()]
                if not np.array_equal(x, y) or x.dtype != y.dtype:
                    fail(f"obs/{k}")
        ua = sorted(k for k in fa["uns"].keys() if k.startswith("celltext_"))
        ub = sorted(k for k in fb["uns"].keys() if k.startswith("celltext_"))
        if ua != ub:
            fail(f"uns keys {ua} vs {ub}")
        for k in ua:
            ja = strip(json.loads(fa["uns"][k][()].decode()))
            jb = strip(json.loads(fb["uns"][k][()].decode()))
            if ja != jb:
                fail(f"uns/{k}: {diff(ja, jb)}")
        n = fa["obsm"][ka[0]].shape[0] if ka else 0
    ma, mb = own_sha256_checked(a), own_sha256_checked(b)
    if ma != mb:
        fail(f"{a}.manifest.json vs {b}.manifest.json: {diff(ma, mb)}")
    return f"obsm {', '.join(ka)} ({n} cells), obs, uns and manifest"


def own_sha256_checked(path):
    """The manifest beside an h5ad, less timing and its `output_sha256`, once that matches the file."""
    m = manifest(path + ".manifest.json")
    want = m.pop("output_sha256", None)
    if want is not None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            fail(f"{path}: sha256 {h.hexdigest()} but its manifest says {want}")
    return m


def compare_store(a, b):
    for ext in ("safetensors", "genes.tsv"):
        with open(f"{a}.{ext}", "rb") as fa, open(f"{b}.{ext}", "rb") as fb:
            if fa.read() != fb.read():
                fail(f"{a}.{ext} vs {b}.{ext}")
    ma, mb = manifest(a + ".manifest.json"), manifest(b + ".manifest.json")
    if ma != mb:
        fail(f"{a}.manifest.json vs {b}.manifest.json: {diff(ma, mb)}")
    return "store vectors, genes and manifest"


def diff(x, y, where=""):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                return diff(x.get(k), y.get(k), f"{where}.{k}")
    return f"{where or 'value'}: {x!r} vs {y!r}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = sys.argv[1], sys.argv[2]
    what = compare_h5ad(a, b) if a.endswith(".h5ad") else compare_store(a, b)
    print(f"identical: {os.path.basename(a)} and {os.path.basename(b)} ({what})")


if __name__ == "__main__":
    main()
