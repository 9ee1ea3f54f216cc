"""Seed corpus for tests/fuzz.rs: one small valid input (or a few) per fuzz target, written to
tests/fuzz/corpus/<target>/, plus the tiny BERT (`_model/`) the weight targets load against.

    python3 tests/fuzz/make_corpus.py

Reuses the builders of tests/hostile/make_hostile.py. Needs numpy, h5py and torch.
"""

import gzip
import io
import json
import os
import pickle
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))
import make_hostile as mh  # noqa: E402

OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    if callable(data):
        data(p)
    else:
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)


def fixed_strings(f):
    for name in ["obs/_index", "var/_index", "obs/label"]:
        v = [x if isinstance(x, bytes) else x.encode() for x in f[name][()]]
        del f[name]
        f.create_dataset(name, data=np.array(v, dtype="S8"))


def regions(path):
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
                out.append((obj.id.get_offset(), obj.id.get_offset() + obj.id.get_storage_size()))
        f.visititems(visit)
    return "".join(f"{a} {b}\n" for a, b in sorted(out))


def main():
    import torch
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    put("_model", "config.json", json.dumps(mh.CONFIG, indent=1))
    put("_model", "vocab.txt", mh.VOCAB_TXT)
    put("_model", "model.safetensors", mh.ST)

    # h5ad: libhdf5 1.10 itself crashes on corrupt file metadata (not celltext's to fix), so the
    # h5ad seeds come with `.regions`: the byte ranges of every dataset's raw values (names as
    # fixed-length strings, index arrays, values). The fuzzer mutates only there, which is
    # exactly the content celltext validates.
    for name, x in [("csr", "csr"), ("dense", "dense")]:
        put("h5ad", f"{name}.h5ad", lambda p, x=x: mh.h5ad(p, x=x, mutate=fixed_strings))
        put("h5ad", f"{name}.h5ad.regions", regions(os.path.join(OUT, "h5ad", f"{name}.h5ad")))
    put("mtx", "matrix.mtx", mh.MTX)
    put("mtx", "matrix_real.mtx", mh.MTX.replace("integer", "real").replace(" 3\n", " 3.5\n"))
    put("mtx", "matrix.mtx.gz", gzip.compress(mh.MTX.encode(), mtime=0))
    put("features_tsv", "features.tsv", mh.FEAT)
    put("features_tsv", "genes.tsv", "E0\tG0\nE1\tG1\nE2\tG2\nE3\tG3\n")
    put("csv", "m.csv", "cell,G0,G1,G2\nc0,1,0,2\nc1,0,3.5,1\nc2,4,0,0\n")
    put("csv", "m_tab.csv", "cell\tG0\tG1\nc0\t1\t0\nc1\t0\t3\n")
    put("csv", "m.csv.gz", gzip.compress(b"cell,G0,G1\nc0,1,0\nc1,0,2\n", mtime=0))

    vec = {"CD3E": [0.1, 0.2, 0.3], "MS4A1": [1.0, -1.0, 0.5]}
    for proto in [0, 2, 4, 5]:
        put("pickle", f"lists_p{proto}.pkl", pickle.dumps(vec, protocol=proto))
    arr = {k: np.array(v, dtype=np.float32) for k, v in vec.items()}
    put("pickle", "numpy_p4.pkl", pickle.dumps(arr, protocol=4))

    sd = {k: torch.from_numpy(v) for k, v in list(mh.WEIGHTS.items())[:4]}
    b = io.BytesIO()
    torch.save(sd, b)
    put("pth", "zip.bin", b.getvalue())
    b = io.BytesIO()
    torch.save(sd, b, _use_new_zipfile_serialization=False)
    put("pth", "legacy.bin", b.getvalue())

    small = {k: v for k, v in list(mh.WEIGHTS.items())[:3]}
    put("safetensors", "model.safetensors", mh.safetensors(small))
    put("safetensors", "full.safetensors", mh.ST)
    put("safetensors_index", "index.json",
        json.dumps({"metadata": {"total_size": 1}, "weight_map": {k: "model-00001.safetensors" for k in list(mh.WEIGHTS)[:3]}}, indent=1))
    put("config_json", "config.json", json.dumps(mh.CONFIG, indent=1))
    put("tokenizer", "plain.txt", "A cell with genes ranked by expression: CD3E MS4A1 LYZ")
    put("tokenizer", "unicode.txt", "Ärzte naïve café 細胞 \u200b\u0301 😀 ﬁ [CLS] [SEP] ##ing")
    put("summaries", "s.json", json.dumps({"CD3E": "T cell receptor", "MS4A1": "B cell marker"}))
    put("summaries", "s.tsv", "symbol\ttext\nCD3E\tT cell receptor\nMS4A1\tB cell marker\n")
    put("experiment_toml", "e.toml", 'name = "x"\nlabel = "cell_type"\nmodels = ["minilm"]\n'
        'representations = ["genept-w", "sentences"]\nablations = ["none", "shorten:50"]\n'
        'classifiers = ["knn", "mlp"]\nk = 10\nk_sweep = [5, 20]\nseeds = [0, 1]\ntop_n = "100"\n')
    n = sum(len(f) for _, _, f in os.walk(OUT))
    print(f"{n} seed files")


if __name__ == "__main__":
    main()
