"""What results.json records besides the numbers trained: where they were made (the
environment and the provenance of the code), the paper's numbers they are compared
with, and the SHA-256 that names a teacher's soft targets. (Writing it is report.py's.)

``environment_info(xp)`` is taken when a command starts; the command sets
``environment["finished"] = finished_now()`` when it ends, so the two times bound the run.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..engine.backend import backend_name, to_host

# Hinton, Vinyals & Dean (2015), section 3: test errors on MNIST's 10,000 test images.
PAPER_TABLE = {"teacher": 67, "student": 146, "distilled": 74}

GIT_TIMEOUT_S = 10


def blas_threads():
    """The number of threads NumPy's BLAS runs with (float32 sums are ordered by it, so it moves
    the trained numbers), or None where threadpoolctl cannot tell."""
    blas = _blas_pools()
    mine = [i for i in blas if "numpy" in i.get("filepath", "")] or blas
    return int(mine[0]["num_threads"]) if mine else None


def _blas_pools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


def blas_libraries():
    """One ``{name, version, architecture, threads}`` per BLAS library loaded in this process
    (threadpoolctl's ``internal_api``, ``version``, ``architecture`` and ``num_threads``; NumPy's
    and SciPy's wheels may each bring one). The architecture is the kernel the library chose
    for this CPU (e.g. OpenBLAS's ``SkylakeX``): two machines with the same versions can still
    round float32 sums differently through it. An empty list without threadpoolctl."""
    return [{"name": i.get("internal_api"), "version": i.get("version"), "architecture": i.get("architecture"),
             "threads": i.get("num_threads")} for i in _blas_pools()]


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``'s first ``model name``; elsewhere
    ``platform.processor()``), or None where neither names one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def git_provenance(package_dir=None):
    """``(commit, dirty)`` of the git checkout this minikd is imported from, else ``(None, None)``.

    The checkout is the folder above the package (``minikd/..``), and only when git names that
    very folder as its top level: an installed wheel sits in site-packages, which may itself lie
    inside some other repository (a virtual environment in a checkout), and that repository's
    commit would be a lie. ``dirty`` is True when a tracked file differs from the commit
    (``git status --porcelain --untracked-files=no``: untracked files do not count). git missing,
    slow (over GIT_TIMEOUT_S seconds) or refusing gives ``(None, None)``; this never fails a run."""
    root = Path(package_dir if package_dir is not None else Path(__file__).resolve().parents[1]).resolve().parent

    def git(*args):
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True)
        return done.stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != root:
            return None, None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None, None
    return commit, dirty


def command_line(argv=None, program=None):
    """The command as it was typed, shell-quoted (``shlex.join``): the program, then its arguments.

    The program is ``sys.argv[0]`` as run: a script becomes ``python scripts/reproduce.py`` (the
    interpreter's own path is left out: ``python`` stands for whichever one ran it), the ``minikd``
    command ``minikd reproduce`` (minikd.cli sets ``sys.argv[0]`` so), anything else its file name.
    A script's path is shown relative to the working folder when it lies inside it. ``argv`` are
    the arguments (default ``sys.argv[1:]``, less the subcommand's name after ``minikd``)."""
    program = sys.argv[0] if program is None else program
    if argv is None:
        argv = sys.argv[1:]
        if program.startswith("minikd ") and argv[:1] == program.split()[1:2]:
            argv = argv[1:]   # minikd.cli keeps the subcommand in sys.argv[1]
    argv = list(argv)
    if program.endswith(".py"):
        if os.path.isabs(program):
            inside = os.path.relpath(program)
            program = program if inside.startswith("..") else inside
        head = ["python", program]
    elif program.startswith("minikd "):
        head = program.split()
    else:
        head = [Path(program).name or program]
    return shlex.join([*head, *map(str, argv)])


def utc_now():
    """The time now as ISO 8601 in UTC to the second, e.g. ``2026-12-07T09:30:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def finished_now():
    """What a command stores as ``environment["finished"]`` when it is done (``utc_now()``)."""
    return utc_now()


def elapsed_seconds(environment):
    """Seconds from ``started`` to ``finished`` of an environment dict, or None if either is missing."""
    try:
        start = datetime.fromisoformat(environment["started"])
        end = datetime.fromisoformat(environment["finished"])
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def soft_targets_sha256(soft_logits):
    """The full SHA-256 (64 hex digits) of a teacher's soft targets -- its float32 logits on the
    transfer set, row by row: what a distilled student learned from. A checkpoint's own hash
    would not do: it changes with the wall-clock times stored in it."""
    host = np.ascontiguousarray(to_host(soft_logits), dtype=np.float32)
    return hashlib.sha256(host.tobytes()).hexdigest()


def environment_info(xp, argv=None, program=None):
    """Where and with what a run is made, for results.json's ``environment``.

    Versions (minikd, Python, NumPy, SciPy, CuPy), the code (``git_commit``, ``git_dirty``: see
    git_provenance), the machine (``platform``, ``machine``, ``cpu``, ``cpu_count``, ``gpu``), the
    backend, the BLAS libraries (``blas``, see blas_libraries; ``blas_threads``: NumPy's), the
    ``command`` (see command_line; ``argv`` and ``program`` as there) and ``started`` (utc_now).
    The caller adds ``finished``."""
    from .. import __version__
    commit, dirty = git_provenance()
    info = {
        "minikd_version": __version__, "git_commit": commit, "git_dirty": dirty,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "backend": backend_name(xp), "blas_threads": blas_threads(),
        "blas": blas_libraries(), "command": command_line(argv, program), "started": utc_now(),
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
