"""Time one training epoch of the teacher, the student and the distilled student
against the floor: the same epoch's matrix products alone, on the same BLAS.

    python scripts/bench.py                          # full MNIST, batch 100, median of 3
    python scripts/bench.py --breakdown --torch      # + where the time goes, + PyTorch
    python scripts/bench.py --dataset digits --reps 1  # offline smoke run (seconds)

What is timed, per model (784-1200-1200-10 teacher with dropout 0.2/0.5,
+-2 px jitter and max-norm; 784-800-800-10 student; the student distilled
from cached teacher logits at T = 20 -- the "quick" profile's recipe):

  epoch    ``Trainer.train_epoch`` of the real training code, for each step:
           fused      minikd.fast.FusedStep, every product through minikd.fast.gemm
                      (NumPy's own OpenBLAS via cblas_sgemm, with beta)
           reference  the readable layer/optimizer path, products through NumPy's @
           flat       (--steps flat; not by default) minikd.fast.FlatStep: the reference
                      step with one buffer for all parameters, where the fused step does
                      not apply (CuPy); off in training until a GPU has run it
  floor    the same epoch's 3L - 1 = 8 products (3 forward, 3 weight-gradient,
           2 input-gradient), alone, on the BLAS that step uses
           (minikd.profile.ProductFloor)
  x floor  epoch / floor, the median of the per-repetition ratios

Each (step, model) runs ``--warmup`` untimed epochs, then ``--reps`` epochs,
each paired with one timing of its floor; medians are reported. NumPy's and
SciPy's wheels carry separate OpenBLAS builds whose thread pools fight when
alternated, so all the work on one BLAS runs together, after a short pause.
Memory: the process's peak resident set (ru_maxrss), and per model the bytes
allocated while building it and running its first epoch (tracemalloc, during
the warm-up; on CuPy the memory pool's total instead).

Every figure goes to --json (default <out>/bench.json):

  config, environment              flags, versions, BLAS thread pools, load average
  models.<teacher|student|distilled>
      sizes, products_per_step, flops_per_epoch
      steps.<fused|reference>      available, blas, sec_per_epoch(_runs), images_per_sec,
                                   floor_sec(_runs), floor_gflops, ratio_to_floor(_runs),
                                   last_loss, memory, device_ops_per_step
      device_ops_per_step          kernel launches of one training epoch (its setup included) per
                                   batch, by issue 24's rule, as the CuPy stand-in counts them
                                   (tests/cupy_standin.py); null where nothing counts them (NumPy,
                                   real CuPy)
  distilled_over_student.<step>    distilled epoch / student epoch, paired: the two models'
                                   epochs alternate, median of the per-pair ratios
  distilled_over_student_unpaired  the same from the two models' medians (minutes apart)
  soft_targets_sec                 the teacher logits, computed once
  breakdown.<step>                 --breakdown: epoch_sec, rows [{component, sec, percent, how}]
  torch, ours_over_torch           --torch: PyTorch's figures; our epoch / torch's epoch
  torch.models.<m>.paired          our default step's epochs alternating with PyTorch's:
                                   torch / ours per pair and their median (the targets use it)
  targets                          issue 7's CPU targets, each {value, limit, met}
  memory, reproduce_memory         peak RSS of this process / of reproduce.py (--memory-of-reproduce)
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


from ..engine.backend import backend_name, is_cupy, synchronize, to_host
from ..fast import FlatStep, FusedStep
from ..engine.optim import ExponentialDecay, LinearRamp
from ..train import Trainer, build_model, teacher_soft_targets
from .args import (NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_INT, add_common_args, fail, load_data_or_exit,
                   pick_backend_or_exit)
from .profiles import profile_configs
from .results import environment_info, write_json
from .stage import prepare_arrays
from .timing import BLAS_NAMES, ProductFloor, epoch_batches, epoch_flops, profile_epoch, step_products

MODELS = ("teacher", "student", "distilled")
CONFIG_KEY = {"teacher": "teacher", "student": "student", "distilled": "distilled"}
STEPS = ("fused", "reference", "flat")
DEFAULT_STEPS = ("fused", "reference")
MIB = 1 << 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, default_out="runs/bench")
    p.add_argument("--train-size", type=POSITIVE_INT, default=None,
                   help="time epochs over the first N training images (default: the whole training set)")
    p.add_argument("--reps", type=POSITIVE_INT, default=3, help="timed epochs per model and step; the median is reported "
                                                      "(default 3)")
    p.add_argument("--warmup", type=NON_NEGATIVE_INT, default=1, help="untimed epochs before the timed ones (default 1)")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    p.add_argument("--steps", default=",".join(DEFAULT_STEPS),
                   help="comma-separated subset of fused,reference,flat (default: fused,reference). fused: the "
                        "fused CPU step (the default training path); reference: the readable layer/optimizer "
                        "step; flat: one buffer for all parameters (CuPy; off in training by default)")
    p.add_argument("--breakdown", action="store_true",
                   help="also profile one teacher epoch by component (NumPy backend)")
    p.add_argument("--torch", action="store_true",
                   help="also time the same nets and update rule in PyTorch (CPU; CUDA with --backend cupy)")
    p.add_argument("--json", default=None, help="write every figure to this file (default: <out>/bench.json)")
    p.add_argument("--memory-of-reproduce", action="store_true",
                   help="also measure the peak resident memory of `reproduce.py --profile quick --epochs 1` "
                        "(a child process; about one epoch of each model)")
    p.add_argument("--settle", type=NON_NEGATIVE_FLOAT, default=0.5,
                   help="seconds to pause between groups of work on different BLAS libraries (default 0.5)")
    args = p.parse_args(argv)
    args.models = _subset(p, "--models", args.models, MODELS)
    args.steps = _subset(p, "--steps", args.steps, STEPS)
    return args


def _subset(p, flag, text, allowed):
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in allowed]
    if bad or not chosen:
        p.error(f"{flag}: unknown value(s) {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return [s for s in allowed if s in chosen]


# --------------------------------------------------------------------------- helpers
def peak_rss_mib():
    """The process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)


