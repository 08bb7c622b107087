"""Numerical gradients by central differences, in float64.

To check a function f: x -> y with a hand-written backward, reduce y to a
scalar with a fixed random projection R (same shape as y):

    s(x) = sum(f(x) * R)      ds/dx = backward(R)

A plain sum would be a poor choice: the sum of a softmax is 1 whatever x is,
so its gradient is 0 and checks nothing. Each coordinate's derivative is then
estimated by

    ds/dx_i ~ (s(x + h e_i) - s(x - h e_i)) / (2 h)

Two errors compete in that estimate (``h`` below):

* truncation, from the Taylor series: s'''(x) h^2 / 6, smaller with smaller h;
* rounding: each s(x +- h) is off by about u |s| (u = 2.2e-16, float64's
  machine epsilon), and dividing their difference by 2h makes that about
  u |s| / h, larger with smaller h.

Relative to the gradient's size g = max_i |ds/dx_i|, rounding costs about
u |s| / (h g). For a layer at h = 1e-6 (|s| and g of order 1-10) that is
~1e-10; for a loss whose value is large next to its gradient it is not: the
distillation loss at logits near +-1e3 is 2e3 to 4e4 with g of 0.2 to 3, so
h = 1e-6 gives ~1e-6 and h = 1e-4 ~1e-8. ``python -m minikd.gradcheck
--sweep-h`` measures both errors over h. The tolerance, 1e-6 relative, is far
above either at a good h and far below any real mistake (a forgotten factor
is an error of order 1).

Dropout layers: the checker draws the mask once (the first forward pass) and
freezes it for every perturbed pass, so the numerical and the hand-written
gradients differentiate the same function.
"""
from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Iterable

from .backend import Array, Generator, get_xp, random_subset


