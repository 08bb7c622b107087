"""Numerical gradients by central differences, in float64.

To check a function f: x -> y with a hand-written backward, reduce y to a
scalar with a fixed random projection R (same shape as y):

    s(x) = sum(f(x) * R)      ds/dx = backward(R)

A plain sum would be a poor choice: the sum of a softmax is 1 whatever x is,
so its gradient is 0 and checks nothing. Each coordinate's derivative is then
estimated by

    ds/dx_i ~ (s(x + h e_i) - s(x - h e_i)) / (2 h)

whose error is O(h^2); in float64 with h ~ 1e-6 agreement to ~1e-8 relative is
typical, so a tolerance of 1e-6 catches any real mistake.
"""
from __future__ import annotations

from .backend import get_xp, random_subset


def numerical_gradient(f, x, *, eps=1e-6, indices=None):
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    x: float64 array, perturbed in place and restored. ``indices``: flat
    indices to check (default all); the result is zero elsewhere.
    Returns an array of x's shape.
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
        flat_x[i] = old + eps
        f_plus = float(f())
        flat_x[i] = old - eps
        f_minus = float(f())
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def relative_error(a, b, floor=1e-8):
    """max |a - b| / max(max|a|, max|b|, floor): one number for two arrays."""
    xp = get_xp(a, b)
    diff = float(xp.abs(a - b).max()) if a.size else 0.0
    scale = max(float(xp.abs(a).max()) if a.size else 0.0,
                float(xp.abs(b).max()) if b.size else 0.0, floor)
    return diff / scale


def check_gradient(f, x, analytic, *, eps=1e-6, rtol=1e-6, indices=None):
    """Compare ``analytic`` (dL/dx) with the central differences of ``f``.

    Returns the relative error; raises AssertionError if it exceeds ``rtol``.
    When ``indices`` is given only those coordinates are compared.
    """
    numeric = numerical_gradient(f, x, eps=eps, indices=indices)
    if indices is not None:
        xp = get_xp(x)
        idx = xp.asarray(list(indices))
        err = relative_error(analytic.reshape(-1)[idx], numeric.reshape(-1)[idx])
    else:
        err = relative_error(analytic, numeric)
    if not err <= rtol:
        raise AssertionError(f"gradient check failed: relative error {err:.3e} > {rtol:.1e}")
    return err


def check_layer(layer, x, *, rng, train=True, rtol=1e-6, eps=1e-6, max_coords=None,
                forward_kwargs=None):
    """Check dL/dx and every dL/dparam of ``layer`` at input ``x`` (float64).

    The output is reduced with a fixed random projection R ~ N(0, 1). For big
    arrays ``max_coords`` picks a random subset of coordinates (from ``rng``).
    Returns {name: relative error} for "x" and every parameter.
    """
    forward_kwargs = forward_kwargs or {}
    xp = get_xp(x)
    y = layer.forward(x, train=train, **forward_kwargs)
    R = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(R)
    analytic = {"x": dx}
    arrays = {"x": x}
    for prefix, sub in _leaf_layers(layer):
        for name, w in sub.params.items():
            analytic[prefix + name] = sub.grads[name].copy()
            arrays[prefix + name] = w
    frozen = dict(forward_kwargs)

    def scalar():
        return (layer.forward(x, train=train, **frozen) * R).sum()

    errors = {}
    for name, arr in arrays.items():
        indices = None
        if max_coords is not None and arr.size > max_coords:
            indices = random_subset(rng, arr.size, max_coords).tolist()  # host ints
        errors[name] = check_gradient(scalar, arr, analytic[name], eps=eps, rtol=rtol,
                                      indices=indices)
    return errors


def _leaf_layers(layer, prefix=""):
    """(name prefix, layer) for a layer and, recursively, those inside a container."""
    inner = getattr(layer, "layers", None)
    if inner is None:
        return [(prefix, layer)]
    out = []
    for i, sub in enumerate(inner):
        out.extend(_leaf_layers(sub, f"{prefix}{i}."))
    return out
