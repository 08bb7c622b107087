"""minikd.layers: shapes, dtypes, dropout semantics, and float64 gradient checks.

Every gradient check goes through minikd.gradcheck.check_layer: central
differences in float64 against backward(R) for a fixed random projection R.
"""
import itertools

import numpy
import pytest

from minikd.engine.backend import make_rng, to_host
from minikd.engine.gradcheck import check_layer
from minikd.engine.layers import Dense, Dropout, ReLU, Sequential, mlp


def host_rng(seed=0):
    return numpy.random.default_rng(seed)


def randn(xp, shape, dtype="float64", seed=1):
    return xp.asarray(host_rng(seed).standard_normal(shape).astype(dtype))


# ---------------------------------------------------------------- gradient checks

def test_gradcheck_dense(xp):
    layer = Dense(5, 4, rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=1.0)
    layer.params["b"][...] = randn(xp, 4, seed=2)  # a non-zero bias, so dL/db is not trivial
    errors = check_layer(layer, randn(xp, (3, 5)), rng=host_rng())
    assert set(errors) == {"x", "W", "b"}


def test_gradcheck_relu_away_from_the_kink(xp):
    g = host_rng(3)
    x = g.choice([-1.0, 1.0], size=(4, 6)) * g.uniform(0.1, 2.0, size=(4, 6))  # |x| >= 0.1
    assert 0 < (x > 0).mean() < 1
    check_layer(ReLU(), xp.asarray(x), rng=host_rng())


def test_gradcheck_dropout_with_frozen_mask(xp):
    layer = Dropout(0.5, rng=make_rng(xp, 4))
    check_layer(layer, randn(xp, (4, 6)), rng=host_rng(), forward_kwargs={"freeze_mask": True})
    mask = to_host(layer.mask)
    assert (mask == 0).any() and (mask > 1).any()  # the check really ran through a mask


def test_gradcheck_dropout_eval_is_identity(xp):
    check_layer(Dropout(0.5, rng=make_rng(xp, 4)), randn(xp, (4, 6)), rng=host_rng(), train=False)


def _min_abs_relu_input(model):
    """Smallest |input| any ReLU saw in the last forward pass (from the Dense before it)."""
    smallest = numpy.inf
    for dense, nxt in itertools.pairwise(model.layers):
        if isinstance(dense, Dense) and isinstance(nxt, ReLU):
            pre = to_host(dense.x @ dense.params["W"] + dense.params["b"])
            smallest = min(smallest, numpy.abs(pre).min())
            assert 0.2 < (pre > 0).mean() < 0.8, "most ReLUs should be active, not all"
    return smallest


