"""The yardstick: the same networks, recipe and update rule in PyTorch, timed
beside ours (``minikd bench --torch``).

Nothing of minikd's training runs here: ``TorchRun`` rebuilds each network in
``torch.nn`` with autograd's gradients and a hand-written 2012 momentum step,
so that its seconds per epoch say how close our hand-written engine comes to a
mature framework on the same machine. Our own timing is timing.py's and bench.py's.
"""
from __future__ import annotations

import gc
import statistics
import time

from ..engine.backend import is_cupy, to_host
from ..engine.optim import ExponentialDecay, LinearRamp
from ..train import Trainer
from .timing import ProductFloor, alternate, settle, summarize


class TorchRun:
    """The same network, recipe and update rule in PyTorch, gradients by autograd.

    2012 momentum (velocity <- mu velocity - (1 - mu) eps g; w <- w + velocity, engine/optim.py)
    with the same schedules, max-norm on the hidden layers' incoming weights (rows of
    torch's (out, in) weight: ``renorm_`` along dim 0), dropout, and jitter as
    a +-k pixel translation with zero fill (pad, then gather each image's window).
    """

    def __init__(self, torch, cfg, device, x, y, soft):
        nn = torch.nn
        self.torch, self.cfg, self.device = torch, cfg, device
        self.x, self.y, self.soft = x, y, soft
        layers, linears = [], []
        if cfg.input_dropout:
            layers.append(nn.Dropout(cfg.input_dropout))
        sizes = cfg.sizes
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            lin = nn.Linear(n_in, n_out)
            nn.init.normal_(lin.weight, std=cfg.init_std)
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            linears.append(lin)
            if i < len(sizes) - 2:
                layers.append(nn.ReLU(inplace=True))
                if cfg.hidden_dropout:
                    layers.append(nn.Dropout(cfg.hidden_dropout))
        self.model = nn.Sequential(*layers).to(device)
        self.params = list(self.model.parameters())
        self.velocity = [torch.zeros_like(w) for w in self.params]
        self.max_norm_weights = [lin.weight for lin in linears[:-1]] if cfg.max_norm else []
        self.lr_schedule = ExponentialDecay(cfg.lr, cfg.lr_decay, cfg.lr_warmup)
        self.momentum_schedule = LinearRamp(cfg.momentum_start, cfg.momentum_end, cfg.momentum_ramp)
        h, w = cfg.image_shape
        self._rows = torch.arange(h, device=device)
        self._cols = torch.arange(w, device=device)

    def sync(self):
        if str(self.device).startswith("cuda"):
            self.torch.cuda.synchronize()

    def jitter(self, xb):
        torch, k = self.torch, int(self.cfg.jitter)
        h, w = self.cfg.image_shape
        b = xb.shape[0]
        padded = torch.nn.functional.pad(xb.view(b, h, w), (k, k, k, k))
        dy = torch.randint(-k, k + 1, (b, 1, 1), device=self.device)
        dx = torch.randint(-k, k + 1, (b, 1, 1), device=self.device)
        img = torch.arange(b, device=self.device).view(b, 1, 1)
        rows = (k - dy) + self._rows.view(1, h, 1)
        cols = (k - dx) + self._cols.view(1, 1, w)
        return padded[img, rows, cols].reshape(b, h * w)

    def loss(self, logits, idx, yb):
        F, cfg = self.torch.nn.functional, self.cfg
        if self.soft is None:
            return F.cross_entropy(logits, yb)
        t = float(cfg.temperature)
        logp = F.log_softmax(logits / t, dim=1)
        q = F.softmax(self.soft[idx] / t, dim=1)
        loss = (cfg.soft_weight * t * t) * -(q * logp).sum(dim=1).mean()
        if cfg.hard_weight:
            loss = loss + cfg.hard_weight * F.cross_entropy(logits, yb)
        return loss

    def train_epoch(self, epoch):
        torch, cfg = self.torch, self.cfg
        lr, momentum = float(self.lr_schedule(epoch)), float(self.momentum_schedule(epoch))
        c = -(1.0 - momentum) * lr if cfg.rule == "hinton2012" else -lr
        self.model.train()
        n = self.x.shape[0]
        self.sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=self.device)
        total = torch.zeros((), device=self.device)
        n_batches = 0
        for start in range(0, n, cfg.batch_size):
            idx = perm[start:start + cfg.batch_size]
            xb = self.x[idx]
            if cfg.jitter:
                xb = self.jitter(xb)
            yb = self.y[idx]
            loss = self.loss(self.model(xb), idx, yb)
            for w in self.params:
                w.grad = None
            loss.backward()
            with torch.no_grad():
                grads = [w.grad for w in self.params]
                torch._foreach_mul_(self.velocity, momentum)
                torch._foreach_add_(self.velocity, grads, alpha=c)
                torch._foreach_add_(self.params, self.velocity)
                for W in self.max_norm_weights:
                    W.renorm_(2, 0, cfg.max_norm)
            total += loss.detach()
            n_batches += 1
        self.sync()
        return total / n_batches, time.perf_counter() - t0


