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
from ..checkpoints import CheckpointError, load_teacher
from ..profiles import DISTILL_WARMUP
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
                   help="distillation epochs per student (default: quick 24,000 steps' worth, 40 epochs of "
                        "MNIST; paper 3,000)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="initial learning rate eps_0 of every model trained here (default: the profile's)")
    p.add_argument("--no-fast", **SHARED["--no-fast"])
    return p


#: The section-3 experiments' budget for each distilled student under the quick profile, in steps of
#: 100 rows: 40 epochs of MNIST's 60,000 training images, so the whole mythical-digit command fits
#: about 45 minutes on a 2-core CPU (``minikd reproduce``'s students get 70 epochs). On a smaller
#: training set the same number of steps takes more epochs (8x8 digits: 1,600), so a small network
#: trained from the paper's initialisation (weights of s.d. 0.01) gets as many steps to leave its
#: start as on MNIST: counted in epochs, 40 epochs of digits are 600 steps, and a 64-30-30-10
#: student never left its start.
SECTION3_STEPS = 24000
SECTION3_MNIST_EPOCHS = 40


def section3_epochs(n_train, batch_size=100):
    """Epochs of the section-3 budget on a training set of ``n_train`` rows: SECTION3_STEPS steps,
    at least SECTION3_MNIST_EPOCHS epochs (MNIST's 60,000 images: exactly 40)."""
    steps_per_epoch = -(-int(n_train) // int(batch_size))
    return max(SECTION3_MNIST_EPOCHS, round(SECTION3_STEPS / steps_per_epoch))


def distilled_config(profile, dataset, cfgs, *, epochs=None):
    """The distilled student's StageConfig for the section-3 commands.

    quick: ``section3_epochs`` of the dataset's training set by default (MNIST: 40), the schedules
    squeezed into them, so the shorter run still ends where the paper's schedule does, and the
    warm-up squeezed with them (DISTILL_WARMUP epochs of 40: 7 on MNIST, 280 of digits' 1,600).
    paper: the profile's own epochs and schedules. ``epochs`` overrides the budget (the schedules
    squeezed into it under quick, the warm-up the profile's DISTILL_WARMUP epochs)."""
    d = cfgs["distilled"]
    squeeze = profile == "quick"
    warmup = None
    if epochs is None and squeeze:   # the budget in steps, its warm-up the same share of it as on MNIST
        epochs = section3_epochs(len(dataset.y_train), d.batch_size)
        warmup = round(DISTILL_WARMUP * epochs / SECTION3_MNIST_EPOCHS)
    elif epochs is None:
        epochs = d.epochs
    fresh = stage_configs(profile, dataset, epochs=epochs, seed=d.seed, temperature=d.temperature,
                          hard_weight=d.hard_weight, soft_weight=d.soft_weight, lr=d.lr,
                          schedule_epochs=epochs if squeeze else None, warmup_epochs=warmup)
    return fresh["distilled"]


def section3_configs(profile, dataset, *, seed=0, hard_weight=None, soft_weight=1.0, lr=None, teacher_width=1200,
                     teacher_epochs=None, epochs=None, grad_bound=None, **overrides):
    """(cfgs, distilled): the profile's configs with the teacher sized by ``teacher_width`` and
    ``teacher_epochs``, and the distilled student's config (``distilled_config``, then ``grad_bound``:
    None keeps the profile's bound, "none" removes it, a number sets it)."""
    cfgs = stage_configs(profile, dataset, seed=seed, hard_weight=hard_weight, soft_weight=soft_weight, lr=lr,
                         **overrides)
    c = dataset.n_classes
    cfgs["teacher"] = replace(cfgs["teacher"], sizes=(dataset.n_features, teacher_width, teacher_width, c),
                              epochs=teacher_epochs or cfgs["teacher"].epochs)
    return cfgs, with_grad_bound(distilled_config(profile, dataset, cfgs, epochs=epochs), grad_bound)


def stage_keywords(profile, *, fast=True):
    """run_stage's keywords for every model a section-3 experiment trains: resumed when --out holds
    it, checkpoints by time (``stage.CheckpointPolicy``), an evaluation every 10 epochs (50 under the
    paper profile)."""
    return dict(resume=True, fast=fast, eval_every=10 if profile == "quick" else 50)


def section3_teacher(teacher, cfg, arrays, xp, dataset, *, out, meta, test, profile, fast=True):
    """(model, info): the checkpoint ``teacher`` (--teacher; ``checkpoints.load_teacher``, the rule
    every --teacher follows), or when None a teacher ``cfg`` trained on ``arrays`` in --out (resumed,
    or reused when finished). info is what results.json records of it, with its errors on ``test`` =
    (x, y), the test images on the device. A failure stops the command with one line."""
    try:
        if teacher:
            model, info = load_teacher(teacher, xp, dataset=dataset)
        else:
            trainer, entry = run_stage(cfg, arrays, xp, out=out, meta=meta, **stage_keywords(profile, fast=fast))
            model = trainer.model
            info = {"path": entry["checkpoint"], "sizes": list(cfg.sizes), "epochs_done": entry["epochs"],
                    "meta": meta}
    except (CheckpointError, StageRunError) as exc:
        fail(str(exc))
    info["test_errors"] = int(to_host(count_test_errors(model, *test)))
    return model, info
