"""minikd.losses: values, exact gradients (float64 checks), stability, dtypes, bad input.

References are computed independently with scipy.special on the host.
"""
import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax as ref_log_softmax
from scipy.special import softmax as ref_softmax

from minikd.engine.backend import to_host
from minikd.engine.gradcheck import check_gradient
from minikd.engine.losses import count_errors, cross_entropy, distillation_loss, log_softmax, softmax

N, C = 4, 5
TEMPERATURES = [1.0, 2.0, 5.0, 20.0]
WEIGHTS = [(1.0, 1.0), (0.3, 0.7)]  # (hard_weight, soft_weight)


def host(seed, shape=(N, C), scale=1.0):
    return numpy.random.default_rng(seed).standard_normal(shape) * scale


def labels_host(seed=9):
    return numpy.random.default_rng(seed).integers(0, C, size=N)


def reference_loss_and_grad(z, v, y, T, hard_weight, soft_weight):
    """The closed form, float64 on the host:
    loss = sw T^2 mean_n(-sum_c q log p) + hw mean_n(-log softmax(z)_y)
    grad = sw T (p - q) / N + hw (softmax(z) - onehot) / N
    """
    n = z.shape[0]
    log_p, q = ref_log_softmax(z / T, axis=1), ref_softmax(v / T, axis=1)
    loss = soft_weight * T**2 * -(q * log_p).sum() / n
    grad = soft_weight * T * (numpy.exp(log_p) - q) / n
    if y is not None:
        onehot = numpy.eye(z.shape[1])[y]
        loss += hard_weight * -ref_log_softmax(z, axis=1)[numpy.arange(n), y].sum() / n
        grad += hard_weight * (ref_softmax(z, axis=1) - onehot) / n
    return loss, grad


# ---------------------------------------------------------------- values

def test_softmax_and_log_softmax_match_scipy(xp):
    z = host(0, scale=3.0)
    for T in (0.5, 1.0, 4.0):
        numpy.testing.assert_allclose(to_host(log_softmax(xp.asarray(z), T)),
                                      ref_log_softmax(z / T, axis=1), rtol=1e-12)
        numpy.testing.assert_allclose(to_host(softmax(xp.asarray(z), T)),
                                      ref_softmax(z / T, axis=1), rtol=1e-12)


def test_cross_entropy_value_and_gradient(xp):
    z, y = host(0, scale=2.0), labels_host()
    loss, grad = cross_entropy(xp.asarray(z), xp.asarray(y))
    ref_loss, ref_grad = reference_loss_and_grad(z, z, y, 1.0, 1.0, 0.0)
    assert numpy.ndim(to_host(loss)) == 0
    numpy.testing.assert_allclose(to_host(loss), ref_loss, rtol=1e-12)
    numpy.testing.assert_allclose(to_host(grad), ref_grad, rtol=1e-12, atol=1e-15)


def test_count_errors(xp):
    logits = xp.asarray([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert int(count_errors(logits, xp.asarray([1, 1, 1]))) == 1


# ---------------------------------------------------------------- float64 gradient checks

def test_gradcheck_cross_entropy(xp):
    z, y = xp.asarray(host(0, scale=2.0)), xp.asarray(labels_host())
    _, grad = cross_entropy(z, y)
    check_gradient(lambda: cross_entropy(z, y)[0], z, grad)


@pytest.mark.parametrize("weights", WEIGHTS, ids=["w=1,1", "w=.3,.7"])
@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "no-labels"])
@pytest.mark.parametrize("T", TEMPERATURES)
def test_gradcheck_distillation_loss(xp, T, with_labels, weights):
    hard_weight, soft_weight = weights
    z = xp.asarray(host(0, scale=2.0 * T))  # logits on the scale of T, so softmax(z/T) is not flat
    v = xp.asarray(host(1, scale=2.0 * T))
    y = xp.asarray(labels_host()) if with_labels else None

    def loss():
        return distillation_loss(z, v, y, temperature=T, hard_weight=hard_weight,
                                 soft_weight=soft_weight)[0]

    _, grad = distillation_loss(z, v, y, temperature=T, hard_weight=hard_weight,
                                soft_weight=soft_weight)
    check_gradient(loss, z, grad)


