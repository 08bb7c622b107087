"""Reproduce the MNIST table of Hinton, Vinyals & Dean (2015), section 3.

    teacher            784-1200-1200-10, dropout, max-norm, +-2 pixel jitter   paper: 67 errors
    student            784-800-800-10, hard labels only                        paper: 146
    distilled student  784-800-800-10, hard labels + teacher soft targets T=20 paper: 74

    python scripts/reproduce.py                              # quick profile, MNIST
    python scripts/reproduce.py --teacher-seeds 3 --seeds 1  # three teachers, a paired student pair each
    python scripts/reproduce.py --teacher runs/a/teacher.npz --stages student,distilled

Everything goes to --out: results.json (every run, the summary over seeds, the paired
gain, the environment), one checkpoint per model, learning_curves.png. --resume
continues an interrupted run. No profile is the paper's recipe unchanged: `minikd
deviations PROFILE` lists every departure, and results.json records them.

A student the health check stops is no row of the table: the other seeds still train,
results.json keeps it under `failures` with its message, and the command exits 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path


from ..checkpoints import CheckpointError, load_teacher
from ..engine.backend import to_host
from ..profiles import PROFILES, deviations_from_paper
from ..train import count_test_errors, teacher_logits
from .args import (check_loss_weights, data_flags, decay_factor, fail, grad_bound_flags, loss_flags,
                   positive_float, positive_int, shared_flags, with_grad_bound)
from .report import write_json
from .results import PAPER_TABLE, environment_info, finished_now, soft_targets_sha256
from .stage import STAGES, StageDiverged, StageRunError, prepare_arrays, refuse_overwrite, run_command, run_meta, \
    run_stage, stage_configs
from .reproduce_table import LABELS, legacy_models, paired_runs, plot_curves, print_results, summarize

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[data_flags(default_out="runs/reproduce"), loss_flags(), grad_bound_flags(),
                                         shared_flags("--lr-warmup", "--validation", "--no-fast")])
    p.add_argument("--profile", choices=PROFILES, default="quick",
                   help="quick: the recipe with fewer epochs, for a CPU (default); paper: its 3,000 epochs; "
                        "demo: the quick profile's first epochs, students on 2,000 images (minutes)")
    p.add_argument("--stages", default=None,
                   help="a subset of teacher,student,distilled (default: all, or student,distilled with "
                        "--teacher); without teacher, the teacher comes from --teacher or from --out")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="distil from this trained teacher checkpoint instead of training one")
    p.add_argument("--teacher-seeds", type=positive_int, default=1, metavar="J",
                   help="train J teachers, seeds --seed, --seed+1, ... (default 1)")
    p.add_argument("--seeds", type=positive_int, default=1, metavar="K",
                   help="students of each kind per teacher (default 1): seeds teacher_seed*K + k, the plain "
                        "and the distilled student of one seed paired (same initial weights and batches)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs of every stage (default: profile's)")
    p.add_argument("--train-size", type=positive_int, default=None, help="only the first N training images")
    p.add_argument("--lr", type=positive_float, default=None, help="eps_0 of every stage (default: profile's)")
    p.add_argument("--lr-decay", type=decay_factor, default=None,
                   help="per-epoch factor of the learning rate, 0 < d <= 1 (default: profile's)")
    p.add_argument("--max-norm", type=positive_float, default=15.0,
                   help="the teacher's max-norm limit as the paper states it (default 15)")
    p.add_argument("--max-norm-on", choices=("squared", "length"), default="squared",
                   help="what --max-norm bounds: the squared length of a unit's weights (default) or the length")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--overwrite", action="store_true", help="train again where --out holds checkpoints")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="save every N epochs (default: when a minute has passed, and at each stage's end)")
    p.add_argument("--eval-every", type=positive_int, default=None, metavar="N",
                   help="test errors every N epochs (default: 10 for paper, 1 for the others)")
    args = p.parse_args(argv)
    if args.stages is None:
        args.stages = "student,distilled" if args.teacher is not None else ",".join(STAGES)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        p.error(f"--stages: unknown stage(s) {', '.join(bad) or '(none)'}; choose from {', '.join(STAGES)}")
    args.stages = [s for s in STAGES if s in stages]
    if "distilled" in args.stages:
        check_loss_weights(p, args.hard_weight, args.soft_weight)
    if args.resume and args.overwrite:
        p.error("--resume continues the checkpoints in --out, --overwrite replaces them: choose one")
    if args.teacher is not None:
        if "teacher" in args.stages:
            p.error(f"--teacher {args.teacher} gives the teacher: leave teacher out of --stages "
                    f"(e.g. --stages student,distilled)")
        if args.teacher_seeds > 1:
            p.error(f"--teacher {args.teacher} is one teacher: it cannot be combined with --teacher-seeds "
                    f"{args.teacher_seeds}")
    return args


def load_previous_results(path, config):
    """results.json already in --out from a run of the same profile on the same data, or {}:
    a stage run alone (``--stages distilled`` after the teacher) keeps the other models' runs."""
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    same = all(old.get("config", {}).get(k) == config[k]
               for k in ("profile", "dataset", "n_train", "evaluated_on", "n_eval"))
    return old if same and isinstance(old.get("runs"), list) else {}


