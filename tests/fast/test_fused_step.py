"""minikd.fast's BLAS entry points against plain NumPy, and the fused step on
layers large enough to take the BLAS axpy path of the weight update."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from minikd import fast
from minikd.train import build_model, StageConfig, Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 0.7])
def test_gemm_matches_numpy(trans_a, trans_b, beta):
    rng = np.random.default_rng(0)
    m, k, n = 37, 53, 29
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    expected = -0.3 * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)) + beta * c
    out = fast.gemm(-0.3, a, b, beta, c, trans_a=trans_a, trans_b=trans_b)
    assert out is c
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_gemm_refuses_mismatched_or_strided_arrays():
    if fast.GEMM_BLAS != "numpy-cblas":
        pytest.skip("the checks guard the ctypes call, used only with NumPy's own OpenBLAS")
    a = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        fast.gemm(1.0, a, np.ones((6, 3), np.float32), 0.0, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous float32"):
        fast.gemm(1.0, a, np.ones((3, 5), np.float32).T, 0.0, np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous float32"):
        fast.gemm(1.0, a.astype(np.float64), np.ones((5, 3), np.float32), 0.0, np.empty((4, 3), np.float32))


def test_numpy_wheel_openblas_is_used_when_bundled():
    """With a NumPy wheel that bundles OpenBLAS, gemm must not fall back to SciPy
    (two OpenBLAS thread pools in one step are about 5x slower)."""
    root = os.path.dirname(os.path.dirname(np.__file__))
    if not glob.glob(os.path.join(root, "numpy.libs", "*openblas*")):
        pytest.skip("this NumPy does not bundle OpenBLAS in numpy.libs")
    assert fast.GEMM_BLAS == "numpy-cblas"


@pytest.mark.parametrize("size", [(10, 7), (300, 250)])
def test_add_matches_numpy(size):
    rng = np.random.default_rng(1)
    y = rng.standard_normal(size, dtype=np.float32)
    x = rng.standard_normal(size, dtype=np.float32)
    expected = y + x
    assert fast.add_(y, x) is y
    np.testing.assert_array_equal(y, expected)


def test_scipy_fallback_gives_the_same_products():
    """MINIKD_GEMM=scipy forces the SciPy path; its products equal NumPy's."""
    code = ("import numpy as np; from minikd import fast; assert fast.GEMM_BLAS == 'scipy', fast.GEMM_BLAS;"
            "r = np.random.default_rng(0); a = r.random((7, 5), dtype=np.float32);"
            "b = r.random((3, 5), dtype=np.float32); c = np.ones((7, 3), np.float32);"
            "fast.gemm(2.0, a, b, 0.5, c, trans_b=True);"
            "np.testing.assert_allclose(c, 2 * a @ b.T + 0.5, rtol=1e-5); print('ok')")
    env = dict(os.environ, MINIKD_GEMM="scipy", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_fused_step_equals_reference_on_layers_using_blas_axpy():
    """Hidden layers of 300 x 250 = 75,000 weights take add_'s saxpy path;
    the fused teacher step still equals the reference step."""
    rng = np.random.default_rng(2)
    x = rng.random((400, 64), dtype=np.float32)
    y = rng.integers(0, 10, 400).astype(np.int32)
    cfg = StageConfig(name="teacher", sizes=(64, 300, 250, 10), epochs=2, batch_size=50, input_dropout=0.2,
                      hidden_dropout=0.5, max_norm=1.0, jitter=1, image_shape=(8, 8), lr=0.5,
                      lr_decay=0.9, momentum_ramp=1, init_std=0.1)
    ref = Trainer(cfg, np, x, y, x[:50], y[:50], fast=False,
                  model=build_model(cfg, np, fast=True))   # the fused step's mask sampler too
    fused = Trainer(cfg, np, x, y, x[:50], y[:50], fast=True)
    assert fused.step_impl is not None
    ref.health = fused.health = None   # random labels: nothing to learn, and arithmetic is what is compared
    ref.fit()
    fused.fit()
    for (l1, n1), (l2, n2) in zip(ref.model.parameters(), fused.model.parameters(), strict=True):
        a, b = l1.params[n1], l2.params[n2]
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))


