"""Which array module does the work: NumPy on the CPU or CuPy on a CUDA GPU.

The rest of the engine never imports NumPy or CuPy itself. It receives the
array module -- called ``xp`` after the CuPy user guide -- in one of two ways:

* from the arrays it is given: ``xp = get_xp(x)``;
* as an argument where new arrays are created: ``Dense(..., xp=xp)``.

There is no global "current backend": two models on two devices can live in
one process, and a reader always sees where an array comes from.

Host/device transfers are explicit (``to_device`` / ``to_host``) and happen in
the training loop only, once per run for the data and once per logging
interval for the numbers a person reads.
"""
from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy

#: What the engine's type hints call an array, a generator and an array module: NumPy's or
#: CuPy's (the engine never names the library; ``xp`` is whichever module does the work).
Array = Any
Generator = Any
ArrayModule = ModuleType

BACKENDS = ("numpy", "cupy", "auto")

#: Whether docs/gpu.md records a run of the CuPy path on a real GPU (tests/test_docs_links.py
#: holds the two in step); until then ``--backend auto`` says, when it picks CuPy, that the
#: path has run only on the CPU stand-in.
CUPY_RUN_ON_A_DEVICE = False


class BackendError(RuntimeError):
    """The requested backend cannot be used here (one sentence says why)."""


def _cupy_or_reason():
    """Return (cupy module, None) if CuPy works with a visible CUDA device,
    else (None, reason) where reason is one plain sentence.

    "Works" means more than importing and counting devices: one small array
    operation runs on the device and its result comes back. That makes CuPy
    compile a kernel, which fails where the NVIDIA driver is present but the
    CUDA compiler library (NVRTC) is not -- a machine where counting devices
    succeeds and every training step would fail.
    """
    try:
        import cupy  # noqa: WPS433 (optional dependency, imported lazily)
    except ImportError:
        return None, ("CuPy is not installed: install it with "
                      "`pip install -e \".[gpu]\"` (CUDA 12) or "
                      "`pip install \"cupy-cuda13x[ctk]\"` (CUDA 13), or use --backend numpy.")
    except Exception as exc:  # a broken CUDA install raises other errors on import
        return None, f"CuPy failed to import ({_short(exc)}); use --backend numpy."
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, (f"CuPy is installed but no CUDA device is usable "
                      f"({type(exc).__name__}); use --backend numpy.")
    if n_devices < 1:
        return None, "CuPy is installed but no CUDA device is visible; use --backend numpy."
    try:
        probe = float((cupy.arange(4, dtype=cupy.float32) * 2).sum())
    except Exception as exc:
        return None, (f"CuPy sees {n_devices} CUDA device(s) but cannot run a kernel ({_short(exc)}); "
                      f"install the CUDA libraries with `pip install -e \".[gpu]\"`, or use --backend numpy.")
    if probe != 12.0:
        return None, (f"CuPy computed 0+2+4+6 = {probe} on the device instead of 12; "
                      f"use --backend numpy.")
    return cupy, None


def _short(exc, limit=90):
    """``Type: first line of the message``, cut to ``limit`` characters (for one-line reasons)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def get_backend(name: str = "auto") -> ArrayModule:
    """Return the array module for ``name`` in {"numpy", "cupy", "auto"}.

    "auto" picks CuPy when it imports, sees a CUDA device and runs a kernel on
    it, else NumPy; when CuPy is installed but unusable it says why in one
    line on stderr. "cupy" where that is impossible raises BackendError with
    the same one sentence.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    if name == "numpy":
        return numpy
    cupy, reason = _cupy_or_reason()
    if cupy is not None:
        if name == "auto":
            print("--backend auto: using CuPy: it imports, sees a CUDA device and ran a kernel on it "
                  "(--backend numpy to run on the CPU)", file=sys.stderr)
            if not CUPY_RUN_ON_A_DEVICE:
                print("note: minikd's CuPy path has so far run only on a CPU stand-in of CuPy, not on a GPU "
                      "(docs/gpu.md); its random streams differ from NumPy's, so its numbers will too",
                      file=sys.stderr)
        return cupy
    if name == "auto":
        print(f"--backend auto: using NumPy: {reason.split('; ')[0].rstrip('.')}", file=sys.stderr)
        return numpy
    raise BackendError(reason)


