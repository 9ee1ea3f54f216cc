#!/usr/bin/env bash
# sciLaMA on a GPU in one command: does `scilama train --device cuda` agree with the CPU, how long
# does a default run take there, and the training runs of docs/scilama.md's pbmc3k table (scored
# afterwards on any machine by `scripts/scilama_eval.py --trained`). Needs no network, no Python
# package beyond python3 itself; a CPU dry run (`--device cpu`, shorter runs) prints the same report.
#
#   scripts/scilama-gpu.sh --bin BIN[.xz] --data DIR --store STORE|FILE.parquet [--device cuda]
#       [--work W] [--name pbmc3k] [--seeds 0,1,2] [--modes store,self] [--parity-epochs 3]
#       [--train-args "..."] [--out FILE.tgz]
#
# 1. parity: the same seed trained for --parity-epochs epochs at dropout 0 on the CPU and on the
#    device (cell embeddings within 1e-3), and the CPU-trained model embedded on both (within 1e-4);
# 2. table runs: `scilama train` at its defaults (plus --train-args) for every seed and gene input
#    (--modes), named as scilama_eval.py names them (NAME.MODE.sS.npy), wall seconds in timings.tsv;
#    the first one (store, first seed) is the timing of a default run;
# 3. everything but the model files is packed into --out after every step, so a run cut short
#    keeps what it finished.
# DIR is a data set folder (matrix.mtx.gz, genes.tsv, cells.tsv) or an .h5ad. To ship a small
# store, export only the data set's rows (the same model, byte for byte; docs/genes.md):
#   celltext genes export --store STORE --input DIR --format parquet --out store.parquet
# The binary must be built with `--features cuda` for --device cuda (docs/gpus.md); BIN.xz is
# unpacked first (python3's lzma), so a stripped, compressed binary can travel.
set -euo pipefail
BIN=target/release/celltext
DATA=""
STORE=""
DEVICE=cuda
WORK=scilama-gpu
NAME=pbmc3k
SEEDS=0,1,2
MODES=store,self
PARITY_EPOCHS=3
TRAIN_ARGS=""
OUTFILE=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --store) STORE="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --work) WORK="$2"; shift 2 ;;
        --name) NAME="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --parity-epochs) PARITY_EPOCHS="$2"; shift 2 ;;
        --train-args) TRAIN_ARGS="$2"; shift 2 ;;
        --out) OUTFILE="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n "$DATA" && -e "$DATA" ]] || { echo "error: --data DIR (a data set folder or .h5ad) is required" >&2; exit 2; }
[[ -n "$STORE" ]] || { echo "error: --store STORE (a gene store prefix or a .parquet export) is required" >&2; exit 2; }
[[ -e "$BIN" ]] || { echo "error: $BIN does not exist (pass --bin)" >&2; exit 2; }
mkdir -p "$WORK"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [[ "$BIN" == *.xz ]]; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$BIN" "$WORK/celltext"
    chmod +x "$WORK/celltext"
    BIN="$WORK/celltext"
fi
# the CUDA libraries of PyTorch's nvidia-* wheels, where the system has none on the library path
if ldd "$BIN" 2>/dev/null | grep -q "not found"; then
    LIBS=$(python3 - <<'EOF' 2>/dev/null || true
import glob, os, site
want = ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10")
dirs = []
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for w in want:
        for f in glob.glob(os.path.join(root, "nvidia", "**", w), recursive=True):
            d = os.path.dirname(f)
            if d not in dirs:
                dirs.append(d)
print(":".join(dirs))
EOF
)
    [[ -n "$LIBS" ]] && export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[[ -x "$BIN" ]] || { echo "error: $BIN is not executable" >&2; exit 2; }

pack() {
    [[ -n "$OUTFILE" ]] || return 0
    tar -czf "$OUTFILE.tmp" -C "$WORK" --exclude='*.scilama_model.safetensors' --exclude=celltext \
        --exclude='store.*' . && mv "$OUTFILE.tmp" "$OUTFILE"
}

{
    echo "celltext sciLaMA device check, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m), $(nproc) CPU threads"
    grep -m1 "model name" /proc/cpuinfo | sed 's/.*: /CPU: /' || true
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /'
    fi
    "$BIN" --version
} | tee "$WORK/report.txt"

if [[ "$STORE" == *.parquet ]]; then
    "$BIN" --quiet genes import "$STORE" --out "$WORK/store" >/dev/null
    STORE="$WORK/store"
fi

# seconds of one command, its output in a log beside it
timed() { # log cmd...
    local log="$1"; shift
    local t0 t1
    t0=$(date +%s.%N)
    if ! "$@" > "$log" 2>&1; then
        echo "error: $* failed; its output:" >&2
        tail -20 "$log" >&2
        pack
        exit 1
    fi
    t1=$(date +%s.%N)
    python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$t1"
}

train=("$BIN" --quiet scilama train -i "$DATA" --genes "$STORE" --species human)
W="$WORK"
echo "parity: seed 0, dropout 0, $PARITY_EPOCHS epochs, on cpu and on $DEVICE" | tee -a "$WORK/report.txt"
s_cpu=$(timed "$W/parity.cpu.log" "${train[@]}" --dropout 0 --epochs "$PARITY_EPOCHS" --seed 0 --device cpu -o "$W/parity.cpu.npy")
s_dev=$(timed "$W/parity.dev.log" "${train[@]}" --dropout 0 --epochs "$PARITY_EPOCHS" --seed 0 --device "$DEVICE" -o "$W/parity.dev.npy")
s_emb=$(timed "$W/parity.embed.log" "$BIN" --quiet scilama embed --model "$W/parity.cpu.scilama_model.safetensors" \
    -i "$DATA" --device "$DEVICE" -o "$W/parity.cpu-model.dev.npy")
python3 "$HERE/npy_diff.py" --tol 1e-3 --label "trained on cpu vs trained on $DEVICE ($s_cpu s, $s_dev s)" \
    "$W/parity.cpu.npy" "$W/parity.dev.npy" | tee -a "$WORK/report.txt"
python3 "$HERE/npy_diff.py" --tol 1e-4 --label "the cpu-trained model embedded on cpu vs on $DEVICE ($s_emb s)" \
    "$W/parity.cpu.npy" "$W/parity.cpu-model.dev.npy" | tee -a "$WORK/report.txt"
pack

printf 'run\tdevice\tseconds\tepochs\n' > "$W/timings.tsv"
IFS=, read -r -a seeds <<< "$SEEDS"
IFS=, read -r -a modes <<< "$MODES"
read -r -a extra <<< "$TRAIN_ARGS"
for s in "${seeds[@]}"; do
    for m in "${modes[@]}"; do
        run="$NAME.$m.s$s"
        secs=$(timed "$W/$run.log" "${train[@]}" --gene-input "$m" --seed "$s" --device "$DEVICE" "${extra[@]}" -o "$W/$run.npy")
        epochs=$(($(wc -l < "$W/$run.scilama_losses.tsv") - 1))
        printf '%s\t%s\t%s\t%s\n' "$run" "$DEVICE" "$secs" "$epochs" >> "$W/timings.tsv"
        echo "$run: $secs s, $epochs epochs on $DEVICE" | tee -a "$WORK/report.txt"
        pack
    done
done
echo "done: $WORK/report.txt, $WORK/timings.tsv${OUTFILE:+, packed in $OUTFILE}"
