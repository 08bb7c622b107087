"""What the section-3 experiments share beyond the table: transfer-set
filtering, bias-shift correction, a saved teacher, the statistics behind the
verdicts, and a grid of trainings run on dask.distributed.

Bias-shift correction (the mythical digit)
------------------------------------------
A student distilled without any 3 learns a class-3 bias that is too low. Adding
a constant ``s`` to the logits of the classes in a set S (raising their
biases by ``s``) changes each row's prediction in one way only: with

    a_n = max_{c in S} z_{n,c},   b_n = max_{c not in S} z_{n,c},

row n is predicted in S exactly when a_n + s > b_n, i.e. when s > t_n = b_n - a_n.
So the number of errors as a function of s is a step function that changes
only at the N thresholds t_n; sorting them gives the whole curve exactly, in
O(N log N), with no grid of trial shifts. ``best_bias_shift`` picks the
middle of the interval with the fewest errors (on ties, the smallest
correction) -- computed on a validation split held out of the training set,
never on the test set.

The grid on Dask
----------------
``run_grid`` submits one task per cell to a ``dask.distributed`` client and
hands every result (or failure) to callbacks as it arrives, so the caller can
write each cell to disk at once: an interrupted sweep keeps what it finished,
and one failed cell loses nothing else. Dask is optional: it is imported only
when a grid is run, and a missing install gets one sentence saying what to do.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, replace

import numpy as np


# --------------------------------------------------------------------------- transfer set
def filter_transfer_set(labels, *, drop=None, keep=None):
    """Row indices (host int64, in the original order) of the transfer set.

    labels: (N,) int. ``drop``: classes removed entirely (images, hard labels
    and soft targets all go); ``keep``: the only classes left. Give exactly one.
    The same indices select the images, the labels and the teacher's logits, so
    they cannot fall out of step.
    """
    if (drop is None) == (keep is None):
        raise ValueError("give exactly one of drop= or keep=")
    labels = np.asarray(labels)
    classes = np.asarray(sorted(set(int(c) for c in (drop if drop is not None else keep))))
    present = np.isin(labels, classes)
    missing = [int(c) for c in classes if not np.any(labels == c)]
    if missing:
        raise ValueError(f"class(es) {missing} do not occur in the training labels "
                         f"(classes present: {sorted(set(labels.tolist()))})")
    rows = np.flatnonzero(~present if drop is not None else present)
    if rows.size == 0:
        raise ValueError("the transfer set would be empty")
    return rows


def class_counts(labels, n_classes):
    return np.bincount(np.asarray(labels), minlength=n_classes).astype(int).tolist()


# --------------------------------------------------------------------------- bias shifts
def apply_bias_shift(logits, classes, shift):
    """Logits (N, C) with ``shift`` added to the columns in ``classes``
    (the same as adding it to those output biases). Returns a new array."""
    out = np.array(logits, dtype=np.float64, copy=True)
    out[:, list(classes)] += shift
    return out


@dataclass
class ShiftCurve:
    """Errors as an exact function of the shift s added to the logits of ``classes``.

    edges: (K,) sorted distinct thresholds t_n; errors: (K + 1,) with errors[i]
    the count for s in (edges[i-1], edges[i]] (edges[-1] = -inf, edges[K] = +inf).
    """
    edges: np.ndarray
    errors: np.ndarray
    n: int

    @classmethod
    def fit(cls, logits, labels, classes):
        z = np.asarray(logits, dtype=np.float64)
        y = np.asarray(labels)
        in_s = np.zeros(z.shape[1], dtype=bool)
        in_s[list(classes)] = True
        if in_s.all() or not in_s.any():
            raise ValueError(f"shifted classes {sorted(classes)} must be a proper subset of "
                             f"the {z.shape[1]} classes")
        ids_s, ids_o = np.flatnonzero(in_s), np.flatnonzero(~in_s)
        z_s, z_o = z[:, ids_s], z[:, ids_o]
        a, b = z_s.max(axis=1), z_o.max(axis=1)
        right_in = ids_s[z_s.argmax(axis=1)] == y       # right if predicted inside S
        right_out = ids_o[z_o.argmax(axis=1)] == y      # right if predicted outside S
        t = b - a                                       # row moves into S once s > t
        edges, inverse = np.unique(t, return_inverse=True)
        # Crossing an edge moves its rows into S: each gains an error if it was
        # right outside S, and loses one if it is right inside S.
        delta = np.bincount(inverse, weights=right_out.astype(float) - right_in.astype(float),
                            minlength=edges.size)
        base = int(np.sum(~right_out))                  # s -> -inf: nothing predicted in S
        errors = base + np.concatenate([[0.0], np.cumsum(delta)])
        return cls(edges, np.rint(errors).astype(np.int64), int(len(y)))

    def errors_at(self, shift):
        """Error count at ``shift`` (a float or an array of floats)."""
        return self.errors[np.searchsorted(self.edges, shift, side="left")]

    def best(self, margin=1.0):
        """(shift, errors): the middle of the interval with the fewest errors.

        Ties go to the interval closest to 0 (the smallest correction), and to 0
        itself when no correction is needed. An unbounded best interval gives
        its finite end -/+ ``margin``.
        """
        lo = np.concatenate([[-np.inf], self.edges])
        hi = np.concatenate([self.edges, [np.inf]])
        best = np.flatnonzero(self.errors == self.errors.min())
        mids = np.where(np.isinf(lo[best]), hi[best] - margin,
                        np.where(np.isinf(hi[best]), lo[best] + margin, (lo[best] + hi[best]) / 2))
        has_zero = (lo[best] < 0) & (0 <= hi[best])
        if has_zero.any():
            return 0.0, int(self.errors[best[has_zero][0]])
        i = int(np.argmin(np.abs(mids)))
        return float(mids[i]), int(self.errors[best[i]])


def best_bias_shift(logits, labels, classes):
    """(shift, errors) minimising the errors of (logits, labels) -- see ShiftCurve.best."""
    return ShiftCurve.fit(logits, labels, classes).best()


def per_class_errors(logits, labels, n_classes):
    """(C,) misclassified rows per true class."""
    y = np.asarray(labels)
    wrong = np.asarray(logits).argmax(axis=1) != y
    return np.bincount(y[wrong], minlength=n_classes).astype(int)


def shift_report(logits, labels, classes, shift, focus):
    """Errors of (logits, labels) after adding ``shift`` to ``classes``:
    overall, on the ``focus`` classes (the ones left out of the transfer set),
    and per class."""
    z = apply_bias_shift(logits, classes, shift)
    per = per_class_errors(z, labels, z.shape[1])
    y = np.asarray(labels)
    return {"shift": float(shift), "errors": int(per.sum()), "n": int(len(y)),
            "errors_on_focus": int(per[list(focus)].sum()),
            "n_focus": int(np.isin(y, list(focus)).sum()),
            "predicted_focus": int(np.isin(z.argmax(axis=1), list(focus)).sum()),
            "per_class": per.tolist()}


# --------------------------------------------------------------------------- statistics
def wilson_interval(k, n, z=1.96):
    """95% Wilson score interval for a proportion k / n (as fractions)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def mean_range(values):
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def tukey_hsd(k, df, sigma, n):
    """Smallest difference between two of k cell means (n runs each, run-to-run
    s.d. ``sigma``, ``df`` degrees of freedom) that noise alone exceeds only 5%
    of the time (Tukey's honest significant difference)."""
    from scipy.stats import studentized_range
    if k < 2:
        return float("nan")
    q = float(studentized_range.ppf(0.95, k, min(df, 1e4)))
    return q * sigma / math.sqrt(n)


