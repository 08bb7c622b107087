"""The CPU fast path: the same arithmetic as the engine, faster. Optional reading.

Training plugs it in through one narrow interface of two functions:
``mask_sampler(xp)``, the dropout-mask sampler to build the model with, and
``training_step(model, optimizer, xp)``, a training step with the interface of
``minikd.train.ReferenceStep`` (``begin_epoch``, ``step(xb, rng,
loss_fn)``, ``end_epoch``), or None where no faster step applies. The Trainer knows nothing else of what is here;
a GPU fast path would go behind the same two functions.

    flat_step.py   a GPU step with one flat buffer for all parameters (off by default)
    masks.py       a dropout-mask sampler cut from the generator's raw bits
    blas.py        gemm / axpy with a beta, on NumPy's own OpenBLAS
    norm_bound.py  max-norm that measures column lengths only when needed
    fused_step.py  forward, loss, backward and update fused into one pass
"""
from __future__ import annotations

import numpy as np

from .blas import GEMM_BLAS, GEMM_NAME, add_, gemm  # noqa: F401 (re-exported)
from .flat_step import FlatStep
from .fused_step import FusedStep
from .masks import raw_stream_mask
from .norm_bound import NormBound  # noqa: F401 (re-exported)


def mask_sampler(xp):
    """The dropout-mask sampler for models on ``xp``: ``raw_stream_mask`` on NumPy,
    None (the engine's plain ``bernoulli_mask``) elsewhere."""
    return raw_stream_mask if xp is np else None


def training_step(model, optimizer, xp, *, flat=False):
    """A ``FusedStep`` for ``model`` where it applies (NumPy, float32, an ``mlp``); elsewhere, with
    ``flat=True``, a ``FlatStep`` (one buffer for all parameters; off by default until a GPU has
    run it); else None."""
    if FusedStep.supports(model, xp):
        return FusedStep(model, optimizer)
    if flat and FlatStep.supports(model):
        return FlatStep(model, optimizer)
    return None
