"""Layers with hand-written forward and backward passes.

Every layer follows one contract:

* ``forward(x, *, train)`` returns the output and keeps what ``backward`` needs;
* ``backward(dy)`` takes dL/d(output), fills ``self.grads`` (overwriting, never
  accumulating) and returns dL/d(input).

A layer with parameters also takes ``backward(dy, input_grad=False)``: fill the
parameter gradients, skip dL/d(input) and return None. Only a caller that knows
the input is the data asks for that (the training step, through
``Sequential.backward``); everyone else gets dL/d(input).

Parameters live in ``self.params`` and their gradients in ``self.grads``, both
dicts keyed by name ("W", "b"), so the optimizer can walk them without knowing
the layer. Shapes: a batch of N rows; x is (N, n_in), y is (N, n_out).
Letters as in docs/notation.md: rows n, input features i, output features j;
y is only ever a layer's output (the labels are ``labels``).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Sequence

from .backend import Array, ArrayModule, Generator, get_xp

#: A dropout-mask sampler: (rng, shape, rate, dtype, out=None) -> mask (``bernoulli_mask``'s signature).
MaskSampler = Callable[..., Array]


class Layer:
    """A layer without parameters; subclasses override forward/backward."""

    def __init__(self) -> None:
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}

    def forward(self, x: Array, *, train: bool) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Affine map  y = x @ W + b.

    x: (N, n_in)   W: (n_in, n_out)   b: (n_out,)   y: (N, n_out)

    dL/dW = x.T @ dy        (n_in, n_out)     dL/dW_ij = sum_n x_ni dy_nj
    dL/db = sum_n dy[n]     (n_out,)          dL/db_j  = sum_n dy_nj
    dL/dx = dy @ W.T        (N, n_in)         dL/dx_ni = sum_j dy_nj W_ij

    Weights start from a normal distribution with standard deviation init_std
    (0.01 in Hinton et al. 2012), biases at 0. ``max_norm`` (None or a float,
    the limit lambda) is read by the optimizer: it bounds the Euclidean length
    of each column W[:, j] -- the incoming weights of output unit j, bias
    excluded -- after every update.
    """

    def __init__(self, n_in: int, n_out: int, *, rng: Generator, xp: ArrayModule | None = None,
                 dtype: str = "float32", init_std: float = 0.01, max_norm: float | None = None) -> None:
        super().__init__()
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.max_norm = max_norm
        self.params["W"] = (rng.standard_normal((self.n_in, self.n_out), dtype=dtype)
                            * init_std).astype(dtype, copy=False)
        xp = xp if xp is not None else get_xp(self.params["W"])  # the bias lives with the weights
        self.params["b"] = xp.zeros(self.n_out, dtype=dtype)
        self.x = None

    def forward(self, x: Array, *, train: bool) -> Array:
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        self.grads["W"] = self.x.T @ dy
        self.grads["b"] = dy.sum(axis=0)
        if not input_grad:   # the input is the data: nobody reads dL/dx, so skip its product
            return None
        return dy @ self.params["W"].T

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, max_norm={self.max_norm})"


