"""minikd.optim: the 2012 momentum rule and the classic one, schedules, max-norm.

Expected numbers are worked out by hand in the comments, not by calling the
code under test.
"""
import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minikd.engine.backend import get_xp, make_rng, to_host
from minikd.engine.layers import Dense, Sequential, mlp
from minikd.engine.optim import Constant, ExponentialDecay, LinearRamp, MomentumSGD, max_norm_

W0 = [[1.0, -2.0], [0.5, 0.25]]
B0 = [0.0, 1.0]
GW1, GB1 = [[1.0, 2.0], [-4.0, 0.5]], [1.0, -1.0]
GW2, GB2 = [[2.0, -1.0], [0.0, 1.0]], [0.5, 0.5]


def one_dense(xp, dtype):
    layer = Dense(2, 2, rng=make_rng(xp, 0), xp=xp, dtype=dtype)
    layer.params["W"][...] = xp.asarray(W0, dtype=dtype)
    layer.params["b"][...] = xp.asarray(B0, dtype=dtype)
    return Sequential(layer), layer


def set_grads(layer, xp, gw, gb):
    dtype = layer.params["W"].dtype
    layer.grads["W"] = xp.asarray(gw, dtype=dtype)
    layer.grads["b"] = xp.asarray(gb, dtype=dtype)


def tol(dtype):
    return {"rtol": 1e-6 if dtype == "float32" else 1e-13, "atol": 1e-7 if dtype == "float32" else 1e-15}


def test_schedules_by_hand():
    decay = ExponentialDecay(0.1, 0.5)
    assert [decay(t) for t in (0, 1, 3)] == pytest.approx([0.1, 0.05, 0.0125])
    ramp = LinearRamp(0.5, 0.9, 2)
    assert [ramp(t) for t in (0, 1, 2, 10)] == pytest.approx([0.5, 0.7, 0.9, 0.9])
    assert LinearRamp(0.5, 0.9, 0)(0) == 0.9
    assert Constant(0.3)(7) == 0.3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_steps_of_the_2012_rule(xp, dtype):
    """v <- p v - (1 - p) eps g;  w <- w + v, with eps = 0.1 * 0.5^t, p = 0.5 -> 0.9 over 2 epochs.

    epoch 0: eps = 0.1,  p = 0.5:  v1 = -0.5 * 0.1 * g1 = -0.05 g1
        W: v1 = [[-0.05, -0.1], [0.2, -0.025]]   W1 = W0 + v1 = [[0.95, -2.1], [0.7, 0.225]]
        b: v1 = [-0.05, 0.05]                     b1 = [-0.05, 1.05]
    epoch 1: eps = 0.05, p = 0.7:  v2 = 0.7 v1 - 0.3 * 0.05 * g2 = 0.7 v1 - 0.015 g2
        W: v2 = [[-0.035 - 0.03, -0.07 + 0.015], [0.14 - 0, -0.0175 - 0.015]]
              = [[-0.065, -0.055], [0.14, -0.0325]]
           W2 = [[0.885, -2.155], [0.84, 0.1925]]
        b: v2 = [-0.035 - 0.0075, 0.035 - 0.0075] = [-0.0425, 0.0275]
           b2 = [-0.0925, 1.0775]
    """
    model, layer = one_dense(xp, dtype)
    opt = MomentumSGD(model, lr=ExponentialDecay(0.1, 0.5), momentum=LinearRamp(0.5, 0.9, 2))
    assert (opt.lr, opt.momentum) == pytest.approx((0.1, 0.5))
    set_grads(layer, xp, GW1, GB1)
    opt.step()
    numpy.testing.assert_allclose(to_host(layer.params["W"]), [[0.95, -2.1], [0.7, 0.225]], **tol(dtype))
    numpy.testing.assert_allclose(to_host(layer.params["b"]), [-0.05, 1.05], **tol(dtype))
    opt.set_epoch(1)
    assert (opt.lr, opt.momentum) == pytest.approx((0.05, 0.7))
    set_grads(layer, xp, GW2, GB2)
    opt.step()
    numpy.testing.assert_allclose(to_host(layer.params["W"]), [[0.885, -2.155], [0.84, 0.1925]], **tol(dtype))
    numpy.testing.assert_allclose(to_host(layer.params["b"]), [-0.0925, 1.0775], **tol(dtype))
    numpy.testing.assert_allclose(to_host(opt.velocity[0]["W"]), [[-0.065, -0.055], [0.14, -0.0325]],
                                  **tol(dtype))
    # state stays on the parameters' backend, in their dtype
    for arr in (layer.params["W"], layer.params["b"], opt.velocity[0]["W"], opt.velocity[0]["b"]):
        assert get_xp(arr) is xp and arr.dtype == numpy.dtype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_steps_of_the_classic_rule(xp, dtype):
    """v <- p v - eps g;  w <- w + v, with eps = 0.1, p = 0.9 (plain numbers).

    step 1: v1 = -0.1 g1 = [[-0.1, -0.2], [0.4, -0.05]]   W1 = [[0.9, -2.2], [0.9, 0.2]]
    step 2: v2 = 0.9 v1 - 0.1 g2 = [[-0.09 - 0.2, -0.18 + 0.1], [0.36, -0.045 - 0.1]]
               = [[-0.29, -0.08], [0.36, -0.145]]          W2 = [[0.61, -2.28], [1.26, 0.055]]
    """
    model, layer = one_dense(xp, dtype)
    opt = MomentumSGD(model, lr=0.1, momentum=0.9, rule="classic")
    set_grads(layer, xp, GW1, GB1)
    opt.step()
    numpy.testing.assert_allclose(to_host(layer.params["W"]), [[0.9, -2.2], [0.9, 0.2]], **tol(dtype))
    set_grads(layer, xp, GW2, GB2)
    opt.step()
    numpy.testing.assert_allclose(to_host(layer.params["W"]), [[0.61, -2.28], [1.26, 0.055]], **tol(dtype))
    assert layer.params["W"].dtype == numpy.dtype(dtype)


