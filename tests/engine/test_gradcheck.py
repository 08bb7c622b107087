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
