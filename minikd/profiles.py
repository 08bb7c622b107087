"""Profiles: named training budgets, each turned into the StageConfigs of its three stages.

    import minikd
    cfgs = minikd.profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8))
    cfgs["teacher"], cfgs["student"], cfgs["distilled"]      # StageConfigs, safeguards included

Every profile starts from the training recipe the 2015 paper points to, Hinton et al. (2012,
arXiv:1207.0580, appendix A): batch 100, eps_t = eps_0 * 0.998^t, momentum 0.5 -> 0.99 over 500
epochs, 3,000 epochs, max-norm 15, dropout and jitter for the teacher. Section 3 of the 2015 paper
itself states the architectures, the dropout, the weight constraint, the jitter, T = 20 and the
error counts. No profile is that recipe unchanged: ``PAPER_RECIPE`` holds its settings and
``deviations_from_paper`` lists, for any set of configs, every setting where minikd departs from
it or chooses where it is silent, with the reason and which paper states the value
(``minikd deviations`` prints them).

``paper`` keeps the recipe's budget and schedules and departs only where the recipe's setting was
measured to fail here. ``quick`` fits a 2-core CPU: fewer epochs, with the learning-rate fall and
the momentum ramp laid over each stage's epochs in proportion. ``demo`` is a first run of a few
minutes that shows distillation working: the quick profile's first epochs (teacher 8, students
30), its students learning from only the first 2,000 training images, where soft targets matter
most.

``epochs=N`` shortens (or lengthens) a stage without squeezing its schedules: they are laid over
max(N, the profile's own epochs), so a 2-epoch run follows the first two epochs of the profile's
schedule instead of the whole 3,000-epoch fall crammed into two (where momentum would jump from
0.5 to 0.99 while eps falls 20x, and the run would not learn).

Every profile's distilled stage carries the two safeguards (``DISTILL_GRAD_BOUND``,
``DISTILL_WARMUP``): a StageConfig built by hand carries only what it is given.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .train import StageConfig

PROFILES = ("quick", "paper", "demo")

#: The distilled stage bounds each row's ||dL/dlogits|| (times N) by this: the length of a
#: hard label's gradient at initialisation, sqrt(1 - 1/C) ~ 0.95, rounded up. No row then
#: pushes the student harder than a hard label does at the start, whatever the teacher's
#: logit range; rows closer to the teacher than that get the paper's gradient unchanged.
DISTILL_GRAD_BOUND = 1.0

#: The distilled stage's linear learning-rate warm-up (epoch 0 at eps_0 / 8), in epochs.
DISTILL_WARMUP = 7

#: Each profile's epochs per stage.
EPOCHS = {"quick": {"teacher": 150, "student": 70, "distilled": 70},
          "paper": {"teacher": 3000, "student": 3000, "distilled": 3000},
          "demo": {"teacher": 8, "student": 30, "distilled": 30}}

#: Each profile's eps_0 per stage (docs/choices.md has the runs behind them).
LEARNING_RATES = {"quick": {"teacher": 0.7, "student": 1.0, "distilled": 1.0},
                  "paper": {"teacher": 1.0, "student": 1.0, "distilled": 1.0},
                  "demo": {"teacher": 0.7, "student": 1.0, "distilled": 1.0}}

#: The demo runs the first epochs of the quick profile's schedules: its stages are the quick
#: profile's, cut short (a profile not named here lays its schedules over its own epochs).
SCHEDULES_OF = {"demo": "quick"}

#: The demo's students (plain and distilled) learn from the first 2,000 training images only,
#: where soft targets matter most (the paper's speech experiment kept 3% of its data); its
#: teacher learns from all of them. Other profiles train every stage on the same images.
STUDENT_TRAIN_ROWS = {"demo": 2000}

#: What the paper's recipe fixes (Hinton et al. 2012, appendix A; 2015, section 3).
PAPER_RECIPE = {"epochs": 3000, "lr": 10.0, "lr_decay": 0.998, "momentum_ramp": 500, "batch_size": 100,
                "momentum": (0.5, 0.99), "temperature": 20.0}


def default_jitter(image_shape):
    """The teacher's jitter in pixels for images of ``image_shape``: the paper's 2 on MNIST's 28x28,
    in proportion to the smaller side elsewhere, and at least 1 (8x8 digits: 1)."""
    return max(1, round(2 * min(int(d) for d in image_shape) / 28))


def schedule_length(profile, stage, epochs):
    """The number of epochs a stage's schedules are laid over: the profile's own, or ``epochs`` if longer.

    Never fewer than the profile's own epochs, so ``--epochs 2`` runs the first two epochs of the
    profile's schedule rather than all of it squeezed into two."""
    own = EPOCHS[SCHEDULES_OF.get(profile, profile)][stage]
    return own if epochs is None else max(int(epochs), own)


