"""minikd.backend: choosing numpy/cupy by name, clear failures, seeded RNGs."""
import builtins
import sys
import types

import numpy
import pytest

from minikd.engine import backend
from minikd.engine.backend import BackendError, get_backend, get_xp, make_rng, to_device, to_host


def test_numpy_by_name_is_numpy():
    assert get_backend("numpy") is numpy


def test_unknown_name_lists_the_choices():
    with pytest.raises(BackendError) as info:
        get_backend("torch")
    msg = str(info.value)
    assert "'torch'" in msg
    for choice in ("numpy", "cupy", "auto"):
        assert choice in msg


def _assert_one_clear_sentence(exc):
    msg = str(exc)
    assert "\n" not in msg and msg.endswith(".") and len(msg) < 250
    assert "--backend numpy" in msg  # says what to do instead
    # raised after the failed import was handled: no CuPy traceback chained on
    assert exc.__cause__ is None and exc.__context__ is None


def test_cupy_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    assert "not installed" in str(info.value)
    _assert_one_clear_sentence(info.value)


def test_cupy_import_crashes(monkeypatch):
    """A broken CUDA install can raise something other than ImportError."""
    real_import = builtins.__import__

    def broken_import(name, *args, **kwargs):
        if name == "cupy":
            raise RuntimeError("libcudart.so.12: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken_import)
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    assert "failed to import" in str(info.value)
    _assert_one_clear_sentence(info.value)


def _fake_cupy(get_device_count):
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=runtime)
    return module


def _raise_no_driver():
    raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


@pytest.mark.parametrize("count", [lambda: 0, _raise_no_driver], ids=["zero-devices", "driver-error"])
def test_cupy_without_a_device(monkeypatch, count):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    assert "device" in str(info.value)
    _assert_one_clear_sentence(info.value)


def test_auto_falls_back_to_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert get_backend("auto") is numpy
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    assert get_backend("auto") is numpy


def test_get_xp_follows_the_arrays(xp):
    assert get_xp() is numpy
    assert get_xp(numpy.zeros(2)) is numpy
    assert get_xp(numpy.float32(1.0)) is numpy
    assert get_xp(xp.zeros(2)) is xp
    assert get_xp(numpy.zeros(2), xp.zeros(2)) is xp
    assert backend.backend_name(xp) == xp.__name__


def test_make_rng_is_reproducible(xp):
    a = to_host(make_rng(xp, 123).standard_normal(5))
    b = to_host(make_rng(xp, 123).standard_normal(5))
    c = to_host(make_rng(xp, 124).standard_normal(5))
    numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(a, c)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_device_and_back(xp, dtype):
    host = numpy.arange(6, dtype="float64").reshape(2, 3)
    dev = to_device(host, xp, dtype=dtype)
    assert get_xp(dev) is xp and dev.dtype == numpy.dtype(dtype)
    back = to_host(dev)
    assert isinstance(back, numpy.ndarray)
    numpy.testing.assert_array_equal(back, host)
    backend.synchronize(xp)  # a no-op on numpy, a real wait on cupy


def _fake_cupy_that_cannot_compile():
    """The driver is there (one device), NVRTC is not: the first kernel fails to compile."""
    module = _fake_cupy(lambda: 1)
    module.float32 = "float32"

    def arange(*args, **kwargs):
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open "
                           "shared object file: No such file or directory\nmore detail")
    module.arange = arange
    return module


def test_cupy_that_cannot_run_a_kernel_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_that_cannot_compile())
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    msg = str(info.value)
    assert "cannot run a kernel" in msg and "libnvrtc" in msg and '".[gpu]"' in msg
    _assert_one_clear_sentence(info.value)


def test_auto_says_in_one_line_why_it_falls_back(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_that_cannot_compile())
    assert get_backend("auto") is numpy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("--backend auto: using NumPy") and "cannot run a kernel" in err
    monkeypatch.setitem(sys.modules, "cupy", None)   # not installed: auto says so too, in one line
    assert get_backend("auto") is numpy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("--backend auto: using NumPy: CuPy is not installed")


def test_a_wrong_device_result_is_refused(monkeypatch):
    import cupy_standin
    for name, m in cupy_standin.MODULES.items():
        monkeypatch.setitem(sys.modules, name, m)
    assert get_backend("cupy") is cupy_standin.module   # the probe runs and passes
    real_sum = cupy_standin.ndarray.sum
    monkeypatch.setattr(cupy_standin.ndarray, "sum", lambda self, *a, **k: real_sum(self, *a, **k) + 1)
    with pytest.raises(BackendError, match="instead of 12"):
        get_backend("cupy")


def test_shuffles_and_subsets_on_each_generator():
    """NumPy keeps its own calls (its results never change); a generator without
    ``permutation`` / ``choice`` (CuPy's) gets the argsort of uniform draws."""
    g = numpy.random.default_rng(5)
    numpy.testing.assert_array_equal(backend.shuffled_indices(numpy.random.default_rng(5), 10), g.permutation(10))
    g = numpy.random.default_rng(5)
    numpy.testing.assert_array_equal(backend.random_subset(numpy.random.default_rng(5), 10, 4),
                                     g.choice(10, size=4, replace=False))

    class NoPermutation:   # only what cupy.random.Generator offers
        def __init__(self):
            self.g = numpy.random.default_rng(5)

        def random(self, n):
            return self.g.random(n)

    perm = backend.shuffled_indices(NoPermutation(), 10)
    assert sorted(perm.tolist()) == list(range(10))
    numpy.testing.assert_array_equal(perm, numpy.random.default_rng(5).random(10).argsort())
    sub = backend.random_subset(NoPermutation(), 10, 4).tolist()
    assert len(set(sub)) == 4 and set(sub) <= set(range(10)) and sub == perm[:4].tolist()
