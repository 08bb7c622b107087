"""Kernel launches per training step on the CuPy path (issue 24), counted by the stand-in.

A GPU runs minikd's small products in microseconds; what a step costs there is
mostly the host's overhead of launching each kernel. tests/cupy_standin.py
counts the calls that launch one, by the rule in its docstring (views free),
and these tests hold the plain per-parameter CuPy step to at most 90 (teacher),
58 (student) and 80 (distilled student) launches per step on digits, where
"per step" is everything ``Trainer.train_epoch`` launches, the epoch's setup
included, divided by its number of batches.
"""
import json

import numpy
import pytest

import cupy_standin
from minikd.profiles import profile_configs
from minikd.experiments.stage import prepare_arrays
from minikd.train import Trainer, build_model, teacher_logits

LIMITS = {"teacher": 90, "student": 58, "distilled": 80}


def bench_configs(digits):
    """The bench's recipe on digits (the quick profile, +-1 pixel jitter)."""
    return profile_configs("quick", n_features=digits.n_features, n_classes=digits.n_classes,
                           image_shape=digits.image_shape, jitter=1)


def launches_per_step(cp, digits):
    cfgs = bench_configs(digits)
    arrays = prepare_arrays(digits, cp)
    soft = teacher_logits(build_model(cfgs["teacher"], cp), arrays["x_train"])
    n_batches = -(-arrays["n_train"] // cfgs["teacher"].batch_size)
    out = {}
    for key in LIMITS:
        trainer = Trainer(cfgs[key], cp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                          soft_logits=soft if key == "distilled" else None, fast=True)
        assert trainer.step_impl is None                   # the plain per-parameter step
        before = cupy_standin.launches()
        trainer.train_epoch(0)
        out[key] = (cupy_standin.launches() - before) / n_batches
    return out


def test_launches_per_step_on_digits_are_under_the_limits(cp, digits):
    got = launches_per_step(cp, digits)
    assert all(got[key] <= LIMITS[key] for key in LIMITS), {k: round(v, 2) for k, v in got.items()}


def test_the_bench_reports_the_same_count(cp, digits, tmp_path):
    """scripts/bench.py --backend cupy on the stand-in writes models.<m>.steps.reference.device_ops_per_step;
    on NumPy (and on a real CuPy, which has no counter) the figure is null."""
    from minikd.experiments import bench
    want = launches_per_step(cp, digits)
    path = tmp_path / "bench.json"
    assert bench.main(["--backend", "cupy", "--dataset", "digits", "--reps", "1", "--warmup", "0", "--settle", "0",
                       "--steps", "reference", "--json", str(path), "--out", str(tmp_path)]) == 0
    models = json.loads(path.read_text())["models"]
    assert {m: models[m]["steps"]["reference"]["device_ops_per_step"] for m in LIMITS} == pytest.approx(want)


def test_numpy_has_no_launch_count(digits, tmp_path):
    from minikd.experiments import bench
    path = tmp_path / "bench.json"
    assert bench.main(["--backend", "numpy", "--dataset", "digits", "--reps", "1", "--warmup", "0", "--settle", "0",
                       "--models", "student", "--train-size", "200", "--json", str(path),
                       "--out", str(tmp_path)]) == 0
    steps = json.loads(path.read_text())["models"]["student"]["steps"]
    assert steps["reference"]["device_ops_per_step"] is None and steps["fused"]["device_ops_per_step"] is None


def test_the_step_skips_only_the_first_layers_input_gradient(cp, digits):
    """One product fewer per step (the first layer's dL/dx) and the input dropout's backward:
    count one step's launches of Sequential.backward with and without dL/dx."""
    cfg = bench_configs(digits)["teacher"]
    model = build_model(cfg, cp)
    x = cp.asarray(numpy.random.default_rng(0).random((20, digits.n_features), dtype=numpy.float32))
    dy = cp.ones((20, cfg.sizes[-1]), dtype=cp.float32)
    counts, grads = {}, {}
    for input_grad in (True, False):
        model.forward(x, train=True, rng=cp.random.default_rng(0))
        before = cupy_standin.LAUNCHES.copy()
        dx = model.backward(dy, input_grad=input_grad)
        counts[input_grad] = cupy_standin.LAUNCHES - before
        grads[input_grad] = {k: layer.grads[name].get() for k, (layer, name) in enumerate(model.parameters())}
        assert (dx is None) == (not input_grad)
    assert counts[True]["matmul"] - counts[False]["matmul"] == 1                 # x's product
    assert counts[True]["elementwise"] - counts[False]["elementwise"] == 1       # the input dropout's mask
    for k in grads[True]:
        numpy.testing.assert_array_equal(grads[True][k], grads[False][k])      # every parameter's gradient


def test_the_gradient_bound_scale_equals_the_textbook_form_bit_for_bit():
    """bound_rows_ scales row n by limit / max(||d_n||, limit), one operation fewer than
    min(1, limit / ||d_n||): the same factor, to the bit, under, at and over the limit."""
    from minikd.train import bound_rows_
    g = numpy.random.default_rng(0)
    d = (g.standard_normal((200, 10)) * g.uniform(0.001, 0.1, (200, 1))).astype(numpy.float32)
    d[0] = 0.0
    limit = 0.05
    norms = numpy.sqrt((d * d).sum(axis=1, keepdims=True))
    assert (norms > limit).any() and (norms < limit).any()
    textbook = d * numpy.minimum(1.0, limit / numpy.maximum(norms, 1e-30)).astype(d.dtype)
    assert bound_rows_(d.copy(), limit).tobytes() == textbook.tobytes()


def test_the_epochs_kl_part_is_the_per_step_one(digits):
    """The log's KL part, computed once per epoch from each step's log p, equals the float64 mean
    of the values soft_weight T^2 mean_n KL(q_n || p_n) each step would compute, to the bit
    (a shorter last batch included)."""
    from dataclasses import replace
    from minikd.engine.losses import log_softmax
    cfg = replace(bench_configs(digits)["distilled"], batch_size=64, epochs=1)
    arrays = prepare_arrays(digits, numpy)
    assert arrays["n_train"] % 64                      # a shorter last batch
    soft = teacher_logits(build_model(bench_configs(digits)["teacher"], numpy), arrays["x_train"])
    trainer = Trainer(cfg, numpy, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      soft_logits=soft * 30, fast=False)
    seen, real = [], trainer.loss_and_grad

    def spy(logits, batch, out):
        seen.append((logits.copy(), batch["q"].copy(), batch["log_q"].copy()))
        return real(logits, batch, out)

    trainer.loss_and_grad = spy
    trainer.train_epoch(0)
    t, c = cfg.temperature, cfg.soft_weight * cfg.temperature ** 2
    per_step = numpy.zeros((), numpy.float64)
    for logits, q, log_q in seen:                      # what a step computing it would add
        per_step += (q * (log_q - log_softmax(logits, t))).sum(axis=1).mean() * numpy.float32(c)
    assert len(seen) == -(-arrays["n_train"] // 64)
    assert float(trainer.epoch_means[2]) == float(per_step / len(seen)) > 0
