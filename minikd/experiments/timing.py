"""Where an epoch's time goes: the matrix-product floor and a profile by component.

The floor
---------
A training step of an MLP with L dense layers does 3L - 1 matrix products and
nothing else of comparable cost. For layer l, with input a_l (N, n_in),
output gradient d_l (N, n_out) and weights W_l (n_in, n_out):

    forward          z_l  = a_l @ W_l        (N, n_in) @ (n_in, n_out)    every layer
    weight gradient  dW_l = a_l.T @ d_l      (n_in, N) @ (N, n_out)       every layer
    input gradient   da_l = d_l @ W_l.T      (N, n_out) @ (n_out, n_in)   all but the first

(the first layer's input is the data: nobody needs its gradient). For the
paper's 784-1200-1200-10 teacher that is 3 + 3 + 2 = 8 products, about
2 * 100 * 2.37M * 3 = 1.4 GFLOP per step of 100 images. Those products, run
alone over the batches of one epoch, are the **floor**: no implementation of
the same step on the same BLAS can be faster. ``ProductFloor`` times them with
the BLAS the engine's step uses (NumPy's ``@`` for the reference step,
``minikd.fast.gemm`` -- NumPy's OpenBLAS through its CBLAS interface, or SciPy's
sgemm where that is missing -- for the fused step, cuBLAS on CuPy,
``torch.matmul`` for the PyTorch comparison).

Pairs and medians
-----------------
``alternate`` times two runs' epochs in alternating order, so that a drift of
the machine's speed hits both alike; ``summarize`` turns the repetitions of an
epoch and of its floor into medians and ratios; ``settle`` lets one BLAS's
spinning threads stop before another starts.

The profile
-----------
``profile_epoch`` runs one real epoch of a ``Trainer`` with timers wrapped
around the functions its step calls (the products, the dropout draws,
max-norm, the loss, the jitter, the epoch's gather of its rows): those components are
measured in place, inside the real step. The fused step's remaining
elementwise lines (bias + ReLU, backward gating, applying dropout masks, the
momentum and weight updates) are not functions one can wrap; they are timed
in isolation, with the same shapes, over the same number of batches. What is
left of the epoch's wall time is Python and everything else.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .. import fast
from ..engine.backend import synchronize


# --------------------------------------------------------------------------- pairs and medians
def alternate(first, second, reps, pause=None):
    """``reps`` pairs of epochs of two runs, in alternating order (first, second;
    then second, first; ...), so a drift of the machine's speed hits both alike.
    ``first(r)`` / ``second(r)`` train repetition r's epoch and return its seconds;
    ``pause()``, if given, runs before every epoch. Returns [(first_sec, second_sec)]."""
    out = []
    for r in range(reps):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        secs = [None, None]
        for who in order:
            if pause is not None:
                pause()
            secs[who] = (first, second)[who](r)
        out.append(tuple(secs))
    return out


def summarize(epoch_secs, floor_secs, n_images, flops):
    """Medians of an epoch's repetitions and of its floor's, and their ratio (the median of
    the per-repetition ratios)."""
    ratios = [e / f for e, f in zip(epoch_secs, floor_secs, strict=True)]
    sec = statistics.median(epoch_secs)
    floor = statistics.median(floor_secs)
    return {
        "sec_per_epoch": sec, "sec_per_epoch_runs": epoch_secs,
        "images_per_sec": n_images / sec,
        "floor_sec": floor, "floor_sec_runs": floor_secs,
        "floor_gflops": flops / floor / 1e9,
        "ratio_to_floor": statistics.median(ratios), "ratio_to_floor_runs": ratios,
    }


def settle(seconds):
    """Let the last BLAS's worker threads stop spinning before another BLAS starts."""
    gc.collect()
    time.sleep(seconds)


