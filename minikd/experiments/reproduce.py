"""Reproduce the MNIST table of Hinton, Vinyals & Dean (2015), section 3.

    teacher            784-1200-1200-10, dropout, max-norm, +-2 pixel jitter   paper: 67 errors
    student            784-800-800-10, hard labels only                        paper: 146
    distilled student  784-800-800-10, hard labels + teacher soft targets T=20 paper: 74

    python scripts/reproduce.py                      # quick profile, MNIST, ~30 min on 2 CPU cores
    python scripts/reproduce.py --backend cupy --profile paper   # the full 3,000-epoch schedule

Everything is written to --out: results.json, one checkpoint per model,
learning_curves.png. --resume continues an interrupted run.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path


from ..train import teacher_logits
from .args import (check_loss_weights, data_flags, decay_factor, fail, grad_bound_flags, loss_flags,
                   positive_float, positive_int, shared_flags, with_grad_bound)
from .profiles import EPOCHS, PROFILES, deviations_from_paper, describe_deviations, mnist_configs
from .report import finish_axes, print_table, pyplot, save_figure, write_json
from .results import PAPER_TABLE, SEED_REPRO_TABLE, environment_info, soft_targets_sha256
from .stage import (STAGE_ALIASES, STAGES, StageRunError, checkpoint_path, prepare_arrays, refuse_overwrite,
                    run_command, run_meta, run_stage, stage_configs)



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=profiles_epilog(),
                                parents=[data_flags(default_out="runs/reproduce"), loss_flags(), grad_bound_flags(),
                                         shared_flags("--lr-warmup", "--validation", "--no-fast")])
    p.add_argument("--profile", choices=PROFILES, default="quick",
                   help="quick: the 2012 recipe with fewer epochs, for a 2-core CPU (default); paper: the paper's "
                        "3,000 epochs and schedules; demo: the quick profile's first epochs, its students on the "
                        "first 2,000 images (a few minutes). None is the paper's recipe unchanged: every departure "
                        "is listed at the end of this help and in results.json (deviations_from_paper)")
    p.add_argument("--stages", default="teacher,student,distilled",
                   help="comma-separated subset of teacher,student,distilled (default: all; 'distill' "
                        "is accepted for distilled). distilled without teacher reuses the teacher saved in --out")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the number of epochs of every stage")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training images (smoke runs)")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="train the student and the distilled student with this many seeds "
                        "(--seed, --seed+1, ...); the teacher is trained once")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="initial learning rate eps_0 for every stage (default: profile's, 1 for every stage except "
                        "the quick profile's teacher, 0.7; the paper says 10, public code used 1)")
    p.add_argument("--lr-decay", type=decay_factor, default=None,
                   help="per-epoch factor of the learning rate for every stage, 0 < d <= 1 (default: profile's; quick "
                        "compresses the paper's 0.998^3000 fall into the stage's epochs)")
    p.add_argument("--max-norm", type=positive_float, default=15.0,
                   help="the teacher's max-norm limit as the paper states it (default 15)")
    p.add_argument("--max-norm-on", choices=("squared", "length"), default="squared",
                   help="what --max-norm bounds: the squared length of each hidden unit's incoming weight "
                        "vector (default; length <= sqrt(15)) or the length itself")
    p.add_argument("--resume", action="store_true",
                   help="continue each stage from its checkpoint in --out (finished stages are reused)")
    p.add_argument("--overwrite", action="store_true",
                   help="train the chosen stages from scratch even where --out holds their checkpoints "
                        "(without it, or --resume, a run that would replace one stops before training)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None,
                   help="epochs between checkpoints (default: 10 for paper, 1 for the others)")
    p.add_argument("--eval-every", type=positive_int, default=None,
                   help="epochs between test evaluations (default: 10 for paper, 1 for the others)")
    args = p.parse_args(argv)
    stages = [STAGE_ALIASES.get(s.strip(), s.strip()) for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        p.error(f"--stages: unknown stage(s) {', '.join(bad) or '(none)'}; choose from {', '.join(STAGES)}")
    args.stages = [s for s in STAGES if s in stages]
    if "distilled" in args.stages:
        check_loss_weights(p, args.hard_weight, args.soft_weight)
    if args.resume and args.overwrite:
        p.error("--resume continues the checkpoints in --out, --overwrite replaces them: choose one")
    return args


def profiles_epilog():
    """Every profile's departures from the paper, as --help prints them (MNIST's shapes)."""
    parts = ["Where each profile departs from the paper (Hinton et al. 2012 appendix A, 2015 section 3), "
             "or chooses where it is silent:"]
    for name in PROFILES:
        parts.append(f"--profile {name}:\n" + describe_deviations(deviations_from_paper(mnist_configs(name))))
    return "\n\n".join(parts)


def load_previous_results(path, config):
    """results.json already in --out from a run on the same data, or {}.

    A stage run alone (e.g. ``--stages distilled`` after the teacher) keeps the
    other models' entries, so the final table shows all three.
    """
    import json
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    same = all(old.get("config", {}).get(k) == config[k]
               for k in ("profile", "dataset", "n_train", "evaluated_on", "n_eval"))
    return old if same else {}


MNIST_TRAIN_IMAGES = 60000


def comparable_with_paper(dataset, eval_name, models=None, profile="quick"):
    """True when a run's error counts are on the paper's footing: MNIST's 10,000 test images,
    every model trained on all 60,000 training images for its profile's own epochs. Digits, an
    idx folder, the validation split, a --train-size subset or a shortened --epochs run count
    other errors, so the paper's 67 / 146 / 74 (and the seed reproduction's) would only mislead
    beside them."""
    if dataset != "mnist" or eval_name != "test":
        return False
    return all(m.get("train_size") == MNIST_TRAIN_IMAGES and m.get("epochs") == EPOCHS[profile][key]
               for key, m in (models or {}).items())


def print_results(models, eval_name, dataset="mnist", profile="quick"):
    """The final table; the published columns only where comparable_with_paper."""
    published = comparable_with_paper(dataset, eval_name, models, profile)
    rows = [("model", f"{eval_name} errors", "error %") + (("paper", "seed repro") if published else ())]
    n_eval = None
    for key, label in (("teacher", "teacher"), ("student", "student"), ("distilled", "distilled student")):
        if key not in models:
            continue
        m = models[key]
        n_eval = m["n_eval"]
        errs = m.get("test_errors_all_seeds", [m["test_errors"]])
        row = (label, " / ".join(str(e) for e in errs), " / ".join(f"{100.0 * e / m['n_eval']:.2f}" for e in errs))
        if published:
            row += (str(PAPER_TABLE[key]), str(SEED_REPRO_TABLE[key]))
        rows.append(row)
    print_table(rows)
    if not published:
        where = f"{n_eval} {dataset} {eval_name} images" if n_eval is not None else f"{dataset} {eval_name} images"
        print(f"errors out of {where}; the paper's figures count errors on MNIST's 10,000 test images "
              f"after training on all 60,000 for the profile's own epochs, so they are not comparable and "
              f"are not shown")


def plot_curves(models, path, eval_name, dataset="mnist", profile="quick"):
    """Errors per epoch of each model (log scale); the paper's numbers as dashed
    lines only where comparable_with_paper."""
    plt = pyplot()
    published = comparable_with_paper(dataset, eval_name, models, profile)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"teacher": "C0", "student": "C1", "distilled": "C2"}
    for key, m in models.items():
        pts = [(h["epoch"] + 1, h["test_errors"]) for h in m["history"] if h["test_errors"] >= 0]
        if pts:
            ax.plot(*zip(*pts), color=colors[key], label=f"{key} (seed {m['seed']})")
        if published:
            ax.axhline(PAPER_TABLE[key], color=colors[key], ls="--", lw=0.8,
                       label=f"paper {key}: {PAPER_TABLE[key]}")
    ax.set_xlabel("epoch")
    n_eval = next((m["n_eval"] for m in models.values() if "n_eval" in m), None)
    ax.set_ylabel(f"{eval_name} errors" + (f" (of {n_eval:,})" if n_eval else ""))
    ax.set_yscale("log")
    finish_axes(ax, f"minikd: learning curves ({dataset})")
    save_figure(fig, path, dpi=110)


def main(argv=None):
    args = parse_args(argv)
    return run_command(args, lambda xp, dataset: _run(args, argv, xp, dataset),
                       how_to_continue="rerun the same command with --resume to continue")


def _run(args, argv, xp, dataset):
    out = Path(args.out)
    cfgs = stage_configs(args.profile, dataset, epochs=args.epochs, seed=args.seed, temperature=args.temperature,
                         hard_weight=args.hard_weight, soft_weight=args.soft_weight, lr=args.lr,
                         lr_warmup=args.lr_warmup, lr_decay=args.lr_decay, max_norm=args.max_norm,
                         max_norm_on=args.max_norm_on)
    cfgs["distilled"] = with_grad_bound(cfgs["distilled"], args.grad_bound)
    every = 10 if args.profile == "paper" else 1
    # Each stage's training images: --train-size, else the profile's (the demo's students: the first 2,000), else all.
    rows = {stage: args.train_size if args.train_size is not None else
            (min(c.extra["train_rows"], len(dataset.y_train)) if c.extra.get("train_rows") else None)
            for stage, c in cfgs.items()}
    try:
        by_rows = {n: prepare_arrays(dataset, xp, train_size=n, validation=args.validation) for n in set(rows.values())}
    except ValueError as exc:
        fail(str(exc))
    arrays_of = {stage: by_rows[n] for stage, n in rows.items()}
    arrays = arrays_of["distilled"]   # the transfer set, whose size results.json's config reports
    run_kw = dict(out=out, resume=args.resume, fast=not args.no_fast, overwrite=args.overwrite,
                  checkpoint_every=every if args.checkpoint_every is None else args.checkpoint_every,
                  eval_every=every if args.eval_every is None else args.eval_every)

    def stage_kw(stage):
        """run_stage's keywords for ``stage``: its images and the meta its checkpoint records."""
        return dict(run_kw, meta=run_meta(dataset, train_size=rows[stage], validation=args.validation,
                                          profile=args.profile))

    def with_seed(stage, seed):
        return replace(cfgs[stage], seed=seed)

    def seeds_of(stage):
        return [args.seed] if stage == "teacher" else [args.seed + i for i in range(args.seeds)]

    try:  # before any training: a rerun must not replace finished checkpoints by accident
        refuse_overwrite([checkpoint_path(out, with_seed(stage, seed)) for stage in args.stages
                          for seed in seeds_of(stage)], resume=args.resume, overwrite=args.overwrite)
    except StageRunError as exc:
        fail(str(exc))
    results_path = out / "results.json"
    results = {"models": {}, "config": {
        "argv": sys.argv[1:] if argv is None else list(argv), "profile": args.profile,
        "dataset": dataset.name, "data_source": dataset.source, "n_train": arrays["n_train"],
        "evaluated_on": arrays["eval_name"], "n_eval": arrays["n_eval"], "seeds": args.seeds,
        "stages": {k: cfgs[k].to_dict() for k in args.stages},
    }, "deviations_from_paper": deviations_from_paper(cfgs), "environment": environment_info(xp),
        "paper": PAPER_TABLE, "seed_reproduction": SEED_REPRO_TABLE}
    previous = load_previous_results(results_path, results["config"])
    for key, entry in previous.get("models", {}).items():
        if key not in args.stages:
            results["models"][key] = entry  # a stage run earlier into the same --out
            results["config"]["stages"].update(
                {k: v for k, v in previous["config"].get("stages", {}).items() if k == key})
    t_start = time.time()
    soft = None   # the teacher's soft targets, once the teacher is trained or loaded
    try:
        for stage in args.stages:
            if stage == "distilled" and soft is None:   # the teacher saved in --out
                teacher = run_stage(cfgs["teacher"], arrays_of["teacher"], xp, reuse_only=True, **stage_kw("teacher"))
                soft = soft_targets(teacher[0].model, arrays["x_train"])
                name_the_loaded_teacher(results["models"].get("teacher"), teacher[1]["checkpoint"], soft)
            runs = []
            for seed in seeds_of(stage):
                trainer, entry = run_stage(with_seed(stage, seed), arrays_of[stage], xp,
                                           soft_logits=soft.logits if stage == "distilled" else None,
                                           **stage_kw(stage))
                runs.append(entry)
            if stage == "teacher":   # on the transfer set: the distilled student's training images
                soft = soft_targets(trainer.model, arrays["x_train"])
            entry = dict(runs[0])
            if len(runs) > 1:
                entry["test_errors_all_seeds"] = [r["test_errors"] for r in runs]
                entry["test_errors_mean"] = sum(entry["test_errors_all_seeds"]) / len(runs)
                entry["seeds"] = [{k: r[k] for k in ("seed", "test_errors", "sec_per_epoch", "wall_seconds")}
                                  for r in runs]
            if stage == "teacher":   # which soft targets this teacher gives; a distilled row names the same hash
                entry["soft_targets_sha256"] = soft.sha256
            if stage == "distilled":
                entry["teacher_soft_targets_sha256"] = soft.sha256
            results["models"][stage] = entry
            drop_rows_of_another_teacher(results["models"], args.stages, results_path)
            results["wall_seconds_this_run"] = time.time() - t_start
            write_json(results_path, results)
    except StageRunError as exc:
        fail(str(exc))
    print_results(results["models"], arrays["eval_name"], dataset=dataset.name, profile=args.profile)
    plot_curves(results["models"], out / "learning_curves.png", arrays["eval_name"], dataset=dataset.name,
                profile=args.profile)
    print(f"wall time of this run {results['wall_seconds_this_run'] / 60:.1f} min; results in {results_path}")
    return 0


