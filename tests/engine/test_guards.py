"""Guards that fail on CPU-only CI when engine code would only work on NumPy.

1. Static: every module of minikd/engine/ (and train.py) never imports
   numpy/cupy nor names ``np``/``numpy``; they reach the array module only
   through ``xp`` (get_xp / get_backend). backend.py, which chooses the array
   module, is the one exception. And the engine imports nothing of minikd
   outside minikd/engine/.
2. Runtime: the engine runs on a stand-in backend (tests/foreign_backend.py)
   whose arrays NumPy refuses, and gives the same numbers as on NumPy.
Each guard is shown to catch a planted mistake.
"""
import ast
from pathlib import Path

import numpy
import pytest

from minikd.engine.backend import get_xp, make_rng, to_host
from minikd.engine.gradcheck import check_layer
from minikd.engine.layers import Dense, Dropout, ReLU, Sequential, mlp
from minikd.engine.losses import cross_entropy, distillation_loss
from minikd.engine.optim import MomentumSGD, max_norm_

import foreign_backend
from foreign_backend import xp as fxp

PACKAGE = Path(__file__).resolve().parents[2] / "minikd"
ENGINE = PACKAGE / "engine"
ENGINE_MODULES = sorted(p.name for p in ENGINE.glob("*.py") if p.name != "backend.py")
XP_ONLY_FILES = [ENGINE / m for m in ENGINE_MODULES] + [PACKAGE / "train.py"]
ARRAY_MODULES = {"numpy", "cupy"}
FORBIDDEN_NAMES = {"np", "numpy", "cp", "cupy"}


# ---------------------------------------------------------------- 1. static guard

def array_module_uses(source, filename="<string>"):
    """Lines where ``source`` imports numpy/cupy or names np/numpy/cp/cupy."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{filename}:{node.lineno}: uses the name {node.id!r}")
            continue
        else:
            continue
        for name in names:
            if name.split(".")[0] in ARRAY_MODULES:
                found.append(f"{filename}:{node.lineno}: imports {name}")
    return found


def test_the_engine_folder_is_scanned():
    assert {"layers.py", "losses.py", "optim.py", "gradcheck.py"} <= set(ENGINE_MODULES)


@pytest.mark.parametrize("path", XP_ONLY_FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_engine_reaches_arrays_only_through_xp(path):
    assert array_module_uses(path.read_text(), path.name) == []


def imports_outside_engine(source, filename="<string>"):
    """Lines where ``source`` imports a part of minikd that is not in minikd/engine/."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            outside = node.level > 1 or (node.level == 0 and module.split(".")[0] == "minikd"
                                         and not module.startswith("minikd.engine"))
        elif isinstance(node, ast.Import):
            outside = any(a.name.split(".")[0] == "minikd" and not a.name.startswith("minikd.engine")
                          for a in node.names)
        else:
            continue
        if outside:
            found.append(f"{filename}:{node.lineno}: imports from outside the engine")
    return found


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_engine_imports_nothing_else_of_minikd(path):
    assert imports_outside_engine(path.read_text(), path.name) == []


@pytest.mark.parametrize("planted", ["from ..fast import gemm", "from minikd.train import Trainer",
                                     "import minikd.data", "from .. import fast"])
def test_engine_import_guard_catches_planted_imports(planted):
    assert imports_outside_engine(planted) != []


@pytest.mark.parametrize("planted", [
    "import numpy as np\nx = np.zeros(3)\n",
    "import numpy\n",
    "from numpy import zeros\n",
    "import numpy.linalg\n",
    "import cupy as cp\n",
    "def f(x):\n    return np.exp(x)\n",  # np used without an import in sight
])
def test_static_guard_catches_planted_mistakes(planted):
    assert array_module_uses(planted) != []


def test_static_guard_allows_the_xp_idiom():
    ok = "from .backend import get_xp\n\ndef f(x):\n    xp = get_xp(x)\n    return xp.exp(x)\n"
    assert array_module_uses(ok) == []


# ---------------------------------------------------------------- 2. runtime guard

def both(host_array):
    """The same data on NumPy and on the foreign backend."""
    return host_array, fxp.asarray(host_array)


def assert_same(a, b):
    assert type(b) is foreign_backend.Array  # really ran on the foreign backend
    numpy.testing.assert_allclose(to_host(b), a, rtol=1e-12, atol=1e-15)


def test_foreign_backend_refuses_numpy():
    """The planted mistakes: engine-style code that calls NumPy on a backend array."""
    x = fxp.asarray(numpy.ones((2, 3)))
    assert get_xp(x) is fxp

    def numpy_only_softmax(z):  # the mistake: numpy instead of get_xp(z)
        e = numpy.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    for mistake in (lambda: numpy_only_softmax(x), lambda: numpy.asarray(x),
                    lambda: numpy.zeros_like(x), lambda: numpy.sum(x),
                    lambda: x + numpy.ones(3), lambda: numpy.ones(3) * x,
                    lambda: x[numpy.array([0, 1])]):
        with pytest.raises(TypeError):
            mistake()
    numpy.testing.assert_array_equal(x.get(), numpy.ones((2, 3)))  # explicit transfer works


