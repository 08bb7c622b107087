"""A fused CPU training step for the paper's MLPs: the same arithmetic as
``Trainer.reference_step``, rearranged for speed. Read layers.py, losses.py
and optim.py first: this file only reorders what they do.

What changes, and why it is allowed:

1. **Momentum folded into the weight-gradient product, with beta = 1.**
   BLAS computes C <- alpha * A @ B + beta * C in one pass, so the 2012 update

       v <- p * v - (1 - p) * eps * (a^T @ d)

   is a single gemm with alpha = -(1 - p) * eps, beta = p, C = v. The
   reference path instead writes the gradient, then reads it back twice.
   OpenBLAS applies a beta other than 1 in a separate pass over C before it
   accumulates, so the step goes one better: it keeps the velocity as
   v = s * u, a scalar s times the stored array u. Then p * v is just
   s <- p * s (no pass), and u <- u + (c / s) * a^T d is a gemm with beta = 1.
   The weight update W <- W + v becomes W <- W + s * u, the same axpy with
   another alpha. When s falls below ``MIN_SCALE`` the next gemm uses beta = s
   and leaves s = 1; ``sync_velocity`` (at every epoch's end) does the same,
   so the optimizer's velocity is the true v whenever anyone else reads it.
   Only the float32 rounding differs from the reference.
2. **One BLAS for every product, with beta.** NumPy's ``@`` has no beta.
   NumPy's wheels bundle an OpenBLAS whose CBLAS interface does; ``gemm``
   calls its ``cblas_sgemm`` through ctypes, so every product of the step
   runs on the same library (and thread pool) as the rest of NumPy. Where
   that library cannot be found (a NumPy built against another BLAS), SciPy's
   ``sgemm`` is used instead; SciPy ships its own OpenBLAS, and alternating
   two thread pools inside one step is about 5x slower on a 2-core machine,
   so then every product of the step goes through SciPy. ``GEMM_BLAS`` says
   which one is in use.
3. **Preallocated buffers, in-place activations and masks.** No array is
   allocated per step except the raw dropout draws and the small loss arrays.
   The weight update W += v, a pass over every weight, goes through the same
   OpenBLAS's ``saxpy`` (``add_``), which splits it over both cores; NumPy's
   own elementwise loops use one.
4. **Weights updated as soon as their layer's backward is done**, after the
   input gradient of that layer has been computed with the old weights, so
   the result is the one the two-phase reference computes.
5. **Max-norm's column lengths measured only when a column could be too
   long.** Measuring them is a pass over the weights, like W += v. But a
   column's length can only grow by the length of its update, and that has a
   cheap upper bound from the two small matrices of the weight-gradient
   product: column j of a^T d has length <= ||a||_F ||d_j|| (Cauchy-Schwarz),
   so with momentum, ||v_j|| <= p * bound(v_j) + |c| ||a||_F ||d_j||, and
   ||W_j + v_j|| <= bound(W_j) + bound(v_j). While every column's bound stays
   under the limit (with a margin for float32 rounding) no column can be
   rescaled, so the reference's rescale would change nothing and the pass is
   skipped; otherwise the lengths are measured exactly, as the reference does
   (``NormBound``).

CBLAS takes the layout as an argument (``CblasRowMajor`` here), so NumPy's
C-ordered arrays go in as they are. SciPy's ``sgemm`` is Fortran BLAS and takes
column-major matrices: a C-ordered array X seen as ``X.T`` is a column-major X^T,
so a row-major C = op(A) op(B) is computed as the column-major
C^T = op(B)^T op(A)^T: ``sgemm(alpha, B.T, A.T, beta, C.T)``.
The fused step covers float32 NumPy models built by ``layers.mlp``; anything
else (CuPy, float64, other layer orders) uses the reference step.
"""
from __future__ import annotations

import os

import numpy as np

from .layers import Dense, Dropout, ReLU, dropout_mask