class SoftTargets:
    """A teacher's logits on the transfer set (device array ``logits``) and their SHA-256."""

    def __init__(self, logits):
        self.logits, self.sha256 = logits, soft_targets_sha256(logits)


def soft_targets(teacher_model, x_transfer):
    """The teacher's soft targets (computed once, eval mode, un-jittered images) and their hash."""
    t0 = time.perf_counter()
    soft = SoftTargets(teacher_logits(teacher_model, x_transfer))
    print(f"teacher soft targets for {soft.logits.shape[0]} training images: {time.perf_counter() - t0:.1f} s "
          f"(computed once; sha256 {soft.sha256[:16]}...)", file=sys.stderr)
    return soft


def name_the_loaded_teacher(row, checkpoint, soft):
    """A teacher row carried from a results.json written before minikd recorded soft-target hashes
    names none; when it describes the very checkpoint this run loaded, its hash is this run's."""
    if row is not None and "soft_targets_sha256" not in row and row.get("checkpoint") == checkpoint:
        row["soft_targets_sha256"] = soft.sha256


def drop_rows_of_another_teacher(models, trained_now, results_path):
    """A table must not mix a distilled student with a teacher that did not teach it.

    When results.json's teacher and distilled rows name different soft targets (or an older
    distilled row names none), the row carried over from an earlier run is dropped -- the table
    starts again for it -- and one line on stderr says so."""
    teacher, distilled = models.get("teacher"), models.get("distilled")
    if teacher is None or distilled is None:
        return
    if distilled.get("teacher_soft_targets_sha256") == teacher.get("soft_targets_sha256") is not None:
        return
    carried = [key for key in ("teacher", "distilled") if key not in trained_now]
    if len(carried) != 1:   # both trained now share one teacher by construction; both carried were checked then
        return
    stale = carried[0]
    key = "soft_targets_sha256" if stale == "teacher" else "teacher_soft_targets_sha256"
    why = ("names no teacher (it was written before minikd recorded them)" if key not in models[stale]
           else "learned from (or is) another teacher than this run's")
    del models[stale]
    print(f"{results_path}: the {stale} row from an earlier run {why}, so it is dropped from the table; "
          f"train it again (--stages {stale}) to fill it", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