def seed_noise(rows):
    """Run-to-run s.d. of test errors among cells ``rows`` (dicts with 'errors' lists).

    Pooled over cells with >= 2 seeds; with one seed per cell there is no
    measurement, and the Poisson guess sqrt(mean errors) stands in (flagged).
    Returns (sigma, df, basis).
    """
    ss, df = 0.0, 0
    for r in rows:
        e = np.asarray(r["errors"], dtype=float)
        if e.size > 1:
            ss += float(((e - e.mean()) ** 2).sum())
            df += e.size - 1
    if df > 0:
        return math.sqrt(ss / df), df, f"measured: pooled s.d. over seeds ({df} degrees of freedom)"
    m = float(np.mean([np.mean(r["errors"]) for r in rows]))
    return math.sqrt(max(m, 1.0)), 1e4, ("guessed: one seed per cell, so sqrt(errors) stands in for the "
                                        "seed-to-seed s.d. -- rerun with --seeds 3 to measure it")


# --------------------------------------------------------------------------- grid cells
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
        raise ValueError(f"{flag} {text!r}: give comma-separated {kind.__name__}s, e.g. {flag} 2,20")
    if not items:
        raise ValueError(f"{flag} is empty")
    if len(set(items)) != len(items):
        raise ValueError(f"{flag} {text!r} repeats a value")
    return items


