"""A tiny array backend that is NOT NumPy, for catching NumPy-only engine code.

CI has no GPU, so CuPy never runs there. This stand-in plays CuPy's part on
the CPU: ``Array`` wraps a NumPy array but is not an ndarray (subclass), and
it refuses every way NumPy could take it over:

* ``__array__`` raises TypeError        -> numpy.asarray(x) fails
* ``__array_ufunc__ = None``            -> numpy.exp(x), ndarray + x fail
* ``__array_function__`` -> NotImplemented -> numpy.sum(x), numpy.zeros_like(x) fail
* operators reject NumPy arrays          -> mixing host and "device" fails (as in CuPy)

(An ndarray *subclass* with a raising ``__array__`` would not do: NumPy
ufuncs accept it silently.) The namespace ``xp`` below offers only the
functions the engine uses; ``Array.__array_namespace__`` returns it, which is
how ``minikd.backend.get_xp`` finds it. Host transfers are explicit, as in
CuPy: ``xp.asarray(numpy_array)`` in, ``array.get()`` out.

This backend is deliberately *not* CuPy: its module is named "foreign", so the
engine takes its generic branches under it. The CuPy path itself -- CuPy's
names only, CuPy's branches, the Trainer and the commands, host reads counted
-- is tested on tests/cupy_standin.py (tests/test_cupy_standin.py).
"""
from __future__ import annotations

import types

import numpy

_SCALARS = (bool, int, float, numpy.generic)


def _unwrap(v):
    """The NumPy array inside ``v``; plain scalars pass; host arrays are refused."""
    if isinstance(v, Array):
        return v._a
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, tuple):  # an index such as (rows, labels)
        return tuple(_unwrap(k) for k in v)
    if v is None or v is Ellipsis or isinstance(v, slice):
        return v
    raise TypeError(f"foreign backend: cannot mix {type(v).__name__} with a foreign array")


def _binary(op):
    return lambda self, other: Array(op(self._a, _unwrap(other)))


def _inplace(op):
    def method(self, other):
        op(self._a, _unwrap(other), out=self._a)
        return self
    return method


class Array:
    """A "device" array: a NumPy array NumPy itself is not allowed to see."""

    __array_ufunc__ = None
    __hash__ = None

    def __init__(self, a):
        self._a = numpy.asarray(a)  # no copy for an ndarray: views stay views

    def __array__(self, *args, **kwargs):
        raise TypeError("foreign backend: engine code passed a foreign array to NumPy")

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented

    def __array_namespace__(self, api_version=None):
        return xp

    def get(self):
        """Copy to the host (like cupy.ndarray.get)."""
        return self._a.copy()

    # attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: Array(self._a.T))

    # reading one number back (a device-to-host transfer in CuPy)
    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    # operators
    __add__, __radd__ = _binary(numpy.add), _binary(lambda a, b: b + a)
    __sub__, __rsub__ = _binary(numpy.subtract), _binary(lambda a, b: b - a)
    __mul__, __rmul__ = _binary(numpy.multiply), _binary(lambda a, b: b * a)
    __truediv__, __rtruediv__ = _binary(numpy.divide), _binary(lambda a, b: b / a)
    __matmul__ = _binary(numpy.matmul)
    __lt__, __le__ = _binary(numpy.less), _binary(numpy.less_equal)
    __gt__, __ge__ = _binary(numpy.greater), _binary(numpy.greater_equal)
    __eq__, __ne__ = _binary(numpy.equal), _binary(numpy.not_equal)
    __iadd__, __isub__ = _inplace(numpy.add), _inplace(numpy.subtract)
    __imul__, __itruediv__ = _inplace(numpy.multiply), _inplace(numpy.divide)

    def __neg__(self):
        return Array(-self._a)

    def __getitem__(self, key):
        return Array(self._a[_unwrap(key)])  # slices stay views, as in NumPy/CuPy

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    # methods
    def astype(self, dtype, copy=True):
        return Array(self._a.astype(dtype, copy=copy))

    def reshape(self, *shape):
        return Array(self._a.reshape(*shape))

    def copy(self):
        return Array(self._a.copy())

    def sum(self, axis=None, keepdims=False):
        return Array(self._a.sum(axis=axis, keepdims=keepdims))

    def max(self, axis=None, keepdims=False):
        return Array(self._a.max(axis=axis, keepdims=keepdims))

    def mean(self, axis=None, keepdims=False):
        return Array(self._a.mean(axis=axis, keepdims=keepdims))

    def min(self, axis=None, keepdims=False):
        return Array(self._a.min(axis=axis, keepdims=keepdims))

    def argmax(self, axis=None):
        return Array(self._a.argmax(axis=axis))

    def __repr__(self):
        return f"foreign.Array({self._a!r})"


def _elementwise(f):
    def g(*args, out=None):
        if out is None:
            return Array(f(*(_unwrap(a) for a in args)))
        f(*(_unwrap(a) for a in args), out=out._a)   # in place, as ReLU(inplace=True) asks
        return out
    return g


class _Generator:
    """numpy.random.Generator's stream, handing out foreign arrays."""

    def __init__(self, seed):
        self._g = numpy.random.default_rng(seed)

    def standard_normal(self, size=None, dtype="float64"):
        return Array(self._g.standard_normal(size, dtype=dtype))

    def random(self, size=None, dtype="float64"):
        return Array(self._g.random(size, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype="int64"):
        return Array(self._g.integers(low, high, size=size, dtype=dtype))


def _asarray(obj, dtype=None):
    if isinstance(obj, Array):
        return obj if dtype is None else obj.astype(dtype, copy=False)
    return Array(numpy.array(obj, dtype=dtype))  # from the host: a copy, as in CuPy


xp = types.SimpleNamespace(
    __name__="foreign",
    exp=_elementwise(numpy.exp),
    log=_elementwise(numpy.log),
    sqrt=_elementwise(numpy.sqrt),
    abs=_elementwise(numpy.abs),
    maximum=_elementwise(numpy.maximum),
    add=_elementwise(numpy.add),
    subtract=_elementwise(numpy.subtract),
    multiply=_elementwise(numpy.multiply),
    divide=_elementwise(numpy.divide),
    minimum=_elementwise(numpy.minimum),
    zeros=lambda shape, dtype="float64": Array(numpy.zeros(shape, dtype=dtype)),
    empty=lambda shape, dtype="float64": Array(numpy.full(shape, numpy.nan, dtype=dtype)),
    zeros_like=lambda a: Array(numpy.zeros_like(_unwrap(a))),
    arange=lambda n: Array(numpy.arange(n)),
    stack=lambda arrays, axis=0: Array(numpy.stack([_unwrap(a) for a in arrays], axis=axis)),
    asarray=_asarray,
    random=types.SimpleNamespace(default_rng=_Generator),
)
