"""The whole encoder bench table in one command: celltext and its PyTorch twin on the three
workloads of the speed issue, same texts, batches and threads, median of --repeats runs.

    python3 benches/table.py --python python3 --sentences cells.jsonl [--repeats 3]

Needs the MiniLM weights (scripts/fetch_minilm.sh) and, for the PyTorch column, a Python with
torch + transformers. Cell sentences for the ember-shaped row come from
`celltext cells sentences -i assets/data/pbmc3k_demo.h5ad --layer counts -o cells.jsonl`.
Prints a Markdown table (the one in docs/speed.md) and writes every raw row to --json-out.
"""
import argparse, datetime, json, os, platform, subprocess, sys, tempfile


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="Python with torch + transformers")
    ap.add_argument("--sentences", help="cell sentences JSONL for the ember-shaped workload")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-minilm", type=int, default=1000)
    ap.add_argument("--n-biobert", type=int, default=300)
    ap.add_argument("--n-ember", type=int, default=48)
    ap.add_argument("--workloads", default="minilm,biobert-shaped,ember-shaped")
    ap.add_argument("--json-out", default="bench_table.json")
    a = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    rows = []
    tmp = tempfile.mkdtemp(prefix="celltext-bench-")
    for w in a.workloads.split(","):
        n = {"minilm": a.n_minilm, "biobert-shaped": a.n_biobert, "ember-shaped": a.n_ember}[w]
        plan = os.path.join(tmp, f"{w}.plan.json")
        cmd = ["cargo", "bench", "--bench", "encoder", "--", "--workload", w, "--n", str(n),
               "--repeats", str(a.repeats), "--plan-out", plan, "--json"]
        if w == "minilm":
            cmd.append("--gemm")
        if w == "ember-shaped":
            if not a.sentences:
                print("skipping ember-shaped: pass --sentences cells.jsonl", file=sys.stderr)
                continue
            cmd += ["--texts", a.sentences]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        ours = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        twin_cmd = [a.python, "benches/pytorch_twin.py", plan, "--threads", str(a.threads), "--repeats", str(a.repeats)]
        print("+", " ".join(twin_cmd), file=sys.stderr, flush=True)
        r = subprocess.run(twin_cmd, env=env, capture_output=True, text=True)
        theirs = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None
        if theirs is None:
            print(f"PyTorch twin failed for {w}:\n{r.stderr[-2000:]}", file=sys.stderr)
        rows.append({"workload": w, "celltext": ours, "pytorch": theirs})
    gemm = next((r["celltext"].get("gemm_gflops") for r in rows if r["celltext"].get("gemm_gflops")), None)
    print(f"\n{datetime.date.today()} · {cpu_name()} · {os.cpu_count()} cores · {a.threads} threads · f32 · median of {a.repeats} runs"
          + (f" · GEMM peak {gemm:.0f} GFLOP/s ({rows[0]['celltext'].get('gemm_kernel')}, 2048³)" if gemm else ""))
    print("\n| workload | tokens | celltext tok/s | seq/s | PyTorch tok/s | ratio | padding | model GFLOP/s | of GEMM peak | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, p = r["celltext"], r["pytorch"]
        ratio = c["tokens_per_s"] / p["tokens_per_s"] if p else float("nan")
        frac = c["model_gflops"] / gemm if gemm else float("nan")
        print(f"| {r['workload']} ({c['texts']} texts) | {c['tokens']:,} | {c['tokens_per_s']:,.0f} | {c['seqs_per_s']:.1f} | "
              + (f"{p['tokens_per_s']:,.0f}" if p else "n/a")
              + f" | {ratio:.2f}× | {100 * c['padding_fraction']:.1f} % (plan {100 * c['batch_plan_padding_fraction']:.1f} %) | "
              + f"{c['model_gflops']:.0f} | {frac:.2f} | {c['peak_rss_mib']:.0f} MiB |")
    with open(a.json_out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
