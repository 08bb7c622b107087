#!/usr/bin/env bash
# The device check of the CuPy path, in one command (docs/gpu.md):
#
#     bash scripts/gpu_check.sh OUT              # on a CUDA machine with CuPy installed
#     bash scripts/gpu_check.sh OUT --standin    # on any CPU: every part through tests/cupy_standin.py
#
# Offline: installs nothing, downloads nothing. MNIST is read from $MINIKD_DATA_DIR
# when it holds the four files, else the check runs on scikit-learn's bundled digits.
# Parts, each under its own time limit, each failing alone (a failed part is recorded
# and the others still run):
#
#   tests            the CuPy cases of the test suite (pytest -k "cupy and not standin": the
#                    [cupy] half of every xp-parametrised test and the API-list comparison; with
#                    --standin, the [cupy] cases of tests/engine on the stand-in)
#   bench_<model>    bench.py --backend cupy for the teacher, student and distilled student:
#                    seconds per epoch, the on-device matrix-product floor (cuBLAS), and
#                    PyTorch on the same device in the same run when it imports with CUDA
#   paper_<model>    a timed 20-epoch slice of reproduce.py --profile paper per model,
#                    extrapolated to the paper's 3,000 epochs
#
# Writes OUT/gpu_check.json (every figure, one entry per part) and OUT/gpu_check.log
# (every command and its output). Total time limit: 4 minutes (budgets below).
# Exit status 0 when every part passed, 1 otherwise. The interpreter is $PYTHON
# (default: python from PATH), e.g. PYTHON=.venv/bin/python bash scripts/gpu_check.sh OUT.
set -u
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash scripts/gpu_check.sh OUT [--standin]" >&2
    exit 2
fi
OUT=$1
MODE=gpu
if [ "${2:-}" = "--standin" ]; then MODE=standin; elif [ -n "${2:-}" ]; then
    echo "gpu_check.sh: unknown option ${2}: the only option is --standin" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/gpu_check.log"
: > "$LOG"
PYTHON=${PYTHON:-python}
export MPLBACKEND=Agg PYTHONUNBUFFERED=1

if [ "$MODE" = standin ]; then
    RUN=("$PYTHON" tests/cupy_standin.py)          # the stand-in is `cupy` in every child
    TESTS=(tests/engine -k cupy)
    # the bench on 200 images; the paper slices on all the digits, 10 epochs: long enough to learn,
    # since the end-of-stage health check stops a stage that ends at chance
    SIZE=(--train-size 200); PAPER_SIZE=(); BENCH=(--reps 1 --warmup 0 --settle 0); EPOCHS=10
    T_TESTS=120; T_BENCH=60; T_PAPER=60
else
    RUN=("$PYTHON")
    TESTS=(tests -k "cupy and not standin")   # the [cupy] cases and the API lists; not the stand-in's own
    SIZE=(); PAPER_SIZE=(); BENCH=(--reps 2 --warmup 1 --settle 0.1); EPOCHS=20
    T_TESTS=75; T_BENCH=25; T_PAPER=30              # 75 + 3 x 25 + 3 x 30 = 240 s at most
fi
MNIST=${MINIKD_DATA_DIR:-}
if [ -n "$MNIST" ] && { [ -e "$MNIST/train-images-idx3-ubyte.gz" ] || [ -e "$MNIST/train-images-idx3-ubyte" ]; }; then
    DATA=(--data-dir "$MNIST")
else
    DATA=(--dataset digits)
fi

mkdir -p "$OUT/parts"
part() {  # part NAME SECONDS COMMAND...: run it under a time limit, log it, record status and time
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout --kill-after=5 "$limit" "$@" > "$OUT/parts/$name.out" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    cat "$OUT/parts/$name.out" >> "$LOG"
    printf '{"rc": %d, "seconds": %s, "limit": %d, "command": "%s"}\n' "$rc" \
        "$(awk "BEGIN { print $t1 - $t0 }")" "$limit" "$(echo "$*" | sed 's/\\/\\\\/g; s/"/\\"/g')" > "$OUT/parts/$name.status"
    echo "=== $name: exit $rc" | tee -a "$LOG"
}

echo "gpu_check.sh: mode $MODE, data ${DATA[*]}, out $OUT, $(date -u +%FT%TZ)" | tee -a "$LOG"
command -v nvidia-smi > /dev/null && nvidia-smi >> "$LOG" 2>&1

part tests "$T_TESTS" "${RUN[@]}" -m pytest -q -p no:cacheprovider "${TESTS[@]}" --junitxml="$OUT/parts/tests.xml"
for model in teacher student distilled; do
    part "bench_$model" "$T_BENCH" "${RUN[@]}" scripts/bench.py --backend cupy "${DATA[@]}" "${SIZE[@]}" \
        --models "$model" --steps reference --torch "${BENCH[@]}" --out "$OUT/bench" \
        --json "$OUT/parts/bench_$model.json"
