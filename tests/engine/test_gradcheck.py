"""minikd.gradcheck itself: it measures what it claims, and it FAILS on wrong gradients."""
import numpy
import pytest

from minikd.engine.backend import get_xp, make_rng
from minikd.engine.gradcheck import check_gradient, check_layer, numerical_gradient, relative_error
from minikd.engine.layers import Dense, Layer
from minikd.engine.losses import softmax


def host_rng(seed=0):
    return numpy.random.default_rng(seed)


def test_numerical_gradient_of_a_known_function(xp):
    """s(x) = sum(R * x^3)  =>  ds/dx = 3 x^2 R."""
    x = xp.asarray(host_rng(1).standard_normal((3, 4)))
    R = xp.asarray(host_rng(2).standard_normal((3, 4)))
    x_before = x.copy()
    numeric = numerical_gradient(lambda: (R * x * x * x).sum(), x)
    assert relative_error(numeric, 3 * x * x * R) < 1e-8
    assert bool((x == x_before).all())  # x restored after the perturbations


def test_numerical_gradient_subset_of_coordinates(xp):
    x = xp.asarray(host_rng(1).standard_normal(6))
    numeric = numerical_gradient(lambda: (x * x).sum(), x, indices=[1, 4])
    expected = 2 * x
    assert relative_error(numeric[xp.asarray([1, 4])], expected[xp.asarray([1, 4])]) < 1e-8
    assert not bool(numeric[xp.asarray([0, 2, 3, 5])].any())


def test_refuses_float32(xp):
    x = xp.zeros(3, dtype="float32")
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(lambda: x.sum(), x)


def test_check_gradient_raises_on_a_wrong_gradient(xp):
    x = xp.asarray(host_rng(1).standard_normal(5))
    f = lambda: (x * x).sum()  # noqa: E731
    check_gradient(f, x, 2 * x)
    with pytest.raises(AssertionError, match="relative error"):
        check_gradient(f, x, 2 * x * (1 + 1e-4))  # a 0.01% error is caught


class DenseWithoutBiasGradient(Dense):
    """Wrong on purpose: forgets dL/db."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = get_xp(dy).zeros_like(self.grads["b"])
        return dx


class DenseWithMeanBiasGradient(Dense):
    """Wrong on purpose: averages instead of summing over the batch for dL/db."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["b"] = dy.sum(axis=0) / dy.shape[0]
        return dx


class DenseWithoutTranspose(Dense):
    """Wrong on purpose: dL/dx = dy @ W instead of dy @ W.T (shapes allow it when square)."""

    def backward(self, dy):
        super().backward(dy)
        return dy @ self.params["W"]


@pytest.mark.parametrize("broken", [DenseWithoutBiasGradient, DenseWithMeanBiasGradient,
                                    DenseWithoutTranspose])
@pytest.mark.parametrize("max_coords", [None, 6])
def test_check_layer_fails_on_a_wrong_backward(xp, broken, max_coords):
    layer = broken(4, 4, rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=1.0)
    x = xp.asarray(host_rng(1).standard_normal((3, 4)))
    with pytest.raises(AssertionError, match="gradient check failed"):
        check_layer(layer, x, rng=host_rng(), max_coords=max_coords)
    # the same shapes and data pass with the correct layer
    check_layer(Dense(4, 4, rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=1.0), x,
                rng=host_rng(), max_coords=max_coords)


class Softmax(Layer):
    """y = softmax(x) per row.  dL/dx = y * (dy - sum_c(dy * y))."""

    def forward(self, x, *, train):
        self.y = softmax(x)
        return self.y

    def backward(self, dy):
        return self.y * (dy - (dy * self.y).sum(axis=-1, keepdims=True))


class LazySoftmax(Softmax):
    """Wrong on purpose: claims the gradient is always zero."""

    def backward(self, dy):
        return get_xp(dy).zeros_like(dy)


def test_plain_sum_cannot_see_a_wrong_softmax_gradient(xp):
    """Why the checker projects with a random R: every row of a softmax sums to 1,
    so d(sum softmax(x))/dx = 0 and a backward that returns zeros looks right."""
    x = xp.asarray(host_rng(1).standard_normal((3, 5)))
    lazy = LazySoftmax()
    lazy.forward(x, train=True)
    numeric_of_sum = numerical_gradient(lambda: lazy.forward(x, train=True).sum(), x)
    assert float(abs(numeric_of_sum).max()) < 1e-8  # agrees with "zero" up to rounding
    with pytest.raises(AssertionError):
        check_layer(lazy, x, rng=host_rng())  # a random projection exposes it
    check_layer(Softmax(), x, rng=host_rng())  # and the right backward passes


