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
           (timing.ProductFloor)
  x floor  epoch / floor, the median of the per-repetition ratios

This module times our engine; the PyTorch yardstick (--torch) is bench_torch.py,
the peak memory of a reproduce run (--memory-of-reproduce) bench_memory.py, and
the printed report and the targets bench_report.py.

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
                                   batch, as the CuPy stand-in counts them (the rule in
                                   tests/cupy_standin.py's docstring); null where nothing counts
                                   them (NumPy, real CuPy)
  distilled_over_student.<step>    distilled epoch / student epoch, paired: the two models'
                                   epochs alternate, median of the per-pair ratios
  distilled_over_student_unpaired  the same from the two models' medians (minutes apart)
  soft_targets_sec                 the teacher logits, computed once
  breakdown.<step>                 --breakdown: epoch_sec, rows [{component, sec, percent, how}]
  torch, ours_over_torch           --torch: PyTorch's figures; our epoch / torch's epoch
  torch.models.<m>.paired          our default step's epochs alternating with PyTorch's:
                                   torch / ours per pair and their median (the targets use it)
  targets                          the CPU speed targets (bench_report.check_targets),
                                   each {value, limit, met}
  memory, reproduce_memory         peak RSS of this process / of reproduce.py (--memory-of-reproduce)
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from ..engine.backend import backend_name, is_cupy, synchronize, to_host
from ..fast import FlatStep, FusedStep
from ..train import Trainer, build_model, teacher_logits
from .args import (data_flags, fail, load_data_or_exit, non_negative_float, non_negative_int,
                   pick_backend_or_exit, positive_int)
from .bench_memory import MIB, peak_rss_mib, reproduce_memory
from .bench_torch import bench_torch
from .bench_report import STEPS, check_targets, print_report
from .report import write_json
from .results import environment_info
from .stage import prepare_arrays, stage_configs
from .timing import (BLAS_NAMES, ProductFloor, alternate, epoch_batches, epoch_flops, profile_epoch, settle,
                     step_products, summarize)

MODELS = ("teacher", "student", "distilled")
DEFAULT_STEPS = ("fused", "reference")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[data_flags(default_out="runs/bench")])
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="time epochs over the first N training images (default: the whole training set)")
    p.add_argument("--reps", type=positive_int, default=3,
                   help="timed epochs per model and step; the median is reported (default 3)")
    p.add_argument("--warmup", type=non_negative_int, default=1,
                   help="untimed epochs before the timed ones (default 1)")
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
    p.add_argument("--settle", type=non_negative_float, default=0.5,
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


# --------------------------------------------------------------------------- our engine
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


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    xp = pick_backend_or_exit(args.backend)
    dataset = load_data_or_exit(args)
    try:
        arrays = prepare_arrays(dataset, xp, train_size=args.train_size)
    except ValueError as exc:
        fail(str(exc))
    cfgs = stage_configs("quick", dataset, seed=args.seed)
    n = arrays["n_train"]
    batch = cfgs["teacher"].batch_size
    json_path = Path(args.json) if args.json else Path(args.out) / "bench.json"
    res = {
        "config": {"argv": sys.argv[1:] if argv is None else list(argv), "dataset": dataset.name,
                   "n_train": n, "batch_size": batch, "backend": backend_name(xp), "reps": args.reps,
                   "warmup": args.warmup, "seed": args.seed, "steps": args.steps, "models": args.models,
                   "stages": {m: cfgs[m].to_dict() for m in args.models}},
        "environment": {**environment_info(xp, argv), "loadavg_at_start": _loadavg()},
        "models": {m: {"sizes": list(cfgs[m].sizes),
                       "products_per_step": len(step_products(cfgs[m].sizes, batch)),
                       "flops_per_epoch": epoch_flops(cfgs[m].sizes, n, batch),
                       "steps": {}} for m in args.models},
    }

    soft = None
    if "distilled" in args.models:
        # The distilled student reads cached teacher logits; an untrained
        # teacher's are as good as a trained one's for timing.
        teacher = build_model(cfgs["teacher"], xp)
        synchronize(xp)
        t0 = time.perf_counter()
        soft = teacher_logits(teacher, arrays["x_train"])
        synchronize(xp)
        res["soft_targets_sec"] = time.perf_counter() - t0
        del teacher

    res["breakdown"] = {} if args.breakdown else None
    for step in args.steps:
        settle(args.settle)
        print(f"timing the {step} step ({BLAS_NAMES[blas_for(step, xp)]}) ...", file=sys.stderr)
        for model in args.models:
            res["models"][model]["steps"][step] = bench_engine(step, model, cfgs[model],
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
