"""The training loop: the one place where data crosses between host and device.

    data -> model.forward -> loss (+ gradient) -> model.backward -> optimizer.step

One ``StageConfig`` describes a whole training stage (teacher, student or
distilled student): architecture, regularisation, schedule and loss. The loop

* moves the data to the backend once, before the first epoch;
* gives every epoch its own random generator, seeded by (seed, epoch), for the
  shuffle, the jitter and the dropout masks -- so a run resumed at epoch t
  draws exactly what an uninterrupted run would;
* reads numbers back to the host once per epoch (loss, test errors), never per
  step, so a GPU never waits on Python;
* stops with ``DivergenceError`` when the network dies or explodes (NaN or
  exploding loss, a dead layer), checked once per epoch, or when at its last
  epoch its predictions are collapsed to one class or at chance: the checks
  are in minikd/health.py.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from . import fast as fast_path
from .data.augment import jitter as jitter_images
from .engine.backend import (Array, ArrayModule, Generator, backend_name, get_xp, make_rng, shuffled_indices,
                             synchronize, to_host)
from .engine.layers import Sequential, mlp
from .engine.losses import (check_labels, count_errors, cross_entropy, distillation_parts, kl_rows, log_softmax,
                            logit_matching, one_hot, softmax)
from .engine.optim import ExponentialDecay, LinearRamp, MomentumSGD
from .config import StageConfig, warn_if_unguarded  # StageConfig: also minikd.train.StageConfig, as callers import it
from .health import DivergenceError, HealthCheck  # noqa: F401 (DivergenceError: re-exported for callers)


def build_model(cfg: StageConfig, xp: ArrayModule, *, fast: bool = False) -> Sequential:
    """The stage's network, weights drawn from a generator seeded by cfg.seed.

    Its Dropout layers draw their masks with the engine's own ``bernoulli_mask``,
    the one layers.py shows; ``fast=True`` (the fast path's training) plugs in
    the fast path's sampler for ``xp`` instead: the same distribution from fewer
    random bits, so other masks. To compare the two steps, hand both one model
    built the same way.
    """
    rng = make_rng(xp, cfg.seed, 0)
    return mlp(cfg.sizes, rng=rng, xp=xp, input_dropout=cfg.input_dropout,
               hidden_dropout=cfg.hidden_dropout, max_norm=cfg.max_norm, init_std=cfg.init_std,
               mask_sampler=fast_path.mask_sampler(xp) if fast else None)


def build_optimizer(cfg: StageConfig, model: Sequential) -> MomentumSGD:
    """The stage's momentum SGD: eps_t decaying (after its warm-up), momentum mu_t ramped."""
    return MomentumSGD(model, lr=ExponentialDecay(cfg.lr, cfg.lr_decay, cfg.lr_warmup),
                       momentum=LinearRamp(cfg.momentum_start, cfg.momentum_end, cfg.momentum_ramp),
                       rule=cfg.rule)


def _as_float_rows(x: Array, dtype: Any, name: str) -> Array:
    """x (N, D) as ``dtype`` (no copy when it already is); ValueError unless x holds floats."""
    if x.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {x.dtype}: give float rows scaled as in training, e.g. "
                         f"minikd.data.to_float(images) for uint8 images (x / 255)")
    return x.astype(dtype, copy=False)


def predict_logits(model: Sequential, x: Array, batch_size: int = 2000) -> Array:
    """Eval-mode logits for x (N, D) on the model's backend, in chunks."""
    chunks = [model.forward(x[i:i + batch_size], train=False) for i in range(0, x.shape[0], batch_size)]
    if len(chunks) == 1:
        return chunks[0]
    return get_xp(x).concatenate(chunks, axis=0)


def bound_rows_(d: Array, limit: float, scale_out: Array | None = None) -> Array:
    """Rescale, in place, each row of d (N, C) whose Euclidean length exceeds ``limit``.

    d_n <- d_n * min(1, limit / ||d_n||): the direction of every row's gradient
    is kept, only its length is bounded. On the device, with no host read.
    scale_out: an (N, 1) buffer that receives each row's factor min(1, limit / ||d_n||)
    (the training loop's record of how often the bound acts, read once per epoch).
    """
    xp = get_xp(d)
    norms = xp.sqrt((d * d).sum(axis=1, keepdims=True))
    scale = xp.divide(limit, xp.maximum(norms, limit), out=scale_out).astype(d.dtype, copy=False)
    d *= scale
    return d


