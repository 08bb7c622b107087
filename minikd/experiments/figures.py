"""The figures of docs/, drawn from the engine's own outputs.

    python scripts/make_figures.py --out docs                  # trains a digits run first
    python scripts/make_figures.py --teacher runs/digits/teacher.npz \\
        --results runs/digits/results.json --out docs          # from a finished run

writes four PNGs into --out:

    softmax_temperature.png  (a) softmax of two logits at T = 1 and T = 20
    dark_knowledge.png       (b) a test digit classified with confidence and an
                                 ambiguous one, beside the teacher's probabilities at
                                 T = 1 and 4 (log scale) and at T = 20 (linear, q - 1/C)
    gradient_scale.png       (c) size of the soft gradient against T, with and
                                 without the T^2 factor (engine.losses.distillation_loss)
    learning_curves_<dataset>.png  (d) errors per epoch of the teacher, the student and
                                 the distilled student

Every number plotted comes from minikd: probabilities from
``engine.losses.softmax``, gradients from ``engine.losses.distillation_loss``,
logits from a trained teacher and student, curves from training histories.
Without --teacher a teacher is trained here on scikit-learn's digits (the
quick profile; --epochs N stops each stage after its first N epochs); without --results the student and the
distilled student are trained here too, on the same data.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data import DataError, load_dataset, to_float
from ..engine.backend import to_device, to_host
from ..engine.losses import distillation_loss, softmax
from ..train import Trainer, predict_logits, teacher_logits
from .args import fail, non_negative_int, pick_backend_or_exit, positive_float, positive_int
from ..checkpoints import CheckpointError, load_model
from .report import pyplot, save_figure
from .reproduce_table import plot_curves
from .stage import stage_configs

FIGURES = ("softmax_temperature.png", "dark_knowledge.png", "gradient_scale.png", "learning_curves_{dataset}.png")
DARK_TEMPERATURES = (1.0, 4.0, 20.0)
GRADIENT_TEMPERATURES = tuple(float(t) for t in np.geomspace(0.5, 100.0, 25))


# ------------------------------------------------------------------ (a) softmax and temperature
def softmax_temperature_figure(path, pair=(10.0, 4.0), temperatures=(1.0, 20.0)):
    """Two panels: softmax([z, 0] / T)_1 against z, and the bars of one pair of logits.

    Returns {"curve_z": z, "curves": {T: p_1(z)}, "pair": pair, "bars": {T: (p_1, p_2)}}.
    """
    plt = pyplot()
    z = np.linspace(-30.0, 30.0, 241)
    two = np.stack([z, np.zeros_like(z)], axis=1)               # (241, 2) logits [z, 0]
    curves = {t: softmax(two, t)[:, 0] for t in temperatures}
    bars = {t: tuple(float(p) for p in softmax(np.array([pair], dtype=np.float64), t)[0]) for t in temperatures}
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, t in enumerate(temperatures):
        ax0.plot(z, curves[t], color=f"C{i}", label=f"T = {t:g}")
    ax0.set_xlabel("logit difference z$_1$ - z$_2$")
    ax0.set_ylabel("p$_1$ = softmax(z / T)$_1$")
    ax0.set_title("two classes: higher T, softer probabilities")
    ax0.grid(alpha=0.3)
    ax0.legend()
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        xs = np.arange(2) + (i - (len(temperatures) - 1) / 2) * width
        ax1.bar(xs, bars[t], width=width, color=f"C{i}", label=f"T = {t:g}")
        for x, p in zip(xs, bars[t], strict=True):
            ax1.text(x, p + 0.02, f"{p:.3f}", ha="center", fontsize=8)
    ax1.set_xticks([0, 1], [f"class 1 (z = {pair[0]:g})", f"class 2 (z = {pair[1]:g})"])
    ax1.set_ylim(0, 1.12)
    ax1.set_ylabel("probability")
    ax1.set_title(f"logits ({pair[0]:g}, {pair[1]:g})")
    ax1.legend(fontsize=8)
    save_figure(fig, path, dpi=100)
    return {"curve_z": z, "curves": curves, "pair": tuple(pair), "bars": bars}


# ------------------------------------------------------------------ (b) dark knowledge
def ambiguous_rows(logits, labels, n=4):
    """Indices of ``n`` rows whose two largest logits are closest, at most one
    per true label (so the figure shows different digits), most ambiguous first."""
    top2 = np.sort(logits, axis=1)[:, -2:]
    order = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")
    rows, seen = [], set()
    for i in order:
        if int(labels[i]) not in seen:
            rows.append(int(i))
            seen.add(int(labels[i]))
        if len(rows) == n:
            break
    return rows


def confident_row(logits, labels, *, confidence=0.99, exclude_label=None):
    """A row the teacher classifies right and with confidence: of the correct rows
    whose top probability at T = 1 is at least ``confidence`` (all correct rows if
    none is), the one with the median gap between its two largest logits -- a
    typical confident image, not the most extreme one. ``exclude_label``: skip
    rows of that label (so it differs from the ambiguous image beside it)."""
    correct = logits.argmax(axis=1) == labels
    if exclude_label is not None:
        correct &= labels != exclude_label
    top = softmax(logits, 1.0).max(axis=1)
    pool = np.flatnonzero(correct & (top >= confidence))
    if pool.size == 0:
        pool = np.flatnonzero(correct)
    top2 = np.sort(logits[pool], axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    return int(pool[np.argsort(gap, kind="stable")[len(pool) // 2]])


def dark_knowledge_figure(path, images, labels, teacher_logits, *, temperatures=DARK_TEMPERATURES,
                          image_shape=None):
    """Two test images, the teacher's softmax(v / T) for each: one classified right with
    confidence, whose tiny probabilities still rank the classes it resembles, and the
    most ambiguous one.

    Per image: the image; q at the lower temperatures on a log axis (at T = 1 the
    wrong classes of the confident image get 1e-3 or less, but in an order); q - 1/C
    at the highest T on a linear axis (there q is close to uniform, and what is left
    is about (v - mean(v)) / (C T): the centred logits, scaled).
    images: (N, D) floats in [0, 1]; labels: (N,) ints; teacher_logits: (N, C).
    Returns {"rows", "labels", "kinds", "probs": {T: (2, C)}, "ranking": [wrong classes by q],
    "high_t": T, "high_t_ylim": (lo, hi) of the linear panels} (what is drawn).
    """
    plt = pyplot()
    logits = np.asarray(teacher_logits, dtype=np.float64)
    labels = np.asarray(labels)
    ambiguous = ambiguous_rows(logits, labels, 1)[0]
    rows = [confident_row(logits, labels, exclude_label=int(labels[ambiguous])), ambiguous]
    kinds = ["confident", "ambiguous"]
    probs = {t: softmax(logits[rows], t) for t in temperatures}
    low, high = tuple(temperatures[:-1]), temperatures[-1]
    n_classes = logits.shape[1]
    side = image_shape or (int(round(np.sqrt(images.shape[1]))),) * 2
    ranking = [[int(c) for c in np.argsort(-logits[i], kind="stable") if c != labels[i]] for i in rows]
    deviation = probs[high] - 1.0 / n_classes                      # (2, C)
    reach = float(np.abs(deviation).max()) * 1.25
    ylim = (-reach, reach)
    smallest = min(float(probs[t].min()) for t in low)
    floor = 10.0 ** np.floor(np.log10(max(smallest, 1e-300))) / 10.0  # a decade below the smallest bar
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.4), gridspec_kw={"width_ratios": [1, 4, 4]})
    width = 0.8 / len(low)
    for r, i in enumerate(rows):
        ax_img, ax_log, ax_lin = axes[r]
        ax_img.imshow(images[i].reshape(side), cmap="gray_r", interpolation="nearest")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        guess = int(np.argmax(logits[i]))
        ax_img.set_title(f"{kinds[r]}\nlabel {int(labels[i])}, teacher {guess}", fontsize=9)
        for k, t in enumerate(low):
            xs = np.arange(n_classes) + (k - (len(low) - 1) / 2) * width
            ax_log.bar(xs, np.maximum(probs[t][r], floor), width=width, bottom=floor, color=f"C{k}",
                       label=f"T = {t:g}")
        ax_log.set_yscale("log")
        ax_log.set_ylim(floor, 2.0)
        ax_log.set_xticks(range(n_classes))
        ax_log.set_ylabel("q = softmax(v / T)  (log)", fontsize=8)
        order = " > ".join(str(c) for c in ranking[r][:3])
        ax_log.set_title(f"T = {', '.join(f'{t:g}' for t in low)}: the wrong classes rank {order} > ...",
                         fontsize=9)
        ax_log.grid(axis="y", alpha=0.3)
        colors = ["C3" if d < 0 else f"C{len(low)}" for d in deviation[r]]
        ax_lin.bar(np.arange(n_classes), deviation[r], width=0.6, color=colors)
        ax_lin.axhline(0.0, color="black", lw=0.8)
        ax_lin.set_ylim(*ylim)
        ax_lin.set_xticks(range(n_classes))
        ax_lin.set_ylabel(f"q - 1/{n_classes} at T = {high:g}", fontsize=8)
        ax_lin.set_title(f"T = {high:g} (linear): q from {probs[high][r].min():.3f} to "
                         f"{probs[high][r].max():.3f}, same order", fontsize=9)
        ax_lin.grid(axis="y", alpha=0.3)
    for ax in axes[-1][1:]:
        ax.set_xlabel("class")
    fig.suptitle("dark knowledge: the teacher's probabilities for the wrong classes rank the classes "
                 "an image resembles", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    handles, names = axes[0][1].get_legend_handles_labels()
    fig.legend(handles, names, ncol=len(low), fontsize=8, loc="upper right", bbox_to_anchor=(0.99, 0.995),
               frameon=False)
    save_figure(fig, path, dpi=100, tight=False)   # laid out above, before the shared legend
    return {"rows": rows, "labels": [int(labels[i]) for i in rows], "kinds": kinds, "probs": probs,
            "ranking": ranking, "high_t": high, "high_t_ylim": ylim}


# ------------------------------------------------------------------ (c) the T^2 factor
def soft_gradient_norms(student_logits, teacher_logits, temperatures=GRADIENT_TEMPERATURES):
    """Size (Frobenius norm) of the soft term's gradient w.r.t. the student's logits, per T.

    ``distillation_loss`` without labels returns T (p - q) / N, the gradient
    with the T^2 factor; dividing by T^2 gives the unscaled one, (1/T)(p - q) / N.
    Also returns the high-temperature limit of the scaled one, (z - v) / (C N)
    with both logits zero-meaned per row. All in float64.
    """
    z = np.asarray(student_logits, dtype=np.float64)
    v = np.asarray(teacher_logits, dtype=np.float64)
    n, c = z.shape
    scaled, unscaled = [], []
    for t in temperatures:
        _, grad = distillation_loss(z, v, None, temperature=t)
        scaled.append(float(np.linalg.norm(grad)))
        unscaled.append(float(np.linalg.norm(grad / (t * t))))
    zc = z - z.mean(axis=1, keepdims=True)
    vc = v - v.mean(axis=1, keepdims=True)
    limit = float(np.linalg.norm((zc - vc) / (c * n)))
    return {"temperatures": [float(t) for t in temperatures], "scaled": scaled, "unscaled": unscaled,
            "limit": limit, "n": n}


SCALE_TABLE_TEMPERATURES = (1.0, 2.0, 4.0, 6.0, 10.0, 20.0, 50.0, 100.0)


def gradient_scale_lines(g):
    """The numbers behind the gradient-scale figure, as printable lines: the scaled
    gradient's size at a few T, against its value at T = 1 and against the limit."""
    s1 = g["scaled"][0]
    lines = [f"soft gradient with T^2 (N = {g['n']} rows): limit ||(zc - vc)/(C N)|| = {g['limit']:.4g}",
             f"{'T':>6}  {'size':>10}  {'/ size at T=1':>13}  {'/ limit':>8}"]
    for t, size in zip(g["temperatures"], g["scaled"], strict=True):
        lines.append(f"{t:6g}  {size:10.4g}  {size / s1:13.2f}  {size / g['limit']:8.3f}")
    return lines