def test_norm_bound_skips_only_when_no_column_can_be_too_long():
    """NormBound (the fused step's max-norm) against optim.max_norm_ on every
    step of a momentum walk whose columns grow into the limit: the weights
    agree, the bounds stay above the true column lengths, and the run both
    skips measurements and rescales columns (so each branch is exercised)."""
    from minikd.engine.optim import max_norm_
    rng = np.random.default_rng(5)
    n_in, n_out, n, limit = 120, 90, 20, 1.5
    W = (0.05 * rng.standard_normal((n_in, n_out))).astype(np.float32)
    v = np.zeros_like(W)
    W_ref = W.copy()
    bound = fast.NormBound(limit)
    rescaled_steps = 0
    for step in range(400):
        a = np.maximum(rng.standard_normal((n, n_in)), 0).astype(np.float32)
        d = (rng.standard_normal((n, n_out)) * (0.2 if step < 150 else 0.002)).astype(np.float32)
        # a drift that pushes a few columns past the limit now and then
        d[:, :3] += 0.05 if step % 50 < 10 else -0.05
        p, c = 0.9, -0.01
        fast.gemm(c, a, d, p, v, trans_a=True)
        W += v
        W_ref += v
        before = np.sqrt((W_ref.astype(np.float64) ** 2).sum(axis=0)).max()
        max_norm_(W_ref, limit)
        rescaled_steps += before > limit
        bound.apply(W, v, a, d, p, c)
        np.testing.assert_allclose(W, W_ref, rtol=1e-6, atol=1e-7)
        W[...] = W_ref  # keep the two walks identical, not merely close
        true_w = np.sqrt((W.astype(np.float64) ** 2).sum(axis=0))
        true_v = np.sqrt((v.astype(np.float64) ** 2).sum(axis=0))
        assert np.all(bound.w >= true_w * (1 - 1e-6)), step
        assert np.all(bound.v >= true_v * (1 - 1e-6)), step
    assert bound.steps == 400
    assert rescaled_steps > 0, "the walk never reached the limit: the test would prove nothing"
    assert bound.exact_checks < 400, "no step was skipped: the bound is never used"
    assert bound.exact_checks >= rescaled_steps


def test_fused_step_forgets_norm_bounds_each_epoch():
    """Weights changed between epochs (a resumed checkpoint, say) must not be
    judged by bounds from before the change."""
    rng = np.random.default_rng(6)
    x = rng.random((200, 64), dtype=np.float32)
    y = rng.integers(0, 10, 200).astype(np.int32)
    cfg = StageConfig(name="teacher", sizes=(64, 40, 10), epochs=2, batch_size=50, hidden_dropout=0.5,
                      max_norm=1.0, image_shape=(8, 8), lr=0.1, init_std=0.01)
    tr = Trainer(cfg, np, x, y, x[:50], y[:50], fast=True)
    tr.train_epoch(0)
    assert tr.step_impl.norm_bounds and tr.step_impl.norm_bounds[0].w is not None  # bounds in use
    W = tr.model.layers[0].params["W"]
    W[:, 0] = 5.0  # a column far over the limit, set from outside the step
    tr.train_epoch(1)
    assert np.sqrt((W.astype(np.float64) ** 2).sum(axis=0)).max() <= 1.0 + 1e-5


def test_scaled_velocity_equals_reference_through_folds():
    """The fused step keeps the velocity as a scale times an array (beta = 1 in the
    gemm) and folds the scale back in when it gets small. At momentum 0.5 the
    scale passes MIN_SCALE every ~20 steps: over 72 steps the weights and the
    velocities at the epoch's end still equal the reference step's."""
    rng = np.random.default_rng(7)
    x = rng.random((3600, 64), dtype=np.float32)
    y = rng.integers(0, 10, 3600).astype(np.int32)
    cfg = StageConfig(name="teacher", sizes=(64, 300, 250, 10), epochs=1, batch_size=50, input_dropout=0.2,
                      hidden_dropout=0.5, max_norm=1.0, image_shape=(8, 8), lr=0.2, lr_decay=0.9,
                      momentum_start=0.5, momentum_end=0.5, init_std=0.1)
    ref = Trainer(cfg, np, x, y, x[:50], y[:50], fast=False,
                  model=build_model(cfg, np, fast=True))   # the fused step's mask sampler too
    fused = Trainer(cfg, np, x, y, x[:50], y[:50], fast=True)
    ref.health = fused.health = None   # random labels: nothing to learn, and arithmetic is what is compared
    ref.fit()
    fused.fit()
    assert fused.step_impl.folds >= 3 * 3, "the scale was never folded back: that branch is untested"
    assert fused.step_impl.v_scale == [1.0, 1.0, 1.0], "the epoch ended with scaled velocities"
    for (l1, n1), (l2, n2) in zip(ref.model.parameters(), fused.model.parameters(), strict=True):
        a, b = l1.params[n1], l2.params[n2]
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
    v_ref, v_fused = ref.optimizer.state_dict(), fused.optimizer.state_dict()
    for k in v_ref:
        np.testing.assert_allclose(v_fused[k], v_ref[k], rtol=1e-4, atol=1e-5 * float(np.abs(v_ref[k]).max()))
    assert float(np.abs(v_ref["0.W"]).max()) > 0