class ReLU(Layer):
    """y = max(x, 0) elementwise.

    dL/dx = dL/dy * [x > 0]   (the kink at 0 gets gradient 0)

    x > 0 exactly where y > 0, so backward reads the mask from the output y:
    nothing but y is kept. ``inplace=True`` writes y over x, one array less
    per layer; only for an x that nobody else reads (``mlp`` puts each ReLU
    on a Dense layer's fresh output).
    """

    def __init__(self, *, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.y = None

    def forward(self, x: Array, *, train: bool) -> Array:
        xp = get_xp(x)
        self.y = xp.maximum(x, 0, out=x) if self.inplace else xp.maximum(x, 0)
        return self.y

    def backward(self, dy: Array) -> Array:
        return dy * (self.y > 0)

    def __repr__(self) -> str:
        return "ReLU(inplace=True)" if self.inplace else "ReLU()"


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate``
    (alpha) and scale the survivors by 1/(1 - alpha), so evaluation is the identity.

    train:  y = x * k,  k_ni = [u_ni >= alpha] / (1 - alpha),  u_ni ~ U[0, 1)
    eval:   y = x
    dL/dx = dL/dy * k   (train)   or   dL/dy   (eval)

    k is the keep mask (``self.mask``). x, y, k: (N, n_in), the same shape.
    The uniform draws come from ``rng``, the generator given to ``forward``
    (the training loop passes one per epoch), else the one given here.
    ``sampler(rng, shape, rate, dtype, out=None)`` replaces ``bernoulli_mask``
    where a faster way to draw the same distribution is handed in (minikd.fast
    does so on NumPy); it must return a mask with the same meaning: 0 or a
    scale (1/(1 - alpha) for ``bernoulli_mask``), with E[k_ni] = 1.

    ``freeze_mask=True`` in forward reuses the previous mask: a gradient check
    needs the same function at x + delta and x - delta (delta its step).
    """

    def __init__(self, rate: float, *, rng: Generator | None = None,
                 sampler: MaskSampler | None = None) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.rng = rng
        self.sampler = sampler if sampler is not None else bernoulli_mask
        self.mask = None

    def draw_mask(self, rng: Generator | None, shape: tuple, dtype: Any, out: Array | None = None) -> Array:
        """A fresh (shape) mask for this layer's rate, from ``rng`` (or the layer's own)."""
        rng = rng if rng is not None else self.rng
        if rng is None:
            raise ValueError("Dropout needs a random generator in training: pass forward(..., rng=...) "
                             "or Dropout(rate, rng=...)")
        return self.sampler(rng, shape, self.rate, dtype, out=out)

    def forward(self, x: Array, *, train: bool, rng: Generator | None = None,
                freeze_mask: bool = False) -> Array:
        if not train or self.rate == 0.0:
            self.mask = None
            return x
        if not (freeze_mask and self.mask is not None):
            self.mask = self.draw_mask(rng, x.shape, x.dtype)
        return x * self.mask

    def backward(self, dy: Array) -> Array:
        return dy if self.mask is None else dy * self.mask

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"


def bernoulli_mask(rng: Generator, shape: tuple, rate: float, dtype: Any, out: Array | None = None) -> Array:
    """The plain inverted-dropout keep mask k = [u >= alpha] / (1 - alpha), u ~ U[0, 1), alpha = ``rate``.

    rng: a NumPy or CuPy generator (the mask lives where it does). ``out``, if
    given, receives the mask.
    """
    u = rng.random(shape, dtype=dtype)
    keep = u >= rate
    scale = u.dtype.type(1.0 / (1.0 - rate))   # a scalar of the mask's dtype, so bool * scale has that dtype
    if out is None:
        return keep * scale
    out[...] = keep
    out *= scale
    return out


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    forward:  y = f_last(... f_2(f_1(x)))
    backward: dL/dx = J_1^T (J_2^T (... J_last^T dL/dy))   (the chain rule; J the layers' Jacobians)

    backward is valid only after forward(x, train=True) on the same batch: each
    layer's forward keeps what its backward reads (Dense its input, ReLU its
    output, Dropout its mask).
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers = list(layers)

    def forward(self, x: Array, *, train: bool, rng: Generator | None = None,
                freeze_mask: bool = False) -> Array:
        """``rng`` and ``freeze_mask`` reach the Dropout layers (and nested Sequentials)."""
        for layer in self.layers:
            if isinstance(layer, (Dropout, Sequential)):
                x = layer.forward(x, train=train, rng=rng, freeze_mask=freeze_mask)
            else:
                x = layer.forward(x, train=train)
        return x

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        """dL/dx, after every layer has filled its ``grads``.

        ``input_grad=False`` (asked for by the training step, whose x is the data):
        the first layer with parameters fills its gradients but skips its dL/dx
        -- for the teacher a (N, 1200) @ (1200, 784) product -- and the layers
        below it (input dropout) are not run backward at all; returns None.
        """
        layers = self.layers
        if not input_grad:
            first = next((i for i, layer in enumerate(layers) if _has_params(layer)), len(layers))
            for layer in reversed(layers[first + 1:]):
                dy = layer.backward(dy)
            if first < len(layers):
                layers[first].backward(dy, input_grad=False)
            return None
        for layer in reversed(layers):
            dy = layer.backward(dy)
        return dy

    def dense_layers(self) -> list[Dense]:
        """The Dense layers, in forward order."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def parameters(self) -> list[tuple[Layer, str]]:
        """(layer, name) for every parameter, in forward order."""
        return [(layer, name) for layer in self.layers for name in layer.params]

    def state_dict(self) -> dict[str, Array]:
        """{"<index>.<name>": array} for every parameter (for checkpoints)."""
        return {f"{i}.{name}": arr for i, layer in enumerate(self.layers)
                for name, arr in layer.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays from ``state`` into the parameters (shapes must match)."""
        for i, layer in enumerate(self.layers):
            for name, arr in layer.params.items():
                key = f"{i}.{name}"
                if key not in state:
                    raise ValueError(f"parameter {key} is missing from the saved state")
                new = state[key]
                if tuple(new.shape) != tuple(arr.shape):
                    raise ValueError(f"parameter {key} has shape {tuple(new.shape)}, "
                                     f"the model expects {tuple(arr.shape)}")
                xp = get_xp(arr)
                arr[...] = xp.asarray(new, dtype=arr.dtype)

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(layer) for layer in self.layers) + ")"


def _has_params(layer: Layer) -> bool:
    if isinstance(layer, Sequential):
        return any(_has_params(inner) for inner in layer.layers)
    return bool(layer.params)


def mlp(sizes: Sequence[int], *, rng: Generator, xp: ArrayModule | None = None, dtype: str = "float32",
        input_dropout: float = 0.0, hidden_dropout: float = 0.0, max_norm: float | None = None,
        init_std: float = 0.01, dropout_rng: Generator | None = None,
        mask_sampler: MaskSampler | None = None) -> Sequential:
    """The paper's networks: Dense-ReLU(-Dropout) blocks and a final Dense.

    sizes: (n_in, hidden units of each hidden layer..., C), e.g. (784, 1200, 1200, 10).
    ``max_norm`` is set on the hidden layers only (the incoming weights of
    hidden units, Hinton et al. 2012); the output layer is unconstrained.
    ``dropout_rng`` is the Dropout layers' own generator (default ``rng``),
    used when forward is given none; ``mask_sampler`` goes to every Dropout.
    """
    dropout_rng = dropout_rng if dropout_rng is not None else rng
    layers = []
    if input_dropout:
        layers.append(Dropout(input_dropout, rng=dropout_rng, sampler=mask_sampler))
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        hidden = i < len(sizes) - 2
        layers.append(Dense(n_in, n_out, rng=rng, xp=xp, dtype=dtype, init_std=init_std,
                            max_norm=max_norm if hidden else None))
        if hidden:
            layers.append(ReLU(inplace=True))   # on the Dense layer's own output: h is overwritten by max(h, 0)
            if hidden_dropout:
                layers.append(Dropout(hidden_dropout, rng=dropout_rng, sampler=mask_sampler))
    return Sequential(*layers)