def gradient_scale_figure(path, student_logits, teacher_logits, temperatures=GRADIENT_TEMPERATURES):
    """Log-log plot of soft_gradient_norms. Returns its dict."""
    plt = pyplot()
    g = soft_gradient_norms(student_logits, teacher_logits, temperatures)
    ts = np.array(g["temperatures"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.loglog(ts, g["scaled"], "o-", color="C0", ms=4, label="with T$^2$:  T (p - q) / N   (what minikd uses)")
    ax.loglog(ts, g["unscaled"], "s-", color="C3", ms=4, label="without:  (1/T)(p - q) / N")
    ax.axhline(g["limit"], color="C0", ls=":", lw=1, label="high-T limit ((z - mean z) - (v - mean v)) / (C N)")
    high = ts >= 4
    ref = g["unscaled"][-1] * (ts[-1] / ts[high]) ** 2
    ax.loglog(ts[high], ref * 1.8, color="gray", ls="--", lw=0.8, label="slope 1/T$^2$ (shifted up)")
    ax.set_ylim(min(g["unscaled"]) / 3, max(max(g["scaled"]), g["limit"]) * 3)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("size of the soft gradient, ||dL/dz||")
    ax.set_title(f"soft gradient of {len(student_logits)} real student/teacher logit pairs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=100)
    return g


# ------------------------------------------------------------------ the models behind the figures
def train(cfg, data, xp, soft_logits=None):
    """Train one stage here (fast path, no checkpoints); returns the trainer."""
    t0 = time.perf_counter()
    trainer = Trainer(cfg, xp, data["x_train"], data["y_train"], data["x_test"], data["y_test"],
                      soft_logits=soft_logits, fast=True)
    trainer.fit(on_epoch=lambda log: None)
    last = trainer.history[-1]
    print(f"{cfg.name}: {cfg.epochs} epochs, {last.test_errors} test errors, "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return trainer


def history_entry(trainer, n_eval):
    """A trainer's history in the shape of a results.json run (for plot_curves, with its "model")."""
    return {"seed": trainer.cfg.seed, "n_eval": n_eval, "test_errors": trainer.history[-1].test_errors,
            "history": [vars(h) for h in trainer.history]}


def _results_checkpoint(results_path, entry):
    """The student checkpoint named in a results.json entry, as written or beside the file."""
    named = Path(entry.get("checkpoint", ""))
    for p in (named, Path(results_path).parent / named.name):
        if named.name and p.is_file():
            return p
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="teacher checkpoint (e.g. runs/reproduce/teacher.npz); its dataset is used. "
                        "Default: train one on scikit-learn's digits")
    p.add_argument("--results", default=None, metavar="JSON",
                   help="results.json of a reproduce.py run, for the learning curves (and its student for "
                        "the gradient figure). Default: train the student and the distilled student here")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="stop every stage trained here after N epochs of the quick profile's schedule "
                        "(default: all of it, 150 / 70 / 70 epochs)")
    p.add_argument("--teacher-width", type=positive_int, default=1200,
                   help="hidden units per layer of a teacher trained here (default 1200, the paper's)")
    p.add_argument("--width", type=positive_int, default=800,
                   help="hidden units per layer of the students trained here (default 800, the paper's)")
    p.add_argument("--init-std", type=positive_float, default=None,
                   help="s.d. of the initial weights of the models trained here (default: the profile's, "
                        "0.01); narrow nets trained for a few epochs learn faster from 0.1")
    p.add_argument("--data-dir", default=None, help="MNIST folder, when --teacher is an MNIST teacher")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="numpy")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the models trained here (default 0)")
    p.add_argument("--out", default="docs", help="folder for the PNGs (default docs)")
    return p.parse_args(argv)


def make_figures(argv=None):
    """Write the four figures; returns a dict of what each one plots (for tests)."""
    args = parse_args(argv)
    xp = pick_backend_or_exit(args.backend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = None
    dataset_name = "digits"
    try:
        if args.teacher:
            teacher, _, header = load_model(args.teacher, xp, flag="--teacher")
            dataset_name = (header.get("meta") or {}).get("dataset") or "digits"
        results = json.loads(Path(args.results).read_text()) if args.results else None
    except CheckpointError as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(f"--results {args.results}: cannot read it as JSON ({exc})")
    if results is not None and results.get("config", {}).get("dataset", dataset_name) != dataset_name:
        fail(f"--results {args.results} is a run on {results['config']['dataset']}, the teacher's data is "
             f"{dataset_name}: pass the results of a run on the same data")
    try:
        dataset = load_dataset(dataset_name, data_dir=args.data_dir)
    except DataError as exc:
        fail(str(exc))
    data = {"x_train": to_float(dataset.x_train, xp), "y_train": to_device(dataset.y_train, xp, dtype=np.int32),
            "x_test": to_float(dataset.x_test, xp), "y_test": to_device(dataset.y_test, xp, dtype=np.int32)}
    cfgs = stage_configs("quick", dataset, seed=args.seed)
    if args.epochs is not None:  # the first N epochs of the quick schedule (not the schedule squeezed into N)
        cfgs = {k: replace(c, epochs=min(c.epochs, args.epochs)) for k, c in cfgs.items()}
    d, c = dataset.n_features, dataset.n_classes
    cfgs["teacher"] = replace(cfgs["teacher"], sizes=(d, args.teacher_width, args.teacher_width, c))
    for k in ("student", "distilled"):
        cfgs[k] = replace(cfgs[k], sizes=(d, args.width, args.width, c))
    if args.init_std is not None:
        cfgs = {k: replace(c, init_std=args.init_std) for k, c in cfgs.items()}
    trainers = {}
    if teacher is None:
        trainers["teacher"] = train(cfgs["teacher"], data, xp)
        teacher = trainers["teacher"].model
    student = None
    if results is not None and "student" in results.get("models", {}):
        ckpt = _results_checkpoint(args.results, results["models"]["student"])
        if ckpt is not None:
            student = load_model(ckpt, xp, flag="--results' student")[0]
    if results is None:
        trainers["student"] = train(cfgs["student"], data, xp)
        soft = teacher_logits(teacher, data["x_train"])
        trainers["distilled"] = train(cfgs["distilled"], data, xp, soft_logits=soft)
    if student is None:
        student = (trainers.get("student") or train(cfgs["student"], data, xp)).model

    x_test = to_host(data["x_test"])
    v_test = to_host(predict_logits(teacher, data["x_test"]))
    z_test = to_host(predict_logits(student, data["x_test"]))
    made = {
        "softmax_temperature": softmax_temperature_figure(out / FIGURES[0]),
        "dark_knowledge": dark_knowledge_figure(out / FIGURES[1], x_test, dataset.y_test, v_test,
                                                image_shape=dataset.image_shape),
        "gradient_scale": gradient_scale_figure(out / FIGURES[2], z_test, v_test),
    }
    if results is not None:
        runs, eval_name = results["runs"], results["config"].get("evaluated_on", "test")
    else:
        n_eval = len(dataset.y_test)
        runs, eval_name = [{"model": k, **history_entry(t, n_eval)} for k, t in trainers.items()], "test"
    made["paths"] = [out / name.format(dataset=dataset_name) for name in FIGURES]
    plot_curves(runs, made["paths"][3], eval_name, dataset=dataset_name)
    made["learning_curves"] = {}
    for r in runs:   # each model's first run
        made["learning_curves"].setdefault(r["model"], [h["test_errors"] for h in r["history"]])
    made["teacher_logits"], made["student_logits"] = v_test, z_test
    table = soft_gradient_norms(z_test, v_test, SCALE_TABLE_TEMPERATURES)
    made["gradient_scale_table"] = table
    print("\n".join(gradient_scale_lines(table)))
    dark = made["dark_knowledge"]
    for kind, row, label, q1 in zip(dark["kinds"], dark["rows"], dark["labels"], dark["probs"][1.0], strict=True):
        print(f"dark knowledge, {kind}: test image {row}, label {label}, q at T = 1: "
              + " ".join(f"{c}:{q1[c]:.1e}" for c in np.argsort(-q1, kind="stable")))
    for path in made["paths"]:
        print(path)
    return made


def main(argv=None):
    make_figures(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
