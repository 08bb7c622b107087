"""The mythical-digit experiment: transfer-set filtering and bias-shift
correction on hand-made inputs whose right answers are obvious, then the whole
script on scikit-learn's digits (seconds)."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import minikd
from minikd.data import load_dataset, train_val_split
from minikd.checkpoints import CheckpointError, load_teacher, read_checkpoint
from minikd.experiments.stats import wilson_interval
from minikd.experiments.transfer import (ShiftCurve, apply_bias_shift, best_bias_shift, class_counts,
                                         filter_transfer_set, per_class_errors, shift_report)

ROOT = Path(__file__).resolve().parents[2]
# One BLAS thread: on a busy 2-core machine, threads that spin-wait on each
# other make small products ~20x slower.
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


# --------------------------------------------------------------------------- transfer set
def test_filter_drops_every_row_of_a_class_and_keeps_order():
    y = np.array([0, 3, 1, 3, 7, 8, 3, 2])
    rows = filter_transfer_set(y, drop=[3])
    assert rows.tolist() == [0, 2, 4, 5, 7]
    assert 3 not in y[rows]


def test_filter_keeps_only_the_named_classes():
    y = np.array([0, 3, 1, 3, 7, 8, 3, 2, 8])
    rows = filter_transfer_set(y, keep=[8, 7])
    assert rows.tolist() == [4, 5, 8]
    assert class_counts(y[rows], 10) == [0, 0, 0, 0, 0, 0, 0, 1, 2, 0]


def test_filter_selects_images_labels_and_soft_targets_alike():
    """One index array for all three, so a row's image, label and teacher logits stay together."""
    y = np.arange(20) % 10
    x = np.arange(20)[:, None] * np.ones((1, 4))
    soft = np.arange(20)[:, None] * np.ones((1, 10))
    rows = filter_transfer_set(y, drop=[3])
    assert (x[rows][:, 0] == soft[rows][:, 0]).all() and (x[rows][:, 0] % 10 == y[rows]).all()


def test_filter_refuses_bad_requests():
    y = np.array([0, 1, 2, 3, 3])
    with pytest.raises(ValueError, match="exactly one"):
        filter_transfer_set(y)
    with pytest.raises(ValueError, match="exactly one"):
        filter_transfer_set(y, drop=[3], keep=[1])
    with pytest.raises(ValueError, match="do not occur"):
        filter_transfer_set(y, keep=[5])
    with pytest.raises(ValueError, match="empty"):
        filter_transfer_set(y, drop=[0, 1, 2, 3])


# --------------------------------------------------------------------------- bias shifts
def biased_logits(n_per_class=50, n_classes=4, low_class=3, bias=-4.0, seed=0):
    """Logits 3 * onehot(y) + noise in [-0.1, 0.1], with ``bias`` added to one class.

    With bias -4, a row of that class has its own logit near -1 and the others
    near 0, so it is right once the shift exceeds about 1 (0.8 to 1.2); any
    other row has its own logit near 3 and that class's near -4, so it stays
    right while the shift is below about 7 (6.8 to 7.2). Every shift in about
    (1.2, 6.8) is perfect, and the middle is 4."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    z = 3.0 * np.eye(n_classes)[y] + rng.uniform(-0.1, 0.1, (len(y), n_classes))
    z[:, low_class] += bias
    return z, y


def test_raising_a_too_low_bias_fixes_its_class():
    z, y = biased_logits()
    assert per_class_errors(z, y, 4).tolist() == [0, 0, 0, 50]   # every 3 lost to its bias
    shift, errors = best_bias_shift(z, y, [3])
    assert errors == 0
    assert abs(shift - 4.0) < 0.3                                  # the middle of the perfect interval
    assert per_class_errors(apply_bias_shift(z, [3], shift), y, 4).sum() == 0
    curve = ShiftCurve.fit(z, y, [3])
    assert curve.errors_at(0.0) == 50 and curve.errors_at(0.7) == 50  # not enough yet
    assert curve.errors_at(7.5) == 150                             # too much: everything is a 3


def test_lowering_two_inflated_classes():
    """The 7s-and-8s case: two classes' biases too high, the right shift is negative."""
    z, y = biased_logits(n_classes=5, low_class=3, bias=0.0)
    z[:, [1, 2]] += 5.0
    shift, errors = best_bias_shift(z, y, [1, 2])
    assert errors == 0 and -8.0 < shift < -2.0
    report = shift_report(z, y, [1, 2], shift, focus=[0, 3, 4])
    assert report["errors"] == 0 and report["n_focus"] == 150
    before = shift_report(z, y, [1, 2], 0.0, focus=[0, 3, 4])
    assert before["errors_on_focus"] == 150 and before["predicted_focus"] == 0


