#!/usr/bin/env bash
# A `wrap` prefix for workflows/slurm_ci.sh's failure test: runs the wrapped celltext command,
# except that the job of shard 2/N (any step) first writes its SLURM job id to HOLD.job and waits
# while HOLD exists, so the test can cancel that job with scancel at a known point.
#   wrap="bash workflows/tests/hold_shard.sh HOLD"
set -euo pipefail
hold=$1
shift
case " $* " in
*" --shard 2/"*)
    if [ -e "$hold" ]; then
        echo "${SLURM_JOB_ID:-none}" >"$hold.job.tmp"
        mv "$hold.job.tmp" "$hold.job"
        while [ -e "$hold" ]; do sleep 1; done
    fi
    ;;
esac
exec "$@"
