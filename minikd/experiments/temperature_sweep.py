"""Distilled-student test errors across temperatures and hidden widths
(Hinton, Vinyals & Dean 2015, section 3), run as a grid on dask.distributed.

The paper's two claims, tested here with the seed-to-seed noise measured:

  1. with 300 or more units per hidden layer, all temperatures above 8 give
     fairly similar results (tested on T >= 8);
  2. with 30 units per layer, T between 2.5 and 4 works significantly better
     than higher or lower temperatures.

Every cell (T, width, seed) trains one 784-w-w-10 student on the teacher's soft
targets (computed once, on the un-jittered training images) plus the hard
labels, with the paper's unbounded gradient unless --grad-bound says otherwise:
reproduce.py's bound acts on a row's whole gradient, whose size depends on T.
Cells run as independent tasks on a Dask cluster: a LocalCluster of
one-thread workers on this machine by default, or the scheduler at
--scheduler ADDRESS (its workers need minikd importable: pip install -e .).
Each finished cell is written to OUT/cells/<cell>.json at once, so a rerun
skips it and an interrupted sweep resumes; a failed cell is reported and the
others go on (rerun the same command to retry it).

    python scripts/temperature_sweep.py --teacher runs/reproduce/teacher.npz
    python scripts/temperature_sweep.py --dataset digits --teacher-width 200 --teacher-epochs 60 \\
        --epochs 60 --lr 1 --temperatures 1,3,8,20 --widths 30,300 --seeds 3 \\
        --out runs/sweep_digits                                               # half a minute

Default budget (quick profile, 2-core CPU, MNIST): T in 1,2,3,4,6,8,12,20,30,
widths 30 and 300 (800 left out: 300 already tests claim 1), 2 seeds per cell,
40 epochs per student on all 60,000 images: 36 trainings, about 15 min on two
workers; without --teacher a teacher is trained first (150 epochs, about
15-20 min). --profile paper: widths 30,300,800, 3 seeds, 3,000 epochs per cell
(a GPU cluster's job).

Outputs in --out: results.json, sweep.csv (one row per width and T),
sweep.png (errors against T, one line per width), cells/ (one file per run).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..data import to_float
from ..engine.backend import to_host
from ..train import teacher_logits
from .args import (check_float_list, check_int_list, check_loss_weights, data_flags, fail, grad_bound_flags,
                   loss_flags, positive_int)
from .report import finish_axes, print_table, pyplot, save_figure, write_csv, write_json
from .results import environment_info, finished_now, soft_targets_sha256
from .section3 import section3_configs, section3_flags, section3_teacher
from .stage import run_command, run_meta, training_subset
from .sweep import (DASK_HINT, Cell, DaskMissing, SchedulerError, check_high_width_claim, check_low_width_claim,
                    parse_list, run_cell, run_grid, start_client, summarize_cells)

GRIDS = {  # profile -> (temperatures, widths, seeds)
    "quick": ("1,2,3,4,6,8,12,20,30", "30,300", 2),
    "paper": ("1,2,3,4,6,8,12,20,30", "30,300,800", 3),
}


def parse_args(argv=None):
    profile_help = ("quick (default): 24,000 steps per student (40 epochs of MNIST), widths 30,300, 2 seeds; "
                    "paper: 3,000 epochs per "
                    "student, widths 30,300,800, 3 seeds")
    why = ("; reproduce.py uses the profile's bound, but the bound acts on the row's whole gradient, whose size "
           "depends on T, so it would confound the temperature-against-width claims this sweep tests")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[data_flags(default_out="runs/temperature_sweep"),
                                         section3_flags(profile_help=profile_help), loss_flags(temperature=False),
                                         grad_bound_flags(default="none", why=why)])
    p.add_argument("--temperatures", default=None, help="comma-separated T values (default 1,2,3,4,6,8,12,20,30)")
    p.add_argument("--widths", default=None, help="hidden units per layer, comma-separated (default: profile's)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="students per (T, width): seeds --seed, --seed+1, ... (default: profile's, 2 / 3)")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training images (smoke runs)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: start a "
                        "LocalCluster here)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="LocalCluster workers, one thread each (default: the number of CPU cores)")
    p.add_argument("--no-processes", action="store_true",
                   help="LocalCluster workers as threads inside this process (light; for tests and tiny grids)")
    args = p.parse_args(argv)
    temps, widths, seeds = GRIDS[args.profile]
    try:
        args.temperatures = parse_list(args.temperatures or temps, float, "--temperatures")
        args.widths = parse_list(args.widths or widths, int, "--widths")
    except ValueError as exc:
        p.error(str(exc))
    args.seeds = seeds if args.seeds is None else args.seeds
    check_float_list(p, "--temperatures", args.temperatures, low=0.0)
    check_int_list(p, "--widths", args.widths, low=1)
    check_loss_weights(p, args.hard_weight, args.soft_weight)
    return args


# --------------------------------------------------------------------------- cells on disk
def cell_path(out, cell):
    return Path(out) / "cells" / f"{cell.key}.json"


def load_finished(out, cells, fingerprint):
    """{key: result} of the cells already on disk for this very setup.

    A cell computed under other settings (epochs, teacher, dataset...) stops
    the run: mixing them would make the table lie."""
    done = {}
    for cell in cells:
        path = cell_path(out, cell)
        if not path.exists():
            continue
        try:
            saved = json.loads(path.read_text())
            result, theirs = saved["result"], saved["settings"]
        except (ValueError, KeyError, OSError) as exc:
            print(f"warning: {path} is unreadable ({type(exc).__name__}); that cell runs again", file=sys.stderr)
            continue
        if theirs != fingerprint:
            diff = sorted(k for k in set(theirs) | set(fingerprint) if theirs.get(k) != fingerprint.get(k))
            k = diff[0]
            fail(f"{path} was computed with {k}={theirs.get(k)!r}, this run has {k}={fingerprint.get(k)!r}: "
                 f"use another --out, or delete {path.parent} to recompute every cell")
        done[cell.key] = result
    return done


# --------------------------------------------------------------------------- output
def grid_rows(rows, temperatures, widths):
    """The table's rows: a width per row, a T per column, mean (± s.d.) errors, * at the best T."""
    lines = [["width \\ T"] + [f"{t:g}" for t in temperatures]]
    for w in widths:
        mine = {r["temperature"]: r for r in rows if r["width"] == w}
        best = min((r["mean"] for r in mine.values()), default=None)
        cells = []
        for t in temperatures:
            r = mine.get(t)
            if r is None:
                cells.append("-")
                continue
            s = f"{r['mean']:.1f}" if r["n_seeds"] > 1 else f"{r['mean']:.0f}"
            if r["n_seeds"] > 1:
                s += f"±{r['std']:.1f}"
            cells.append(s + ("*" if r["mean"] == best else ""))
        lines.append([str(w)] + cells)
    return lines


