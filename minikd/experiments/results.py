"""What results.json records besides the numbers trained: the environment, the
published numbers they are compared with, and the SHA-256 that names a teacher's
soft targets. (Writing it is report.py's.)"""
from __future__ import annotations

import hashlib
import os
import platform
import sys

import numpy as np

from ..engine.backend import backend_name, to_host

PAPER_TABLE = {"teacher": 67, "student": 146, "distilled": 74}
SEED_REPRO_TABLE = {"teacher": 100, "student": 171, "distilled": 111}


def blas_threads():
    """The number of threads NumPy's BLAS runs with (float32 sums are ordered by it, so it moves
    the trained numbers: a teacher went from 82 to 87 test errors between 2 threads and 1), or None
    where threadpoolctl cannot tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    mine = [i for i in blas if "numpy" in i.get("filepath", "")] or blas
    return int(mine[0]["num_threads"]) if mine else None


def soft_targets_sha256(soft_logits):
    """The full SHA-256 (64 hex digits) of a teacher's soft targets -- its float32 logits on the
    transfer set, row by row: what a distilled student learned from. A checkpoint's own hash
    would not do: it changes with the wall-clock times stored in it."""
    host = np.ascontiguousarray(to_host(soft_logits), dtype=np.float32)
    return hashlib.sha256(host.tobytes()).hexdigest()


def environment_info(xp):
    info = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "backend": backend_name(xp), "blas_threads": blas_threads(),
    }
    try:
        import scipy
        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    if backend_name(xp) == "numpy":
        from .. import fast
        info["fused_step_blas"] = fast.GEMM_NAME
    if backend_name(xp) == "cupy":
        info["cupy"] = xp.__version__
        try:
            props = xp.cuda.runtime.getDeviceProperties(0)
            info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        except Exception:
            pass
    return info
