"""Checkpoints: one ``.npz`` per stage, and the atomic writes every output uses.

A checkpoint holds only arrays (parameters, velocities) and a JSON string
(configuration, history, dataset fingerprint). It is read with
``allow_pickle=False`` -- a checkpoint is data, never code -- and written to a
temporary file that is renamed over the old one only when complete.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..engine.backend import to_host
from ..train import EpochLog, StageConfig, build_model


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (wrong model/dataset, unreadable)."""


def atomic_write_bytes(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    A crash before the rename leaves the previous file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(path, trainer, meta):
    """Parameters, velocities and a JSON header (config, epoch, history, meta)."""
    arrays = {f"param.{k}": to_host(v) for k, v in trainer.model.state_dict().items()}
    arrays.update({f"velocity.{k}": to_host(v) for k, v in trainer.optimizer.state_dict().items()})
    header = {
        "format": "minikd-checkpoint-1",
        "config": trainer.cfg.to_dict(),
        "epochs_done": trainer.start_epoch,
        "history": [vars(h) for h in trainer.history],
        "meta": meta,
    }
    arrays["header"] = np.array(json.dumps(header))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path):
    """(header dict, {name: array}) from a checkpoint; never unpickles anything."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in z.files if k != "header"}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist")
    except (ValueError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or not a minikd checkpoint "
                              f"({type(exc).__name__}: {exc}); delete it or choose another --out")
    if header.get("format") != "minikd-checkpoint-1":
        raise CheckpointError(f"{path} is not a minikd checkpoint (format {header.get('format')!r})")
    return header, arrays


def check_compatible(path, header, cfg, meta):
    """Refuse a checkpoint of another architecture or dataset, saying which."""
    saved = header["config"]
    if tuple(saved["sizes"]) != tuple(cfg.sizes):
        raise CheckpointError(f"checkpoint {path} holds a {'-'.join(map(str, saved['sizes']))} network, "
                              f"this run needs {'-'.join(map(str, cfg.sizes))}; use another --out "
                              f"or delete the file")
    for key in ("dataset", "train_size", "validation"):
        if header["meta"].get(key) != meta.get(key):
            raise CheckpointError(f"checkpoint {path} was trained with {key}={header['meta'].get(key)!r}, "
                                  f"this run uses {key}={meta.get(key)!r}; use another --out or delete it")


def _with_prefix(arrays, prefix):
    """{name: array} for the checkpoint entries "<prefix><name>"."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def checkpoint_params(arrays):
    """The model parameters of a checkpoint, keyed as ``Sequential.state_dict``."""
    return _with_prefix(arrays, "param.")


def load_into(trainer, header, arrays):
    """Restore parameters, velocities and history so training continues where it stopped."""
    trainer.model.load_state_dict(checkpoint_params(arrays))
    trainer.optimizer.load_state_dict(_with_prefix(arrays, "velocity."))
    trainer.start_epoch = int(header["epochs_done"])
    trainer.history = [EpochLog(**h) for h in header["history"]]


def load_teacher(path, xp, *, dataset):
    """(model, info) from a teacher checkpoint written by scripts/reproduce.py
    (or by these scripts). Refuses, naming the file, a checkpoint of another
    dataset or input/output size. Raises experiment.CheckpointError."""
    header, arrays = read_checkpoint(path)
    cfg = StageConfig.from_dict(header["config"])
    meta = header.get("meta") or {}
    if meta.get("dataset") not in (None, dataset.name):
        raise CheckpointError(f"--teacher {path} was trained on --dataset {meta.get('dataset')}, this run uses "
                              f"--dataset {dataset.name}: pass a teacher of the same dataset, or leave "
                              f"--teacher out to train one")
    if cfg.sizes[0] != dataset.n_features or cfg.sizes[-1] != dataset.n_classes:
        raise CheckpointError(f"--teacher {path} is a {'-'.join(map(str, cfg.sizes))} network; --dataset "
                              f"{dataset.name} needs {dataset.n_features} inputs and {dataset.n_classes} "
                              f"outputs")
    model = build_model(cfg, xp)
    model.load_state_dict(checkpoint_params(arrays))
    if int(header["epochs_done"]) < int(cfg.epochs):
        import sys
        print(f"warning: --teacher {path} finished only {header['epochs_done']} of its {cfg.epochs} epochs; "
              f"using it as it is", file=sys.stderr)
    info = {"path": str(path), "sizes": list(cfg.sizes), "epochs_done": int(header["epochs_done"]),
            "epochs_planned": int(cfg.epochs), "meta": meta,
            "saw_all_training_rows": not meta.get("validation", False),
            "train_size": meta.get("train_size")}
    return model, info