CSV_HEADER = ["width", "temperature", "n_seeds", "mean_errors", "std_errors", "min_errors", "max_errors",
              "mean_error_pct", "errors_by_seed", "seeds", "n_test"]


def csv_rows(rows):
    return [[r["width"], f"{r['temperature']:g}", r["n_seeds"], f"{r['mean']:.2f}",
             "" if r["std"] is None else f"{r['std']:.2f}", int(r["min"]), int(r["max"]),
             f"{100 * r['mean'] / r['n_test']:.3f}", ";".join(map(str, r["errors"])),
             ";".join(map(str, r["seeds"])), r["n_test"]] for r in rows]


def plot(rows, widths, path, n_test):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.axvspan(2.5, 4.0, color="0.92", zorder=0, label="paper: best band for 30 units")
    ax.axvline(8, color="0.6", ls=":", lw=1, label="paper: T >= 8 similar for >= 300 units")
    for i, w in enumerate(widths):
        mine = sorted((r for r in rows if r["width"] == w), key=lambda r: r["temperature"])
        if not mine:
            continue
        t = np.array([r["temperature"] for r in mine])
        m = np.array([r["mean"] for r in mine])
        lo, hi = m - np.array([r["min"] for r in mine]), np.array([r["max"] for r in mine]) - m
        ax.errorbar(t, m, yerr=[lo, hi], color=f"C{i}", marker="o", capsize=3,
                    label=f"{w} units per layer (mean, seed min-max)")
        for r in mine:
            ax.scatter([r["temperature"]] * len(r["errors"]), r["errors"], color=f"C{i}", s=8, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["temperature"] for r in rows}))
    ax.set_xticklabels([f"{t:g}" for t in sorted({r["temperature"] for r in rows})])
    ax.set_xlabel("distillation temperature T")
    ax.set_ylabel(f"test errors (of {n_test})")
    finish_axes(ax, "distilled student: test errors against temperature")
    save_figure(fig, path, dpi=110)


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec("distributed") is None:
        fail(DASK_HINT)
    return run_command(args, lambda xp, dataset: _run(args, argv, xp, dataset),
                       how_to_continue="rerun the same command to continue (finished cells in --out/cells "
                                       "are skipped)")