done
for model in teacher student distilled; do
    part "paper_$model" "$T_PAPER" "${RUN[@]}" scripts/reproduce.py --backend cupy "${DATA[@]}" "${PAPER_SIZE[@]}" \
        --profile paper --epochs "$EPOCHS" --stages "$model" --out "$OUT/paper"
    [ -e "$OUT/paper/results.json" ] && cp "$OUT/paper/results.json" "$OUT/parts/paper_$model.json"
done

"$PYTHON" - "$OUT" "$MODE" <<'EOF' 2>&1 | tee -a "$LOG"
"""Collect the parts into OUT/gpu_check.json (plain Python: no CuPy needed here)."""
import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, mode = Path(sys.argv[1]), sys.argv[2]
parts_dir = out / "parts"
PAPER_EPOCHS = 3000


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(name, n=1500):
    try:
        return (parts_dir / f"{name}.out").read_text()[-n:]
    except OSError:
        return ""


summary = {"mode": mode, "parts": {}, "environment": None}
names = ["tests"] + [f"{k}_{m}" for k in ("bench", "paper") for m in ("teacher", "student", "distilled")]
for name in names:
    st = load(parts_dir / f"{name}.status") or {"rc": None}
    entry = dict(st, ok=st.get("rc") == 0)
    if st.get("rc") in (124, 137):
        entry["error"] = f"ran past its {st.get('limit')} s limit"
    try:
        if name == "tests":
            root = ET.parse(parts_dir / "tests.xml").getroot()
            suite = root if root.tag == "testsuite" else root.find("testsuite")
            n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
            entry.update(passed=n["tests"] - n["failures"] - n["errors"] - n["skipped"],
                         failed=n["failures"] + n["errors"], skipped=n["skipped"])
            entry["failed_cases"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                                     if c.find("failure") is not None or c.find("error") is not None]
            entry["ok"] = entry["ok"] and entry["failed"] == 0 and entry["passed"] > 0
        elif name.startswith("bench_"):
            model = name.split("_", 1)[1]
            res = load(parts_dir / f"{name}.json")
            step = res["models"][model]["steps"]["reference"]
            entry.update({k: step[k] for k in ("sec_per_epoch", "floor_sec", "ratio_to_floor", "floor_gflops",
                                                "images_per_sec", "blas_name")})
            entry["n_train"] = res["config"]["n_train"]
            torch = res.get("torch") or {}
            if torch.get("available"):
                tm = torch["models"][model]
                entry["torch"] = {"device": torch["device"], "version": torch["version"],
                                  "sec_per_epoch": tm["sec_per_epoch"], "floor_sec": tm["floor_sec"],
                                  "ratio_to_floor": tm["ratio_to_floor"],
                                  "torch_over_ours_paired": tm["paired"]["torch_over_ours"]}
            else:
                entry["torch"] = {"available": False, "reason": torch.get("reason")}
            summary["environment"] = summary["environment"] or res.get("environment")
        elif name.startswith("paper_"):
            model = name.split("_", 1)[1]
            res = load(parts_dir / f"{name}.json")
            m = res["models"][model]
            secs = [h["sec"] for h in m["history"]]
            steady = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]   # epoch 1 compiles kernels
            other = max(0.0, m["wall_seconds"] - sum(secs)) / len(secs)          # evaluation, checkpoints
            entry.update(epochs=len(secs), train_size=m["train_size"], first_epoch_sec=secs[0],
                         steady_sec_per_epoch=steady, other_sec_per_epoch=other,
                         test_errors_after_slice=m["test_errors"], wall_seconds=m["wall_seconds"],
                         extrapolated_3000_epochs_hours=PAPER_EPOCHS * (steady + other) / 3600)
            summary["environment"] = summary["environment"] or res.get("environment")
    except Exception as exc:  # a part that ran but left no usable result
        entry["ok"] = False
        entry.setdefault("error", f"no result ({type(exc).__name__}: {exc})")
    if not entry["ok"]:
        entry["output_tail"] = tail(name)
    summary["parts"][name] = entry

paper = [summary["parts"][f"paper_{m}"] for m in ("teacher", "student", "distilled")]
if all("extrapolated_3000_epochs_hours" in p for p in paper):
    summary["extrapolated_3000_epochs_all_models_hours"] = sum(p["extrapolated_3000_epochs_hours"] for p in paper)
summary["all_ok"] = all(p["ok"] for p in summary["parts"].values())
tmp = out / "gpu_check.json.tmp"
tmp.write_text(json.dumps(summary, indent=2) + "\n")
tmp.replace(out / "gpu_check.json")
for name, p in summary["parts"].items():
    figures = {k: v for k, v in p.items() if isinstance(v, (int, float)) and k not in ("rc", "limit")}
    print(f"{name:18s} {'ok' if p['ok'] else 'FAILED'}  " + "  ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))
print(f"gpu_check: {'all parts passed' if summary['all_ok'] else 'some parts FAILED'}; {out / 'gpu_check.json'}")
sys.exit(0 if summary["all_ok"] else 1)
EOF
exit "${PIPESTATUS[0]}"
