# A throwaway single-node SLURM cluster for CI (sourced by workflows/slurm_ci.sh): munged,
# slurmctld and slurmd with every file in one private folder, no cgroups (proctrack/linuxproc,
# task/none), no accounting database, the node declared with the host's cores and memory.
#   source workflows/slurm_cluster.sh; cluster_start DIR [GPUS]; ...; cluster_stop
# GPUS > 0 declares that many `gpu` GRES on the node (no devices behind them: the requests of
# workflows/profiles/slurm-gpu are scheduled, the jobs themselves run on the CPU).
# Needs Debian's slurm-wlm and munge, and root (the daemons run as root; so do the jobs).
# /etc/slurm/slurm.conf becomes a link to DIR/slurm.conf while the cluster runs (removed by
# cluster_stop): the executor plugin's job step clears SLURM_CONF before its inner `srun`, which
# then reads the default path, as on any real cluster. A machine that already has that file (its
# own Slurm) is refused.

CLUSTER_PIDS=()
CLUSTER_DIR=""
CLUSTER_CONF_LINK=/etc/slurm/slurm.conf

cluster_start() {
    local dir=$1 gpus=${2:-0} cpus mem_mb gres="" i
    if [ -e "$CLUSTER_CONF_LINK" ] || [ -L "$CLUSTER_CONF_LINK" ]; then
        echo "slurm: $CLUSTER_CONF_LINK exists: the host has its own Slurm;" \
            "the throwaway cluster runs only where there is none" >&2
        return 1
    fi
    CLUSTER_DIR=$dir
    mkdir -p "$dir/state" "$dir/spool" "$dir/logs"
    chmod 700 "$dir"
    cpus=$(nproc)
    # The node declares at least 32 GB: the profiles ask up to 16 GB per job, and memory is not
    # enforced without cgroups, so a smaller CI machine still schedules them.
    mem_mb=$(awk '/^MemTotal:/ {m = int($2 / 1024); print (m > 32000 ? m : 32000)}' /proc/meminfo)
    mungekey -c -k "$dir/munge.key"
    munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
        --pid-file="$dir/munged.pid" --log-file="$dir/logs/munged.log" \
        --seed-file="$dir/munged.seed"
    CLUSTER_PIDS+=("$(cat "$dir/munged.pid")")
    if [ "$gpus" -gt 0 ]; then
        gres="Gres=gpu:$gpus"
        echo "NodeName=ci Name=gpu Count=$gpus File=/dev/null" >"$dir/gres.conf"
    fi
    cat >"$dir/slurm.conf" <<EOF
ClusterName=celltextci
SlurmctldHost=localhost
SlurmctldPort=${CELLTEXT_SLURMCTLD_PORT:-16817}
SlurmdPort=${CELLTEXT_SLURMD_PORT:-16818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/logs/slurmctld.log
SlurmdLogFile=$dir/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=300
$([ "$gpus" -gt 0 ] && echo GresTypes=gpu)
NodeName=ci NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb $gres State=UNKNOWN
PartitionName=ci Nodes=ci Default=YES MaxTime=INFINITE State=UP
EOF
    mkdir -p "$(dirname "$CLUSTER_CONF_LINK")"
    ln -s "$dir/slurm.conf" "$CLUSTER_CONF_LINK"
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -i
    slurmd -N ci
    for i in $(seq 1 60); do
        [ -s "$dir/slurmctld.pid" ] && [ -s "$dir/slurmd.pid" ] && break
        sleep 0.5
    done
    CLUSTER_PIDS+=("$(cat "$dir/slurmctld.pid")" "$(cat "$dir/slurmd.pid")")
    for i in $(seq 1 60); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            echo "slurm: node ci idle ($cpus CPUs, $mem_mb MB declared, ${gpus} gpu GRES), $(sinfo -V)"
            return 0
        fi
        sleep 0.5
    done
    echo "slurm: the node did not come up; logs in $dir/logs" >&2
    tail -n 20 "$dir"/logs/*.log >&2
    return 1
}

cluster_stop() {
    local pid i env
    if [ ${#CLUSTER_PIDS[@]} -gt 1 ]; then
        # Jobs first: a job's slurmstepd outlives slurmd.
        scancel --partition=ci 2>/dev/null || true
        for i in $(seq 1 60); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for pid in "${CLUSTER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${CLUSTER_PIDS[@]}"; do
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
    # A cancelled job's processes can outlive their slurmstepd: find them by this cluster's
    # SLURM_CONF and a SLURM_JOB_ID in their environment, and end them.
    if [ -n "$CLUSTER_DIR" ]; then
        for env in /proc/[0-9]*/environ; do
            pid=${env#/proc/}
            pid=${pid%/environ}
            if grep -qzx "SLURM_CONF=$CLUSTER_DIR/slurm.conf" "$env" 2>/dev/null &&
                grep -qz "^SLURM_JOB_ID=" "$env" 2>/dev/null; then
                kill -9 "$pid" 2>/dev/null || true
            fi
        done
    fi
    if [ -n "$CLUSTER_DIR" ] && [ "$(readlink "$CLUSTER_CONF_LINK")" = "$CLUSTER_DIR/slurm.conf" ]; then
        rm -f "$CLUSTER_CONF_LINK"
    fi
}
