"""A fused CPU training step for the paper's MLPs: the same arithmetic as
``minikd.train.ReferenceStep``, rearranged for speed. Read engine/layers.py,
engine/losses.py and engine/optim.py first: this file only reorders what they do.

Notation (docs/notation.md, in ASCII): Delta_W is a weight matrix's velocity
(engine/optim.py's ``velocity``), mu the momentum mu_t (``optimizer.momentum``,
the local ``mu``), eps the learning rate eps_t (``optimizer.lr``), lambda the
max-norm limit. For one Dense layer, a (N, n_in) is its input after dropout and
d = dL/dh (N, n_out) the gradient of its output h. coef = -(1 - mu) * eps is
the factor of the gradient in the update (the local ``coef``).

What changes, and why it is allowed:

1. **Momentum folded into the weight-gradient product, with beta = 1.**
   BLAS computes C <- alpha * A @ B + beta * C in one pass, so the 2012 update

       Delta_W <- mu * Delta_W - (1 - mu) * eps * (a^T @ d)

   is a single gemm (BLAS's alpha * A @ B + beta * C, whose alpha and beta
   are BLAS's names, not symbols of the maths) with alpha = coef, beta = mu,
   C = Delta_W. The reference path instead writes the gradient, then reads it
   back twice. OpenBLAS applies a beta other than 1 in a separate pass over C
   before it accumulates, so the step goes one better: it keeps the velocity
   as Delta_W = s * U, a scalar s times the stored array U. Then
   mu * Delta_W is just s <- mu * s (no pass), and U <- U + (coef / s) * a^T d
   is a gemm with beta = 1. The weight update W <- W + Delta_W becomes
   W <- W + s * U, the same axpy with another alpha. When s falls below
   ``MIN_SCALE`` the next gemm uses beta = s and leaves s = 1; ``end_epoch``
   (at every epoch's end) does the same, so the optimizer's velocity is the
   true Delta_W whenever anyone else reads it. Only the float32 rounding
   differs from the reference.
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
   The weight update W += Delta_W, a pass over every weight, goes through the same
   OpenBLAS's ``saxpy`` (``add_``), which splits it over both cores; NumPy's
   own elementwise loops use one.
4. **Weights updated as soon as their layer's backward is done**, after the
   input gradient of that layer has been computed with the old weights, so
   the result is the one the two-phase reference computes.
5. **Max-norm's column lengths measured only when a column could be too
   long.** Measuring them is a pass over the weights, like W += Delta_W. But
   a column's length can only grow by the length of its update, and that has
   a cheap upper bound from the two small matrices of the weight-gradient
   product: column j of a^T d has length <= ||a||_F ||d_j|| (Cauchy-Schwarz),
   so with momentum, ||Delta_W_j|| <= mu * bound(Delta_W_j) + |coef| ||a||_F ||d_j||,
   and ||W_j + Delta_W_j|| <= bound(W_j) + bound(Delta_W_j). While every
   column's bound stays under the limit lambda (with a margin for float32
   rounding) no column can be
   rescaled, so the reference's rescale would change nothing and the pass is
   skipped; otherwise the lengths are measured exactly, as the reference does
   (``NormBound``).

The fused step covers float32 NumPy models built by ``layers.mlp``; anything
else (CuPy, float64, other layer orders) uses the reference step.
"""
from __future__ import annotations

import numpy as np

