"""The temperature sweep's grid of trainings on dask.distributed, and the
verdicts on the paper's two claims about temperature and width.

The grid on Dask
----------------
``run_grid`` submits one task per cell to a ``dask.distributed`` client and
hands every result (or failure) to callbacks as it arrives, so the caller can
write each cell to disk at once: an interrupted sweep keeps what it finished,
and one failed cell loses nothing else. Dask is optional: it is imported only
when a grid is run, and a missing install gets one sentence saying what to do.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .stats import mean_range, seed_noise, tukey_hsd


@dataclass(frozen=True)
class Cell:
    temperature: float
    width: int
    seed: int

    @property
    def key(self):
        return f"T{self.temperature:g}_w{self.width}_s{self.seed}"


def parse_list(text, kind, flag):
    """'1,2,3' -> [1, 2, 3] of ``kind``; a clear message names ``flag`` otherwise."""
    try:
        items = [kind(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give comma-separated {kind.__name__}s, e.g. {flag} 2,20") from None
    if not items:
        raise ValueError(f"{flag} is empty")
    if len(set(items)) != len(items):
        raise ValueError(f"{flag} {text!r} repeats a value")
    return items


def run_cell(payload, settings, cell):
    """Train one distilled student of the sweep (runs on a Dask worker).

    payload: host arrays x_train (N, H, W) uint8, y_train, x_test, y_test and
    soft_logits (N, C) float32 -- the teacher's logits for the transfer set.
    settings: backend name and the distill StageConfig as a dict. Returns a
    JSON-ready dict; raises on failure (the driver records it).
    """
    import os
    import socket

    from ..engine.backend import get_backend, to_device
    from ..data import to_float
    from ..train import StageConfig, Trainer

    xp = get_backend(settings["backend"])
    base = StageConfig.from_dict(settings["config"])
    cfg = replace(base, sizes=(base.sizes[0], cell.width, cell.width, base.sizes[-1]),
                  temperature=float(cell.temperature), seed=int(cell.seed))
    trainer = Trainer(cfg, xp, to_float(payload["x_train"], xp),
                      to_device(payload["y_train"], xp, dtype=np.int32),
                      to_float(payload["x_test"], xp), to_device(payload["y_test"], xp, dtype=np.int32),
                      soft_logits=to_device(payload["soft_logits"], xp, dtype=np.float32),
                      fast=settings.get("fast", True))
    t0 = time.time()
    hist = trainer.fit(eval_every=cfg.epochs)       # test errors once, at the end
    final = hist[-1]
    return {"key": cell.key, "temperature": cell.temperature, "width": cell.width, "seed": cell.seed,
            "test_errors": int(final.test_errors), "n_test": int(payload["y_test"].shape[0]),
            "final_loss": float(final.loss), "epochs": len(hist),
            "sec_per_epoch": float(sum(h.sec for h in hist) / len(hist)),
            "wall_seconds": float(time.time() - t0), "backend": trainer.backend,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "sizes": list(cfg.sizes), "grad_bound": cfg.grad_bound}


class DaskMissing(RuntimeError):
    """dask.distributed is not installed."""


class SchedulerError(RuntimeError):
    """The --scheduler address cannot be reached."""


DASK_HINT = ('the grid runs on dask.distributed, an optional extra that is not installed here: '
             'pip install "dask[distributed]"  (or pip install -e ".[dask]")')


def start_client(scheduler=None, *, n_workers=None, processes=True):
    """(client, cluster): a Client of the scheduler at ``scheduler``, or of a
    new LocalCluster with ``n_workers`` one-thread workers (cluster is None
    for an existing scheduler). Close the client, then the cluster."""
    try:
        import logging

        from dask.distributed import Client, LocalCluster
    except ImportError as exc:   # chained: a broken install shows which import failed
        raise DaskMissing(DASK_HINT) from exc
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"--scheduler {scheduler}: no Dask scheduler answered ({type(exc).__name__}: "
                                 f"{exc}); start one with `dask scheduler` and workers with `dask worker "
                                 f"{scheduler}`, or leave --scheduler out to use a local cluster") from exc
    # One thread per worker: the workers' BLAS is single-threaded (Dask's
    # nanny sets OMP/OPENBLAS/MKL_NUM_THREADS=1), so N workers fill N cores.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def run_grid(client, fn, cells, *args, on_result, on_error):
    """Submit ``fn(*args, cell)`` for every cell and report each as it finishes.

    on_result(cell, result) / on_error(cell, exception) run in this process as
    soon as a cell completes, in completion order. A failure (an exception in
    the task, or a worker that died) is passed on and the other cells go on.
    Returns (n_done, n_failed).
    """
    from dask.distributed import as_completed
    futures = {client.submit(fn, *args, cell, pure=False): cell for cell in cells}
    done = failed = 0
    for fut in as_completed(list(futures)):
        cell = futures[fut]
        try:
            result = fut.result()
        except Exception as exc:  # the worker's own exception, re-raised here
            failed += 1
            on_error(cell, exc)
        else:
            done += 1
            on_result(cell, result)
        fut.release()
    return done, failed


# --------------------------------------------------------------------------- the sweep's claims
def summarize_cells(results, cells):
    """One row per (width, T) of ``cells``: the seeds' errors, mean, s.d., range.

    results: {cell key: result dict}; cells without a result are left out.
    """
    groups = {}
    for cell in cells:
        r = results.get(cell.key)
        if r is not None:
            groups.setdefault((cell.width, cell.temperature), []).append(r)
    rows = []
    for (width, temp), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        errs = [r["test_errors"] for r in rs]
        stats = mean_range(errs)
        rows.append({"width": width, "temperature": temp, "n_seeds": len(errs),
                     "seeds": [r["seed"] for r in rs], "errors": errs, "mean": stats["mean"],
                     "std": stats["std"], "min": stats["min"], "max": stats["max"],
                     "n_test": rs[0]["n_test"]})
    return rows


def _verdict(claim, verdict, detail, **extra):
    return {"claim": claim, "verdict": verdict, "detail": detail, **extra}


def check_high_width_claim(rows, *, min_width=300, t_min=8.0):
    """Paper: with >= 300 units per layer, all temperatures above 8 give similar results.

    Tested per width >= min_width on the cells with T >= t_min: the spread of
    their mean errors (max - min) against Tukey's HSD for that many means. The
    claim holds for a width when the spread is within what seed noise alone
    gives 95% of the time.
    """
    claim = f"with >= {min_width} hidden units per layer, all T >= {t_min:g} give similar test errors"
    out = []
    for width in sorted({r["width"] for r in rows if r["width"] >= min_width}):
        mine = [r for r in rows if r["width"] == width]
        hot = [r for r in mine if r["temperature"] >= t_min]
        if len(hot) < 2:
            out.append(_verdict(claim, "not tested", f"width {width}: fewer than two temperatures >= "
                                f"{t_min:g} in the grid", width=width))
            continue
        sigma, df, basis = seed_noise(mine)
        n = min(r["n_seeds"] for r in hot)
        hsd = tukey_hsd(len(hot), df, sigma, n)
        means = {r["temperature"]: r["mean"] for r in hot}
        spread = max(means.values()) - min(means.values())
        holds = spread <= hsd
        strength = "clearly" if (spread <= 0.5 * hsd or spread > 1.5 * hsd) else "narrowly"
        detail = (f"width {width}: mean errors at T = "
                  + ", ".join(f"{t:g}: {m:.1f}" for t, m in sorted(means.items()))
                  + f"; spread {spread:.1f} errors vs {hsd:.1f} that seed noise alone reaches 5% of the "
                  f"time ({n} seed(s) per cell, s.d. {sigma:.1f} {basis})")
        out.append(_verdict(claim, ("holds" if holds else "does not hold") + f" ({strength})", detail,
                            width=width, spread=spread, hsd=hsd, sigma=sigma, noise_basis=basis,
                            seeds_per_cell=n))
    if not out:
        out.append(_verdict(claim, "not tested", f"no width >= {min_width} in the grid"))
    return out


def check_low_width_claim(rows, *, width=30, band=(2.5, 4.0)):
    """Paper: with 30 units per layer, T between 2.5 and 4 works significantly
    better than higher or lower temperatures.

    Tested on the width-``width`` cells: the best mean inside the band against
    the best below it and the best above it, each difference against Tukey's
    HSD over all temperatures of that width.
    """
    lo_t, hi_t = band
    claim = (f"with {width} hidden units per layer, T in [{lo_t:g}, {hi_t:g}] beats both lower and "
             f"higher temperatures")
    mine = [r for r in rows if r["width"] == width]
    inside = [r for r in mine if lo_t <= r["temperature"] <= hi_t]
    below = [r for r in mine if r["temperature"] < lo_t]
    above = [r for r in mine if r["temperature"] > hi_t]
    if not (inside and below and above):
        return [_verdict(claim, "not tested", f"the grid needs width {width} with temperatures below, inside "
                         f"and above [{lo_t:g}, {hi_t:g}]", width=width)]
    sigma, df, basis = seed_noise(mine)
    n = min(r["n_seeds"] for r in mine)
    hsd = tukey_hsd(len(mine), df, sigma, n)
    best = {name: min(group, key=lambda r: r["mean"])
            for name, group in (("inside", inside), ("below", below), ("above", above))}
    gaps = {name: best[name]["mean"] - best["inside"]["mean"] for name in ("below", "above")}
    if all(g > hsd for g in gaps.values()):
        verdict = "holds (clearly: the band beats both sides by more than seed noise)"
    elif all(g > 0 for g in gaps.values()):
        verdict = "holds only in the means (within seed noise on at least one side)"
    elif any(g < -hsd for g in gaps.values()):
        verdict = "does not hold (clearly: a temperature outside the band is better beyond seed noise)"
    else:
        verdict = "does not hold in the means (but within seed noise: inconclusive)"
    fmt = lambda r: f"T={r['temperature']:g}: {r['mean']:.1f}"  # noqa: E731
    detail = (f"width {width}: best inside {fmt(best['inside'])}, best below {fmt(best['below'])}, best above "
              f"{fmt(best['above'])}; a difference must exceed {hsd:.1f} errors to beat seed noise "
              f"({n} seed(s) per cell, s.d. {sigma:.1f} {basis})")
    return [_verdict(claim, verdict, detail, width=width, gaps=gaps, hsd=hsd, sigma=sigma,
                     noise_basis=basis, seeds_per_cell=n,
                     best={k: v["temperature"] for k, v in best.items()})]
