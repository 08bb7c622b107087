"""Momentum SGD as in Hinton et al. (2012, appendix A), its schedules, and max-norm.

The 2012 update, per parameter w with its velocity (both on w's backend),
at learning rate eps_t and momentum mu_t:

    velocity <- mu_t * velocity - (1 - mu_t) * eps_t * dL/dw
    w        <- w + velocity

The (1 - mu_t) factor keeps the step size comparable while mu_t changes: in a
steady state velocity = -eps_t * dL/dw, whatever mu_t is. ``rule="classic"``
drops the factor (velocity <- mu velocity - eps g), the usual "SGD with momentum".

Notation: the 2012 paper writes p_t for the momentum and Delta w for the
velocity; here they are mu_t (``momentum``) and ``velocity``, because p is the
student's probabilities and v the teacher's logits in losses.py. eps_t is the
paper's epsilon, the learning rate (``lr`` in the code), and nothing else.

Schedules are functions of the epoch index t = 0, 1, 2, ...:
    eps_t = eps_0 * decay^t                               (ExponentialDecay)
    mu_t  = mu_0 + (mu_1 - mu_0) * min(t / T_ramp, 1)     (LinearRamp)

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
from typing import Any, Union
from collections.abc import Callable

from .backend import get_xp

#: A learning rate or momentum: a number, or a function of the epoch index giving one.
Schedule = Union[float, Callable[[int], float]]


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, epoch: int) -> float:
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

    def __call__(self, epoch: int) -> float:
        ramp = min(1.0, (epoch + 1) / (self.warmup + 1))
        return self.initial * self.decay ** epoch * ramp


@dataclass(frozen=True)
class LinearRamp:
    """Linear from ``start`` at epoch 0 to ``end`` at epoch ``ramp_epochs``, then flat."""
    start: float
    end: float
    ramp_epochs: float

    def __call__(self, epoch: int) -> float:
        if self.ramp_epochs <= 0:
            return self.end
        frac = min(epoch / self.ramp_epochs, 1.0)
        return self.start + (self.end - self.start) * frac


def max_norm_(W: Any, limit: float) -> Any:
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

    lr, momentum: schedules (callables of the epoch) or plain numbers; kept as
    ``lr_schedule`` and ``momentum_schedule``, while ``lr`` and ``momentum``
    hold the numbers of the current epoch (eps_t and mu_t, ``set_epoch``).
    rule: "hinton2012" (with the (1 - mu) factor) or "classic".
    ``velocity[i][name]``: the velocity of layer i's parameter ``name``; it
    starts at 0 and lives on the parameters' backend.
    """

    RULES = ("hinton2012", "classic")

    def __init__(self, model: Any, *, lr: Schedule, momentum: Schedule, rule: str = "hinton2012") -> None:
        if rule not in self.RULES:
            raise ValueError(f"unknown update rule {rule!r}: choose one of {', '.join(self.RULES)}")
        self.lr_schedule = lr if callable(lr) else Constant(float(lr))
        self.momentum_schedule = momentum if callable(momentum) else Constant(float(momentum))
        self.rule = rule
        self.layers = [layer for layer in model.layers if layer.params]
        self.velocity = [{name: get_xp(w).zeros_like(w) for name, w in layer.params.items()}
                         for layer in self.layers]
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix eps_t (``lr``) and mu_t (``momentum``) for the coming epoch."""
        self.epoch = epoch
        self.lr = float(self.lr_schedule(epoch))
        self.momentum = float(self.momentum_schedule(epoch))

    def step(self) -> None:
        """One update of every parameter from its current gradient, then max-norm."""
        grad_scale = -(1.0 - self.momentum) * self.lr if self.rule == "hinton2012" else -self.lr
        for layer, velocities in zip(self.layers, self.velocity):
            for name, w in layer.params.items():
                velocity = velocities[name]
                velocity *= self.momentum
                velocity += grad_scale * layer.grads[name]
                w += velocity
            limit = getattr(layer, "max_norm", None)
            if limit is not None:
                max_norm_(layer.params["W"], limit)

    def state_dict(self) -> dict[str, Any]:
        """Every velocity, keyed "<layer index>.<parameter name>" (what a checkpoint stores)."""
        return {f"{i}.{name}": velocity for i, velocities in enumerate(self.velocity)
                for name, velocity in velocities.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy ``state`` (as ``state_dict`` gives it, host or device arrays) into the velocities."""
        for i, velocities in enumerate(self.velocity):
            for name, velocity in velocities.items():
                velocity[...] = get_xp(velocity).asarray(state[f"{i}.{name}"], dtype=velocity.dtype)
