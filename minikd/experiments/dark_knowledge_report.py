"""What ``minikd dark-knowledge`` reports: each variant's test errors over seeds, the paired
differences to `hard` and to `soft` (t-interval, McNemar's exact test per pair), early stopping
of `hard` and `soft` on the validation images, the printed table and the two figures. The docs'
table renders the same file (docs/render_results.py, ``dark-knowledge-table``).

A difference is the variant's test errors minus the reference's, seed by seed (one seed: the same
initial weights and batch order): negative means fewer errors than the reference. `soft` is
compared with `hard` only (its difference to itself is 0); `hard` is the reference of both.
"""
from __future__ import annotations

import numpy as np

from .report import finish_axes, print_table, pyplot, save_figure
from .stats import describe, mcnemar_exact, paired_interval

VARIANTS = ("hard", "soft", "permuted", "confidence", "smoothed", "logit_matching")
EARLY_STOPPED = ("hard", "soft")     # evaluated every epoch, on the test and the validation images
REFERENCES = ("hard", "soft")


def summary(runs):
    """``variants.<name>``: its runs, describe() of their test errors, and their mean agreement with the teacher."""
    agreements = [r["agreement"] for r in runs if r.get("agreement") is not None]
    return {"runs": runs, **describe(r["test_errors"] for r in runs),
            "agreement": float(np.mean(agreements)) if agreements else None}


def references_of(variant):
    """The variants ``variant`` is compared with: hard and soft, soft with hard, hard with none."""
    return [r for r in REFERENCES if r != variant and VARIANTS.index(r) < VARIANTS.index(variant)]


def paired(runs, right):
    """``paired.<name>.vs_<ref>``: paired_interval of the differences (variant − ref test errors) over the
    seeds both have, plus ``pairs``: per seed the two error counts, the test images only one of the two
    gets right (from ``right[(variant, seed)]``, a boolean per test image) and McNemar's exact p."""
    out = {}
    for v in VARIANTS:
        for ref in references_of(v):
            mine = {r["seed"]: r for r in runs.get(v, [])}
            theirs = {r["seed"]: r for r in runs.get(ref, [])}
            seeds = [s for s in mine if s in theirs]
            if not seeds:
                continue
            pairs = []
            for s in seeds:
                a, b = right[(v, s)], right[(ref, s)]
                only_v, only_ref = int((a & ~b).sum()), int((b & ~a).sum())
                diff = mine[s]["test_errors"] - theirs[s]["test_errors"]
                if diff != only_ref - only_v:
                    raise RuntimeError(f"{v} − {ref}, seed {s}: the test errors differ by {diff}, the per-image "
                                       f"counts by {only_ref - only_v}: the predictions are not the counted ones")
                pairs.append({"seed": s, "errors": mine[s]["test_errors"], "reference_errors": theirs[s]["test_errors"],
                              "difference": diff, "only_variant_right": only_v, "only_reference_right": only_ref,
                              "mcnemar_p": mcnemar_exact(only_v, only_ref)})
            out.setdefault(v, {})[f"vs_{ref}"] = {**paired_interval(p["difference"] for p in pairs), "pairs": pairs}
    return out


def trim_history(history, curve=None):
    """A run's history as results.json keeps it: per evaluated epoch (0-based) its test errors and, for
    `hard` and `soft`, its errors on the validation images (``curve``: {epoch: errors}); None where not
    evaluated."""
    curve = curve or {}
    rows = []
    for h in history:
        test = h["test_errors"] if h["test_errors"] >= 0 else None
        val = curve.get(str(h["epoch"]))
        if test is not None or val is not None:
            rows.append({"epoch": h["epoch"], "test_errors": test, "validation_errors": val})
    return rows


