"""The fast path's dropout-mask sampler: the plain mask's distribution from fewer random bits."""
import numpy
import pytest

from minikd.engine.layers import Dropout, bernoulli_mask
from minikd.fast import mask_sampler
from minikd.fast.masks import raw_stream_mask


@pytest.mark.parametrize("shape", [(200, 100), (7, 13)])  # 13 x 7 = 91: not a whole 64-bit word
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_half_from_single_bits(shape, dtype):
    """Rate 0.5 takes one random bit per unit on NumPy: values exactly {0, 2}, half dropped."""
    rng = numpy.random.default_rng(3)
    out = numpy.full(shape, -1.0, dtype)
    m = raw_stream_mask(rng, shape, 0.5, dtype, out=out)
    assert m is out and m.dtype == dtype and m.shape == shape
    assert set(numpy.unique(m)) <= {0.0, 2.0}
    m2 = raw_stream_mask(rng, shape, 0.5, dtype)            # fresh array; a new draw
    assert m2.shape == shape and not numpy.array_equal(m, m2)
    if m.size >= 10000:
        assert abs((m == 0).mean() - 0.5) < 0.015          # about 4 s.d. of a fair coin over 20,000 units
    # columns and rows are not stuck: every unit of a large batch is dropped sometimes and kept sometimes
    big = numpy.stack([raw_stream_mask(rng, (7, 13), 0.5, "float32") for _ in range(200)])
    assert (big == 0).any(axis=0).all() and (big == 2).any(axis=0).all()


@pytest.mark.parametrize("rate", [0.2, 0.3])
def test_other_rates_from_16_bit_draws(rate):
    """Other rates: 16-bit draws against round(rate * 2^16); the scale uses that rounded rate."""
    rng = numpy.random.default_rng(5)
    out = numpy.empty((400, 250), numpy.float32)
    m = raw_stream_mask(rng, out.shape, rate, numpy.float32, out=out)
    assert m is out
    threshold = round(rate * 65536)
    kept = numpy.unique(m[m != 0])
    assert kept.size == 1 and kept[0] == numpy.float32(65536 / (65536 - threshold))
    assert abs((m == 0).mean() - rate) < 0.005           # 100,000 units: about 5 s.d.
    assert abs(m.mean() - 1.0) < 0.01                    # E[mask] = 1


def test_plain_mask_has_the_same_distribution():
    """The engine's float-draw mask and the fast one agree in drop rate and scale."""
    rng = numpy.random.default_rng(6)
    plain = bernoulli_mask(rng, (400, 250), 0.5, numpy.float32)
    fast = raw_stream_mask(rng, (400, 250), 0.5, numpy.float32)
    assert set(numpy.unique(plain)) == set(numpy.unique(fast)) == {0.0, 2.0}
    assert abs((plain == 0).mean() - (fast == 0).mean()) < 0.01


def test_the_sampler_is_handed_in_on_numpy_only():
    assert mask_sampler(numpy) is raw_stream_mask
    assert mask_sampler(object()) is None
    layer = Dropout(0.5, sampler=mask_sampler(numpy))
    x = numpy.ones((8, 64), numpy.float32)
    a = layer.forward(x, train=True, rng=numpy.random.default_rng(1))
    b = raw_stream_mask(numpy.random.default_rng(1), x.shape, 0.5, numpy.float32)
    numpy.testing.assert_array_equal(a, b)               # the layer draws with what it was handed