@pytest.mark.parametrize("weights", WEIGHTS, ids=["w=1,1", "w=.3,.7"])
@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "no-labels"])
@pytest.mark.parametrize("T", TEMPERATURES)
def test_distillation_near_1e3_matches_closed_form(xp, T, with_labels, weights):
    """At |z| ~ 1e3 finite differences drown in rounding; compare with the closed form."""
    hard_weight, soft_weight = weights
    signs = numpy.random.default_rng(2).choice([-1.0, 1.0], size=(N, C))
    z = signs * 1e3 + host(0, scale=10.0)
    v = -signs * 1e3 + host(1, scale=10.0)
    y = labels_host() if with_labels else None
    loss, grad = distillation_loss(xp.asarray(z), xp.asarray(v), None if y is None else xp.asarray(y),
                                   temperature=T, hard_weight=hard_weight, soft_weight=soft_weight)
    ref_loss, ref_grad = reference_loss_and_grad(z, v, y, T, hard_weight, soft_weight)
    assert numpy.isfinite(ref_loss) and numpy.isfinite(ref_grad).all()
    numpy.testing.assert_allclose(to_host(loss), ref_loss, rtol=1e-10)
    numpy.testing.assert_allclose(to_host(grad), ref_grad, rtol=1e-9, atol=1e-12)


def test_distillation_equals_its_parts(xp):
    """labels=None is the soft term alone; adding labels adds hard_weight * cross_entropy."""
    z, v, y = xp.asarray(host(0)), xp.asarray(host(1)), xp.asarray(labels_host())
    soft, dsoft = distillation_loss(z, v, None, temperature=3.0, soft_weight=0.5)
    hard, dhard = cross_entropy(z, y)
    both, dboth = distillation_loss(z, v, y, temperature=3.0, soft_weight=0.5, hard_weight=2.0)
    numpy.testing.assert_allclose(to_host(both), to_host(soft + 2.0 * hard), rtol=1e-12)
    numpy.testing.assert_allclose(to_host(dboth), to_host(dsoft + 2.0 * dhard), rtol=1e-12)


# ---------------------------------------------------------------- stability and dtypes

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T", [0.5, 1.0, 7.0, 100.0])
def test_finite_for_huge_logits(xp, dtype, T):
    signs = numpy.random.default_rng(3).choice([-1.0, 1.0], size=(N, C))
    z = xp.asarray((signs * 1e4).astype(dtype))
    v = xp.asarray((-signs * 1e4).astype(dtype))
    loss, grad = distillation_loss(z, v, xp.asarray(labels_host()), temperature=T)
    assert numpy.isfinite(to_host(loss)) and numpy.isfinite(to_host(grad)).all()
    loss, grad = cross_entropy(z, xp.asarray(labels_host()))
    assert numpy.isfinite(to_host(loss)) and numpy.isfinite(to_host(grad)).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1.0, 1e4),
       T=st.floats(0.5, 100.0), dtype=st.sampled_from(["float32", "float64"]))
def test_finite_for_random_logits(xp, seed, scale, T, dtype):
    g = numpy.random.default_rng(seed)
    z = xp.asarray(numpy.clip(g.standard_normal((N, C)) * scale, -1e4, 1e4).astype(dtype))
    v = xp.asarray(numpy.clip(g.standard_normal((N, C)) * scale, -1e4, 1e4).astype(dtype))
    loss, grad = distillation_loss(z, v, xp.asarray(labels_host()), temperature=T)
    assert numpy.isfinite(to_host(loss)) and numpy.isfinite(to_host(grad)).all()
    # each row of softmax(z/T) - q sums to 0; the hard part's row sums to 0 too
    numpy.testing.assert_allclose(to_host(grad).sum(axis=1), 0.0, atol=1e-3 * (T + 1) / N)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(xp, dtype):
    z, v, y = xp.asarray(host(0).astype(dtype)), xp.asarray(host(1)), xp.asarray(labels_host())
    for loss, grad in (cross_entropy(z, y), distillation_loss(z, v, y, temperature=2.0),
                       distillation_loss(z, v.astype(dtype), None, temperature=2.0)):
        assert to_host(loss).dtype == to_host(grad).dtype == numpy.dtype(dtype)
    assert log_softmax(z, 3.0).dtype == softmax(z, 3.0).dtype == numpy.dtype(dtype)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("bad", [-1, C, C + 7])
