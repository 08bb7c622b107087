"""scripts/bench.py and minikd/profile.py: the floor counts the right products,
the bench runs end to end and writes the figures it documents.
No timing is asserted: a benchmark measures speed, a test checks behaviour."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from minikd.experiments.timing import ProductFloor, epoch_batches, epoch_flops, step_products

ROOT = Path(__file__).resolve().parents[2]


def test_a_step_of_the_teacher_has_8_products():
    """3 forward, 3 weight-gradient, 2 input-gradient (the data needs no gradient)."""
    prods = step_products((784, 1200, 1200, 10), 100)
    assert len(prods) == 8
    assert Counter(p.kind for p in prods) == {"forward": 3, "weight-grad": 3, "input-grad": 2}
    assert not [p for p in prods if p.kind == "input-grad" and p.layer == 0]
    # (m, k, n) of C (m, n) = A (m, k) @ B (k, n)
    assert {(p.kind, p.layer): (p.m, p.k, p.n) for p in prods} == {
        ("forward", 0): (100, 784, 1200), ("forward", 1): (100, 1200, 1200), ("forward", 2): (100, 1200, 10),
        ("weight-grad", 0): (784, 100, 1200), ("weight-grad", 1): (1200, 100, 1200),
        ("weight-grad", 2): (1200, 100, 10),
        ("input-grad", 1): (100, 1200, 1200), ("input-grad", 2): (100, 10, 1200)}
    weights = 784 * 1200 + 1200 * 1200 + 1200 * 10
    assert sum(p.flops for p in prods) == 2 * 100 * (3 * weights - 784 * 1200)


@pytest.mark.parametrize("sizes", [(5, 3), (5, 4, 3), (7, 6, 5, 4, 3)])
def test_3L_minus_1_products_for_L_layers(sizes):
    layers = len(sizes) - 1
    assert len(step_products(sizes, 10)) == 3 * layers - 1


def test_epoch_batches_and_flops():
    assert epoch_batches(60000, 100) == [100] * 600
    assert epoch_batches(250, 100) == [100, 100, 50]
    sizes = (6, 4, 3)
    assert epoch_flops(sizes, 250, 100) == sum(p.flops for b in (100, 100, 50) for p in step_products(sizes, b))


@pytest.mark.parametrize("blas", ["numpy", "fast"])
def test_floor_computes_the_products_it_claims(blas):
    """Each floor product writes op(A) @ op(B) into C: the floor does the real work."""
    floor = ProductFloor((6, 5, 4, 3), 7, 7, blas=blas)
    floor.step(7)
    ops = floor._ops[7]
    assert len(ops) == 8
    for a, b, c, ta, tb in ops:
        want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    assert floor.time_epoch() > 0


def test_profile_restores_what_it_wraps():
    from minikd import train
    from minikd.experiments.timing import profile_epoch
    from minikd.fast import fused_step
    from minikd.train import StageConfig, Trainer
    rng = np.random.default_rng(0)
    x = rng.random((64, 16), dtype=np.float32)
    y = rng.integers(0, 3, 64).astype(np.int32)
    cfg = StageConfig("teacher", (16, 12, 3), epochs=1, batch_size=16, input_dropout=0.2, hidden_dropout=0.5,
                      max_norm=1.0, jitter=1, image_shape=(4, 4))
    before = (fused_step.gemm, fused_step.add_, train.jitter_images)
    for use_fast in (True, False):
        trainer = Trainer(cfg, np, x, y, x, y, fast=use_fast)
        samplers = [layer.sampler for layer in trainer.model.layers if hasattr(layer, "sampler")]
        prof = profile_epoch(trainer, 0)
        assert samplers and samplers == [layer.sampler for layer in trainer.model.layers if hasattr(layer, "sampler")]
        assert prof["step"] == ("fused" if use_fast else "reference")
        # The in-place timers run inside the timed epoch and never nest, so together they
        # fit in it (a timer counting twice breaks this), and each one ran.
        in_place = [s for _, s, how in prof["rows"] if how == "in place"]
        assert in_place and all(s > 0 for s in in_place)
        assert sum(in_place) <= prof["epoch_sec"]
        assert [name for name, _, how in prof["rows"] if how == "rest"] == ["Python/other"]
        assert not {"loss_and_grad", "kl_by_batch", "epoch_rows"} & set(vars(trainer))
    assert (fused_step.gemm, fused_step.add_, train.jitter_images) == before


def _positive(x):
    return isinstance(x, (int, float)) and x > 0


def test_bench_runs_end_to_end_on_digits(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--dataset", "digits", "--backend", "numpy",
           "--reps", "1", "--train-size", "300", "--settle", "0", "--breakdown", "--torch",
           "--memory-of-reproduce", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "x floor" in proc.stdout and "where one teacher epoch goes" in proc.stdout
    res = json.loads(out.read_text())

    assert res["config"]["n_train"] == 300 and res["config"]["dataset"] == "digits"
    assert set(res["models"]) == {"teacher", "student", "distilled"}
    for model, m in res["models"].items():
        assert m["products_per_step"] == 8
        assert _positive(m["flops_per_epoch"])
        assert set(m["steps"]) == {"fused", "reference"}
        for step, s in m["steps"].items():
            assert s["available"], (model, step)
            assert s["blas"] == ("fast" if step == "fused" else "numpy")
            for key in ("sec_per_epoch", "images_per_sec", "floor_sec", "floor_gflops", "ratio_to_floor"):
                assert _positive(s[key]), (model, step, key)
            assert len(s["sec_per_epoch_runs"]) == len(s["floor_sec_runs"]) == 1
            assert np.isfinite(s["last_loss"])
            assert _positive(s["memory"]["allocated_peak_mib"])
            assert _positive(s["memory"]["process_peak_rss_mib_so_far"])
            assert s["device_ops_per_step"] is None   # only the CuPy stand-in counts launches
        # the fused step is the reference step rearranged: same loss
        assert m["steps"]["fused"]["last_loss"] == pytest.approx(m["steps"]["reference"]["last_loss"], rel=1e-4)
    assert set(res["distilled_over_student"]) == {"fused", "reference"}
    assert all(_positive(v) for v in res["distilled_over_student"].values())
    assert set(res["distilled_over_student_unpaired"]) == {"fused", "reference"}
    for step in ("fused", "reference"):
        pairs = res["models"]["distilled"]["steps"][step]["paired_with_student"]
        assert len(pairs) == 1  # one per repetition
        assert pairs[0]["ratio"] == pytest.approx(pairs[0]["distilled_sec"] / pairs[0]["student_sec"])
        assert res["distilled_over_student"][step] == pytest.approx(pairs[0]["ratio"])
    assert _positive(res["soft_targets_sec"])
    assert _positive(res["memory"]["peak_rss_mib"])

    for step in ("fused", "reference"):
        prof = res["breakdown"][step]
        assert prof["step"] == step and _positive(prof["epoch_sec"])
        names = {r["component"] for r in prof["rows"]}
        assert {"jitter", "max-norm", "loss", "dropout (draw masks)", "Python/other"} <= names
        assert ("products" if step == "fused" else "Dense (products + bias)") in names
        in_place = [r for r in prof["rows"] if r["how"] == "in place"]
        assert in_place and all(r["sec"] > 0 for r in in_place)
        assert sum(r["sec"] for r in in_place) <= prof["epoch_sec"]  # nested or double-counted timers fail
        for r in prof["rows"]:
            assert r["percent"] == pytest.approx(100.0 * r["sec"] / prof["epoch_sec"])

    torch = res["torch"]
    if torch["available"]:
        for model in ("teacher", "student", "distilled"):
            assert _positive(torch["models"][model]["sec_per_epoch"])
            assert _positive(res["ours_over_torch"][model]["fused"])
            paired = torch["models"][model]["paired"]
            assert paired["ours_step"] == "fused" and _positive(paired["torch_over_ours"])
            assert [p["torch_over_ours"] for p in paired["pairs"]] == pytest.approx(
                [p["torch_sec"] / p["ours_sec"] for p in paired["pairs"]])
        assert res["targets"]["torch_over_ours_teacher"]["from"] == "paired"
    else:
        assert "PyTorch" in torch["reason"] and "PyTorch: skipped" in proc.stdout

    rep = res["reproduce_memory"]
    assert rep["returncode"] == 0, rep.get("error")
    assert rep["peak_rss_mib"] is None or _positive(rep["peak_rss_mib"])


def test_bench_rejects_bad_flags():
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--dataset", "digits", "--steps", "fast"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--steps" in proc.stderr and "fused" in proc.stderr
