#!/usr/bin/env python3
"""A stand-in for the celltext binary in workflows/tests/check_config.sh: it records its argv (one
JSON list per line, appended to $FAKE_CELLTEXT_LOG, led by WRAPPED=... when the `wrap` prefix set
that variable) and writes empty files where the real command writes its outputs, so the workflow's
shell quoting is tested without real work."""
import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["FAKE_CELLTEXT_LOG"], "a") as f:
    wrapped = [f"WRAPPED={os.environ['WRAPPED']}"] if "WRAPPED" in os.environ else []
    f.write(json.dumps(wrapped + args) + "\n")
out = args[args.index("--out" if "--out" in args else "-o") + 1]
if "merge" in args and not out.endswith(".h5ad"):
    outs = [out + ".safetensors", out + ".genes.tsv", out + ".manifest.json"]
else:
    outs = [out, out + ".manifest.json"]
for path in outs:
    open(path, "w").close()
