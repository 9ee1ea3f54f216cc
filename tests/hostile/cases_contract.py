"""Hostile cases for the output contract (docs/hostile-input.md): outputs that are, contain or lie
inside an input (directly, through a symlink or through `..`), output folders that hold other
files, shard paths that are FIFOs, sizes in the billions. Every case must fail with exit 1 or 2,
name the paths or the flag, write nothing under its output names and leave every input
byte-identical (tests/hostile.rs checks the copy of the case folder it runs on).

Each case is a directory `c-*` under the cases folder holding its input files and `case.json`
(`args`, `stderr_contains`, `absent`, `why`, `setup`; placeholders {case}, {out}, {repo}). Setup
steps run on the copy before the command: ["copy", FROM, TO], ["fifo", PATH],
["symlink", TARGET, LINK].

Usage: python3 tests/hostile/cases_contract.py   (rewrites tests/hostile/cases/c-*)
Standard library only.
"""

import hashlib
import json
import pathlib
import shutil
import struct

MODEL = "{repo}/tests/fixtures/models/ember-like"
H5AD = "{repo}/tests/data/pbmc3k_small/data.h5ad"
COPY_MODEL = ["copy", MODEL, "{case}/model"]
COPY_H5AD = ["copy", H5AD, "{case}/data.h5ad"]
NOT_OVER = "celltext never writes over its inputs"


def npy(rows):
    """A little-endian f32 C-order .npy (v1.0, header padded to 64 bytes, as numpy writes)."""
    n, d = len(rows), len(rows[0])
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    total = 10 + len(h) + 1
    h += " " * ((64 - total % 64) % 64) + "\n"
    body = b"".join(struct.pack("<f", v) for r in rows for v in r)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + body


