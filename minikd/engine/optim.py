"""Momentum SGD as in Hinton et al. (2012, appendix A), its schedules, and max-norm.

The 2012 update, per parameter w with velocity v (both on w's backend):

    v <- p_t * v - (1 - p_t) * eps_t * dL/dw
    w <- w + v

The (1 - p_t) factor keeps the step size comparable while p_t changes: in a
steady state v = -eps_t * dL/dw, whatever p_t is. ``rule="classic"`` drops
the factor (v <- p v - eps g), the usual "SGD with momentum".

Schedules are functions of the epoch index t = 0, 1, 2, ...:
    eps_t = eps_0 * decay^t                               (ExponentialDecay)
    p_t   = p_0 + (p_1 - p_0) * min(t / T_ramp, 1)        (LinearRamp)

Max-norm (after every update): for each Dense layer with ``max_norm = c``,
every column W[:, j] -- the incoming weight vector of unit j, bias NOT
included -- is rescaled to Euclidean length c if it is longer:

    W[:, j] <- W[:, j] * min(1, c / ||W[:, j]||_2)  =  W[:, j] * c / max(||W[:, j]||_2, c)

(the second form, which the code uses, is one elementwise operation fewer; in
floating point the two give the same factor, exactly 1 for a column at or
under the limit).

The bound is on the length, not the squared length; the paper's "15" read as
a squared length is c = sqrt(15) (docs/choices.md gives the evidence).
"""
from __future__ import annotations

from dataclasses import dataclass

from .backend import get_xp


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, epoch):
        return self.value


@dataclass(frozen=True)
class ExponentialDecay:
    """eps_t = initial * decay ** t, optionally after a linear warm-up:

        eps_t = initial * decay ** t * min(1, (t + 1) / (warmup + 1))

    so epoch 0 runs at initial / (warmup + 1) and epoch ``warmup`` at the
    full rate. warmup = 0 (the default) is the plain 2012 decay.
    """
    initial: float
    decay: float
    warmup: int = 0

    def __call__(self, epoch):
        ramp = min(1.0, (epoch + 1) / (self.warmup + 1))
        return self.initial * self.decay ** epoch * ramp


@dataclass(frozen=True)
class LinearRamp:
    """Linear from ``start`` at epoch 0 to ``end`` at epoch ``ramp_epochs``, then flat."""
    start: float
    end: float
    ramp_epochs: float

    def __call__(self, epoch):
        if self.ramp_epochs <= 0:
            return self.end
        frac = min(epoch / self.ramp_epochs, 1.0)
        return self.start + (self.end - self.start) * frac


def max_norm_(W, limit):
    """Rescale, in place, each column of W (n_in, n_out) longer than ``limit``.

    Returns W. Columns at or under the limit are left exactly as they were.
    """
    xp = get_xp(W)
    norms = xp.sqrt((W * W).sum(axis=0))
    scale = (limit / xp.maximum(norms, limit)).astype(W.dtype, copy=False)   # min(1, limit / norm)
    W *= scale
    return W


class MomentumSGD:
    """Momentum SGD over the parameters of a model (anything with ``layers``
    whose items carry ``params`` / ``grads`` dicts, e.g. ``Sequential``).

    lr, momentum: schedules (callables of the epoch) or plain numbers.
    rule: "hinton2012" (with the (1 - p) factor) or "classic".
    Velocities start at 0 and live on the parameters' backend.
    """

    RULES = ("hinton2012", "classic")

    def __init__(self, model, *, lr, momentum, rule="hinton2012"):
        if rule not in self.RULES:
            raise ValueError(f"unknown update rule {rule!r}: choose one of {', '.join(self.RULES)}")
        self.lr = lr if callable(lr) else Constant(float(lr))
        self.momentum = momentum if callable(momentum) else Constant(float(momentum))
        self.rule = rule
        self.layers = [layer for layer in model.layers if layer.params]
        self.velocity = [{name: get_xp(w).zeros_like(w) for name, w in layer.params.items()}
                         for layer in self.layers]
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Fix eps_t and p_t for the coming epoch."""
        self.epoch = epoch
        self.eps = float(self.lr(epoch))
        self.p = float(self.momentum(epoch))

    def step(self):
        """One update of every parameter from its current gradient, then max-norm."""
        grad_scale = -(1.0 - self.p) * self.eps if self.rule == "hinton2012" else -self.eps
        for layer, velocity in zip(self.layers, self.velocity):
            for name, w in layer.params.items():
                v = velocity[name]
                v *= self.p
                v += grad_scale * layer.grads[name]
                w += v
            limit = getattr(layer, "max_norm", None)
            if limit is not None:
                max_norm_(layer.params["W"], limit)

    def state_dict(self):
        return {f"{i}.{name}": v for i, vel in enumerate(self.velocity) for name, v in vel.items()}

    def load_state_dict(self, state):
        for i, vel in enumerate(self.velocity):
            for name, v in vel.items():
                v[...] = get_xp(v).asarray(state[f"{i}.{name}"], dtype=v.dtype)