def main(argv=None):
    args = parse_args(argv)
    return run_command(args, lambda xp, dataset: _run(args, argv, xp, dataset),
                       how_to_continue="rerun the same command with --resume to continue")


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


def teacher_file(out, seed, many):
    """teacher.npz for a run with one teacher, teacher_seed{j}.npz for each of several."""
    return Path(out) / (f"teacher_seed{seed}.npz" if many else "teacher.npz")


def student_file(out, stage, seed):
    return Path(out) / f"{stage}_seed{seed}.npz"


def student_seeds(teacher_seed, k):
    """The seeds of a teacher's students of each kind: teacher_seed * K + k, so no two teachers
    share a student and one command per teacher seed trains what one command for all would."""
    return [teacher_seed * k + i for i in range(k)]


def _run(args, argv, xp, dataset):
    env = environment_info(xp, argv)
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
                  checkpoint_every=args.checkpoint_every,
                  eval_every=every if args.eval_every is None else args.eval_every, environment=env)

    def stage_kw(stage):
        """run_stage's keywords for ``stage``: its images and the meta its checkpoint records."""
        return dict(run_kw, meta=run_meta(dataset, train_size=rows[stage], validation=args.validation,
                                          profile=args.profile))

    given = None
    if args.teacher is not None:
        try:
            model, info = load_teacher(args.teacher, xp, dataset=dataset)
        except CheckpointError as exc:
            fail(str(exc))
        given = (model, info)
        teacher_seeds = [int(info["config"]["seed"])]
    else:
        teacher_seeds = [args.seed + j for j in range(args.teacher_seeds)]
    many = len(teacher_seeds) > 1
    students = [stage for stage in ("student", "distilled") if stage in args.stages]
    planned = [teacher_file(out, t, many) for t in teacher_seeds if "teacher" in args.stages]
    planned += [student_file(out, stage, s) for t in teacher_seeds for s in student_seeds(t, args.seeds)
                for stage in students]
    try:  # before any training: a rerun must not replace finished checkpoints by accident
        refuse_overwrite(planned, resume=args.resume, overwrite=args.overwrite)
    except StageRunError as exc:
        fail(str(exc))

    results_path = out / "results.json"
    config = {"argv": sys.argv[1:] if argv is None else list(argv), "profile": args.profile,
              "dataset": dataset.name, "data_source": dataset.source, "n_train": arrays["n_train"],
              "evaluated_on": arrays["eval_name"], "n_eval": arrays["n_eval"], "seed": args.seed,
              "teacher_seeds": len(teacher_seeds), "seeds": args.seeds, "teacher": args.teacher,
              "stages": {k: cfgs[k].to_dict() for k in args.stages}}
    previous = load_previous_results(results_path, config)
    runs = {}   # (model, teacher_seed, seed) -> run
    for r in previous.get("runs", []):
        runs[(r["model"], r["teacher_seed"], r["seed"])] = r
    t_start = time.time()
    predictions = {}
    # Students the health check stopped: each kept with its message, never as a row of the table.
    # A resumed run tries them again, so the previous file's failures are not carried over.
    failures = []

    def record(model, teacher_seed, entry):
        entry = {"model": model, "teacher_seed": teacher_seed, **entry}
        for key in [k for k, r in runs.items() if r.get("checkpoint") == entry.get("checkpoint")]:
            del runs[key]   # an earlier run whose checkpoint this one has just replaced
        runs[(model, teacher_seed, entry["seed"])] = entry
        return entry

    def save():
        kept = drop_runs_of_another_teacher(runs, results_path)
        ordered = sorted(kept.values(), key=lambda r: (STAGES.index(r["model"]), r["teacher_seed"], r["seed"]))
        pairs = paired_runs(ordered, arrays, xp, predictions)
        env["finished"] = finished_now()
        results = {"command": "reproduce", "config": config, "environment": env,
                   "deviations_from_paper": deviations_from_paper(cfgs), "paper": PAPER_TABLE,
                   "runs": ordered, "failures": failures, "summary": summarize(ordered, pairs),
                   "models": legacy_models(ordered),
                   "wall_seconds_this_run": time.time() - t_start}
        write_json(results_path, results)
        return results

    results = None
    try:
        for t in teacher_seeds:
            teacher_cfg = replace(cfgs["teacher"], seed=t)
            path = teacher_file(out, t, many)
            soft = None   # the teacher's soft targets: a run of the plain student alone needs no teacher
            if given is not None:
                model, info = given
                soft = soft_targets(model, arrays["x_train"])
                errors = int(to_host(count_test_errors(model, arrays["x_test"], arrays["y_test"])))
                record("teacher", t, {"seed": t, "test_errors": errors, "n_eval": int(arrays["n_eval"]),
                                      "evaluated_on": arrays["eval_name"], "epochs": info["epochs_done"],
                                      "train_size": info["train_size"], "checkpoint": info["path"],
                                      "loaded": True, "config": info["config"], "soft_targets_sha256": soft.sha256})
            elif "teacher" in args.stages or "distilled" in args.stages:
                reuse = "teacher" not in args.stages
                trainer, entry = run_stage(teacher_cfg, arrays_of["teacher"], xp, reuse_only=reuse, path=path,
                                           **stage_kw("teacher"))
                soft = soft_targets(trainer.model, arrays["x_train"])   # on the transfer set
                if reuse:
                    entry["loaded"] = True
                record("teacher", t, {**entry, "soft_targets_sha256": soft.sha256})
            results = save()
            for s in student_seeds(t, args.seeds):
                for stage in students:
                    try:
                        _, entry = run_stage(replace(cfgs[stage], seed=s), arrays_of[stage], xp,
                                             soft_logits=soft.logits if stage == "distilled" else None,
                                             path=student_file(out, stage, s), **stage_kw(stage))
                    except StageDiverged as exc:   # the other seeds still run; the command fails at the end
                        print(f"error: {exc}", file=sys.stderr)
                        failures.append({"model": stage, "teacher_seed": t, "seed": s, "message": str(exc)})
                        results = save()
                        continue
                    if stage == "distilled":
                        entry["teacher_soft_targets_sha256"] = soft.sha256
                    record(stage, t, entry)
                    results = save()
    except StageRunError as exc:
        fail(str(exc))
    if results["runs"]:
        print_results(results["runs"], results["summary"], arrays["eval_name"], dataset=dataset.name,
                      profile=args.profile)
        plot_curves(results["runs"], out / "learning_curves.png", arrays["eval_name"], dataset=dataset.name,
                    profile=args.profile)
    print(f"wall time of this run {results['wall_seconds_this_run'] / 60:.1f} min; results in {results_path}")
    if failures:
        fail(f"{len(failures)} student(s) stopped by the health check and left out of the table above: "
             + "; ".join(f"the {LABELS[f['model']]} of teacher seed {f['teacher_seed']}, seed {f['seed']}"
                         for f in failures)
             + f" (each message above and under `failures` in {results_path})")
    return 0


def drop_runs_of_another_teacher(runs, results_path):
    """A table must not mix a distilled student with a teacher that did not teach it: a distilled
    run whose teacher hash differs from its teacher seed's teacher run, or whose teacher seed has no
    teacher run left, is dropped (it came from an earlier run into the same --out), with one line on
    stderr. Returns the runs kept."""
    teachers = {tseed: r.get("soft_targets_sha256") for (model, tseed, _), r in runs.items() if model == "teacher"}
    for key in [k for k, r in runs.items() if k[0] == "distilled"]:
        wanted = teachers.get(key[1])
        if runs[key].get("teacher_soft_targets_sha256") != wanted:   # another teacher, or none left
            del runs[key]
            print(f"{results_path}: the distilled student of seed {key[2]} from an earlier run learned from another "
                  f"teacher than teacher seed {key[1]}'s, so it is dropped; train it again (--stages distilled)",
                  file=sys.stderr)
    return runs


if __name__ == "__main__":
    sys.exit(main())
