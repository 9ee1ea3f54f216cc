#!/usr/bin/env python3
"""Time PyTorch on exactly the texts and models of a `celltext device-check` report.

Reads REPORT (report.json written by `celltext device-check`), runs each
throughput workload through transformers' BertModel with SDPA attention in
float16 on CUDA (float32 on the CPU), with the same token-budget batches as
celltext (sorted by length, longest first, at most BATCH_TOKENS padded tokens
and 512 texts per batch), the same truncation and pooling, forward passes only
(texts tokenized and padded batches built beforehand), pooled vectors copied
back to the host. Prints
one row per workload and the ratio of celltext's tokens/s in the same dtype.

    python3 scripts/torch_speed.py REPORT
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from transformers import AutoModel, AutoTokenizer


def max_length(model_dir: Path) -> int:
    st = model_dir / "sentence_bert_config.json"
    cfg = json.loads((model_dir / "config.json").read_text())
    n = cfg.get("max_position_embeddings", 512)
    if st.exists():
        n = min(n, json.loads(st.read_text()).get("max_seq_length", n))
    return n


def pooling(model_dir: Path) -> str:
    p = model_dir / "1_Pooling" / "config.json"
    if p.exists():
        c = json.loads(p.read_text())
        if c.get("pooling_mode_cls_token"):
            return "cls"
        if c.get("pooling_mode_max_tokens"):
            return "max"
    return "mean"


def batches(lengths, budget, max_batch=512):
    """celltext's TokenBudgetBatcher: longest first, ties by index, greedy fill."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out, cur, cur_max = [], [], 0
    for i in order:
        l = max(lengths[i], 1)
        new_max = max(cur_max, l)
        if cur and ((len(cur) + 1) * new_max > budget or len(cur) >= max_batch):
            out.append(cur)
            cur, cur_max = [], 0
        cur_max = max(cur_max, l)
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def padded_batches(ids, plan):
    """Padded id and mask tensors per batch, built on the host before timing (celltext's timed
    section likewise starts from tokenized, batched ids)."""
    out = []
    for b in plan:
        n = max(len(ids[i]) for i in b)
        x = torch.zeros((len(b), n), dtype=torch.long)
        m = torch.zeros((len(b), n), dtype=torch.long)
        for k, i in enumerate(b):
            x[k, : len(ids[i])] = torch.tensor(ids[i])
            m[k, : len(ids[i])] = 1
        out.append((x, m))
    return out


@torch.inference_mode()
def run(model, batches, pool, device):
    for x, m in batches:
        x, m = x.to(device), m.to(device)
        h = model(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x)).last_hidden_state
        if pool == "cls":
            v = h[:, 0].float()
        elif pool == "max":
            v = h.float().masked_fill(m.unsqueeze(-1) == 0, float("-inf")).max(1).values
        else:
            mf = m.unsqueeze(-1).float()
            v = (h.float() * mf).sum(1) / mf.sum(1)
        v.cpu()


def main():
    report = json.loads(Path(sys.argv[1]).read_text())
    cuda = torch.cuda.is_available() and not report["device"].startswith("cpu")
    device = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    dname = "f16" if cuda else "f32"
    budget = report["batch_tokens"]
    workloads = []
    for t in report["throughput"]:
        key = (t["model"], t["workload"])
        if key not in [w[:2] for w in workloads]:
            workloads.append(key + (t,))
    print(f"\nPyTorch {torch.__version__} on {torch.cuda.get_device_name(0) if cuda else 'CPU'}: "
          f"transformers BertModel, SDPA attention, {dname}, same texts and batches\n")
    print(f"{'model':<26} {'workload':<26} {'dtype':<5} {'tokens':>9} {'seconds':>8} {'tokens/s':>10} "
          f"{'alloc MiB':>9} {'celltext tokens/s':>18} {'celltext / torch':>17}")
    rows = []
    for model_name, workload, _ in workloads:
        model_dir = Path(report["minilm_dir"] if model_name.startswith("MiniLM") else report["ember_dir"])
        jsonl = report["summaries_jsonl"] if model_name.startswith("MiniLM") else report["sentences_jsonl"]
        texts = [json.loads(l)["text"] for l in Path(jsonl).read_text().splitlines() if l.strip()]
        tok = AutoTokenizer.from_pretrained(model_dir)
        ids = tok(texts, truncation=True, max_length=max_length(model_dir))["input_ids"]
        plan = padded_batches(ids, batches([len(x) for x in ids], budget))
        model = AutoModel.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa").to(device).eval()
        pool = pooling(model_dir)
        run(model, plan[:1], pool, device)  # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        run(model, plan, pool, device)
        if cuda:
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        tokens = sum(len(x) for x in ids)
        tps = tokens / secs
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        ours = [t for t in report["throughput"] if t["model"] == model_name and t["workload"] == workload
                and t["dtype"] == dname and t["backend"] != "cpu"]
        ct = ours[0]["tokens_per_second"] if ours else float("nan")
        print(f"{model_name:<26} {workload:<26} {dname:<5} {tokens:>9} {secs:>8.2f} {tps:>10.0f} {peak:>9.0f} "
              f"{ct:>18.0f} {ct / tps:>16.2f}x")
        rows.append({"model": model_name, "workload": workload, "dtype": dname, "tokens": tokens, "seconds": secs,
                     "tokens_per_second": tps, "peak_mib": peak, "celltext_tokens_per_second": ct, "ratio": ct / tps})
        del model
        if cuda:
            torch.cuda.empty_cache()
    out = Path(sys.argv[1]).with_name("torch_speed.json")
    out.write_text(json.dumps({"torch": torch.__version__, "device": device, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
