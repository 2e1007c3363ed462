#!/usr/bin/env bash
# The GPU checks hellora still owes, in parts that each fit one device call (at most 10 minutes a call; a session
# gets about 15 device-minutes in all, so run them in this order and stop when the budget is spent):
#
#   bash scripts/device/gpu_session.sh tests bench          # doctor, CUDA tests, then hellora bench at OLMoE shapes
#   bash scripts/device/gpu_session.sh bench-more           # Mixtral-8x7B and Qwen3-30B-A3B shapes (fewer layers)
#   bash scripts/device/gpu_session.sh smoke methods        # the GPU smoke recipe end to end; every method's sweep
#   bash scripts/device/gpu_session.sh quant                # cold experts kept / int8 / nf4: CUDA exactness test,
#                                                           # step time and peak CUDA memory at OLMoE and Mixtral
#                                                           # shapes (needs torchao: pip install it from a wheel
#                                                           # carried in .data/wheels/ when the machine is offline)
#   bash scripts/device/gpu_session.sh proxy                # the GPU-sized proxy study (far longer than one call:
#                                                           # it resumes where it stopped, call after call)
#
# Before the call, here:  mkdir -p .data && cp -r ../shared/datasets/{gsm8k,codealpaca} .data/   (and add /.data/
# to .git/info/exclude), then run this through the device machine with carry=[".data"]. `hellora doctor` runs
# first, before any part (doctor.json). Every part writes one file under $OUT (at most 8 come back): a JSON, a
# log, or a .tgz of the run folders without weights. A part that fails is logged and the next part still runs;
# the exit status is the number of failed parts.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-device-out}
DATA=${HELLORA_DATA:-.data}
RUNS=${HELLORA_RUNS:-/tmp/hellora-runs}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
# Each command stops at PART_TIMEOUT seconds (a device call allows 600), so that what a long part
# finished is still packed into $OUT.
PART_TIMEOUT=${PART_TIMEOUT:-540}
hellora() { timeout "$PART_TIMEOUT" python3 -m hellora.cli "$@"; }
python3 - <<'PY'
import torch, transformers, peft, triton
print("torch", torch.__version__, "| transformers", transformers.__version__, "| peft", peft.__version__,
      "| triton", triton.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA")
PY
# First of all: what this GPU will run and whether the Triton expert kernels pass their self-check here
# (versions, device, expert path and why, the check, a few-second micro-bench); one file, doctor.json.
hellora doctor --json 2>&1 >"$OUT/doctor.json" | tail -3; echo "doctor: exit ${PIPESTATUS[0]}"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['expert_path'], r['selfcheck'])" \
    "$OUT/doctor.json" 2>/dev/null

SETUPS=frozen,hellora@reference@unfused,hellora@reference,hellora@torch,hellora@unfused,hellora,lora@reference,lora,peft-lora,peft-attn
pack() {  # pack NAME DIR: run folders without weights, as one file
    tar czf "$OUT/$1.tgz" --exclude='*.safetensors' --exclude='*.bin' -C "$(dirname "$2")" "$(basename "$2")"
}

part_tests() {
    python3 -m pytest tests/gpu tests/kernels -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -5
    return "${PIPESTATUS[0]}"
}
part_bench() {
    hellora bench --model olmoe-1b-7b --layers 0 --setups "$SETUPS" --out "$OUT/bench_olmoe.json" 2>&1 |
        tee "$OUT/bench_olmoe.txt" | grep -v Warning
    return "${PIPESTATUS[0]}"
}
part_bench-more() {
    hellora bench --model mixtral-8x7b --layers 4 --setups "$SETUPS" --out "$OUT/bench_mixtral.json" &&
    hellora bench --model qwen3-30b-a3b --layers 12 --setups "$SETUPS" --out "$OUT/bench_qwen3.json"
}
part_quant() {
    python3 -c "import torchao" 2>/dev/null || python3 -m pip install -q --no-deps "$DATA"/wheels/torchao-*.whl ||
        { echo "quant: torchao is not installed and no wheel in $DATA/wheels"; return 1; }
    python3 -m pytest tests/gpu/test_cuda_quant.py -q -p no:cacheprovider 2>&1 | tee "$OUT/quant_tests.log" | tail -3
    local QSETUPS=frozen,hellora,hellora@int8,hellora@nf4,lora,lora@nf4
    hellora bench --model olmoe-1b-7b --layers 4 --setups "$QSETUPS" --out "$OUT/bench_quant_olmoe.json" &&
    hellora bench --model mixtral-8x7b --layers 2 --setups "$QSETUPS" --out "$OUT/bench_quant_mixtral.json"
}
part_smoke() {
    hellora train recipes/smoke/olmoe-reduced-gsm8k.yaml data.train="$DATA/gsm8k/train.jsonl" \
        eval.data.gsm8k="$DATA/gsm8k/test.jsonl" output_dir="$RUNS/smoke" 2>&1 | tee "$RUNS/smoke.log" | tail -25
    local rc=${PIPESTATUS[0]}
    cp "$RUNS/smoke.log" "$RUNS/smoke/" 2>/dev/null; ls -la "$RUNS/smoke" "$RUNS/smoke/adapter" 2>/dev/null
    pack smoke "$RUNS/smoke"; return "$rc"
}
part_methods() {
    hellora sweep recipes/smoke/methods-olmoe-reduced.yaml --no-progress data.train="$DATA/gsm8k/train.jsonl" \
        eval.data.gsm8k="$DATA/gsm8k/test.jsonl" data.limit=512 2>&1 | tee "$RUNS/methods.log" | tail -40
    local rc=${PIPESTATUS[0]}
    cp "$RUNS/methods.log" runs/smoke/methods-olmoe-reduced/ 2>/dev/null
    pack methods runs/smoke/methods-olmoe-reduced; return "$rc"
}
part_proxy() {
    hellora proxy --config recipes/proxy/study.yaml --out "$RUNS/proxy" --no-progress \
        "text_files=[$DATA/gsm8k/train.jsonl, $DATA/codealpaca/code_alpaca_2k.json]" 2>&1 | tee "$RUNS/proxy.log" | tail -30
    local rc=${PIPESTATUS[0]}
    cp "$RUNS/proxy.log" "$RUNS/proxy/" 2>/dev/null; pack proxy "$RUNS/proxy"; return "$rc"
}

failed=0
for part in "$@"; do
    echo "=== $part ($(date -u +%H:%M:%S))"
    if ! declare -F "part_$part" >/dev/null; then echo "unknown part $part"; failed=$((failed + 1)); continue; fi
    "part_$part" || { echo "=== $part FAILED"; failed=$((failed + 1)); }
done
echo "=== done, $failed failed part(s)"
exit "$failed"