def profile_configs(profile, *, n_features, n_classes, image_shape, epochs=None, seed=0,
                    temperature=20.0, hard_weight=None, soft_weight=1.0, lr=None, lr_warmup=None, lr_decay=None,
                    max_norm=15.0, max_norm_on="squared", jitter=None, schedule_epochs=None, warmup_epochs=None,
                    grad_bound=DISTILL_GRAD_BOUND):
    """StageConfig for "teacher", "student" and "distilled" under ``profile``, as a dict.

    n_features, n_classes, image_shape: the data's input length D, class count C and (H, W).
    jitter: the teacher's largest translation in pixels; default: the paper's 2 pixels on 28x28
    images, scaled to the image's size (1 pixel on 8x8 digits).
    grad_bound / lr_warmup: the distilled stage's per-row gradient bound and warm-up epochs
    (default: ``DISTILL_GRAD_BOUND`` and ``DISTILL_WARMUP``; ``grad_bound=None`` turns the bound
    off). warmup_epochs: lay the warm-up over this many epochs when the schedules are squeezed
    (``schedule_epochs``), see ``squeezed_warmup``.

    epochs: every stage's epochs (default: the profile's); its schedules are laid over
    ``schedule_length`` epochs, or over ``schedule_epochs`` when given (the section-3 scripts
    compress the quick schedule into their shorter budget on purpose).
    max_norm / max_norm_on: the paper's limit and what it bounds. "squared"
    reads 15 as a bound on the squared length (length <= sqrt(15) = 3.87, as
    public code did); "length" bounds the length itself by 15.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if jitter is None:
        jitter = default_jitter(image_shape)
    if max_norm_on not in ("squared", "length"):
        raise ValueError(f"--max-norm-on must be 'squared' or 'length', got {max_norm_on!r}")
    limit = float(np.sqrt(max_norm)) if max_norm_on == "squared" else float(max_norm)
    lrs = dict(LEARNING_RATES[profile]) if lr is None else dict.fromkeys(EPOCHS[profile], float(lr))
    e = dict(EPOCHS[profile]) if epochs is None else dict.fromkeys(EPOCHS[profile], int(epochs))
    # The distillation hard weight, chosen at the quick budget and used by every profile.
    hw = 1.0 if hard_weight is None else hard_weight

    def schedule(stage):
        """(lr_decay, momentum_ramp) for the stage."""
        length = schedule_epochs if schedule_epochs is not None else schedule_length(profile, stage, epochs)
        if SCHEDULES_OF.get(profile, profile) == "paper":
            decay, ramp = 0.998, 500.0
        else:
            # The quick profile keeps the paper's total fall of eps, 0.998^3000 ~ 1/400, and its
            # ramp's share of the run, 500/3000 = 1/6, over its own schedule's length.
            decay, ramp = float(0.998 ** (3000.0 / max(length, 1))), max(1.0, length / 6.0)
        return dict(lr_decay=float(lr_decay) if lr_decay is not None else decay, momentum_ramp=ramp)

    sizes_t = (n_features, 1200, 1200, n_classes)
    sizes_s = (n_features, 800, 800, n_classes)
    common = dict(image_shape=tuple(image_shape), seed=seed, batch_size=100, momentum_start=0.5,
                  momentum_end=0.99, rule="hinton2012")
    teacher = StageConfig("teacher", sizes_t, e["teacher"], input_dropout=0.2, hidden_dropout=0.5,
                          max_norm=limit, jitter=jitter, lr=lrs["teacher"], **schedule("teacher"), **common)
    rows = STUDENT_TRAIN_ROWS.get(profile)
    student = StageConfig("student", sizes_s, e["student"], lr=lrs["student"], **schedule("student"), **common,
                          extra={"train_rows": rows} if rows else {})
    # At T = 20 the T^2-scaled soft gradient of a row is about ||v - mean(v)|| / C, set by the
    # teacher's logit range, where a hard label's is at most sqrt(2) and shrinks as the student
    # fits; at full rate in the first epochs that kills the student's ReLUs. Each row's logit
    # gradient is bounded by DISTILL_GRAD_BOUND, so no teacher can make the step larger than a
    # hard label's; the 7-epoch linear warm-up, chosen on MNIST's validation split, is kept for
    # accuracy (docs/stability.md).
    distill_warmup = DISTILL_WARMUP if warmup_epochs is None else int(warmup_epochs)
    if lr_warmup is not None:
        student = replace(student, lr_warmup=int(lr_warmup))
        distill_warmup = int(lr_warmup)
    distill = replace(student, name="distilled", epochs=e["distilled"], lr=lrs["distilled"],
                      lr_warmup=distill_warmup, **schedule("distilled"),
                      temperature=float(temperature), hard_weight=float(hw),
                      soft_weight=float(soft_weight),
                      grad_bound=None if grad_bound is None else float(grad_bound))
    return {"teacher": teacher, "student": student, "distilled": distill}


def _fmt(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


def deviations_from_paper(cfgs):
    """Every setting of ``cfgs`` (stage -> StageConfig) where minikd departs from the paper's recipe
    or chooses where the paper is silent: a list of {setting, paper, source, ours, why}, in stage order.
    ``paper`` is the recipe's value; ``source`` says which paper states it: "2015" (Hinton, Vinyals &
    Dean, section 3), "2012" (Hinton et al., appendix A, the recipe the 2015 paper trained with; stated
    there for the teacher's kind of net and assumed here for the students) or "neither".

    Built from the configs themselves, so flags that change a setting (--lr, --epochs, ...) show."""
    rows = []

    def add(setting, paper, source, ours, why):
        rows.append({"setting": setting, "paper": paper, "source": source, "ours": ours, "why": why})

    for stage, c in cfgs.items():
        if c.epochs != PAPER_RECIPE["epochs"]:
            add(f"{stage}: epochs", "3000", "2012", str(c.epochs), EPOCHS_WHY.get((stage, c.epochs), "set by --epochs"))
        if c.lr_decay != PAPER_RECIPE["lr_decay"] or c.momentum_ramp != PAPER_RECIPE["momentum_ramp"]:
            add(f"{stage}: schedules", "eps_t = eps_0 * 0.998^t; momentum 0.5 -> 0.99 over 500 epochs", "2012",
                f"eps_t = eps_0 * {c.lr_decay:.6g}^t; momentum 0.5 -> 0.99 over {c.momentum_ramp:.3g} epochs",
                "the paper's total fall of eps (0.998^3000) and its ramp's share of the run (1/6), laid over a "
                "shorter budget: the stage's own epochs (quick), or the quick profile's, of which the demo runs "
                "the first")
        if c.lr != PAPER_RECIPE["lr"]:
            add(f"{stage}: eps_0", "10", "2012", _fmt(c.lr), LR_WHY.get((stage, c.lr), "set by --lr"))
        if c.lr_warmup:
            add(f"{stage}: learning-rate warm-up", "none", "neither", f"linear over {c.lr_warmup} epochs",
                "without it the distilled student exploded (no bound) or died (bound only) in its first "
                "epochs here, under the paper's schedule; 7 epochs chosen on the validation split "
                "(docs/choices.md)" if stage == "distilled" else "set by --lr-warmup")
        if c.grad_bound is not None:
            add(f"{stage}: per-row gradient bound", "none", "neither",
                f"each row's ‖dL/dlogits‖ · N <= {c.grad_bound:g}",
                "a confident teacher's T^2-scaled soft gradient blows up a student at the start: with the "
                "warm-up alone the distilled student's loss went NaN in epoch 5 here, under the paper's "
                "schedule; the bound keeps no row's push above a hard label's (docs/stability.md, "
                "docs/choices.md)")
        if c.temperature != PAPER_RECIPE["temperature"] and stage == "distilled":
            add(f"{stage}: temperature", "20", "2015", _fmt(c.temperature), "set by --temperature")
        if c.extra.get("train_rows"):
            add(f"{stage}: training images", "all 60,000 (the teacher's too)", "2015",
                f"the first {c.extra['train_rows']:,}; the teacher learns from all 60,000",
                "the demo: a small transfer set, where soft targets matter most, so that a run of a few minutes "
                "shows distillation's gain; the teacher saw more labelled data than its students")
        if stage == "distilled":
            add(f"{stage}: hard-label weight (paper: open)", "'considerably lower' than the soft term's; no number",
                "2015", _fmt(c.hard_weight), "chosen on the validation split: 1 beat 0.1, 0.3 and 3 (docs/choices.md)")
        if c.max_norm is not None:
            add(f"{stage}: what max-norm 15 bounds (paper: open)", "'15'; squared or not, bias or not unstated",
                "2015 (a constraint), 2012 (15)",
                f"each hidden unit's incoming weight length <= {c.max_norm:.4g}, bias excluded",
                "public code read 15 as the squared length (c = 3.87), as the 2014 dropout paper advises "
                "c ~ 3-4; both readings gave identical validation curves (docs/choices.md)")
        if c.jitter:
            add(f"{stage}: how the jitter is done (paper: open)", "'jittered by up to 2 pixels in any direction'",
                "2015",
                f"each image of each batch translated by its own random (dy, dx) in [-{c.jitter}, {c.jitter}], "
                f"zero fill", "one reading of the paper's sentence (minikd/data/augment.py)")
    return rows


#: Why a profile's epochs are not the paper's 3,000, by (stage, epochs).
EPOCHS_WHY = {**{(stage, n): "a budget a 2-core CPU runs in about half an hour; epochs chosen on the validation "
                             "split (docs/choices.md)" for stage, n in EPOCHS["quick"].items()},
              **{(stage, n): "the demo: a first run of a few minutes on a 2-core CPU (the quick profile's first "
                             "epochs)" for stage, n in EPOCHS["demo"].items()}}

#: Why a profile's eps_0 is not the paper's 10, by (stage, eps_0).
LR_WHY = {
    ("teacher", 1.0): "eps_0 = 10 made the teacher's loss explode in its first epoch here, under the paper's "
                      "schedule; 1 is public Theano code's value (docs/choices.md, the paper profile)",
    ("teacher", 0.7): "eps_0 = 10 made the teacher's loss explode in its first epoch here; at 150 epochs 0.7 "
                      "beat 1 on the validation split (docs/choices.md)",
    ("student", 1.0): "eps_0 = 10 gave the student a NaN loss in its first epoch here (docs/choices.md, the "
                      "paper profile)",
    ("distilled", 1.0): "eps_0 = 10 killed the distilled student in its first epoch here, with or without the "
                        "row bound and warm-up (docs/choices.md, the paper profile)",
}


def describe_deviations(rows):
    """The list as text: one line per deviation (``minikd deviations``)."""
    return "\n".join(f"  {r['setting']}: paper {r['paper']} ({_stated(r['source'])}); ours {r['ours']} -- {r['why']}"
                     for r in rows)


def _stated(source):
    return "stated by neither paper" if source == "neither" else f"stated in {source}"


def mnist_configs(profile):
    """``profile``'s StageConfigs on MNIST's shapes: what --help, README and the tests describe."""
    return profile_configs(profile, n_features=784, n_classes=10, image_shape=(28, 28))


def deviations_markdown():
    """Every profile's departures as one Markdown table (docs/render_results.py places it in the docs):
    a row per setting, the recipe's value and which paper states it, a column per profile; "as the
    paper" where a profile keeps it."""
    lists = {name: deviations_from_paper(mnist_configs(name)) for name in PROFILES}
    settings, paper = [], {}
    for rows in lists.values():
        for r in rows:
            if r["setting"] not in paper:
                settings.append(r["setting"])
                paper[r["setting"]] = (r["paper"], r["source"])
    ours = {name: {r["setting"]: r["ours"] for r in rows} for name, rows in lists.items()}
    lines = ["| setting | Hinton et al. 2015, with the 2012 recipe | stated in | "
             + " | ".join(f"`{name}`" for name in PROFILES) + " |",
             "|---" * (len(PROFILES) + 3) + "|"]
    for setting in settings:
        cells = [ours[name].get(setting, "as the paper") for name in PROFILES]
        value, source = paper[setting]
        lines.append(f"| {setting} | {value} | {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