def early_stopping(runs, outside, n_validation):
    """``early_stopping``: for `hard` and `soft`, per seed, the epoch with the fewest validation errors (the
    first of ties) and the test errors there, beside the last epoch's; the two as describe() over seeds."""
    if not outside:
        return {"available": False, "why": "the transfer set is the whole training set: no held-out images that "
                                           "the students did not learn from"}
    out = {"available": True, "n_validation": n_validation}
    for v in EARLY_STOPPED:
        per_seed = []
        for r in runs.get(v, []):
            hist = r["history"]
            missing = [h["epoch"] for h in hist if h["validation_errors"] is None]
            if not hist or missing or len(hist) != r["epochs"]:
                per_seed.append({"seed": r["seed"], "missing": "validation errors of some epochs were not recorded "
                                                               "(an earlier run into --out without them)"})
                continue
            best = min(hist, key=lambda h: h["validation_errors"])
            per_seed.append({"seed": r["seed"], "best_epoch": best["epoch"],
                             "validation_errors_at_best": best["validation_errors"],
                             "test_errors_at_best": best["test_errors"], "final_epoch": hist[-1]["epoch"],
                             "validation_errors_final": hist[-1]["validation_errors"],
                             "test_errors_final": hist[-1]["test_errors"]})
        done = [p for p in per_seed if "best_epoch" in p]
        out[v] = {"runs": per_seed}
        if done:
            out[v]["early_stopped"] = describe(p["test_errors_at_best"] for p in done)
            out[v]["final"] = describe(p["test_errors_final"] for p in done)
    return out


# --------------------------------------------------------------------------- printed
def _mean_sd(d):
    return f"{d['mean']:.1f}" + ("" if d["sd"] is None else f" ± {d['sd']:.1f}")


def _difference(g):
    if g is None:
        return "-"
    ci = g.get("ci95")
    return f"{g['mean']:+.1f}" + (" (one pair)" if ci is None else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]")


def print_report(results):
    """The table (test errors, agreement, differences to hard and soft), then the teacher, the smoothing chosen, early
    stopping and McNemar's test per pair."""
    cfg, variants, pairs = results["config"], results["variants"], results["paired"]
    rows = [("variant", "test errors, mean ± s.d.", "n", "runs", "agreement with teacher",
             "− hard, 95% t-interval", "− soft, 95% t-interval")]
    for v in VARIANTS:
        if v not in variants:
            continue
        d = variants[v]
        rows.append((v, _mean_sd(d), str(d["n"]), " / ".join(str(r["test_errors"]) for r in d["runs"]),
                     f"{100 * d['agreement']:.1f}%", _difference(pairs.get(v, {}).get("vs_hard")),
                     _difference(pairs.get(v, {}).get("vs_soft"))))
    ref = results.get("reference_student")
    if ref:
        rows.append(("plain student (own schedule)", _mean_sd(ref), str(ref["n"]),
                     " / ".join(str(r["test_errors"]) for r in ref["runs"]), f"{100 * ref['agreement']:.1f}%", "", ""))
    print_table(rows)
    t = results["teacher"]
    print(f"errors of {cfg['n_eval']:,} {cfg['dataset']} test images; transfer set: the first {cfg['n_transfer']:,} "
          f"training images; T = {cfg['temperature']:g}. Teacher: {t['test_errors']} test errors "
          f"({'loaded from ' + t['checkpoint'] if t['loaded'] else 'trained here'}).")
    sm = results["smoothing"]
    print(f"smoothed: smoothing {sm['chosen']:g}, chosen on {sm['n_validation']:,} validation images from "
          + ", ".join(f"{a:g} ({n} errors)" for a, n in zip(sm["grid"], sm["validation_errors"], strict=True)))
    n = min(d["n"] for d in variants.values())
    print(f"differences: the variant's test errors minus the reference's, seed by seed (same initial weights and "
          f"batch order); negative is fewer errors. With {n} seed(s) " + (
              "there is no interval (one pair)." if n < 2 else
              f"a t-interval rests on {n - 1} degree(s) of freedom and is wide; one that includes 0 shows no "
              f"difference."))
    for v, refs in pairs.items():
        for key, g in refs.items():
            print(f"  {v} {key.replace('_', ' ')}: " + "; ".join(
                f"seed {p['seed']}: {p['difference']:+d} (only {v} right {p['only_variant_right']}, only "
                f"{key[3:]} right {p['only_reference_right']}, McNemar p = {p['mcnemar_p']:.3g})" for p in g["pairs"]))
    es = results["early_stopping"]
    if not es["available"]:
        print(f"early stopping: not measured ({es['why']})")
        return
    for v in EARLY_STOPPED:
        for p in es.get(v, {}).get("runs", []):
            if "best_epoch" in p:
                print(f"early stopping, {v} seed {p['seed']}: fewest validation errors at epoch "
                      f"{p['best_epoch'] + 1} ({p['validation_errors_at_best']}), test errors there "
                      f"{p['test_errors_at_best']}; at the last epoch {p['final_epoch'] + 1}: {p['test_errors_final']}")
            else:
                print(f"early stopping, {v} seed {p['seed']}: {p['missing']}")


