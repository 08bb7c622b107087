"""Checkpoints: one ``.npz`` per stage, the one reader and the one loader of a
trained network, and the atomic writes every output uses. ``minikd.load`` reads
them, and the commands write them; nothing here depends on the commands.

A checkpoint holds only arrays (parameters, velocities) and a JSON string
(configuration, history, dataset fingerprint). It is read with
``allow_pickle=False`` -- a checkpoint is data, never code -- and written to a
temporary file that is renamed over the old one only when complete.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .engine.backend import to_host
from .train import EpochLog, StageConfig, build_model


#: The format this minikd writes and reads; a checkpoint of any other is refused, naming both.
FORMAT = "minikd-checkpoint-2"
SUPPORTED_FORMATS = (FORMAT,)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (wrong model/dataset, unreadable)."""


def _umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    A crash before the rename leaves the previous file untouched (and at worst
    a hidden ``.<name>.*.tmp``, which the next run on that folder removes:
    ``outdir.remove_stale_temporaries``). mkstemp creates the file readable by
    its owner only; it gets the mode of any other new file (0666 minus the
    umask) before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(path, trainer, meta, *, environment=None):
    """Parameters, velocities and a JSON header (config, epoch, history, meta, and the
    ``environment`` that trained it: minikd's version and commit, the machine, the command)."""
    arrays = {f"param.{k}": to_host(v) for k, v in trainer.model.state_dict().items()}
    arrays.update({f"velocity.{k}": to_host(v) for k, v in trainer.optimizer.state_dict().items()})
    header = {
        "format": FORMAT,
        "config": trainer.cfg.to_dict(),
        "epochs_done": trainer.start_epoch,
        "history": [vars(h) for h in trainer.history],
        "meta": meta,
        "environment": environment,
    }
    arrays["header"] = np.array(json.dumps(header))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def _unreadable(path, reason, owned):
    if owned:  # a file this run's --out holds: the run wrote it, and may write it again
        what = (f"checkpoint {path} is unreadable ({reason}); delete it to train that stage again, "
                f"or choose another --out")
    else:      # the user's file (--teacher, agreement's models): never advise deleting it
        what = (f"{path} is unreadable ({reason}); pass a checkpoint written by minikd "
                f"(e.g. runs/reproduce/teacher.npz)")
    return CheckpointError(what)


def read_checkpoint(path, *, owned=True):
    """(header dict, {name: array}) from a checkpoint; never unpickles anything.

    Every way a file can be unusable -- missing, empty, truncated, random
    bytes, pickled objects, no header, a header of another format -- raises
    CheckpointError with one line naming the file. owned: the file lies in
    the run's own --out (the message may then say to delete it); False for a
    file the user passed (--teacher).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if size == 0:
        raise _unreadable(path, "it is empty, 0 bytes", owned)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise _unreadable(path, "it is a single .npy array, not a .npz checkpoint", owned)
        with z:
            if "header" not in z.files:
                raise _unreadable(path, "it has no minikd header", owned)
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in z.files if k != "header"}
    except CheckpointError:
        raise
    except PermissionError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise _unreadable(path, "its header is not valid JSON", owned) from None
    except ValueError as exc:
        reason = ("not an .npz archive of plain arrays: reading it would need pickle, which minikd never uses"
                  if "pickle" in str(exc)
                  else f"not a .npz archive of arrays: {exc}")
        raise _unreadable(path, reason, owned) from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise _unreadable(path, f"truncated or damaged: {type(exc).__name__}", owned) from None
    if not isinstance(header, dict) or header.get("format") not in SUPPORTED_FORMATS:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise _unreadable(path, f"its format version is {found!r}; this minikd reads "
                                f"{', '.join(map(repr, SUPPORTED_FORMATS))} (train it again with this version)", owned)
    problem = _header_problem(header)
    if problem:
        raise _unreadable(path, problem, owned)
    return header, arrays


def _header_problem(header):
    """What is wrong with a header of the right format (None when nothing)."""
    config = header.get("config")
    if not isinstance(config, dict):
        return "its header has no config"
    try:
        StageConfig.from_dict(config)
    except (TypeError, KeyError, ValueError) as exc:
        return f"its config does not describe a minikd stage ({exc})"
    if not isinstance(header.get("epochs_done"), int):
        return "its header has no epochs_done"
    if not isinstance(header.get("history"), list):
        return "its header has no history"
    if not isinstance(header.get("meta", {}), dict):
        return "its header's meta is not a dict"
    return None


def data_fingerprint(dataset):
    """What a checkpoint records about the data it was trained on (``Dataset.fingerprint``);
    None for a stand-in without one (nothing to compare)."""
    fingerprint = getattr(dataset, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else None


def _describe(data):
    shape = "x".join(map(str, data.get("image_shape", [])))
    return (f"sha256 {str(data.get('sha256'))[:12]}... ({data.get('source')}, {data.get('n_classes')} classes, "
            f"{shape} images)")


def check_same_data(path, saved_meta, data, *, flag="checkpoint"):
    """Refuse a checkpoint trained on other data than ``data`` (a fingerprint dict), naming both.
    ``data`` None: a stand-in dataset without a fingerprint, nothing to compare."""
    if data is None:
        return
    saved = saved_meta.get("data")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{flag} {path} records no fingerprint of the data it was trained on, so it cannot "
                              f"be checked against {data.get('source')}; train it again with this minikd")
    for key in ("sha256", "n_classes", "image_shape"):
        if saved.get(key) != data.get(key):
            raise CheckpointError(f"{flag} {path} was trained on other data: {_describe(saved)}; this run "
                                  f"uses {_describe(data)}. Use the data it was trained on, or "
                                  + ("another --out" if flag == "checkpoint" else
                                     "a teacher trained on this data (or leave --teacher out to train one)"))


def check_compatible(path, header, cfg, meta):
    """Refuse a checkpoint of another architecture or dataset, saying which."""
    saved = header["config"]
    if tuple(saved["sizes"]) != tuple(cfg.sizes):
        raise CheckpointError(f"checkpoint {path} holds a {'-'.join(map(str, saved['sizes']))} network, "
                              f"this run needs {'-'.join(map(str, cfg.sizes))}; use another --out "
                              f"or delete the file")
    saved_meta = header.get("meta") or {}
    for key in ("dataset", "train_size", "validation"):
        if saved_meta.get(key) != meta.get(key):
            raise CheckpointError(f"checkpoint {path} was trained with {key}={saved_meta.get(key)!r}, "
                                  f"this run uses {key}={meta.get(key)!r}; use another --out or delete it")
    check_same_data(path, saved_meta, meta.get("data"))


def _with_prefix(arrays, prefix):
    """{name: array} for the checkpoint entries "<prefix><name>"."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def checkpoint_params(arrays):
    """The model parameters of a checkpoint, keyed as ``Sequential.state_dict``."""
    return _with_prefix(arrays, "param.")


