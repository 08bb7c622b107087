"""The health check: a network that died, exploded or learned nothing stops its stage.

``Trainer.fit`` calls ``HealthCheck.check`` once per epoch, after the
training pass, with the epoch's mean loss (read back once, as a Python float).
Everything it needs from the device comes back in one more read: three numbers
measured on a *probe* of training rows. It raises ``DivergenceError``, whose
message says what happened, at which epoch, and what to try, when:

every epoch
  1. the mean training loss is NaN or infinite;
  2. the mean training loss is over ``GROWTH`` (10) times the loss of the
     untrained network, which is known in advance: its logits start near 0,
     so every softmax is uniform and every cross-entropy term equals ln C
     (the hard one weighted by hard_weight, the soft one by soft_weight T^2);
  3. on the probe, every ReLU of some hidden layer is 0 for every row: the
     output no longer depends on the input and no gradient reaches the layers
     below -- a dead network, which no further step can revive;

at the stage's last epoch only
  4. the probe's predictions have collapsed to one class: over ``COLLAPSE``
     (95%) of its rows get the same class, where the labels are less one-sided
     than that;
  5. the probe's predictions are at chance level: the error rate is at least
     ``CHANCE`` (90%) of the error of always answering the probe's most common
     label, i.e. 1 - (largest class share). With ten balanced classes that is
     an error rate of 81% or more (chance is 90%); with two, 45% (chance 50%).

Checks 4 and 5 look only at the end, so a slow start (tiny weights, one class
predicted for a few epochs, a loss near ln C that hardly moves) is left alone;
and they look whatever the loss did, so a network that merely stopped
improving at chance level is not reported as a result.

The probe is ``PROBE_ROWS`` (1,000) training rows drawn at random, without
replacement, by a NumPy generator seeded by (cfg.seed, ``PROBE_STREAM``): not
the first rows, which are a single class when the data is sorted, and not from
the training stream of ``Trainer`` (seeded by (seed, 1, epoch)), so adding or
changing the check moves no trained number. The probe runs in eval mode (no
dropout) on the un-jittered rows.
"""
from __future__ import annotations

import math

import numpy

from .engine.backend import get_xp, to_device, to_host
from .engine.layers import ReLU


def relu_alive(model, x):
    """Run ``model`` in eval mode on the rows x; returns (its output, a list with one 0-d device
    array per hidden ReLU: the share of that layer's units that are > 0 for at least one row).
    A unit that is 0 for every row is dead on x: nothing it feeds depends on x, and no gradient
    passes it back."""
    h, alive = x, []
    for layer in model.layers:
        h = layer.forward(h, train=False)
        if isinstance(layer, ReLU):
            alive.append((h > 0).any(axis=0).mean())
    return h, alive


class DivergenceError(RuntimeError):
    """The network stopped learning or never learned: its loss became NaN or
    infinite or grew by an order of magnitude, a hidden layer died, or at the
    end of the stage its predictions are collapsed to one class or at chance
    (``HealthCheck``). The message says what happened and what to try."""


