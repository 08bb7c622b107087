"""A dead or exploding network stops its stage with a message (minikd.health.HealthCheck), checked
once per epoch; at the last epoch a collapsed or chance-level network stops it too, with advice
that fits the case; and an unbounded distillation that explodes at small scale stops, while the
profile's bounded one trains."""
from dataclasses import replace

import numpy as np
import pytest

from minikd.data import load_dataset, to_float
from minikd.health import DivergenceError, HealthCheck
from minikd.train import StageConfig, Trainer, bound_rows_


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


def test_a_collapse_to_one_class_is_caught_at_the_last_epoch(digits):
    tr = Trainer(cfg(lr=1e-9, epochs=3), np, *digits)
    tr.model.dense_layers()[-1].params["b"][3] = 15.0  # class 3 wins for every input; every unit alive
    with pytest.raises(DivergenceError, match=r"at epoch 3 \(its last\) the network predicts one class for "
                                              r"1000 of 1000 .* not a result"):
        tr.fit()
    assert len(tr.history) == 2                       # the last epoch is not logged as a result


def test_chance_level_is_caught_without_a_collapse_whatever_the_loss(digits):
    """Two classes predicted, about half the rows each: no collapse, but chance-level errors."""
    tr = Trainer(cfg(lr=1e-4, epochs=2), np, *digits)
    out = tr.model.dense_layers()[-1]
    hidden = digits[0]
    for layer in tr.model.layers[:-1]:
        hidden = layer.forward(hidden, train=False)
    split = float(np.median(hidden.sum(axis=1)))
    out.params["b"][3], out.params["b"][4] = 10.0, 10.0 - split   # class 4 where the summed activity is high
    out.params["W"][:, 4] = 1.0
    with pytest.raises(DivergenceError, match="at epoch 2 \\(its last\\) .* chance level"):
        tr.fit()


def test_the_end_check_runs_only_at_the_last_epoch(digits):
    """A slow start -- tiny weights, one class and a loss frozen near ln C -- is left alone while
    the stage runs, and the same network at its last epoch is not a result."""
    tr = Trainer(cfg(init_std=0.001, lr=1e-9, epochs=5), np, *digits)
    for epoch in range(4):
        loss, _ = tr.train_epoch(epoch)
        tr.health.check(tr.model, epoch, float(loss), 1e-9, last=False)
    with pytest.raises(DivergenceError, match="its last"):
        tr.health.check(tr.model, 4, float(loss), 1e-9, last=True)


def test_the_probe_is_random_seeded_and_off_the_training_stream(digits):
    """Sorted by label, the first 1,000 rows hold few classes; the probe holds every class, the
    same rows for the same seed, and drawing it changes no trained number."""
    x, y, xt, yt = digits
    order = np.argsort(y, kind="stable")
    xs, ys = x[order], y[order]
    a = HealthCheck(cfg(), xs, ys)
    assert len(np.unique(ys[:HealthCheck.PROBE_ROWS])) < 10 and len(np.unique(a.y)) == 10
    np.testing.assert_array_equal(HealthCheck(cfg(), xs, ys).y, a.y)
    assert not np.array_equal(HealthCheck(cfg(seed=1), xs, ys).x, a.x)
    checked = Trainer(cfg(epochs=3), np, *digits)
    unchecked = Trainer(cfg(epochs=3), np, *digits)
    unchecked.health = None
    checked.fit()
    unchecked.fit()
    for (l1, n1), (l2, n2) in zip(checked.model.parameters(), unchecked.model.parameters(), strict=True):
        np.testing.assert_array_equal(l1.params[n1], l2.params[n2])


def test_the_epoch_loss_is_summed_in_float64(digits):
    """Distilled losses are ~900: a float32 sum over many steps rounds by more than the digits a
    reader compares. The mean must be the float64 mean of the steps' float32 losses."""
    x, y, xt, yt = digits
    tr = Trainer(cfg(batch_size=1, epochs=1), np, x[:600], y[:600], xt, yt)
    losses = (np.float32(920.0) + np.random.default_rng(0).random(600).astype(np.float32)).astype(np.float32)

    steps = iter(losses)

    def loss_and_grad(logits, batch, out):   # the planned loss, written where the real one writes it
        out[0] = next(steps)
        return out, None

    class Step:   # calls the loss, trains nothing
        begin_epoch = end_epoch = staticmethod(lambda: None)
        __call__ = staticmethod(lambda xb, rng, loss_fn: loss_fn(None)[0])

    tr.loss_and_grad, tr.step = loss_and_grad, Step()
    loss, _ = tr.train_epoch(0)
    assert float(loss) == np.mean(losses.astype(np.float64))