def test_label_outside_range(xp, bad):
    z, v = xp.asarray(host(0)), xp.asarray(host(1))
    y = labels_host()
    y[2] = bad
    with pytest.raises(ValueError, match=f"label {bad} is outside"):
        cross_entropy(z, xp.asarray(y))
    with pytest.raises(ValueError, match=f"label {bad} is outside"):
        distillation_loss(z, v, xp.asarray(y), temperature=2.0)


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan")])
def test_bad_temperature(xp, T):
    z, v = xp.asarray(host(0)), xp.asarray(host(1))
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(z, v, None, temperature=T)


def test_teacher_student_shape_mismatch(xp):
    z, v = xp.asarray(host(0)), xp.asarray(host(1, shape=(N, C + 1)))
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(z, v, None, temperature=2.0)


def test_label_count_mismatch(xp):
    z, v = xp.asarray(host(0)), xp.asarray(host(1))
    y = xp.asarray(labels_host()[:-1])
    with pytest.raises(ValueError, match="labels for"):
        cross_entropy(z, y)
    with pytest.raises(ValueError, match="labels for"):
        distillation_loss(z, v, y, temperature=2.0)


def test_labels_must_be_integers(xp):
    with pytest.raises(ValueError, match="integers"):
        cross_entropy(xp.asarray(host(0)), xp.asarray(labels_host().astype("float64")))


# ---------------------------------------------------------------- the training loop's forms

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_hot_rows_give_the_integer_labels_loss_bit_for_bit(xp, dtype):
    """The training loop passes one-hot rows (gathered once per epoch); the loss and gradient are
    those of the integer labels to the last bit, and the loss is the plain gather -mean_n log p[n, y_n]
    up to the order of the summation (the products t log p are exact: 0 or log p[n, y_n])."""
    from minikd.engine.losses import one_hot
    z, y = xp.asarray(host(3, (37, C), scale=4.0).astype(dtype)), xp.asarray(labels_host(5).repeat(10)[:37])
    t = one_hot(y, C, dtype)
    assert to_host(t).dtype == numpy.dtype(dtype) and (to_host(t).sum(axis=1) == 1).all()
    by_label, by_rows = cross_entropy(z, y), cross_entropy(z, t)
    for a, b in zip(by_label, by_rows, strict=True):
        assert to_host(a).tobytes() == to_host(b).tobytes()
    logp = to_host(log_softmax(z))
    gathered = -logp[numpy.arange(37), to_host(y)].sum() / 37
    # summing 37 terms of one sign in another order: at most 36 roundings of the running sum apart
    numpy.testing.assert_allclose(to_host(by_rows[0]), gathered, rtol=36 * numpy.finfo(dtype).eps)
    out = xp.zeros((), dtype=dtype)
    loss, _ = cross_entropy(z, t, out=out)
    assert loss is out and to_host(out).tobytes() == to_host(by_label[0]).tobytes()


def test_distillation_parts_are_the_loss_and_its_hard_part(xp):
    """parts = [distillation_loss's loss, the hard cross-entropy]; log p is kept where asked; and
    soft_weight T^2 mean KL(q || p) (kl_rows) = the soft term - soft_weight T^2 H(q)."""
    from minikd.engine.losses import distillation_parts, kl_rows
    z, v, y = xp.asarray(host(0, scale=3.0)), xp.asarray(host(1, scale=3.0)), xp.asarray(labels_host())
    T, hw, sw = 4.0, 0.3, 0.7
    loss, grad = distillation_loss(z, v, y, temperature=T, hard_weight=hw, soft_weight=sw)
    q = softmax(v, T)
    keep = xp.zeros((N, C))
    parts, grad2 = distillation_parts(z, q, y, temperature=T, hard_weight=hw, soft_weight=sw, log_p_out=keep)
    parts = to_host(parts)
    assert parts[0] == to_host(loss) and to_host(grad2).tobytes() == to_host(grad).tobytes()
    assert parts[1] == to_host(cross_entropy(z, y)[0])
    assert to_host(keep).tobytes() == to_host(log_softmax(z, T)).tobytes()
    log_q = log_softmax(v, T)
    soft = sw * T * T * -(to_host(q) * to_host(keep)).sum() / N
    entropy = -(to_host(q) * to_host(log_q)).sum() / N
    numpy.testing.assert_allclose(sw * T * T * to_host(kl_rows(q, log_q, keep)).mean(),
                                  soft - sw * T * T * entropy, rtol=1e-10)
    no_labels = to_host(distillation_parts(z, q, None, temperature=T, soft_weight=sw)[0])
    assert no_labels[1] == 0.0
    assert no_labels[0] == to_host(distillation_loss(z, v, None, temperature=T, soft_weight=sw)[0])