def safetensors_bytes(rows):
    n, d = len(rows), len(rows[0])
    data = b"".join(struct.pack("<f", v) for r in rows for v in r)
    header = {"embeddings": {"dtype": "F32", "shape": [n, d], "data_offsets": [0, len(data)]}}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def write_store(d, prefix, genes, dim=4):
    rows = [[i * dim + j + 0.5 for j in range(dim)] for i in range(len(genes))]
    emb = safetensors_bytes(rows)
    tsv = "".join(g + "\n" for g in genes).encode()
    (d / f"{prefix}.safetensors").write_bytes(emb)
    (d / f"{prefix}.genes.tsv").write_bytes(tsv)
    stamp = lambda name, b: {"file": name, "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}
    m = {"tool": "celltext 0.1.0", "command": "genes import",
         "store_files": {"rows": len(genes), "dim": dim,
                         "embeddings": stamp(f"{prefix}.safetensors", emb),
                         "genes": stamp(f"{prefix}.genes.tsv", tsv)}}
    (d / f"{prefix}.manifest.json").write_text(json.dumps(m, indent=2) + "\n")


def embed_shard(d, name, index, count, n_rows, rows, record=True, npy_bytes=None, model=None):
    """An `embed --shard` output as celltext writes it: NAME (.npy) + NAME.manifest.json, the
    manifest recording the .npy's rows, cols, size and sha256 under shard.npy."""
    start, end = (index - 1) * n_rows // count, index * n_rows // count
    assert len(rows) == end - start
    b = npy(rows)
    shard = {"index": index, "count": count, "start": start, "end": end, "n_rows": n_rows}
    if record:
        shard["npy"] = {"file": name, "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest(),
                        "rows": len(rows), "cols": len(rows[0])}
    m = {"tool": "celltext 0.1.0", "command": "embed", "model": model or {"name": "tiny"},
         "input": "texts.txt", "input_sha256": "0" * 64, "n_texts": len(rows), "dim": len(rows[0]),
         "n_truncated": 0, "batch_tokens": 8192,
         "padding": {"real_tokens": 10, "padded_tokens": 12}, "padding_fraction": 0.2,
         "seconds": 0.1, "tokens_per_second": 100.0, "shard": shard,
         "shard_rows": {"ids": [f"t{start + i}" for i in range(len(rows))]}}
    (d / name).write_bytes(npy_bytes if npy_bytes is not None else b)
    (d / (name + ".manifest.json")).write_text(json.dumps(m, indent=1) + "\n")


def case(cases_dir, name, args, stderr_contains, absent=(), why="", files=None, setup=()):
    d = cases_dir / name
    d.mkdir(parents=True)
    for fname, content in (files or {}).items():
        p = d / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif callable(content):
            content(d)
        else:
            p.write_text(content, newline="")
    spec = {"args": args, "stderr_contains": stderr_contains, "absent": list(absent), "why": why,
            "setup": [list(s) for s in setup]}
    (d / "case.json").write_text(json.dumps(spec, indent=2, ensure_ascii=True) + "\n")


A, B = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], [[9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]


def generate(cases_dir: pathlib.Path) -> int:
    cases_dir = pathlib.Path(cases_dir)
    cases_dir.mkdir(parents=True, exist_ok=True)
    for old in cases_dir.glob("c-*"):
        shutil.rmtree(old)
    n = [0]

    def add(*a, **k):
        case(cases_dir, *a, **k)
        n[0] += 1

    texts = {"texts.txt": "hello world\ngene cell\n"}
    genes4 = ["RPL11", "RPS8", "RPS27", "TMSB4X"]
    store = lambda d: write_store(d, "store", genes4)
    summaries = {"summaries.json": json.dumps({"RPL11": "ribosomal protein", "RPS8": "ribosome"})}

    # ------------------------------------------------ outputs over inputs, every command
    add("c-overlap-embed-in-model", ["embed", "-m", "{case}/model", "-i", "{case}/texts.txt",
                                     "-o", "{case}/model/o.npy"],
        ["{case}/model/o.npy", "lies inside the input", "{case}/model", NOT_OVER],
        ["{case}/model/o.npy"], "an output inside the model folder", texts, [COPY_MODEL])
    add("c-overlap-embed-manifest-is-input",
        ["embed", "-m", MODEL, "-i", "{case}/o.npy.manifest.json", "-o", "{case}/o.npy"],
        ["o.npy.manifest.json", "is the input"], ["{case}/o.npy"],
        "the output's manifest would replace the input", {"o.npy.manifest.json": "hello\n"})
    add("c-overlap-embed-symlink", ["embed", "-m", MODEL, "-i", "{case}/texts.txt",
                                    "-o", "{case}/alias.npy"],
        ["{case}/alias.npy", "is the input", "{case}/texts.txt"], [],
        "an output that is a symlink to the input", texts,
        [["symlink", "{case}/texts.txt", "{case}/alias.npy"]])
    add("c-overlap-embed-dotdot", ["embed", "-m", "{case}/model", "-i", "{case}/texts.txt",
                                   "-o", "{case}/model/1_Pooling/../o.npy"],
        ["lies inside the input", "{case}/model"], ["{case}/model/o.npy"],
        "`..` does not hide an output inside the model folder", texts, [COPY_MODEL])
    add("c-overlap-embed-shard-in-model",
        ["embed", "-m", "{case}/model", "-i", "{case}/texts.txt", "--shard", "1/2",
         "-o", "{case}/model/part-1.npy"],
        ["lies inside the input", "{case}/model"], ["{case}/model/part-1.npy"],
        "a shard written into the model folder", texts, [COPY_MODEL])
    add("c-overlap-genes-embed-summaries",
        ["genes", "embed", "-m", MODEL, "--summaries", "{case}/store.manifest.json",
         "--out", "{case}/store"],
        ["store.manifest.json", "is the input"], [], "a store whose manifest is the summaries file",
        {"store.manifest.json": json.dumps({"RPL11": "ribosomal protein"})})
    add("c-overlap-genes-embed-in-model",
        ["genes", "embed", "-m", "{case}/model", "--summaries", "{case}/summaries.json",
         "--out", "{case}/model/store"],
        ["lies inside the input", "{case}/model"],
        ["{case}/model/store.safetensors", "{case}/model/store.manifest.json"],
        "a gene store written into the model folder", summaries, [COPY_MODEL])
    add("c-overlap-genes-import",
        ["genes", "import", "{case}/store.safetensors", "--out", "{case}/store"],
        ["store.safetensors", "is the input"], [], "import over its own input", {"store": store})
    add("c-overlap-genes-export",
        ["genes", "export", "--store", "{case}/store", "--format", "tsv",
         "--out", "{case}/store.genes.tsv"],
        ["store.genes.tsv", "is the input"], [], "export over the store's gene list",
        {"store": store})
    add("c-overlap-cells-embed-h5ad",
        ["cells", "embed", "-i", "{case}/data.h5ad", "--genes", "{case}/store",
         "-o", "{case}/data.h5ad"],
        ["data.h5ad", "is the input", NOT_OVER], [],
        "cells embed writing over its input without --in-place", {"store": store}, [COPY_H5AD])
    add("c-overlap-cells-embed-symlink",
        ["cells", "embed", "-i", "{case}/data.h5ad", "--genes", "{case}/store",
         "-o", "{case}/alias.h5ad"],
        ["alias.h5ad", "is the input", "{case}/data.h5ad"], [],
        "an output h5ad that is a symlink to the input", {"store": store},
        [COPY_H5AD, ["symlink", "{case}/data.h5ad", "{case}/alias.h5ad"]])
    add("c-overlap-cells-embed-sentences-in-model",
        ["cells", "embed-sentences", "-i", H5AD, "-m", "{case}/model", "-o", "{case}/model/c.npy"],
        ["lies inside the input", "{case}/model"], ["{case}/model/c.npy"],
        "cell sentences embedded into the model folder", None, [COPY_MODEL])
    add("c-overlap-cells-sentences",
        ["cells", "sentences", "-i", "{case}/tenx", "-o", "{case}/tenx/s.jsonl"],
        ["lies inside the input", "{case}/tenx"], ["{case}/tenx/s.jsonl"],
        "sentences written into the 10x input folder",
        {"tenx/matrix.mtx": "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 3\n2 2 5\n",
         "tenx/features.tsv": "G1\tA\tGene Expression\nG2\tB\tGene Expression\n",
         "tenx/barcodes.tsv": "c1\nc2\n"})
    add("c-overlap-cells-pca",
        ["cells", "pca", "-i", "{case}/data.h5ad", "-o", "{case}/data.h5ad"],
        ["data.h5ad", "is the input"], [], "cells pca over its input without --in-place", None,
        [COPY_H5AD])
    add("c-overlap-classify-report-holds-input",
        ["classify", "-i", "{case}/data.h5ad", "--label", "label", "--on", "counts",
         "--report", "{case}"],
        ["contains the input", "data.h5ad"], [],
        "a --report folder that holds the input would be replaced whole", None, [COPY_H5AD])
    add("c-overlap-explain-out-holds-input",
        ["explain", "-i", "{case}/data.h5ad", "--label", "label", "--on", "genept-w",
         "--genes", "{case}/store", "-o", "{case}"],
        ["contains the input"], [], "explain -o the folder that holds its inputs",
        {"store": store}, [COPY_H5AD])
    add("c-overlap-explain-out-is-store-folder",
        ["explain", "-i", H5AD, "--label", "label", "--on", "genept-w",
         "--genes", "{case}/s/store", "-o", "{case}/s"],
        ["contains the input", "store"], [], "explain -o the gene store's folder",
        {"s": lambda d: ((d / "s").mkdir(), write_store(d / "s", "store", genes4))})
    add("c-overlap-scilama-train-store",
        ["scilama", "train", "-i", H5AD, "--genes", "{case}/a.scilama_genes", "-o", "{case}/a.h5ad"],
        ["a.scilama_genes", "is the input"], ["{case}/a.h5ad"],
        "the contextual gene store of -o a.h5ad is the training store",
        {"store": lambda d: write_store(d, "a.scilama_genes", genes4)})
    add("c-overlap-scilama-embed-genes-out",
        ["scilama", "embed", "--model", "{case}/m.scilama_model.safetensors",
         "--genes", "{case}/store", "--genes-out", "{case}/store"],
        ["is the input", "store"], [], "projected genes over the input store",
        {"store": store, "m.scilama_model.safetensors": b"not read"})
    add("c-overlap-scilama-embed-model",
        ["scilama", "embed", "--model", "{case}/m.scilama_model.safetensors", "-i", H5AD,
         "-o", "{case}/m.scilama_model.safetensors"],
        ["m.scilama_model.safetensors", "is the input"], [], "projected cells over the model",
        {"m.scilama_model.safetensors": b"not read"})
    add("c-overlap-merge-output-is-shard",
        ["merge", "{case}/s1.npy", "{case}/s2.npy", "-o", "{case}/s1.npy"],
        ["s1.npy", "is the input"], [], "merge over one of its shards",
        {"s": lambda d: (embed_shard(d, "s1.npy", 1, 2, 4, A), embed_shard(d, "s2.npy", 2, 2, 4, B))})
    add("c-overlap-merge-output-holds-shards",
        ["merge", "{case}/s1.npy", "{case}/s2.npy", "-o", "{case}/sub/.."],
        ["contains the input", "s1.npy"], [],
        "a merge output that is the folder holding the shards",
        {"s": lambda d: (embed_shard(d, "s1.npy", 1, 2, 4, A), embed_shard(d, "s2.npy", 2, 2, 4, B))})
    add("c-overlap-synth-model-tokenizer",
        ["synth-model", "--shape", "minilm", "--tokenizer-from", "{case}/model", "-o", "{case}/model"],
        ["is the input", "{case}/model"], [], "a synthetic model over its tokenizer source", None,
        [COPY_MODEL])
    add("c-overlap-device-check-work",
        ["device-check", "--device", "cpu", "--minilm", "{case}/model", "--work", "{case}/model",
         "--prepare-only"],
        ["lies inside the input", "{case}/model"], [], "device-check texts written into the model",
        None, [COPY_MODEL])

    # ------------------------------------------------ folders that hold other files
    notes = {"notes/mine.txt": "my notes\n"}
    add("c-folder-explain-foreign",
        ["explain", "-i", H5AD, "--label", "label", "--on", "genept-w", "--genes", "{case}/store",
         "-o", "{case}/notes"],
        ["--out", "notes", "holds other files", "explain"], [],
        "explain -o replaces its folder whole: a folder of other files is refused, not deleted",
        dict(notes, store=store))
    add("c-folder-explain-other-report",
        ["explain", "-i", H5AD, "--label", "label", "--on", "genept-w", "--genes", "{case}/store",
         "-o", "{case}/rep"],
        ["--out", "rep", "no report.json of `celltext explain`"], [],
        "a classify report folder is not an explain report",
        {"rep/report.json": json.dumps({"manifest": {"command": "classify"}}), "store": store})
    add("c-folder-synth-model-foreign",
        ["synth-model", "--shape", "minilm", "--tokenizer-from", MODEL, "-o", "{case}/notes"],
        ["notes", "holds other files"], [], "synth-model -o a folder of other files", notes)
    add("c-folder-synth-model-real-model",
        ["synth-model", "--shape", "minilm", "--tokenizer-from", MODEL, "-o", "{case}/model"],
        ["model", "holds other files", "synth-model"], [],
        "synth-model -o a real model folder (config.json, not a synthetic one)", None, [COPY_MODEL])
    add("c-folder-classify-report-file-inside",
        ["classify", "-i", H5AD, "--label", "label", "--on", "counts", "--report", "{case}/r"],
        ["--report", "no report.json"], [], "a report folder holding only other files",
        {"r/keep.md": "mine\n"})

    # ------------------------------------------------ shards: FIFOs, tampering
    pair = lambda d: (embed_shard(d, "s1.npy", 1, 2, 4, A), embed_shard(d, "s2.npy", 2, 2, 4, B))
    merge = ["merge", "{case}/s1.npy", "{case}/s2.npy", "-o", "{out}/m.npy"]
    absent = ["{out}/m.npy", "{out}/m.npy.manifest.json"]

    def fifo_shard(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, B)
        (d / "s2.npy").unlink()

    add("c-shard-fifo", merge, ["s2.npy", "not a regular file"], absent,
        "a FIFO as a shard path is refused, not read forever", {"s": fifo_shard},
        [["fifo", "{case}/s2.npy"]])

    def fifo_manifest(d):
        pair(d)
        (d / "s2.npy.manifest.json").unlink()

    add("c-shard-manifest-fifo", merge, ["s2.npy.manifest.json", "not a regular file"], absent,
        "a FIFO as a shard's manifest", {"s": fifo_manifest},
        [["fifo", "{case}/s2.npy.manifest.json"]])

    def swapped(d):
        pair(d)
        a, b = (d / "s1.npy").read_bytes(), (d / "s2.npy").read_bytes()
        (d / "s1.npy").write_bytes(b)
        (d / "s2.npy").write_bytes(a)

    add("c-shard-swapped", merge, ["s1.npy", "does not match its manifest", "sha256", "rerun"],
        absent, "two shards' vectors swapped (same shapes)", {"s": swapped})

    def replaced(d):
        pair(d)
        (d / "s2.npy").write_bytes(npy([[0.5] * 4, [0.25] * 4]))

    add("c-shard-replaced", merge, ["s2.npy", "does not match its manifest"], absent,
        "a shard's vectors replaced by another run's (a rerun killed before its manifest)",
        {"s": replaced})

    def nan_rows(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, [[1.0, 2.0, 3.0, 4.0], [5.0, float("nan"), 7.0, 8.0]])

    add("c-shard-nan-row", merge, ["s2.npy", "row 1 (input row 3)", "NaN", "column 1"], absent,
        "a shard whose own vectors hold NaN (its manifest agrees)", {"s": nan_rows})

    def inf_tampered(d):
        pair(d)
        b = bytearray((d / "s1.npy").read_bytes())
        b[-4:] = struct.pack("<f", float("inf"))
        (d / "s1.npy").write_bytes(bytes(b))

    add("c-shard-inf-tampered", merge, ["s1.npy", "does not match its manifest"], absent,
        "an inf written into a shard after its manifest", {"s": inf_tampered})

    def truncated(d):
        pair(d)
        b = (d / "s2.npy").read_bytes()
        (d / "s2.npy").write_bytes(b[:-6])

    add("c-shard-truncated", merge, ["s2.npy", "does not match shape"], absent,
        "a truncated shard", {"s": truncated})

    def more_rows(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, B, npy_bytes=npy(B + [[1.0] * 4]))

    add("c-shard-extra-row", merge, ["s2.npy", "holds 3 × 4", "records 2 × 4 for rows 2..4"], absent,
        "a shard with more rows than its manifest names", {"s": more_rows})

    def wider(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, B, npy_bytes=npy([[1.0] * 8, [2.0] * 8][:2]))

    add("c-shard-other-width", merge, ["s2.npy", "holds 2 × 8", "records 2 × 4"], absent,
        "a shard of another width than its manifest records", {"s": wider})

    def no_record(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, B, record=False)

    add("c-shard-no-record", merge, ["s2.npy.manifest.json", "shard.npy", "rerun this shard"],
        absent, "a shard manifest that records no sha256 of its .npy", {"s": no_record})

    def shard_dir(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A)
        embed_shard(d, "s2.npy", 2, 2, 4, B)
        (d / "s2.npy").unlink()
        (d / "s2.npy").mkdir()
        (d / "s2.npy" / "x").write_text("x\n")

    add("c-shard-is-folder", merge, ["s2.npy", "is a folder"], absent, "a folder as a shard",
        {"s": shard_dir})

    # ------------------------------------------------ FIFOs where a file is read
    def store_fifo(d):
        store(d)
        (d / "store.safetensors").unlink()

    add("c-fifo-store-embeddings",
        ["cells", "embed", "-i", H5AD, "--genes", "{case}/store", "-o", "{out}/c.npy"],
        ["store.safetensors", "not a regular file"], ["{out}/c.npy"],
        "a FIFO as a gene store's vectors is refused, not read forever", {"s": store_fifo},
        [["fifo", "{case}/store.safetensors"]])
    add("c-fifo-scilama-model",
        ["scilama", "embed", "--model", "{case}/m.scilama_model.safetensors", "--genes",
         "{case}/store", "--genes-out", "{out}/p"],
        ["m.scilama_model.safetensors", "not a regular file"], ["{out}/p.safetensors"],
        "a FIFO as a sciLaMA model",
        {"store": store, "m.scilama_model.safetensors.manifest.json": "{}\n"},
        [["fifo", "{case}/m.scilama_model.safetensors"]])
    add("c-fifo-embedding-file",
        ["classify", "-i", H5AD, "--label", "label", "--embedding-file", "{case}/e.npy"],
        ["e.npy", "not a regular file"], [], "a FIFO as an embedding file", None,
        [["fifo", "{case}/e.npy"]])
    add("c-scilama-model-no-manifest",
        ["scilama", "embed", "--model", "{case}/m.scilama_model.safetensors", "--genes",
         "{case}/store", "--genes-out", "{out}/p"],
        ["m.scilama_model.safetensors.manifest.json", "missing", "scilama train"],
        ["{out}/p.safetensors"],
        "a model without the marker `scilama train` writes last (an interrupted run)",
        {"store": store, "m.scilama_model.safetensors": b"not read"})

    # ------------------------------------------------ inputs refused with a message
    add("c-scilama-no-variable-gene",
        ["scilama", "train", "-i", "{case}/const.csv", "--genes", "{case}/store", "--hvg", "2",
         "-o", "{out}/s.npy"],
        ["--hvg 2", "no highly variable genes", "--hvg 0"], ["{out}/s.npy"],
        "every store gene is constant across cells: no gene survives --hvg (was a panic)",
        {"store": store,
         "const.csv": "cell,RPL11,RPS8,RPS27,TMSB4X\nc1,1,2,0,0\nc2,1,2,0,0\nc3,1,2,0,0\n"})
    add("c-duplicate-cell-ids",
        ["cells", "sentences", "-i", "{case}/m.csv", "-o", "{out}/s.jsonl"],
        ["m.csv", "duplicate cell ids", "'c1' ×2", "obs_names_make_unique"], ["{out}/s.jsonl"],
        "two cells with one id (anndata warns; celltext refuses)",
        {"m.csv": "cell,RPL11,RPS8\nc1,1,2\nc2,3,0\nc1,0,5\n"})
    add("c-all-zero-matrix",
        ["cells", "sentences", "-i", "{case}/m.csv", "-o", "{out}/s.jsonl"],
        ["m.csv", "every expression value is 0", "--layer"], ["{out}/s.jsonl"],
        "an all-zero matrix has nothing to rank",
        {"m.csv": "cell,RPL11,RPS8\nc1,0,0\nc2,0,0\n"})
    add("c-batch-key-missing",
        ["classify", "-i", H5AD, "--label", "label", "--on", "counts", "--batch-key", "donor"],
        ["--batch-key donor", "obs column 'donor' not found", "available columns", "label"], [],
        "a missing --batch-key column is an error, not a string inside report.json")

    add("c-shard-negative",
        ["embed", "-m", MODEL, "-i", "{case}/texts.txt", "--shard", "-1/4", "-o", "{out}/p.npy"],
        ["--shard", "-1/4", "expected I/N with 1 ≤ I ≤ N"], ["{out}/p.npy"],
        "a negative --shard is refused by name, not reported as an unknown argument", texts)

    def normalize_differs(d):
        embed_shard(d, "s1.npy", 1, 2, 4, A, model={"name": "tiny", "normalize": False})
        embed_shard(d, "s2.npy", 2, 2, 4, B, model={"name": "tiny", "normalize": True})

    add("c-merge-normalize-differs", merge,
        ["s1.npy", "s2.npy", "`model.normalize` (false vs true)", "set by --normalize",
         "rerun the shards that differ"], absent,
        "shards run with and without --normalize: the message names that field and flag, not "
        "the whole `model` record", {"s": normalize_differs})

    def small_h5ad(path, var=("G0", "G1"), obsm=None, n=12):
        import h5py  # the cases here that write an h5ad (make_hostile.py needs h5py too)
        import numpy as np

        st = h5py.string_dtype()
        with h5py.File(path, "w", track_order=True) as f:
            f.attrs["encoding-type"] = "anndata"
            f.attrs["encoding-version"] = "0.1.0"
            for name, idx in [("obs", [f"c{i}" for i in range(n)]), ("var", list(var))]:
                g = f.create_group(name)
                g.attrs["encoding-type"] = "dataframe"
                g.attrs["encoding-version"] = "0.2.0"
                g.attrs["_index"] = "_index"
                cols = ["label"] if name == "obs" else []
                g.attrs["column-order"] = np.array(cols, dtype=st)
                g.create_dataset("_index", data=np.array(idx, dtype=object), dtype=st)
            f["obs"].create_dataset("label", data=np.array(["a", "b"] * (n // 2), dtype=object), dtype=st)
            f.create_dataset("X", data=np.ones((n, len(var)), dtype=np.float32))
            if obsm is not None:
                f.create_group("obsm").create_dataset("X_t", data=obsm)

    def obsm_beyond_f32(d):
        import numpy as np

        emb = np.arange(12 * 4, dtype=np.float64).reshape(12, 4)
        emb[5, 2] = 1e300  # finite in float64, beyond float32
        small_h5ad(d / "x.h5ad", obsm=emb)

    add("c-obsm-beyond-float32",
        ["classify", "-i", "{case}/x.h5ad", "--label", "label", "--embedding", "X_t", "--k", "1",
         "--report", "{out}/r"],
        ["x.h5ad", "obsm/X_t", "value 1e300 at cell 5, column 2", "beyond float32's range",
         "rescale"], ["{out}/r"],
        "a float64 embedding value too large for float32 is named as stored, not as an inf the "
        "file does not hold", {"x": obsm_beyond_f32})
    add("c-fifo-h5ad-input", ["cells", "sentences", "-i", "{case}/x.h5ad", "-o", "{out}/s.jsonl"],
        ["x.h5ad", "not a regular file"], ["{out}/s.jsonl"],
        "a FIFO named as the input h5ad is refused, not opened (which would wait forever)", {},
        [["fifo", "{case}/x.h5ad"]])
    add("c-dup-genes-coverage-flag",
        ["genes", "coverage", "--store", "{case}/store", "--input", "{case}/x.h5ad"],
        ["x.h5ad", "var index", "duplicate gene names", "'RPS8' ×2", "var_names_make_unique",
         "`genes coverage` always read the var index"], [],
        "duplicate var names under a command without --gene-symbols-key: the fix names what "
        "this command can do, not a flag it lacks",
        {"store": store, "x": lambda d: small_h5ad(d / "x.h5ad", var=("RPL11", "RPS8", "RPS8"))})

    # ------------------------------------------------ sizes in the billions
    add("c-size-explain-steps",
        ["explain", "-i", H5AD, "--label", "label", "--on", "genept-w", "--genes", "{case}/store",
         "--steps", "5000000000", "-o", "{out}/e"],
        ["--steps 5000000000", "at most"], ["{out}/e"], "IG steps in the billions", {"store": store})
    add("c-size-explain-chunk",
        ["explain", "-i", H5AD, "--label", "label", "-m", MODEL, "--chunk", "5000000000",
         "-o", "{out}/e"],
        ["--chunk 5000000000", "CELLTEXT_MAX_ELEMENTS"], ["{out}/e"], "IG chunk in the billions")
    add("c-size-device-check-sentences",
        ["device-check", "--device", "cpu", "--minilm", MODEL, "--work", "{out}/w",
         "--n-sentences", "5000000000", "--prepare-only"],
        ["--n-sentences 5000000000", "CELLTEXT_MAX_ELEMENTS"], ["{out}/w"],
        "cell sentences in the billions")
    return n[0]


if __name__ == "__main__":
    n = generate(pathlib.Path(__file__).resolve().parent / "cases")
    print(f"wrote {n} cases")