def _run(args, argv, xp, dataset):
    env = environment_info(xp, argv)   # started now; finished set when results.json is written
    out = Path(args.out)
    t_start = time.time()

    try:
        x_tr, y_tr = training_subset(dataset, args.train_size)
    except ValueError as exc:
        fail(str(exc))
    cfgs, distill = section3_configs(args.profile, dataset, seed=args.seed, hard_weight=args.hard_weight,
                                     soft_weight=args.soft_weight, lr=args.lr, teacher_width=args.teacher_width,
                                     teacher_epochs=args.teacher_epochs, epochs=args.epochs,
                                     grad_bound=args.grad_bound)

    # The teacher (loaded, or trained here on the whole training set) and its
    # soft targets for every training image, computed once.
    x_train, x_test = to_float(x_tr, xp), to_float(dataset.x_test, xp)
    y_train = xp.asarray(np.asarray(y_tr, dtype=np.int32))
    y_test = xp.asarray(np.asarray(dataset.y_test, dtype=np.int32))
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              "eval_name": "test", "n_train": len(y_tr), "n_eval": len(dataset.y_test)}
    meta = run_meta(dataset, train_size=args.train_size, validation=False)
    teacher, teacher_info = section3_teacher(args.teacher, cfgs["teacher"], arrays, xp, dataset, out=out, meta=meta,
                                             test=(x_test, y_test), profile=args.profile, fast=not args.no_fast)
    soft = to_host(teacher_logits(teacher, x_train)).astype(np.float32)
    del x_train, x_test, teacher, arrays

    # What makes a finished cell reusable: everything but its own T, width and seed.
    fingerprint = {"dataset": dataset.name, "train_size": args.train_size,
                   "teacher_soft_targets": soft_targets_sha256(soft),
                   **{k: v for k, v in distill.to_dict().items() if k not in ("sizes", "temperature", "seed")}}
    cells = [Cell(t, w, args.seed + i) for w in args.widths for t in args.temperatures for i in range(args.seeds)]
    results = load_finished(out, cells, fingerprint)
    todo = [cell for cell in cells if cell.key not in results]
    print(f"{len(cells)} cells ({len(args.temperatures)} temperatures x {len(args.widths)} widths x "
          f"{args.seeds} seed(s)); {len(cells) - len(todo)} already done in {out / 'cells'} (skipped), "
          f"{len(todo)} to run", flush=True)

    failures = {}
    if todo:
        try:
            client, cluster = start_client(args.scheduler, n_workers=args.workers or os.cpu_count() or 1,
                                           processes=not args.no_processes)
        except (DaskMissing, SchedulerError) as exc:
            fail(str(exc))
        where = args.scheduler or ("LocalCluster, " + ("threads" if args.no_processes else "processes"))
        n_workers = len(client.scheduler_info().get("workers", {}))
        print(f"running on {where}: {n_workers} worker(s)", flush=True)
        settings = {"backend": args.backend, "config": distill.to_dict(), "fast": not args.no_fast}
        payload = {"x_train": np.asarray(x_tr), "y_train": np.asarray(y_tr, dtype=np.int32),
                   "x_test": np.asarray(dataset.x_test), "y_test": np.asarray(dataset.y_test, dtype=np.int32),
                   "soft_logits": soft}
        counter = {"n": len(cells) - len(todo)}

        def on_result(cell, result):
            write_json(cell_path(out, cell), {"settings": fingerprint, "result": result})
            results[cell.key] = result
            counter["n"] += 1
            print(f"[{counter['n']}/{len(cells)}] T={cell.temperature:g} width={cell.width} seed={cell.seed}: "
                  f"{result['test_errors']} test errors ({result['wall_seconds']:.0f} s, "
                  f"{result['sec_per_epoch']:.2f} s/epoch)", flush=True)

        def on_error(cell, exc):
            failures[cell.key] = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ImportError) and args.scheduler:
                failures[cell.key] += " (the workers need minikd: pip install -e . on every worker machine)"
            print(f"FAILED T={cell.temperature:g} width={cell.width} seed={cell.seed}: {failures[cell.key]}",
                  file=sys.stderr, flush=True)

        try:
            [data] = client.scatter([payload], broadcast=True)
            run_grid(client, run_cell, todo, data, settings, on_result=on_result, on_error=on_error)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    rows = summarize_cells(results, cells)
    claims = check_high_width_claim(rows) + check_low_width_claim(rows)
    n_test = int(len(dataset.y_test))
    summary = {
        "config": {"argv": sys.argv[1:] if argv is None else list(argv), "profile": args.profile,
                   "dataset": dataset.name, "data_source": dataset.source, "n_train": int(len(y_tr)),
                   "n_test": n_test, "temperatures": args.temperatures, "widths": args.widths,
                   "seeds": sorted({cell.seed for cell in cells}), "distilled": distill.to_dict(),
                   "scheduler": args.scheduler or "LocalCluster"},
        "teacher": teacher_info, "summary": rows, "claims": claims,
        "cells": [results[cell.key] for cell in cells if cell.key in results],
        "failures": failures, "missing": [cell.key for cell in cells if cell.key not in results],
        "wall_seconds": time.time() - t_start, "environment": env,
    }
    env["finished"] = finished_now()
    write_json(out / "results.json", summary)
    write_csv(out / "sweep.csv", CSV_HEADER, csv_rows(rows))
    if rows:
        plot(rows, args.widths, out / "sweep.png", n_test)

    print(f"\nteacher {'-'.join(map(str, teacher_info['sizes']))}: {teacher_info['test_errors']} test errors; "
          f"distilled students' test errors (of {n_test}), mean±s.d. over seeds, * = best T per width:")
    print_table(grid_rows(rows, args.temperatures, args.widths), align=">")
    print("\nthe paper's claims in these runs:")
    for v in claims:
        print(f"  claim: {v['claim']}\n    -> {v['verdict'].upper()}: {v['detail']}")
    print(f"\nwall time {summary['wall_seconds'] / 60:.1f} min; {out / 'results.json'}, {out / 'sweep.csv'}, "
          f"{out / 'sweep.png'}")
    if failures:
        fail(f"{len(failures)} of {len(cells)} cells failed ({', '.join(sorted(failures))}); the others are "
             f"saved in {out / 'cells'}: rerun the same command to retry only the missing ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
