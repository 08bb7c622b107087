"""--backend auto says what it chose and why, and, choosing CuPy, that the CuPy path has run only
on the CPU stand-in for as long as docs/gpu.md records no device run."""
from pathlib import Path

import numpy

from minikd.engine import backend

GPU_MD = Path(__file__).resolve().parents[2] / "docs" / "gpu.md"


def test_auto_says_it_chose_numpy_and_why(monkeypatch, capsys):
    monkeypatch.setattr(backend, "_cupy_or_reason", lambda: (None, "CuPy is not installed: install it; or not"))
    assert backend.get_backend("auto") is numpy
    err = capsys.readouterr().err
    assert "--backend auto: using NumPy: CuPy is not installed: install it" in err


def test_auto_says_it_chose_cupy_and_that_the_path_ran_only_on_the_standin(monkeypatch, capsys):
    fake = object()
    monkeypatch.setattr(backend, "_cupy_or_reason", lambda: (fake, None))
    monkeypatch.setattr(backend, "CUPY_RUN_ON_A_DEVICE", False)
    assert backend.get_backend("auto") is fake
    err = capsys.readouterr().err
    assert "--backend auto: using CuPy" in err and "only on a CPU stand-in" in err
    monkeypatch.setattr(backend, "CUPY_RUN_ON_A_DEVICE", True)
    backend.get_backend("auto")
    err = capsys.readouterr().err
    assert "--backend auto: using CuPy" in err and "stand-in" not in err
    backend.get_backend("cupy")   # asked for by name: nothing to explain
    assert capsys.readouterr().err == ""


def test_the_stand_in_note_follows_docs_gpu_md():
    """The note goes away once docs/gpu.md records a device run, and only then."""
    says_none = "no device run is recorded" in GPU_MD.read_text()
    assert says_none == (not backend.CUPY_RUN_ON_A_DEVICE), (
        "docs/gpu.md and minikd.engine.backend.CUPY_RUN_ON_A_DEVICE disagree on whether the CuPy path ran on a GPU")
