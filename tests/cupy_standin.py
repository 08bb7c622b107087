"""A CPU stand-in for CuPy with exactly CuPy's API names, for tests without a GPU.

CI has no GPU, so the real CuPy never runs there. This module builds an object
that the engine cannot tell from CuPy by anything it looks at:

* a module named ``cupy`` (``module.__name__ == "cupy"``, so ``is_cupy`` holds),
  installed as ``sys.modules["cupy"]`` -- ``import cupy`` and therefore
  ``get_backend("cupy")`` and ``get_xp(array)`` find it the way they find CuPy;
* an array class ``ndarray`` whose ``__module__`` is the real one's ("cupy"),
  and a ``random.Generator`` whose ``__module__`` is the real one's too;
* every public name it offers -- on the module, ``ndarray``, ``random``,
  ``random.Generator``, ``cuda``, ``cuda.runtime``, ``cuda.Stream``,
  ``lib.stride_tricks`` -- is one the real CuPy has: the lists in
  tests/cupy_api/ were dumped from cupy-cuda12x (see its meta.json), and
  ``check_names()`` (run on import) refuses any other name. So
  ``Generator.permutation``, which CuPy lacks, raises AttributeError here.
  The one exception: private attributes named ``_standin_*`` hold the data.

It behaves like CuPy where a NumPy-only habit would break on a GPU:

* mixing a host ``numpy.ndarray`` into a device operation (arithmetic,
  indexing, a function of the module) raises TypeError, as CuPy does;
  ``asarray(numpy_array)`` is the explicit transfer in, as in CuPy (CuPy also
  accepts a NumPy array as an index, with a silent copy to the device; the
  stand-in refuses it, so such a hidden per-step transfer shows in tests);
* ``numpy.asarray(device_array)`` raises TypeError (CuPy's ``__array__``);
* every device-to-host read is counted in ``READS`` by kind: ``get``,
  ``float``, ``int``, ``bool``, ``item``, ``tolist``, ``asnumpy`` and the
  text forms (``repr``, ``str``, ``format``); ``reads()`` is the total.
  A training loop that synchronises every step shows here as a count that
  grows with the number of steps.
* indexing returns views for 0-d results too (``a[0]`` is a 0-d array, as
  in CuPy, not a Python number).
* ``out=`` is honoured wherever the stand-in accepts it (elementwise functions,
  reductions, ``concatenate``/``stack``, random draws): the result is written
  into ``out`` and ``out`` is returned, as in CuPy.

It counts the kernel launches a real GPU would see, in ``LAUNCHES`` by kind;
``launches()`` is the total. The rule (issue 24):

* one count per call that launches a kernel: elementwise operations (in-place
  ones included, a copy into a slice, ``fill``), reductions (``sum``, ``max``,
  ``argmax``, ...), products (``@``, ``matmul``), random draws, fancy-index
  gathers and scatters, a copying ``astype`` (or ``copy``, or a ``reshape``
  that must copy), ``zeros``/``ones``/``empty``/``full`` (and ``*_like``,
  ``arange``), ``concatenate``/``stack``, ``argsort``;
* views cost nothing: ``.T``, ``transpose``, basic slices and integer indexing,
  ``reshape``/``ravel`` that need no copy, ``as_strided``, and
  ``astype(copy=False)`` when it does not copy. They are counted apart, in
  ``VIEWS``, for whoever wants to see them;
* a host-to-device copy (``asarray`` of a NumPy array) is a transfer, not a
  kernel: counted in ``TRANSFERS``, as device-to-host reads are in ``READS``.

``SITES``, when ``trace_sites(True)`` is on, counts launches by the line of the
calling code (file:line function) -- where the launches of a step come from.

The numbers come from NumPy underneath; the random streams come from NumPy's
SFC64 (CuPy's default is XORWOW: a stream differs from CuPy's, but, like
CuPy's, from NumPy's PCG64 too).

Run a script or module with the stand-in as ``cupy`` (a test-only bootstrap;
nothing in minikd knows about it)::

    python tests/cupy_standin.py scripts/reproduce.py --backend cupy ...
    python tests/cupy_standin.py -m pytest tests -k cupy

At exit it prints ``CUPY_STANDIN_READS {json}`` and ``CUPY_STANDIN_LAUNCHES {json}``
on stderr.
"""
from __future__ import annotations