def _loadavg():
    """1-minute load average (None where the OS has none): a busy machine
    makes every figure here slower, the floor included."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def blas_for(step, xp):
    if is_cupy(xp):
        return "cublas"
    if step == "fused":
        return "fast"
    return "numpy"


def settle(seconds):
    """Let the last BLAS's worker threads stop spinning before another BLAS starts."""
    gc.collect()
    time.sleep(seconds)


def summarize(epoch_secs, floor_secs, n_images, flops):
    ratios = [e / f for e, f in zip(epoch_secs, floor_secs)]
    sec = statistics.median(epoch_secs)
    floor = statistics.median(floor_secs)
    return {
        "sec_per_epoch": sec, "sec_per_epoch_runs": epoch_secs,
        "images_per_sec": n_images / sec,
        "floor_sec": floor, "floor_sec_runs": floor_secs,
        "floor_gflops": flops / floor / 1e9,
        "ratio_to_floor": statistics.median(ratios), "ratio_to_floor_runs": ratios,
    }


# --------------------------------------------------------------------------- our engine
def alternate(first, second, reps, pause=None):
    """``reps`` pairs of epochs of two runs, in alternating order (first, second;
    then second, first; ...), so a drift of the machine's speed hits both alike.
    ``first(r)`` / ``second(r)`` train repetition r's epoch and return its seconds;
    ``pause()``, if given, runs before every epoch. Returns [(first_sec, second_sec)]."""
    out = []
    for r in range(reps):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        secs = [None, None]
        for who in order:
            if pause is not None:
                pause()
            secs[who] = (first, second)[who](r)
        out.append(tuple(secs))
    return out


def make_trainer(step, cfg, arrays, xp, soft=None):
    """A Trainer that trains with ``step`` ("fused", "reference" or "flat"), if that step applies."""
    return Trainer(cfg, xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   soft_logits=soft, fast=step != "reference", flat=step == "flat")


