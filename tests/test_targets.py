"""minikd.targets: what each transform keeps and what it destroys, on NumPy and on
the CuPy stand-in (tests/cupy_standin.py). Data is made on the host, moved with ``asarray`` and
brought back with ``to_host``; the softmax that judges the results is computed in float64."""
import numpy
import pytest

from minikd.engine.backend import make_rng, to_host
from minikd.engine.losses import one_hot
from minikd.targets import confidence_only, permute_non_top, smoothed_labels

TEMPERATURES = [1.0, 2.0, 5.0, 20.0]


@pytest.fixture(params=["numpy", "cupy stand-in"])
def xp(request):
    if request.param == "numpy":
        return numpy
    return request.getfixturevalue("cp")


def teacher_logits(seed, n=200, c=10, scale=3.0):
    """Host logits whose rows do not average to 0. scale=1e3: about half of each row's logits near +1e3
    and half near -1e3, a few units apart, so the top probability is neither 0 nor 1 at T = 1."""
    g = numpy.random.default_rng(seed)
    if scale > 100:
        return g.choice([-1.0, 1.0], size=(n, c)) * scale + g.standard_normal((n, c)) * 3.0
    return g.standard_normal((n, c)) * scale + g.uniform(-5, 5, size=(n, 1))


def top_probability(v, T):
    """softmax(v / T) of each row's first arg-max, float64 on the host."""
    s = numpy.asarray(v, dtype=numpy.float64) / T
    s -= s.max(axis=1, keepdims=True)
    p = numpy.exp(s) / numpy.exp(s).sum(axis=1, keepdims=True)
    return p[numpy.arange(len(p)), numpy.asarray(v).argmax(axis=1)]


# ---------------------------------------------------------------- permute_non_top (DKPP)

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_permuted_rows_keep_top_class_values_and_top_probability(xp, dtype):
    v = teacher_logits(0).astype(dtype)
    out = to_host(permute_non_top(xp.asarray(v), make_rng(xp, 0)))
    assert out.dtype == numpy.dtype(dtype) and out.shape == v.shape
    top = v.argmax(axis=1)
    rows = numpy.arange(len(v))
    assert (out.argmax(axis=1) == top).all()
    assert out[rows, top].tobytes() == v[rows, top].tobytes()
    assert numpy.sort(out, axis=1).tobytes() == numpy.sort(v, axis=1).tobytes()   # each row's own values
    for T in TEMPERATURES:
        # the same denominator summed in another order
        numpy.testing.assert_allclose(top_probability(out, T), top_probability(v, T), rtol=1e-13)


def test_permuted_rows_lose_their_order_of_the_other_classes(xp):
    v = teacher_logits(1)
    out = to_host(permute_non_top(xp.asarray(v), make_rng(xp, 1)))
    changed = (out != v).any(axis=1)
    # 9 non-top classes: a random order is the same one in 1 row of 9! = 362880
    assert changed.mean() > 0.95, changed.mean()
    # and the other classes' ranks are scrambled, not shifted: on average they keep no correlation
    others = numpy.ones_like(v, dtype=bool)
    others[numpy.arange(len(v)), v.argmax(axis=1)] = False
    a, b = v[others].reshape(len(v), -1), out[others].reshape(len(v), -1)
    corr = [numpy.corrcoef(x, y)[0, 1] for x, y in zip(a, b, strict=True)]
    assert abs(numpy.mean(corr)) < 0.1, numpy.mean(corr)


def test_permutation_comes_from_the_generator_alone(xp):
    v = xp.asarray(teacher_logits(2))
    a, b = permute_non_top(v, make_rng(xp, 5)), permute_non_top(v, make_rng(xp, 5))
    c = permute_non_top(v, make_rng(xp, 6))
    assert to_host(a).tobytes() == to_host(b).tobytes() != to_host(c).tobytes()


