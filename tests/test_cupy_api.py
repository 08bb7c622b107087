"""The committed CuPy name lists (tests/cupy_api/) against an installed CuPy.

tests/cupy_standin.py offers only names from those lists, so they must be
CuPy's. Where a real CuPy imports (no GPU needed), every name the stand-in
uses must exist in it, and the Generator must still lack ``permutation`` and
``choice`` (the engine's CuPy branches rely on neither); the same version as
the one dumped must give the same lists exactly. Without CuPy this file skips:
the only skip of the CuPy tests on CPU. (Under another CuPy version only the
names the stand-in uses are compared: lists differ between releases.)
"""
import importlib
import json
import sys

import pytest

import cupy_standin


def real_cupy():
    if sys.modules.get("cupy") is cupy_standin.module:  # run under the stand-in bootstrap
        pytest.skip("the CuPy stand-in is installed as cupy here; the real CuPy is not importable")
    try:
        return importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install
        pytest.skip(f"CuPy does not import here ({type(exc).__name__}): nothing to compare the lists with")


def installed_objects(cupy):
    import cupy.cuda.runtime  # noqa: F401
    import cupy.lib.stride_tricks  # noqa: F401
    return {"cupy": cupy, "cupy.ndarray": cupy.ndarray, "cupy.random": cupy.random,
            "cupy.random.Generator": cupy.random.Generator, "cupy.cuda": cupy.cuda,
            "cupy.cuda.runtime": cupy.cuda.runtime, "cupy.cuda.Stream": cupy.cuda.Stream,
            "cupy.lib.stride_tricks": cupy.lib.stride_tricks}


def standin_objects():
    m = cupy_standin.MODULES
    return {"cupy": m["cupy"], "cupy.ndarray": cupy_standin.ndarray, "cupy.random": m["cupy.random"],
            "cupy.random.Generator": cupy_standin.Generator, "cupy.cuda": m["cupy.cuda"],
            "cupy.cuda.runtime": m["cupy.cuda.runtime"], "cupy.cuda.Stream": cupy_standin.Stream,
            "cupy.lib.stride_tricks": m["cupy.lib.stride_tricks"]}


def test_the_lists_are_committed_and_the_stand_in_keeps_to_them():
    meta = json.loads((cupy_standin.API_DIR / "meta.json").read_text())
    assert meta["module_of"] == {"cupy.ndarray": "cupy", "cupy.random.Generator": "cupy.random._generator_api"}
    for what in standin_objects():
        assert len(cupy_standin.real_names(what)) > 10, what
    gen = cupy_standin.real_names("cupy.random.Generator")
    assert {"random", "standard_normal", "integers"} <= gen and not {"permutation", "choice", "shuffle"} & gen


def test_the_installed_cupy_has_every_name_the_stand_in_uses():
    """And, for the version the lists were dumped from, exactly the committed lists."""
    cupy = real_cupy()
    meta = json.loads((cupy_standin.API_DIR / "meta.json").read_text())
    for what, obj in installed_objects(cupy).items():
        used = {n for n in dir(standin_objects()[what]) if not n.startswith(cupy_standin.PRIVATE)}
        missing = used - set(dir(obj))
        assert not missing, f"{what} in CuPy {cupy.__version__} lacks {sorted(missing)}"
        if cupy.__version__ == meta["cupy_version"]:
            assert set(dir(obj)) == cupy_standin.real_names(what), what
    public = {n for n in dir(cupy.random.Generator) if not n.startswith("_")}
    assert not {"permutation", "choice", "shuffle"} & public, (
        f"CuPy {cupy.__version__}'s Generator has gained {sorted({'permutation', 'choice', 'shuffle'} & public)}")
    assert cupy.ndarray.__module__ == "cupy"
    assert cupy.random.Generator.__module__.startswith("cupy")
