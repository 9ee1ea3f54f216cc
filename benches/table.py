"""The whole encoder bench table in one command: celltext (f32 and --dtype int8) beside its peers,
PyTorch (fp32) and ONNX Runtime (fp32, O2 fusions, dynamic int8; exported with optimum), on the
same texts, batches and threads, median of --repeats runs each, ratios from the same run.

    celltext cells sentences -i assets/data/pbmc3k_demo.h5ad --layer counts -o cells.jsonl --quiet
    python3 benches/table.py --setup-venv .bench-venv --sentences cells.jsonl --repeats 3

Workloads: `minilm` (all-MiniLM-L6-v2 on real gene summaries), `bert-base-shaped` (a `celltext
synth-model --shape bert-base` checkpoint on cell sentences at 512 tokens), `ember-shaped`
(24×1024 on the same sentences); `biobert-shaped` (12×768 on summaries) on request. Needs the
MiniLM weights (scripts/fetch_minilm.sh). --setup-venv makes (or reuses) a venv with the peers'
packages (benches/setup_peers.sh); --python uses a Python that has them instead. Prints a Markdown
table (the one in docs/speed.md) and writes every raw row to --json-out.
"""
import argparse, datetime, json, os, platform, struct, subprocess, sys, tempfile


def cpu_info():
    name, flags = None, ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    name = name or platform.processor() or "unknown CPU"
    simd = [f for f in flags.split() if f.startswith(("avx", "fma", "amx"))]
    return name, simd


