"""What carries the knowledge? Students that differ only in their targets, from one teacher.

One teacher (trained here with the profile's teacher config, or --teacher CKPT) and one
transfer set. Every variant trains with the distilled stage's config: its architecture,
schedule, warm-up, per-row gradient bound, and the same hard-label term with the same weight.
Only the targets differ:

    hard            the hard-label term alone
    soft            + the teacher's soft targets at T, times T^2 (Hinton et al. 2015)
    permuted        + soft targets from the teacher's logits with each row's non-top logits
                      shuffled among the non-top classes (Furlanello et al. 2018, DKPP)
    confidence      + soft targets from each row's top logit, the others set to one
                      log-mean-exp: the teacher's top probability at T, no similarity
    smoothed        the hard term on (1 - smoothing) onehot + smoothing / C, no soft term
                      (Szegedy et al. 2016); smoothing chosen on held-out training images
                      from --smoothing-grid
    logit_matching  + the squared error of centred logits (Ba & Caruana 2014)

The profile's plain student (its own schedule, no warm-up or bound) is a reference row.

Seeds: the teacher's is --seed (or the given checkpoint's); its students have seeds
teacher_seed * K + k, k = 0 ... K - 1 (--seeds K), as in `minikd reproduce`. A student's seed
is its config's seed, and the Trainer keys both the initial weights (make_rng(xp, s, 0)) and
the batch order (make_rng(xp, s, 1, epoch)) by it, so the variants of one seed start from the
same weights and see the same batches: a paired comparison. The permutation of `permuted` is
drawn from make_rng(xp, s, 3), a stream nothing else uses.

Validation: when the transfer set is a part of the training set (the demo: the first 2,000
images, fewer where the set is small), the last images of the training set (10,000 of MNIST's
60,000, a sixth elsewhere) are held out: never in the transfer set, they choose smoothing and give the
`hard` and `soft` students their validation errors per epoch (early stopping, the paper's
section 6). When the transfer set is all of it (--profile quick), smoothing is chosen by students
trained on the first five sixths of the transfer set and judged on the last sixth, and there is
no early stopping (every student saw every training image).

    python scripts/dark_knowledge.py                       # the demo, MNIST, one seed
    python scripts/dark_knowledge.py --seeds 3 --teacher runs/reproduce/teacher.npz
    python scripts/dark_knowledge.py --profile quick --seeds 2 --resume

Everything goes to --out: results.json, one checkpoint per student (<variant>_seed<s>.npz,
student_seed<s>.npz for the reference, smoothing<amount>_seed<s>.npz for the grid),
teacher.npz when trained here, variant_errors.png and hard_soft_curves.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..checkpoints import CheckpointError, load_model, load_teacher
from ..data import to_float, train_val_split
from ..engine.backend import get_xp, make_rng, to_device, to_host
from ..profiles import PROFILES, deviations_from_paper
from ..targets import confidence_only, permute_non_top
from ..train import count_test_errors, predict_logits
from .args import check_loss_weights, data_flags, fail, grad_bound_flags, loss_flags, positive_int, shared_flags, \
    with_grad_bound
from .dark_knowledge_report import (EARLY_STOPPED, VARIANTS, early_stopping, paired, plot_curves, plot_errors,
                                    print_report, summary, trim_history)
from .report import write_json
from .reproduce import soft_targets, student_seeds
from .results import environment_info, finished_now, soft_targets_sha256
from .stage import StageRunError, prepare_arrays, refuse_overwrite, run_command, run_meta, run_stage, stage_configs, \
    validation_split

PERMUTATION_STREAM = 3          # make_rng's keys: 0 weights, 1 epochs, (2 the health probe), 3 this permutation
TEACHER_VARIANTS = ("soft", "permuted", "confidence", "logit_matching")
SMOOTHING_GRID = (0.05, 0.1, 0.2, 0.3)


def smoothing_grid(text):
    """--smoothing-grid: comma-separated amounts of smoothing in [0, 1), sorted, each once."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, "
                                         f"e.g. 0.05,0.1,0.2") from None
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"{text!r}: every amount must be in [0, 1) (got "
                                         f"{', '.join(map(str, bad)) or 'none'})")
    return tuple(values)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[data_flags(default_out="runs/dark_knowledge"), loss_flags(),
                                         grad_bound_flags(), shared_flags("--no-fast")])
    p.add_argument("--profile", choices=PROFILES, default="demo",
                   help="demo: students on the first 2,000 training images, the demo's schedules and teacher "
                        "(default); quick: all training images, the quick profile's; paper: its 3,000 epochs")
    p.add_argument("--teacher", default=None, metavar="CKPT",
                   help="distil from this trained teacher checkpoint instead of training one")
    p.add_argument("--seeds", type=positive_int, default=1, metavar="K",
                   help="students of each variant (default 1; 3 or more for an interval worth reading), paired: "
                        "the variants of one seed share initial weights and batch order")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs of every stage (default: profile's)")
    p.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                   help="the transfer set: the first N training images (default: the profile's)")
    p.add_argument("--smoothing-grid", type=smoothing_grid, default=SMOOTHING_GRID, metavar="A,A,...",
                   help="label-smoothing amounts tried for `smoothed`, the best on the validation images kept "
                        f"(default {','.join(map(str, SMOOTHING_GRID))})")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--overwrite", action="store_true", help="train again where --out holds checkpoints")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="save every N epochs (default: when a minute has passed, and at each student's end)")
    args = p.parse_args(argv)
    check_loss_weights(p, args.hard_weight, args.soft_weight)
    if args.hard_weight == 0:
        p.error("--hard-weight 0 leaves `hard` and `smoothed` no loss at all (they have only the hard term): "
                "give it a weight > 0")
    if args.resume and args.overwrite:
        p.error("--resume continues the checkpoints in --out, --overwrite replaces them: choose one")
    return args


def main(argv=None):
    args = parse_args(argv)
    return run_command(args, lambda xp, dataset: _run(args, argv, xp, dataset),
                       how_to_continue="rerun the same command with --resume to continue")


# --------------------------------------------------------------------------- the data
def split_rows(n_total, train_size, profile_rows):
    """(n_transfer, n_validation, outside): the transfer set is the first n_transfer training images;
    outside=True: the validation images are the last n_validation of the training set, none of them in
    the transfer set; False: the last n_validation of the transfer set itself (train_val_split)."""
    n_val = len(train_val_split(n_total)[1])
    if train_size is not None:
        if train_size > n_total:
            raise ValueError(f"--train-size {train_size} is more than the {n_total} training images")
        rows = train_size
    elif profile_rows:
        rows = min(profile_rows, n_total - n_val)   # leave the held-out images out of the transfer set
    else:
        rows = n_total
    if rows + n_val <= n_total:
        return rows, n_val, True
    return rows, len(validation_split(rows, train_size)[1]), False


def held_out_arrays(dataset, xp, arrays, n_validation):
    """The transfer set's arrays with the last ``n_validation`` training images in place of the test set:
    what the smoothing grid's students train and are judged on (keys as stage.prepare_arrays)."""
    x, y = dataset.x_train[-n_validation:], dataset.y_train[-n_validation:]
    return {**arrays, "x_test": to_float(x, xp), "y_test": to_device(y, xp, dtype=np.int32),
            "eval_name": "validation", "n_eval": int(n_validation)}


# --------------------------------------------------------------------------- the variants
def variant_config(variant, distilled, seed, smoothing=0.0):
    """The distilled stage's config for ``variant``: only the name, the seed and what the targets need differ."""
    cfg = replace(distilled, name=variant, seed=seed)
    if variant == "smoothed":
        cfg = replace(cfg, label_smoothing=float(smoothing))
    if variant == "logit_matching":
        cfg = replace(cfg, soft_loss="logit_matching")
    return cfg


def variant_targets(variant, v, seed, temperature):
    """The logits a variant learns from, (N, C) on v's backend, or None (hard labels only)."""
    if variant in ("soft", "logit_matching"):
        return v
    if variant == "permuted":
        return permute_non_top(v, make_rng(get_xp(v), seed, PERMUTATION_STREAM))
    if variant == "confidence":
        return confidence_only(v, temperature)
    return None


def predictions(model, x):
    """Each row's predicted class, on the host."""
    return to_host(predict_logits(model, x)).argmax(axis=1)


def check_same_teacher(path, sha256):
    """Refuse to resume a student that learned from another teacher's soft targets (its checkpoint's meta)."""
    try:
        _, _, header = load_model(path)
    except CheckpointError as exc:
        raise StageRunError(str(exc)) from None
    saved = (header.get("meta") or {}).get("teacher_soft_targets_sha256")
    if saved != sha256:
        raise StageRunError(f"{path} learned from another teacher (soft targets {str(saved)[:16]}..., this run's "
                            f"{sha256[:16]}...); use another --out, or --overwrite to train it again")


def previous_curves(path, config):
    """The validation errors per epoch a previous run into --out recorded, when its setting is this one's."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    keys = ("dataset", "profile", "n_transfer", "n_validation", "validation_outside_transfer")
    same = all((old.get("config") or {}).get(k) == config[k] for k in keys)
    return dict(old.get("validation_curves") or {}) if same else {}


# --------------------------------------------------------------------------- the run
def _run(args, argv, xp, dataset):
    env = environment_info(xp, argv)
    out = Path(args.out)
    cfgs = stage_configs(args.profile, dataset, epochs=args.epochs, seed=args.seed, temperature=args.temperature,
                         hard_weight=args.hard_weight, soft_weight=args.soft_weight)
    cfgs["distilled"] = with_grad_bound(cfgs["distilled"], args.grad_bound)
    try:
        n_transfer, n_val, outside = split_rows(len(dataset.y_train), args.train_size,
                                                cfgs["distilled"].extra.get("train_rows"))
        arrays = prepare_arrays(dataset, xp, train_size=n_transfer)
        grid_arrays = (held_out_arrays(dataset, xp, arrays, n_val) if outside else
                       prepare_arrays(dataset, xp, train_size=n_transfer, validation=True))
    except ValueError as exc:
        fail(str(exc))
    print(f"transfer set: the first {n_transfer:,} training images; validation: the last {n_val:,} "
          + ("training images, none of them in the transfer set" if outside else
             f"of the transfer set (the smoothing grid's students train on the first {grid_arrays['n_train']:,}; "
             f"no early stopping: every variant learns from all of it)"), file=sys.stderr)
    run_kw = dict(out=out, resume=args.resume, fast=not args.no_fast, overwrite=args.overwrite,
                  checkpoint_every=args.checkpoint_every, environment=env)

    if args.teacher is not None:
        try:
            teacher_model, info = load_teacher(args.teacher, xp, dataset=dataset)
        except CheckpointError as exc:
            fail(str(exc))
        teacher_seed = int(info["config"]["seed"])
    else:
        teacher_seed = args.seed
    seeds = student_seeds(teacher_seed, args.seeds)
    grid = args.smoothing_grid
    paths = {(v, s): out / f"{v}_seed{s}.npz" for s in seeds for v in (*VARIANTS, "student")}
    grid_paths = {a: out / f"smoothing{a:g}_seed{seeds[0]}.npz" for a in grid}
    planned = ([] if args.teacher else [out / "teacher.npz"]) + list(grid_paths.values()) + list(paths.values())
    try:   # before any training: a rerun must not replace finished checkpoints by accident
        refuse_overwrite(planned, resume=args.resume, overwrite=args.overwrite)
    except StageRunError as exc:
        fail(str(exc))

    config = {"argv": sys.argv[1:] if argv is None else list(argv), "profile": args.profile,
              "dataset": dataset.name, "data_source": dataset.source, "seed": teacher_seed, "seeds": args.seeds,
              "student_seeds": seeds, "teacher": args.teacher, "temperature": cfgs["distilled"].temperature,
              "hard_weight": cfgs["distilled"].hard_weight, "soft_weight": cfgs["distilled"].soft_weight,
              "n_transfer": n_transfer, "n_validation": n_val, "validation_outside_transfer": outside,
              "evaluated_on": "test", "n_eval": arrays["n_eval"],
              "permutation_rng": f"make_rng(xp, seed, {PERMUTATION_STREAM})",
              "stages": {k: c.to_dict() for k, c in cfgs.items() if k != "teacher" or args.teacher is None}}
    results_path = out / "results.json"
    curves = previous_curves(results_path, config) if args.resume else {}
    y_test = to_host(arrays["y_test"])
    runs = {v: [] for v in (*VARIANTS, "student")}
    right = {}       # (variant, seed) -> which test images the student gets right
    smoothing = {"grid": list(grid), "validation_errors": [], "chosen": None, "seed": seeds[0],
                 "n_validation": n_val, "trained_on": grid_arrays["n_train"], "checkpoints": []}
    t_start = time.time()
    results = {}

    def save(complete=False):
        env["finished"] = finished_now()
        results.clear()
        results.update({
            "command": "dark-knowledge", "complete": complete, "config": config, "environment": env,
            "deviations_from_paper": deviations_from_paper({k: cfgs[k] for k in config["stages"]}),
            "teacher": teacher, "variants": {v: summary(runs[v]) for v in VARIANTS if runs[v]},
            "reference_student": summary(runs["student"]) if runs["student"] else None,
            "paired": paired(runs, right), "smoothing": smoothing,
            "early_stopping": early_stopping(runs, outside, n_val), "validation_curves": curves,
            "wall_seconds_this_run": time.time() - t_start})
        write_json(results_path, results)

    def meta(**extra):
        return run_meta(dataset, train_size=n_transfer, validation=False, profile=args.profile, **extra)

    try:
        if args.teacher is None:
            trainer, entry = run_stage(replace(cfgs["teacher"], seed=teacher_seed), prepare_arrays(dataset, xp), xp,
                                       path=out / "teacher.npz", meta=run_meta(dataset, train_size=None,
                                                                               validation=False, profile=args.profile),
                                       **run_kw)
            teacher_model = trainer.model
            teacher = {k: entry[k] for k in ("seed", "test_errors", "epochs", "train_size", "checkpoint", "config")}
            teacher["loaded"] = False
        else:
            errors = int(to_host(count_test_errors(teacher_model, arrays["x_test"], arrays["y_test"])))
            teacher = {"seed": teacher_seed, "test_errors": errors, "epochs": info["epochs_done"],
                       "train_size": info["train_size"], "checkpoint": info["path"], "config": info["config"],
                       "loaded": True}
        soft = soft_targets(teacher_model, arrays["x_train"])
        teacher["soft_targets_sha256"] = soft.sha256
        teacher_pred = predictions(teacher_model, arrays["x_test"])

        for a in grid:   # the amount of smoothing for `smoothed`, judged on the validation images, first seed
            print(f"smoothed, smoothing {a:g}: judged on {n_val:,} validation images", file=sys.stderr)
            _, entry = run_stage(variant_config("smoothed", cfgs["distilled"], seeds[0], a), grid_arrays, xp,
                                 path=grid_paths[a], eval_every=cfgs["distilled"].epochs,
                                 meta=run_meta(dataset, train_size=n_transfer, validation=not outside,
                                               profile=args.profile), **run_kw)
            smoothing["validation_errors"].append(entry["test_errors"])   # its "test" set is the validation images
            smoothing["checkpoints"].append(entry["checkpoint"])
        best = min(smoothing["validation_errors"])
        smoothing["chosen"] = grid[smoothing["validation_errors"].index(best)]   # the least smoothing among ties
        save()

        for s in seeds:
            for v in (*VARIANTS, "student"):
                targets = None if v == "student" else variant_targets(v, soft.logits, s, cfgs["distilled"].temperature)
                if v == "student":
                    cfg, extra = replace(cfgs["student"], seed=s), {}
                else:
                    cfg = variant_config(v, cfgs["distilled"], s, smoothing["chosen"])
                    extra = {"teacher_soft_targets_sha256": soft.sha256}
                    if args.resume and paths[(v, s)].exists() and v in TEACHER_VARIANTS:
                        check_same_teacher(paths[(v, s)], soft.sha256)
                hook = None
                if v in EARLY_STOPPED and outside:
                    hook = validation_hook(curves, f"{v}_seed{s}", grid_arrays, save)
                trainer, entry = run_stage(cfg, arrays, xp, soft_logits=targets, path=paths[(v, s)], meta=meta(**extra),
                                           eval_every=1 if v in EARLY_STOPPED else cfg.epochs, after_epoch=hook,
                                           **run_kw)
                pred = predictions(trainer.model, arrays["x_test"])
                right[(v, entry["seed"])] = pred == y_test
                run = {k: entry[k] for k in ("seed", "test_errors", "n_eval", "epochs", "train_size", "checkpoint",
                                             "backend", "sec_per_epoch", "train_seconds_total", "wall_seconds")}
                run["agreement"] = float((pred == teacher_pred).mean())
                run["teacher_soft_targets_sha256"] = soft.sha256
                run["targets_sha256"] = None if targets is None else soft_targets_sha256(targets)
                if v == "smoothed":
                    run["label_smoothing"] = cfg.label_smoothing
                run["history"] = trim_history(entry["history"], curves.get(f"{v}_seed{s}"))
                run["config"] = entry["config"]
                runs[v].append(run)
                save()
    except StageRunError as exc:
        fail(str(exc))
    save(complete=True)
    print_report(results)
    plot_errors(results, out / "variant_errors.png")
    plot_curves(results, out / "hard_soft_curves.png")
    print(f"wall time of this run {results['wall_seconds_this_run'] / 60:.1f} min; results in {results_path}")
    return 0


def validation_hook(curves, key, grid_arrays, save):
    """run_stage's after_epoch for `hard` and `soft`: the epoch's errors on the validation images, kept in
    ``curves[key]`` ({epoch: errors}; a resumed student's later epochs replaced) and saved at once."""
    def after_epoch(trainer, log):
        errors = int(to_host(count_test_errors(trainer.model, grid_arrays["x_test"], grid_arrays["y_test"])))
        kept = {k: e for k, e in (curves.get(key) or {}).items() if int(k) < log.epoch}
        curves[key] = {**kept, str(log.epoch): errors}
        save()
    return after_epoch


if __name__ == "__main__":
    sys.exit(main())