def _numpy_cblas():
    """NumPy's own OpenBLAS ``(cblas_sgemm, cblas_saxpy)`` as ctypes functions, or None.

    NumPy's wheels (numpy.libs/ or numpy/.dylibs/) bundle OpenBLAS with
    symbol names prefixed ``scipy_`` and, for 64-bit integer builds, suffixed
    ``64_``. The library is already loaded by NumPy, so dlopen returns the
    same copy: its thread pool is the one NumPy's ``@`` uses.
    """
    import ctypes
    import glob
    root = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    patterns = ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*")
    f32, ptr, enum = ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    for path in sorted(p for pat in patterns for p in glob.glob(os.path.join(root, pat))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_t in (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64),
                                      ("scipy_", "", ctypes.c_int), ("", "", ctypes.c_int)):
            sgemm = getattr(lib, f"{prefix}cblas_sgemm{suffix}", None)
            saxpy = getattr(lib, f"{prefix}cblas_saxpy{suffix}", None)
            if sgemm is None or saxpy is None:
                continue
            sgemm.restype = saxpy.restype = None
            sgemm.argtypes = [enum, enum, enum, int_t, int_t, int_t, f32, ptr, int_t,
                              ptr, int_t, f32, ptr, int_t]
            saxpy.argtypes = [int_t, f32, ptr, int_t, ptr, int_t]
            return sgemm, saxpy
    return None


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_cblas = None if os.environ.get("MINIKD_GEMM") == "scipy" else _numpy_cblas()
_cblas_sgemm, _cblas_saxpy = _cblas if _cblas is not None else (None, None)
_sgemm = None
if _cblas_sgemm is None:
    try:  # SciPy comes with scikit-learn; without it the step still works, slower.
        from scipy.linalg.blas import sgemm as _sgemm
    except ImportError:  # pragma: no cover - scipy is a dependency of scikit-learn
        _sgemm = None

#: which library ``gemm`` calls: "numpy-cblas", "scipy" or "numpy-matmul" (no beta, slowest)
GEMM_BLAS = "numpy-cblas" if _cblas_sgemm is not None else ("scipy" if _sgemm is not None else "numpy-matmul")
GEMM_NAME = {"numpy-cblas": "minikd.fast.gemm (NumPy's OpenBLAS, cblas_sgemm)",
             "scipy": "minikd.fast.gemm (SciPy's sgemm)",
             "numpy-matmul": "minikd.fast.gemm (NumPy @, no beta)"}[GEMM_BLAS]


def _check_f32(*arrays):
    for x in arrays:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise ValueError("minikd.fast needs C-contiguous float32 arrays")