def test_a_tie_at_the_top_keeps_the_first_arg_max(xp):
    v = teacher_logits(3, n=50)
    top = v.argmax(axis=1)
    tied = (top + 3) % v.shape[1]
    v[numpy.arange(50), tied] = v[numpy.arange(50), top]              # a second class with the top value
    top = v.argmax(axis=1)                                            # the first of the two
    out = to_host(permute_non_top(xp.asarray(v), make_rng(xp, 3)))
    assert (out[numpy.arange(50), top] == v.max(axis=1)).all()
    assert numpy.sort(out, axis=1).tobytes() == numpy.sort(v, axis=1).tobytes()


def test_a_generator_of_another_backend_is_refused(cp):
    with pytest.raises(ValueError, match="make the generator on the logits' backend"):
        permute_non_top(cp.asarray(teacher_logits(0)), make_rng(numpy, 0))


# ---------------------------------------------------------------- confidence_only

@pytest.mark.parametrize("scale", [3.0, 1e3], ids=["|v|~3", "|v|~1e3"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T", TEMPERATURES)
def test_confidence_rows_keep_the_top_probability_and_equal_the_others(xp, T, dtype, scale):
    v = teacher_logits(4, scale=scale).astype(dtype)
    out = to_host(confidence_only(xp.asarray(v), T))
    assert out.dtype == numpy.dtype(dtype) and numpy.isfinite(out).all()
    rows, top = numpy.arange(len(v)), v.argmax(axis=1)
    assert out[rows, top].tobytes() == v[rows, top].tobytes()
    others = numpy.ones_like(v, dtype=bool)
    others[rows, top] = False
    rest = out[others].reshape(len(v), -1)
    assert (rest == rest[:, :1]).all()                               # every other class the same logit
    assert (rest[:, 0] <= v[rows, top]).all()
    p, p_new = top_probability(v, T), top_probability(out, T)
    assert 0.01 < numpy.median(p) < 0.99, numpy.median(p)             # neither certain nor flat: a real test
    # the others' one logit is rounded once to dtype: an error of at most u |v| / 2 in it (u: the dtype's
    # machine epsilon) moves the top probability by at most p (1 - p) u |v| / (2 T)
    bound = numpy.finfo(dtype).eps * numpy.abs(v).max() / T * p * (1 - p) + 1e-14
    assert (numpy.abs(p_new - p) <= bound).all(), numpy.abs(p_new - p).max()


def test_confidence_only_refuses_a_single_class_and_a_bad_temperature(xp):
    with pytest.raises(ValueError, match="at least 2"):
        confidence_only(xp.asarray(numpy.ones((3, 1))), 2.0)
    for T in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            confidence_only(xp.asarray(teacher_logits(0)), T)


# ---------------------------------------------------------------- smoothed_labels

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5, 0.9])
def test_smoothed_rows_sum_to_one_with_the_label_on_top(xp, smoothing, dtype):
    c = 10
    y = numpy.random.default_rng(0).integers(0, c, size=50)
    targets = to_host(smoothed_labels(xp.asarray(y), c, smoothing, dtype))
    assert targets.dtype == numpy.dtype(dtype) and targets.shape == (50, c)
    tol = 4 * c * numpy.finfo(dtype).eps
    numpy.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=0, atol=tol)
    numpy.testing.assert_allclose(targets[numpy.arange(50), y], 1 - smoothing + smoothing / c, rtol=0, atol=tol)
    off = numpy.ones_like(targets, dtype=bool)
    off[numpy.arange(50), y] = False
    numpy.testing.assert_allclose(targets[off], smoothing / c, rtol=0, atol=tol)
    if smoothing == 0.0:
        assert targets.tobytes() == to_host(one_hot(xp.asarray(y), c, dtype)).tobytes()


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5, float("nan")])
def test_smoothing_outside_0_1_is_refused_naming_it(xp, smoothing):
    with pytest.raises(ValueError, match=rf"smoothing must be in \[0, 1\), got {smoothing!r}"):
        smoothed_labels(xp.asarray(numpy.zeros(3, dtype=numpy.int64)), 10, smoothing)


def test_a_label_outside_the_classes_is_refused(xp):
    with pytest.raises(ValueError, match="label 10 is outside"):
        smoothed_labels(xp.asarray(numpy.array([0, 10, 3])), 10, 0.1)