def test_unknown_rule():
    model, _ = one_dense(numpy, "float64")
    with pytest.raises(ValueError, match="nesterov"):
        MomentumSGD(model, lr=0.1, momentum=0.9, rule="nesterov")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_norm_by_hand(xp, dtype):
    """Column 0 = (3, 4) has length 5 > 2: rescaled to (1.2, 1.6), length exactly 2.
    Column 1 = (0.3, 0.4) has length 0.5 <= 2: left bit-for-bit as it was."""
    W = xp.asarray([[3.0, 0.3], [4.0, 0.4]], dtype=dtype)
    before = to_host(W).copy()
    assert max_norm_(W, 2.0) is W  # in place
    after = to_host(W)
    numpy.testing.assert_allclose(after[:, 0], [1.2, 1.6], **tol(dtype))
    numpy.testing.assert_allclose(numpy.linalg.norm(after[:, 0].astype("float64")), 2.0, **tol(dtype))
    assert after[:, 1].tobytes() == before[:, 1].tobytes()
    assert after.dtype == numpy.dtype(dtype)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), limit=st.floats(0.1, 10.0), scale=st.floats(0.01, 10.0),
       shape=st.tuples(st.integers(1, 6), st.integers(1, 6)), dtype=st.sampled_from(["float32", "float64"]))
def test_max_norm_properties(xp, seed, limit, scale, shape, dtype):
    before = (numpy.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    after = to_host(max_norm_(xp.asarray(before), limit))
    norms_before = numpy.linalg.norm(before.astype("float64"), axis=0)
    norms_after = numpy.linalg.norm(after.astype("float64"), axis=0)
    r = tol(dtype)["rtol"]
    for j in range(shape[1]):
        if norms_before[j] <= limit * (1 - r):  # clearly under: untouched
            assert after[:, j].tobytes() == before[:, j].tobytes()
        elif norms_before[j] > limit:  # over: same direction, length == limit
            numpy.testing.assert_allclose(norms_after[j], limit, rtol=4 * r)
            numpy.testing.assert_allclose(after[:, j] * norms_before[j], before[:, j] * norms_after[j],
                                          rtol=4 * r, atol=4 * r * scale * limit)


def test_optimizer_applies_max_norm_only_where_set(xp):
    """mlp puts max_norm on the hidden Dense layers; the output layer and biases are free."""
    model = mlp((6, 5, 4, 3), rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=5.0, max_norm=1.0)
    hidden, output = model.dense_layers()[:2], model.dense_layers()[2]
    for layer in model.dense_layers():
        layer.params["b"][...] = 10.0
        for name, w in layer.params.items():
            layer.grads[name] = xp.zeros_like(w)
    out_before = to_host(output.params["W"]).copy()
    assert (numpy.linalg.norm(out_before, axis=0) > 1.0).all()
    MomentumSGD(model, lr=0.1, momentum=0.5).step()  # zero gradients: only max-norm acts
    for layer in hidden:
        numpy.testing.assert_allclose(numpy.linalg.norm(to_host(layer.params["W"]), axis=0), 1.0, rtol=1e-12)
    assert to_host(output.params["W"]).tobytes() == out_before.tobytes()
    for layer in model.dense_layers():
        numpy.testing.assert_array_equal(to_host(layer.params["b"]), 10.0)  # bias not included


def test_exponential_decay_with_warmup_by_hand():
    """eps_t = eps_0 * decay^t * min(1, (t+1)/(warmup+1)), written out."""
    from minikd.engine.optim import ExponentialDecay
    sched = ExponentialDecay(0.8, 0.5, warmup=3)
    assert sched(0) == pytest.approx(0.8 * 1.0 * 0.25)
    assert sched(1) == pytest.approx(0.8 * 0.5 * 0.5)
    assert sched(2) == pytest.approx(0.8 * 0.25 * 0.75)
    assert sched(3) == pytest.approx(0.8 * 0.125)
    assert sched(4) == pytest.approx(0.8 * 0.0625)
    assert ExponentialDecay(0.8, 0.5)(0) == 0.8  # no warm-up: the plain 2012 decay


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_norm_scale_equals_the_textbook_form_bit_for_bit(xp, dtype):
    """max_norm_ scales by limit / max(||W_j||, limit), one operation fewer than
    min(1, limit / ||W_j||): the same factor, to the bit, for columns under, at and over the
    limit, and for a zero column."""
    g = numpy.random.default_rng(0)
    limit = 1.5
    W = (g.standard_normal((20, 60)) * g.uniform(0.01, 1.0, 60)).astype(dtype)
    W[:, 0] = 0.0
    W[:, 1] = W[:, 1] / numpy.linalg.norm(W[:, 1]) * dtype_type(dtype)(limit)   # about at the limit
    norms = numpy.sqrt((W * W).sum(axis=0))
    assert (norms > limit).any() and (norms < limit).any()
    textbook = W * numpy.minimum(1.0, limit / numpy.maximum(norms, 1e-30)).astype(W.dtype)
    got = to_host(max_norm_(xp.asarray(W), limit))
    assert got.tobytes() == textbook.tobytes()


def dtype_type(dtype):
    return numpy.dtype(dtype).type