def test_why_not_an_ndarray_subclass():
    """An ndarray subclass with a raising __array__ would not catch the mistake."""
    class Sub(numpy.ndarray):
        def __array__(self, *args, **kwargs):
            raise TypeError

    sub = numpy.ones(3).view(Sub)
    out = numpy.exp(sub)  # accepted silently: NumPy took the "device" array over
    assert isinstance(out, numpy.ndarray) and numpy.allclose(numpy.asarray(out.view(numpy.ndarray)), numpy.e)
    with pytest.raises(TypeError):                # while the stand-in refuses the same call
        numpy.exp(fxp.asarray(numpy.ones(3)))


def same_weights(xp, build):
    """A model on ``xp`` with the weights of ``build(numpy)`` (RNG streams differ by backend)."""
    ref, other = build(numpy), build(xp)
    other.load_state_dict(ref.state_dict())  # host arrays in: an explicit transfer
    return ref, other


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layers_run_on_a_foreign_backend(dtype):
    def build(xp):
        return mlp((6, 5, 4, 3), rng=make_rng(xp, 0), xp=xp, dtype=dtype, init_std=0.5,
                   input_dropout=0.2, hidden_dropout=0.5, max_norm=1.0)

    ref, foreign = same_weights(fxp, build)
    x, fx = both(numpy.random.default_rng(1).standard_normal((4, 6)).astype(dtype))
    dy, fdy = both(numpy.random.default_rng(2).standard_normal((4, 3)).astype(dtype))
    foreign.forward(fx, train=True)  # draws dropout masks on the foreign backend
    for i, layer in enumerate(ref.layers):
        if isinstance(layer, Dropout):
            assert type(foreign.layers[i].mask) is foreign_backend.Array
    for train in (True, False):
        y = ref.forward(x, train=train)
        for i, layer in enumerate(ref.layers):  # same masks, so same numbers
            if isinstance(layer, Dropout):
                foreign.layers[i].mask = None if layer.mask is None else fxp.asarray(layer.mask)
        assert_same(y, foreign.forward(fx, train=train, freeze_mask=True))
        assert_same(ref.backward(dy), foreign.backward(fdy))
        for i, layer in enumerate(ref.layers):
            for name, g in layer.grads.items():
                assert_same(g, foreign.layers[i].grads[name])
    foreign.load_state_dict(foreign.state_dict())


def test_optimizer_runs_on_a_foreign_backend():
    ref, foreign = same_weights(fxp, lambda xp: mlp((6, 5, 3), rng=make_rng(xp, 0), xp=xp,
                                                    dtype="float64", init_std=0.5, max_norm=0.8))

    def train(model):
        xp = get_xp(model.layers[0].params["W"])
        opt = MomentumSGD(model, lr=0.5, momentum=0.5)
        x = xp.asarray(numpy.random.default_rng(1).standard_normal((4, 6)))
        for epoch in range(2):
            opt.set_epoch(epoch)
            model.backward(model.forward(x, train=True))
            opt.step()
        return opt

    ref_opt, foreign_opt = train(ref), train(foreign)
    for key, w in ref.state_dict().items():
        assert_same(w, foreign.state_dict()[key])
    for key, v in ref_opt.state_dict().items():
        assert_same(v, foreign_opt.state_dict()[key])
    W = fxp.asarray(numpy.array([[3.0, 0.3], [4.0, 0.4]]))
    assert_same(numpy.array([[1.2, 0.3], [1.6, 0.4]]), max_norm_(W, 2.0))


def test_losses_run_on_a_foreign_backend():
    g = numpy.random.default_rng(0)
    z, fz = both(g.standard_normal((4, 5)) * 3)
    v, fv = both(g.standard_normal((4, 5)) * 3)
    y, fy = both(g.integers(0, 5, size=4))
    for got, want in ((cross_entropy(fz, fy), cross_entropy(z, y)),
                      (distillation_loss(fz, fv, fy, temperature=4.0, soft_weight=0.7, hard_weight=0.3),
                       distillation_loss(z, v, y, temperature=4.0, soft_weight=0.7, hard_weight=0.3)),
                      (distillation_loss(fz, fv, None, temperature=2.0),
                       distillation_loss(z, v, None, temperature=2.0))):
        assert_same(want[0], got[0])
        assert_same(want[1], got[1])
    bad = fxp.asarray(numpy.array([0, 1, 5, 2]))
    with pytest.raises(ValueError, match="label 5 is outside"):
        cross_entropy(fz, bad)


def test_gradcheck_runs_on_a_foreign_backend():
    x = fxp.asarray(numpy.random.default_rng(1).standard_normal((3, 4)))
    layer = Sequential(Dense(4, 3, rng=make_rng(fxp, 0), xp=fxp, dtype="float64", init_std=1.0),
                       ReLU(), Dropout(0.3, rng=make_rng(fxp, 1)))
    check_layer(layer, x, rng=numpy.random.default_rng(0), max_coords=5,
                forward_kwargs={"freeze_mask": True})