def numerical_gradient(f: Callable[[], Any], x: Array, *, h: float = 1e-6,
                       indices: Iterable[int] | None = None) -> Array:
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    f: takes no argument and reads x (which this function perturbs in place
    and restores). x: float64 array. ``indices``: flat indices to estimate
    (default all); the result is zero elsewhere. Returns an array of x's shape.
    """
    if x.dtype.kind != "f" or x.dtype.itemsize < 8:
        raise ValueError(f"numerical gradients need float64 arrays, got {x.dtype}")
    xp = get_xp(x)
    grad = xp.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: writes reach x
    flat_g = grad.reshape(-1)
    if indices is None:
        indices = range(x.size)
    for i in indices:
        i = int(i)
        old = float(flat_x[i])
        flat_x[i] = old + h
        f_plus = float(f())
        flat_x[i] = old - h
        f_minus = float(f())
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def relative_error(a: Array, b: Array, floor: float = 1e-8) -> float:
    """max |a - b| / max(max|a|, max|b|, floor): one number for two arrays."""
    xp = get_xp(a, b)
    diff = float(xp.abs(a - b).max()) if a.size else 0.0
    scale = max(float(xp.abs(a).max()) if a.size else 0.0,
                float(xp.abs(b).max()) if b.size else 0.0, floor)
    return diff / scale


def gradient_error(f: Callable[[], Any], x: Array, analytic: Array, *, h: float = 1e-6,
                   indices: Iterable[int] | None = None) -> float:
    """Relative error of ``analytic`` (ds/dx, x's shape) against the central
    differences of ``f``; only the coordinates ``indices`` when given."""
    if indices is not None:
        indices = [int(i) for i in indices]
    numeric = numerical_gradient(f, x, h=h, indices=indices)
    if indices is None:
        return relative_error(analytic, numeric)
    idx = get_xp(x).asarray(indices)
    return relative_error(analytic.reshape(-1)[idx], numeric.reshape(-1)[idx])


def check_gradient(f: Callable[[], Any], x: Array, analytic: Array, *, h: float = 1e-6,
                   rtol: float = 1e-6, indices: Iterable[int] | None = None) -> float:
    """``gradient_error``, raising AssertionError if it exceeds ``rtol``. Returns the error."""
    err = gradient_error(f, x, analytic, h=h, indices=indices)
    _fail_above(err, rtol, "")
    return err


def layer_errors(layer: Any, x: Array, *, rng: Generator, train: bool = True, h: float = 1e-6,
                 max_coords: int | None = None,
                 forward_kwargs: dict | None = None) -> dict[str, float]:
    """{name: relative error} of dL/dx and of every dL/dparam of ``layer`` at
    input ``x`` (float64), without judging them (``check_layer`` judges).

    The output is reduced with a fixed random projection R ~ N(0, 1) drawn
    from ``rng``. Names: "x", then each parameter's ("W", "b"; "<i>.W" inside
    a container, i its index). For arrays bigger than ``max_coords`` a random
    subset of that many coordinates (from ``rng``) is checked. A layer whose
    forward takes ``freeze_mask`` (Dropout, Sequential) draws its masks in the
    first pass and keeps them for the perturbed ones.
    """
    first = dict(forward_kwargs or {})
    frozen = dict(first)
    if "freeze_mask" in inspect.signature(layer.forward).parameters:
        frozen["freeze_mask"] = True   # the perturbed passes see the mask the analytic gradient used
    xp = get_xp(x)
    y = layer.forward(x, train=train, **first)
    R = xp.asarray(rng.standard_normal(y.shape))
    analytic = {"x": layer.backward(R)}
    arrays = {"x": x}
    for prefix, sub in _leaf_layers(layer):
        for name, w in sub.params.items():
            analytic[prefix + name] = sub.grads[name].copy()
            arrays[prefix + name] = w

    def scalar():
        return (layer.forward(x, train=train, **frozen) * R).sum()

    errors = {}
    for name, arr in arrays.items():
        indices = None
        if max_coords is not None and arr.size > max_coords:
            indices = random_subset(rng, arr.size, max_coords).tolist()  # host ints
        errors[name] = gradient_error(scalar, arr, analytic[name], h=h, indices=indices)
    return errors


def check_layer(layer: Any, x: Array, *, rng: Generator, train: bool = True, rtol: float = 1e-6,
                h: float = 1e-6, max_coords: int | None = None,
                forward_kwargs: dict | None = None) -> dict[str, float]:
    """``layer_errors``, raising AssertionError (naming the gradient) if any
    error exceeds ``rtol``. Returns {name: relative error}."""
    errors = layer_errors(layer, x, rng=rng, train=train, h=h, max_coords=max_coords,
                          forward_kwargs=forward_kwargs)
    for name, err in errors.items():
        _fail_above(err, rtol, f" of dL/d{name}")
    return errors


def loss_error(loss_fn: Callable[[Array], tuple], z: Array, *, h: float = 1e-6) -> float:
    """Relative error of the gradient a loss returns: ``loss_fn(z) -> (loss, dL/dz)``,
    z float64 (N, C), checked at every coordinate. A loss is already a scalar,
    so no projection is needed."""
    _, dz = loss_fn(z)
    return gradient_error(lambda: loss_fn(z)[0], z, dz, h=h)


def check_loss(loss_fn: Callable[[Array], tuple], z: Array, *, h: float = 1e-6,
               rtol: float = 1e-6) -> float:
    """``loss_error``, raising AssertionError if it exceeds ``rtol``. Returns the error."""
    err = loss_error(loss_fn, z, h=h)
    _fail_above(err, rtol, " of dL/dz")
    return err


def _fail_above(err: float, rtol: float, what: str) -> None:
    if not err <= rtol:  # also catches NaN
        raise AssertionError(f"gradient check failed{what}: relative error {err:.3e} > {rtol:.1e}")


def _leaf_layers(layer: Any, prefix: str = "") -> list:
    """(name prefix, layer) for a layer and, recursively, those inside a container."""
    inner = getattr(layer, "layers", None)
    if inner is None:
        return [(prefix, layer)]
    out = []
    for i, sub in enumerate(inner):
        out.extend(_leaf_layers(sub, f"{prefix}{i}."))
    return out
