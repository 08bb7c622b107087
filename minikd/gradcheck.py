"""``python -m minikd.gradcheck``: every layer and loss of the engine against
central differences, printed as a table.

Every row is measured by the engine's own checker (minikd/engine/gradcheck.py:
``layer_errors`` for a layer, its output reduced with a fixed random
projection; ``loss_error`` for a loss), which estimates every coordinate by
central differences in float64. The table prints the largest relative error
with the step h and the tolerance. The exit status is 1 if any row fails, so
the command doubles as a self-test of an installation.

The distillation rows use h = 1e-4, the layers, the cross-entropy and logit matching 1e-6.
Why: the central difference is off by a rounding error of about
u |L| / h (u = 2.2e-16, float64's machine epsilon), and the distillation loss is large next to its
gradient (|L| up to 4e4 at logits near +-1e3 and T = 20, where its largest
gradient entry is about 3). At h = 1e-6 that rounding error reaches the
tolerance (1e-6 relative); at h = 1e-4 it is ~1e-8 while the truncation error
O(h^2) stays under 1e-8. ``--sweep-h`` prints the measurement behind this:
each loss's size, its gradient's size, the rounding estimate and the error
at h from 1e-8 to 1e-2.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .engine.backend import make_rng
from .engine.gradcheck import layer_errors, loss_error
from .engine.layers import Dense, Dropout, ReLU, mlp
from .engine.losses import cross_entropy, distillation_loss, logit_matching

TOLERANCE = 1e-6
LAYER_H = 1e-6
LOSS_H = 1e-6
DISTILLATION_H = 1e-4
SWEEP_H = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
MACHINE_EPS = float(np.finfo(np.float64).eps)   # 2.2e-16


def distillation_cases(rng, n=6, c=5):
    """[(what, size, loss_fn, z)]: the distillation loss at T = 1, 2, 5, 20, with and
    without labels, at logits of size ~3 and ~1e3 (student and teacher far apart)."""
    labels = rng.integers(0, c, size=n)
    cases = []
    for scale in (3.0, 1e3):
        for T in (1.0, 2.0, 5.0, 20.0):
            for with_labels in (True, False):
                signs = rng.choice([-1.0, 1.0], size=(n, c))
                noise = 10.0 if scale > 100 else 1.0
                z = signs * scale + rng.standard_normal((n, c)) * noise
                v = -signs * scale + rng.standard_normal((n, c)) * noise
                y = labels if with_labels else None

                def fn(z_, v=v, y=y, T=T):
                    return distillation_loss(z_, v, y, temperature=T, hard_weight=0.5, soft_weight=1.0)

                what = f"distillation T={T:g}, {'soft + hard' if with_labels else 'soft only'}"
                size = "|z| ~ 1e3" if scale > 100 else "|z| ~ 3"
                cases.append((what, f"z ({n}, {c}), {size}", fn, z))
    return cases


def rows(seed=0):
    """[(what, shape, largest relative error, h)] for every check of the table."""
    rng = np.random.default_rng(seed)
    gen = make_rng(np, seed, 7)
    out = []

    def layer_row(what, layer, x):
        errors = layer_errors(layer, x, rng=rng, h=LAYER_H)
        out.append((what, f"x {x.shape}", max(errors.values()), LAYER_H))

    layer_row("Dense 6->5", Dense(6, 5, rng=gen, dtype="float64", init_std=1.0), rng.standard_normal((4, 6)))

    x = rng.standard_normal((4, 6))
    x += np.sign(x) * 0.1                       # at least 0.1 from ReLU's kink, so +-h never crosses it
    layer_row("ReLU", ReLU(), x)

    layer_row("Dropout 0.5, mask frozen", Dropout(0.5, rng=make_rng(np, seed, 8)), rng.standard_normal((4, 6)))

    net = mlp((8, 7, 6, 3), rng=gen, dtype="float64", input_dropout=0.2, hidden_dropout=0.5, init_std=0.5,
              dropout_rng=make_rng(np, seed, 9))
    for layer in net.dense_layers():
        # non-zero biases: with zero ones, a row whose inputs are all dropped sits exactly on ReLU's kink
        layer.params["b"][...] = rng.standard_normal(layer.n_out)
    layer_row("MLP 8-7-6-3 (Dropout, ReLU, Dense)", net, rng.standard_normal((5, 8)))

    n, c = 6, 5
    labels = rng.integers(0, c, size=n)
    out.append(("cross-entropy", f"z ({n}, {c})",
                loss_error(lambda z: cross_entropy(z, labels), rng.standard_normal((n, c)) * 3, h=LOSS_H),
                LOSS_H))
    # logits whose rows do not average to 0: the row mean's derivative must drop out of dL/dz
    v = rng.standard_normal((n, c)) * 3 + rng.uniform(-5, 5, size=(n, 1))
    out.append(("logit matching", f"z ({n}, {c}), row means +-5",
                loss_error(lambda z: logit_matching(z, v),
                           rng.standard_normal((n, c)) * 3 + rng.uniform(-5, 5, size=(n, 1)), h=LOSS_H),
                LOSS_H))
    for what, size, fn, z in distillation_cases(np.random.default_rng((seed, 1)), n, c):
        out.append((what, size, loss_error(fn, z, h=DISTILLATION_H), DISTILLATION_H))
    return out


def sweep_h(seed=0, steps=SWEEP_H):
    """[(what, size, |L|, max |dL/dz|, {h: relative error})] for the table's distillation
    rows: where rounding (small h) and truncation (large h) take over."""
    out = []
    for what, size, fn, z in distillation_cases(np.random.default_rng((seed, 1))):
        loss, dz = fn(z)
        errs = {h: loss_error(fn, z, h=h) for h in steps}
        out.append((what, size, abs(float(loss)), float(np.abs(dz).max()), errs))
    return out


def print_sweep(seed):
    table = sweep_h(seed)
    w = max(len(r[0]) + len(r[1]) + 2 for r in table)
    print("relative error of the distillation rows' gradients against central differences, by step h;")
    print(f"'rounding' is the estimate u |L| / (h max|dL/dz|) at h = 1e-4, u = {MACHINE_EPS:.1e}")
    print(f"{'check'.ljust(w)}  {'|L|':>8}  {'max|dL/dz|':>10}  {'rounding':>8}  "
          + "  ".join(f"h={h:.0e}" for h in SWEEP_H))
    for what, size, f, g, errs in table:
        rounding = MACHINE_EPS * f / (1e-4 * g)
        print(f"{(what + ', ' + size).ljust(w)}  {f:8.3g}  {g:10.3g}  {rounding:8.1e}  "
              + "  ".join(f"{errs[h]:7.1e}" for h in SWEEP_H))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and projections (default 0)")
    p.add_argument("--sweep-h", action="store_true",
                   help="instead of the table, the distillation rows' errors at h = 1e-8 ... 1e-2")
    args = p.parse_args(argv)
    if args.sweep_h:
        return print_sweep(args.seed)
    t0 = time.perf_counter()
    table = rows(args.seed)
    w = max(len(r[0]) for r in table)
    s = max(len(r[1]) for r in table)
    print(f"{'check'.ljust(w)}  {'shape'.ljust(s)}  {'max rel. error':>14}  {'h':>6}  {'tolerance':>9}  result")
    failed = 0
    for what, shape, err, h in table:
        ok = err <= TOLERANCE
        failed += not ok
        print(f"{what.ljust(w)}  {shape.ljust(s)}  {err:14.2e}  {h:6.0e}  {TOLERANCE:9.0e}  "
              f"{'pass' if ok else 'FAIL'}")
    print(f"{len(table) - failed} passed, {failed} failed  (float64 central differences, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