class HealthCheck:
    """The checks listed in the module's docstring, for one stage.

    cfg: the stage's StageConfig; x_train (N, D), y_train (N,): its training
    rows on the device; distilling: whether the loss has the soft term.
    initial_loss: the untrained network's loss when the Trainer knows it better than
    ln C times the weights (logit matching, whose value at z = 0 depends on the teacher).
    """

    GROWTH = 10.0
    PROBE_ROWS = 1000
    PROBE_STREAM = 2     # make_rng's keys: 0 = weights, 1 = epochs, 2 = this probe
    COLLAPSE = 0.95
    CHANCE = 0.9

    STUCK = 0.01   # a loss within 1% of the untrained network's never moved

    def __init__(self, cfg, x_train, y_train, *, distilling=False, initial_loss=None):
        xp = get_xp(x_train)
        c = cfg.sizes[-1]
        self.name, self.n_classes = cfg.name, c
        n_rows = x_train.shape[0]
        n = min(self.PROBE_ROWS, n_rows)
        rows = numpy.random.default_rng([int(cfg.seed), self.PROBE_STREAM]).choice(n_rows, size=n, replace=False)
        rows = to_device(numpy.sort(rows), xp)
        self.x, self.y = x_train[rows], y_train[rows]
        self.classes = xp.arange(c)
        shares = to_host(self._counts(self.y)) / max(n, 1)   # once, at the start
        self.label_share = float(shares.max()) if n else 1.0
        if initial_loss is None:
            weight = (cfg.hard_weight + cfg.soft_weight * cfg.temperature ** 2) if distilling else cfg.hard_weight
            initial_loss = weight * math.log(c)
        self.initial_loss = float(initial_loss)   # what the untrained network's loss is (Trainer knows it)
        self.lowest_loss = math.inf

    def _counts(self, labels):
        """How many of ``labels`` fall in each class: (C,), on the device."""
        return (labels[:, None] == self.classes[None, :]).sum(axis=0)

    def probe(self, model):
        """(fraction of units alive in the least alive hidden layer, the most predicted class's count,
        errors) on the probe rows, as one (3,) device array. A unit is alive if it is > 0 for some row."""
        xp = get_xp(self.x)
        h, alive = relu_alive(model, self.x)
        pred = h.argmax(axis=1)
        least = xp.stack(alive).min() if alive else xp.ones((), dtype=h.dtype)
        return xp.stack([least.astype(h.dtype), self._counts(pred).max().astype(h.dtype),
                         (pred != self.y).sum().astype(h.dtype)])

    def check(self, model, epoch, loss, lr, *, last=False):
        """Raise DivergenceError naming what went wrong at ``epoch`` (0-based); ``last``: the stage's last
        epoch, where the probe's predictions must also be better than chance and not collapsed."""
        where = f"{self.name}: at epoch {epoch + 1}"
        advice = (f"the step size ({lr:g}) is probably too large for this data -- try a lower --lr "
                  f"(e.g. half of it)")
        self.lowest_loss = min(self.lowest_loss, loss)
        if not math.isfinite(loss):
            raise DivergenceError(f"{where} the training loss became {loss}; {advice}")
        if loss > self.GROWTH * self.initial_loss:
            raise DivergenceError(f"{where} the training loss is {loss:.4g}, over {self.GROWTH:g} times the "
                                  f"untrained network's {self.initial_loss:.4g}: the weights are exploding; {advice}")
        n = self.x.shape[0]
        if n == 0:
            return
        alive, top, errors = (float(v) for v in to_host(self.probe(model)))   # one read
        if alive == 0.0:
            raise DivergenceError(f"{where} every ReLU of a hidden layer is 0 for every one of {n} training "
                                  f"images: the network is dead (its output no longer depends on its input, and "
                                  f"no gradient passes); {advice}")
        if not last:
            return
        if self.lowest_loss >= (1.0 - self.STUCK) * self.initial_loss:
            short = (f"more training steps: its loss never fell more than {100 * self.STUCK:g}% below the untrained "
                     f"network's {self.initial_loss:.4g}, so it never left its start -- more epochs (--epochs) or "
                     f"more training images; a lower --lr would not help")
        else:
            short = ("more epochs (--epochs), or a lower --lr" if epoch + 1 < 20 else "a lower --lr")
        if top > self.COLLAPSE * n and self.label_share < self.COLLAPSE:
            raise DivergenceError(f"{where} (its last) the network predicts one class for {int(top)} of {n} "
                                  f"training images (the largest class is {100 * self.label_share:.0f}% of them): "
                                  f"it has collapsed and is not a result; try {short}")
        chance = 1.0 - self.label_share
        if chance > 0 and errors / n >= self.CHANCE * chance:
            raise DivergenceError(f"{where} (its last) the network errs on {int(errors)} of {n} training images "
                                  f"({100 * errors / n:.0f}%; always answering the most common class errs on "
                                  f"{100 * chance:.0f}%): it is at chance level and is not a result; try {short}")
