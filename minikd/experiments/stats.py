"""The statistics behind the section-3 verdicts: intervals for error rates and
the spread between seeds."""
from __future__ import annotations

import math

import numpy as np


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