def test_no_correction_when_none_is_needed():
    z, y = biased_logits(bias=0.0)
    assert best_bias_shift(z, y, [3]) == (0.0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_exact_curve_equals_brute_force(seed):
    """The sorted-threshold curve gives, at every shift, the errors that
    adding the shift and taking the arg-max gives."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((300, 6)) * 2
    y = rng.integers(0, 6, 300)
    classes = sorted(rng.choice(6, size=1 + seed % 3, replace=False).tolist())
    curve = ShiftCurve.fit(z, y, classes)
    for s in rng.uniform(-8, 8, 200):
        brute = int((apply_bias_shift(z, classes, s).argmax(1) != y).sum())
        assert curve.errors_at(s) == brute
    s_best, e_best = curve.best()
    grid = np.linspace(-10, 10, 4001)
    brute_min = min(int((apply_bias_shift(z, classes, s).argmax(1) != y).sum()) for s in grid)
    assert e_best <= brute_min
    assert int((apply_bias_shift(z, classes, s_best).argmax(1) != y).sum()) == e_best


def test_shift_report_counts_predictions_of_the_focus_class():
    z, y = biased_logits()
    rep = shift_report(z, y, [3], 100.0, focus=[3])        # everything becomes a 3
    assert rep["predicted_focus"] == 200 and rep["errors_on_focus"] == 0 and rep["errors"] == 150


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and abs((lo + hi) / 2 - 0.5) < 1e-9
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_a_teacher_of_another_dataset_or_size_is_refused(tmp_path):
    from types import SimpleNamespace

    from minikd.checkpoints import save_checkpoint
    from minikd.train import StageConfig, Trainer
    cfg = StageConfig("teacher", (64, 8, 8, 10), epochs=1, image_shape=(8, 8))
    x = np.zeros((4, 64), np.float32)
    y = np.zeros(4, np.int32)
    path = tmp_path / "teacher.npz"
    save_checkpoint(path, Trainer(cfg, np, x, y, x, y), {"dataset": "digits"})
    digits = SimpleNamespace(name="digits", n_features=64, n_classes=10)
    model, info = load_teacher(path, np, dataset=digits)
    assert info["sizes"] == [64, 8, 8, 10] and info["saw_all_training_rows"]
    with pytest.raises(CheckpointError, match="--dataset mnist"):
        load_teacher(path, np, dataset=SimpleNamespace(name="mnist", n_features=784, n_classes=10))
    with pytest.raises(CheckpointError, match="needs 100 inputs"):
        load_teacher(path, np, dataset=SimpleNamespace(name="digits", n_features=100, n_classes=10))


# --------------------------------------------------------------------------- the script
# Long enough for every model to learn: the health check stops a stage that ends at chance
# (a 64-wide teacher of 4 epochs, or 30-epoch students, do on digits). About 10 s.
SMALL = ["--dataset", "digits", "--backend", "numpy", "--teacher-width", "200", "--width", "100",
         "--teacher-epochs", "60", "--epochs", "80", "--lr", "1", "--seeds", "2"]


def run_script(*args, check=True):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "mythical_digit.py"), *args],
                          capture_output=True, text=True, env=ENV, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_script_end_to_end_on_digits(tmp_path):
    out = tmp_path / "run"
    proc = run_script(*SMALL, "--out", str(out))
    assert "on validation (ours)" in proc.stdout and "on test (info only)" in proc.stdout
    assert proc.stdout.count("claim:") == 4 and "paper (on test)" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    omit, only = res["experiments"]["omit"], res["experiments"]["only"]
    assert omit["transfer_class_counts"][3] == 0 and omit["n_transfer"] == sum(omit["transfer_class_counts"])
    assert [i for i, c in enumerate(only["transfer_class_counts"]) if c] == [7, 8]
    assert res["config"]["n_train_split"] + res["config"]["n_validation"] == 1437
    assert omit["n_transfer"] < res["config"]["n_train_split"]
    for exp in (omit, only):
        assert len(exp["runs"]) == 2 and len(exp["verdicts"]) == 2
        for run in exp["runs"]:
            t = run["test"]
            assert set(t) == {"none", "validation", "test_optimal", "paper_shift"}
            assert t["none"]["shift"] == 0.0 and t["validation"]["shift"] == run["shift_validation"]
            assert t["test_optimal"]["errors"] <= min(t["none"]["errors"], t["validation"]["errors"])
            assert sum(t["none"]["per_class"]) == t["none"]["errors"]
    assert only["runs"][0]["test"]["paper_shift"]["shift"] == -7.6
    assert (out / "mythical_digit.png").stat().st_size > 10_000
    csv_lines = (out / "mythical_digit.csv").read_text().splitlines()
    assert csv_lines[0].startswith("experiment,seed,shift_chosen_on,shift") and len(csv_lines) == 1 + 2 * 2 * 4
    assert (out / "teacher.npz").exists() and (out / "omit3" / "distilled_seed1.npz").exists()

    # Each student names its teacher by the full SHA-256 (64 hex digits) of the float32 logits it
    # learned from: the teacher's on the training split -- the same name reproduce.py gives.
    digits = load_dataset("digits")
    train_rows = train_val_split(len(digits.y_train))[0]
    with threadpool_limits(limits=1, user_api="blas"):   # as the script ran (ENV): float32 sums follow the threads
        logits = minikd.load(out / "teacher.npz").logits(digits.x_train[train_rows])
    named = read_checkpoint(out / "omit3" / "distilled_seed0.npz")[0]["config"]["extra"]["teacher_soft_targets"]
    assert named == hashlib.sha256(np.ascontiguousarray(logits, dtype=np.float32).tobytes()).hexdigest()

    # A rerun reuses every finished model and gives the same numbers.
    again = run_script(*SMALL, "--out", str(out))
    res2 = json.loads((out / "results.json").read_text())
    assert res2["experiments"]["omit"]["summary"] == omit["summary"]
    assert "note: the teacher" not in again.stderr

    # A saved teacher passed with --teacher (one that saw every training row is noted).
    other = tmp_path / "other"
    proc = run_script(*SMALL, "--seeds", "1", "--experiments", "omit", "--teacher", str(out / "teacher.npz"),
                      "--out", str(other))
    res3 = json.loads((other / "results.json").read_text())
    assert res3["teacher"]["path"] == str(out / "teacher.npz") and list(res3["experiments"]) == ["omit"]

    # Students distilled from one teacher are never reused under another.
    proc = run_script(*SMALL, "--teacher-epochs", "61", "--out", str(out), check=False)
    assert proc.returncode == 1 and "teacher_soft_targets" in proc.stderr and "another --out" in proc.stderr


def test_script_refuses_bad_flags(tmp_path):
    proc = run_script(*SMALL, "--omit", "12", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "--omit" in proc.stderr and "outside 0..9" in proc.stderr
    proc = run_script(*SMALL, "--teacher", str(tmp_path / "missing.npz"), "--out", str(tmp_path), check=False)
    assert proc.returncode == 1 and "missing.npz does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