def read_npy_f32(path):
    """A 2-D little-endian f32 .npy (what the bench writes) as a list of rows, without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack("<I", data[8:12])[0]
    start = (10 if data[6] == 1 else 12) + hlen
    header = data[start - hlen:start].decode("latin1")
    assert "'<f4'" in header and "'fortran_order': False" in header, header
    shape = header.split("(")[1].split(")")[0]
    rows, cols = [int(x) for x in shape.split(",") if x.strip()]
    flat = struct.unpack(f"<{rows * cols}f", data[start:start + 4 * rows * cols])
    return [flat[r * cols:(r + 1) * cols] for r in range(rows)]


def cosines(a, b):
    out = []
    for x, y in zip(a, b):
        dot = sum(p * q for p, q in zip(x, y))
        nx, ny = sum(p * p for p in x) ** 0.5, sum(q * q for q in y) ** 0.5
        out.append(dot / (nx * ny))
    return out


def last_json(cmd, env):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"failed ({r.returncode}):\n{r.stderr[-3000:]}", file=sys.stderr)
        return None
    return [json.loads(l) for l in r.stdout.strip().splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="Python with torch + transformers (+ onnxruntime, optimum)")
    ap.add_argument("--setup-venv", metavar="DIR", help="make or reuse this venv for the peers (benches/setup_peers.sh)")
    ap.add_argument("--sentences", help="cell sentences JSONL for the bert-base- and ember-shaped workloads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-minilm", type=int, default=1000)
    ap.add_argument("--n-biobert", type=int, default=300)
    ap.add_argument("--n-bert-base", type=int, default=48)
    ap.add_argument("--n-ember", type=int, default=48)
    ap.add_argument("--workloads", default="minilm,bert-base-shaped,ember-shaped")
    ap.add_argument("--peers", default="pytorch,onnx", help="any of pytorch, onnx (empty: celltext only)")
    ap.add_argument("--onnx-variants", default="fp32,o2,int8")
    ap.add_argument("--onnx-cache", default=".bench-onnx", help="exported ONNX models, reused across runs")
    ap.add_argument("--no-int8", action="store_true", help="skip celltext --dtype int8")
    ap.add_argument("--json-out", default="bench_table.json")
    a = ap.parse_args()
    if a.setup_venv:
        r = subprocess.run(["bash", "benches/setup_peers.sh", a.setup_venv], check=True, capture_output=True, text=True)
        a.python = r.stdout.strip().splitlines()[-1]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    peers = [p for p in a.peers.split(",") if p]
    rows = []
    tmp = tempfile.mkdtemp(prefix="celltext-bench-")
    gemm = {}
    for w in a.workloads.split(","):
        n = {"minilm": a.n_minilm, "biobert-shaped": a.n_biobert, "bert-base-shaped": a.n_bert_base,
             "ember-shaped": a.n_ember}[w]
        plan = os.path.join(tmp, f"{w}.plan.json")
        base = ["cargo", "bench", "--bench", "encoder", "--", "--workload", w, "--n", str(n),
                "--repeats", str(a.repeats), "--json"]
        if w in ("bert-base-shaped", "ember-shaped"):
            if not a.sentences:
                print(f"skipping {w}: pass --sentences cells.jsonl", file=sys.stderr)
                continue
            base += ["--texts", a.sentences]
        engines = {}
        vec = {}
        for dtype in ["f32"] + ([] if a.no_int8 else ["int8"]):
            vec[dtype] = os.path.join(tmp, f"{w}.{dtype}.npy")
            cmd = base + ["--dtype", dtype, "--vectors-out", vec[dtype]]
            if dtype == "f32":
                cmd += ["--plan-out", plan]
            if dtype not in gemm:
                cmd.append("--gemm")
            out = last_json(cmd, env)
            if out is None:
                sys.exit(f"celltext bench failed for {w} ({dtype})")
            engines[f"celltext {dtype}"] = out[-1]
            if out[-1].get("gemm_gflops"):
                gemm[dtype] = out[-1]["gemm_gflops"]
        ref = read_npy_f32(vec["f32"])
        if "int8" in vec:
            c = cosines(read_npy_f32(vec["int8"]), ref)
            engines["celltext int8"].update(cosine_worst=min(c), cosine_mean=sum(c) / len(c))
        if "pytorch" in peers:
            out = last_json([a.python, "benches/pytorch_twin.py", plan, "--threads", str(a.threads),
                             "--repeats", str(a.repeats), "--reference", vec["f32"]], env)
            if out:
                engines["PyTorch fp32"] = out[-1]
        if "onnx" in peers:
            out = last_json([a.python, "benches/onnx_twin.py", plan, "--threads", str(a.threads),
                             "--repeats", str(a.repeats), "--variants", a.onnx_variants,
                             "--reference", vec["f32"], "--cache", a.onnx_cache], env)
            for o in out or []:
                engines[{"fp32": "ONNX Runtime fp32", "o2": "ONNX Runtime O2",
                         "int8": f"ONNX Runtime int8 ({o.get('int8_config', '')})"}[o["variant"]]] = o
        rows.append({"workload": w, "engines": engines})

    name, simd = cpu_info()
    print(f"\n{datetime.date.today()} · {name} ({', '.join(simd)}) · {os.cpu_count()} cores · {a.threads} threads · "
          f"median of {a.repeats} runs · GEMM peak (2048³, celltext's kernels): "
          + ", ".join(f"{d} {g:.0f} G{'FL' if d == 'f32' else ''}OP/s" for d, g in gemm.items()))
    print("\n| workload | engine | tok/s | seq/s | celltext f32 ÷ it | celltext int8 ÷ it | cosine to celltext f32 (worst / mean) "
          "| model GFLOP/s | of GEMM peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["engines"]
        c32 = e["celltext f32"]
        flops = c32["model_gflops"] * c32["seconds"]  # useful FLOPs: real tokens only
        label = f"{r['workload']} ({c32['texts']} texts, {c32['tokens']:,} tokens)"
        for k, v in e.items():
            g = flops / v["seconds"]
            peak = gemm.get("int8" if "int8" in k else "f32")
            ratio = lambda other: f"{e[other]['tokens_per_s'] / v['tokens_per_s']:.2f}×" if other in e else "–"
            cos = f"{v['cosine_worst']:.5f} / {v['cosine_mean']:.5f}" if "cosine_worst" in v else "–"
            print(f"| {label} | {k} | {v['tokens_per_s']:,.0f} | {v['seqs_per_s']:.2f} | {ratio('celltext f32')} | "
                  f"{ratio('celltext int8')} | {cos} | {g:.0f} | " + (f"{g / peak:.2f}" if peak else "–") + " |")
            label = ""
    with open(a.json_out, "w") as f:
        json.dump({"cpu": name, "simd_flags": simd, "threads": a.threads, "repeats": a.repeats, "gemm_peak": gemm,
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
