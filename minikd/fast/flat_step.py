"""A training step for GPUs that keeps a model's parameters, gradients and momentum
velocities in three flat buffers: the update of every parameter at once. Optional
reading, and off by default (``Trainer(..., flat=True)``, ``bench.py --steps flat``)
until a GPU has run it.

On a GPU a step of these small networks costs mostly kernel launches, not
arithmetic. ``MomentumSGD.step`` updates each parameter tensor on its own, four
elementwise kernels per tensor (engine/optim.py):

    Delta_w <- mu Delta_w;   tmp <- coef dw;   Delta_w <- Delta_w + tmp;   w <- w + Delta_w

(coef = -(1 - mu) eps; Delta_w the velocity, mu the momentum mu_t and eps the
learning rate eps_t of optim.py, dw the gradient: docs/notation.md's letters)

six tensors for a three-layer MLP, 24 launches per step. The update is the same
for every number of every tensor, so if all the weights and biases lie side by
side in one array P, their gradients in G and their velocities Delta_w in V (each layer's
``params["W"]`` a view of its stretch of P, and so on), the same four kernels
update all of them:

    V <- mu V;   TMP <- coef G;   V <- V + TMP;   P <- P + V

Each number goes through the same operations in the same order as in
``MomentumSGD.step``, so the results are identical to the bit. Max-norm stays
per layer (``optim.max_norm_`` on the view of W). For the gradients to land in
G, this step runs the Dense layers' backward itself, writing x.T @ dy and the
column sums of dy into G's views with ``out=``; every other layer's backward is
the engine's. The forward pass is the model's own.

The step has the interface of ``minikd.train.ReferenceStep`` (``begin_epoch``,
``step(xb, rng, loss_fn) -> parts``, ``end_epoch``) and, like it, skips the first
layer's dL/dx. Building it moves the model's parameters and the optimizer's
velocities into the buffers: the arrays the layers and the optimizer hold become
views (same values), so checkpoints and ``load_state_dict`` work as before.
"""
from __future__ import annotations

from ..engine.backend import get_xp
from ..engine.layers import Dense
from ..engine.optim import max_norm_


class FlatStep:
    """``ReferenceStep`` with one flat buffer each for parameters, gradients and velocities."""

    @staticmethod
    def supports(model):
        """A model whose layers are flat (no nested Sequential) and whose parameters share one dtype."""
        dtypes = {w.dtype for layer in model.layers for w in layer.params.values()}
        return len(dtypes) == 1 and all(not hasattr(layer, "layers") for layer in model.layers)

    def __init__(self, model, optimizer):
        if not self.supports(model):
            raise ValueError("FlatStep needs a flat model (no nested Sequential) with one parameter dtype")
        self.model, self.opt = model, optimizer
        pairs = [(layer, velocity) for layer, velocity in zip(optimizer.layers, optimizer.velocity, strict=True)]
        first = next(iter(pairs[0][0].params.values()))
        xp, dtype = get_xp(first), first.dtype
        total = sum(w.size for layer, _ in pairs for w in layer.params.values())
        self.P, self.G, self.V = (xp.empty(total, dtype=dtype) for _ in range(3))
        offset = 0
        for layer, velocity in pairs:
            for name, w in layer.params.items():
                size, shape = w.size, w.shape
                for buf, arrays in ((self.P, layer.params), (self.V, velocity)):
                    view = buf[offset:offset + size].reshape(shape)
                    view[...] = arrays[name]          # the current values move in
                    arrays[name] = view
                layer.grads[name] = self.G[offset:offset + size].reshape(shape)
                offset += size
        self.first = next(i for i, layer in enumerate(model.layers) if layer.params)

    def begin_epoch(self):
        pass

    def end_epoch(self):
        pass

    def backward(self, dy):
        """Sequential.backward(dy, input_grad=False), with the Dense gradients written into G."""
        xp = get_xp(dy)
        layers = self.model.layers
        for i in range(len(layers) - 1, self.first - 1, -1):
            layer = layers[i]
            if isinstance(layer, Dense):
                xp.matmul(layer.x.T, dy, out=layer.grads["W"])      # dL/dW = x.T @ dy
                dy.sum(axis=0, out=layer.grads["b"])               # dL/db = sum_n dy[n]
                if i > self.first:
                    dy = dy @ layer.params["W"].T                  # dL/dx = dy @ W.T
            else:
                dy = layer.backward(dy)

    def __call__(self, xb, rng, loss_fn):
        logits = self.model.forward(xb, train=True, rng=rng)
        parts, dlogits = loss_fn(logits)
        self.backward(dlogits)
        opt = self.opt
        coef = -(1.0 - opt.momentum) * opt.lr if opt.rule == "hinton2012" else -opt.lr
        self.V *= opt.momentum
        self.V += coef * self.G
        self.P += self.V
        for layer in opt.layers:
            limit = getattr(layer, "max_norm", None)
            if limit is not None:
                max_norm_(layer.params["W"], limit)
        return parts