def get_xp(*arrays: Array) -> ArrayModule:
    """The array module of ``arrays`` (numpy unless one of them is a CuPy array).

    A non-NumPy array that names its own namespace (``__array_namespace__``)
    gets that namespace; the tests use this to run the engine on a stand-in
    backend that refuses NumPy, so NumPy-only code fails on CPU-only CI.
    """
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
        if not isinstance(a, (numpy.ndarray, numpy.generic)) and hasattr(a, "__array_namespace__"):
            return a.__array_namespace__()
    return numpy


def is_cupy(xp: ArrayModule) -> bool:
    """Whether ``xp`` is CuPy."""
    return getattr(xp, "__name__", "") == "cupy"


def backend_name(xp: ArrayModule) -> str:
    """"cupy" or "numpy": the name results and checkpoints record."""
    return "cupy" if is_cupy(xp) else "numpy"


def make_rng(xp: ArrayModule, seed: int, *keys: int) -> Generator:
    """A seeded random generator on the backend ``xp``.

    ``keys`` (non-negative ints) derive independent streams from one seed,
    e.g. ``make_rng(xp, seed, stage, epoch)``: the training loop gives every
    epoch its own generator, so a resumed run draws exactly what an
    uninterrupted one would without saving any generator state.

    NumPy: ``numpy.random.Generator`` (PCG64). CuPy: ``cupy.random.Generator``
    (XORWOW). The same seed gives a reproducible stream on one backend; the two
    backends' streams differ.
    """
    seq = numpy.random.SeedSequence([int(seed), *map(int, keys)])
    if xp is numpy:
        return numpy.random.default_rng(seq)
    return xp.random.default_rng(int(seq.generate_state(1, dtype=numpy.uint64)[0] >> 1))


def shuffled_indices(rng: Generator, n: int) -> Array:
    """A random permutation of range(n) from ``rng``, on the generator's backend.

    NumPy: ``rng.permutation(n)``. ``cupy.random.Generator`` has no
    ``permutation`` (nor ``choice``, ``shuffle``), so on CuPy the order is that
    of n uniform draws, sorted: ``argsort(rng.random(n))`` (ties have
    probability ~n^2 / 2^53, and break by index).
    """
    if isinstance(rng, numpy.random.Generator):
        return rng.permutation(n)
    return rng.random(n).argsort()


def random_subset(rng: Generator, n: int, k: int) -> Array:
    """``k`` distinct indices drawn from range(n) by ``rng``, on the generator's backend.

    NumPy: ``rng.choice(n, size=k, replace=False)``; CuPy's generator has no
    ``choice``, so there it is the first k of ``shuffled_indices(rng, n)``.
    """
    if isinstance(rng, numpy.random.Generator):
        return rng.choice(n, size=k, replace=False)
    return shuffled_indices(rng, n)[:k]


def to_device(x: Any, xp: ArrayModule, dtype: Any = None) -> Array:
    """Copy a host (NumPy) array to the backend ``xp`` (no-op for NumPy)."""
    if dtype is not None:
        x = numpy.asarray(x, dtype=dtype)
    return xp.asarray(x)


def to_host(x: Any) -> numpy.ndarray:
    """A NumPy array (or Python scalar passthrough) from any backend's array."""
    if hasattr(x, "get"):
        return x.get()
    return numpy.asarray(x)


def synchronize(xp: ArrayModule) -> None:
    """Wait for queued GPU work (for honest timings); nothing to do on NumPy."""
    if is_cupy(xp):
        xp.cuda.Stream.null.synchronize()
