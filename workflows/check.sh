#!/usr/bin/env bash
# The sharding contract, end to end: run workflows/Snakefile (4 shards of `genes embed`,
# `cells embed` and `cells embed-sentences` on the bundled 601-cell pbmc3k subset, gathered
# with `celltext merge`), run the same three commands unsharded, and compare the results
# (workflows/compare.py: vectors bit for bit, manifests less timing). Needs snakemake, h5py.
#   bash workflows/check.sh [CELLTEXT_BINARY] [WORK_DIR] [SNAKEMAKE_ARGS...]
# SNAKEMAKE_ARGS choose the executor (default `--cores 2`); workflows/slurm_ci.sh passes a SLURM
# profile. With the default it first runs workflows/tests/check_config.sh (config quoting and
# validation, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/celltext}
WORK=${2:-celltext-workflow-check}
EXECUTOR=("${@:3}")
if [ ${#EXECUTOR[@]} -eq 0 ]; then
    EXECUTOR=(--cores 2)
    bash workflows/tests/check_config.sh
fi
INPUT=assets/data/pbmc3k_demo.h5ad
SUMMARIES=tests/data/shard/pbmc3k_top10_summaries.tsv
MODEL=models-local/all-MiniLM-L6-v2
rm -rf "$WORK"
snakemake -s workflows/Snakefile "${EXECUTOR[@]}" --quiet rules \
    --config celltext="$BIN" input="$INPUT" layer=counts model="$MODEL" summaries="$SUMMARIES" \
    max_genes=32 shards=4 out="$WORK/sharded"
REF="$WORK/unsharded"
mkdir -p "$REF"
"$BIN" --quiet genes embed -m "$MODEL" --summaries "$SUMMARIES" --out "$REF/genes" >/dev/null
"$BIN" --quiet cells embed -i "$INPUT" --layer counts --genes "$WORK/sharded/genes" --top-n 100 \
    -o "$REF/genept_w.h5ad" >/dev/null
"$BIN" --quiet cells embed-sentences -i "$INPUT" --layer counts -m "$MODEL" --max-genes 32 \
    -o "$REF/sentences.h5ad" >/dev/null
python3 workflows/compare.py "$REF/genes" "$WORK/sharded/genes"
python3 workflows/compare.py "$REF/genept_w.h5ad" "$WORK/sharded/genept_w.h5ad"
python3 workflows/compare.py "$REF/sentences.h5ad" "$WORK/sharded/sentences.h5ad"