def bench_distill_pair(step, cfgs, arrays, xp, soft, args):
    """Distilled epoch / student epoch, paired: the two trainers' epochs alternate
    (student first, then distilled first, ...), so a drift of the machine's
    speed hits both alike; the median of the per-pair ratios is reported."""
    student = make_trainer(step, cfgs["student"], arrays, xp)
    distilled = make_trainer(step, cfgs["distilled"], arrays, xp, soft)
    for e in range(args.warmup):
        student.train_epoch(e)
        distilled.train_epoch(e)
    secs = alternate(lambda r: student.train_epoch(args.warmup + r)[1],
                     lambda r: distilled.train_epoch(args.warmup + r)[1], args.reps)
    pairs = [{"student_sec": s_sec, "distilled_sec": d_sec, "ratio": d_sec / s_sec} for s_sec, d_sec in secs]
    student = distilled = None   # free them (the lambdas above hold the names, not the trainers)
    gc.collect()
    return {"ratio": statistics.median(p["ratio"] for p in pairs), "pairs": pairs}


def bench_engine(step, model, cfg, arrays, xp, soft, args):
    """Warm up, then ``args.reps`` x (floor epoch, training epoch) for one model and step."""
    blas = blas_for(step, xp)
    n = arrays["n_train"]
    pool = xp.get_default_memory_pool() if is_cupy(xp) else None
    if pool is not None:
        pool.free_all_blocks()
    trace = args.warmup > 0 and pool is None
    if trace:
        tracemalloc.start()
    trainer = make_trainer(step, cfg, arrays, xp, soft if model == "distilled" else None)
    if step != "reference" and not isinstance(trainer.step_impl, {"fused": FusedStep, "flat": FlatStep}[step]):
        if trace:
            tracemalloc.stop()
        return {"available": False,
                "note": f"the {step} step does not apply on the {backend_name(xp)} backend"
                        + ("; training falls back to the reference step" if step == "fused" else "")}
    floor = ProductFloor(cfg.sizes, n, cfg.batch_size, blas=blas, xp=xp, seed=args.seed)
    floor.warm_up()
    memory = {}
    for e in range(args.warmup):
        trainer.train_epoch(e)
        if e == 0 and trace:
            memory["allocated_peak_mib"] = tracemalloc.get_traced_memory()[1] / MIB
            tracemalloc.stop()
    epoch_secs, floor_secs, loss = [], [], None
    launches = getattr(xp, "_standin_launches", None)   # the CuPy stand-in's counter; real CuPy has none
    ops_per_step = None
    for r in range(args.reps):
        floor_secs.append(floor.time_epoch())
        before = launches() if launches is not None else None
        loss, sec = trainer.train_epoch(args.warmup + r)
        if before is not None and r == 0:
            ops_per_step = (launches() - before) / len(epoch_batches(n, cfg.batch_size))
        epoch_secs.append(sec)
    synchronize(xp)
    if pool is not None:
        memory["device_pool_mib"] = pool.total_bytes() / MIB
    memory["process_peak_rss_mib_so_far"] = peak_rss_mib()
    out = {"available": True, "blas": blas, "blas_name": BLAS_NAMES[blas],
           **summarize(epoch_secs, floor_secs, n, floor.flops),
           "last_loss": float(to_host(loss)), "memory": memory, "device_ops_per_step": ops_per_step}
    del trainer, floor
    gc.collect()
    return out


def run_breakdown(step, cfg, arrays, xp, args):
    """One teacher epoch by component (minikd.profile.profile_epoch), after the warm-up."""
    if is_cupy(xp) or step == "flat":
        return {"error": "the profile by component runs on --backend numpy only (the flat step: CuPy only)"}
    trainer = Trainer(cfg, xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      fast=step == "fused")
    if step == "fused" and trainer.step_impl is None:
        return {"error": "the fused step does not apply here"}
    for e in range(args.warmup):
        trainer.train_epoch(e)
    prof = profile_epoch(trainer, args.warmup)
    prof["rows"] = [{"component": c, "sec": s, "percent": 100.0 * s / prof["epoch_sec"], "how": how}
                    for c, s, how in prof["rows"]]
    return prof


