#!/usr/bin/env bash
# The workflow through a real SLURM controller (issue 30), as CI runs it on every change:
#  1. installs Debian's slurm-wlm and munge (when missing) and the pinned snakemake and
#     snakemake-executor-plugin-slurm into .venv-workflow;
#  2. starts a throwaway single-node cluster (workflows/slurm_cluster.sh: munged, slurmctld,
#     slurmd; no cgroups, no accounting) in a private temporary folder;
#  3. runs workflows/check.sh through it with the unchanged CPU profile (15 jobs, one per shard
#     and merge, on the bundled pbmc3k subset, into a folder whose name has a space) and compares
#     the merged outputs with the unsharded commands (workflows/compare.py);
#  4. restarts the cluster with one `gpu` GRES on the node (no device behind it) and runs the
#     unchanged GPU profile (its encoder shards ask --gpus=1; celltext runs with device=cpu) on a
#     2-shard `steps=genes` run whose shard 2 is held (workflows/tests/hold_shard.sh): checks the
#     held job holds a GPU, cancels it with scancel, expects the workflow to fail naming the
#     shard's log, then reruns: only the missing shard runs, the finished one is not rewritten,
#     and the merged store equals the unsharded one;
#  5. cancels every job left and stops every daemon it started (trap, also on failure).
# Needs root (the daemons and jobs run as root) and a built binary.
#   bash workflows/slurm_ci.sh [CELLTEXT_BINARY] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/celltext}
WORK=${2:-celltext-slurm check}
VENV=.venv-workflow
# workflows/check.sh's config, for the failure run's genes step:
SUMMARIES=tests/data/shard/pbmc3k_top10_summaries.tsv
MODEL=models-local/all-MiniLM-L6-v2
# The profiles as shipped; CI only shortens the wait before the first status check (the
# profiles' 20 s suits long shards; these jobs take seconds).
FAST=(--slurm-init-seconds-before-status-checks 2)
t0=$SECONDS
say() { echo "slurm_ci ($((SECONDS - t0)) s): $*"; }
fail() { echo "slurm_ci: FAILED: $*" >&2; exit 1; }

export PATH="$PATH:/usr/sbin:/sbin"
if ! dpkg -s slurm-wlm munge >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet snakemake==9.27.1 snakemake-executor-plugin-slurm==2.8.0 \
    snakemake-executor-plugin-slurm-jobstep==0.6.1 h5py numpy
export PATH="$PWD/$VENV/bin:$PATH"
say "installed slurm-wlm $(dpkg-query -W -f '${Version}' slurm-wlm), snakemake $(snakemake --version)," \
    "plugin $(pip show snakemake-executor-plugin-slurm 2>/dev/null | awk '/^Version/ {print $2}')"

source workflows/slurm_cluster.sh
CLUSTER=$(mktemp -d -t celltext-slurm.XXXXXX)
SNAKE_PID=""
cleanup() {
    local rc=$? i
    rm -f "$CLUSTER/hold"
    if [ -n "$SNAKE_PID" ] && kill -0 "$SNAKE_PID" 2>/dev/null; then
        # SIGINT asks snakemake to cancel its SLURM jobs (on SIGTERM it goes on submitting);
        # killed if it has not ended after 30 s.
        kill -INT "$SNAKE_PID" 2>/dev/null || true
        for i in $(seq 1 60); do
            kill -0 "$SNAKE_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$SNAKE_PID" 2>/dev/null || true
        "${RUN[@]}" --unlock >/dev/null 2>&1 || true # a killed snakemake leaves its lock
    fi
    cluster_stop
    if [ $rc -ne 0 ] && ls "$CLUSTER"/*/logs/*.log >/dev/null 2>&1; then
        echo "slurm_ci: daemon logs (last lines):" >&2
        tail -n 15 "$CLUSTER"/*/logs/*.log >&2 || true
    fi
    rm -rf "$CLUSTER"
    exit $rc
}
trap cleanup EXIT
cluster_start "$CLUSTER/cpu"
say "cluster up, no GPU"

# 3. The whole workflow on the cluster = the unsharded commands.
t1=$SECONDS
bash workflows/check.sh "$BIN" "$WORK" --profile workflows/profiles/slurm-cpu "${FAST[@]}"
say "workflow through SLURM + unsharded commands + comparison: $((SECONDS - t1)) s"

# 4. The GPU profile on a node with a gpu GRES; a cancelled shard is reported and resumed.
cluster_stop
cluster_start "$CLUSTER/gpu" 1
say "cluster up, 1 gpu GRES"
F="$WORK/failure"
HOLD="$CLUSTER/hold"
RUN=(snakemake -s workflows/Snakefile --profile workflows/profiles/slurm-gpu "${FAST[@]}"
    --config celltext="$BIN" steps=genes
    model="$MODEL" summaries="$SUMMARIES" shards=2 out="$F"
    wrap="bash workflows/tests/hold_shard.sh $HOLD")
touch "$HOLD"
"${RUN[@]}" >"$WORK/failure.log" 2>&1 &
SNAKE_PID=$!
for _ in $(seq 1 600); do
    [ -s "$HOLD.job" ] && break
    kill -0 "$SNAKE_PID" 2>/dev/null ||
        fail "the workflow ended before shard 2 started: $(tail -n 30 "$WORK/failure.log")"
    sleep 1
done
[ -s "$HOLD.job" ] || fail "shard 2's job did not start in 10 minutes: $(squeue)"
job=$(cat "$HOLD.job")
scontrol show job "$job" | grep -q "TresPerJob=gres:gpu:1" ||
    fail "job $job (GPU profile) holds no GPU: $(scontrol show job "$job")"
scancel "$job"
say "cancelled SLURM job $job (genes shard 2/2)"
if wait "$SNAKE_PID"; then fail "the workflow succeeded although shard 2's job was cancelled"; fi
SNAKE_PID=""
rm -f "$HOLD" "$HOLD.job"
grep -qF "$F/logs/genes.2-of-2.log" "$WORK/failure.log" ||
    fail "the failure message does not name $F/logs/genes.2-of-2.log: $(tail -n 30 "$WORK/failure.log")"
[ ! -e "$F/shards/genes.2-of-2.npy" ] || fail "the cancelled shard left $F/shards/genes.2-of-2.npy"
grep -F "Error in rule genes_shard" -A 8 "$WORK/failure.log" | grep -E "Error in rule|log:|SLURM" || true
done_before=()
for s in "$F"/shards/genes.*-of-2.npy; do
    [ -e "$s" ] && done_before+=("$s|$(stat -c '%i %Y' "$s")")
done
missing=$((2 - ${#done_before[@]}))
say "the workflow failed naming the shard's log; $missing of 2 shards missing"
"${RUN[@]}" >"$WORK/rerun.log" 2>&1 || fail "the rerun failed: $(tail -n 30 "$WORK/rerun.log")"
ran=$(awk '$1 == "genes_shard" {print $2; exit}' "$WORK/rerun.log")
[ "$ran" = "$missing" ] || fail "the rerun ran ${ran:-no} genes_shard jobs, expected the $missing missing"
for entry in "${done_before[@]}"; do
    s=${entry%|*}
    [ "$(stat -c '%i %Y' "$s")" = "${entry#*|}" ] || fail "the rerun rewrote the finished shard $s"
done
python3 workflows/compare.py "$WORK/unsharded/genes" "$F/genes"
say "the rerun ran only the $missing missing shard(s); the merged store equals the unsharded one"
rm -rf "$WORK"
say "done"
