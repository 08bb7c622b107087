"""What ``minikd reproduce`` reports: its runs grouped by model, the summary over seeds and the
paired gain, the printed table and the learning curves, and results.json's ``models``. The
docs' tables render the same summary from registered runs (docs/render_results.py).
"""
from __future__ import annotations

import numpy as np

from ..checkpoints import load_model
from ..engine.backend import to_host
from ..profiles import EPOCHS
from ..train import predict_logits
from .report import finish_axes, print_table, pyplot, save_figure
from .results import PAPER_TABLE
from .stage import STAGES
from .stats import model_summary, paired_gain, pairs_from_runs

LABELS = {"teacher": "teacher", "student": "student", "distilled": "distilled student"}


MNIST_TRAIN_IMAGES = 60000


def comparable_with_paper(dataset, eval_name, models=None, profile="quick"):
    """True when a run's error counts are on the paper's footing: MNIST's 10,000 test images,
    every model trained on all 60,000 training images for its profile's own epochs. Digits, an
    idx folder, the validation split, a --train-size subset or a shortened --epochs run count
    other errors, so the paper's 67 / 146 / 74 would only mislead beside them.
    models: {model: a run, or a list of runs}."""
    if dataset != "mnist" or eval_name != "test":
        return False
    runs = [(key, r) for key, m in (models or {}).items() for r in (m if isinstance(m, list) else [m])]
    return all(r.get("train_size") == MNIST_TRAIN_IMAGES and r.get("epochs") == EPOCHS[profile][key]
               for key, r in runs)


def by_model(runs):
    """{model: [its runs]} in stage order."""
    return {key: [r for r in runs if r["model"] == key] for key in STAGES if any(r["model"] == key for r in runs)}


def summarize(runs, pairs):
    """results.json's ``summary``: each model's test errors over its runs, and the paired gain."""
    summary = model_summary(runs)
    if pairs:
        summary["paired_gain"] = paired_gain(pairs)
    return summary


def print_results(runs, summary, eval_name, dataset="mnist", profile="quick"):
    """The final table (mean ± s.d., n, min-max per model; the paper's column only where
    comparable_with_paper), then the paired gain with its interval."""
    models = by_model(runs)
    published = comparable_with_paper(dataset, eval_name, models, profile)
    rows = [("model", f"{eval_name} errors, mean ± s.d.", "n", "min-max", "runs") + (("paper",) if published else ())]
    n_eval = None
    for key, rs in models.items():
        s, n_eval = summary[key], rs[0]["n_eval"]
        sd = "" if s["sd"] is None else f" ± {s['sd']:.1f}"
        row = (LABELS[key], f"{s['mean']:.1f}{sd}", str(s["n"]), f"{s['min']:g}-{s['max']:g}",
               " / ".join(str(r["test_errors"]) for r in rs))
        rows.append(row + ((str(PAPER_TABLE[key]),) if published else ()))
    print_table(rows)
    if not published:
        where = f"{n_eval} {dataset} {eval_name} images" if n_eval is not None else f"{dataset} {eval_name} images"
        print(f"errors out of {where}; the paper counts errors on MNIST's 10,000 test images after training on "
              f"all 60,000 for the profile's own epochs, so its numbers are not shown")
    gain = summary.get("paired_gain")
    if gain:
        print(paired_gain_text(gain))