# --------------------------------------------------------------------------- PyTorch
class TorchRun:
    """The same network, recipe and update rule in PyTorch, gradients by autograd.

    2012 momentum (v <- p v - (1 - p) eps g; w <- w + v) with the same
    schedules, max-norm on the hidden layers' incoming weights (rows of
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
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
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
        self.lr = ExponentialDecay(cfg.lr, cfg.lr_decay)
        self.momentum = LinearRamp(cfg.momentum_start, cfg.momentum_end, cfg.momentum_ramp)
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
        eps, p = float(self.lr(epoch)), float(self.momentum(epoch))
        c = -(1.0 - p) * eps if cfg.rule == "hinton2012" else -eps
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
                torch._foreach_mul_(self.velocity, p)
                torch._foreach_add_(self.velocity, grads, alpha=c)
                torch._foreach_add_(self.params, self.velocity)
                for W in self.max_norm_weights:
                    W.renorm_(2, 0, cfg.max_norm)
            total += loss.detach()
            n_batches += 1
        self.sync()
        return total / n_batches, time.perf_counter() - t0


def bench_torch(models, cfgs, arrays, xp, soft, args):
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
        cfg = cfgs[CONFIG_KEY[model]]
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
        secs = alternate(lambda r: ours.train_epoch(args.warmup + r)[1],
                         lambda r: run.train_epoch(args.warmup + args.reps + r)[1],  # after its own reps
                         args.reps, pause=lambda: settle(args.settle))
        pairs = [{"ours_sec": o, "torch_sec": t, "torch_over_ours": t / o} for o, t in secs]
        out["models"][model]["paired"] = {
            "ours_step": "fused" if ours.step_impl is not None else "reference",
            "torch_over_ours": statistics.median(p["torch_over_ours"] for p in pairs), "pairs": pairs}
        run = ours = None   # free them (the lambdas above hold the names, not the trainers)
        gc.collect()
    return out


# --------------------------------------------------------------------------- reproduce.py's memory
# The child reports its own high-water mark (VmHWM) on exit. Its ru_maxrss
# would not do: Linux carries the parent's peak into a child across exec.
_CHILD = """\
import atexit, sys
def _report():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    print("MINIKD_VMHWM_KIB", line.split()[1], file=sys.__stderr__, flush=True)
    except OSError:
        pass