def array_fingerprint(a):
    """Short sha256 of an array's bytes (identifies the teacher's soft targets)."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.tobytes() + str(a.shape).encode()).hexdigest()[:16]


def run_cell(payload, settings, cell):
    """Train one distilled student of the sweep (runs on a Dask worker).

    payload: host arrays x_train (N, H, W) uint8, y_train, x_test, y_test and
    soft_logits (N, C) float32 -- the teacher's logits for the transfer set.
    settings: backend name and the distill StageConfig as a dict. Returns a
    JSON-ready dict; raises on failure (the driver records it).
    """
    import os
    import socket

    from .backend import get_backend, to_device
    from .data import to_float
    from .train import StageConfig, Trainer

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
            "sizes": list(cfg.sizes)}


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
    except ImportError:
        raise DaskMissing(DASK_HINT)
    if scheduler:
        try:
            return Client(scheduler, timeout="15s"), None
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"--scheduler {scheduler}: no Dask scheduler answered ({type(exc).__name__}: "
                                 f"{exc}); start one with `dask scheduler` and workers with `dask worker "
                                 f"{scheduler}`, or leave --scheduler out to use a local cluster")
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


# --------------------------------------------------------------------------- a saved teacher
def load_teacher(path, xp, *, dataset):
    """(model, info) from a teacher checkpoint written by scripts/reproduce.py
    (or by these scripts). Refuses, naming the file, a checkpoint of another
    dataset or input/output size. Raises experiment.CheckpointError."""
    from .experiment import CheckpointError, checkpoint_params, read_checkpoint
    from .train import StageConfig, build_model
    header, arrays = read_checkpoint(path)
    cfg = StageConfig.from_dict(header["config"])
    meta = header.get("meta") or {}
    if meta.get("dataset") not in (None, dataset.name):
        raise CheckpointError(f"--teacher {path} was trained on --dataset {meta.get('dataset')}, this run uses "
                              f"--dataset {dataset.name}: pass a teacher of the same dataset, or leave "
                              f"--teacher out to train one")
    if cfg.sizes[0] != dataset.n_features or cfg.sizes[-1] != dataset.n_classes:
        raise CheckpointError(f"--teacher {path} is a {'-'.join(map(str, cfg.sizes))} network; --dataset "
                              f"{dataset.name} needs {dataset.n_features} inputs and {dataset.n_classes} "
                              f"outputs")
    model = build_model(cfg, xp)
    model.load_state_dict(checkpoint_params(arrays))
    if int(header["epochs_done"]) < int(cfg.epochs):
        import sys
        print(f"warning: --teacher {path} finished only {header['epochs_done']} of its {cfg.epochs} epochs; "
              f"using it as it is", file=sys.stderr)
    info = {"path": str(path), "sizes": list(cfg.sizes), "epochs_done": int(header["epochs_done"]),
            "epochs_planned": int(cfg.epochs), "meta": meta,
            "saw_all_training_rows": not meta.get("validation", False),
            "train_size": meta.get("train_size")}
    return model, info


QUICK_DISTILL_EPOCHS = 40  # the section-3 scripts' reduced budget (reproduce.py's students get 100)


def distill_config(args, dataset, cfgs):
    """The distilled student's StageConfig for the section-3 scripts.

    Default epochs: 40 under the quick profile (a reduced budget so a whole
    script fits 45 minutes on a 2-core CPU), the profile's own under paper.
    The learning-rate decay is recomputed for that number of epochs, so the
    compressed schedule still ends where the paper's does.
    """
    from .experiment import profile_configs
    epochs = args.epochs or (QUICK_DISTILL_EPOCHS if args.profile == "quick" else cfgs["distill"].epochs)
    fresh = profile_configs(args.profile, n_features=dataset.n_features, n_classes=dataset.n_classes,
                            image_shape=dataset.image_shape, epochs=epochs, seed=cfgs["distill"].seed,
                            temperature=cfgs["distill"].temperature, hard_weight=cfgs["distill"].hard_weight,
                            soft_weight=cfgs["distill"].soft_weight, lr=cfgs["distill"].lr)
    return fresh["distill"]
