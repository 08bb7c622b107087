"""Command-line plumbing shared by the scripts: common flags, clean failures,
and running one training stage with a progress bar, checkpoints and resume."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from .backend import BackendError, get_backend, to_host
from .data import DataError, load_dataset
from .experiment import (STAGE_KEYS, CheckpointError, check_compatible, load_into, read_checkpoint,
                         save_checkpoint)
from .train import DivergenceError, StageConfig, Trainer, count_test_errors


class StageRunError(RuntimeError):
    """A stage cannot run or stopped (message is for the user)."""


def add_common_args(p, *, default_out):
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="auto",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy if a GPU is usable; default)")
    p.add_argument("--dataset", choices=("mnist", "idx", "digits"), default="mnist",
                   help="mnist (verified download or folder; default), idx (any folder of MNIST-format "
                        "files, needs --data-dir), digits (scikit-learn's bundled 8x8 digits, offline)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the four IDX files (wins over $MINIKD_DATA_DIR; never modified)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")


def fail(message, code=1):
    """One short message on stderr, no traceback, non-zero exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def pick_backend_or_exit(name):
    try:
        return get_backend(name)
    except BackendError as exc:
        fail(f"--backend {name}: {exc}")


def load_data_or_exit(args):
    try:
        return load_dataset(args.dataset, data_dir=args.data_dir)
    except DataError as exc:
        hint = ""
        if (args.dataset == "mnist" and args.data_dir is None and not os.environ.get("MINIKD_DATA_DIR")
                and "--dataset digits" not in str(exc)):
            hint = (" -- point --data-dir at a folder with the four MNIST files, or use "
                    "--dataset digits to run offline on scikit-learn's bundled digits")
        fail(f"{exc}{hint}")


def checkpoint_path(out, cfg):
    key = STAGE_KEYS[cfg.name]
    return Path(out) / (f"{key}.npz" if cfg.name == "teacher" else f"{key}_seed{cfg.seed}.npz")


def _restore(trainer, path, meta, *, strict=True):
    """Load a checkpoint into ``trainer``. Always refuses another architecture
    or dataset; ``strict`` (resuming) also refuses any other training setting,
    since continuing under a different schedule would not be the same run."""
    header, arrays = read_checkpoint(path)
    check_compatible(path, header, trainer.cfg, meta)
    saved = StageConfig.from_dict(header["config"]).to_dict()  # fills fields added since it was saved
    mine = trainer.cfg.to_dict()
    diff = [k for k in mine if strict and k != "epochs" and saved.get(k) != mine[k]]
    if diff:
        k = diff[0]
        raise CheckpointError(f"checkpoint {path} was trained with {k}={saved.get(k)!r}, this run asks for "
                              f"{k}={mine[k]!r}; rerun with the same flags, or use another --out")
    load_into(trainer, header, arrays)
    return header


def run_stage(cfg, arrays, xp, *, out, resume=False, meta=None, fast=True, checkpoint_every=1,
              eval_every=1, soft_logits=None, reuse_only=False, progress=True):
    """Train (or resume, or reuse) one stage; returns (trainer, results entry).

    reuse_only: load a finished checkpoint and never train (the saved teacher
    for a distill-only run).
    """
    meta = dict(meta or {})
    path = checkpoint_path(out, cfg)
    try:
        trainer = Trainer(cfg, xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                          soft_logits=soft_logits, fast=fast)
        if reuse_only or (resume and path.exists()):
            if reuse_only and not path.exists():
                raise StageRunError(f"no saved {cfg.name} at {path}: include it in --stages "
                                    f"(e.g. --stages teacher,distill) or point --out at the run that has it")
            header = _restore(trainer, path, meta, strict=not reuse_only)
            planned = int(header["config"]["epochs"])
            if reuse_only and trainer.start_epoch < planned:
                raise StageRunError(f"the saved {cfg.name} at {path} finished {trainer.start_epoch} of its "
                                    f"{planned} epochs: finish it with --stages {cfg.name} --resume")
            if reuse_only:
                trainer.cfg = StageConfig.from_dict(header["config"])  # the teacher as it was trained
    except (CheckpointError, ValueError) as exc:
        raise StageRunError(str(exc))

    bar = None
    if progress and trainer.start_epoch < cfg.epochs:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=trainer.start_epoch, desc=f"{cfg.name} (seed {cfg.seed})",
                   unit="ep", dynamic_ncols=True, file=sys.stderr)

    def on_epoch(log):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{log.loss:.4f}", errors=log.test_errors if log.test_errors >= 0 else "-",
                            s_per_ep=f"{log.sec:.2f}")
        if (log.epoch + 1) % checkpoint_every == 0 or log.epoch + 1 == cfg.epochs:
            save_checkpoint(path, trainer, meta)

    t0 = time.time()
    try:
        trainer.fit(on_epoch=on_epoch, eval_every=eval_every)
    except DivergenceError as exc:
        raise StageRunError(f"{exc}. The last good checkpoint is {path}.")
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
