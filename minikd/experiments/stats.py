"""The statistics behind the tables: intervals for error rates and the spread
between seeds (the section-3 verdicts); each model's mean ± s.d. over its runs, and
the paired gain of a distilled student over the plain one, with its t-interval and
McNemar's exact test per pair (reproduce's summary and the rendered tables)."""
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


# --------------------------------------------------------------------------- seeds and pairs
def describe(values):
    """Mean, sample standard deviation (ddof 1; None for one value), n, min and max of
    ``values`` (e.g. one model's test errors over its runs). ``min`` and ``max`` keep the values'
    type (error counts stay integers)."""
    v = np.asarray(list(values))
    if v.size == 0:
        raise ValueError("describe: no values to summarise (a model without runs?)")
    x = v.astype(float)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if v.size > 1 else None, "n": int(v.size),
            "min": v.min().item(), "max": v.max().item()}


def t_quantile(level, df):
    """The two-sided Student's t quantile t_{(1 + level)/2, df} (SciPy's ``stats.t``)."""
    from scipy.stats import t
    return float(t.ppf((1 + level) / 2, df))


def interval_key(level):
    """The key an interval at ``level`` is stored under: ``ci95`` for 0.95, ``ci90`` for 0.9."""
    return f"ci{100 * level:g}"


def paired_interval(diffs, level=0.95):
    """Mean, s.d., n and the Student's t interval of the mean of paired differences.

        mean ± t_{(1 + level)/2, n - 1} · sd / sqrt(n)

    Stored under ``interval_key(level)`` (``ci95``) as ``[lo, hi]``; ``sd`` and the interval are
    None for n < 2 (one difference says nothing about the spread). The interval assumes the
    differences are independent draws of one normal distribution; with a handful of pairs t is
    large (4.30 at n = 3) and the interval wide."""
    if not 0 < level < 1:
        raise ValueError(f"paired_interval: level must be between 0 and 1, got {level}")
    d = np.asarray(list(diffs), dtype=float)
    if d.size == 0:
        raise ValueError("paired_interval: no differences (no pair has both runs?)")
    mean = float(d.mean())
    if d.size < 2:
        return {"mean": mean, "sd": None, "n": 1, interval_key(level): None}
    sd = float(d.std(ddof=1))
    half = t_quantile(level, d.size - 1) * sd / math.sqrt(d.size)
    return {"mean": mean, "sd": sd, "n": int(d.size), interval_key(level): [mean - half, mean + half]}


def mcnemar_exact(b, c):
    """Two-sided exact McNemar p-value for one pair of classifiers on the same test images.

    ``b``: images only the first gets right; ``c``: images only the second gets right. Under the
    null hypothesis (both equally good) each of the n = b + c discordant images goes either way
    with probability 1/2, so min(b, c) is Binomial(n, 1/2) at its lower tail:

        p = min(1, 2 · Σ_{k=0}^{min(b, c)} C(n, k) / 2^n),    p = 1 when n = 0.

    (Exact rational arithmetic on Python integers; one rounding at the end.)"""
    for name, v in (("b", b), ("c", c)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"mcnemar_exact: {name} must be a count (a non-negative integer), got {v!r}")
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)


PAIR_KEYS = ("student_errors", "distilled_errors")


def paired_gain(pairs, level=0.95):
    """``summary.paired_gain`` of results.json from one record per pair.

    A pair is a plain and a distilled student of one teacher and one seed (the same initial
    weights and batch order). Each record holds ``student_errors`` and ``distilled_errors`` (test
    errors), and where the run counted them ``only_student_right`` (b: test images the plain student
    gets right and the distilled one wrong) and ``only_distilled_right`` (c); other keys (e.g.
    ``teacher_seed``, ``seed``) are kept. The gain is student − distilled errors, which must equal
    c − b on one test set (a record where it does not is refused). Returns paired_interval of the
    gains plus ``pairs``: each record with its ``gain`` and ``mcnemar_p`` (mcnemar_exact(b, c); None
    without b and c)."""
    out = []
    for i, pair in enumerate(pairs):
        missing = [k for k in PAIR_KEYS if k not in pair]
        if missing:
            raise ValueError(f"paired_gain: pair {i} ({pair}) has no {', '.join(missing)}")
        rec = dict(pair)
        rec["gain"] = pair["student_errors"] - pair["distilled_errors"]
        b, c = pair.get("only_student_right"), pair.get("only_distilled_right")
        if (b is None) != (c is None):
            raise ValueError(f"paired_gain: pair {i} has only one of only_student_right / only_distilled_right")
        if b is not None and c - b != rec["gain"]:
            raise ValueError(f"paired_gain: pair {i}: student − distilled errors is {rec['gain']}, but "
                             f"only_distilled_right − only_student_right is {c} − {b} = {c - b}; on one test "
                             f"set they are equal (were the two counts swapped, or another test set used?)")
        rec["mcnemar_p"] = mcnemar_exact(b, c) if b is not None else None
        out.append(rec)
    return {**paired_interval([r["gain"] for r in out], level), "pairs": out}


def pairs_from_runs(runs):
    """The pair records of paired_gain from results.json's ``runs``: one per (teacher_seed, seed)
    with both a ``student`` and a ``distilled`` run, in the order of the student runs. A second run
    of one model under one (teacher_seed, seed) is refused: it would pair twice."""
    by = {}
    for r in runs:
        if r.get("model") not in ("student", "distilled"):
            continue
        key = (r.get("teacher_seed"), r.get("seed"), r["model"])
        if key in by:
            raise ValueError(f"two {r['model']} runs with teacher seed {key[0]} and seed {key[1]}: a pair must be "
                             f"one plain and one distilled student")
        by[key] = r
    pairs = []
    for (t, s, model), r in by.items():
        d = by.get((t, s, "distilled"))
        if model == "student" and d is not None:
            pairs.append({"teacher_seed": t, "seed": s, "student_errors": r["test_errors"],
                          "distilled_errors": d["test_errors"]})
    return pairs


def model_summary(runs, models=("teacher", "student", "distilled")):
    """``summary.<model>`` of results.json: describe() of each model's test errors over its runs."""
    return {m: describe([r["test_errors"] for r in runs if r.get("model") == m])
            for m in models if any(r.get("model") == m for r in runs)}
