#!/usr/bin/env python3
"""ONNX Runtime twin of `cargo bench --bench encoder`: same texts, same batches, same threads.

Reads the plan written by the Rust bench (texts, batches of text indices, model dir, pooling,
max length), exports the model with optimum (`feature-extraction`, cached under --cache), and
times one or more variants over exactly those batches (tokenize with padding to the longest in
the batch, run, pool), median of --repeats runs after one warm-up run:

  fp32  the exported graph, ONNX Runtime's default session optimizations (ORT_ENABLE_ALL)
  o2    optimum's ORTOptimizer with AutoOptimizationConfig.O2() (transformer fusions: attention,
        LayerNorm, GELU, bias + skip), same session options
  int8  optimum's ORTQuantizer, dynamic (weights per channel in s8, activations per tensor at run
        time) with AutoQuantizationConfig.avx512_vnni when /proc/cpuinfo lists avx512_vnni, else
        .avx2 — what a user of optimum on this CPU would choose

Prints one JSON line per variant; with --reference (the bench's --vectors-out .npy of celltext
f32) each line carries the worst and mean cosine of its pooled vectors to it.

    python3 benches/onnx_twin.py PLAN.json --threads 2 --repeats 3 --variants fp32,o2,int8 \\
        --reference celltext_f32.npy --cache .bench-onnx
"""
import argparse, hashlib, json, os, statistics, sys, time


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def model_key(d):
    """Cache key of a model folder: its config and the size and mtime of its weight files."""
    h = hashlib.sha256(os.path.abspath(d).encode())
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            st = os.stat(p)
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def prepare(model_dir, cache, variants, log):
    """Export (and optimize / quantize) once per model; returns {variant: onnx path}."""
    root = os.path.join(cache, model_key(model_dir))
    fp32_dir = os.path.join(root, "fp32")
    paths = {}
    if not os.path.exists(os.path.join(fp32_dir, "model.onnx")):
        from optimum.exporters.onnx import main_export
        t = time.perf_counter()
        main_export(model_dir, output=fp32_dir, task="feature-extraction", device="cpu", do_validation=False)
        log["export_seconds"] = time.perf_counter() - t
    paths["fp32"] = os.path.join(fp32_dir, "model.onnx")
    if "o2" in variants:
        o2_dir = os.path.join(root, "o2")
        if not os.path.isdir(o2_dir) or not any(f.endswith(".onnx") for f in os.listdir(o2_dir)):
            from optimum.onnxruntime import ORTOptimizer
            from optimum.onnxruntime.configuration import AutoOptimizationConfig
            ORTOptimizer.from_pretrained(fp32_dir).optimize(save_dir=o2_dir, optimization_config=AutoOptimizationConfig.O2())
        paths["o2"] = os.path.join(o2_dir, next(f for f in sorted(os.listdir(o2_dir)) if f.endswith(".onnx")))
    if "int8" in variants:
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
        vnni = "avx512_vnni" in cpu_flags()
        log["int8_config"] = "avx512_vnni" if vnni else "avx2"
        q_dir = os.path.join(root, "int8-" + log["int8_config"])
        if not os.path.isdir(q_dir) or not any(f.endswith(".onnx") for f in os.listdir(q_dir)):
            from optimum.onnxruntime import ORTQuantizer
            make = AutoQuantizationConfig.avx512_vnni if vnni else AutoQuantizationConfig.avx2
            qcfg = make(is_static=False, per_channel=True)
            ORTQuantizer.from_pretrained(fp32_dir, file_name="model.onnx").quantize(save_dir=q_dir, quantization_config=qcfg)
        paths["int8"] = os.path.join(q_dir, next(f for f in sorted(os.listdir(q_dir)) if f.endswith(".onnx")))
    return paths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default="fp32,o2,int8")
    ap.add_argument("--reference", help="celltext f32 pooled vectors (.npy) of the same texts")
    ap.add_argument("--cache", default=".bench-onnx", help="folder for the exported models")
    a = ap.parse_args()
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer
    plan = json.load(open(a.plan))
    texts, batches = plan["texts"], plan["batches"]
    d = plan["model_dir"]
    tok = AutoTokenizer.from_pretrained(plan.get("tokenizer_dir", d))
    max_len, pooling = plan["max_length"], plan["pooling"]
    variants = a.variants.split(",")
    log = {}
    paths = prepare(d, a.cache, variants, log)
    ref = np.load(a.reference).astype(np.float64) if a.reference else None
    versions = {"onnxruntime": ort.__version__}
    try:
        import importlib.metadata as md
        versions["optimum"] = md.version("optimum")
        versions["transformers"] = md.version("transformers")
    except Exception:
        pass
    for v in variants:
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(paths[v], so, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        dim = None

        def run():
            tokens = 0
            out = [None] * len(texts)
            t0 = time.perf_counter()
            for b in batches:
                enc = tok([texts[i] for i in b], padding="longest", truncation=True, max_length=max_len, return_tensors="np")
                feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids") if k in names}
                if "token_type_ids" in names and "token_type_ids" not in enc:
                    feed["token_type_ids"] = np.zeros_like(enc["input_ids"], dtype=np.int64)
                h = sess.run(None, feed)[0]
                m = enc["attention_mask"][..., None].astype(h.dtype)
                pooled = h[:, 0] if pooling == "cls" else (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
                for j, i in enumerate(b):
                    out[i] = pooled[j]
                tokens += int(enc["attention_mask"].sum())
            return tokens, time.perf_counter() - t0, np.stack(out)

        run()  # warm-up (allocator, kernels)
        secs, toks, vecs = [], 0, None
        for _ in range(a.repeats):
            toks, s, vecs = run()
            secs.append(s)
        med = statistics.median(secs)
        row = {"impl": "onnxruntime", "variant": v, "threads": a.threads, "seconds": med, "runs": secs,
               "tokens": toks, "tokens_per_s": toks / med, "seqs_per_s": len(texts) / med, "onnx": os.path.relpath(paths[v], a.cache),
               **versions, **log}
        if ref is not None:
            x = vecs.astype(np.float64)
            c = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
            row["cosine_worst"], row["cosine_mean"] = float(c.min()), float(c.mean())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
