"""The MNIST variants a user can build (IDX folders that load as --dataset idx) and the
stability trace of scripts/stability.py."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minikd.data import load_dataset
from minikd.experiments import stability, variants
from minikd.train import StageConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 28, 28)).astype(np.uint8)
    y = np.arange(60) % 10
    return x, y.astype(np.uint8), x[:20].copy(), y[:20].astype(np.uint8)


@pytest.mark.parametrize("name", variants.VARIANTS)
def test_each_variant_round_trips_through_idx(tmp_path, tiny, name):
    parts = variants.transform(name, *tiny)
    variants.write_idx_folder(tmp_path / name, *parts)
    ds = load_dataset("idx", data_dir=str(tmp_path / name))
    np.testing.assert_array_equal(ds.x_train, parts[0])
    np.testing.assert_array_equal(ds.y_test, parts[3])
    assert ds.n_classes == (5 if name == "fewer" else 10)


def test_the_transforms_are_what_they_say(tiny):
    x, y, xt, yt = tiny
    assert np.array_equal(variants.transform("inverted", *tiny)[0], 255 - x)
    assert np.array_equal(variants.transform("rotated", *tiny)[0][:, 0, :], x[:, :, -1])
    noisy = variants.transform("noisy", *tiny)[0]
    assert 0.1 < (noisy != x).mean() < 0.25                     # 20% replaced, some by the same value
    few = variants.transform("fewer", *tiny)
    assert set(few[1]) == {0, 1, 2, 3, 4} and len(few[1]) == 30
    shuffled = variants.transform("shuffled", *tiny)[0]
    assert sorted(shuffled[0].ravel()) == sorted(x[0].ravel()) and not np.array_equal(shuffled, x)


def test_gradient_sizes_at_initialisation():
    """Hard: sqrt(1 - 1/C) per row; soft: T (u - q), which a uniform teacher makes 0."""
    cfg = StageConfig("distilled", (4, 3), epochs=1, temperature=20.0)
    labels = np.array([0, 1, 2])
    g = stability.gradient_sizes(np.zeros((3, 3), np.float32), labels, cfg)
    assert g["hard"] == pytest.approx(np.sqrt(2 / 3)) and g["soft"] == pytest.approx(0.0, abs=1e-12)
    big = np.eye(3, dtype=np.float32)[labels] * 60.0
    g = stability.gradient_sizes(big, labels, cfg)
    assert g["soft"] > g["hard"] and g["combined"] > g["soft"]


def test_dead_fractions_count_the_units_that_are_zero_for_every_row():
    """Layer 1: two of its four units are dead by construction (weights and bias pushing them below 0 for
    every non-negative input); layer 2 reads them. The trace's numbers come from the health check's probe."""
    from minikd.engine.layers import mlp
    model = mlp((3, 4, 2, 2), rng=np.random.default_rng(0), xp=np, dtype="float64")
    dense = model.dense_layers()
    dense[0].params["W"][:, :2] = -1.0
    dense[0].params["b"][:2] = -0.5
    x = np.random.default_rng(1).random((50, 3))
    by_hand, h = [], x
    for layer in model.layers:
        h = layer.forward(h, train=False)
        if type(layer).__name__ == "ReLU":
            by_hand.append(float((h.max(axis=0) <= 0).mean()))
    assert by_hand[0] == 0.5
    assert stability.dead_fractions(model, x) == pytest.approx(by_hand, abs=1e-12)


def test_the_trace_runs_on_digits(tmp_path):
    out = tmp_path / "t"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--backend", "numpy", "--dataset",
                    "digits", "--epochs", "2", "--stages", "teacher", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "stability.py"), "--backend", "numpy",
                           "--dataset", "digits", "--teacher", str(out / "teacher.npz"), "--epochs", "2",
                           "--grad-bound", "none"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "per-row logit gradient at initialisation" in proc.stdout and "grad_bound None" in proc.stdout
    assert proc.stdout.count("dead ReLUs per layer") == 2