# ---------------------------------------------------------------- logit matching

def test_logit_matching_value_and_gradient_by_hand(xp):
    """Two rows, C = 3, N = 2, worked by hand (zc, vc: the rows minus their means):
    row 0: zc = (-1, 0, 1), vc = 0 -> zc - vc = (-1, 0, 1), sum of squares 2
    row 1: zc = (-2, -2, 4), vc = (3, 0, 0) - 1 = (2, -1, -1) -> zc - vc = (-4, -1, 5), sum of squares 42
    L = (1/N) sum_n (1/2C) sum_c (zc - vc)^2 = (2 + 42) / (2 * 2 * 3) = 11/3;  dL/dz = (zc - vc) / (C N)."""
    from minikd.engine.losses import logit_matching
    z = xp.asarray([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    v = xp.asarray([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    loss, grad = logit_matching(z, v)
    assert numpy.ndim(to_host(loss)) == 0
    numpy.testing.assert_allclose(to_host(loss), 11.0 / 3.0, rtol=1e-15)
    numpy.testing.assert_allclose(to_host(grad), numpy.array([[-1.0, 0.0, 1.0], [-4.0, -1.0, 5.0]]) / 6.0,
                                  rtol=1e-15, atol=1e-16)
    # a constant added to a row of either changes nothing (a softmax cannot see it)
    shifted = logit_matching(z + xp.asarray([[5.0], [-7.0]]), v + 3.0)
    numpy.testing.assert_allclose(to_host(shifted[0]), 11.0 / 3.0, rtol=1e-14)
    out = xp.zeros(())
    assert logit_matching(z, v, out=out)[0] is out and float(to_host(out)) == float(to_host(loss))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logit_matching_keeps_the_students_dtype(xp, dtype):
    from minikd.engine.losses import logit_matching
    loss, grad = logit_matching(xp.asarray(host(0).astype(dtype)), xp.asarray(host(1)))
    assert to_host(loss).dtype == to_host(grad).dtype == numpy.dtype(dtype)


def test_logit_matching_refuses_mismatched_shapes(xp):
    from minikd.engine.losses import logit_matching
    with pytest.raises(ValueError, match="same shape"):
        logit_matching(xp.asarray(host(0)), xp.asarray(host(1, shape=(N, C + 1))))


def test_gradcheck_logit_matching(xp):
    from minikd.engine.losses import logit_matching
    z = xp.asarray(host(0, scale=3.0) + 4.0)            # not zero-mean: the mean's derivative must drop out
    v = xp.asarray(host(1, scale=3.0) - 2.0)
    _, grad = logit_matching(z, v)
    check_gradient(lambda: logit_matching(z, v)[0], z, grad)


def test_t_squared_soft_gradient_tends_to_logit_matchings_gradient(xp):
    """T^2 d(soft term)/dz = T (p - q) / N -> (zc - vc) / (C N) as T grows, with a relative error of
    order |zc| / T + |vc| / T: each tenfold T cuts the largest difference about tenfold. Logits not
    zero-mean (row means +-5), so the uncentred (z - v) / (C N) would stay off at every T."""
    from minikd.engine.losses import logit_matching
    g = numpy.random.default_rng(4)
    z = host(0, scale=2.0) + g.uniform(-5, 5, size=(N, 1))
    v = host(1, scale=2.0) + g.uniform(-5, 5, size=(N, 1))
    _, limit = logit_matching(xp.asarray(z), xp.asarray(v))
    errors = []
    for T in (10.0, 100.0, 1000.0):
        _, soft = distillation_loss(xp.asarray(z), xp.asarray(v), None, temperature=T, hard_weight=0.0)
        errors.append(float(numpy.abs(to_host(soft) - to_host(limit)).max()))
    scale = float(numpy.abs(to_host(limit)).max())
    centred = max(numpy.abs(a - a.mean(axis=1, keepdims=True)).max() for a in (z, v))
    assert errors[0] > 1e-2 * scale                                # T = 10 is visibly not the limit yet
    assert 7 < errors[0] / errors[1] < 13 and 7 < errors[1] / errors[2] < 13, errors
    assert errors[2] < 2 * centred / 1000.0 * scale, (errors, centred, scale)   # O(|zc| / T + |vc| / T)
