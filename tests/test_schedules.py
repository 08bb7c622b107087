"""A Trainer follows its schedules: every epoch runs, and logs, eps_t and mu_t of that epoch.

eps_t = eps_0 * decay^t * min(1, (t + 1) / (warmup + 1))   (engine/optim.py, ExponentialDecay)
mu_t  = mu_start + (mu_end - mu_start) * min(1, t / ramp)  (LinearRamp)

The values are computed here from the formulas and from the engine's schedule objects, and
compared with what each epoch logged and with what each step of the reference step ran with.
"""
from dataclasses import replace

import numpy as np
import pytest

import minikd
from minikd.engine.optim import ExponentialDecay, LinearRamp, MomentumSGD
from minikd.train import StageConfig, Trainer


@pytest.fixture(scope="module")
def digits():
    d = minikd.load_dataset("digits")
    return (minikd.to_float(d.x_train), d.y_train.astype(np.int32), minikd.to_float(d.x_test),
            d.y_test.astype(np.int32))


def by_hand(cfg, epoch):
    """(eps_t, mu_t) of ``cfg`` at ``epoch``, from the formulas."""
    lr = cfg.lr * cfg.lr_decay ** epoch * min(1.0, (epoch + 1) / (cfg.lr_warmup + 1))
    mu = cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * min(1.0, epoch / cfg.momentum_ramp)
    return lr, mu


def spy_on_steps(monkeypatch):
    """[(eps, mu) of each call of MomentumSGD.step]: what the reference step's updates ran with."""
    seen = []
    real = MomentumSGD.step

    def step(self):
        seen.append((self.lr, self.momentum))
        return real(self)

    monkeypatch.setattr(MomentumSGD, "step", step)
    return seen


@pytest.mark.parametrize("fast", [False, True], ids=["reference", "fused"])
def test_each_epoch_runs_and_logs_its_schedules_values(digits, monkeypatch, fast):
    cfg = StageConfig("student", (64, 16, 10), epochs=6, batch_size=500, image_shape=(8, 8), lr=0.4,
                      lr_decay=0.8, lr_warmup=2, momentum_start=0.5, momentum_end=0.9, momentum_ramp=4,
                      init_std=0.1)
    steps = spy_on_steps(monkeypatch)
    tr = Trainer(cfg, np, *digits, fast=fast)
    tr.health = None                                        # the schedules' arithmetic, not learning
    tr.fit()
    eps = ExponentialDecay(cfg.lr, cfg.lr_decay, cfg.lr_warmup)
    mu = LinearRamp(cfg.momentum_start, cfg.momentum_end, cfg.momentum_ramp)
    assert [h.epoch for h in tr.history] == list(range(6))
    for h in tr.history:
        lr, momentum = by_hand(cfg, h.epoch)
        assert h.lr == pytest.approx(lr, rel=1e-12) and h.lr == eps(h.epoch), h
        assert h.momentum == pytest.approx(momentum, rel=1e-12) and h.momentum == mu(h.epoch), h
    assert len({h.lr for h in tr.history}) == 6 and len({h.momentum for h in tr.history}) == 5   # mu flat at 4, 5
    if not fast:   # the reference step calls the optimizer: each of its 3 steps per epoch ran at that epoch's values
        per_epoch = -(-len(digits[1]) // cfg.batch_size)
        assert len(steps) == 6 * per_epoch
        for i, (lr, momentum) in enumerate(steps):
            assert (lr, momentum) == (tr.history[i // per_epoch].lr, tr.history[i // per_epoch].momentum), i


def test_the_quick_distilled_stage_starts_at_an_eighth_of_its_rate(digits, monkeypatch):
    """The quick profile's distilled stage: a 7-epoch linear warm-up, so epoch 0 runs at eps_0 / 8,
    epoch 1 at eps_0 * decay * 2/8; momentum from 0.5 up its ramp."""
    cfg = minikd.profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=3)["distilled"]
    assert (cfg.lr, cfg.lr_warmup) == (1.0, 7)
    cfg = replace(cfg, sizes=(64, 32, 32, 10))             # its schedules on a smaller network: seconds
    soft = np.random.default_rng(0).standard_normal((len(digits[1]), 10)).astype(np.float32)
    steps = spy_on_steps(monkeypatch)
    tr = Trainer(cfg, np, *digits, soft_logits=soft, fast=False)
    tr.health = None
    tr.fit()
    first = tr.history[0]
    assert first.lr == cfg.lr / 8 and first.momentum == cfg.momentum_start == 0.5
    assert tr.history[1].lr == pytest.approx(cfg.lr * cfg.lr_decay * 2 / 8, rel=1e-12)
    assert tr.history[2].lr == pytest.approx(cfg.lr * cfg.lr_decay ** 2 * 3 / 8, rel=1e-12)
    for h in tr.history:
        assert (h.lr, h.momentum) == pytest.approx(by_hand(cfg, h.epoch), rel=1e-12)
    per_epoch = -(-len(digits[1]) // cfg.batch_size)
    assert {s[0] for s in steps[:per_epoch]} == {cfg.lr / 8}                   # every step of epoch 0
    assert {s[0] for s in steps[per_epoch:2 * per_epoch]} == {tr.history[1].lr}


def test_a_resumed_trainer_runs_the_epochs_own_values(digits):
    """Started at epoch 3 (as --resume starts), the first epoch trained runs at eps_3 and mu_3, not at
    the start of the schedule."""
    cfg = StageConfig("student", (64, 16, 10), epochs=5, batch_size=500, image_shape=(8, 8), lr=0.4,
                      lr_decay=0.7, lr_warmup=1, momentum_ramp=8, init_std=0.1)
    tr = Trainer(cfg, np, *digits)
    tr.health = None
    tr.start_epoch = 3
    tr.fit()
    assert [h.epoch for h in tr.history] == [3, 4]
    for h in tr.history:
        assert (h.lr, h.momentum) == pytest.approx(by_hand(cfg, h.epoch), rel=1e-12)