def paired_gain_text(gain):
    """The paired gain as the command prints it: mean, interval, n, and each pair's McNemar test."""
    lines = [f"paired gain (plain student's errors minus the distilled student's, same teacher and seed): "
             f"mean {gain['mean']:+.1f} over {gain['n']} pair(s)"]
    if gain.get("ci95"):
        lo, hi = gain["ci95"]
        lines[0] += f", 95% t-interval [{lo:+.1f}, {hi:+.1f}]"
        if lo <= 0 <= hi:
            lines.append("the interval includes 0: these runs do not show that distillation helps")
        if gain["n"] < 5:
            lines.append(f"(with {gain['n']} pairs a t-interval is wide: it rests on {gain['n'] - 1} degree(s) "
                         f"of freedom)")
    else:
        lines[0] += " (one pair: no interval; --seeds or --teacher-seeds for more)"
    for p in gain.get("pairs", []):
        lines.append(f"  teacher seed {p['teacher_seed']}, seed {p['seed']}: {p['student_errors']} - "
                     f"{p['distilled_errors']} = {p['gain']:+d}; images only the plain one gets right "
                     f"{p['only_student_right']}, only the distilled one {p['only_distilled_right']}, "
                     f"McNemar's exact p = {p['mcnemar_p']:.3g}")
    return "\n".join(lines)


def plot_curves(runs, path, eval_name, dataset="mnist", profile="quick"):
    """Errors per epoch of each run (log scale); the paper's numbers as dashed lines only where
    comparable_with_paper."""
    plt = pyplot()
    models = by_model(runs)
    published = comparable_with_paper(dataset, eval_name, models, profile)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"teacher": "C0", "student": "C1", "distilled": "C2"}
    for key, rs in models.items():
        for i, r in enumerate(rs):
            pts = [(h["epoch"] + 1, h["test_errors"]) for h in r.get("history", []) if h["test_errors"] >= 0]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=colors[key], alpha=1.0 if i == 0 else 0.5,
                        label=f"{key} (seed {r['seed']})" if len(rs) == 1 else (f"{key} ({len(rs)} runs)"
                                                                                  if i == 0 else None))
        if published:
            ax.axhline(PAPER_TABLE[key], color=colors[key], ls="--", lw=0.8, label=f"paper {key}: {PAPER_TABLE[key]}")
    ax.set_xlabel("epoch")
    n_eval = next((r["n_eval"] for r in runs), None)
    ax.set_ylabel(f"{eval_name} errors" + (f" (of {n_eval:,})" if n_eval else ""))
    ax.set_yscale("log")
    finish_axes(ax, f"minikd: learning curves ({dataset})")
    save_figure(fig, path, dpi=110)


def paired_runs(runs, arrays, xp, cache):
    """The pairs of a plain and a distilled student of one teacher and seed (``stats.pairs_from_runs``),
    each with, from the two checkpoints, the test images only one of the two gets right (for McNemar's
    exact test). cache: {(checkpoint, test_errors): which test images it gets right}, kept between calls."""
    found = {(r["model"], r["teacher_seed"], r["seed"]): r for r in runs}
    y = to_host(arrays["y_test"])

    def right(run):
        key = (run["checkpoint"], run["test_errors"])
        if key not in cache:
            network, _, _ = load_model(run["checkpoint"], xp)
            cache[key] = to_host(predict_logits(network, arrays["x_test"])).argmax(axis=1) == y
        return cache[key]

    pairs = pairs_from_runs(runs)
    for pair in pairs:
        plain = right(found[("student", pair["teacher_seed"], pair["seed"])])
        dist = right(found[("distilled", pair["teacher_seed"], pair["seed"])])
        pair["only_student_right"] = int((plain & ~dist).sum())
        pair["only_distilled_right"] = int((dist & ~plain).sum())
    return pairs


def legacy_models(runs):
    """results.json's ``models``: each model's run as one entry when the run has one teacher (its
    students' errors over seeds in ``test_errors_all_seeds``), else a list of its runs."""
    models = {}
    single = len({r["teacher_seed"] for r in runs}) <= 1
    for key, rs in by_model(runs).items():
        if not single:
            models[key] = rs
            continue
        entry = dict(rs[0])
        if len(rs) > 1:
            entry["test_errors_all_seeds"] = [r["test_errors"] for r in rs]
            entry["test_errors_mean"] = float(np.mean(entry["test_errors_all_seeds"]))
        models[key] = entry
    return models
