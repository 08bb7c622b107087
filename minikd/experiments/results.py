"""What a run writes besides checkpoints: results.json, figures, the environment,
and the published numbers it is compared with."""
from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np

from ..engine.backend import backend_name
from .checkpoints import atomic_write_bytes, atomic_write_text

PAPER_TABLE = {"teacher": 67, "student": 146, "distilled": 74}
SEED_REPRO_TABLE = {"teacher": 100, "student": 171, "distilled": 111}


def save_figure(fig, path, dpi=110):
    """Write a matplotlib figure as PNG atomically, then free it."""
    import matplotlib.pyplot as plt
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    plt.close(fig)


def environment_info(xp):
    info = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "backend": backend_name(xp),
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


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
