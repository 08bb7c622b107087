"""``python -m minikd.gradcheck``: every layer and loss of the engine against
central differences, printed as a table.

Each row reduces a function's output to a scalar with a fixed random
projection (never a plain sum: see engine/gradcheck.py), computes the hand-written
gradient, estimates every coordinate by central differences in float64 and
prints the largest relative error with the tolerance. The exit status is 1 if
any row fails, so the command doubles as a self-test of an installation.

The distillation rows use a wider step h = 1e-4: their loss is large (T^2 ln C
~ 900 at T = 20, ~1e3 at logits near +-1e3), and its float64 rounding (~1e-13)
divided by 2h must stay well under the tolerance times the gradient (~0.1); at
h = 1e-6 that margin is only ~2x. The truncation error O(h^2) is ~1e-8.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .engine.backend import make_rng
from .engine.gradcheck import numerical_gradient, relative_error
from .engine.layers import Dense, Dropout, ReLU, mlp
from .engine.losses import cross_entropy, distillation_loss

TOLERANCE = 1e-6


def _layer_errors(layer, x, rng, forward_kwargs=None):
    """{name: relative error} of dL/dx and every dL/dparam of ``layer`` at x."""
    kw = dict(forward_kwargs or {})
    y = layer.forward(x, train=True, **kw)
    R = rng.standard_normal(y.shape)
    analytic = {"x": layer.backward(R)}
    arrays = {"x": x}
    subs = getattr(layer, "layers", [layer])
    for i, sub in enumerate(subs):
        for name, w in sub.params.items():
            key = f"{i}.{name}" if len(subs) > 1 else name
            analytic[key] = sub.grads[name].copy()
            arrays[key] = w
    if "freeze_mask" in kw:
        kw["freeze_mask"] = True  # the numerical derivative sees the mask the analytic one used

    def scalar():
        return float((layer.forward(x, train=True, **kw) * R).sum())

    return {k: relative_error(analytic[k], numerical_gradient(scalar, a)) for k, a in arrays.items()}


def _loss_error(loss_fn, z, eps):
    """Relative error of dL/dz for ``loss_fn(z) -> (loss, dz)``."""
    _, dz = loss_fn(z)
    return relative_error(dz, numerical_gradient(lambda: float(loss_fn(z)[0]), z, eps=eps))


def rows(seed=0):
    """[(what, shape, largest relative error, h)] for every check of the table."""
    rng = np.random.default_rng(seed)
    gen = make_rng(np, seed, 7)
    out = []

    dense = Dense(6, 5, rng=gen, dtype="float64", init_std=1.0)
    out.append(("Dense 6->5", "x (4, 6)", max(_layer_errors(dense, rng.standard_normal((4, 6)), rng).values()), 1e-6))

    x = rng.standard_normal((4, 6))
    x += np.sign(x) * 0.1                       # at least 0.1 from ReLU's kink, so +-h never crosses it
    out.append(("ReLU", "x (4, 6)", max(_layer_errors(ReLU(), x, rng).values()), 1e-6))

    drop = Dropout(0.5, rng=make_rng(np, seed, 8))
    out.append(("Dropout 0.5, mask frozen", "x (4, 6)",
                max(_layer_errors(drop, rng.standard_normal((4, 6)), rng, {"freeze_mask": False}).values()), 1e-6))

    net = mlp((8, 7, 6, 3), rng=gen, dtype="float64", input_dropout=0.2, hidden_dropout=0.5, init_std=0.5,
              dropout_rng=make_rng(np, seed, 9))
    for layer in net.dense_layers():
        # non-zero biases: with zero ones, a row whose inputs are all dropped sits exactly on ReLU's kink
        layer.params["b"][...] = rng.standard_normal(layer.n_out)
    out.append(("MLP 8-7-6-3 (Dropout, ReLU, Dense)", "x (5, 8)",
                max(_layer_errors(net, rng.standard_normal((5, 8)), rng, {"freeze_mask": False}).values()), 1e-6))

    n, c = 6, 5
    labels = rng.integers(0, c, size=n)
    out.append(("cross-entropy", f"z ({n}, {c})",
                _loss_error(lambda z: cross_entropy(z, labels), rng.standard_normal((n, c)) * 3, 1e-6), 1e-6))
    for scale in (3.0, 1e3):
        eps = 1e-4
        for T in (1.0, 2.0, 5.0, 20.0):
            for with_labels in (True, False):
                signs = rng.choice([-1.0, 1.0], size=(n, c))
                z = signs * scale + rng.standard_normal((n, c)) * (10.0 if scale > 100 else 1.0)
                v = -signs * scale + rng.standard_normal((n, c)) * (10.0 if scale > 100 else 1.0)
                y = labels if with_labels else None

                def fn(z_, v=v, y=y, T=T):
                    return distillation_loss(z_, v, y, temperature=T, hard_weight=0.5, soft_weight=1.0)

                what = f"distillation T={T:g}, {'soft + hard' if with_labels else 'soft only'}"
                size = "|z| ~ 1e3" if scale > 100 else "|z| ~ 3"
                out.append((what, f"z ({n}, {c}), {size}", _loss_error(fn, z, eps), eps))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and projections (default 0)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    table = rows(args.seed)
    w = max(len(r[0]) for r in table)
    s = max(len(r[1]) for r in table)
    print(f"{'check'.ljust(w)}  {'shape'.ljust(s)}  {'max rel. error':>14}  {'h':>6}  {'tolerance':>9}  result")
    failed = 0
    for what, shape, err, eps in table:
        ok = err <= TOLERANCE
        failed += not ok
        print(f"{what.ljust(w)}  {shape.ljust(s)}  {err:14.2e}  {eps:6.0e}  {TOLERANCE:9.0e}  "
              f"{'pass' if ok else 'FAIL'}")
    print(f"{len(table) - failed} passed, {failed} failed  (float64 central differences, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
