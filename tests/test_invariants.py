"""The paper's invariants, tested directly (issue 23 item 6).

* The soft targets are the teacher's eval-mode logits (no dropout) on the
  un-jittered images, a fixed function of the image (Hinton et al. 2015, section 3).
* Test errors are counted in eval mode.
* Every epoch draws its own shuffle, jitter shifts and dropout masks, and an epoch
  run again draws the same ones (a resumed run equals an uninterrupted one).

Each is checked against arithmetic written here, not against the engine's own forward.
"""
import numpy as np
import pytest

from minikd import train
from minikd.data import load_dataset, to_float
from minikd.engine.layers import Dropout
from minikd.experiments import reproduce
from minikd.train import StageConfig, Trainer, count_test_errors, teacher_logits


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return to_float(ds.x_train), ds.y_train.astype(np.int32), to_float(ds.x_test), ds.y_test.astype(np.int32)


def teacher_cfg(**kw):
    base = dict(name="teacher", sizes=(64, 48, 40, 10), epochs=3, batch_size=50, input_dropout=0.2,
                hidden_dropout=0.5, max_norm=2.0, jitter=1, image_shape=(8, 8), lr=0.3, lr_decay=0.95,
                momentum_ramp=5, init_std=0.1)
    base.update(kw)
    return StageConfig(**base)


def eval_logits_by_hand(model, x):
    """The network without dropout: relu(... relu(x W1 + b1) ...) W_k + b_k, in float64."""
    dense = model.dense_layers()
    h = x.astype(np.float64)
    for i, layer in enumerate(dense):
        h = h @ layer.params["W"].astype(np.float64) + layer.params["b"].astype(np.float64)
        if i < len(dense) - 1:
            h = np.maximum(h, 0.0)
    return h


@pytest.fixture(scope="module")
def trained_teacher(digits):
    tr = Trainer(teacher_cfg(), np, *digits, fast=False)
    tr.health = None          # 3 epochs: the invariants, not the accuracy
    tr.fit()
    return tr.model


def test_soft_targets_are_the_teachers_eval_logits_on_unjittered_images(digits, trained_teacher):
    x = digits[0]
    expected = eval_logits_by_hand(trained_teacher, x)
    for soft in (teacher_logits(trained_teacher, x, batch_size=500),
                 reproduce.soft_targets(trained_teacher, x).logits):       # what reproduce distils from
        np.testing.assert_allclose(soft, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert any(isinstance(layer, Dropout) and layer.rate > 0 for layer in trained_teacher.layers)


def test_the_distilled_trainer_learns_from_exactly_those_targets(digits, trained_teacher):
    """q = softmax(v / T) of the soft targets, row for row, before any shuffle."""
    x, y, xt, yt = digits
    v = teacher_logits(trained_teacher, x)
    cfg = StageConfig("distilled", (64, 32, 10), epochs=1, image_shape=(8, 8), temperature=4.0)
    tr = Trainer(cfg, np, x, y, xt, yt, soft_logits=v)
    z = eval_logits_by_hand(trained_teacher, x) / 4.0
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tr._q, q, rtol=1e-4, atol=1e-6)


def test_test_errors_are_counted_in_eval_mode(digits, trained_teacher):
    _, _, xt, yt = digits
    by_hand = int((eval_logits_by_hand(trained_teacher, xt).argmax(axis=1) != yt).sum())
    for _ in range(3):       # dropout would draw new masks each time, and miscount
        assert int(count_test_errors(trained_teacher, xt, yt, batch_size=100)) == by_hand


class Recorder:
    """Wraps a Trainer's step and batch_inputs: per step, the rows the batch holds, the images as
    the network saw them (jittered), and every dropout mask drawn (reference step)."""

    def __init__(self, trainer):
        self.trainer, self.step = trainer, trainer.step
        self.rows, self.seen, self.masks = [], [], []
        self.begin_epoch, self.end_epoch = self.step.begin_epoch, self.step.end_epoch
        real_inputs = trainer.batch_inputs

        def batch_inputs(xb, rng):
            self.rows.append(np.rint(xb[:, 0] * 1e6).astype(np.int64))   # column 0 carries the row id
            out = real_inputs(xb, rng)
            self.seen.append(np.array(out))
            return out

        trainer.batch_inputs = batch_inputs
        trainer.step = self

    def __call__(self, xb, rng, loss_fn):
        result = self.step(xb, rng, loss_fn)
        self.masks.append([np.array(layer.mask) for layer in self.trainer.model.layers
                           if isinstance(layer, Dropout) and layer.mask is not None])
        return result

    def epoch(self, epoch):
        """Train one epoch; returns its (row order, jittered image of each row by id, masks)."""
        self.rows, self.seen, self.masks = [], [], []
        self.trainer.train_epoch(epoch)
        order = np.concatenate(self.rows)
        images = dict(zip(order.tolist(), np.concatenate(self.seen), strict=True))
        return order, images, self.masks


@pytest.fixture(scope="module")
def id_digits(digits):
    """Digits with the row id in pixel 0 (a corner, 0 in every digit), never moved by the jitter's
    reading: the recorder reads the ids before the jitter."""
    x, y, xt, yt = digits
    x = x.copy()
    x[:, 0] = (np.arange(len(y)) + 1) / 1e6
    return x, y, xt, yt


def test_each_epoch_draws_its_own_shuffle_shifts_and_masks_and_a_repeat_draws_the_same(id_digits):
    first = Recorder(Trainer(teacher_cfg(), np, *id_digits, fast=False))
    order0, images0, masks0 = first.epoch(0)
    order1, images1, masks1 = first.epoch(1)
    again = Recorder(Trainer(teacher_cfg(), np, *id_digits, fast=False))
    order0b, images0b, masks0b = again.epoch(0)

    # successive epochs: another permutation, other shifts, other masks
    assert sorted(order0.tolist()) == sorted(order1.tolist()) and not np.array_equal(order0, order1)
    same_shift = np.mean([np.array_equal(images0[i], images1[i]) for i in images0])
    assert same_shift < 0.5, f"{same_shift:.0%} of the images jittered the same way in epochs 0 and 1"
    assert not any(np.array_equal(a, b)
                   for m0, m1 in zip(masks0, masks1, strict=True) for a, b in zip(m0, m1, strict=True))
    # the same epoch again (a fresh trainer, as after a resume): the same draws, bit for bit
    np.testing.assert_array_equal(order0, order0b)
    assert all(np.array_equal(images0[i], images0b[i]) for i in images0)
    assert len(masks0) == len(masks0b) and all(
        np.array_equal(a, b) for m0, m1 in zip(masks0, masks0b, strict=True) for a, b in zip(m0, m1, strict=True))


def test_the_epoch_generator_is_seeded_by_seed_and_epoch(monkeypatch, id_digits):
    """The draws come from make_rng(xp, seed, 1, epoch) -- the stream HealthCheck's probe stays off."""
    keys = []
    real = train.make_rng
    monkeypatch.setattr(train, "make_rng", lambda xp, seed, *k: keys.append((seed, *k)) or real(xp, seed, *k))
    tr = Trainer(teacher_cfg(seed=5), np, *id_digits, fast=False)
    keys.clear()
    tr.train_epoch(0)
    tr.train_epoch(1)
    assert keys == [(5, 1, 0), (5, 1, 1)]
