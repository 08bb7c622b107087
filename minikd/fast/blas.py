"""BLAS products with a beta for the fused step (point 2 of fused_step.py's docstring).

NumPy's ``@`` has no beta (C <- alpha A B + beta C). NumPy's wheels bundle an
OpenBLAS whose CBLAS interface does; ``gemm`` calls its ``cblas_sgemm``
through ctypes, so every product runs on the same library and thread pool as
the rest of NumPy. Where that library cannot be found, SciPy's ``sgemm``
serves instead (then every product of the step goes through SciPy: two thread
pools alternating inside one step are about 5x slower on 2 cores).
``GEMM_BLAS`` says which one is in use.

CBLAS takes the layout as an argument (``CblasRowMajor`` here), so NumPy's
C-ordered arrays go in as they are. SciPy's ``sgemm`` is Fortran BLAS and takes
column-major matrices: a C-ordered X seen as ``X.T`` is a column-major X^T, so
a row-major C = op(A) op(B) is computed as the column-major
C^T = op(B)^T op(A)^T: ``sgemm(alpha, B.T, A.T, beta, C.T)``.
"""
from __future__ import annotations

import os

import numpy as np


def _numpy_cblas():
    """NumPy's own OpenBLAS ``(cblas_sgemm, cblas_saxpy)`` as ctypes functions, or None.

    NumPy's wheels (numpy.libs/ or numpy/.dylibs/) bundle OpenBLAS with
    symbol names prefixed ``scipy_`` and, for 64-bit integer builds, suffixed
    ``64_``. The library is already loaded by NumPy, so dlopen returns the
    same copy: its thread pool is the one NumPy's ``@`` uses.
    """
    import ctypes
    import glob
    root = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    patterns = ("numpy.libs/*openblas*", "numpy/.dylibs/*openblas*")
    f32, ptr, enum = ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    for path in sorted(p for pat in patterns for p in glob.glob(os.path.join(root, pat))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_t in (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64),
                                      ("scipy_", "", ctypes.c_int), ("", "", ctypes.c_int)):
            sgemm = getattr(lib, f"{prefix}cblas_sgemm{suffix}", None)
            saxpy = getattr(lib, f"{prefix}cblas_saxpy{suffix}", None)
            if sgemm is None or saxpy is None:
                continue
            sgemm.restype = saxpy.restype = None
            sgemm.argtypes = [enum, enum, enum, int_t, int_t, int_t, f32, ptr, int_t,
                              ptr, int_t, f32, ptr, int_t]
            saxpy.argtypes = [int_t, f32, ptr, int_t, ptr, int_t]
            return sgemm, saxpy
    return None


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_cblas = None if os.environ.get("MINIKD_GEMM") == "scipy" else _numpy_cblas()
_cblas_sgemm, _cblas_saxpy = _cblas if _cblas is not None else (None, None)
_sgemm = None
if _cblas_sgemm is None:
    try:  # SciPy comes with scikit-learn; without it the step still works, slower.
        from scipy.linalg.blas import sgemm as _sgemm
    except ImportError:  # pragma: no cover - scipy is a dependency of scikit-learn
        _sgemm = None

#: which library ``gemm`` calls: "numpy-cblas", "scipy" or "numpy-matmul" (no beta, slowest)
GEMM_BLAS = "numpy-cblas" if _cblas_sgemm is not None else ("scipy" if _sgemm is not None else "numpy-matmul")
GEMM_NAME = {"numpy-cblas": "minikd.fast.gemm (NumPy's OpenBLAS, cblas_sgemm)",
             "scipy": "minikd.fast.gemm (SciPy's sgemm)",
             "numpy-matmul": "minikd.fast.gemm (NumPy @, no beta)"}[GEMM_BLAS]


def _check_f32(*arrays):
    for x in arrays:
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise ValueError("minikd.fast needs C-contiguous float32 arrays")


def add_(y, x, alpha=1.0):
    """y += alpha * x for same-shape float32 arrays; through BLAS saxpy (both cores) when available.

    NumPy's elementwise loops run on one core; OpenBLAS splits a long axpy
    over its thread pool, which matters for the weight update W += v.
    """
    if _cblas_saxpy is None or y.size < 65536:
        if alpha == 1.0:
            y += x
        else:
            y += np.float32(alpha) * x
        return y
    _check_f32(x, y)
    if x.shape != y.shape:
        raise ValueError(f"add_: shapes {y.shape} and {x.shape} differ")
    _cblas_saxpy(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
    return y


def gemm(alpha, a, b, beta, c, *, trans_a=False, trans_b=False):
    """Row-major c <- alpha * op(a) @ op(b) + beta * c, in place, float32.

    op(x) is x.T when trans_x is set. a, b, c must be C-contiguous float32.
    """
    if _cblas_sgemm is not None:
        _check_f32(a, b, c)
        m, n = c.shape
        k = a.shape[0] if trans_a else a.shape[1]
        if (b.shape[1] if trans_b else b.shape[0]) != k or (a.shape[1] if trans_a else a.shape[0]) != m \
                or (b.shape[0] if trans_b else b.shape[1]) != n:
            raise ValueError(f"fast.gemm: shapes {a.shape}{'^T' if trans_a else ''} @ "
                             f"{b.shape}{'^T' if trans_b else ''} -> {c.shape} do not match")
        _cblas_sgemm(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _TRANS if trans_b else _NO_TRANS,
                     m, n, k, alpha, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
                     beta, c.ctypes.data, n)
        return c
    if _sgemm is not None:
        _sgemm(alpha, b.T, a.T, beta, c.T, trans_a=trans_b, trans_b=trans_a, overwrite_c=1)
        return c
    prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if beta == 0.0:
        np.multiply(prod, alpha, out=c)
    else:
        c *= beta
        prod *= alpha
        c += prod
    return c