def teacher_logits(teacher: Sequential, x_transfer: Array, batch_size: int = 2000) -> Array:
    """The teacher's logits v for every row of the transfer set, (N, C): what the
    soft targets q = softmax(v / T) of distillation are computed from, at any T.

    Computed once, before the student's first epoch, in eval mode (no dropout)
    and on the un-jittered images (Hinton et al. 2015, section 3): the soft
    targets are a fixed function of the image, so each batch looks up the rows
    it holds (``Trainer`` indexes them with the batch's row ids). The logits,
    not the probabilities, are kept, so any T can be applied later.
    """
    return predict_logits(teacher, x_transfer, batch_size=batch_size)


def count_test_errors(model: Sequential, x: Array, y: Array, batch_size: int = 2000) -> Array:
    """Misclassified rows of x against their labels y (the labels ell of docs/notation.md), as a 0-d
    device array (no host read)."""
    total = 0
    for i in range(0, x.shape[0], batch_size):
        total = total + count_errors(model.forward(x[i:i + batch_size], train=False), y[i:i + batch_size])
    return total


@dataclass
class EpochLog:
    epoch: int
    loss: float
    test_errors: int
    sec: float          # wall time of the training pass alone
    lr: float
    momentum: float
    # distilling, the loss in parts: loss = hard_weight * hard_loss + soft_weight * T^2 (H(q) + KL(q || p)),
    # and soft_kl = soft_weight * T^2 * KL(q || p), which falls to 0 as the student matches the teacher;
    # with soft_loss="logit_matching": loss = hard_weight * hard_loss + logit_mse (soft_weight times it)
    hard_loss: float | None = None
    soft_kl: float | None = None
    logit_mse: float | None = None
    # with a per-row gradient bound: the share of the epoch's rows it rescaled, and their mean scale
    bound_clipped: float | None = None
    bound_scale: float | None = None


class ReferenceStep:
    """Forward, loss, backward, update: the readable training step.

    The interface every training step has (the fast path's ``FusedStep`` too):
    ``begin_epoch()``, ``step(xb, rng, loss_fn) -> parts``, ``end_epoch()``,
    where ``rng`` draws the dropout masks and ``loss_fn(logits)`` returns
    ``(parts, dL/dlogits)``: parts, the batch's loss and what the log shows of
    it (``Trainer.loss_and_grad``, which writes them into the epoch's table), are
    handed back.
    """

    def __init__(self, model: Sequential, optimizer: MomentumSGD) -> None:
        self.model, self.optimizer = model, optimizer

    def begin_epoch(self) -> None:
        pass

    def __call__(self, xb: Array, rng: Generator, loss_fn: Callable[[Array], tuple[Array, Array]]) -> Array:
        logits = self.model.forward(xb, train=True, rng=rng)
        parts, dlogits = loss_fn(logits)
        self.model.backward(dlogits, input_grad=False)   # xb is the data: nobody needs dL/dxb
        self.optimizer.step()
        return parts

    def end_epoch(self) -> None:
        pass


