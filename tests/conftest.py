"""One test body, two backends: the ``xp`` fixture is numpy, then cupy.

The cupy case is skipped (with the backend's own one-sentence reason) unless
CuPy imports and a CUDA device is visible. Tests make data on the host with
NumPy, move it with ``xp.asarray`` and bring results back with ``to_host``.
"""
import pytest

from minikd.backend import BackendError, get_backend


@pytest.fixture(scope="session", params=["numpy", "cupy"])
def xp(request):
    try:
        return get_backend(request.param)
    except BackendError as exc:
        pytest.skip(str(exc))
