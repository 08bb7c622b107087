"""scripts/agreement.py on a tiny digits run: the teacher agrees with itself,
the figures match a direct computation, and bad input is refused."""
import subprocess
import sys
from pathlib import Path

import numpy as np

import minikd
from minikd.data import load_dataset, to_float

ROOT = Path(__file__).resolve().parents[2]


def run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True,
                          text=True, timeout=240)


def logits_of(path, x):
    return minikd.load(path).logits(x)


def test_agreement_on_a_digits_run(tmp_path):
    out = tmp_path / "run"
    proc = run("reproduce.py", "--dataset", "digits", "--backend", "numpy", "--epochs", "2",
               "--stages", "teacher,distilled", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run("agreement.py", "--dataset", "digits", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [r.split() for r in proc.stdout.splitlines() if not r.startswith("-")]   # the table less its rules
    assert lines[0][:2] == ["model", "split"]
    rows = {(r[0], r[1]): r[2:] for r in lines[1:]}
    assert rows[("teacher.npz", "test")][1:3] == ["1.0000", "0.000"]
    errors, agree, rms = rows[("distilled_seed0.npz", "test")][:3]

    data = load_dataset("digits")  # the digits test split, as the script builds it
    x, y = to_float(data.x_test, np), np.asarray(data.y_test)
    zt, zs = logits_of(out / "teacher.npz", x), logits_of(out / "distilled_seed0.npz", x)
    assert int(errors) == int((zs.argmax(1) != y).sum())
    assert abs(float(agree) - float((zs.argmax(1) == zt.argmax(1)).mean())) < 1e-4
    c = lambda z: z - z.mean(1, keepdims=True)  # noqa: E731
    assert abs(float(rms) - float(np.sqrt(((c(zs) - c(zt)) ** 2).mean()))) < 1e-3


def test_agreement_refuses_bad_input(tmp_path):
    proc = run("agreement.py", "--dataset", "digits")
    assert proc.returncode == 1 and "--out" in proc.stderr
    proc = run("agreement.py", "--dataset", "digits", "--out", str(tmp_path))
    assert proc.returncode == 1 and "no student checkpoints" in proc.stderr
    bad = tmp_path / "x_seed0.npz"
    bad.write_bytes(b"not a checkpoint")
    proc = run("agreement.py", "--dataset", "digits", "--teacher", str(bad), str(bad))
    assert proc.returncode == 1 and "x_seed0.npz" in proc.stderr and "Traceback" not in proc.stderr