# ---------------------------------------------------------------- layer_errors, losses, the table

def test_layer_errors_measures_without_judging(xp):
    """layer_errors returns the errors of a wrong backward; check_layer raises, naming the gradient."""
    from minikd.engine.gradcheck import layer_errors
    layer = DenseWithMeanBiasGradient(4, 4, rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=1.0)
    x = xp.asarray(host_rng(1).standard_normal((3, 4)))
    errors = layer_errors(layer, x, rng=host_rng())
    assert set(errors) == {"x", "W", "b"}
    assert errors["b"] > 0.1 and errors["x"] < 1e-6 and errors["W"] < 1e-6
    with pytest.raises(AssertionError, match="of dL/db"):
        check_layer(layer, x, rng=host_rng())


def test_dropout_masks_are_frozen_by_the_checker(xp):
    """No forward_kwargs needed: the perturbed passes reuse the first pass's mask
    (with a fresh mask per pass the 'derivative' would be noise)."""
    from minikd.engine.layers import Dropout, Sequential
    layer = Sequential(Dense(5, 6, rng=make_rng(xp, 0), xp=xp, dtype="float64", init_std=1.0),
                       Dropout(0.5, rng=make_rng(xp, 4)))
    errors = check_layer(layer, xp.asarray(host_rng(1).standard_normal((3, 5))), rng=host_rng())
    assert max(errors.values()) < 1e-6


def test_check_loss_catches_a_missing_temperature_factor(xp):
    """distillation's gradient without its T (1/T instead of T, the T^2 left out of
    the gradient only) is off by a factor T^2: the loss check fails."""
    from minikd.engine.gradcheck import check_loss, loss_error
    from minikd.engine.losses import distillation_loss
    g = host_rng(3)
    z, v = xp.asarray(g.standard_normal((4, 5)) * 3), xp.asarray(g.standard_normal((4, 5)) * 3)

    def right(z_):
        return distillation_loss(z_, v, None, temperature=5.0)

    def wrong(z_):
        loss, dz = right(z_)
        return loss, dz / 25.0

    assert check_loss(right, z, h=1e-4) < 1e-6
    assert loss_error(wrong, z, h=1e-4) == pytest.approx(1 - 1 / 25, rel=1e-6)
    with pytest.raises(AssertionError, match="of dL/dz"):
        check_loss(wrong, z, h=1e-4)


def test_every_public_function_has_type_hints():
    import inspect
    from minikd.engine import gradcheck
    public = [f for name, f in vars(gradcheck).items()
              if inspect.isfunction(f) and not name.startswith("_") and f.__module__ == gradcheck.__name__]
    assert len(public) >= 8
    for f in public:
        sig = inspect.signature(f)
        missing = [p for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
        assert not missing and sig.return_annotation is not inspect.Signature.empty, f.__name__


def test_the_table_is_measured_by_the_engines_checker(monkeypatch, capsys):
    """python -m minikd.gradcheck has no differencing of its own: break the engine's
    and every row of the table fails."""
    from minikd import gradcheck as table
    from minikd.engine import gradcheck
    monkeypatch.setattr(gradcheck, "gradient_error", lambda *a, **k: 1.0)
    assert table.main([]) == 1
    out = capsys.readouterr().out
    assert "0 passed, 22 failed" in out


def test_the_table_has_a_passing_logit_matching_row():
    from minikd import gradcheck as table
    found = [r for r in table.rows() if r[0] == "logit matching"]
    assert len(found) == 1 and found[0][2] <= table.TOLERANCE, found


def test_the_h_sweep_shows_rounding_at_small_h_and_a_pass_at_the_tables_h():
    from minikd import gradcheck as table
    rows = table.sweep_h()
    big = [r for r in rows if "1e3" in r[1]]
    assert len(rows) == 16 and len(big) == 8
    for what, _size, f, g, errs in big:
        assert 1e3 < f < 1e5, what                        # the losses' real size at |z| ~ 1e3
        assert errs[1e-8] > 1e-5 > 1e-6 > errs[table.DISTILLATION_H], what
        # the rounding estimate u |L| / (h g) is within a factor 5 of what is measured at h = 1e-6
        assert 0.2 < errs[1e-6] / (table.MACHINE_EPS * f / (1e-6 * g)) < 5, what