def add_(y, x, alpha=1.0):
    """y += alpha * x for same-shape float32 arrays; through BLAS saxpy (both cores) when available.

    NumPy's elementwise loops run on one core; OpenBLAS splits a long axpy
    over its thread pool, which matters for the weight update W += v.
    """
    if _cblas_saxpy is None or y.size < 65536:
        if alpha == 1.0:
            y += x
        else:
            y += np.float32(alpha) * x
        return y
    _check_f32(x, y)
    if x.shape != y.shape:
        raise ValueError(f"add_: shapes {y.shape} and {x.shape} differ")
    _cblas_saxpy(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
    return y


def gemm(alpha, a, b, beta, c, *, trans_a=False, trans_b=False):
    """Row-major c <- alpha * op(a) @ op(b) + beta * c, in place, float32.

    op(x) is x.T when trans_x is set. a, b, c must be C-contiguous float32.
    """
    if _cblas_sgemm is not None:
        _check_f32(a, b, c)
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        if (b.shape[1] if trans_b else b.shape[0]) != k or (a.shape[1] if trans_a else a.shape[0]) != m \
                or (b.shape[0] if trans_b else b.shape[1]) != n:
            raise ValueError(f"fast.gemm: shapes {a.shape}{'^T' if trans_a else ''} @ "
                             f"{b.shape}{'^T' if trans_b else ''} -> {c.shape} do not match")
        _cblas_sgemm(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS,
                     m, n, k, alpha, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
                     beta, c.ctypes.data, n)
        return c
    if _sgemm is not None:
        _sgemm(alpha, b.T, a.T, beta, c.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=1)
        return c
    prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if beta == 0.0:
        np.multiply(prod, alpha, out=c)
    else:
        c *= beta
        prod *= alpha
        c += prod
    return c


def _parse(model):
    """(input Dropout or None, [(Dense, Dropout or None)] hidden, output Dense) or None."""
    layers = list(model.layers)
    in_drop = None
    if layers and isinstance(layers[0], Dropout):
        in_drop = layers.pop(0)
    hidden = []
    while len(layers) > 1:
        if not (isinstance(layers[0], Dense) and isinstance(layers[1], ReLU)):
            return None
        dense = layers[0]
        layers = layers[2:]
        drop = None
        if layers and isinstance(layers[0], Dropout):
            drop = layers.pop(0)
        hidden.append((dense, drop))
    if len(layers) != 1 or not isinstance(layers[0], Dense):
        return None
    return in_drop, hidden, layers[0]


class FusedStep:
    """Callable ``step(xb, yb, loss_fn) -> loss`` equal to the reference step.

    ``loss_fn(logits) -> (loss, dlogits)`` supplies the loss, so the same
    fused step trains the teacher, the student and the distilled student.
    """

    @staticmethod
    def supports(model, xp):
        if xp is not np or _parse(model) is None:
            return False
        return all(w.dtype == np.float32 and w.flags.c_contiguous
                   for layer in model.layers for w in layer.params.values())

    #: below this the velocity's scale is folded back into its array (point 1 of the module's docstring)
    MIN_SCALE = 2.0 ** -20

    def __init__(self, model, optimizer):
        self.in_drop, self.hidden, self.out = _parse(model)
        self.opt = optimizer
        self.dense = [d for d, _ in self.hidden] + [self.out]
        index = {id(layer): i for i, layer in enumerate(optimizer.layers)}
        self.velocity = [optimizer.velocity[index[id(d)]] for d in self.dense]
        # the true velocity of dense[i]'s weights is v_scale[i] * velocity[i]["W"]
        self.v_scale = [1.0] * len(self.dense)
        self.folds = 0  # how often a gemm folded the scale back in (the tests check that it happens)
        self._buffers = {}
        self.forget_norm_bounds()

    def buffers(self, n):
        """Activations and input-gradients for a batch of n rows (made once per n)."""
        if n not in self._buffers:
            f32 = np.float32
            self._buffers[n] = {
                "x": np.empty((n, self.dense[0].n_in), f32),
                "mask_x": np.empty((n, self.dense[0].n_in), f32),
                "mask": [np.empty((n, d.n_out), f32) for d in self.dense[:-1]],
                "a": [np.empty((n, d.n_out), f32) for d in self.dense[:-1]],
                "keep": [np.empty((n, d.n_out), bool) for d in self.dense[:-1]],
                "d": [np.empty((n, d.n_out), f32) for d in self.dense[:-1]],
                "logits": np.empty((n, self.out.n_out), f32),
            }
        return self._buffers[n]

    def __call__(self, xb, yb, loss_fn):
        n = xb.shape[0]
        buf = self.buffers(n)
        # ---- forward: keep every layer's input (after dropout) for backward
        a = xb
        if self.in_drop is not None and self.in_drop.rate > 0:
            mask = dropout_mask(self.in_drop.rng, xb.shape, self.in_drop.rate, np.float32,
                                out=buf["mask_x"])
            a = np.multiply(xb, mask, out=buf["x"])
        inputs, masks = [a], []
        for (dense, drop), h, mask_buf in zip(self.hidden, buf["a"], buf["mask"]):
            gemm(1.0, a, dense.params["W"], 0.0, h)
            h += dense.params["b"]
            np.maximum(h, 0.0, out=h)
            mask = None
            if drop is not None and drop.rate > 0:
                mask = dropout_mask(drop.rng, h.shape, drop.rate, np.float32, out=mask_buf)
                h *= mask
            masks.append(mask)
            inputs.append(h)
            a = h
        logits = gemm(1.0, a, self.out.params["W"], 0.0, buf["logits"])
        logits += self.out.params["b"]
        loss, d = loss_fn(logits)

        # ---- backward and update, top layer first
        opt = self.opt
        p = opt.p
        c = -(1.0 - p) * opt.eps if opt.rule == "hinton2012" else -opt.eps
        for i in range(len(self.dense) - 1, -1, -1):
            dense, vel, a = self.dense[i], self.velocity[i], inputs[i]
            W, b = dense.params["W"], dense.params["b"]
            # v_W <- p v_W + c a^T d, with v_W = s u: s <- p s, u <- u + (c / s) a^T d
            s = self.v_scale[i] * p
            if s >= self.MIN_SCALE:
                gemm(c / s, a, d, 1.0, vel["W"], trans_a=True)
            else:                                           # fold s back in: u <- s u + c a^T d
                gemm(c, a, d, s, vel["W"], trans_a=True)
                s = 1.0
                self.folds += 1
            self.v_scale[i] = s
            vel["b"] *= p
            vel["b"] += c * d.sum(axis=0)
            d_below = None
            if i > 0:
                d_below = gemm(1.0, d, W, 0.0, buf["d"][i - 1], trans_b=True)  # d W^T, old W
                # through Dropout (mask) and ReLU ([z > 0]); the kept input a > 0 iff both pass
                if masks[i - 1] is not None:
                    d_below *= masks[i - 1]
                keep = np.greater(a, 0.0, out=buf["keep"][i - 1])
                d_below *= keep
            add_(W, vel["W"], s)                            # W <- W + s u (BLAS axpy)
            b += vel["b"]
            if dense.max_norm is not None:
                self.norm_bounds[i].apply(W, vel["W"], a, d, p, c, v_scale=s)
            d = d_below
        return loss

    def sync_velocity(self):
        """Make the optimizer's velocity arrays the true velocities again (fold each scale
        back in). Call before anything else reads or replaces them; Trainer.train_epoch
        does it at the end of every epoch."""
        for i, vel in enumerate(self.velocity):
            if self.v_scale[i] != 1.0:
                vel["W"] *= np.float32(self.v_scale[i])
                self.v_scale[i] = 1.0

    def forget_norm_bounds(self):
        """Fresh max-norm bounds (dense index -> NormBound, for the layers with max-norm): call
        after changing weights or velocities outside this step; the first step measures."""
        self.norm_bounds = {i: NormBound(d.max_norm) for i, d in enumerate(self.dense) if d.max_norm is not None}


class NormBound:
    """optim.max_norm_ for one layer of the fused step, measuring the column
    lengths only when an upper bound on them reaches the limit (see point 5 of
    the module's docstring). The bounds are float64 vectors over the columns.

    ``exact_checks`` / ``steps`` count how often the lengths were measured.
    """

    SLACK = 1e-3       # relative margin for float32 rounding in the products and sums
    MAX_AGE = 200      # measure at least this often, whatever the bounds say

    def __init__(self, limit):
        self.limit = float(limit)
        self.w = None    # bound on each column's length of W
        self.v = None    # bound on each column's length of the velocity
        self.age = 0     # steps since the last exact measurement
        self.steps = self.exact_checks = 0

    def apply(self, W, vW, a, d, p, c, v_scale=1.0):
        """After W <- W + v, where v <- p v + c a^T d and v = v_scale * vW: rescale any
        column longer than the limit."""
        self.steps += 1
        if self.w is not None:
            # float32 sums of n positive terms are within n * 2^-24 of exact: allowed for
            grow = abs(c) * np.sqrt(float(np.vdot(a, a)) * (1.0 + a.size * 2.0 ** -23)) \
                * np.sqrt(np.einsum("ij,ij->j", d, d).astype(np.float64) * (1.0 + d.shape[0] * 2.0 ** -23))
            self.v = (p * self.v + grow) * (1.0 + self.SLACK)
            self.w = (self.w + self.v) * (1.0 + self.SLACK)
            self.age += 1
            if self.age < self.MAX_AGE and self.w.max() <= self.limit * (1.0 - self.SLACK):
                return W
        # measure: what optim.max_norm_ does, without temporaries
        self.exact_checks += 1
        sq = np.einsum("ij,ij->j", W, W)
        if sq.max() > self.limit * self.limit:
            scale = np.minimum(1.0, self.limit / np.sqrt(np.maximum(sq, 1e-30))).astype(np.float32)
            W *= scale
            sq = sq * scale * scale
        if self.v is None or self.age >= 8:
            # bounds were skipping: refresh the velocity's too (one more pass, now and then)
            self.v = abs(v_scale) * np.sqrt(np.einsum("ij,ij->j", vW, vW).astype(np.float64)) * (1.0 + self.SLACK)
        self.w = np.sqrt(sq.astype(np.float64)) * (1.0 + self.SLACK)
        self.age = 0
        return W
