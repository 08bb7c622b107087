"""Momentum SGD as in Hinton et al. (2012, appendix A), its schedules, and max-norm.

Notation (docs/notation.md; plain ASCII here, so Greek letters are spelled out):
eps_t is the learning rate of epoch t (``lr``), eps_0 the initial one, gamma its
decay per epoch (``decay``); mu_t is the momentum of epoch t (``momentum``);
Delta_w is the velocity of a parameter w (``velocity``), the step the update adds
to w, and dw = dL/dw its gradient. The 2012 paper writes p_t for the momentum;
here p is the student's probabilities (losses.py), so it is mu_t.

The 2012 update, per parameter w (its velocity lives on w's backend):

    Delta_w <- mu_t * Delta_w - (1 - mu_t) * eps_t * dw
    w       <- w + Delta_w

The (1 - mu_t) factor keeps the step size comparable while mu_t changes: in a
steady state Delta_w = -eps_t * dw, whatever mu_t is. ``rule="classic"`` drops
the factor (Delta_w <- mu_t Delta_w - eps_t dw), the usual "SGD with momentum".

Schedules are functions of the epoch index t = 0, 1, 2, ...:

    eps_t = eps_0 * gamma^t * min(1, (t + 1) / (t_w + 1))                 (ExponentialDecay)
    mu_t  = mu_start + (mu_end - mu_start) * min(1, t / t_mu)             (LinearRamp)

t_w is the length of the learning-rate warm-up in epochs (``warmup``; 0: none)
and t_mu that of the momentum's rise (``ramp_epochs``); mu_start and mu_end are
the momentum at epoch 0 and from epoch t_mu on (``start``, ``end``; 0.5 and 0.99
in the paper).

Max-norm (after every update): for each Dense layer with ``max_norm = lambda``,
every column W[:, j] -- the incoming weight vector of unit j, bias NOT
included -- is rescaled to Euclidean length lambda if it is longer:

    W[:, j] <- W[:, j] * min(1, lambda / ||W[:, j]||_2)  =  W[:, j] * lambda / max(||W[:, j]||_2, lambda)

(the second form, which the code uses, is one elementwise operation fewer; in
floating point the two give the same factor, exactly 1 for a column at or
under the limit).

The bound is on the length, not the squared length; the paper's "15" read as
a squared length is lambda = sqrt(15) (docs/choices.md gives the evidence).

Momentum and max-norm are updates, not gradients: the gradient check does not
see them; tests/engine/test_optim.py checks them against hand-computed steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from .backend import get_xp

#: A learning rate or momentum: a number, or a function of the epoch index giving one.
Schedule = float | Callable[[int], float]


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, epoch: int) -> float:
        return self.value


@dataclass(frozen=True)
class ExponentialDecay:
    """eps_t = initial * decay ** t, optionally times a linear warm-up ramp:

        eps_t = initial * decay ** t * min(1, (t + 1) / (warmup + 1))

    The decay runs from epoch 0, under the ramp, so the rate never reaches
    ``initial``: epoch 0 runs at initial / (warmup + 1), the ramp reaches 1 at
    epoch ``warmup``, and there the rate is initial * decay ** warmup, its
    largest value whenever decay > warmup / (warmup + 1). With warmup = 7 and
    decay = 0.998 ** (3000 / 70) = 0.918 (the quick profile's distilled stage)
    that peak is 0.548 * initial. warmup = 0 (the default) is the plain 2012 decay.
    """
    initial: float
    decay: float
    warmup: int = 0

    def __call__(self, epoch: int) -> float:
        ramp = min(1.0, (epoch + 1) / (self.warmup + 1))
        return self.initial * self.decay ** epoch * ramp


@dataclass(frozen=True)
class LinearRamp:
    """mu_t = start + (end - start) * min(1, t / ramp_epochs): linear from ``start``
    (mu_start) at epoch 0 to ``end`` (mu_end) at epoch ``ramp_epochs`` (t_mu), then flat."""
    start: float
    end: float
    ramp_epochs: float

    def __call__(self, epoch: int) -> float:
        if self.ramp_epochs <= 0:
            return self.end
        frac = min(epoch / self.ramp_epochs, 1.0)
        return self.start + (self.end - self.start) * frac


def max_norm_(W: Any, limit: float) -> Any:
    """Rescale, in place, each column of W (n_in, n_out) longer than ``limit`` (lambda).

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
    rule: "hinton2012" (with the (1 - mu_t) factor) or "classic".
    ``velocity[i][name]``: Delta_w, the velocity of layer i's parameter ``name``;
    it starts at 0 and lives on the parameters' backend.
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
        """One update of every parameter w from its gradient dw (Delta_w <- mu_t Delta_w
        - (1 - mu_t) eps_t dw, then w <- w + Delta_w), then max-norm."""
        grad_scale = -(1.0 - self.momentum) * self.lr if self.rule == "hinton2012" else -self.lr
        for layer, velocities in zip(self.layers, self.velocity, strict=True):
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