def test_gradcheck_teacher_shaped_mlp(xp):
    """Input dropout 0.2, then (Dense-ReLU-Dropout 0.5) x 2, then Dense: 30-20-20-10."""
    model = mlp((30, 20, 20, 10), rng=make_rng(xp, 5), xp=xp, dtype="float64",
                input_dropout=0.2, hidden_dropout=0.5, init_std=0.5, max_norm=3.0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dropout", "Dense", "ReLU", "Dropout", "Dense", "ReLU", "Dropout", "Dense"]
    x = randn(xp, (4, 30), seed=6)
    errors = check_layer(model, x, rng=host_rng(), forward_kwargs={"freeze_mask": True})
    assert set(errors) == {"x", "1.W", "1.b", "4.W", "4.b", "7.W", "7.b"}
    # the check is only meaningful if no ReLU input sat within h of its kink
    model.forward(x, train=True, freeze_mask=True)
    assert _min_abs_relu_input(model) > 1e-4


# ---------------------------------------------------------------- behaviour

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(xp, dtype):
    model = mlp((6, 5, 3), rng=make_rng(xp, 0), xp=xp, dtype=dtype,
                input_dropout=0.2, hidden_dropout=0.5, init_std=0.3)
    x = randn(xp, (4, 6), dtype=dtype)
    y = model.forward(x, train=True)
    dx = model.backward(xp.ones_like(y))
    assert y.dtype == dx.dtype == numpy.dtype(dtype)
    for layer in model.dense_layers():
        for name in ("W", "b"):
            assert layer.params[name].dtype == layer.grads[name].dtype == numpy.dtype(dtype)


def test_dense_default_init(xp):
    layer = Dense(300, 200, rng=make_rng(xp, 0), xp=xp)
    W, b = to_host(layer.params["W"]), to_host(layer.params["b"])
    assert W.shape == (300, 200) and b.shape == (200,)
    assert W.dtype == b.dtype == numpy.float32  # training dtype
    assert abs(W.std() - 0.01) < 0.0005 and abs(W.mean()) < 0.0005  # N(0, 0.01^2)
    assert not b.any()


def test_dense_forward_and_grads_by_hand(xp):
    layer = Dense(2, 2, rng=make_rng(xp, 0), xp=xp, dtype="float64")
    layer.params["W"][...] = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    layer.params["b"][...] = xp.asarray([0.5, -0.5])
    x = xp.asarray([[1.0, 1.0], [2.0, 0.0]])
    numpy.testing.assert_array_equal(to_host(layer.forward(x, train=True)), [[4.5, 5.5], [2.5, 3.5]])
    dy = xp.asarray([[1.0, 0.0], [0.0, 2.0]])
    numpy.testing.assert_array_equal(to_host(layer.backward(dy)), [[1.0, 3.0], [4.0, 8.0]])  # dy @ W.T
    numpy.testing.assert_array_equal(to_host(layer.grads["W"]), [[1.0, 4.0], [1.0, 0.0]])  # x.T @ dy
    numpy.testing.assert_array_equal(to_host(layer.grads["b"]), [1.0, 2.0])


def test_gradients_overwrite_not_accumulate(xp):
    layer = Dense(3, 2, rng=make_rng(xp, 0), xp=xp, dtype="float64")
    x, dy = randn(xp, (4, 3)), randn(xp, (4, 2), seed=2)
    layer.forward(x, train=True)
    layer.backward(dy)
    first = {k: to_host(v).copy() for k, v in layer.grads.items()}
    layer.backward(dy)
    for k in first:
        numpy.testing.assert_array_equal(to_host(layer.grads[k]), first[k])


def test_relu_kink_gets_zero_gradient(xp):
    relu = ReLU()
    y = relu.forward(xp.asarray([-1.0, 0.0, 2.0]), train=True)
    numpy.testing.assert_array_equal(to_host(y), [0.0, 0.0, 2.0])
    numpy.testing.assert_array_equal(to_host(relu.backward(xp.ones(3))), [0.0, 0.0, 1.0])


def test_dropout_is_inverted_and_identity_in_eval(xp):
    x = xp.ones((200, 100), dtype="float32")
    layer = Dropout(0.2, rng=make_rng(xp, 0))
    assert layer.forward(x, train=False) is x
    y = to_host(layer.forward(x, train=True))
    assert y.dtype == numpy.float32
    kept = numpy.unique(y[y != 0])
    assert kept.size == 1 and abs(kept[0] - 1 / 0.8) < 1e-4  # survivors scaled by ~1/(1-rate)
    assert abs((y == 0).mean() - 0.2) < 0.01  # drop rate
    assert abs(y.mean() - 1.0) < 0.02  # survivors scaled by 1/(1-rate): same expectation
    numpy.testing.assert_array_equal(to_host(layer.backward(xp.ones_like(x))), y)
    assert Dropout(0.0, rng=make_rng(xp, 0)).forward(x, train=True) is x


def test_dropout_freeze_mask_reuses_the_mask(xp):
    layer = Dropout(0.5, rng=make_rng(xp, 0))
    x = xp.ones((8, 8))
    a = to_host(layer.forward(x, train=True))
    b = to_host(layer.forward(x, train=True, freeze_mask=True))
    c = to_host(layer.forward(x, train=True))
    numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(a, c)


@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan")])
def test_dropout_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="dropout rate"):
        Dropout(rate, rng=numpy.random.default_rng(0))


def test_mlp_sets_max_norm_on_hidden_layers_only(xp):
    model = mlp((6, 5, 4, 3), rng=make_rng(xp, 0), xp=xp, max_norm=2.0)
    assert [d.max_norm for d in model.dense_layers()] == [2.0, 2.0, None]
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]


