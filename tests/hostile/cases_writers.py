"""Hostile cases for celltext's writers: gene symbols with control characters in every summaries
and import format, gene stores mixed from two writes, `--name` values that would make a broken
obsm key, negative (and zero) numbers on numeric flags, report folders that must not be replaced.

Each case is a directory `w-*` under the cases folder holding its input files and `case.json`:
{"args": [...], "stderr_contains": [...], "absent": [...], "why": "..."} with the placeholders
{case} (the case directory), {out} (a fresh empty directory) and {repo} (the repository root).
The runner expects exit code 1 or 2, no panic, every stderr_contains substring, no absent path.

Usage: python3 tests/hostile/cases_writers.py   (rewrites tests/hostile/cases/w-*)
Needs pyarrow for the parquet cases.
"""

import hashlib
import json
import pathlib
import pickle
import shutil
import struct

MODEL = "{repo}/tests/fixtures/models/ember-like"
H5AD = "{repo}/tests/data/pbmc3k_small/data.h5ad"
STORE_OUT = ["{out}/store.safetensors", "{out}/store.genes.tsv", "{out}/store.manifest.json"]
GENES = ["RPL11", "RPS8", "RPS27", "TMSB4X"]


def safetensors_bytes(rows):
    """A safetensors file with one f32 tensor `embeddings` [len(rows), dim]."""
    n, d = len(rows), len(rows[0])
    data = b"".join(struct.pack("<f", v) for r in rows for v in r)
    header = {
        "__metadata__": {"tool": "celltext 0.1.0"},
        "embeddings": {"dtype": "F32", "shape": [n, d], "data_offsets": [0, len(data)]},
    }
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def stamp(name, b):
    return {"file": name, "bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()}


def write_store(d, prefix, genes, rows, manifest="sums", genes_text=None):
    """A gene store as `celltext genes import` writes it; manifest: "sums" (sha256 of both files),
    "legacy" (no sums, as before stores recorded them) or None (no manifest)."""
    emb = safetensors_bytes(rows)
    tsv = (genes_text if genes_text is not None else "".join(g + "\n" for g in genes)).encode()
    (d / f"{prefix}.safetensors").write_bytes(emb)
    (d / f"{prefix}.genes.tsv").write_bytes(tsv)
    m = {"tool": "celltext 0.1.0", "command": "genes import"}
    if manifest == "sums":
        m["store_files"] = {
            "rows": len(rows),
            "dim": len(rows[0]),
            "embeddings": stamp(f"{prefix}.safetensors", emb),
            "genes": stamp(f"{prefix}.genes.tsv", tsv),
        }
    if manifest is not None:
        (d / f"{prefix}.manifest.json").write_text(json.dumps(m, indent=2) + "\n")


def rows(n, d=4, base=0.0):
    return [[base + i * d + j for j in range(d)] for i in range(n)]


def case(cases_dir, name, args, stderr_contains, absent=(), why="", files=None):
    d = cases_dir / name
    d.mkdir(parents=True)
    for fname, content in (files or {}).items():
        p = d / fname
        if isinstance(content, bytes):
            p.write_bytes(content)
        elif callable(content):
            content(d)
        else:
            p.write_text(content, newline="")
    spec = {
        "args": args,
        "stderr_contains": stderr_contains,
        "absent": list(absent),
        "why": why,
    }
    (d / "case.json").write_text(json.dumps(spec, indent=2, ensure_ascii=True) + "\n")
    return d


def escaped(sym):
    """How the error shows a symbol (Rust's `escape_debug`)."""
    out = []
    for c in sym:
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return "".join(out)


CONTROL = {
    "newline": "GENE\nX",
    "tab": "GENE\tX",
    "cr": "GENE\rX",
    "nul": "GENE\0X",
    "esc": "GENE\x1bX",
    "del": "GENE\x7fX",
    "c1": "GENE\x85X",
}


def generate(cases_dir: pathlib.Path) -> int:
    cases_dir = pathlib.Path(cases_dir)
    cases_dir.mkdir(parents=True, exist_ok=True)
    for old in cases_dir.glob("w-*"):
        shutil.rmtree(old)
    made = []

    def add(*a, **k):
        made.append(case(cases_dir, *a, **k))

    embed = ["genes", "embed", "-m", MODEL, "--out", "{out}/store", "--summaries"]
    # control characters in summaries: JSON (all kinds), TSV and CSV
    for kind, sym in CONTROL.items():
        add(
            f"w-summaries-json-{kind}",
            embed + ["{case}/summaries.json"],
            ["summaries.json", escaped(sym), "control character", "fix or drop"],
            STORE_OUT,
            f"a {kind} inside a gene symbol would break STORE.genes.tsv",
            {"summaries.json": json.dumps({"CD3E": "T cell receptor", sym: "a summary"})},
        )
    for kind in ["esc", "nul", "del"]:
        sym = CONTROL[kind]
        add(
            f"w-summaries-tsv-{kind}",
            embed + ["{case}/summaries.tsv"],
            ["summaries.tsv", escaped(sym), "control character"],
            STORE_OUT,
            f"a {kind} in a TSV symbol column",
            {"summaries.tsv": f"symbol\ttext\nCD3E\tT cell receptor\n{sym}\tsome text\n"},
        )
    for kind in ["newline", "tab", "cr"]:
        sym = CONTROL[kind]
        add(
            f"w-summaries-csv-quoted-{kind}",
            embed + ["{case}/summaries.csv"],
            ["summaries.csv", escaped(sym), "control character"],
            STORE_OUT,
            f"a quoted CSV field may hold a {kind}; as a symbol it is refused",
            {"summaries.csv": f'symbol,text\nCD3E,T cell receptor\n"{sym}",some text\n'},
        )
    # control characters in imported vectors: pickle and parquet
    for kind in ["newline", "tab", "nul", "c1", "esc"]:
        sym = CONTROL[kind]
        blob = pickle.dumps({"RPL11": [0.5, 1.5, 2.5], sym: [1.0, 2.0, 3.0]}, protocol=4)
        add(
            f"w-import-pickle-{kind}",
            ["genes", "import", "{case}/vectors.pkl", "--out", "{out}/store"],
            ["vectors.pkl", escaped(sym), "control character"],
            STORE_OUT,
            f"a GenePT-style pickle whose gene key holds a {kind}",
            {"vectors.pkl": blob},
        )
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for kind in ["newline", "tab", "cr"]:
            sym = CONTROL[kind]

            def write_parquet(d, sym=sym):
                t = pa.table(
                    {
                        "gene_id": pa.array(["RPL11", sym]),
                        "embedding": pa.array(
                            [[0.5, 1.5], [1.0, 2.0]], type=pa.list_(pa.float32())
                        ),
                    }
                )
                pq.write_table(t, d / "vectors.parquet", compression="snappy")

            add(
                f"w-import-parquet-{kind}",
                ["genes", "import", "{case}/vectors.parquet", "--out", "{out}/store"],
                ["vectors.parquet", escaped(sym), "control character"],
                STORE_OUT,
                f"a sciLaMA-style parquet whose gene_id holds a {kind}",
                {"vectors.parquet": write_parquet},
            )
    except ImportError:
        pass
    # resolver inputs: dataset gene lists
    add(
        "w-genelist-coverage-bel",
        ["genes", "coverage", "--store", "{case}/store", "--genes", "{case}/genes.txt"],
        ["genes.txt", "RPL\\u{7}11", "control character"],
        [],
        "a gene list with a control character is refused, not silently unmatched",
        {"genes.txt": "RPS8\nRPL\x0711\n", "store": lambda d: write_store(d, "store", GENES, rows(4))},
    )
    add(
        "w-genelist-embed-missing-zero",
        ["genes", "embed", "-m", MODEL, "--summaries", "{case}/summaries.json", "--genes",
         "{case}/genes.txt", "--missing", "zero", "--out", "{out}/store"],
        ["genes.txt", "NEW\\tGENE", "control character"],
        STORE_OUT,
        "--missing zero would put a dataset gene with a tab into the store",
        {"genes.txt": "CD3E\nNEW\tGENE\n",
         "summaries.json": json.dumps({"CD3E": "T cell receptor"})},
    )
    # stores mixed from two writes, or half-written
    mixed_needles = ["store.safetensors", "does not match", "store.manifest.json", "--out"]

    def mixed(d):
        write_store(d, "store", GENES, rows(4))
        (d / "store.safetensors").write_bytes(safetensors_bytes(rows(4, base=100.0)))

    for name, args, absent in [
        ("coverage", ["genes", "coverage", "--store", "{case}/store", "--genes", "{case}/genes.txt"], []),
        ("cells-embed", ["cells", "embed", "-i", H5AD, "--genes", "{case}/store", "-o", "{out}/c.npy"], ["{out}/c.npy"]),
        ("export-tsv", ["genes", "export", "--store", "{case}/store", "--format", "tsv", "--out", "{out}/g.tsv"], ["{out}/g.tsv"]),
        ("export-parquet", ["genes", "export", "--store", "{case}/store", "--format", "parquet", "--out", "{out}/g.parquet"], ["{out}/g.parquet"]),
    ]:
        add(
            f"w-store-mixed-{name}",
            args,
            mixed_needles,
            absent,
            "new vectors under old symbols (a writer killed between renames) must be refused",
            {"genes.txt": "RPL11\n", "store": mixed},
        )

    def mixed_genes(d):
        write_store(d, "store", GENES, rows(4))
        (d / "store.genes.tsv").write_text("A\nB\nC\nD\n")

    add(
        "w-store-mixed-genes",
        ["genes", "coverage", "--store", "{case}/store", "--genes", "{case}/genes.txt"],
        ["store.genes.tsv", "does not match", "store.manifest.json"],
        [],
        "old vectors under new symbols, same row count",
        {"genes.txt": "RPL11\n", "store": mixed_genes},
    )
    add(
        "w-store-no-manifest",
        ["cells", "embed", "-i", H5AD, "--genes", "{case}/store", "-o", "{out}/c.npy"],
        ["store.manifest.json: missing", "celltext genes embed"],
        ["{out}/c.npy"],
        "killed after the old manifest was removed: not a complete store",
        {"store": lambda d: write_store(d, "store", GENES, rows(4), manifest=None)},
    )
    add(
        "w-store-legacy-control-symbol",
        ["genes", "export", "--store", "{case}/store", "--format", "tsv", "--out", "{out}/g.tsv"],
        ["store.genes.tsv", "line 2", "RPS\\u{1b}8", "control character"],
        ["{out}/g.tsv"],
        "a store written before symbols were checked: export must not write a broken row",
        {"store": lambda d: write_store(d, "store", GENES, rows(4), manifest="legacy",
                                        genes_text="RPL11\nRPS\x1b8\nRPS27\nTMSB4X\n")},
    )
    add(
        "w-store-manifest-rows-lie",
        ["genes", "coverage", "--store", "{case}/store", "--genes", "{case}/genes.txt"],
        ["store.manifest.json", "store_files", "malformed"],
        [],
        "a manifest whose file record is not what celltext writes",
        {"genes.txt": "RPL11\n",
         "store": lambda d: (write_store(d, "store", GENES, rows(4)),
                             (d / "store.manifest.json").write_text(
                                 json.dumps({"store_files": {"rows": "four"}})))},
    )
    # --name
    store_files = {"store": lambda d: write_store(d, "store", GENES, rows(4))}
    for kind, name, needle in [
        ("empty", "", "--name is empty"),
        ("slash", "a/b", "`/`"),
        ("dotdot-slash", "../x", "`/`"),
        ("newline", "a\nb", "control character"),
        ("nul", "a\0b", "control character"),
        ("space", "a b", "` `"),
        ("bracket", "x']", "`'`"),
    ]:
        if "\0" in name:
            continue  # an argv string cannot hold NUL
        add(
            f"w-name-{kind}",
            ["cells", "embed", "-i", H5AD, "--genes", "{case}/store", "-o", "{out}/c.h5ad",
             "--name", name],
            ["--name", needle],
            ["{out}/c.h5ad"],
            f"--name {kind!s} would write a broken obsm key X_celltext_<name>",
            store_files,
        )
    add(
        "w-name-embed-sentences-empty",
        ["cells", "embed-sentences", "-i", H5AD, "-m", MODEL, "-o", "{out}/c.h5ad", "--name", ""],
        ["--name is empty"],
        ["{out}/c.h5ad"],
        "cells embed-sentences checks --name before any work",
    )
    # negative and zero numbers
    cls = ["classify", "-i", H5AD, "--label", "label"]
    sent = ["cells", "sentences", "-i", H5AD, "-o", "{out}/s.jsonl"]
    cemb = ["cells", "embed", "-i", H5AD, "--genes", "{case}/store", "-o", "{out}/c.npy"]
    gemb = ["genes", "embed", "-m", MODEL, "--out", "{out}/store"]
    temb = ["embed", "-m", MODEL, "-i", "{case}/texts.txt", "-o", "{out}/e.npy"]
    for cmd, flag, value, needle, absent in [
        (gemb, "--batch-tokens", "-1", "--batch-tokens must be ≥ 1, got -1", STORE_OUT),
        (gemb, "--batch-tokens", "0", "--batch-tokens must be ≥ 1, got 0", STORE_OUT),
        (gemb, "--chunk", "-5", "--chunk must be ≥ 1, got -5", STORE_OUT),
        (gemb, "--max-length", "-1", "--max-length must be ≥ 1, got -1", STORE_OUT),
        (temb, "--max-length", "-128", "--max-length must be ≥ 1, got -128", ["{out}/e.npy"]),
        (temb, "--batch-tokens", "-8192", "--batch-tokens must be ≥ 1, got -8192", ["{out}/e.npy"]),
        (cemb, "--chunk-rows", "-1", "--chunk-rows must be ≥ 0, got -1", ["{out}/c.npy"]),
        (cemb, "--top-n", "-1", "-1", ["{out}/c.npy"]),
        (sent, "--max-genes", "-10", "--max-genes must be ≥ 1, got -10", ["{out}/s.jsonl"]),
        (sent, "--seed", "-1", "--seed must be ≥ 0, got -1", ["{out}/s.jsonl"]),
        (cls, "--k", "-1", "--k must be ≥ 1, got -1", []),
        (cls, "--k", "5,-3", "--k must be ≥ 1, got -3", []),
        (cls, "--folds", "-2", "--folds must be ≥ 2, got -2", []),
        (cls, "--seed", "-7", "--seed must be ≥ 0, got -7", []),
        (cls, "--test-fraction", "-0.2", "--test-fraction must be ≥ 0, got -0.2", []),
        (cls, "--lr", "-0.001", "--lr must be ≥ 0, got -0.001", []),
        (cls, "--dropout", "-0.1", "--dropout must be ≥ 0, got -0.1", []),
        (cls, "--weight-decay", "-1", "--weight-decay must be ≥ 0, got -1", []),
        (cls, "--epochs", "-3", "--epochs must be ≥ 1, got -3", []),
        (cls, "--patience", "-1", "--patience must be ≥ 0, got -1", []),
        (cls, "--batch-size", "-64", "--batch-size must be ≥ 1, got -64", []),
        (cls, "--val-fraction", "-0.5", "--val-fraction must be ≥ 0, got -0.5", []),
        (cls, "--lr", "nan", "--lr must be a finite number", []),
        (["demo", "--out", "{out}/demo"], "--top-n", "-100", "--top-n must be ≥ 1, got -100", ["{out}/demo"]),
        (["demo", "--out", "{out}/demo"], "--seeds", "-1", "--seeds must be ≥ 0, got -1", ["{out}/demo"]),
        (["synth-model", "--tokenizer-from", MODEL, "-o", "{out}/m"], "--seed", "-1", "--seed must be ≥ 0, got -1", ["{out}/m"]),
        (["device-check", "--device", "cpu", "--work", "{out}/w"], "--n-summaries", "-1", "--n-summaries must be ≥ 1, got -1", ["{out}/w"]),
    ]:
        slug = flag.strip("-") + ("-zero" if value == "0" else "-neg" if value.startswith("-") or "," in value else "-" + value)
        name = f"w-num-{cmd[0]}-{cmd[1] if cmd[0] in ('genes', 'cells') else 'x'}-{slug}"
        name = name.replace("-x-", "-")
        if (cases_dir / name).exists():
            name += "-2"
        add(
            name,
            cmd + [flag, value],
            [needle] if flag in needle else [flag, needle],
            absent,
            f"{flag} {value} is refused by name, not taken for a flag",
            store_files if cmd is cemb else {"texts.txt": "a text\n"} if cmd is temb else None,
        )
    # report folders
    add(
        "w-report-foreign-folder",
        cls + ["--on", "counts", "--report", "{case}/notes"],
        ["--report", "no report.json"],
        [],
        "classify --report replaces its folder whole, so a folder of other files is refused",
        {"notes": lambda d: ((d / "notes").mkdir(), (d / "notes" / "mine.txt").write_text("x\n"))},
    )
    add(
        "w-report-is-a-file",
        cls + ["--on", "counts", "--report", "{case}/report.txt"],
        ["--report", "report.txt", "not a folder"],
        [],
        "--report naming a file",
        {"report.txt": "not a folder\n"},
    )
    return len(made)


if __name__ == "__main__":
    n = generate(pathlib.Path(__file__).resolve().parent / "cases")
    print(f"wrote {n} cases")