def bench_torch(models, cfgs, arrays, xp, soft, args):
    """Each model's epoch in PyTorch against its floor (``torch.matmul``), and paired with ours.

    Returns {"available", "version", "device", "threads", "models": {model: {sec_per_epoch, ...,
    "paired": {"ours_step", "torch_over_ours", "pairs"}}}}, or {"available": False, "reason"}.
    """
    try:
        import torch
    except ImportError:
        return {"available": False,
                "reason": "PyTorch is not installed: `pip install torch` to compare, or drop --torch"}
    device = "cpu"
    if is_cupy(xp):
        if not torch.cuda.is_available():
            return {"available": False, "reason": "--backend cupy, but this PyTorch build sees no CUDA device"}
        device = "cuda"
    torch.manual_seed(args.seed)
    x = torch.from_numpy(to_host(arrays["x_train"])).to(device)
    y = torch.from_numpy(to_host(arrays["y_train"]).astype("int64")).to(device)
    soft_t = torch.from_numpy(to_host(soft)).to(device) if soft is not None else None
    n = arrays["n_train"]
    out = {"available": True, "version": torch.__version__, "device": device,
           "threads": torch.get_num_threads(), "models": {}}
    for model in models:
        cfg = cfgs[model]
        run = TorchRun(torch, cfg, device, x, y, soft_t if model == "distilled" else None)
        floor = ProductFloor(cfg.sizes, n, cfg.batch_size, blas="torch", device=device, seed=args.seed)
        floor.warm_up()
        for e in range(args.warmup):
            run.train_epoch(e)
        epoch_secs, floor_secs, loss = [], [], None
        for r in range(args.reps):
            floor_secs.append(floor.time_epoch())
            loss, sec = run.train_epoch(args.warmup + r)
            epoch_secs.append(sec)
        out["models"][model] = {**summarize(epoch_secs, floor_secs, n, floor.flops), "last_loss": float(loss)}
        del floor
        # Paired: our default step's epochs alternate with PyTorch's (a pause between,
        # so one library's spinning threads are quiet before the other starts).
        ours = Trainer(cfg, xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       soft_logits=soft if model == "distilled" else None, fast=True)
        for e in range(args.warmup):
            ours.train_epoch(e)
        # alternate() calls both within this iteration; the defaults bind this model's runs.
        secs = alternate(lambda r, ours=ours: ours.train_epoch(args.warmup + r)[1],
                         lambda r, run=run: run.train_epoch(args.warmup + args.reps + r)[1],  # after its own reps
                         args.reps, pause=lambda: settle(args.settle))
        pairs = [{"ours_sec": o, "torch_sec": t, "torch_over_ours": t / o} for o, t in secs]
        out["models"][model]["paired"] = {
            "ours_step": "fused" if ours.step_impl is not None else "reference",
            "torch_over_ours": statistics.median(p["torch_over_ours"] for p in pairs), "pairs": pairs}
        run = ours = None   # free both before the next model's are built
        gc.collect()
    return out
