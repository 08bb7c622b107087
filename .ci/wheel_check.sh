#!/usr/bin/env bash
# The wheel as a user gets it: built from this tree, installed (not editable) in a fresh
# virtual environment with its dependencies from the package index, and run from outside
# the repository, so `import minikd` cannot pick up the source tree. It must run the
# command's help, the gradient check and a short digits run, and minikd.load must
# predict with each checkpoint that run wrote the errors results.json reports.
# About a minute and a half on 2 CPU cores, most of it installing NumPy, SciPy and friends.
#
#     bash .ci/wheel_check.sh [PYTHON]     # PYTHON: the interpreter to check (default: python)
#
# The wheel is built and installed by PYTHON's own virtual environment, so only PYTHON's
# standard library (venv, ensurepip) is needed, not a pip installed beside it.
set -euo pipefail
py="${1:-python}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/minikd-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv" || { echo "wheel check: $py cannot make a virtual environment" >&2; exit 1; }
echo "wheel check: $("$work/venv/bin/python" -c 'import sys; print(sys.version.split()[0])') ($py)"

# From a copy of what goes into the wheel: building in the repository would leave a build/
# folder there, whose stale files (a module since deleted) a later wheel would ship.
mkdir "$work/src"
cp -R "$repo/minikd" "$repo/pyproject.toml" "$repo/README.md" "$repo/LICENSE" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$work/venv/bin/python" -m pip wheel "$work/src" --no-deps --quiet -w "$work/wheelhouse"
wheel=("$work"/wheelhouse/minikd-*.whl)
"$work/venv/bin/python" - "${wheel[0]}" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
for wanted in ("minikd/py.typed", "/licenses/LICENSE"):   # the type hints' marker, the licence
    assert any(n.endswith(wanted) for n in names), f"wheel check: {sys.argv[1]} lacks {wanted}"
PY

"$work/venv/bin/python" -m pip install --quiet "${wheel[0]}"
cd "$work"
export PATH="$work/venv/bin:$PATH" MPLBACKEND=Agg
set -x
minikd --help > /dev/null
python -m minikd.gradcheck > gradcheck.txt || { cat gradcheck.txt; exit 1; }
tail -n 1 gradcheck.txt
# paper profile, 10 epochs: long enough to learn (the end-of-stage health check stops a stage at chance)
minikd reproduce --dataset digits --profile paper --epochs 10 --out run 2> run.log || { cat run.log; exit 1; }
python - <<'PY'
import json
from pathlib import Path

import minikd

assert Path(minikd.__file__).is_relative_to(Path.cwd() / "venv"), f"minikd imported from {minikd.__file__}"
data = minikd.load_dataset("digits")
for stage, entries in json.loads(Path("run/results.json").read_text())["models"].items():
    for entry in entries if isinstance(entries, list) else [entries]:
        model = minikd.load(entry["checkpoint"])
        errors = int((model.predict(data.x_test) != data.y_test).sum())
        assert errors == entry["test_errors"], (stage, errors, entry["test_errors"])
        print(f"wheel check: minikd {minikd.__version__}: {stage} loaded from {entry['checkpoint']}, "
              f"{errors} errors, as results.json says")
PY