# --------------------------------------------------------------------------- figures
def plot_errors(results, path):
    """Each variant's test errors, one point per seed, its mean as a bar; the teacher's as a dashed line."""
    plt = pyplot()
    rows = [(v, results["variants"][v]) for v in VARIANTS if v in results["variants"]]
    if results.get("reference_student"):
        rows.append(("plain\nstudent", results["reference_student"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, d) in enumerate(rows):
        errors = [r["test_errors"] for r in d["runs"]]
        offsets = np.linspace(-0.15, 0.15, len(errors)) if len(errors) > 1 else [0.0]
        ax.scatter(i + np.asarray(offsets), errors, color="C0" if name in VARIANTS else "C7", zorder=3,
                   label="a seed" if i == 0 else None)
        ax.hlines(d["mean"], i - 0.3, i + 0.3, color="k", lw=1.5, label="mean" if i == 0 else None)
    ax.axhline(results["teacher"]["test_errors"], color="C3", ls="--", lw=0.8, label="teacher")
    ax.set_xticks(range(len(rows)), [name for name, _ in rows])
    cfg = results["config"]
    ax.set_ylabel(f"test errors (of {cfg['n_eval']:,})")
    finish_axes(ax, f"students that differ only in their targets ({cfg['dataset']}, {cfg['n_transfer']:,} "
                    f"transfer images)")
    save_figure(fig, path, dpi=110)


def plot_curves(results, path):
    """Test errors per epoch of the `hard` and `soft` students, one line per seed, each marked where its
    validation errors were fewest (early stopping)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    es = results["early_stopping"]
    for color, v in zip(("C1", "C2"), EARLY_STOPPED, strict=True):
        stops = {p["seed"]: p for p in es.get(v, {}).get("runs", []) if "best_epoch" in p}
        for i, r in enumerate(results["variants"].get(v, {}).get("runs", [])):
            pts = [(h["epoch"] + 1, h["test_errors"]) for h in r["history"] if h["test_errors"] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=color, alpha=1.0 if i == 0 else 0.5,
                        label=f"{v} (test errors)" if i == 0 else None)
            stop = stops.get(r["seed"])
            if stop is not None:
                ax.plot(stop["best_epoch"] + 1, stop["test_errors_at_best"], marker="*", ms=12, color=color, ls="",
                        label=f"{v}: early-stopped on validation" if i == 0 else None)
    cfg = results["config"]
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test errors (of {cfg['n_eval']:,})")
    ax.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    ax.yaxis.set_major_formatter(ScalarFormatter())   # 40, 100, 300 rather than 4 x 10^1
    finish_axes(ax, f"hard vs soft targets on {cfg['n_transfer']:,} transfer images ({cfg['dataset']})")
    save_figure(fig, path, dpi=110)
