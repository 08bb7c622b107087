"""What the scripts share: profiles, stage configurations, checkpoints, results.

A *profile* is a named training budget. ``paper`` is the recipe of Hinton et
al. (2012, appendix A) as the 2015 paper used it: batch 100, 3,000 epochs,
eps_t = eps_0 * 0.998^t, momentum 0.5 -> 0.99 over 500 epochs. ``quick`` is
the same recipe compressed to fit a 2-core CPU in about half an hour: fewer
epochs, and the learning-rate decay and momentum ramp shortened in
proportion. The choices and the validation runs behind them are in README.md.

Checkpoints are ``.npz`` files holding only arrays (parameters, velocities)
and a JSON string (configuration, history, dataset fingerprint). They are read
with ``allow_pickle=False`` -- a checkpoint is data, never code -- and written
to a temporary file that is renamed over the old one only when complete.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .backend import backend_name, to_device, to_host
from .data import to_float, train_val_split
from .train import EpochLog, StageConfig

PAPER_TABLE = {"teacher": 67, "student": 146, "distilled": 74}
SEED_REPRO_TABLE = {"teacher": 100, "student": 171, "distilled": 111}
STAGE_KEYS = {"teacher": "teacher", "student": "student", "distill": "distilled"}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (wrong model/dataset, unreadable)."""


# --------------------------------------------------------------------------- profiles
def profile_configs(profile, *, n_features, n_classes, image_shape, epochs=None, seed=0,
                    temperature=20.0, hard_weight=None, soft_weight=1.0, lr=None, lr_warmup=None, lr_decay=None,
                    max_norm=15.0, max_norm_on="squared", jitter=2):
    """StageConfig for "teacher", "student" and "distill" under ``profile``.

    max_norm / max_norm_on: the paper's limit and what it bounds. "squared"
    reads 15 as a bound on the squared length (length <= sqrt(15) = 3.87, as
    public code did); "length" bounds the length itself by 15.
    """
    if profile not in ("quick", "paper"):
        raise ValueError(f"unknown profile {profile!r}: choose quick or paper")
    if max_norm_on not in ("squared", "length"):
        raise ValueError(f"--max-norm-on must be 'squared' or 'length', got {max_norm_on!r}")
    limit = float(np.sqrt(max_norm)) if max_norm_on == "squared" else float(max_norm)
    base = dict(batch_size=100, momentum_start=0.5, momentum_end=0.99, rule="hinton2012")
    # eps_0 was chosen on the validation split (README, "Choices"): 1 for every
    # stage, except the quick profile's teacher, whose 150 epochs do better at 0.7.
    lrs = {"teacher": 1.0, "student": 1.0, "distill": 1.0}
    if profile == "quick":
        lrs["teacher"] = 0.7
    if profile == "paper":
        e = {"teacher": 3000, "student": 3000, "distill": 3000}
    else:
        # Epochs fit one seed of all three stages into about half an hour on a
        # 2-core CPU; chosen on the validation split (README, "Choices").
        e = {"teacher": 150, "student": 70, "distill": 70}
    # The distillation hard weight, chosen at the quick budget and used by both profiles.
    hw = 1.0 if hard_weight is None else hard_weight
    if epochs is not None:
        e = {k: int(epochs) for k in e}
    if lr is not None:
        lrs = {k: float(lr) for k in lrs}

    def decay_for(n_epochs):
        if lr_decay is not None:
            return float(lr_decay)
        # Over the paper's 3,000 epochs eps falls by 0.998^3000 ~ 1/400. The
        # quick profile keeps that total fall, spread over its own epochs.
        if profile == "paper":
            return 0.998
        return float(0.998 ** (3000.0 / max(n_epochs, 1)))

    def ramp_for(n_epochs):
        return 500.0 if profile == "paper" else max(1.0, n_epochs / 6.0)

    sizes_t = (n_features, 1200, 1200, n_classes)
    sizes_s = (n_features, 800, 800, n_classes)
    common = dict(image_shape=tuple(image_shape), seed=seed, **base)
    teacher = StageConfig("teacher", sizes_t, e["teacher"], input_dropout=0.2, hidden_dropout=0.5,
                          max_norm=limit, jitter=jitter, lr=lrs["teacher"],
                          lr_decay=decay_for(e["teacher"]), momentum_ramp=ramp_for(e["teacher"]),
                          **common)
    student = StageConfig("student", sizes_s, e["student"], lr=lrs["student"],
                          lr_decay=decay_for(e["student"]), momentum_ramp=ramp_for(e["student"]),
                          **common)
    # The soft-target loss at T = 20 keeps pushing the student's logits towards
    # the teacher's (a range of about 20), and at full rate in the first epoch
    # that kills about half of the first layer's ReLUs for good. A 7-epoch
    # linear warm-up (epoch 0 at eps_0 / 8) prevents it (README, "Choices").
    distill_warmup = 7
    if lr_warmup is not None:
        student = replace(student, lr_warmup=int(lr_warmup))
        distill_warmup = int(lr_warmup)
    distill = replace(student, name="distill", epochs=e["distill"], lr=lrs["distill"],
                      lr_warmup=distill_warmup,
                      lr_decay=decay_for(e["distill"]), momentum_ramp=ramp_for(e["distill"]),
                      temperature=float(temperature), hard_weight=float(hw),
                      soft_weight=float(soft_weight))
    return {"teacher": teacher, "student": student, "distill": distill}


# --------------------------------------------------------------------------- data on device
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


def save_figure(fig, path, dpi=110):
    """Write a matplotlib figure as PNG atomically, then free it."""
    import matplotlib.pyplot as plt
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    plt.close(fig)


def prepare_arrays(dataset, xp, *, train_size=None, validation=False):
    """Float32 inputs (N, D) in [0, 1] and int32 labels, moved to ``xp`` once.

    validation=True trains on the first part of the training set and
    evaluates on the held-out rest (``data.train_val_split``) instead of the
    test set: the honest way to choose schedules. Returns a dict with x_train,
    y_train, x_test, y_test (device arrays), eval_name and n_train.
    """
    x_tr, y_tr = training_subset(dataset, train_size)
    if validation:
        tr_idx, va_idx = train_val_split(len(y_tr))
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


# --------------------------------------------------------------------------- checkpoints
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


# --------------------------------------------------------------------------- results
def environment_info(xp):
    info = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "backend": backend_name(xp),
    }
    try:
        import scipy
        info["scipy"] = scipy.__version__
    except ImportError:
        pass
    if backend_name(xp) == "numpy":
        from . import fast
        info["fused_step_blas"] = fast.GEMM_NAME
    if backend_name(xp) == "cupy":
        info["cupy"] = xp.__version__
        try:
            props = xp.cuda.runtime.getDeviceProperties(0)
            info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        except Exception:
            pass
    return info


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")

