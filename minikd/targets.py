"""Target transforms for asking what in the teacher's soft targets teaches.

Each transform keeps one part of what the teacher says and destroys another, so a
student distilled from the transformed targets shows what the destroyed part was worth.
Notation as in engine/losses.py: v (N, C) the teacher's logits, T the temperature,
q = softmax(v / T) the teacher's probabilities; in each row, the top class is the first
arg-max of v.

``permute_non_top(v, rng)``
    Keeps each row's top class, its logit and the row's set of logits, so the top
    probability at every T; shuffles the other logits among the other classes, which
    destroys the similarity structure (which other classes the teacher finds likely).
    Furlanello et al. (2018), "Born-Again Neural Networks", call it Dark Knowledge with
    Permuted Predictions (DKPP).

``confidence_only(v, temperature)``
    Keeps each row's top class and its probability at T (exactly, but for rounding); gives
    every other class the same logit. What is left is the teacher's confidence alone, the information
    Furlanello et al.'s CWTM (Confidence-Weighted by Teacher Max) uses; CWTM weights each
    example's hard-label loss by it, this keeps it in the form of a soft target.

``smoothed_labels(labels, n_classes, smoothing, dtype)``
    No teacher at all: (1 - smoothing) onehot(ell) + smoothing / C, label smoothing
    (Szegedy et al. 2016, "Rethinking the Inception Architecture", where it is epsilon; eps
    is the learning rate in minikd), the same mass on every wrong class.

All three are pure functions of the backend's arrays (``xp = get_xp(v)``: NumPy or CuPy);
``permute_non_top`` draws from the generator it is given and from nothing else.
"""
from __future__ import annotations

import math
from typing import Any

from .engine.backend import Array, Generator, get_xp
from .engine.losses import check_labels, one_hot


def _check_logit_rows(v: Array, what: str) -> None:
    if v.ndim != 2:
        raise ValueError(f"{what}: teacher logits must have shape (N, C), got {tuple(v.shape)}")
    if v.dtype.kind != "f":
        raise ValueError(f"{what}: teacher logits must be floats, got dtype {v.dtype}")


def _top_mask(v: Array) -> Array:
    """(N, C) bool, True at each row's top class (the first arg-max, so exactly one per row)."""
    xp = get_xp(v)
    return xp.arange(v.shape[1])[None, :] == v.argmax(axis=1)[:, None]


def permute_non_top(v: Array, rng: Generator) -> Array:
    """Each row's non-top logits shuffled among the non-top classes (DKPP); the top one stays.

    v: (N, C) float teacher logits; rng: a generator on v's backend (``make_rng(xp, ...)``).
    Returns (N, C) in v's dtype: v'[n, top_n] = v[n, top_n], and v'[n] holds the same values
    as v[n] (so the same softmax denominator: the top probability at every T is kept, up to
    the order of summation). With ties at the top, the top is the first arg-max; a tied value
    elsewhere is shuffled like any other, so it may land before the top class.

    How, without a loop over rows: draw a uniform key per entry and pin the top class's key
    below all others (-1); sorting each row's keys lists the top class first, then the other
    classes in a random order (``source``). Sorting keys that pin the top and keep the others
    in class order (their index) lists the top class first, then the other classes in order
    (``dest``). Row n's value at class source[n, k] moves to class dest[n, k].
    """
    _check_logit_rows(v, "permute_non_top")
    xp = get_xp(v)
    n, c = v.shape
    keys = rng.random((n, c))
    if get_xp(keys) is not xp:
        raise ValueError(f"permute_non_top: the generator draws {type(keys).__module__} arrays and the logits "
                         f"are {type(v).__module__} arrays: make the generator on the logits' backend "
                         f"(make_rng(xp, seed))")
    top = _top_mask(v)
    source = xp.where(top, -1.0, keys).argsort(axis=1)
    dest = xp.where(top, -1.0, xp.arange(c, dtype=keys.dtype)[None, :]).argsort(axis=1)
    rows = xp.arange(n)[:, None]
    out = xp.empty(v.shape, dtype=v.dtype)
    out[rows, dest] = v[rows, source]
    return out


def confidence_only(v: Array, temperature: float) -> Array:
    """Each row's top logit kept, every other logit replaced by one value, chosen so that
    softmax(v' / T) gives the top class the probability softmax(v / T) gives it.

    v: (N, C) float teacher logits, C >= 2; temperature T > 0. Returns (N, C) in v's dtype.
    With m the top class (the first arg-max) and O the C - 1 others, each class o in O gets

        v'_o = T log( (1/(C-1)) sum_{c in O} exp(v_c / T) )         (a log-mean-exp)

    so (C - 1) exp(v'_o / T) = sum_{c in O} exp(v_c / T): the softmax denominator
    exp(v_m / T) + sum_{c in O} exp(v_c / T) is unchanged, hence so is the top probability,
    exactly but for rounding, and the others are all equal to (1 - q_m) / (C - 1).

    Why not the plain mean of the others' logits: exp is convex, so by Jensen's inequality
    exp(mean_O(v) / T) <= mean_O(exp(v / T)), with equality only when the others are equal.
    The mean would shrink the denominator and raise the top probability: a more confident
    teacher than the real one, not the same confidence.

    Computed in float64 with the others' largest logit subtracted before exp (the
    log-sum-exp of engine/losses.py), so logits near +-1e3 at T = 1 neither overflow nor
    lose the small terms; the result is rounded once to v's dtype.
    """
    _check_logit_rows(v, "confidence_only")
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"confidence_only: temperature must be > 0, got {temperature}")
    c = v.shape[1]
    if c < 2:
        raise ValueError(f"confidence_only: the logits have {c} class; it needs at least 2 (a top one and others)")
    xp = get_xp(v)
    top = _top_mask(v)
    s = v.astype(xp.float64) / temperature
    others = xp.where(top, -math.inf, s)                          # the top class drops out of the sums
    m = others.max(axis=1, keepdims=True)                         # the others' largest, finite since C >= 2
    mean_exp = xp.exp(others - m).sum(axis=1, keepdims=True) / (c - 1)
    level = temperature * (m + xp.log(mean_exp))                  # T log mean_O exp(v / T), (N, 1)
    return xp.where(top, v.astype(xp.float64), level).astype(v.dtype)


def smoothed_labels(labels: Array, n_classes: int, smoothing: float, dtype: Any = "float32") -> Array:
    """Label-smoothed target rows (Szegedy et al. 2016): (1 - smoothing) onehot(ell) + smoothing / C.

    labels: (N,) int ell in [0, C); n_classes: C; smoothing: in [0, 1) (the paper's epsilon; eps is
    the learning rate in minikd). Returns (N, C) rows in ``dtype`` that sum to 1: 1 - smoothing +
    smoothing / C on the label, smoothing / C on every other class. smoothing = 0 gives the one-hot
    rows (``engine.losses.one_hot``); 1 would leave no trace of the label, so it is refused. The labels
    are checked (``engine.losses.check_labels``: on CuPy two numbers read back, once per call).
    """
    if not 0.0 <= smoothing < 1.0:  # also refuses NaN
        raise ValueError(f"smoothed_labels: smoothing must be in [0, 1), got {smoothing!r} "
                         f"(0 keeps the one-hot labels; 1 would leave no trace of them)")
    check_labels(labels, n_classes)   # a label outside [0, C) would leave its row summing to smoothing
    t = one_hot(labels, n_classes, dtype)
    return (1.0 - smoothing) * t + smoothing / n_classes