def load_into(trainer, header, arrays, path="checkpoint"):
    """Restore parameters, velocities and history so training continues where it stopped."""
    try:
        trainer.model.load_state_dict(checkpoint_params(arrays))
        trainer.optimizer.load_state_dict(_with_prefix(arrays, "velocity."))
        history = [EpochLog(**h) for h in header["history"]]
    except (KeyError, ValueError, TypeError) as exc:
        raise _unreadable(path, f"its arrays do not fit its network: {exc}", True) from None
    trainer.start_epoch = int(header["epochs_done"])
    trainer.history = history


def load_model(path, xp=np, *, flag=None):
    """(network, StageConfig, header) from any checkpoint minikd writes: the one place a trained
    network is rebuilt from a file (``minikd.load``, --teacher, the figures, agreement).

    The network is the engine's Sequential on ``xp``, its parameters the checkpoint's. flag: the
    command-line flag that named the file, for the messages. Raises CheckpointError, naming the
    file, when it is unreadable or its arrays do not fit the network its header describes.
    """
    header, arrays = read_checkpoint(path, owned=False)
    cfg = StageConfig.from_dict(header["config"])
    network = build_model(cfg, xp)
    try:
        network.load_state_dict(checkpoint_params(arrays))
    except ValueError as exc:
        raise CheckpointError(f"{flag + ' ' if flag else ''}{path}: its arrays do not fit the "
                              f"{'-'.join(map(str, cfg.sizes))} network its header describes ({exc}); pass a "
                              f"checkpoint written by minikd") from None
    return network, cfg, header


def check_fits(path, cfg, n_features, n_classes, *, flag=None, data="this dataset"):
    """Refuse a network whose input or output size is not the data's, naming both."""
    if cfg.sizes[0] != n_features or cfg.sizes[-1] != n_classes:
        raise CheckpointError(f"{flag + ' ' if flag else ''}{path} is a {'-'.join(map(str, cfg.sizes))} "
                              f"network; {data} needs {n_features} inputs and {n_classes} outputs")


def load_teacher(path, xp, *, dataset):
    """(model, info) from a teacher checkpoint (``minikd reproduce``'s teacher.npz, or a teacher the
    section-3 commands trained): what every ``--teacher`` flag loads. Refuses, naming the file, a
    checkpoint that is not a teacher, or of another dataset, data or input/output size. Raises
    CheckpointError."""
    model, cfg, header = load_model(path, xp, flag="--teacher")
    if cfg.name != "teacher":
        raise CheckpointError(f"--teacher {path} holds a {cfg.name} stage, not a teacher: pass a teacher "
                              f"checkpoint (e.g. runs/reproduce/teacher.npz), or leave --teacher out to train one")
    meta = header.get("meta") or {}
    if meta.get("dataset") not in (None, dataset.name):
        raise CheckpointError(f"--teacher {path} was trained on --dataset {meta.get('dataset')}, this run uses "
                              f"--dataset {dataset.name}: pass a teacher of the same dataset, or leave "
                              f"--teacher out to train one")
    check_fits(path, cfg, dataset.n_features, dataset.n_classes, flag="--teacher",
               data=f"--dataset {dataset.name}")
    check_same_data(path, meta, data_fingerprint(dataset), flag="--teacher")
    if int(header["epochs_done"]) < int(cfg.epochs):
        print(f"warning: --teacher {path} finished only {header['epochs_done']} of its {cfg.epochs} epochs; "
              f"using it as it is", file=sys.stderr)
    info = {"path": str(path), "sizes": list(cfg.sizes), "epochs_done": int(header["epochs_done"]),
            "epochs_planned": int(cfg.epochs), "meta": meta,
            "saw_all_training_rows": not meta.get("validation", False),
            "train_size": meta.get("train_size"), "profile": meta.get("profile"),
            "config": cfg.to_dict(), "environment": header.get("environment")}
    return model, info
