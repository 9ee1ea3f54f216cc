#!/usr/bin/env bash
# The workflow's config cannot inject shell and survives awkward paths (issue 27): bad numbers and
# step names stop it with one line; a run whose values hold `$(touch PWNED)`, quotes and spaces
# (binary, input, output folder, model, wrap) passes each as one literal argument and runs nothing
# else. The binary is workflows/tests/fake_celltext.py (it records its argv), so this takes seconds.
#   bash workflows/tests/check_config.sh        (needs snakemake on PATH)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "check_config: $*" >&2; exit 1; }

# 1. Bad values: exit non-zero with exactly one line naming the key.
for bad in shards=0 shards=abc shards=-2 shards=2.5 steps=foo steps=genes,bogus threads=0 \
    top_n=x max_genes=many; do
    if snakemake -s workflows/Snakefile -d "$WORK" --cores 1 -n --config "$bad" >"$WORK/out" 2>&1; then
        fail "--config $bad was accepted"
    fi
    grep -v '^$' "$WORK/out" >"$WORK/lines" || true
    [ "$(wc -l <"$WORK/lines")" -eq 1 ] || fail "--config $bad: expected one line, got: $(cat "$WORK/out")"
    grep -q "^celltext workflow: ${bad%%=*}" "$WORK/lines" || fail "--config $bad: $(cat "$WORK/lines")"
    echo "refused: $bad -> $(cat "$WORK/lines")"
done

# 2. Hostile and spaced values run as literal arguments.
DIR="$WORK/dir with 'quotes' and \$(touch PWNED)"
mkdir -p "$DIR"
cp workflows/tests/fake_celltext.py "$DIR/fake celltext.py"
chmod +x "$DIR/fake celltext.py"
touch "$DIR/in put.h5ad"
export FAKE_CELLTEXT_LOG="$WORK/argv.jsonl"
(
    cd "$DIR"
    snakemake -s "$REPO/workflows/Snakefile" --cores 1 --quiet all \
        --config "celltext=$DIR/fake celltext.py" "input=$DIR/in put.h5ad" "out=$DIR/out dir" \
        'model=minilm$(touch PWNED);touch PWNED' 'layer=counts`touch PWNED`' \
        'wrap=env WRAPPED=$(touch\ PWNED)' \
        'summaries=s.tsv; touch PWNED' shards=2 max_genes=8 >"$WORK/run.log" 2>&1
) || fail "the workflow with quoted values failed: $(tail -n 20 "$WORK/run.log")"
if find "$WORK" -name PWNED | grep -q .; then fail "a config value ran a command (PWNED exists)"; fi
python3 - "$FAKE_CELLTEXT_LOG" "$DIR" <<'PY'
import json, sys
log, d = sys.argv[1], sys.argv[2]
runs = [json.loads(line) for line in open(log)]
assert len(runs) == 9, f"expected 9 commands (2 shards x 3 steps + 3 merges), got {len(runs)}"
words = [w for r in runs for w in r]
for want in (f"{d}/in put.h5ad", "minilm$(touch PWNED);touch PWNED", "counts`touch PWNED`",
             "s.tsv; touch PWNED", "WRAPPED=$(touch PWNED)",
             f"{d}/out dir/shards/genes.1-of-2.npy", f"{d}/out dir/genes"):
    assert want in words, f"argument {want!r} did not arrive as one word: {runs}"
print(f"quoted: {len(runs)} commands got every value as one literal argument; nothing injected ran")
PY
