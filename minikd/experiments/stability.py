"""Why a distilled student dies, measured: the soft term's gradient at
initialisation against the hard one, and the first epochs traced.

    python scripts/stability.py --teacher runs/val/teacher.npz --validation --train-size 20000 \\
        --profile-epochs 30 --epochs 4 --lr-warmup 0 --grad-bound none

At initialisation the student's logits are ~0, so p = softmax(z / T) is
uniform (u) and a row's gradient w.r.t. its logits is, times N,

    hard:  u - onehot(y)           length sqrt(1 - 1/C), ~0.95 for C = 10
    soft:  soft_weight T (u - q)   with q = softmax(v / T); at high T about
                                   (v - mean(v)) / C: set by the teacher's logit range

The trace prints, for each of the first epochs, the loss, the errors on the
evaluation split, the share of each hidden layer's ReLUs that are 0 for every
one of 2,000 training rows (dead), the most predicted class's share and the
first layer's weight norm. It calls ``Trainer.train_epoch`` directly, without
the health check of ``Trainer.fit``, so a dying network is followed to the end.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from ..engine.losses import softmax
from ..health import relu_alive
from ..train import Trainer, predict_logits, teacher_logits
from .args import (data_flags, fail, grad_bound_flags, load_data_or_exit, positive_float, positive_int,
                   shared_flags, with_grad_bound)
from ..checkpoints import CheckpointError, load_teacher
from .stage import prepare_arrays, stage_configs


def gradient_sizes(soft_logits, labels, cfg):
    """Per-row lengths (times N) of the hard, soft and combined logit gradients at p = uniform."""
    c = soft_logits.shape[1]
    t = cfg.temperature
    q = softmax(soft_logits.astype(np.float64), t)
    u = np.full_like(q, 1.0 / c)
    onehot = np.eye(c)[labels]
    hard = cfg.hard_weight * (u - onehot)
    soft = cfg.soft_weight * t * (u - q)
    centred = soft_logits - soft_logits.mean(axis=1, keepdims=True)
    return {"teacher_logit_range": float(np.ptp(soft_logits, axis=1).mean()),
            "teacher_logit_rms_centred": float(np.sqrt((centred ** 2).mean())),
            "hard": float(np.linalg.norm(hard, axis=1).mean()),
            "soft": float(np.linalg.norm(soft, axis=1).mean()),
            "soft_max": float(np.linalg.norm(soft, axis=1).max()),
            "soft_high_T": float(np.linalg.norm(centred, axis=1).mean() / c) * cfg.soft_weight,
            "combined": float(np.linalg.norm(hard + soft, axis=1).mean())}


def dead_fractions(model, x):
    """For each hidden ReLU, the share of its units that are 0 for every row of x: the health
    check's probe (``health.relu_alive``), read as what is dead rather than what is alive."""
    return [1.0 - float(alive) for alive in relu_alive(model, x)[1]]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[data_flags(default_out="runs/stability"), grad_bound_flags(),
                                         shared_flags("--lr-warmup", "--validation")])
    p.add_argument("--teacher", required=True, help="teacher checkpoint (e.g. runs/reproduce/teacher.npz)")
    p.add_argument("--train-size", type=positive_int, default=None, help="use only the first N training images")
    p.add_argument("--profile-epochs", type=positive_int, default=None,
                   help="the quick profile compressed to this many epochs (its schedule), default 70")
    p.add_argument("--epochs", type=positive_int, default=4, help="epochs to trace (default 4)")
    p.add_argument("--lr", type=positive_float, default=None, help="eps_0 (default: the profile's)")
    p.add_argument("--student", action="store_true", help="trace the plain student (hard labels) instead")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    dataset = load_data_or_exit(args)
    arrays = prepare_arrays(dataset, np, train_size=args.train_size, validation=args.validation)
    try:
        teacher, _ = load_teacher(args.teacher, np, dataset=dataset)
    except CheckpointError as exc:
        fail(str(exc))
    soft = teacher_logits(teacher, arrays["x_train"])
    cfgs = stage_configs("quick", dataset, epochs=args.profile_epochs, seed=args.seed)
    cfg = cfgs["student" if args.student else "distilled"]
    if args.lr is not None:
        cfg = replace(cfg, lr=args.lr)
    if args.lr_warmup is not None:
        cfg = replace(cfg, lr_warmup=args.lr_warmup)
    if not args.student:
        cfg = with_grad_bound(cfg, args.grad_bound)
    g = gradient_sizes(soft, arrays["y_train"], cfgs["distilled"])
    print(f"inputs: mean pixel {float(arrays['x_train'].mean()):.3f}, "
          f"mean ||x|| {float(np.linalg.norm(arrays['x_train'], axis=1).mean()):.2f}")
    print(f"teacher logits: mean per-row range {g['teacher_logit_range']:.1f}, "
          f"rms after centring {g['teacher_logit_rms_centred']:.2f}")
    print(f"per-row logit gradient at initialisation (x N): hard {g['hard']:.2f}, soft (T^2-scaled) "
          f"{g['soft']:.2f} (max {g['soft_max']:.2f}; high-T estimate ||v - mean v|| / C = {g['soft_high_T']:.2f}), "
          f"together {g['combined']:.2f}: {g['combined'] / g['hard']:.2f} x the hard one")
    print(f"traced: {cfg.name}, eps_0 {cfg.lr:g}, warm-up {cfg.lr_warmup}, grad_bound {cfg.grad_bound}")
    trainer = Trainer(cfg, np, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      soft_logits=None if args.student else soft, fast=True)
    probe = arrays["x_train"][:2000]
    for epoch in range(min(args.epochs, cfg.epochs)):
        loss, _ = trainer.train_epoch(epoch)
        pred = predict_logits(trainer.model, arrays["x_test"]).argmax(axis=1)
        errors = int((pred != arrays["y_test"]).sum())
        share = np.bincount(pred, minlength=dataset.n_classes).max() / len(pred)
        w1 = float(np.linalg.norm(trainer.model.dense_layers()[0].params["W"]))
        dead = " ".join(f"{d:.2f}" for d in dead_fractions(trainer.model, probe))
        print(f"epoch {epoch + 1}: eps {trainer.optimizer.lr:.3f}  loss {float(loss):.4g}  "
              f"{arrays['eval_name']} errors {errors}/{arrays['n_eval']}  dead ReLUs per layer {dead}  "
              f"top class {100 * share:.0f}%  ||W1|| {w1:.3g}")
    return 0

