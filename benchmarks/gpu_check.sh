#!/usr/bin/env bash
# One pass over everything that needs a CUDA GPU, for a machine borrowed for a few minutes:
#
#   bash benchmarks/gpu_check.sh [LOG_DIR]          # logs and result CSVs go to LOG_DIR (default outputs/gpu_check)
#
# 1. benchmarks/gemm_shapes.py: cuBLAS rates of the single-pass loss's GEMM shapes (decides its chunk and
#    sub-block sizes; about a minute);
# 2. the kernel tests on CUDA (real Triton compilation, bf16 included; on CPU they run in the interpreter),
#    with the fp32-accumulation path the GPU took (kernels.opd.last_addmm_path) printed after them;
# 3. benchmarks/opd_loss.py at its GPU defaults, N = 32768 first (the size the targets are set at), all
#    methods including the single-pass paths, plus the float64 accuracy table and a shape change;
# 4. benchmarks/real_model.py: a random Qwen3 of Qwen3-0.6B's dimensions with the real Qwen3 template trains
#    REAL_STEPS GRPO steps on the bandit (trials of ~4k tokens at REAL_TURN_TOKENS=512), full fine-tune and
#    LoRA, printing peak memory and generation/training tokens/s;
# 5. the trainer tests on CUDA (bf16 policy, TRL on the GPU, OPD with the Triton kernels);
# 6. optionally (TIP_STEPS=<n>) benchmarks/tip_repro.py --scale gpu with n steps and seed 0;
# 7. where vllm imports: the vLLM agent and the generation-backend contract (colocated engine), then the same
#    contract against a `trl vllm-serve` of the tiny model started on this GPU (VLLM_SERVER=0 skips it).
# STAGES="opd_loss real_model" runs only those, in that order (names as above: gemm_shapes kernel_tests
# opd_loss real_model trainer_tests tip_repro vllm); stages 1-3 (the kernels) fit in 8 minutes. Each stage
# has its own time limit (seconds: GEMM_S, KERNEL_S, BENCH_S, REAL_S, TRAINER_S, TIP_S, VLLM_S), so a slow
# stage cannot starve the next, and every stage's output lands in LOG_DIR as it runs.
#
# On a machine without network access, WHEEL_DIR=<folder of wheels> installs them into a private
# site folder first (the image's torch and Triton stay as they are).
set -u
LOG_DIR=${1:-outputs/gpu_check}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TRL_EXPERIMENTAL_SILENCE=1
PYTHON=${PYTHON:-python3}