import collections
import json
import sys
import types
from pathlib import Path

import numpy

API_DIR = Path(__file__).resolve().with_name("cupy_api")
META = json.loads((API_DIR / "meta.json").read_text())
READS = collections.Counter()
LAUNCHES = collections.Counter()   # kernel launches by kind (the counting rule in the docstring)
VIEWS = collections.Counter()      # calls that make a view: free on a GPU, counted apart
TRANSFERS = collections.Counter()  # host-to-device copies
SITES = collections.Counter()      # launches by calling line, while trace_sites(True)
_TRACE = [False]
PRIVATE = "_standin"   # the prefix of the stand-in's own (private) attributes
_HERE = str(Path(__file__).resolve())


def real_names(what):
    """The names ``dir()`` lists for ``what`` (e.g. "cupy.ndarray") in the real CuPy."""
    return set((API_DIR / f"{what}.txt").read_text().split())


def reads():
    """Device-to-host reads so far (all kinds)."""
    return READS.total()


def launches():
    """Kernel launches so far (all kinds), by the counting rule of the module's docstring."""
    return LAUNCHES.total()


def trace_sites(on=True):
    """Count launches by calling line in ``SITES`` from now on (``on=False`` stops it)."""
    _TRACE[0] = bool(on)


def _count(kind):
    READS[kind] += 1


def _launch(kind):
    LAUNCHES[kind] += 1
    if _TRACE[0]:
        f = sys._getframe(1)
        while f is not None and f.f_code.co_filename == _HERE:
            f = f.f_back
        if f is not None:
            SITES[f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}"] += 1


def _view(kind):
    VIEWS[kind] += 1


def _copied(result, source):
    """Whether NumPy had to copy ``source`` to make ``result`` (else it is a view)."""
    return not numpy.may_share_memory(result, source)


# --------------------------------------------------------------------------- arrays
_SCALARS = (bool, int, float, complex, numpy.generic)


def _unwrap(v):
    """The NumPy array inside ``v``; Python and NumPy scalars pass; host arrays are refused."""
    if isinstance(v, ndarray):
        return v._standin_host
    if isinstance(v, _SCALARS) or v is None:
        return v
    raise TypeError(f"Unsupported type {type(v)}")  # CuPy's words for a host operand


def _is_fancy(key):
    """Whether an (unwrapped) index gathers (an array or list in it) rather than slices."""
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, (numpy.ndarray, list)) for k in keys)


def _unwrap_index(key):
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    if key is Ellipsis or isinstance(key, slice):
        return key
    if isinstance(key, numpy.ndarray):
        raise TypeError("cupy stand-in: a NumPy array as an index is a hidden host-to-device copy; "
                        "move it with cupy.asarray first")
    return _unwrap(key)


def _wrap(r):
    if isinstance(r, ndarray):
        return r
    return ndarray._standin_of(numpy.asarray(r))


def _binary(op, kind="elementwise"):
    def method(self, other):
        _launch(kind)
        return _wrap(op(self._standin_host, _unwrap(other)))
    return method


def _reflected(op, kind="elementwise"):
    def method(self, other):
        _launch(kind)
        return _wrap(op(_unwrap(other), self._standin_host))
    return method


def _inplace(op):
    def method(self, other):
        _launch("elementwise")
        op(self._standin_host, _unwrap(other), out=self._standin_host)
        return self
    return method


def _into(out, host):
    """``host`` (a NumPy result) as a device array, written into ``out`` when one is given."""
    if out is None:
        return _wrap(host)
    if not isinstance(out, ndarray):
        raise TypeError(f"out must be a cupy.ndarray, got {type(out)}")
    if out.shape != numpy.shape(host):
        raise ValueError(f"out has shape {out.shape}, the result has {numpy.shape(host)}")
    out._standin_host[...] = host
    return out


