"""The runner: a command's backend, data and locked output folder
(``run_command``), and in them one training stage at a time (``run_stage``: the
data on the device, a progress bar, checkpoints and resume).

A stage's key is its name: ``teacher``, ``student`` or ``distilled`` -- the
same word in StageConfig.name, ``--stages``, the checkpoint's file name and
results.json's ``models``.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data import to_float, train_val_split
from ..engine.backend import to_device, to_host
from ..train import DivergenceError, StageConfig, Trainer, count_test_errors
from .args import load_data_or_exit, pick_backend_or_exit
from ..checkpoints import CheckpointError, check_compatible, load_into, read_checkpoint, save_checkpoint
from .outdir import guarded_run
from ..profiles import profile_configs


STAGES = ("teacher", "student", "distilled")


class StageRunError(RuntimeError):
    """A stage cannot run or stopped (message is for the user)."""


class StageDiverged(StageRunError):
    """The health check stopped a stage: the network died, exploded or did not learn. The message
    says what happened, what to try, and whether a checkpoint is left."""


def run_command(args, body, *, how_to_continue, check=None):
    """What every training command does around its own work, ``body(xp, dataset)``.

    The backend (--backend) and the data (--dataset, --data-dir) are set up
    first, and a failure stops the command with one line; then ``check(dataset)``
    if given (refusals that need the data, before --out is touched); then the
    body runs inside ``outdir.guarded_run`` -- --out checked and locked, a
    clean stop on Ctrl-C or SIGTERM that prints ``how_to_continue``. Returns
    what the body returns (the exit status).
    """
    xp = pick_backend_or_exit(args.backend)
    dataset = load_data_or_exit(args)
    if check is not None:
        check(dataset)
    with guarded_run(args.out, how_to_continue=how_to_continue):
        return body(xp, dataset)


def stage_configs(profile, dataset, **overrides):
    """``minikd.profile_configs`` for ``dataset``'s shapes (the teacher's jitter sized to its images)."""
    return profile_configs(profile, n_features=dataset.n_features, n_classes=dataset.n_classes,
                           image_shape=dataset.image_shape, **overrides)


class CheckpointPolicy:
    """When ``run_stage`` saves a stage's checkpoint: the one policy every command follows.

    By default by time: after an epoch when at least ``seconds`` (60) have passed since the
    last save, so a long run loses at most about a minute and a short one is not slowed by
    writing a file per epoch. ``every=N`` (``--checkpoint-every N``) saves every N epochs
    instead: deterministic, as the tests want. Always at the stage's last epoch, and after
    the epoch a first Ctrl-C let finish.
    """

    SECONDS = 60.0

    def __init__(self, every=None, *, seconds=SECONDS, clock=time.monotonic):
        if every is not None and every < 1:
            raise ValueError(f"checkpoint every {every} epochs: must be >= 1")
        self.every, self.seconds, self.clock = every, float(seconds), clock
        self.last = clock()

    def due(self, epochs_done, last_epoch):
        if last_epoch:
            return True
        if self.every is not None:
            return epochs_done % self.every == 0
        return self.clock() - self.last >= self.seconds

    def saved(self):
        self.last = self.clock()


class StopAfterEpoch:
    """Ctrl-C during training, in two steps: the first lets the current epoch finish, so its
    checkpoint is saved and ``--resume`` continues exactly as an uninterrupted run would; a
    second stops at once (KeyboardInterrupt), keeping the last checkpoint saved."""

    def __init__(self, what):
        self.what, self.requested, self.previous = what, False, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nCtrl-C: {self.what} stops after this epoch, once its checkpoint is saved "
              f"(Ctrl-C again to stop at once, keeping the last one)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def training_subset(dataset, train_size=None):
    """The first ``train_size`` training images and labels (all when None).

    Raises ValueError naming --train-size when it is out of range.
    """
    x, y = dataset.x_train, dataset.y_train
    if train_size is None:
        return x, y
    if not 0 < train_size <= len(y):
        raise ValueError(f"--train-size {train_size} must be between 1 and {len(y)}")
    return x[:train_size], y[:train_size]


MIN_VALIDATION_ROWS = 6  # the validation split holds out n // 6 rows: at least one


def validation_split(n, train_size=None):
    """``train_val_split(n)``, refusing (ValueError naming --train-size) a set too
    small to hold out even one validation image."""
    if n < MIN_VALIDATION_ROWS:
        raise ValueError(f"--train-size {train_size if train_size is not None else n} leaves no validation "
                         f"images: the validation split holds out a sixth of the training images, so it "
                         f"needs --train-size {MIN_VALIDATION_ROWS} or more")
    return train_val_split(n)


def run_meta(dataset, **extra):
    """The ``meta`` a stage's checkpoint records: the dataset's name and fingerprint,
    plus ``extra`` (train_size, validation, ...), all compared on resume."""
    return {"dataset": dataset.name, "data": dataset.fingerprint(), **extra}


def describe_existing(path):
    """'a finished teacher (12 epochs)' / 'a teacher stopped after 3 of 12 epochs' / 'an unreadable file'."""
    try:
        header, _ = read_checkpoint(path)
    except CheckpointError:
        return "a file that is not a readable checkpoint"
    cfg = header["config"]
    done, planned = header["epochs_done"], cfg.get("epochs")
    if planned is not None and done >= planned:
        return f"a finished {cfg.get('name')} ({done} epochs)"
    return f"a {cfg.get('name')} stopped after {done} of {planned} epochs"


def refuse_overwrite(paths, *, resume, overwrite):
    """Raise StageRunError when a checkpoint this run would train again already exists.

    Called before the first epoch with every checkpoint the run will write, so
    a rerun without --resume stops at once instead of replacing finished work.
    """
    if resume or overwrite:
        return
    for path in paths:
        if Path(path).exists():
            raise StageRunError(f"{path} already holds {describe_existing(path)}; rerun with --resume to "
                                f"continue from it (finished stages are reused), --overwrite to train it "
                                f"again from scratch, or choose another --out")


def prepare_arrays(dataset, xp, *, train_size=None, validation=False):
    """Float32 inputs (N, D) in [0, 1] and int32 labels, moved to ``xp`` once.

    validation=True trains on the first part of the training set and
    evaluates on the held-out rest (``data.train_val_split``) instead of the
    test set: the honest way to choose schedules. Returns a dict with x_train,
    y_train, x_test, y_test (device arrays), eval_name and n_train.
    """
    x_tr, y_tr = training_subset(dataset, train_size)
    if validation:
        tr_idx, va_idx = validation_split(len(y_tr), train_size)
        x_ev, y_ev = x_tr[va_idx], y_tr[va_idx]
        x_tr, y_tr = x_tr[tr_idx], y_tr[tr_idx]
        eval_name = "validation"
    else:
        x_ev, y_ev = dataset.x_test, dataset.y_test
        eval_name = "test"
    return {
        "x_train": to_float(x_tr, xp), "y_train": to_device(y_tr, xp, dtype=np.int32),
        "x_test": to_float(x_ev, xp), "y_test": to_device(y_ev, xp, dtype=np.int32),
        "eval_name": eval_name, "n_train": int(len(y_tr)), "n_eval": int(len(y_ev)),
    }


def checkpoint_path(out, cfg):
    name = cfg.name
    return Path(out) / (f"{name}.npz" if name == "teacher" else f"{name}_seed{cfg.seed}.npz")


def _restore(trainer, path, meta, *, strict=True):
    """Load a checkpoint into ``trainer``. Always refuses another architecture
    or dataset; ``strict`` (resuming) also refuses any other training setting,
    since continuing under a different schedule would not be the same run."""
    header, arrays = read_checkpoint(path, owned=strict)
    check_compatible(path, header, trainer.cfg, meta)
    saved = header["config"]
    mine = trainer.cfg.to_dict()
    diff = [k for k in mine if strict and k != "epochs" and saved.get(k) != mine[k]]
    if diff:
        k = diff[0]
        raise CheckpointError(f"checkpoint {path} was trained with {k}={saved.get(k)!r}, this run asks for "
                              f"{k}={mine[k]!r}; rerun with the same flags, or use another --out")
    load_into(trainer, header, arrays, path)
    return header


def run_stage(cfg, arrays, xp, *, out, resume=False, meta=None, fast=True, checkpoint_every=None,
              eval_every=1, soft_logits=None, reuse_only=False, progress=True, overwrite=False, path=None,
              environment=None, after_epoch=None):
    """Train (or resume, or reuse) one stage; returns (trainer, results entry).

    reuse_only: load a finished checkpoint and never train (the saved teacher
    for a run of the distilled stage alone). An existing checkpoint is only
    replaced by a fresh training with overwrite=True (``--overwrite``);
    resume=True continues it instead. checkpoint_every: None saves by time,
    N every N epochs (``CheckpointPolicy``). path: the checkpoint's file
    (default ``checkpoint_path(out, cfg)``). environment: what the checkpoint's
    header records of the run (``results.environment_info``). after_epoch: a callable
    ``after_epoch(trainer, log)`` run after each epoch trained here, before its checkpoint
    is saved (e.g. errors on a validation split beside the test errors).
    """
    if eval_every < 1:
        raise ValueError(f"eval_every ({eval_every}) must be >= 1")
    policy = CheckpointPolicy(checkpoint_every)
    meta = dict(meta or {})
    path = Path(path) if path is not None else checkpoint_path(out, cfg)
    try:
        if not reuse_only:
            refuse_overwrite([path], resume=resume, overwrite=overwrite)
        trainer = Trainer(cfg, xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                          soft_logits=soft_logits, fast=fast)
        if reuse_only or (resume and path.exists()):
            if reuse_only and not path.exists():
                raise StageRunError(f"no saved {cfg.name} at {path}: include it in --stages "
                                    f"(e.g. --stages teacher,distilled) or point --out at the run that has it")
            header = _restore(trainer, path, meta, strict=not reuse_only)
            planned = int(header["config"]["epochs"])
            if reuse_only and trainer.start_epoch < planned:
                raise StageRunError(f"the saved {cfg.name} at {path} finished {trainer.start_epoch} of its "
                                    f"{planned} epochs: finish it with --stages {cfg.name} --resume")
            if reuse_only:
                trainer.cfg = StageConfig.from_dict(header["config"])  # the teacher as it was trained
    except (CheckpointError, ValueError) as exc:
        raise StageRunError(str(exc)) from None

    bar = None
    if progress and trainer.start_epoch < cfg.epochs:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=trainer.start_epoch, desc=f"{cfg.name} (seed {cfg.seed})",
                   unit="ep", dynamic_ncols=True, file=sys.stderr)

    saved = {"epochs": trainer.start_epoch if trainer.start_epoch else None}  # what `path` holds of this run

    def on_epoch(log):
        if bar is not None:
            bar.update(1)
            shown = {"loss": f"{log.loss:.4f}"}
            if log.soft_kl is not None:  # distilling: the loss in parts (hard CE, soft_weight T^2 KL(q || p))
                shown["hard"] = "-" if log.hard_loss is None else f"{log.hard_loss:.4f}"
                shown["T2KL"] = f"{log.soft_kl:.4f}"
            if log.logit_mse is not None:
                shown["hard"] = "-" if log.hard_loss is None else f"{log.hard_loss:.4f}"
                shown["logit_mse"] = f"{log.logit_mse:.4f}"
            if log.bound_clipped is not None:   # the per-row bound: share of rows rescaled, their mean scale
                shown["bounded"] = f"{100 * log.bound_clipped:.0f}%"
                shown["scale"] = "-" if log.bound_scale is None else f"{log.bound_scale:.2f}"
            shown["errors"] = log.test_errors if log.test_errors >= 0 else "-"
            shown["s_per_ep"] = f"{log.sec:.2f}"
            bar.set_postfix(shown)  # a dict keeps this order (keyword arguments would be sorted)
        if after_epoch is not None:
            after_epoch(trainer, log)
        if policy.due(log.epoch + 1, log.epoch + 1 == cfg.epochs) or stop.requested:
            save_checkpoint(path, trainer, meta, environment=environment)
            policy.saved()
            saved["epochs"] = trainer.start_epoch
        if stop.requested and log.epoch + 1 < cfg.epochs:
            raise KeyboardInterrupt

    t0 = time.time()
    stop = StopAfterEpoch(f"{cfg.name} (seed {cfg.seed})")
    try:
        with stop:
            trainer.fit(on_epoch=on_epoch, eval_every=eval_every)
    except DivergenceError as exc:
        if saved["epochs"] and path.exists():
            where = f"The last good checkpoint is {path} (epoch {saved['epochs']} of {cfg.epochs})."
        else:
            where = f"No checkpoint of this {cfg.name} was written before it stopped."
        raise StageDiverged(f"{str(exc).rstrip('.')}. {where}") from None
    finally:
        if bar is not None:
            bar.close()
    hist = trainer.history
    if not hist:
        raise StageRunError(f"{cfg.name}: no epoch was trained or restored")
    final = hist[-1]
    if final.test_errors < 0:  # restored mid-interval: evaluate now
        final = replace(final, test_errors=int(to_host(count_test_errors(trainer.model, arrays["x_test"],
                                                                         arrays["y_test"]))))
        hist[-1] = final
    entry = {
        "seed": cfg.seed,
        "test_errors": int(final.test_errors),
        "n_eval": int(arrays["n_eval"]),
        "evaluated_on": arrays["eval_name"],
        "epochs": int(len(hist)),
        "train_size": int(arrays["n_train"]),
        "sec_per_epoch": float(sum(h.sec for h in hist) / len(hist)),
        "wall_seconds": float(time.time() - t0),  # this process only (a resumed stage: since the resume)
        "train_seconds_total": float(sum(h.sec for h in hist)),  # all training passes, across resumes
        "backend": trainer.backend,
        "fast_step": trainer.step_impl is not None,
        "checkpoint": str(path),
        "history": [vars(h) for h in hist],
        "config": cfg.to_dict(),
    }
    return trainer, entry