atexit.register(_report)
# One epoch learns nothing, and the health check would stop the teacher there as "at chance"
# before the other stages ran: this run measures memory, so its verdicts are off.
from minikd import health
health.HealthCheck.check = lambda self, *args, **kwargs: None
from minikd.experiments.reproduce import main
sys.exit(main(sys.argv[1:]))
"""


def reproduce_memory(args):
    """Peak RSS of a child ``reproduce.py --profile quick --epochs 1`` (every stage, one epoch;
    the peak comes from the data and the models, not from the number of epochs; the health
    check's verdicts are off in the child, since one epoch learns nothing).
    With --train-size the child gets it too, and the 1 GiB target is not judged."""
    with tempfile.TemporaryDirectory(prefix="minikd-bench-") as tmp:
        cmd = ["--profile", "quick", "--epochs", "1", "--backend", args.backend,
               "--dataset", args.dataset, "--seed", str(args.seed), "--out", tmp]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        if args.train_size:
            cmd += ["--train-size", str(args.train_size)]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    shown = " ".join(c if c != tmp else "<tmp>" for c in cmd)
    res = {"command": f"python scripts/reproduce.py {shown}", "returncode": proc.returncode, "wall_sec": wall, "peak_rss_mib": None,
           "train_size": args.train_size}
    for line in proc.stderr.splitlines():
        if line.startswith("MINIKD_VMHWM_KIB "):
            res["peak_rss_mib"] = int(line.split()[1]) / 1024
    if res["peak_rss_mib"] is None:
        res["note"] = "no /proc/self/status here: the child's peak is unknown"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("MINIKD_VMHWM_KIB")]
        res["error"] = (lines or ["(no message)"])[-1]
    return res


# --------------------------------------------------------------------------- targets
def check_targets(res):
    """The CPU targets of issue 7 for the default training path (the fused step
    where it applies), each as {"value", "limit", "met"}; absent when not
    measured, and none at all on CuPy (they are CPU targets)."""
    if res["config"]["backend"] != "numpy":
        return {}
    def step_of(model):
        steps = res["models"].get(model, {}).get("steps", {})
        for name in STEPS:
            if steps.get(name, {}).get("available"):
                return name, steps[name]
        return None, None

    out = {}
    for model in ("teacher", "student"):
        name, s = step_of(model)
        if s is not None:
            out[f"{model}_epoch_over_floor"] = {"step": name, "value": s["ratio_to_floor"], "limit": 1.3,
                                                "met": s["ratio_to_floor"] <= 1.3}
    name, _ = step_of("student")
    if name is not None and name in res["distilled_over_student"]:
        v = res["distilled_over_student"][name]
        out["distilled_over_student"] = {"step": name, "value": v, "limit": 1.15, "met": v <= 1.15,
                                         "from": "paired"}
    t = res.get("torch") or {}
    for model, need in (("teacher", 1.5), ("student", 1.0)):
        name, s = step_of(model)
        if t.get("available") and s is not None and model in t["models"]:
            paired = t["models"][model].get("paired")
            if paired is not None and paired["ours_step"] == name:  # alternating epochs: drift cancels
                v, how = paired["torch_over_ours"], "paired"
            else:
                v, how = t["models"][model]["sec_per_epoch"] / s["sec_per_epoch"], "medians"
            out[f"torch_over_ours_{model}"] = {"step": name, "value": v, "limit": need, "met": v >= need,
                                               "from": how}
    rep = res.get("reproduce_memory") or {}
    if rep.get("peak_rss_mib") is not None and rep.get("returncode") == 0 and rep.get("train_size") is None:
        v = rep["peak_rss_mib"]
        out["reproduce_peak_rss_mib"] = {"value": v, "limit": 1024, "met": v <= 1024}
    return out


# --------------------------------------------------------------------------- report
def _table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    line = "  ".join("-" * w for w in widths)
    out = [line]
    for i, r in enumerate(rows):
        out.append("  ".join(str(c).rjust(w) if i and j > 1 else str(c).ljust(w)
                             for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


def print_report(res):
    cfg = res["config"]
    env = res["environment"]
    load = env.get("loadavg_at_start")
    print(f"\nminikd bench: {cfg['dataset']}, {cfg['n_train']} training images, batch {cfg['batch_size']}, "
          f"{cfg['backend']} backend, median of {cfg['reps']} (after {cfg['warmup']} warm-up epoch(s))")
    if load is not None:
        print(f"{env['cpu_count']} CPUs, load average {load:.2f} at the start, {env['loadavg_at_end']:.2f} at the end "
              f"(other work on the machine slows every figure)")
    rows = [("model", "step", "s/epoch", "images/s", "floor s", "floor GFLOP/s", "x floor", "floor BLAS")]
    for model, m in res["models"].items():
        for step, s in m["steps"].items():
            if not s["available"]:
                rows.append((model, step, "-", "-", "-", "-", "-", s["note"]))
                continue
            rows.append((model, step, f"{s['sec_per_epoch']:.3f}", f"{s['images_per_sec']:.0f}",
                         f"{s['floor_sec']:.3f}", f"{s['floor_gflops']:.0f}", f"{s['ratio_to_floor']:.2f}",
                         s["blas_name"]))
    print(_table(rows))
    ops = [f"{model} {s['device_ops_per_step']:.1f}" for model, m in res["models"].items()
           for step, s in m["steps"].items() if s.get("device_ops_per_step") is not None]
    if ops:
        print("kernel launches per step, as the CuPy stand-in counts them (issue 24's rule): " + ", ".join(ops))
    if res["distilled_over_student"]:
        print("distilled / student epoch, paired (alternating epochs, median of per-pair ratios): "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["distilled_over_student"].items())
              + "; from the medians above: "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["distilled_over_student_unpaired"].items()))
    if res.get("soft_targets_sec") is not None:
        print(f"teacher soft targets (computed once, not part of an epoch): {res['soft_targets_sec']:.3f} s")

    t = res.get("torch")
    if t is not None:
        if not t["available"]:
            print(f"\nPyTorch: skipped -- {t['reason']}")
        else:
            print(f"\nPyTorch {t['version']} ({t['device']}, {t['threads']} threads), same nets and recipe")
            steps = [s for s in STEPS if any(s in r for r in res["ours_over_torch"].values())]
            rows = [("model", "torch s/epoch", "torch floor s", "torch x floor")
                    + tuple(f"{s}/torch" for s in steps) + ("torch/ours, paired",)]
            for model, tm in t["models"].items():
                ratios = res["ours_over_torch"].get(model, {})
                paired = tm.get("paired")
                rows.append((model, f"{tm['sec_per_epoch']:.3f}", f"{tm['floor_sec']:.3f}",
                             f"{tm['ratio_to_floor']:.2f}") + tuple(
                    f"{ratios[s]:.2f}" if s in ratios else "-" for s in steps)
                    + (f"{paired['torch_over_ours']:.2f} ({paired['ours_step']})" if paired else "-",))
            print(_table(rows))
            print("(ours/torch < 1: minikd is faster; paired: our epochs alternating with PyTorch's, "
                  "median of torch/ours per pair, > 1: minikd is faster)")

    for step, prof in (res.get("breakdown") or {}).items():
        if "error" in prof:
            print(f"\nbreakdown ({step} step): {prof['error']}")
            continue
        print(f"\nwhere one teacher epoch goes ({step} step, {prof['epoch_sec']:.3f} s with timers on)")
        rows = [("component", "seconds", "% epoch", "measured")]
        for r in prof["rows"]:
            rows.append((r["component"], f"{r['sec']:.3f}", f"{r['percent']:.1f}", r["how"]))
        if prof.get("floor_sec") is not None:
            rows.append(("(floor: products alone)", f"{prof['floor_sec']:.3f}",
                         f"{100 * prof['floor_sec'] / prof['epoch_sec']:.1f}", "same BLAS, timed above"))
        print(_table(rows))
        if prof.get("max_norm_measured"):
            m = prof["max_norm_measured"]
            print(f"max-norm measured the column lengths in {m['exact']} of {m['steps']} layer-steps; "
                  f"in the others a bound proved no column too long (minikd.fast.NormBound)")

    targets = res.get("targets") or {}
    if targets:
        print("\ntargets (issue 7; CPU, default training path):")
        for key, t in targets.items():
            op = ">=" if key.startswith("torch_over_ours") else "<="
            step = f" [{t['step']} step{', ' + t['from'] if 'from' in t else ''}]" if "step" in t else ""
            print(f"  {key:28s} {t['value']:8.2f} {op} {t['limit']:<6g} {'met' if t['met'] else 'NOT met'}{step}")

    mem = res["memory"]
    per = []
    for model, m in res["models"].items():
        for step, s in m["steps"].items():
            if s.get("available") and "allocated_peak_mib" in s["memory"]:
                per.append(f"{model}/{step} {s['memory']['allocated_peak_mib']:.0f}")
            elif s.get("available") and "device_pool_mib" in s["memory"]:
                per.append(f"{model}/{step} {s['memory']['device_pool_mib']:.0f} (CuPy pool)")
    print(f"\nmemory: this process's peak RSS {mem['peak_rss_mib']:.0f} MiB"
          + (f"; allocated per model in its first epoch, MiB: {', '.join(per)}" if per else ""))
    rep = res.get("reproduce_memory")
    if rep is not None:
        status = "" if rep["returncode"] == 0 else f" (exit {rep['returncode']}: {rep.get('error', '')})"
        peak = "unknown" if rep["peak_rss_mib"] is None else f"{rep['peak_rss_mib']:.0f} MiB"
        print(f"peak RSS of `{rep['command']}`: {peak}{status}")
    if res.get("json_path"):
        print(f"every figure: {res['json_path']}")


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    xp = pick_backend_or_exit(args.backend)
    dataset = load_data_or_exit(args)
    try:
        arrays = prepare_arrays(dataset, xp, train_size=args.train_size)
    except ValueError as exc:
        fail(str(exc))
    cfgs = profile_configs("quick", n_features=dataset.n_features, n_classes=dataset.n_classes,
                           image_shape=dataset.image_shape, seed=args.seed,
                           jitter=2 if dataset.image_shape[0] >= 16 else 1)
    n = arrays["n_train"]
    batch = cfgs["teacher"].batch_size
    json_path = Path(args.json) if args.json else Path(args.out) / "bench.json"
    res = {
        "config": {"argv": sys.argv[1:] if argv is None else list(argv), "dataset": dataset.name,
                   "n_train": n, "batch_size": batch, "backend": backend_name(xp), "reps": args.reps,
                   "warmup": args.warmup, "seed": args.seed, "steps": args.steps, "models": args.models,
                   "stages": {m: cfgs[CONFIG_KEY[m]].to_dict() for m in args.models}},
        "environment": {**environment_info(xp), "loadavg_at_start": _loadavg()},
        "models": {m: {"sizes": list(cfgs[CONFIG_KEY[m]].sizes),
                       "products_per_step": len(step_products(cfgs[CONFIG_KEY[m]].sizes, batch)),
                       "flops_per_epoch": epoch_flops(cfgs[CONFIG_KEY[m]].sizes, n, batch),
                       "steps": {}} for m in args.models},
    }

    soft = None
    if "distilled" in args.models:
        # The distilled student reads cached teacher logits; an untrained
        # teacher's are as good as a trained one's for timing.
        teacher = build_model(cfgs["teacher"], xp)
        synchronize(xp)
        t0 = time.perf_counter()
        soft = teacher_soft_targets(teacher, arrays["x_train"])
        synchronize(xp)
        res["soft_targets_sec"] = time.perf_counter() - t0
        del teacher

    res["breakdown"] = {} if args.breakdown else None
    for step in args.steps:
        settle(args.settle)
        print(f"timing the {step} step ({BLAS_NAMES[blas_for(step, xp)]}) ...", file=sys.stderr)
        for model in args.models:
            res["models"][model]["steps"][step] = bench_engine(step, model, cfgs[CONFIG_KEY[model]],
                                                               arrays, xp, soft, args)
        if args.breakdown:
            print(f"profiling one teacher epoch ({step} step) ...", file=sys.stderr)
            res["breakdown"][step] = run_breakdown(step, cfgs["teacher"], arrays, xp, args)
            floor = res["models"].get("teacher", {}).get("steps", {}).get(step, {}).get("floor_sec")
            res["breakdown"][step]["floor_sec"] = floor

    res["distilled_over_student"] = {}
    res["distilled_over_student_unpaired"] = {}
    for step in args.steps:
        s = res["models"].get("student", {}).get("steps", {}).get(step, {})
        d = res["models"].get("distilled", {}).get("steps", {}).get(step, {})
        if s.get("available") and d.get("available"):
            # the medians above come minutes apart; the paired run alternates the two
            res["distilled_over_student_unpaired"][step] = d["sec_per_epoch"] / s["sec_per_epoch"]
            print(f"timing student and distilled epochs in alternation ({step} step) ...", file=sys.stderr)
            pair = bench_distill_pair(step, cfgs, arrays, xp, soft, args)
            res["distilled_over_student"][step] = pair["ratio"]
            res["models"]["distilled"]["steps"][step]["paired_with_student"] = pair["pairs"]

    if args.torch:
        settle(args.settle)
        print("timing PyTorch ...", file=sys.stderr)
        res["torch"] = bench_torch(args.models, cfgs, arrays, xp, soft, args)
        res["ours_over_torch"] = {}
        if res["torch"]["available"]:
            for model, tm in res["torch"]["models"].items():
                res["ours_over_torch"][model] = {
                    step: s["sec_per_epoch"] / tm["sec_per_epoch"]
                    for step, s in res["models"][model]["steps"].items() if s["available"]}

    if args.memory_of_reproduce:
        print("measuring reproduce.py's peak memory ...", file=sys.stderr)
        res["reproduce_memory"] = reproduce_memory(args)

    res["targets"] = check_targets(res)
    res["memory"] = {"peak_rss_mib": peak_rss_mib()}
    if is_cupy(xp):
        res["memory"]["device_pool_mib"] = xp.get_default_memory_pool().total_bytes() / MIB
    try:
        from threadpoolctl import threadpool_info
        res["environment"]["thread_pools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "filepath")}
            for d in threadpool_info()]
    except ImportError:
        pass
    res["environment"]["loadavg_at_end"] = _loadavg()
    res["json_path"] = str(json_path)
    write_json(json_path, res)
    print_report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