def _reduce(method, a, out, **kwargs):
    """One reduction kernel: NumPy's ``method`` of ``a``, into ``out`` if given."""
    _launch("reduction")
    if out is None:
        return _wrap(getattr(a, method)(**kwargs))
    if not isinstance(out, ndarray):
        raise TypeError(f"out must be a cupy.ndarray, got {type(out)}")
    getattr(a, method)(out=out._standin_host, **kwargs)
    return out


class ndarray:
    """A "device" array: a NumPy array behind CuPy's interface."""

    __slots__ = ("_standin_host",)
    __hash__ = None
    __array_priority__ = 100

    def __init__(self, shape, dtype=float):
        self._standin_host = numpy.zeros(shape, dtype=dtype)

    @classmethod
    def _standin_of(cls, host):
        a = cls.__new__(cls)
        a._standin_host = host
        return a

    # NumPy may not take it over implicitly
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        f = getattr(_module, ufunc.__name__, None)
        if method != "__call__" or f is None or kwargs:
            return NotImplemented
        return f(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        f = getattr(_module, func.__name__, None)
        if f is None:
            return NotImplemented
        return f(*args, **kwargs)

    # host reads (each one a device-to-host transfer and a synchronisation in CuPy)
    def get(self, stream=None, order="C", out=None, blocking=True):
        _count("get")
        host = self._standin_host.copy(order=order)
        if out is not None:
            out[...] = host
            return out
        return host

    def item(self):
        _count("item")
        return self._standin_host.item()

    def tolist(self):
        _count("tolist")
        return self._standin_host.tolist()

    def __float__(self):
        _count("float")
        return float(self._standin_host)

    def __int__(self):
        _count("int")
        return int(self._standin_host)

    def __bool__(self):
        _count("bool")
        return bool(self._standin_host)

    def __repr__(self):
        _count("repr")
        return f"array({self._standin_host.tolist()!r})"

    def __str__(self):
        _count("str")
        return str(self._standin_host)

    def __format__(self, spec):
        _count("format")
        return format(self._standin_host.item() if self.ndim == 0 else self._standin_host, spec)

    # metadata lives on the host in CuPy too: no read
    shape = property(lambda self: self._standin_host.shape)
    dtype = property(lambda self: self._standin_host.dtype)
    ndim = property(lambda self: self._standin_host.ndim)
    size = property(lambda self: self._standin_host.size)
    strides = property(lambda self: self._standin_host.strides)
    itemsize = property(lambda self: self._standin_host.itemsize)
    nbytes = property(lambda self: self._standin_host.nbytes)

    @property
    def T(self):
        _view("T")
        return _wrap(self._standin_host.T)

    def __len__(self):
        return len(self._standin_host)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    # operators
    __add__, __radd__ = _binary(numpy.add), _reflected(numpy.add)
    __sub__, __rsub__ = _binary(numpy.subtract), _reflected(numpy.subtract)
    __mul__, __rmul__ = _binary(numpy.multiply), _reflected(numpy.multiply)
    __truediv__, __rtruediv__ = _binary(numpy.true_divide), _reflected(numpy.true_divide)
    __floordiv__, __rfloordiv__ = _binary(numpy.floor_divide), _reflected(numpy.floor_divide)
    __pow__, __rpow__ = _binary(numpy.power), _reflected(numpy.power)
    __matmul__, __rmatmul__ = _binary(numpy.matmul, "matmul"), _reflected(numpy.matmul, "matmul")
    __and__, __or__ = _binary(numpy.logical_and), _binary(numpy.logical_or)
    __lt__, __le__ = _binary(numpy.less), _binary(numpy.less_equal)
    __gt__, __ge__ = _binary(numpy.greater), _binary(numpy.greater_equal)
    __eq__, __ne__ = _binary(numpy.equal), _binary(numpy.not_equal)
    __iadd__, __isub__ = _inplace(numpy.add), _inplace(numpy.subtract)
    __imul__, __itruediv__ = _inplace(numpy.multiply), _inplace(numpy.true_divide)

    def __neg__(self):
        _launch("elementwise")
        return _wrap(-self._standin_host)

    def __abs__(self):
        _launch("elementwise")
        return _wrap(numpy.abs(self._standin_host))

    def __invert__(self):
        _launch("elementwise")
        return _wrap(~self._standin_host)

    def __getitem__(self, key):
        key = _unwrap_index(key)
        if _is_fancy(key):
            _launch("gather")
        else:
            _view("index")
        key = key if isinstance(key, tuple) else (key,)
        if not any(k is Ellipsis for k in key):
            key = key + (Ellipsis,)   # a 0-d result stays a view (an array), as in CuPy
        return _wrap(self._standin_host[key])

    def __setitem__(self, key, value):
        key = _unwrap_index(key)
        _launch("scatter" if _is_fancy(key) else "copy")
        self._standin_host[key] = _unwrap(value)

    # methods (CuPy's signatures)
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        host = self._standin_host.astype(dtype, order=order, copy=copy)
        if host is self._standin_host:
            _view("astype")
            return self
        _launch("copy")
        return _wrap(host)

    def reshape(self, *shape, order="C"):
        host = self._standin_host.reshape(*shape, order=order)
        _launch("copy") if _copied(host, self._standin_host) else _view("reshape")
        return _wrap(host)

    def ravel(self, order="C"):
        host = self._standin_host.ravel(order=order)
        _launch("copy") if _copied(host, self._standin_host) else _view("ravel")
        return _wrap(host)

    def transpose(self, *axes):
        _view("transpose")
        return _wrap(self._standin_host.transpose(*axes))

    def copy(self, order="C"):
        _launch("copy")
        return _wrap(self._standin_host.copy(order=order))

    def fill(self, value):
        _launch("elementwise")
        self._standin_host.fill(_unwrap(value))

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce("sum", self._standin_host, out, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce("mean", self._standin_host, out, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return _reduce("max", self._standin_host, out, axis=axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return _reduce("min", self._standin_host, out, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, out=None, dtype=None, keepdims=False):
        return _reduce("argmax", self._standin_host, out, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, out=None, dtype=None, keepdims=False):
        return _reduce("argmin", self._standin_host, out, axis=axis, keepdims=keepdims)

    def argsort(self, axis=-1, kind=None):
        _launch("sort")
        return _wrap(self._standin_host.argsort(axis=axis, kind="stable"))  # CuPy's sort is stable

    def all(self, axis=None, out=None, keepdims=False):
        return _reduce("all", self._standin_host, out, axis=axis, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return _reduce("any", self._standin_host, out, axis=axis, keepdims=keepdims)


ndarray.__module__ = META["module_of"]["cupy.ndarray"]


# --------------------------------------------------------------------------- functions
def _elementwise(f, kind="elementwise"):
    def g(*args, out=None, **kwargs):
        _launch(kind)
        if out is not None:
            if not isinstance(out, ndarray):
                raise TypeError(f"out must be a cupy.ndarray, got {type(out)}")
            f(*(_unwrap(a) for a in args), out=out._standin_host, **kwargs)
            return out
        return _wrap(f(*(_unwrap(a) for a in args), **kwargs))
    g.__name__ = f.__name__
    return g


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
        _launch("concatenate")   # CuPy stacks device values on the device
        return _wrap(numpy.array([_unwrap(v) for v in a], dtype=dtype))
    TRANSFERS["asarray"] += 1
    return _wrap(numpy.array(a, dtype=dtype))   # from the host: a copy, as in CuPy


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    out = asarray(obj, dtype=dtype)
    return out.copy() if copy and out is obj else out


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return numpy.asarray(a, order=order)


def zeros(shape, dtype=float, order="C"):
    _launch("alloc")
    return _wrap(numpy.zeros(shape, dtype=dtype, order=order))


def ones(shape, dtype=float, order="C"):
    _launch("alloc")
    return _wrap(numpy.ones(shape, dtype=dtype, order=order))


def empty(shape, dtype=float, order="C"):
    _launch("alloc")   # the rule counts it, though CuPy's empty only allocates
    out = numpy.empty(shape, dtype=dtype, order=order)
    if out.dtype.kind == "f":
        out.fill(numpy.nan)   # device memory is not zeroed: code must not rely on it
    return _wrap(out)


def full(shape, fill_value, dtype=None, order="C"):
    _launch("alloc")
    return _wrap(numpy.full(shape, _unwrap(fill_value), dtype=dtype, order=order))


def zeros_like(a, dtype=None, order="K", subok=None, shape=None):
    _launch("alloc")
    return _wrap(numpy.zeros_like(_unwrap(a), dtype=dtype, shape=shape))


def ones_like(a, dtype=None, order="K", subok=None, shape=None):
    _launch("alloc")
    return _wrap(numpy.ones_like(_unwrap(a), dtype=dtype, shape=shape))


def arange(start, stop=None, step=1, dtype=None):
    _launch("alloc")
    if stop is None:
        return _wrap(numpy.arange(start, dtype=dtype))
    return _wrap(numpy.arange(start, stop, step, dtype=dtype))


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _launch("concatenate")
    return _into(out, numpy.concatenate([_unwrap(a) for a in tup], axis=axis, dtype=dtype, casting=casting))


def stack(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _launch("concatenate")
    return _into(out, numpy.stack([_unwrap(a) for a in tup], axis=axis, dtype=dtype, casting=casting))


def sum(a, axis=None, dtype=None, out=None, keepdims=False):  # noqa: A001 (CuPy's name)
    return asarray(a).sum(axis=axis, dtype=dtype, out=out, keepdims=keepdims)


def mean(a, axis=None, dtype=None, out=None, keepdims=False):
    return asarray(a).mean(axis=axis, dtype=dtype, out=out, keepdims=keepdims)


def argmax(a, axis=None, dtype=None, out=None, keepdims=False):
    return a.argmax(axis=axis, out=out, keepdims=keepdims)


def _memory_pool():
    pool = types.SimpleNamespace(used_bytes=lambda: 0, total_bytes=lambda: 0, free_all_blocks=lambda: None)
    return lambda: pool


# --------------------------------------------------------------------------- random
class XORWOW:
    """CuPy's default bit generator (here: NumPy's SFC64 stream, seeded the same way)."""

    def __init__(self, seed=None, *, size=-1):
        self._standin_bits = numpy.random.SFC64(seed)


XORWOW.__module__ = "cupy.random._bit_generator"


class Generator:
    """cupy.random.Generator: only the methods CuPy has (no permutation, choice, shuffle)."""

    def __init__(self, bit_generator):
        self._standin_gen = numpy.random.Generator(bit_generator._standin_bits)

    def random(self, size=None, dtype=numpy.float64, out=None):
        _launch("random")
        if out is not None:
            size = out.shape if size is None else size
        return _into(out, self._standin_gen.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        _launch("random")
        if out is not None:
            size = out.shape if size is None else size
        return _into(out, self._standin_gen.standard_normal(size, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        _launch("random")
        return _wrap(self._standin_gen.integers(low, high, size=size, dtype=dtype, endpoint=endpoint))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        _launch("random")
        return _wrap(self._standin_gen.uniform(low, high, size).astype(dtype, copy=False))


Generator.__module__ = META["module_of"]["cupy.random.Generator"]


def default_rng(seed=None):
    return Generator(XORWOW(seed))


# --------------------------------------------------------------------------- cuda
class _NullStream:
    def synchronize(self):
        pass


class Stream:
    null = _NullStream()

    def synchronize(self):
        pass


Stream.__module__ = "cupy.cuda.stream"


def _device_properties(device):
    return {"name": b"NumPy stand-in for CuPy (CPU)", "totalGlobalMem": 0}


def as_strided(x, shape=None, strides=None):
    _view("as_strided")
    return _wrap(numpy.lib.stride_tricks.as_strided(_unwrap(x), shape=shape, strides=strides))


# --------------------------------------------------------------------------- the module
def _submodule(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def _build():
    elementwise = {name: _elementwise(getattr(numpy, name)) for name in (
        "exp", "log", "sqrt", "abs", "absolute", "sign", "maximum", "minimum", "clip",
        "isfinite", "negative", "divide", "true_divide", "where", "add", "subtract", "multiply",
        "greater", "greater_equal", "less", "equal")}
    elementwise["matmul"] = _elementwise(numpy.matmul, "matmul")
    random = _submodule("cupy.random", default_rng=default_rng, Generator=Generator, XORWOW=XORWOW)
    runtime = _submodule("cupy.cuda.runtime", getDeviceCount=lambda: 1,
                         getDeviceProperties=_device_properties)
    cuda = _submodule("cupy.cuda", runtime=runtime, Stream=Stream)
    stride_tricks = _submodule("cupy.lib.stride_tricks", as_strided=as_strided)
    lib = _submodule("cupy.lib", stride_tricks=stride_tricks)
    module = _submodule(
        "cupy", __version__=META["cupy_version"] + "+standin", ndarray=ndarray,
        asarray=asarray, array=array, asnumpy=asnumpy, zeros=zeros, ones=ones, empty=empty, full=full,
        zeros_like=zeros_like, ones_like=ones_like, arange=arange, concatenate=concatenate, stack=stack, sum=sum,
        mean=mean, argmax=argmax, get_default_memory_pool=_memory_pool(), random=random, cuda=cuda, lib=lib,
        _standin_launches=launches,
        newaxis=None, dtype=numpy.dtype, bool_=numpy.bool_, uint8=numpy.uint8, int32=numpy.int32,
        int64=numpy.int64, float32=numpy.float32, float64=numpy.float64, **elementwise)
    return module, {"cupy": module, "cupy.random": random, "cupy.cuda": cuda, "cupy.cuda.runtime": runtime,
                    "cupy.lib": lib, "cupy.lib.stride_tricks": stride_tricks}


_module, MODULES = _build()
module = _module


def check_names():
    """{what: names the stand-in has and the real CuPy lacks}; empty dicts mean faithful."""
    objects = {"cupy": module, "cupy.ndarray": ndarray, "cupy.random": MODULES["cupy.random"],
               "cupy.random.Generator": Generator, "cupy.cuda": MODULES["cupy.cuda"],
               "cupy.cuda.runtime": MODULES["cupy.cuda.runtime"], "cupy.cuda.Stream": Stream,
               "cupy.lib.stride_tricks": MODULES["cupy.lib.stride_tricks"]}
    extra = {}
    for what, obj in objects.items():
        names = {n for n in dir(obj) if not n.startswith(PRIVATE)}
        bad = names - real_names(what)
        if bad:
            extra[what] = sorted(bad)
    gen = default_rng(0)
    bad = {n for n in dir(gen) if not n.startswith(PRIVATE)} - real_names("cupy.random.Generator")
    if bad:
        extra["a cupy.random.Generator instance"] = sorted(bad)
    return extra


_EXTRA = check_names()
if _EXTRA:
    raise ImportError(f"the CuPy stand-in has names the real CuPy lacks: {_EXTRA}")


def install(modules=None):
    """Put the stand-in into ``sys.modules`` as ``cupy`` (and its submodules); returns it.

    ``modules``: a dict-like to install into (a pytest monkeypatch's setitem
    wrapper, for instance); default ``sys.modules``.
    """
    target = sys.modules if modules is None else modules
    for name, m in MODULES.items():
        target[name] = m
    return module


def _main(argv):
    """``cupy_standin.py [-m module | script] args...``: run it with the stand-in as cupy."""
    import atexit
    import runpy
    if not argv:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    install()
    atexit.register(lambda: print("CUPY_STANDIN_READS " + json.dumps({"total": reads(), **READS}) + "\n"
                                  + "CUPY_STANDIN_LAUNCHES " + json.dumps({"total": launches(), **LAUNCHES}),
                                  file=sys.stderr, flush=True))
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    # When run as a script this file is ``__main__``; the stand-in's state must live in
    # one module object, so hand over to the importable ``cupy_standin``.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import cupy_standin
    sys.exit(cupy_standin._main(sys.argv[1:]))
