"""One test body, two backends: the ``xp`` fixture is numpy, then cupy.

The cupy case is skipped (with the backend's own one-sentence reason) unless
CuPy imports and a CUDA device is visible. Tests make data on the host with
NumPy, move it with ``xp.asarray`` and bring results back with ``to_host``.
"""
import sys

import pytest

from minikd.engine.backend import BackendError, get_backend


@pytest.fixture(scope="session", params=["numpy", "cupy"])
def xp(request):
    try:
        return get_backend(request.param)
    except BackendError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mnist_dir():
    """The real MNIST folder, found the way a user names it: $MINIKD_DATA_DIR,
    else ../shared/data/mnist beside the repository. Skips with a reason when
    absent; under CI=true a missing copy is a failure, not a skip."""
    import os
    from pathlib import Path
    candidates = [os.environ.get("MINIKD_DATA_DIR"),
                  str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")]
    for c in candidates:
        if c and (Path(c) / "train-images-idx3-ubyte.gz").exists() or \
                c and (Path(c) / "train-images-idx3-ubyte").exists():
            return Path(c)
    msg = "MNIST not found: set MINIKD_DATA_DIR to a folder with the four MNIST files"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " (CI=true: this must not be skipped)")
    pytest.skip(msg)


@pytest.fixture
def cp(monkeypatch):
    """The CPU stand-in for CuPy (tests/cupy_standin.py), installed as ``cupy`` for this test only."""
    import cupy_standin
    for name, m in cupy_standin.MODULES.items():
        monkeypatch.setitem(sys.modules, name, m)
    return cupy_standin.module


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits as a minikd Dataset (tests that need arrays define their own)."""
    from minikd.data import load_dataset
    return load_dataset("digits")