if [ -n "${WHEEL_DIR:-}" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
        "$WHEEL_DIR"/*.whl || exit 1
    export PYTHONPATH=/tmp/gpu_check_site:${PYTHONPATH:-}
fi

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, log to LOG_DIR/NAME.log, report the exit status
    local name=$1 seconds=$2
    shift 2
    local started=$SECONDS
    echo "=== $name (limit ${seconds} s)"
    timeout --signal=INT --kill-after=15 "$seconds" "$@" >"$LOG_DIR/$name.log" 2>&1
    local status=$?
    echo "=== $name: exit $status after $((SECONDS - started)) s"
    tail -n "${TAIL_LINES:-25}" "$LOG_DIR/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv >"$LOG_DIR/gpu.txt" 2>&1
"$PYTHON" - >>"$LOG_DIR/gpu.txt" 2>&1 <<'EOF'
import importlib.metadata as metadata
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
for package in ("triton", "transformers", "trl", "liger-kernel", "datasets", "pyarrow", "peft", "accelerate", "gymnasium", "hydra-core"):
    try:
        print(package, metadata.version(package))
    except metadata.PackageNotFoundError:
        print(package, "not installed")
EOF
cat "$LOG_DIR/gpu.txt"

gemm_shapes() {
    TAIL_LINES=30 stage gemm_shapes "${GEMM_S:-90}" "$PYTHON" -m benchmarks.gemm_shapes --csv "$LOG_DIR/gemm_shapes.csv"
}
kernel_tests() {
    stage kernel_tests "${KERNEL_S:-120}" "$PYTHON" -m pytest -q -x -p no:cacheprovider --durations=5 tests/kernels
    "$PYTHON" -c "import torch, kernels; from kernels import opd; h = torch.randn(64, 64, device='cuda', dtype=torch.bfloat16)
w = torch.randn(4096, 64, device='cuda', dtype=torch.bfloat16); opd.WORKSPACE_BYTES = 64 * 1024
kernels.distill_loss(h.requires_grad_(), w, h, w, impl='triton'); print('addmm fp32 path:', opd.last_addmm_path)" \
        2>&1 | tail -n 2
}
opd_loss() {  # naive, checkpoint and ours_torch were measured on 2026-11-27 and would cost a minute: left out here
    TAIL_LINES=80 stage opd_loss "${BENCH_S:-270}" "$PYTHON" -m benchmarks.opd_loss --tokens "${BENCH_TOKENS:-32768,16384,4096}" \
        --methods "${BENCH_METHODS:-liger_chunked,trl_chunked,liger_fused_jsd,ours,ours+select,token_stats,ours_cublas,ours_cublas_fp32,ours_cublas+select,token_stats_cublas,ours_cublas+chunk_select}" \
        --accuracy --shape-change --csv "$LOG_DIR/opd_loss.csv"
}
real_model() {  # a random Qwen3 of Qwen3-0.6B's dimensions with the real template: GRPO steps, full and LoRA
    TAIL_LINES=12 stage real_model "${REAL_S:-300}" "$PYTHON" -m benchmarks.real_model --preset 0.5b \
        --turn-tokens "${REAL_TURN_TOKENS:-512}" --steps "${REAL_STEPS:-3}" --csv "$LOG_DIR/real_model.csv"
}
trainer_tests() {
    stage trainer_tests "${TRAINER_S:-150}" "$PYTHON" -m pytest -q -x -p no:cacheprovider --durations=5 tests/trainers
}
tip_repro() {  # only with TIP_STEPS=<n>
    [ -n "${TIP_STEPS:-}" ] || return 0
    TAIL_LINES=20 stage tip_repro "${TIP_S:-300}" "$PYTHON" -m benchmarks.tip_repro --scale gpu --seeds 0 \
        --steps "$TIP_STEPS" --output-dir /tmp/tip_repro
    cp benchmarks/results/tip_repro.csv benchmarks/results/tip_repro_gpu.png "$LOG_DIR"/ 2>/dev/null
}
vllm() {
    if ! "$PYTHON" -c "import vllm" >/dev/null 2>&1; then
        echo "=== vllm: not importable here, its stages are skipped (pip install '.[vllm]' on a CUDA machine)"
        return 0
    fi
    stage vllm_colocate "${VLLM_S:-300}" "$PYTHON" -m pytest -q -x -rs -p no:cacheprovider --durations=5 \
        tests/agents/test_vllm_agent.py tests/trainers/test_generation_contract.py
    [ "${VLLM_SERVER:-1}" != 0 ] || return 0
    TINY=$("$PYTHON" -c "from agents import tiny_model_path; print(tiny_model_path())")
    PORT=${VLLM_PORT:-8123}
    "$PYTHON" -m trl.cli.main vllm-serve --model "$TINY" --port "$PORT" --gpu_memory_utilization 0.15 \
        --max_model_len 2048 >"$LOG_DIR/vllm_server.log" 2>&1 &
    local server_pid=$!
    for _ in $(seq 120); do  # the server loads and compiles for up to two minutes
        "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" \
            >/dev/null 2>&1 && break
        sleep 1
    done
    ICL_ARENA_VLLM_SERVER=127.0.0.1:$PORT stage vllm_server "${VLLM_S:-300}" "$PYTHON" -m pytest -q -x -rs \
        -p no:cacheprovider tests/trainers/test_generation_contract.py -k vllm_server
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
}

for name in ${STAGES:-gemm_shapes kernel_tests opd_loss real_model trainer_tests tip_repro vllm}; do
    case $name in
        gemm_shapes|kernel_tests|opd_loss|real_model|trainer_tests|tip_repro|vllm) "$name" ;;
        *) echo "=== unknown stage $name (allowed: gemm_shapes kernel_tests opd_loss real_model trainer_tests tip_repro vllm)"; exit 2 ;;
    esac
done
echo "=== done"
