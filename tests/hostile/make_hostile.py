"""Generate the hostile-input suite: tests/hostile/cases/<case_id>/{inputs…, case.json}.

Every case is a malformed or adversarial input for one reader, run through the real CLI by
tests/hostile.rs, which asserts exit code 1 or 2 (never a panic or a signal), that stderr names
the file and the field (`stderr_contains`) and that nothing exists under the output name
(`absent`). Placeholders: {case} (the case folder), {out} (a fresh empty folder), {repo}.

    python3 tests/hostile/make_hostile.py

Needs numpy, h5py and torch (for .bin checkpoints). Deterministic: no clocks, fixed seeds.
At the end every tests/hostile/cases_*.py module present is imported and its
`generate(cases_dir) -> int` called, so other suites add their cases to the same folder.
"""

import gzip
import importlib.util
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")
N = 0


def case(cid, args, contains, files, why, absent=("{out}/o",)):
    """files: {relative path: bytes | str | callable(path)}."""
    global N
    d = os.path.join(CASES, cid)
    assert not os.path.exists(d), cid
    os.makedirs(d)
    for rel, content in files.items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if callable(content):
            content(p)
        elif content is None:
            os.makedirs(p, exist_ok=True)
        else:
            with open(p, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(
            {"args": args, "stderr_contains": contains, "absent": list(absent), "why": why},
            f,
            indent=1,
        )
        f.write("\n")
    N += 1


def gz(b):
    return gzip.compress(b.encode() if isinstance(b, str) else b, mtime=0)


def zput(z, name, data, compress=zipfile.ZIP_STORED):
    """Add a zip entry with a fixed timestamp (so regenerating gives the same bytes)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    z.writestr(info, data, compresslevel=9 if compress == zipfile.ZIP_DEFLATED else None)


def flip(b, at, bit=0x10):
    b = bytearray(b)
    b[at] ^= bit
    return bytes(b)


# ---------------------------------------------------------------- a tiny BERT (hidden 4)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz") + [
    "hello", "world", "gene", "cell"]
H, I, L, P, T = 4, 8, 1, 16, 2
CONFIG = {
    "model_type": "bert", "vocab_size": len(VOCAB), "hidden_size": H, "num_hidden_layers": L,
    "num_attention_heads": 2, "intermediate_size": I, "hidden_act": "gelu",
    "max_position_embeddings": P, "type_vocab_size": T, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}


def tensors(rng):
    t = {
        "embeddings.word_embeddings.weight": (len(VOCAB), H),
        "embeddings.position_embeddings.weight": (P, H),
        "embeddings.token_type_embeddings.weight": (T, H),
        "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,),
    }
    for l in range(L):
        p = f"encoder.layer.{l}."
        for n in ["attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"]:
            t[p + n + ".weight"] = (H, H)
            t[p + n + ".bias"] = (H,)
        for n in ["attention.output.LayerNorm", "output.LayerNorm"]:
            t[p + n + ".weight"] = (H,)
            t[p + n + ".bias"] = (H,)
        t[p + "intermediate.dense.weight"] = (I, H)
        t[p + "intermediate.dense.bias"] = (I,)
        t[p + "output.dense.weight"] = (H, I)
        t[p + "output.dense.bias"] = (H,)
    return {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in t.items()}


def safetensors(ts):
    header, blob = {}, b""
    for k in sorted(ts):
        a = np.ascontiguousarray(ts[k], dtype=np.float32)
        header[k] = {"dtype": "F32", "shape": list(a.shape),
                     "data_offsets": [len(blob), len(blob) + a.nbytes]}
        blob += a.tobytes()
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


RNG = np.random.default_rng(12)
WEIGHTS = tensors(RNG)
ST = safetensors(WEIGHTS)
VOCAB_TXT = "\n".join(VOCAB) + "\n"
TEXTS = "hello world\ngene cell\n"


def model_files(config=None, weights=None, extra=None, prefix="model/"):
    f = {prefix + "config.json": json.dumps(CONFIG if config is None else config),
         prefix + "vocab.txt": VOCAB_TXT, "texts.txt": TEXTS}
    if weights is not False:
        f[prefix + "model.safetensors"] = ST if weights is None else weights
    f.update(extra or {})
    return f


EMBED = ["embed", "--model", "{case}/model", "--input", "{case}/texts.txt", "--output",
         "{out}/o.npy", "--quiet"]
EMBED_ABSENT = ("{out}/o.npy", "{out}/o.npy.manifest.json")


def config_cases():
    fields = ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
              "vocab_size", "max_position_embeddings", "type_vocab_size"]
    for field in fields:
        for e in [32, 50, 58, 63]:
            c = dict(CONFIG, **{field: 2 ** e})
            case(f"config-{field}-2e{e}", EMBED, ["config.json", field], model_files(c),
                 f"config.json {field} = 2^{e} must be refused before allocating",
                 EMBED_ABSENT)
        c = dict(CONFIG, **{field: 0})
        case(f"config-{field}-zero", EMBED, ["config.json", field], model_files(c),
             f"config.json {field} = 0", EMBED_ABSENT)
    # plausible sizes that disagree with the weights
    for field, v, shape in [("hidden_size", 8, "word_embeddings"), ("vocab_size", 40, "word_embeddings"),
                            ("max_position_embeddings", 32, "position_embeddings"),
                            ("type_vocab_size", 3, "token_type_embeddings"),
                            ("intermediate_size", 16, "intermediate"),
                            ("num_hidden_layers", 2, "num_hidden_layers")]:
        c = dict(CONFIG, **{field: v})
        if field == "hidden_size":
            c["num_attention_heads"] = 2
        case(f"config-{field}-mismatch", EMBED, ["config.json", shape], model_files(c),
             f"{field} disagrees with the weight shapes", EMBED_ABSENT)
    for name, text, want in [("not-json", "{ vocab_size: 35", "config.json"),
                             ("empty", "", "config.json"),
                             ("array", "[1, 2]", "config.json"),
                             ("no-vocab", json.dumps({k: v for k, v in CONFIG.items() if k != "vocab_size"}), "vocab_size"),
                             ("vocab-string", json.dumps(dict(CONFIG, vocab_size="35")), "vocab_size"),
                             ("vocab-negative", json.dumps(dict(CONFIG, vocab_size=-35)), "vocab_size"),
                             ("vocab-float", json.dumps(dict(CONFIG, vocab_size=35.5)), "vocab_size"),
                             ("heads-indivisible", json.dumps(dict(CONFIG, num_attention_heads=3)), "num_attention_heads"),
                             ("act-unknown", json.dumps(dict(CONFIG, hidden_act="tanhh")), "hidden_act"),
                             ("eps-negative", json.dumps(dict(CONFIG, layer_norm_eps=-1.0)), "layer_norm_eps"),
                             ("pad-outside", json.dumps(dict(CONFIG, pad_token_id=1000)), "pad_token_id"),
                             ("model-type", json.dumps(dict(CONFIG, model_type="gpt2")), "model_type"),
                             ("posemb", json.dumps(dict(CONFIG, position_embedding_type="rotary")), "position_embedding_type")]:
        f = model_files()
        f["model/config.json"] = text
        case(f"config-{name}", EMBED, [want], f, f"config.json: {name}", EMBED_ABSENT)
    # the same bound through the other encoder entry points
    c = dict(CONFIG, num_hidden_layers=2 ** 60)
    f = model_files(c, extra={"s.tsv": "symbol\ttext\nCD3E\tT cell receptor gene\n"})
    case("config-layers-genes-embed",
         ["genes", "embed", "--model", "{case}/model", "--summaries", "{case}/s.tsv", "--out",
          "{out}/store", "--quiet"], ["config.json", "num_hidden_layers"], f,
         "huge num_hidden_layers through genes embed",
         ("{out}/store.safetensors", "{out}/store.genes.tsv", "{out}/store.manifest.json"))
    f = model_files(c, extra={"m.csv": "cell,CD3E,MS4A1\nc1,1,0\nc2,0,2\n"})
    case("config-layers-embed-sentences",
         ["cells", "embed-sentences", "--input", "{case}/m.csv", "--model", "{case}/model",
          "--output", "{out}/o.npy", "--quiet"], ["config.json", "num_hidden_layers"], f,
         "huge num_hidden_layers through cells embed-sentences", EMBED_ABSENT)


def st_header(h, pad=True):
    b = json.dumps(h).encode()
    if pad:
        b += b" " * (-len(b) % 8)
    return struct.pack("<Q", len(b)) + b


def safetensors_cases():
    case("st-directory", EMBED, ["model.safetensors", "is a directory"],
         model_files(weights=False, extra={"model/model.safetensors": None}),
         "a directory named model.safetensors", EMBED_ABSENT)
    for name, data, want in [
        ("empty", b"", "model.safetensors"),
        ("short", b"\x01\x02", "model.safetensors"),
        ("header-huge", struct.pack("<Q", 2 ** 63) + b"{}", "model.safetensors"),
        ("header-beyond", struct.pack("<Q", 1000) + b"{}", "model.safetensors"),
        ("header-not-json", struct.pack("<Q", 8) + b"not json", "model.safetensors"),
        ("header-array", st_header([1, 2]), "model.safetensors"),
        ("truncated", ST[: len(ST) // 2], "model.safetensors"),
        ("offsets-beyond", st_header({"embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [35, 4], "data_offsets": [0, 10 ** 12]}}), "model.safetensors"),
        ("offsets-reversed", st_header({"embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [35, 4], "data_offsets": [560, 0]}}) + bytes(560), "model.safetensors"),
        ("shape-huge", st_header({"embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [2 ** 62, 2 ** 62], "data_offsets": [0, 16]}}) + bytes(16), "model.safetensors"),
        ("dtype-bogus", st_header({"embeddings.word_embeddings.weight": {"dtype": "F99", "shape": [35, 4], "data_offsets": [0, 560]}}) + bytes(560), "model.safetensors"),
        ("no-tensors", st_header({}), "encoder layers"),
        ("int-weights", st_header({"embeddings.word_embeddings.weight": {"dtype": "I32", "shape": [35, 4], "data_offsets": [0, 560]}}) + bytes(560), "encoder layers"),
    ]:
        case(f"st-{name}", EMBED, [want], model_files(weights=data), f"safetensors: {name}",
             EMBED_ABSENT)
    for bad, val in [("nan", np.nan), ("inf", np.inf), ("neginf", -np.inf)]:
        for tname in ["embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"]:
            w = {k: v.copy() for k, v in WEIGHTS.items()}
            w[tname].flat[3] = val
            short = tname.split(".")[-2]
            case(f"st-{bad}-{short}", EMBED, ["model.safetensors", tname],
                 model_files(weights=safetensors(w)), f"{bad} in {tname}", EMBED_ABSENT)
    # sharded index
    wm = {k: "model-00001.safetensors" for k in WEIGHTS}
    for name, shard, want in [("dotdot", "../../../../../etc/passwd", "leaves the model folder"),
                              ("dotdot-inner", "sub/../../x.safetensors", "leaves the model folder"),
                              ("absolute", "/etc/passwd", "leaves the model folder"),
                              ("missing", "model-00009.safetensors", "model-00009.safetensors"),
                              ("empty-name", "", "leaves the model folder")]:
        m = dict(wm)
        m["embeddings.word_embeddings.weight"] = shard
        f = model_files(weights=False, extra={
            "model/model.safetensors.index.json": json.dumps({"weight_map": m}),
            "model/model-00001.safetensors": ST})
        case(f"st-index-{name}", EMBED, ["model.safetensors.index.json", want], f,
             f"index shard path: {name}", EMBED_ABSENT)
    for name, idx, want in [("not-json", "{", "model.safetensors.index.json"),
                            ("no-map", json.dumps({"metadata": {}}), "weight_map"),
                            ("map-empty", json.dumps({"weight_map": {}}), "weight_map"),
                            ("map-number", json.dumps({"weight_map": {"a": 3}}), "weight_map"),
                            ("map-list", json.dumps({"weight_map": ["a"]}), "weight_map")]:
        f = model_files(weights=False, extra={"model/model.safetensors.index.json": idx,
                                              "model/model-00001.safetensors": ST})
        case(f"st-index-{name}", EMBED, [want], f, f"index: {name}", EMBED_ABSENT)
    f = model_files(weights=False, extra={"model/model.safetensors.index.json": None})
    case("st-index-directory", EMBED, ["model.safetensors.index.json", "is a directory"], f,
         "a directory named like the index", EMBED_ABSENT)


def bin_cases():
    import torch
    sd = {k: torch.from_numpy(v) for k, v in WEIGHTS.items()}
    buf = io.BytesIO()
    torch.save(sd, buf)
    zbin = buf.getvalue()
    buf = io.BytesIO()
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()

    def bin_case(name, data, want, why):
        case(f"bin-{name}", EMBED, ["pytorch_model.bin"] + want,
             model_files(weights=False, extra={"model/pytorch_model.bin": data}), why,
             EMBED_ABSENT)

    # decompression bombs: storages that inflate to 128 MiB (and data.pkl that does)
    big = {"embeddings.word_embeddings.weight": torch.zeros(32 << 20)}
    buf = io.BytesIO()
    torch.save(big, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for n in src.namelist():
            zput(z, n, src.read(n), zipfile.ZIP_DEFLATED if "/data/" in n else zipfile.ZIP_STORED)
    bin_case("zip-bomb-storage", out.getvalue(), ["CELLTEXT_MAX_INFLATE_RATIO"],
             "a ~130 kB zip whose storage inflates to 128 MiB")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        zput(z, "archive/data.pkl", b"\x80\x02}q\x00." + bytes(128 << 20), zipfile.ZIP_DEFLATED)
    bin_case("zip-bomb-pickle", out.getvalue(), [], "data.pkl inflating to 128 MiB")
    bin_case("zip-truncated", zbin[: len(zbin) // 2], [], "truncated zip checkpoint")
    bin_case("zip-flipped", flip(zbin, len(zbin) // 3, 0xff), [], "bit flips in a zip checkpoint")
    bin_case("legacy-truncated", legacy[: len(legacy) // 2], [], "truncated legacy checkpoint")
    bin_case("legacy-tail-cut", legacy[:-7], [], "legacy checkpoint missing its last bytes")
    bin_case("legacy-header-only", legacy[:40], [], "legacy header only")
    bin_case("empty", b"", [], "empty .bin")
    bin_case("gzip", gz(b"hello"), [], "a gzip file named .bin")
    bin_case("text", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n", [],
             "a git-lfs pointer instead of weights")
    for i, at in enumerate([20, 60, 200, 400]):
        bin_case(f"legacy-flip-{i}", flip(legacy, at, 0xff), [], f"legacy byte {at} flipped")
    # evil pickles: globals that would run code
    for name, payload in [("posix-system", b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."),
                          ("builtins-eval", b"\x80\x02cbuiltins\neval\nq\x00X\x03\x00\x00\x001+1q\x01\x85q\x02Rq\x03."),
                          ("os-popen", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x05popen\x93\x8c\x02id\x85R.")]:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            zput(z, "archive/data.pkl", payload)
        bin_case(f"zip-evil-{name}", out.getvalue(), [], f"pickle naming {name}")


# ---------------------------------------------------------------- expression matrices
def h5ad(path, x="csr", n_cells=3, n_genes=4, genes=None, mutate=None):
    import h5py
    rng = np.random.default_rng(3)
    dense = (rng.random((n_cells, n_genes)) < 0.6) * rng.integers(1, 9, (n_cells, n_genes))
    dense[:, 0] = 1
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        st = h5py.string_dtype()
        for name, idx in [("obs", [f"c{i}" for i in range(n_cells)]),
                          ("var", genes or [f"G{i}" for i in range(n_genes)])]:
            g = f.create_group(name)
            g.attrs["encoding-type"] = "dataframe"
            g.attrs["encoding-version"] = "0.2.0"
            g.attrs["_index"] = "_index"
            g.attrs["column-order"] = np.array([], dtype=st) if name == "var" else np.array(["label"], dtype=object)
            g.create_dataset("_index", data=np.array(idx, dtype=object), dtype=st)
            if name == "obs":
                g.create_dataset("label", data=np.array(["a", "b", "a"][:n_cells] + ["a"] * (n_cells - 3), dtype=object), dtype=st)
        if x == "csr":
            g = f.create_group("X")
            g.attrs["encoding-type"] = "csr_matrix"
            g.attrs["encoding-version"] = "0.1.0"
            g.attrs["shape"] = np.array([n_cells, n_genes])
            indptr, indices, data = [0], [], []
            for r in dense:
                for j, v in enumerate(r):
                    if v:
                        indices.append(j)
                        data.append(v)
                indptr.append(len(data))
            g.create_dataset("data", data=np.array(data, dtype=np.float32))
            g.create_dataset("indices", data=np.array(indices, dtype=np.int32))
            g.create_dataset("indptr", data=np.array(indptr, dtype=np.int64))
        else:
            f.create_dataset("X", data=dense.astype(np.float32))
        if mutate:
            mutate(f)


def replace(name, value):
    def m(f):
        del f[name]
        f[name] = value
    return m


def h5_cases():
    import h5py
    sent = lambda p: ["cells", "sentences", "--input", p, "--output", "{out}/o.jsonl"]
    absent = ("{out}/o.jsonl",)
    ip = np.array([0, 3, 5, 8], dtype=np.int64)
    muts = [
        ("indptr-first-nonzero", replace("X/indptr", ip + 1), "X/indptr"),
        ("indptr-first-negative", replace("X/indptr", ip - 1), "X/indptr"),
        ("indptr-float", replace("X/indptr", ip.astype(np.float64)), "X/indptr"),
        ("indptr-float32", replace("X/indptr", ip.astype(np.float32)), "X/indptr"),
        ("indices-float", lambda f: replace("X/indices", f["X/indices"][()].astype(np.float64))(f), "X/indices"),
        ("indptr-decreasing", replace("X/indptr", np.array([0, 5, 3, 8], dtype=np.int64)), "X/indptr"),
        ("indptr-last-short", replace("X/indptr", np.array([0, 3, 5, 7], dtype=np.int64)), "X/indptr"),
        ("indptr-last-long", replace("X/indptr", np.array([0, 3, 5, 99], dtype=np.int64)), "X/indptr"),
        ("indptr-too-few", replace("X/indptr", np.array([0, 3, 8], dtype=np.int64)), "X/indptr"),
        ("indptr-2d", replace("X/indptr", np.array([[0, 3], [5, 8]], dtype=np.int64)), "X/indptr"),
        ("indptr-strings", replace("X/indptr", np.array([b"0", b"3", b"5", b"8"])), "X/indptr"),
        ("indptr-huge", replace("X/indptr", np.array([0, 2 ** 62, 2 ** 62, 8], dtype=np.int64)), "X/indptr"),
        ("indices-out-of-range", lambda f: replace("X/indices", np.where(np.arange(f["X/indices"].shape[0]) == 2, 99, f["X/indices"][()]).astype(np.int32))(f), "X/indices"),
        ("indices-negative", lambda f: replace("X/indices", np.where(np.arange(f["X/indices"].shape[0]) == 1, -1, f["X/indices"][()]).astype(np.int32))(f), "X/indices"),
        ("indices-strings", lambda f: replace("X/indices", np.array([b"1"] * f["X/indices"].shape[0]))(f), "X/indices"),
        ("indices-short", lambda f: replace("X/indices", f["X/indices"][:-2])(f), "indices"),
        ("data-strings", lambda f: replace("X/data", np.array([b"x"] * f["X/data"].shape[0]))(f), "X/data"),
        ("data-2d", lambda f: replace("X/data", f["X/data"][()].reshape(-1, 1))(f), "X/data"),
        ("data-nan", lambda f: replace("X/data", np.full(f["X/data"].shape[0], np.nan, dtype=np.float32))(f), "X"),
        ("data-inf", lambda f: replace("X/data", np.full(f["X/data"].shape[0], np.inf, dtype=np.float32))(f), "X"),
        ("data-negative", lambda f: replace("X/data", -np.ones(f["X/data"].shape[0], dtype=np.float32))(f), "X"),
        ("data-missing", lambda f: f.__delitem__("X/data"), "X/data"),
        ("indptr-missing", lambda f: f.__delitem__("X/indptr"), "X/indptr"),
        ("shape-attr-wrong", lambda f: f["X"].attrs.__setitem__("shape", np.array([5, 4])), "X"),
        ("shape-attr-negative", lambda f: f["X"].attrs.__setitem__("shape", np.array([-3, 4])), "X"),
        ("shape-attr-3d", lambda f: f["X"].attrs.__setitem__("shape", np.array([3, 4, 1])), "X"),
        ("shape-attr-string", lambda f: f["X"].attrs.__setitem__("shape", "3x4"), "X"),
        ("encoding-bogus", lambda f: f["X"].attrs.__setitem__("encoding-type", "coo_matrix"), "X"),
        ("encoding-missing", lambda f: f["X"].attrs.__delitem__("encoding-type"), "X"),
        ("root-encoding", lambda f: f.attrs.__setitem__("encoding-type", "mudata"), "encoding-type"),
        ("x-missing", lambda f: f.__delitem__("X"), "X"),
        ("obs-missing", lambda f: f.__delitem__("obs"), "obs"),
        ("var-missing", lambda f: f.__delitem__("var"), "var"),
        ("var-index-missing", lambda f: f.__delitem__("var/_index"), "var"),
        ("var-index-float", replace("var/_index", np.array([np.nan] * 4)), "var"),
        ("var-index-empty-strings", replace("var/_index", np.array([b""] * 4)), "var"),
        ("var-index-duplicate", replace("var/_index", np.array([b"G0", b"G0", b"G2", b"G3"])), "var"),
        ("var-index-short", replace("var/_index", np.array([b"G0", b"G1"])), "var"),
        ("var-index-2d", replace("var/_index", np.array([[b"G0", b"G1"], [b"G2", b"G3"]])), "var"),
        ("var-index-compound", replace("var/_index", np.zeros(4, dtype=[("a", "i4"), ("b", "f4")])), "var"),
        ("obs-index-short", replace("obs/_index", np.array([b"c0"])), "obs"),
        ("obs-column-short", replace("obs/label", np.array([b"a"])), "obs/label"),
        ("obs-compound", lambda f: (f.__delitem__("obs"), f.create_dataset("obs", data=np.zeros(3, dtype=[("a", "i4")]))), "obs"),
        ("var-index-attr-wrong", lambda f: f["var"].attrs.__setitem__("_index", "nope"), "var"),
    ]
    for name, m, want in muts:
        case(f"h5ad-{name}", sent("{case}/x.h5ad"), ["x.h5ad", want],
             {"x.h5ad": lambda p, m=m: h5ad(p, mutate=m)}, f"h5ad: {name}", absent)
    dmuts = [
        ("dense-strings", replace("X", np.array([[b"a"] * 4] * 3)), "X"),
        ("dense-3d", replace("X", np.ones((3, 4, 1), dtype=np.float32)), "X"),
        ("dense-1d", replace("X", np.ones(12, dtype=np.float32)), "X"),
        ("dense-wrong-shape", replace("X", np.ones((4, 3), dtype=np.float32)), "X"),
        ("dense-compound", replace("X", np.zeros((3, 4), dtype=[("a", "i4")])), "X"),
        ("dense-nan", replace("X", np.full((3, 4), np.nan, dtype=np.float32)), "X"),
    ]
    for name, m, want in dmuts:
        case(f"h5ad-{name}", sent("{case}/x.h5ad"), ["x.h5ad", want],
             {"x.h5ad": lambda p, m=m: h5ad(p, x="dense", mutate=m)}, f"h5ad: {name}", absent)
    # raw bytes
    tmp = os.path.join(CASES, "_tmp.h5ad")
    h5ad(tmp)
    good = open(tmp, "rb").read()
    os.remove(tmp)
    for name, data in [("empty", b""), ("text", b"hello\n"), ("truncated", good[: len(good) // 2]),
                       ("header-only", good[:512]), ("zeros", bytes(4096))]:
        case(f"h5ad-bytes-{name}", sent("{case}/x.h5ad"), ["x.h5ad"], {"x.h5ad": data},
             f"h5ad bytes: {name}", absent)
    case("h5ad-layer-missing", sent("{case}/x.h5ad") + ["--layer", "counts"], ["x.h5ad", "counts"],
         {"x.h5ad": lambda p: h5ad(p)}, "missing layer", absent)
    case("h5ad-raw-missing", sent("{case}/x.h5ad") + ["--raw"], ["x.h5ad", "raw"],
         {"x.h5ad": lambda p: h5ad(p)}, "missing raw", absent)
    case("h5ad-symbols-key-missing", sent("{case}/x.h5ad") + ["--gene-symbols-key", "feature_name"],
         ["x.h5ad", "feature_name"], {"x.h5ad": lambda p: h5ad(p)}, "missing var column", absent)


MTX = "%%MatrixMarket matrix coordinate integer general\n%\n4 3 5\n1 1 3\n2 1 1\n3 2 2\n4 3 7\n1 3 1\n"
FEAT = "E0\tG0\tGene Expression\nE1\tG1\tGene Expression\nE2\tG2\tGene Expression\nE3\tG3\tGene Expression\n"
BC = "AAAC-1\nAAAG-1\nAAAT-1\n"


def tenx(mtx=MTX, feat=FEAT, bc=BC, gzipped=False):
    if gzipped:
        return {"d/matrix.mtx.gz": gz(mtx) if isinstance(mtx, str) else mtx,
                "d/features.tsv.gz": gz(feat) if isinstance(feat, str) else feat,
                "d/barcodes.tsv.gz": gz(bc) if isinstance(bc, str) else bc}
    return {"d/matrix.mtx": mtx, "d/features.tsv": feat, "d/barcodes.tsv": bc}


def mtx_cases():
    sent = ["cells", "sentences", "--input", "{case}/d", "--output", "{out}/o.jsonl"]
    absent = ("{out}/o.jsonl",)
    H = "%%MatrixMarket matrix coordinate integer general\n"
    for name, files, want in [
        ("features-ragged", tenx(feat=FEAT.replace("E2\tG2\tGene Expression", "E2\tG2")), "features.tsv"),
        ("features-ragged-extra", tenx(feat=FEAT.replace("E1\tG1\tGene Expression", "E1\tG1\tGene Expression\tx")), "features.tsv"),
        ("features-ragged-gz", tenx(feat=FEAT.replace("E3\tG3\tGene Expression", "E3"), gzipped=True), "features.tsv.gz"),
        ("features-empty-name", tenx(feat=FEAT.replace("\tG1\t", "\t\t")), "features.tsv"),
        ("features-duplicate", tenx(feat=FEAT.replace("G1", "G0")), "features.tsv"),
        ("features-short", tenx(feat="E0\tG0\tGene Expression\n"), "features.tsv"),
        ("barcodes-short", tenx(bc="AAAC-1\n"), "barcodes.tsv"),
        ("header-missing", tenx(mtx="4 3 5\n1 1 3\n"), "matrix.mtx"),
        ("header-array", tenx(mtx="%%MatrixMarket matrix array real general\n4 3\n1\n"), "matrix.mtx"),
        ("header-complex", tenx(mtx="%%MatrixMarket matrix coordinate complex general\n4 3 1\n1 1 1 0\n"), "matrix.mtx"),
        ("header-symmetric", tenx(mtx="%%MatrixMarket matrix coordinate real symmetric\n4 3 1\n1 1 1\n"), "matrix.mtx"),
        ("size-missing", tenx(mtx=H), "matrix.mtx"),
        ("size-garbage", tenx(mtx=H + "four three five\n"), "matrix.mtx"),
        ("size-huge", tenx(mtx=H + "4 3 99999999999999999999\n1 1 1\n"), "matrix.mtx"),
        ("nnz-too-many", tenx(mtx=H + "4 3 9\n1 1 1\n"), "matrix.mtx"),
        ("nnz-too-few", tenx(mtx=H + "4 3 1\n1 1 1\n2 2 2\n"), "matrix.mtx"),
        ("row-out-of-range", tenx(mtx=H + "4 3 1\n9 1 1\n"), "matrix.mtx"),
        ("col-out-of-range", tenx(mtx=H + "4 3 1\n1 9 1\n"), "matrix.mtx"),
        ("row-zero", tenx(mtx=H + "4 3 1\n0 1 1\n"), "matrix.mtx"),
        ("row-negative", tenx(mtx=H + "4 3 1\n-1 1 1\n"), "matrix.mtx"),
        ("value-text", tenx(mtx=H + "4 3 1\n1 1 abc\n"), "matrix.mtx"),
        ("value-nan", tenx(mtx="%%MatrixMarket matrix coordinate real general\n4 3 1\n1 1 nan\n"), "matrix.mtx"),
        ("value-inf", tenx(mtx="%%MatrixMarket matrix coordinate real general\n4 3 1\n1 1 inf\n"), "matrix.mtx"),
        ("value-negative", tenx(mtx=H + "4 3 1\n1 1 -5\n"), "matrix.mtx"),
        ("value-missing", tenx(mtx=H + "4 3 1\n1 1\n"), "matrix.mtx"),
        ("duplicate-entry", tenx(mtx=H + "4 3 2\n1 1 1\n1 1 2\n"), "matrix.mtx"),
        ("transposed", tenx(mtx=H + "3 4 1\n1 1 1\n"), "matrix.mtx"),
        ("not-utf8", tenx(mtx=(H + "4 3 1\n1 1 \xff\n").encode("latin-1")), "matrix.mtx"),
        ("empty-matrix", tenx(mtx=""), "matrix.mtx"),
        ("binary-matrix", tenx(mtx=bytes(range(256))), "matrix.mtx"),
    ]:
        case(f"mtx-{name}", sent, [want], files, f"10x: {name}", absent)
    g = gz(MTX * 1)
    for i, at in enumerate([len(g) // 2, len(g) - 6, len(g) - 3, 14]):
        f = tenx(gzipped=True)
        f["d/matrix.mtx.gz"] = flip(g, at, 0x04)
        case(f"mtx-gzip-flip-{i}", sent, ["matrix.mtx.gz"], f, f"gzip bit flip at byte {at}", absent)
    f = tenx(gzipped=True)
    f["d/matrix.mtx.gz"] = g[: len(g) - 10]
    case("mtx-gzip-truncated", sent, ["matrix.mtx.gz"], f, "truncated gzip", absent)
    fg = gz(FEAT * 1)
    f = tenx(gzipped=True)
    f["d/features.tsv.gz"] = flip(fg, len(fg) // 2, 0x01)
    case("mtx-gzip-flip-features", sent, ["features.tsv.gz"], f, "gzip bit flip in features", absent)
    # a gzip bomb: 80 MiB of comment lines in ~80 kB
    bomb = gz(H + "%" + " " * (80 << 20) + "\n4 3 1\n1 1 1\n")
    f = tenx(gzipped=True)
    f["d/matrix.mtx.gz"] = bomb
    case("mtx-gzip-bomb", sent, ["matrix.mtx.gz", "CELLTEXT_MAX_INFLATE_RATIO"], f,
         "a small .mtx.gz inflating to 80 MiB", absent)
    f = tenx(gzipped=True)
    f["d/features.tsv.gz"] = gz("E0\tG0\n" * (12 << 20))
    case("mtx-gzip-bomb-features", sent, ["features.tsv.gz", "CELLTEXT_MAX_INFLATE_RATIO"], f,
         "features.tsv.gz inflating to 84 MiB", absent)
    # cells x genes layout
    cg = {"c/matrix.mtx": H + "3 4 2\n1 1 1\n2 2 2\n", "c/genes.tsv": "G0\nG1\nG2\nG3\n",
          "c/cells.tsv": "cell\tlabel\nc0\ta\nc1\tb\nc2\ta\n"}
    for name, upd, want in [("cells-ragged", {"c/cells.tsv": "cell\tlabel\nc0\ta\tx\nc1\tb\nc2\ta\n"}, "cells.tsv"),
                            ("cells-short", {"c/cells.tsv": "cell\tlabel\nc0\ta\n"}, "cells.tsv"),
                            ("genes-empty", {"c/genes.tsv": "G0\n\nG2\nG3\n"}, "genes.tsv"),
                            ("genes-duplicate", {"c/genes.tsv": "G0\nG0\nG2\nG3\n"}, "genes.tsv"),
                            ("cells-empty", {"c/cells.tsv": ""}, "cells.tsv")]:
        f = dict(cg, **upd)
        case(f"mtxcg-{name}", ["cells", "sentences", "--input", "{case}/c", "--output", "{out}/o.jsonl"],
             [want], f, f"cells x genes: {name}", absent)


def csv_cases():
    sent = lambda n: ["cells", "sentences", "--input", "{case}/" + n, "--output", "{out}/o.jsonl"]
    absent = ("{out}/o.jsonl",)
    good = "cell,G0,G1,G2\nc0,1,0,2\nc1,0,3,1\nc2,4,0,0\n"
    for name, text, want in [
        ("ragged-short", "cell,G0,G1,G2\nc0,1,0\nc1,0,3,1\n", "line 2"),
        ("ragged-long", "cell,G0,G1,G2\nc0,1,0,2,5\n", "line 2"),
        ("text-value", "cell,G0,G1,G2\nc0,1,x,2\n", "line 2"),
        ("nan", "cell,G0,G1,G2\nc0,1,nan,2\n", "G1"),
        ("inf", "cell,G0,G1,G2\nc0,1,inf,2\n", "G1"),
        ("negative", "cell,G0,G1,G2\nc0,1,-1,2\n", "G1"),
        ("header-only", "cell,G0,G1,G2\n", "m.csv"),
        ("empty", "", "m.csv"),
        ("no-genes", "cell\nc0\n", "m.csv"),
        ("gene-empty", "cell,G0,,G2\nc0,1,0,2\n", "line 1"),
        ("gene-duplicate", "cell,G0,G0,G2\nc0,1,0,2\n", "G0"),
        ("quote-unclosed", "cell,G0,G1\n\"c0,1,0\nc1,0,1\n", "m.csv"),
        ("huge-number", "cell,G0,G1\nc0,1e999,0\n", "G0"),
        ("not-utf8", b"cell,G0,G1\nc0,1,\xff\n", "m.csv"),
        ("nul-bytes", "cell,G0,G1\nc0,1,\x000\n", "m.csv"),
    ]:
        case(f"csv-{name}", sent("m.csv"), ["m.csv", want], {"m.csv": text}, f"csv: {name}", absent)
    g = gz(good * 3)
    for i, at in enumerate([len(g) // 2, len(g) - 5]):
        case(f"csv-gzip-flip-{i}", sent("m.csv.gz"), ["m.csv.gz"], {"m.csv.gz": flip(g, at, 0x08)},
             "gzip bit flip in a dense table", absent)
    case("csv-gzip-bomb", sent("m.csv.gz"), ["m.csv.gz", "CELLTEXT_MAX_INFLATE_RATIO"],
         {"m.csv.gz": gz("cell,G0\n" + "c,0\n" * (20 << 20))}, "dense .csv.gz inflating to 80 MiB",
         absent)
    case("tsv-ragged", sent("m.tsv"), ["m.tsv", "line 3"],
         {"m.tsv": "cell\tG0\tG1\nc0\t1\t0\nc1\t1\n"}, "ragged tsv", absent)


# ---------------------------------------------------------------- genes
def genes_cases():
    emb = lambda s: ["genes", "embed", "--model", "{repo}/tests/fixtures/models/ember-like",
                     "--summaries", "{case}/" + s, "--out", "{out}/store", "--quiet"]
    absent = ("{out}/store.safetensors", "{out}/store.genes.tsv", "{out}/store.manifest.json")
    for name, fname, data, want in [
        ("json-invalid", "s.json", '{"CD3E": "T cell"', "s.json"),
        ("json-array", "s.json", '["CD3E"]', "s.json"),
        ("json-number", "s.json", '{"CD3E": 3}', "CD3E"),
        ("json-null", "s.json", '{"CD3E": null}', "CD3E"),
        ("json-empty-text", "s.json", '{"CD3E": ""}', "CD3E"),
        ("json-duplicate", "s.json", '{"CD3E": "a", "CD3E": "b"}', "CD3E"),
        ("json-empty-symbol", "s.json", '{"": "text"}', "s.json"),
        ("json-empty", "s.json", "{}", "s.json"),
        ("tsv-duplicate", "s.tsv", "symbol\ttext\nCD3E\ta\nCD3E\tb\n", "CD3E"),
        ("tsv-empty-text", "s.tsv", "symbol\ttext\nCD3E\t\n", "s.tsv"),
        ("tsv-no-text-column", "s.tsv", "symbol\nCD3E\n", "s.tsv"),
        ("tsv-empty", "s.tsv", "", "s.tsv"),
        ("tsv-not-utf8", "s.tsv", b"symbol\ttext\nCD3E\t\xff\xfe\n", "s.tsv"),
        ("gz-corrupt", "s.tsv.gz", flip(gz("symbol\ttext\nCD3E\tT cell receptor\n" * 20), 30, 0xff), "s.tsv.gz"),
        ("gz-truncated", "s.tsv.gz", gz("symbol\ttext\nCD3E\tT cell receptor\n")[:-9], "s.tsv.gz"),
        ("gz-bomb", "s.tsv.gz", gz("symbol\ttext\n" + "x" * (80 << 20) + "\n"), "CELLTEXT_MAX_INFLATE_RATIO"),
    ]:
        case(f"summaries-{name}", emb(fname), [want], {fname: data}, f"summaries: {name}", absent)
    imp = lambda n: ["genes", "import", "{case}/" + n, "--out", "{out}/store"]
    import pickle
    for name, obj_bytes, want in [
        ("pickle-ragged", pickle.dumps({"A": [1.0, 2.0], "B": [1.0]}, protocol=4), "B"),
        ("pickle-nan", pickle.dumps({"A": [1.0, float("nan")]}, protocol=4), "A"),
        ("pickle-inf", pickle.dumps({"A": [float("inf"), 1.0]}, protocol=2), "A"),
        ("pickle-list", pickle.dumps([1.0, 2.0], protocol=4), "g.pkl"),
        ("pickle-empty-dict", pickle.dumps({}, protocol=4), "g.pkl"),
        ("pickle-int-key", pickle.dumps({3: [1.0]}, protocol=4), "g.pkl"),
        ("pickle-string-vector", pickle.dumps({"A": "abc"}, protocol=4), "A"),
        ("pickle-truncated", pickle.dumps({"A": [1.0, 2.0]}, protocol=4)[:-5], "g.pkl"),
        ("pickle-empty-file", b"", "g.pkl"),
        ("pickle-garbage", bytes(range(256)), "g.pkl"),
        ("pickle-posix-system", b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.", "posix"),
        ("pickle-builtins-eval", b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.", "eval"),
        ("pickle-proto-99", b"\x80\x63}.", "g.pkl"),
        ("pickle-deep-nesting", b"\x80\x02" + b"(" * 100000 + b".", "g.pkl"),
        ("pickle-memo-missing", b"\x80\x02h\x05.", "g.pkl"),
        ("pickle-long-huge", b"\x80\x02\x8b\xff\xff\xff\x7f.", "g.pkl"),
        ("pickle-binunicode-huge", b"\x80\x02X\xff\xff\xff\x7fab.", "g.pkl"),
        ("pickle-empty-symbol", pickle.dumps({"": [1.0]}, protocol=4), "g.pkl"),
    ]:
        case(f"import-{name}", imp("g.pkl"), [want], {"g.pkl": obj_bytes}, f"genes import: {name}", absent)
    for name, data in [("parquet-garbage", b"PAR1" + bytes(64) + b"PAR1"), ("parquet-empty", b""),
                       ("parquet-truncated", b"PAR1\x00\x00")]:
        case(f"import-{name}", imp("g.parquet"), ["g.parquet"], {"g.parquet": data},
             f"genes import: {name}", absent)


# ---------------------------------------------------------------- experiment TOML
def experiment_cases():
    base = {"name": "x", "label": "label", "input": "m.csv", "models": ["minilm"],
            "seeds": [0], "out_dir": "res", "cache_dir": "cache"}

    def toml(d):
        lines = []
        for k, v in d.items():
            lines.append(f"{k} = {json.dumps(v)}")
        return "\n".join(lines) + "\n"

    data = "cell,G0,G1,label\nc0,1,0,a\n"
    for name, upd, drop, want in [
        ("unknown-key-kk", {"kk": 3}, [], "kk"),
        ("unknown-key-modles", {"modles": ["minilm"]}, [], "modles"),
        ("unknown-key-seed", {"seed": 1}, [], "seeds"),
        ("empty-seeds", {"seeds": []}, [], "seeds"),
        ("empty-models", {"models": []}, [], "models"),
        ("empty-classifiers", {"classifiers": []}, [], "classifiers"),
        ("empty-representations", {"representations": []}, [], "representations"),
        ("empty-ablations", {"ablations": []}, [], "ablations"),
        ("unknown-model", {"models": ["no-such-model"]}, [], "no-such-model"),
        ("unknown-ablation", {"ablations": ["shuffle-everything"]}, [], "shuffle-everything"),
        ("unknown-classifier", {"classifiers": ["svm"]}, [], "svm"),
        ("unknown-representation", {"representations": ["words"]}, [], "words"),
        ("missing-input", {"input": "nope.h5ad"}, [], "nope.h5ad"),
        ("no-input", {}, ["input"], "input"),
        ("no-label", {}, ["label"], "label"),
        ("no-name", {}, ["name"], "name"),
        ("empty-name", {"name": ""}, [], "name"),
        ("name-path", {"name": "../../x"}, [], "name"),
        ("k-zero", {"k": 0}, [], "k"),
        ("k-string", {"k": "ten"}, [], "k"),
        ("k-negative", {"k": -1}, [], "k"),
        ("seeds-string", {"seeds": "0"}, [], "seeds"),
        ("top-n-bad", {"top_n": "lots"}, [], "top_n"),
        ("batch-zero", {"batch_tokens": 0}, [], "batch_tokens"),
        ("species-bad", {"species": "fish"}, [], "species"),
    ]:
        d = {k: v for k, v in base.items() if k not in drop}
        d.update(upd)
        text = toml(d)
        case(f"exp-{name}", ["experiment", "{case}/e.toml"], ["e.toml", want],
             {"e.toml": text, "m.csv": data}, f"experiment TOML: {name}",
             absent=("{out}/cache", "{out}/res"))
    for name, text in [("syntax", "name = \"x\nlabel = 3\n"), ("empty", ""), ("binary", "\x00\x01\x02")]:
        case(f"exp-{name}", ["experiment", "{case}/e.toml"], ["e.toml"], {"e.toml": text},
             f"experiment TOML: {name}", absent=())
    # out_dir and cache_dir are relative: the runner starts every case inside its {out}.


# ---------------------------------------------------------------- tokenizer files and CLI flags
def tokenizer_cases():
    for name, files, want in [
        ("vocab-empty", {"model/vocab.txt": ""}, "vocab.txt"),
        ("vocab-bigger-than-config", {"model/vocab.txt": VOCAB_TXT + "".join(f"t{i}\n" for i in range(100))}, "vocab_size"),
        ("vocab-missing", {"model/vocab.txt": None}, "vocab.txt"),
        ("vocab-binary", {"model/vocab.txt": bytes(range(256))}, "vocab.txt"),
        ("tokenizer-json-garbage", {"model/tokenizer.json": "{not json"}, "tokenizer.json"),
        ("tokenizer-json-empty", {"model/tokenizer.json": ""}, "tokenizer.json"),
        ("tokenizer-json-wrong-model", {"model/tokenizer.json": json.dumps({"model": {"type": "Nope"}})}, "tokenizer.json"),
        ("tokenizer-json-array", {"model/tokenizer.json": "[]"}, "tokenizer.json"),
        ("tokenizer-config-garbage", {"model/tokenizer_config.json": "{{{"}, "tokenizer_config.json"),
        ("pooling-config-garbage", {"model/1_Pooling/config.json": "{{"}, "config.json"),
        ("st-config-garbage", {"model/sentence_bert_config.json": "{{"}, "sentence_bert_config.json"),
    ]:
        f = model_files()
        for k, v in files.items():
            if v is None and k == "model/vocab.txt":
                del f[k]
            else:
                f[k] = v
        case(f"tok-{name}", EMBED, [want], f, f"tokenizer files: {name}", EMBED_ABSENT)
    for name, text, want in [("input-empty", "", "texts.txt"),
                             ("input-jsonl-bad", '{"text": 3}\n', "texts.txt"),
                             ("input-jsonl-truncated", '{"text": "abc"\n', "texts.txt"),
                             ("input-not-utf8", b"\xff\xfe\xfd\n", "texts.txt")]:
        f = model_files()
        f["texts.txt"] = text
        case(f"tok-{name}", EMBED, [want], f, f"embed input: {name}", EMBED_ABSENT)


def cli_cases():
    f = model_files()
    for name, extra, want in [("pooling-bogus", ["--pooling", "median"], "median"),
                              ("dtype-bogus", ["--dtype", "f8"], "f8"),
                              ("device-bogus", ["--device", "tpu"], "tpu"),
                              ("backend-bogus", ["--backend", "gpu2"], "gpu2"),
                              ("max-length-zero", ["--max-length", "0"], "max length"),
                              ("batch-tokens-text", ["--batch-tokens", "many"], "batch-tokens")]:
        case(f"cli-{name}", EMBED + extra, [want], f, f"CLI: {name}", EMBED_ABSENT)
    case("cli-model-missing", ["embed", "--model", "{case}/nope", "--input", "{case}/texts.txt",
                               "--output", "{out}/o.npy"], ["nope"], {"texts.txt": TEXTS},
         "model that does not exist", EMBED_ABSENT)
    case("cli-input-missing", ["embed", "--model", "{case}/model", "--input", "{case}/none.txt",
                               "--output", "{out}/o.npy"], ["none.txt"], model_files(),
         "input that does not exist", EMBED_ABSENT)
    case("cli-output-ext", EMBED[:-3] + ["--output", "{out}/o.xyz"], ["o.xyz"], model_files(),
         "unsupported output extension", ("{out}/o.xyz",))
    case("cli-input-dir-unknown", ["cells", "sentences", "--input", "{case}/d", "--output", "{out}/o.jsonl"],
         ["{case}/d"], {"d/readme.txt": "nothing"}, "a directory that is no matrix layout", ("{out}/o.jsonl",))
    case("cli-input-ext-unknown", ["cells", "sentences", "--input", "{case}/m.xlsx", "--output", "{out}/o.jsonl"],
         ["m.xlsx"], {"m.xlsx": "PK"}, "unknown matrix format", ("{out}/o.jsonl",))


def main():
    if os.path.isdir(CASES):
        shutil.rmtree(CASES)
    os.makedirs(CASES)
    for gen in [config_cases, safetensors_cases, bin_cases, h5_cases, mtx_cases, csv_cases,
                genes_cases, experiment_cases, tokenizer_cases, cli_cases]:
        gen()
    print(f"{N} hostile cases")
    total = N
    for name in sorted(os.listdir(HERE)):
        if name.startswith("cases_") and name.endswith(".py"):
            spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(HERE, name))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            n = mod.generate(CASES)
            print(f"{n} cases from {name}")
            total += n
    print(f"{total} cases in all")


if __name__ == "__main__":
    sys.exit(main())