def test_state_dict_round_trip(xp):
    a = mlp((4, 3, 2), rng=make_rng(xp, 0), xp=xp)
    b = mlp((4, 3, 2), rng=make_rng(xp, 1), xp=xp)
    b.load_state_dict({k: to_host(v) for k, v in a.state_dict().items()})  # from host copies
    for k, v in a.state_dict().items():
        numpy.testing.assert_array_equal(to_host(b.state_dict()[k]), to_host(v))
    with pytest.raises(ValueError, match="0.W"):
        b.load_state_dict({"0.W": numpy.zeros((2, 2))})
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({})


def test_sequential_backward_runs_in_reverse(xp):
    """Two Dense layers compose to one: d/dx of x @ W1 @ W2 is dy @ W2.T @ W1.T."""
    g = make_rng(xp, 0)
    d1, d2 = Dense(3, 4, rng=g, xp=xp, dtype="float64"), Dense(4, 2, rng=g, xp=xp, dtype="float64")
    model = Sequential(d1, d2)
    x, dy = randn(xp, (5, 3)), randn(xp, (5, 2), seed=2)
    model.forward(x, train=True)
    expected = dy @ d2.params["W"].T @ d1.params["W"].T
    numpy.testing.assert_allclose(to_host(model.backward(dy)), to_host(expected), rtol=1e-12)


def test_backward_gives_dx_unless_asked_not_to(xp):
    """dL/dx by default (gradient checks, the notebook); input_grad=False, which only the
    training step asks for, stops at the first layer with parameters: the same parameter
    gradients, no dL/dx (and the input dropout below it is not run backward)."""
    model = mlp((6, 5, 4, 3), rng=make_rng(xp, 0), xp=xp, dtype="float64", input_dropout=0.2,
                hidden_dropout=0.5, init_std=0.5)
    x, dy = randn(xp, (4, 6)), randn(xp, (4, 3), seed=2)
    model.forward(x, train=True, rng=make_rng(xp, 3))
    dx = model.backward(dy)
    assert dx is not None and tuple(dx.shape) == (4, 6)
    full = {f"{i}.{name}": to_host(layer.grads[name]).copy() for i, layer in enumerate(model.layers)
            for name in layer.grads}
    assert model.backward(dy, input_grad=False) is None
    for key, g in full.items():
        i, name = key.split(".")
        assert to_host(model.layers[int(i)].grads[name]).tobytes() == g.tobytes()
    assert model.layers[-1].backward(dy, input_grad=False) is None   # a Dense layer alone too


def test_relu_reads_its_mask_from_the_output_and_can_work_in_place(xp):
    x = xp.asarray([[-1.0, 0.0, 2.0], [3.0, -4.0, 0.5]])
    kept = to_host(x).copy()
    y = ReLU().forward(x, train=True)
    assert to_host(x).tobytes() == kept.tobytes()              # the input is left alone by default
    relu = ReLU(inplace=True)
    y2 = relu.forward(x, train=True)
    numpy.testing.assert_array_equal(to_host(x), to_host(y))   # ... and overwritten in place on request
    assert y2 is x and vars(relu).keys() >= {"y"} and "positive" not in vars(relu)
    numpy.testing.assert_array_equal(to_host(relu.backward(xp.ones((2, 3)))), [[0, 0, 1], [1, 0, 1]])
    assert [type(layer).__name__ for layer in mlp((3, 2, 2), rng=make_rng(xp, 0), xp=xp).layers
            if isinstance(layer, ReLU) and layer.inplace] == ["ReLU"]   # mlp: on each Dense output


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_bernoulli_mask_values_and_out(xp, rate):
    from minikd.engine.layers import bernoulli_mask
    mask = to_host(bernoulli_mask(make_rng(xp, 0), (300, 200), rate, "float32"))
    scale = numpy.float32(1.0 / (1.0 - rate))
    assert mask.dtype == numpy.float32 and set(numpy.unique(mask)) == {0.0, scale}
    assert abs((mask == 0).mean() - rate) < 0.01
    out = xp.zeros((300, 200), dtype="float32")
    assert bernoulli_mask(make_rng(xp, 0), (300, 200), rate, "float32", out=out) is out
    numpy.testing.assert_array_equal(to_host(out), mask)        # the same draws, into out