def test_an_exploding_loss_is_caught_in_the_first_epoch(digits):
    tr = Trainer(cfg(lr=1e6), np, *digits)
    with pytest.raises(DivergenceError, match=r"at epoch 1 .*(exploding|became nan|became inf)"):
        tr.fit()


def test_the_check_reads_the_device_once_per_epoch(digits, monkeypatch):
    """One host transfer per check whatever the number of steps, at the last epoch too."""
    import minikd.health as health
    reads = []
    real = health.to_host
    monkeypatch.setattr(health, "to_host", lambda x: reads.append(1) or real(x))
    tr = Trainer(cfg(epochs=3), np, *digits)
    reads.clear()
    tr.health.check(tr.model, 5, 1.0, 0.1)        # the probe's three numbers come back together
    assert len(reads) == 1
    with pytest.raises(DivergenceError):
        tr.health.check(tr.model, 6, 1.0, 0.1, last=True)   # untrained: at chance
    assert len(reads) == 2


def test_the_initial_loss_is_what_an_untrained_network_gives(digits):
    x, y, _, _ = digits
    soft = np.random.default_rng(0).standard_normal((len(y), 10)).astype(np.float32) * 5
    c = cfg(name="distilled", temperature=4.0, hard_weight=0.5, epochs=1, lr=1e-9)
    tr = Trainer(c, np, *digits, soft_logits=soft)
    loss, _ = tr.train_epoch(0)
    assert tr.health.initial_loss == pytest.approx((0.5 + 16.0) * np.log(10))
    assert float(loss) == pytest.approx(tr.health.initial_loss, rel=0.05)


def test_bound_rows_keeps_directions_and_bounds_lengths():
    d = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], np.float32)
    bound_rows_(d, 1.0)
    np.testing.assert_allclose(d, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-6)


def test_an_unbounded_distillation_explodes_and_the_bounded_one_trains(digits, monkeypatch):
    """The death at small scale: a confident teacher (logits of range ~60, as a teacher trained
    longer or on other data gives) and no warm-up. Unbounded, the soft term's T^2-scaled gradient
    (up to T sqrt(2) per row) explodes the student in its first epoch -- the stage stops and says
    so; with the profile's bounded rows the same student trains."""
    from minikd.profiles import DISTILL_GRAD_BOUND, profile_configs
    x, y, xt, yt = digits
    rng = np.random.default_rng(0)
    soft = (np.eye(10, dtype=np.float32)[y] * 30 + rng.standard_normal((len(y), 10)).astype(np.float32) * 7.5)
    c = profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=20)["distilled"]
    assert c.grad_bound == DISTILL_GRAD_BOUND == 1.0
    import minikd.config
    monkeypatch.setattr(minikd.config, "_warned_unguarded", False)
    with pytest.warns(UserWarning, match="neither a per-row gradient bound"):   # the Trainer says so too
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


def test_a_network_that_never_moved_is_told_to_train_longer_not_slower(digits):
    """At eps = 1e-9 the loss stays at the untrained network's: the advice is more training steps
    (--epochs, more images), not a lower --lr, which would move it even less."""
    tr = Trainer(cfg(lr=1e-9, init_std=0.01, epochs=3), np, *digits)
    with pytest.raises(DivergenceError, match=r"at epoch 3 \(its last\)") as err:
        tr.fit()
    message = str(err.value)
    assert "more training steps" in message and "--epochs" in message, message
    assert "try a lower --lr" not in message and "or a lower --lr" not in message, message
    assert all(abs(h.loss - tr.health.initial_loss) < 0.01 * tr.health.initial_loss for h in tr.history)


def test_a_network_that_moved_and_ended_at_chance_is_told_a_lower_rate(digits):
    """The loss fell, then the network still ended at chance: the other advice, a lower --lr."""
    tr = Trainer(cfg(epochs=2), np, *digits)
    tr.fit()                                              # it learns: its loss falls well below ln 10
    assert tr.health.lowest_loss < 0.9 * tr.health.initial_loss
    tr.model.dense_layers()[-1].params["b"][3] = 1e4       # now one class for every input
    with pytest.raises(DivergenceError, match="collapsed") as err:
        tr.health.check(tr.model, 1, tr.history[-1].loss, 0.5, last=True)
    assert "more training steps" not in str(err.value) and "lower --lr" in str(err.value)
