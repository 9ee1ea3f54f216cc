#!/usr/bin/env python3
"""PyTorch twin of `cargo bench --bench encoder`: same texts, same batches, same threads, fp32.

Reads the plan written by the Rust bench (texts + batches of text indices + model dir + pooling),
runs transformers' BertModel over exactly those batches (tokenize with padding to the longest in
the batch, truncation at the plan's max length, forward, pool), and prints one JSON line with
tokens/s and sequences/s (median of --repeats runs); with --reference (the bench's --vectors-out
.npy of celltext f32) also the worst and mean cosine of its pooled vectors to it.

    python3 benches/pytorch_twin.py PLAN.json --threads 2 --repeats 3 [--reference F32.npy]
"""
import argparse, json, statistics, sys, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--reference", help="celltext f32 pooled vectors (.npy) of the same texts")
    a = ap.parse_args()
    import torch
    from transformers import AutoModel, AutoTokenizer, BertTokenizerFast
    torch.set_num_threads(a.threads)
    plan = json.load(open(a.plan))
    texts, batches = plan["texts"], plan["batches"]
    d = plan["model_dir"]
    if plan.get("random_config"):
        from transformers import BertConfig, BertModel
        torch.manual_seed(0)
        model = BertModel(BertConfig(**plan["random_config"]), add_pooling_layer=False)
    else:
        model = AutoModel.from_pretrained(d, attn_implementation=plan.get("attn", "sdpa"))
    try:
        tok = AutoTokenizer.from_pretrained(plan.get("tokenizer_dir", d))
    except Exception:
        tok = BertTokenizerFast(vocab_file=plan["tokenizer_dir"] + "/vocab.txt", do_lower_case=True)
    dtype = getattr(torch, a.dtype)
    model = model.to(a.device, dtype=dtype).eval()
    max_len = plan["max_length"]
    pooling = plan["pooling"]

    def run():
        tokens = 0
        pooled = [None] * len(texts)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                enc = tok([texts[i] for i in b], padding="longest", truncation=True, max_length=max_len, return_tensors="pt")
                enc = {k: v.to(a.device) for k, v in enc.items()}
                h = model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                if pooling == "cls":
                    out = h[:, 0]
                else:
                    out = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out = out.float().cpu()
                for j, i in enumerate(b):
                    pooled[i] = out[j]
                tokens += int(enc["attention_mask"].sum())
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return tokens, time.perf_counter() - t0, pooled

    run()  # warm-up (allocator, kernels)
    secs, toks, pooled = [], 0, None
    for _ in range(a.repeats):
        toks, s, pooled = run()
        secs.append(s)
    med = statistics.median(secs)
    row = {"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "device": a.device, "dtype": a.dtype,
           "seconds": med, "runs": secs, "tokens": toks, "tokens_per_s": toks / med, "seqs_per_s": len(texts) / med}
    if a.reference:
        import numpy as np
        x = torch.stack(pooled).double().numpy()
        ref = np.load(a.reference).astype(np.float64)
        c = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
        row["cosine_worst"], row["cosine_mean"] = float(c.min()), float(c.mean())
    print(json.dumps(row))

if __name__ == "__main__":
    sys.exit(main())