# --------------------------------------------------------------------------- the floor
@dataclass(frozen=True)
class Product:
    """One matrix product C (m, n) = op(A) @ op(B) with inner dimension k."""
    kind: str        # "forward", "weight-grad" or "input-grad"
    layer: int       # index of the dense layer, 0 = first
    m: int
    k: int
    n: int
    trans_a: bool    # A is stored transposed (k, m)
    trans_b: bool    # B is stored transposed (n, k)

    @property
    def flops(self):
        return 2 * self.m * self.k * self.n


def step_products(sizes, batch):
    """The 3L - 1 products of one training step of an MLP ``sizes`` on ``batch`` rows.

    sizes: (n_in, h_1, ..., n_classes). Returns a list of ``Product`` in the
    order a step does them: forward bottom-up, then per layer top-down its
    weight gradient and (except the first layer) its input gradient. The
    storage layout (which operand is transposed) is the engine's: row-major
    activations (N, n) and weights (n_in, n_out).
    """
    dims = list(zip(sizes[:-1], sizes[1:], strict=True))
    out = [Product("forward", i, batch, n_in, n_out, False, False) for i, (n_in, n_out) in enumerate(dims)]
    for i in range(len(dims) - 1, -1, -1):
        n_in, n_out = dims[i]
        out.append(Product("weight-grad", i, n_in, batch, n_out, True, False))    # a.T @ d
        if i > 0:
            out.append(Product("input-grad", i, batch, n_out, n_in, False, True))  # d @ W.T
    return out


def epoch_batches(n_rows, batch_size):
    """Row counts of an epoch's batches: full batches, then the remainder if any."""
    full, rest = divmod(int(n_rows), int(batch_size))
    return [int(batch_size)] * full + ([rest] if rest else [])


def epoch_flops(sizes, n_rows, batch_size):
    """Floating-point operations of one epoch's products."""
    return sum(p.flops for b in epoch_batches(n_rows, batch_size) for p in step_products(sizes, b))


BLAS_NAMES = {
    "numpy": "NumPy @ (numpy's OpenBLAS)",
    "fast": fast.GEMM_NAME,
    "cublas": "CuPy @ (cuBLAS)",
    "torch": "torch.matmul",
}


def _matmul_for(blas, xp=None):
    """f(a, b, c, trans_a, trans_b) writing op(a) @ op(b) into c with the named BLAS."""
    if blas == "fast":
        def mm(a, b, c, ta, tb):
            fast.gemm(1.0, a, b, 0.0, c, trans_a=ta, trans_b=tb)
        return mm
    if blas == "torch":
        import torch

        def mm(a, b, c, ta, tb):
            torch.matmul(a.T if ta else a, b.T if tb else b, out=c)
        return mm
    if blas in ("numpy", "cublas"):
        def mm(a, b, c, ta, tb):
            xp.matmul(a.T if ta else a, b.T if tb else b, out=c)
        return mm
    raise ValueError(f"unknown BLAS {blas!r}: choose one of {', '.join(BLAS_NAMES)}")


class ProductFloor:
    """The products of an epoch alone, on preallocated float32 operands.

    sizes, n_rows, batch_size: the network and the epoch being floored.
    blas: "numpy", "fast" (minikd.fast.gemm), "cublas" (with xp = cupy) or "torch" (``device``).
    ``time_epoch()`` returns the wall seconds of one epoch's products.
    """

    def __init__(self, sizes, n_rows, batch_size, *, blas, xp=np, device="cpu", seed=0):
        self.sizes, self.blas, self.xp = tuple(sizes), blas, xp
        self.batches = epoch_batches(n_rows, batch_size)
        self.flops = epoch_flops(sizes, n_rows, batch_size)
        self._mm = _matmul_for(blas, xp)
        rng = np.random.default_rng(seed)
        if blas == "torch":
            import torch

            def new(shape):
                return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(device)

            self._sync = (lambda: torch.cuda.synchronize()) if str(device).startswith("cuda") else (lambda: None)
        else:
            def new(shape):
                return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

            self._sync = lambda: synchronize(xp)
        # Operands for every distinct batch size: activations/gradients (N, n),
        # weights (n_in, n_out), outputs written in place (beta = 0).
        self._ops = {}
        for b in sorted(set(self.batches)):
            ops = []
            for p in step_products(self.sizes, b):
                a = new((p.k, p.m) if p.trans_a else (p.m, p.k))
                bb = new((p.n, p.k) if p.trans_b else (p.k, p.n))
                ops.append((a, bb, new((p.m, p.n)), p.trans_a, p.trans_b))
            self._ops[b] = ops

    def step(self, batch):
        for a, b, c, ta, tb in self._ops[batch]:
            self._mm(a, b, c, ta, tb)

    def warm_up(self, steps=3):
        for _ in range(steps):
            self.step(self.batches[0])
        self._sync()

    def time_epoch(self):
        self._sync()
        t0 = time.perf_counter()
        for b in self.batches:
            self.step(b)
        self._sync()
        return time.perf_counter() - t0