class Trainer:
    """Runs one stage. ``x_*`` are float (N, D) and ``y_*`` int (N,) arrays on
    the backend ``xp``; ``soft_logits`` (N, C) are the teacher's cached logits
    for the training rows (distillation only, ``teacher_logits``),
    indexed by the same row ids as the batches, so shuffling cannot misalign
    them.

    ``fast=True`` (the default, as in every ``minikd`` command) uses the CPU fast
    path's fused step where it applies (NumPy, float32): the same arithmetic in
    fewer passes over memory, its numbers equal to the reference step's to float32
    rounding (tests/fast/test_fused_step.py), and its dropout masks drawn by the
    fast path's sampler. ``fast=False`` runs ``ReferenceStep``, the readable
    forward, loss, backward and update that the teaching material shows and asks
    for by name. ``step_impl`` is the fast step, or None.
    ``flat=True`` (with ``fast=True``, off by default until a GPU has run it) uses,
    where the fused step does not apply (CuPy), ``minikd.fast.FlatStep``: one buffer
    for all parameters, the same numbers as the reference step in 20 launches fewer.
    """

    def __init__(self, cfg: StageConfig, xp: ArrayModule, x_train: Array, y_train: Array, x_test: Array,
                 y_test: Array, *, soft_logits: Array | None = None, model: Sequential | None = None,
                 fast: bool = True, flat: bool = False) -> None:
        self.cfg, self.xp = cfg, xp
        self.model = model if model is not None else build_model(cfg, xp, fast=fast)
        # Inputs in the model's own float type, cast once here (float64 rows, e.g. X / 255.0 in a
        # notebook, would otherwise make every product mixed-precision, or stop the fused step).
        dtype = self.model.dense_layers()[0].params["W"].dtype
        x_train = _as_float_rows(x_train, dtype, "x_train")
        x_test = _as_float_rows(x_test, dtype, "x_test")
        self.x_train, self.y_train = x_train, y_train
        self.x_test, self.y_test = x_test, y_test
        self.soft_logits = soft_logits
        n_classes = cfg.sizes[-1]
        # Labels are checked once here, so the per-step losses can skip the check
        # (on CuPy it would cost a device-to-host read every step).
        check_labels(y_train, n_classes)
        check_labels(y_test, n_classes)
        if soft_logits is not None and tuple(soft_logits.shape) != (x_train.shape[0], n_classes):
            raise ValueError(f"teacher logits have shape {tuple(soft_logits.shape)}, expected "
                             f"({x_train.shape[0]}, {n_classes}) for the transfer set")
        if x_train.shape[1] != cfg.sizes[0]:
            raise ValueError(f"inputs have {x_train.shape[1]} features, the model expects {cfg.sizes[0]}")
        self.optimizer = build_optimizer(cfg, self.model)
        self.start_epoch = 0
        self.history: list[EpochLog] = []
        # Per-row targets, computed once (they do not change): the labels as one-hot rows (smoothed:
        # (1 - smoothing) onehot + smoothing / C), and, distilling, the teacher's q = softmax(v / T) and log q
        # (the log's KL part needs it), or with logit matching the teacher's logits v themselves.
        self._targets = one_hot(y_train, n_classes, dtype)
        if cfg.label_smoothing:
            from .targets import smoothed_labels
            self._targets = smoothed_labels(y_train, n_classes, cfg.label_smoothing, dtype)
        self._q = self._log_q = self._v = None
        initial_loss = None
        if soft_logits is not None and cfg.soft_loss == "logit_matching":
            self._v = soft_logits.astype(dtype, copy=False)
            # the untrained network's loss: its logits start near 0, so the matching term is v's own
            v64 = soft_logits.astype(xp.float64)
            centred = v64 - v64.mean(axis=1, keepdims=True)
            spread = float(to_host((centred * centred).sum(axis=1).mean())) / (2 * n_classes)
            initial_loss = cfg.hard_weight * math.log(n_classes) + cfg.soft_weight * spread
        elif soft_logits is not None:
            self._q = softmax(soft_logits, cfg.temperature).astype(dtype, copy=False)
            self._log_q = log_softmax(soft_logits, cfg.temperature).astype(dtype, copy=False)
        warn_if_unguarded(cfg, distilling=soft_logits is not None)
        self.health = HealthCheck(cfg, x_train, y_train, distilling=soft_logits is not None,
                                  initial_loss=initial_loss)
        # The epoch's table of batch losses: [loss], or distilling [loss, hard, soft part].
        self._loss_columns = 1 if soft_logits is None else 3
        self.step_impl = fast_path.training_step(self.model, self.optimizer, xp, flat=flat) if fast else None
        self.step = self.step_impl if self.step_impl is not None else ReferenceStep(self.model, self.optimizer)

    # -- one step -----------------------------------------------------------------
    def loss_and_grad(self, logits: Array, batch: dict[str, Array], out: Array) -> tuple[Array, Array]:
        """The stage's loss of a batch, as ``(parts, dL/dlogits)``.

        ``batch``: the batch's rows of ``epoch_rows`` (each row's own targets). parts:
        [loss], or distilling [loss, hard cross-entropy] (``distillation_parts``, which
        also keeps the batch's log p in ``batch["log_p"]`` for the log's KL part), each
        the batch's mean, written into ``out``, the batch's row of the epoch's table.
        """
        cfg = self.cfg
        if self.soft_logits is None:
            _, dlogits = cross_entropy(logits, batch["targets"], check=False, out=out[0, ...])
            if cfg.hard_weight != 1.0:   # the distilled stage's hard term alone (a plain student's weight is 1)
                out[0, ...] *= cfg.hard_weight
                dlogits *= cfg.hard_weight
        elif cfg.soft_loss == "logit_matching":
            _, dlogits = logit_matching(logits, batch["v"], check=False, out=out[2, ...])
            dlogits *= cfg.soft_weight
            out[2, ...] *= cfg.soft_weight
            out[1, ...] = 0.0
            if cfg.hard_weight != 0.0:
                _, dhard = cross_entropy(logits, batch["targets"], check=False, out=out[1, ...])
                dlogits += cfg.hard_weight * dhard
            out[0, ...] = cfg.hard_weight * out[1, ...] + out[2, ...]
        else:
            targets = batch["targets"] if cfg.hard_weight != 0.0 else None
            _, dlogits = distillation_parts(logits, batch["q"], targets, temperature=cfg.temperature,
                                            hard_weight=cfg.hard_weight, soft_weight=cfg.soft_weight,
                                            out=out[:2], log_p_out=batch["log_p"])
        if cfg.grad_bound is not None:
            bound_rows_(dlogits, cfg.grad_bound / logits.shape[0], scale_out=batch["bound_scale"])
        return out[:2] if self.soft_logits is not None else out[:1], dlogits

    def epoch_rows(self, perm: Array) -> dict[str, Array]:
        """The training rows in the epoch's shuffled order ``perm``, gathered once per epoch:
        {"x", "targets"} and, distilling, {"q", "log_q"} and room for each step's log p,
        each (N, ...). A batch is a slice of each: no gather per step, and a row's targets
        cannot part from its image."""
        rows = {"x": self.x_train[perm], "targets": self._targets[perm]}
        if self.cfg.grad_bound is not None:   # each row's factor under the bound, written by the step
            rows["bound_scale"] = self.xp.empty((perm.shape[0], 1), dtype=self._targets.dtype)
        if self._v is not None:
            rows["v"] = self._v[perm]
        elif self.soft_logits is not None:
            rows["q"], rows["log_q"] = self._q[perm], self._log_q[perm]
            rows["log_p"] = self.xp.empty(rows["q"].shape, dtype=rows["q"].dtype)
        return rows

    def kl_by_batch(self, rows: dict[str, Array], batch_size: int, out: Array) -> Array:
        """The log's KL part of every batch of the epoch, into ``out`` (n_batches,): soft_weight T^2
        times the batch's mean KL(q || p), p as the step saw it (``rows["log_p"]``). Computed once per
        epoch, for all batches at once; the numbers are those each step would have computed."""
        kl = kl_rows(rows["q"], rows["log_q"], rows["log_p"])   # (N,), rows in batch order
        n_full = kl.shape[0] // batch_size
        means = [kl[:n_full * batch_size].reshape(n_full, batch_size).mean(axis=1)]   # the full batches
        if kl.shape[0] > n_full * batch_size:
            means.append(kl[n_full * batch_size:].mean(keepdims=True))                # the last, shorter one
        t = self.cfg.temperature
        return self.xp.multiply(self.xp.concatenate(means), self.cfg.soft_weight * t * t, out=out)

    def batch_inputs(self, xb: Array, rng: Generator) -> Array:
        """The batch's images as the network sees them: jittered (the teacher) or as they are."""
        if self.cfg.jitter:
            h, w = self.cfg.image_shape
            xb = jitter_images(xb.reshape(-1, h, w), rng, max_shift=self.cfg.jitter).reshape(xb.shape)
        return xb

    # -- one epoch ----------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[Array, float]:
        """One pass over the training set; returns (mean loss as a 0-d device array, seconds).

        One generator per epoch, seeded by (seed, epoch), draws the shuffle, the
        jitter and the dropout masks, in that order within each batch.
        """
        xp, cfg = self.xp, self.cfg
        rng = make_rng(xp, cfg.seed, 1, epoch)
        self.optimizer.set_epoch(epoch)
        self.step.begin_epoch()
        n = self.x_train.shape[0]
        synchronize(xp)
        t0 = time.perf_counter()
        rows = self.epoch_rows(shuffled_indices(rng, n))
        starts = range(0, n, cfg.batch_size)
        # One row per batch, which the loss writes its parts into: nothing is summed per step.
        table = xp.empty((len(starts), self._loss_columns), dtype=rows["x"].dtype)
        try:
            for b, start in enumerate(starts):
                batch = {key: rows_of[start:start + cfg.batch_size] for key, rows_of in rows.items()}
                xb = self.batch_inputs(batch["x"], rng)
                # the step calls loss_fn once, now: the defaults bind this batch's rows and table row
                self.step(xb, rng, lambda logits, batch=batch, row=table[b]: self.loss_and_grad(logits, batch, row))
        finally:
            self.step.end_epoch()
        if self._q is not None:
            self.kl_by_batch(rows, cfg.batch_size, out=table[:, 2])
        synchronize(xp)
        # The sums are float64, adding the rows in order: at a distilled loss of ~900 a float32 sum over
        # 600 steps rounds by more than the differences a reader compares.
        self.epoch_means = table.astype(xp.float64).sum(axis=0) / len(starts)   # [loss] or [loss, hard, soft]
        self.epoch_bound = xp.zeros(0, dtype=xp.float64)   # with the bound: [rows rescaled, sum of their scales]
        if "bound_scale" in rows:
            scale = rows["bound_scale"].astype(xp.float64)
            clipped = scale < 1
            self.epoch_bound = xp.stack([clipped.sum().astype(xp.float64), (scale * clipped).sum()])
        return self.epoch_means[0], time.perf_counter() - t0

    def fit(self, *, on_epoch: Callable[[EpochLog], None] | None = None, eval_every: int = 1) -> list[EpochLog]:
        """Train from ``self.start_epoch`` to ``cfg.epochs``; returns the history."""
        for epoch in range(self.start_epoch, self.cfg.epochs):
            _, sec = self.train_epoch(epoch)
            last = epoch == self.cfg.epochs - 1
            read = [float(x) for x in to_host(self.xp.concatenate([self.epoch_means, self.epoch_bound]))]  # one read
            means, bound = read[:self._loss_columns], read[self._loss_columns:]
            loss_host = means[0]
            if self.health is not None:   # None: no checks (tests of arithmetic on runs too short to learn)
                self.health.check(self.model, epoch, loss_host, self.optimizer.lr, last=last)
            parts = {}
            if self.soft_logits is not None:
                soft = "logit_mse" if self._v is not None else "soft_kl"
                parts = {"hard_loss": means[1] if self.cfg.hard_weight != 0.0 else None, soft: means[2]}
            if bound:
                parts["bound_clipped"] = bound[0] / self.x_train.shape[0]
                parts["bound_scale"] = bound[1] / bound[0] if bound[0] else None
            errors = -1
            if last or (epoch + 1) % eval_every == 0:
                errors = int(to_host(count_test_errors(self.model, self.x_test, self.y_test)))
            log = EpochLog(epoch, loss_host, errors, sec, self.optimizer.lr, self.optimizer.momentum, **parts)
            self.history.append(log)
            self.start_epoch = epoch + 1
            if on_epoch is not None:
                on_epoch(log)
        return self.history

    @property
    def backend(self) -> str:
        """"numpy" or "cupy"."""
        return backend_name(self.xp)
