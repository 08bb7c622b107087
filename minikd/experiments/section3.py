"""What the two section-3 experiments share (the mythical digit and the
temperature sweep): their flags, their teacher and distilled configs, and the
teacher they distil from -- a checkpoint passed as --teacher, or one trained
(or resumed) in --out.
"""
from __future__ import annotations

from dataclasses import replace

from ..engine.backend import to_host
from ..train import count_test_errors
from .args import SHARED, fail, flag_group, positive_float, positive_int, with_grad_bound
from .checkpoints import CheckpointError, load_teacher
from .profiles import distill_config
from .stage import StageRunError, run_stage, stage_configs


def section3_flags(*, profile_help):
    """--profile (quick or paper), --teacher, --teacher-epochs, --teacher-width, --epochs, --lr, --no-fast."""
    p = flag_group()
    p.add_argument("--profile", choices=("quick", "paper"), default="quick", help=profile_help)
    p.add_argument("--teacher", default=None, metavar="PATH",
                   help="teacher checkpoint, e.g. runs/reproduce/teacher.npz (default: train one and save it "
                        "as OUT/teacher.npz)")
    p.add_argument("--teacher-epochs", type=positive_int, default=None,
                   help="epochs of a teacher trained here (default: the profile's, 150 / 3,000)")
    p.add_argument("--teacher-width", type=positive_int, default=1200,
                   help="hidden units per layer of a teacher trained here (default 1200, the paper's)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="distillation epochs per student (default: 40 / 3,000)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="initial learning rate eps_0 of every model trained here (default: the profile's)")
    p.add_argument("--no-fast", **SHARED["--no-fast"])
    return p


def section3_configs(args, dataset, **overrides):
    """(cfgs, distilled): the profile's configs with the teacher as the flags size it, and the
    distilled student's config (``profiles.distill_config``, then --grad-bound)."""
    cfgs = stage_configs(args.profile, dataset, seed=args.seed, hard_weight=args.hard_weight,
                         soft_weight=args.soft_weight, lr=args.lr, **overrides)
    width, c = args.teacher_width, dataset.n_classes
    cfgs["teacher"] = replace(cfgs["teacher"], sizes=(dataset.n_features, width, width, c),
                              epochs=args.teacher_epochs or cfgs["teacher"].epochs)
    return cfgs, with_grad_bound(distill_config(args, dataset, cfgs), args.grad_bound)


def stage_keywords(args):
    """run_stage's keywords for every model a section-3 experiment trains: resumed when --out holds
    it, a checkpoint and an evaluation every 10 epochs (50 under the paper profile)."""
    every = 10 if args.profile == "quick" else 50
    return dict(resume=True, fast=not args.no_fast, checkpoint_every=every, eval_every=every)


def section3_teacher(args, cfg, arrays, xp, dataset, *, out, meta, test):
    """(model, info): the --teacher checkpoint, or a teacher ``cfg`` trained on ``arrays`` in --out
    (resumed, or reused when finished). info is what results.json records of it, with its errors on
    ``test`` = (x, y), the test images on the device. A failure stops the command with one line."""
    try:
        if args.teacher:
            model, info = load_teacher(args.teacher, xp, dataset=dataset)
        else:
            trainer, entry = run_stage(cfg, arrays, xp, out=out, meta=meta, **stage_keywords(args))
            model = trainer.model
            info = {"path": entry["checkpoint"], "sizes": list(cfg.sizes), "epochs_done": entry["epochs"],
                    "meta": meta}
    except (CheckpointError, StageRunError) as exc:
        fail(str(exc))
    info["test_errors"] = int(to_host(count_test_errors(model, *test)))
    return model, info