# --------------------------------------------------------------------------- the profile
class _Timers:
    """Wall time per category, exclusive: time spent in a wrapped function
    called from inside another wrapped function counts for the inner one only."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._stack = []

    def wrap(self, fn, category):
        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                inner = self._stack.pop()
                self.seconds[category] += dt - inner
                self.calls[category] += 1
                if self._stack:
                    self._stack[-1] += dt
        return timed


@contextmanager
def _replaced(targets):
    """Temporarily set ``obj.name = value`` for each (obj, name, value); always restored."""
    saved = []
    try:
        for obj, name, value in targets:
            had = name in vars(obj)
            saved.append((obj, name, had, vars(obj).get(name)))
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, had, old in reversed(saved):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)


def _time_fused_elementwise(step, batches, momentum, grad_scale):
    """Seconds of the fused step's unwrappable elementwise lines over ``batches``,
    timed in isolation on scratch arrays of the same shapes (the model is untouched).

    Returns {"activations": s, "dropout (apply masks)": s, "bias momentum/update": s}
    (the weights' W += v goes through ``fast.add_``, timed in place).
    """
    f32 = np.float32
    rng = np.random.default_rng(0)
    dense = step.dense
    hidden_drop = [drop is not None and drop.rate > 0 for _, drop in step.hidden]
    in_drop = step.in_drop is not None and step.in_drop.rate > 0
    b = [np.zeros(d.n_out, f32) for d in dense]
    vb = [np.zeros(d.n_out, f32) for d in dense]
    out = {"activations": 0.0, "dropout (apply masks)": 0.0, "bias momentum/update": 0.0}
    for n in sorted(set(batches)):
        reps = batches.count(n)
        x = rng.random((n, dense[0].n_in), dtype=f32)
        x_out = np.empty_like(x)
        h = [rng.standard_normal((n, d.n_out), dtype=f32) for d in dense]
        d = [rng.standard_normal((n, d_.n_out), dtype=f32) for d_ in dense]
        masks = [(rng.random((n, d_.n_out)) > 0.5).astype(f32) * f32(2) for d_ in dense]
        x_mask = (rng.random(x.shape) > 0.2).astype(f32) * f32(1.25)
        keep = [np.empty((n, d_.n_out), bool) for d_ in dense]

        t0 = time.perf_counter()
        for _ in range(reps):
            for i in range(len(dense) - 1):          # forward: bias + ReLU
                h[i] += b[i]
                np.maximum(h[i], 0.0, out=h[i])
            h[-1] += b[-1]                           # logits bias
            for i in range(len(dense) - 1, 0, -1):   # backward: ReLU gate
                np.greater(h[i - 1], 0.0, out=keep[i - 1])
                d[i - 1] *= keep[i - 1]
        out["activations"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        # The same buffers are scaled again and again, so their values grow
        # without bound; only the time matters here, not the numbers.
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(reps):
                if in_drop:
                    np.multiply(x, x_mask, out=x_out)
                for i, on in enumerate(hidden_drop):
                    if on:
                        h[i] *= masks[i]                 # forward
                        d[i] *= masks[i]                 # backward
        out["dropout (apply masks)"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        for _ in range(reps):
            for i in range(len(dense)):
                vb[i] *= momentum
                vb[i] += grad_scale * d[i].sum(axis=0)
                b[i] += vb[i]
        out["bias momentum/update"] += time.perf_counter() - t0
    return out


def profile_epoch(trainer, epoch):
    """Run ``trainer.train_epoch(epoch)`` with timers and return the profile.

    Returns {"step": "fused" | "reference", "epoch_sec": s, "rows": [(component,
    seconds, how)]} where how is "in place" (timers around the real calls),
    "isolated" (same operations timed alone) or "rest" (epoch minus the others).
    NumPy only: on CuPy the timers would have to synchronise the device on
    every call, which changes what they measure.
    """
    from .. import train
    from ..engine import optim
    from ..engine.backend import is_cupy
    from ..engine.layers import Dropout
    from ..fast import fused_step, norm_bound
    if is_cupy(trainer.xp):
        raise ValueError("the profile by component runs on the NumPy backend only (use --backend numpy)")
    timers = _Timers()
    w = timers.wrap
    targets = [(trainer, "loss_and_grad", w(trainer.loss_and_grad, "loss")),
               (trainer, "kl_by_batch", w(trainer.kl_by_batch, "loss")),
               (trainer, "epoch_rows", w(trainer.epoch_rows, "batch gather")),
               (train, "jitter_images", w(train.jitter_images, "jitter"))]
    targets += [(layer, "sampler", w(layer.sampler, "dropout (draw masks)"))
                for layer in trainer.model.layers if isinstance(layer, Dropout)]
    step = trainer.step_impl
    if step is not None:
        kind = "fused"
        targets += [(fused_step, "gemm", w(fused_step.gemm, "products")),
                    (fused_step, "add_", w(fused_step.add_, "momentum/update")),
                    (norm_bound.NormBound, "apply", w(norm_bound.NormBound.apply, "max-norm"))]
    else:
        kind = "reference"
        opt = trainer.optimizer
        targets += [(optim, "max_norm_", w(optim.max_norm_, "max-norm")),
                    (opt, "step", w(opt.step, "momentum/update"))]
        names = {"Dense": "Dense (products + bias)", "ReLU": "activations", "Dropout": "dropout (apply masks)"}
        for layer in trainer.model.layers:
            cat = names.get(type(layer).__name__, type(layer).__name__)
            targets += [(layer, "forward", w(layer.forward, cat)), (layer, "backward", w(layer.backward, cat))]
    with _replaced(targets):
        _, sec = trainer.train_epoch(epoch)

    rows = {name: (s, "in place") for name, s in timers.seconds.items()}
    if step is not None:
        opt = trainer.optimizer
        grad_scale = -(1.0 - opt.momentum) * opt.lr if opt.rule == "hinton2012" else -opt.lr
        batches = epoch_batches(trainer.x_train.shape[0], trainer.cfg.batch_size)
        with np.errstate(all="ignore"):  # buffers scaled over and over: only the time matters
            isolated = _time_fused_elementwise(step, batches, opt.momentum, grad_scale)
        for name, s in isolated.items():
            if name in rows:  # never the case today; keep both rather than lose one
                name += " (isolated)"
            rows[name] = (s, "isolated")
    rest = sec - sum(s for s, _ in rows.values())
    order = ["products", "Dense (products + bias)", "activations", "dropout (draw masks)", "dropout (apply masks)",
             "jitter", "batch gather", "momentum/update", "bias momentum/update", "max-norm", "loss"]
    out = [(name, *rows[name]) for name in order if name in rows]
    out += [(name, *v) for name, v in rows.items() if name not in order]
    out.append(("Python/other", rest, "rest"))
    result = {"step": kind, "epoch_sec": sec, "rows": out, "calls": dict(timers.calls)}
    if step is not None and step.norm_bounds:
        # how often the fused step's max-norm had to measure the column lengths (fast.NormBound)
        result["max_norm_measured"] = {"exact": sum(b.exact_checks for b in step.norm_bounds.values()),
                                       "steps": sum(b.steps for b in step.norm_bounds.values())}
    return result
