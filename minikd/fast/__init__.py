"""The CPU fast path: the same arithmetic as the engine, faster. Optional reading.

Training plugs it in through one narrow interface of two functions:
``mask_sampler(xp)``, the dropout-mask sampler to build the model with, and
``training_step(model, optimizer, xp)``, a training step with the interface of
``minikd.train.ReferenceStep`` (``begin_epoch``, ``step(xb, rng,
loss_fn)``, ``end_epoch``), or None where no faster step applies. The Trainer knows nothing else of what is here;
a GPU fast path would go behind the same two functions.

    masks.py       a dropout-mask sampler cut from the generator's raw bits
    blas.py        gemm / axpy with a beta, on NumPy's own OpenBLAS
    norm_bound.py  max-norm that measures column lengths only when needed
    fused_step.py  forward, loss, backward and update fused into one pass
"""
from __future__ import annotations

import numpy as np

from .blas import GEMM_BLAS, GEMM_NAME, add_, gemm  # noqa: F401 (re-exported)
from .fused_step import FusedStep
from .masks import raw_stream_mask
from .norm_bound import NormBound  # noqa: F401 (re-exported)


def mask_sampler(xp):
    """The dropout-mask sampler for models on ``xp``: ``raw_stream_mask`` on NumPy,
    None (the engine's plain ``bernoulli_mask``) elsewhere."""
    return raw_stream_mask if xp is np else None


def training_step(model, optimizer, xp):
    """A ``FusedStep`` for ``model`` where it applies (NumPy, float32, an ``mlp``), else None."""
    return FusedStep(model, optimizer) if FusedStep.supports(model, xp) else None
