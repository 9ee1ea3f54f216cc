#!/usr/bin/env bash
# Scale bench of the sharded workflow (docs/sharding.md): GenePT-w (`cells embed`)
# on a seeded synthetic h5ad, once unsharded and as N shards through workflows/Snakefile with
# 2 workers and with 1 worker (one thread per shard), each command under `/usr/bin/time -v`;
# then checks that the merged h5ad equals the unsharded one (workflows/compare.py).
#   bash benches/shard_scale.sh WORK_DIR [CELLS] [SHARDS]
# WORK_DIR gets the input (~6 GB for 10^6 cells), two h5ad copies of it, and the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$1
CELLS=${2:-1000000}
N=${3:-8}
BIN=${CELLTEXT:-$PWD/target/release/celltext}
mkdir -p "$WORK"
IN="$WORK/synthetic.h5ad"
[ -f "$IN" ] || python3 benches/make_synthetic_h5ad.py --cells "$CELLS" --out "$IN" \
    --store-pickle "$WORK/store.pkl"
[ -f "$WORK/store.manifest.json" ] || "$BIN" --quiet genes import "$WORK/store.pkl" --out "$WORK/store"
report() { grep -h "Elapsed (wall\|Maximum resident" "$1" | sed 's/^\s*/    /'; }

echo "== unsharded: celltext cells embed -i $IN --genes $WORK/store -o $WORK/single.h5ad"
/usr/bin/time -v "$BIN" --quiet cells embed -i "$IN" --genes "$WORK/store" \
    -o "$WORK/single.h5ad" > "$WORK/single.log" 2>&1
report "$WORK/single.log"

for workers in 2 1; do
    OUT="$WORK/wf-$workers"
    rm -rf "$OUT"
    echo "== $N shards, $workers worker(s): snakemake --cores $workers (threads=1 per shard)"
    start=$(date +%s.%N)
    targets=$OUT/genept_w.h5ad
    # the 1-worker run stops at the shards (the merge is the same command as above)
    [ "$workers" = 1 ] && targets=$(for i in $(seq 1 "$N"); do echo "$OUT/shards/genept_w.$i-of-$N.npy"; done)
    snakemake -s workflows/Snakefile --cores "$workers" --quiet all \
        --config celltext="$BIN" input="$IN" layer= store="$WORK/store" steps=genept_w \
        shards="$N" threads=1 out="$OUT" wrap="/usr/bin/time -v" -- $targets > "$OUT.snakemake.log" 2>&1
    echo "    workflow wall: $(echo "$(date +%s.%N) - $start" | bc) s"
    for log in "$OUT"/logs/*.log; do
        echo "  $(basename "$log" .log):"
        report "$log"
    done
done
python3 workflows/compare.py "$WORK/single.h5ad" "$WORK/wf-2/genept_w.h5ad"
