"""What a run writes besides checkpoints: results.json, figures, the environment,
and the published numbers it is compared with."""
from __future__ import annotations

import json
import math
import os
import platform
import sys

import numpy as np

from ..engine.backend import backend_name, to_host
from .checkpoints import atomic_write_bytes, atomic_write_text

PAPER_TABLE = {"teacher": 67, "student": 146, "distilled": 74}
SEED_REPRO_TABLE = {"teacher": 100, "student": 171, "distilled": 111}


def save_figure(fig, path, dpi=110):
    """Write a matplotlib figure as PNG atomically, then free it."""
    import matplotlib.pyplot as plt
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    plt.close(fig)


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
    import hashlib
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


def strict_json_ready(obj, where="", found=None):
    """``obj`` with every NaN or infinite float (Python or NumPy) replaced by None.

    found: a dict that collects {JSON path: "nan" | "inf" | "-inf"} of what was
    replaced, so a reader sees why a value is null.
    """
    if isinstance(obj, dict):
        return {k: strict_json_ready(v, f"{where}.{k}" if where else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_ready(v, f"{where}[{i}]", found) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return strict_json_ready(obj.tolist(), where, found)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if not math.isfinite(value):
            if found is not None:
                found[where or "(top)"] = "nan" if value != value else ("inf" if value > 0 else "-inf")
            return None
        return value
    return obj


def write_json(path, obj):
    """Strict JSON (RFC 8259: no NaN or Infinity): a non-finite number is written
    as null, and the top-level ``null_because_not_finite`` lists each one's path
    and value."""
    found = {}
    clean = strict_json_ready(obj, found=found)
    if found and isinstance(clean, dict):
        clean["null_because_not_finite"] = found
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=False, allow_nan=False) + "\n")