from ..engine.layers import Dense, Dropout, ReLU
from .blas import add_, gemm
from .norm_bound import NormBound


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
    """The training step's interface (``minikd.train.ReferenceStep``), fused:
    ``begin_epoch()``, ``step(xb, rng, loss_fn) -> parts``, ``end_epoch()``.

    ``rng`` draws the dropout masks, through each Dropout layer's own sampler,
    so both steps draw the same masks. ``loss_fn(logits) -> (parts, dlogits)``
    supplies the loss (parts: its values for the log, handed back), so the same
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
        # the true velocity Delta_W of dense[i]'s weights is v_scale[i] * velocity[i]["W"] (s * U)
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

    def __call__(self, xb, rng, loss_fn):
        n = xb.shape[0]
        buf = self.buffers(n)
        # ---- forward: keep every layer's input (after dropout) for backward
        a = xb
        if self.in_drop is not None and self.in_drop.rate > 0:
            mask = self.in_drop.draw_mask(rng, xb.shape, np.float32, out=buf["mask_x"])
            a = np.multiply(xb, mask, out=buf["x"])
        inputs, masks = [a], []
        for (dense, drop), h, mask_buf in zip(self.hidden, buf["a"], buf["mask"], strict=True):
            gemm(1.0, a, dense.params["W"], 0.0, h)
            h += dense.params["b"]
            np.maximum(h, 0.0, out=h)
            mask = None
            if drop is not None and drop.rate > 0:
                mask = drop.draw_mask(rng, h.shape, np.float32, out=mask_buf)
                h *= mask
            masks.append(mask)
            inputs.append(h)
            a = h
        logits = gemm(1.0, a, self.out.params["W"], 0.0, buf["logits"])
        logits += self.out.params["b"]
        parts, d = loss_fn(logits)

        # ---- backward and update, top layer first
        opt = self.opt
        mu = opt.momentum
        coef = -(1.0 - mu) * opt.lr if opt.rule == "hinton2012" else -opt.lr
        for i in range(len(self.dense) - 1, -1, -1):
            dense, vel, a = self.dense[i], self.velocity[i], inputs[i]
            W, b = dense.params["W"], dense.params["b"]
            # Delta_W <- mu Delta_W + coef a^T d, with Delta_W = s U: s <- mu s, U <- U + (coef / s) a^T d
            s = self.v_scale[i] * mu
            if s >= self.MIN_SCALE:
                gemm(coef / s, a, d, 1.0, vel["W"], trans_a=True)
            else:                                           # fold s back in: U <- s U + coef a^T d
                gemm(coef, a, d, s, vel["W"], trans_a=True)
                s = 1.0
                self.folds += 1
            self.v_scale[i] = s
            vel["b"] *= mu
            vel["b"] += coef * d.sum(axis=0)
            d_below = None
            if i > 0:
                d_below = gemm(1.0, d, W, 0.0, buf["d"][i - 1], trans_b=True)  # d W^T, old W
                # through Dropout (mask k) and ReLU ([h > 0]); the kept input a > 0 iff both pass
                if masks[i - 1] is not None:
                    d_below *= masks[i - 1]
                keep = np.greater(a, 0.0, out=buf["keep"][i - 1])
                d_below *= keep
            add_(W, vel["W"], s)                            # W <- W + s U (BLAS axpy)
            b += vel["b"]
            if dense.max_norm is not None:
                self.norm_bounds[i].apply(W, vel["W"], a, d, mu, coef, v_scale=s)
            d = d_below
        return parts

    def begin_epoch(self):
        """Fresh max-norm bounds: weights or velocities may have been loaded or changed
        since the last epoch (a resume, a test); the first step measures."""
        self.forget_norm_bounds()

    def end_epoch(self):
        """Make the optimizer's velocity arrays the true velocities again (fold each scale
        back in), so that a checkpoint or anything else reads the true Delta_W."""
        for i, vel in enumerate(self.velocity):
            if self.v_scale[i] != 1.0:
                vel["W"] *= np.float32(self.v_scale[i])
                self.v_scale[i] = 1.0

    def forget_norm_bounds(self):
        """Fresh max-norm bounds (dense index -> NormBound, for the layers with max-norm): call
        after changing weights or velocities outside this step; the first step measures."""
        self.norm_bounds = {i: NormBound(d.max_norm) for i, d in enumerate(self.dense) if d.max_norm is not None}
