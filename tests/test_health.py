"""A dead or exploding network stops its stage with a message (train.HealthCheck), checked
once per epoch; and a distillation that dies today at small scale now trains or stops."""
from dataclasses import replace

import numpy as np
import pytest

from minikd.data import load_dataset, to_float
from minikd.train import DivergenceError, HealthCheck, StageConfig, Trainer, bound_rows_, teacher_soft_targets


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return (to_float(ds.x_train), ds.y_train.astype(np.int32), to_float(ds.x_test), ds.y_test.astype(np.int32))


def cfg(**kw):
    base = dict(name="student", sizes=(64, 32, 32, 10), epochs=4, batch_size=50, image_shape=(8, 8),
                lr=0.5, lr_decay=0.9, momentum_ramp=2, init_std=0.1)
    base.update(kw)
    return StageConfig(**base)


def test_a_healthy_network_trains_through(digits):
    tr = Trainer(cfg(epochs=6), np, *digits)
    tr.fit()
    assert tr.history[-1].test_errors < 150      # of 360: chance is ~324


def test_a_slow_start_is_not_taken_for_a_dead_network(digits):
    """One class for the first epochs is no failure while the loss still falls."""
    tr = Trainer(cfg(lr=0.02, epochs=6), np, *digits)
    tr.fit()
    assert len(tr.history) == 6 and tr.history[-1].loss < tr.history[0].loss


def _nearly_dead(tr, live=1):
    """Silence all but ``live`` units of the first hidden layer (their bias far below 0)."""
    first = tr.model.dense_layers()[0]
    first.params["b"][live:] = -100.0
    return first


def test_a_dead_layer_is_caught_at_once(digits):
    tr = Trainer(cfg(), np, *digits)
    tr.model.dense_layers()[0].params["b"][:] = -100.0   # every first-layer ReLU is 0 for every input
    with pytest.raises(DivergenceError, match=r"at epoch 1 every ReLU of a hidden layer is 0"):
        tr.fit()


def test_a_collapse_to_one_class_is_caught(digits):
    tr = Trainer(cfg(lr=1e-9), np, *digits)
    _nearly_dead(tr)                                  # 1 of 32 units alive: 3%
    tr.model.dense_layers()[-1].params["b"][3] = 15.0  # class 3 wins for every input
    with pytest.raises(DivergenceError, match=r"at epoch 3 the network predicts one class for 1000 of 1000"):
        tr.fit()
    assert len(tr.history) == 2                       # stopped at the first epoch the check runs


def test_chance_level_is_caught_without_a_collapse(digits):
    tr = Trainer(cfg(lr=1e-9), np, *digits)
    _nearly_dead(tr)
    out = tr.model.dense_layers()[-1]
    out.params["W"][:] = 0.0
    out.params["b"][3] = out.params["b"][4] = 15.0    # class 3, or class 4 where the live unit fires
    out.params["W"][:, 4] = 1.0
    with pytest.raises(DivergenceError, match="chance level"):
        tr.fit()


def test_a_slow_start_with_live_units_is_left_alone(digits):
    """Tiny weights: one class and a loss frozen near ln C for several epochs, but live units."""
    tr = Trainer(cfg(init_std=0.001, lr=1e-9, epochs=5), np, *digits)
    tr.fit()
    assert len(tr.history) == 5


def test_an_exploding_loss_is_caught_in_the_first_epoch(digits):
    tr = Trainer(cfg(lr=1e6), np, *digits)
    with pytest.raises(DivergenceError, match=r"at epoch 1 .*(exploding|became nan|became inf)"):
        tr.fit()


def test_the_check_reads_the_device_once_per_epoch(digits, monkeypatch):
    """One host transfer per check whatever the number of steps."""
    import minikd.train as train
    reads = []
    real = train.to_host
    monkeypatch.setattr(train, "to_host", lambda x: reads.append(1) or real(x))
    tr = Trainer(cfg(epochs=3), np, *digits)
    reads.clear()
    tr.health.check(tr.model, 5, 1.0, 0.1)        # the probe's three numbers come back together
    assert len(reads) == 1


def test_the_initial_loss_is_what_an_untrained_network_gives(digits):
    x, y, _, _ = digits
    soft = np.random.default_rng(0).standard_normal((len(y), 10)).astype(np.float32) * 5
    c = cfg(name="distilled", temperature=4.0, hard_weight=0.5, epochs=1, lr=1e-9)
    tr = Trainer(c, np, *digits, soft_logits=soft)
    tr.fit()
    assert tr.health.initial_loss == pytest.approx((0.5 + 16.0) * np.log(10))
    assert tr.history[0].loss == pytest.approx(tr.health.initial_loss, rel=0.05)


def test_bound_rows_keeps_directions_and_bounds_lengths():
    d = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], np.float32)
    bound_rows_(d, 1.0)
    np.testing.assert_allclose(d, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-6)


def test_a_distillation_that_dies_today_now_trains(digits):
    """The death at small scale: a confident teacher (logits of range ~60, as a teacher trained
    longer or on other data gives) and no warm-up. Unbounded, the soft term's T^2-scaled gradient
    (up to T sqrt(2) per row) explodes the student in its first epoch -- the stage stops and says
    so; with the profile's bounded rows the same student trains."""
    from minikd.experiments.profiles import DISTILL_GRAD_BOUND, profile_configs
    x, y, xt, yt = digits
    rng = np.random.default_rng(0)
    soft = (np.eye(10, dtype=np.float32)[y] * 30 + rng.standard_normal((len(y), 10)).astype(np.float32) * 7.5)
    c = profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=20)["distilled"]
    assert c.grad_bound == DISTILL_GRAD_BOUND == 1.0
    unbounded = Trainer(replace(c, lr_warmup=0, grad_bound=None), np, *digits, soft_logits=soft, fast=True)
    with pytest.raises(DivergenceError, match="at epoch 1 the training loss is .* the weights are exploding"):
        unbounded.fit()
    bounded = Trainer(replace(c, lr_warmup=0), np, *digits, soft_logits=soft, fast=True)
    bounded.fit(eval_every=20)
    assert bounded.history[-1].test_errors < 120      # of 360; chance is ~324


def test_the_grad_bound_flag():
    """reproduce.py --grad-bound: the profile's bound by default, a number, or none (the paper's gradient)."""
    from minikd.experiments.reproduce import parse_args
    assert parse_args([]).grad_bound is None                       # keep the profile's
    assert parse_args(["--grad-bound", "none"]).grad_bound == "none"
    assert parse_args(["--grad-bound", "2.5"]).grad_bound == 2.5
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            parse_args(["--grad-bound", bad])
