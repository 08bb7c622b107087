"""Command-line plumbing shared by the commands: common flags, range-checked
numbers, clean failures, and the guard around a run's output folder.

Every numeric flag goes through ``number(...)``: argparse then refuses a value
outside its range at parse time (exit 2), with a message naming the flag, the
value and the range -- before any data is loaded or any epoch trained.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from ..data import DataError, load_dataset
from ..engine.backend import BackendError, get_backend


# --------------------------------------------------------------------------- numbers
def number(kind, *, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type=`` that parses ``kind`` (int or float) and checks its range.

    low/high: the bounds (None = unbounded); *_open: the bound itself is excluded.
    Floats must be finite (nan and inf are refused). argparse reports a refusal as
    ``argument --lr: -1 is out of range: must be a finite number > 0`` and exits 2.
    """
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    what = "a finite number" if kind is float else "a whole number"
    allowed = what + (" " + " and ".join(parts) if parts else "")

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a number' if kind is float else 'a whole number'}"
                                             f": give {allowed}") from None
        bad = kind is float and not math.isfinite(value)
        bad = bad or (low is not None and (value <= low if low_open else value < low))
        bad = bad or (high is not None and (value >= high if high_open else value > high))
        if bad:
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {allowed}")
        return value

    parse.__name__ = kind.__name__  # what argparse names in its own messages
    parse.allowed = allowed
    return parse


POSITIVE_INT = number(int, low=1)             # counts: epochs, seeds, widths, every-N
NON_NEGATIVE_INT = number(int, low=0)         # seeds of generators, warm-up epochs
POSITIVE_FLOAT = number(float, low=0, low_open=True)
NON_NEGATIVE_FLOAT = number(float, low=0)
DECAY_FACTOR = number(float, low=0, high=1, low_open=True)  # eps_t = eps_0 * d^t: 0 < d <= 1


def bound_or_none(text):
    """--grad-bound: a finite number > 0, or "none" (no bound: the paper's gradient).

    Returns the float, or the string "none" -- so that a flag left out
    (default None) still means "the profile's bound".
    """
    if text.strip().lower() == "none":
        return "none"
    try:
        return POSITIVE_FLOAT(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or none") from None


bound_or_none.__name__ = "bound"  # what argparse names in its own messages
bound_or_none.allowed = f"{POSITIVE_FLOAT.allowed}, or none"


def check_loss_weights(p, hard_weight, soft_weight, *, hard_default=1.0):
    """Refuse a distillation loss with both terms switched off (it would train nothing)."""
    hard = hard_default if hard_weight is None else hard_weight
    if hard == 0 and soft_weight == 0:
        p.error("--hard-weight 0 with --soft-weight 0 leaves the distilled student no loss to learn "
                "from: give at least one of them a weight > 0")


def check_float_list(p, flag, values, *, low=0.0):
    """Every value finite and > low (e.g. --temperatures)."""
    bad = [v for v in values if not math.isfinite(v) or v <= low]
    if bad:
        p.error(f"argument {flag}: {', '.join(f'{v:g}' for v in bad)} out of range: every value must be a "
                f"finite number > {low:g}")


def check_int_list(p, flag, values, *, low=1):
    bad = [v for v in values if v < low]
    if bad:
        p.error(f"argument {flag}: {', '.join(map(str, bad))} out of range: every value must be a whole "
                f"number >= {low}")


# --------------------------------------------------------------------------- common flags
def add_common_args(p, *, default_out):
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="auto",
                   help="array library: numpy (CPU), cupy (CUDA GPU), auto (cupy if a GPU is usable; default)")
    p.add_argument("--dataset", choices=("mnist", "idx", "digits"), default="mnist",
                   help="mnist (verified download or folder; default), idx (any folder of MNIST-format "
                        "files, needs --data-dir), digits (scikit-learn's bundled 8x8 digits, offline)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the four IDX files (wins over $MINIKD_DATA_DIR; never modified)")
    p.add_argument("--allow-missing-classes", action="store_true",
                   help="--dataset idx: accept training labels 0..K-1 in which some classes never occur "
                        "(e.g. EMNIST letters, 1..26); by default that is refused as a damaged file")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed, >= 0 (default 0)")
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
        return load_dataset(args.dataset, data_dir=args.data_dir,
                            allow_missing_classes=getattr(args, "allow_missing_classes", False))
    except DataError as exc:
        hint = ""
        if (args.dataset == "mnist" and args.data_dir is None and not os.environ.get("MINIKD_DATA_DIR")
                and "--dataset digits" not in str(exc)):
            hint = (" -- point --data-dir at a folder with the four MNIST files, or use "
                    "--dataset digits to run offline on scikit-learn's bundled digits")
        fail(f"{exc}{hint}")


# --------------------------------------------------------------------------- the output folder
LOCK_NAME = ".minikd.lock"  # filelock's: held while a run writes in --out
PID_NAME = ".minikd.pid"    # ours: the holder's pid, for the message a second run gets

#: Every file a command writes in --out, one glob per path component (``*``
#: never crosses a ``/``). The one list of what minikd owns there: a hidden
#: temporary is removed only when it stands for one of these (and the tests
#: check that the commands write nothing else).
OUT_FILES = (
    "results.json",                                            # every command
    "teacher.npz", "student_seed*.npz", "distilled_seed*.npz",  # stage.checkpoint_path
    "learning_curves.png",                                     # reproduce
    "mythical_digit.csv", "mythical_digit.png",                # mythical_digit, and per experiment:
    "omit*/distilled_seed*.npz", "only*/distilled_seed*.npz",
    "sweep.csv", "sweep.png", "cells/T*_w*_s*.json",           # temperature_sweep
    LOCK_NAME, PID_NAME,                                       # guarded_run
)

# checkpoints.atomic_write_bytes writes <name> through mkstemp(prefix=".<name>.", suffix=".tmp"):
# the random middle is letters, digits and "_" (tempfile's alphabet), with no dot.
TEMPORARY = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")


class OutError(RuntimeError):
    """--out cannot be used (message is for the user)."""


def written_by_minikd(relpath):
    """Whether ``relpath`` (relative to --out, "/"-separated) is a file OUT_FILES lists."""
    parts = PurePosixPath(relpath).parts
    for pattern in OUT_FILES:
        globs = pattern.split("/")
        if len(globs) == len(parts) and all(map(fnmatchcase, parts, globs)):
            return True
    return False


def check_out_dir(out):
    """Create ``out`` if needed and make sure files can be written in it.

    Raises OutError naming --out when it is a file, lies under a file, or is
    not writable -- so a run refuses before its first epoch, not after it.
    """
    out = Path(out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under {parent}, which is a file"
            raise OutError(f"--out {out} {where}; --out names a folder: choose another path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".minikd-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutError(f"--out {out} cannot be written ({reason}); choose a folder you can write to")
    return out


class OutLock:
    """The hold ``lock_out_dir`` takes on a folder; ``close()`` gives it back."""

    def __init__(self, out):
        self.lock = FileLock(str(Path(out) / LOCK_NAME))
        self.pid_file = Path(out) / PID_NAME

    def close(self):
        # The pid goes first, while the lock still keeps every other run out.
        self.pid_file.unlink(missing_ok=True)
        self.lock.release()


def lock_out_dir(out):
    """Hold an exclusive lock on ``out`` until the returned OutLock is closed.

    filelock takes an OS lock (flock on POSIX, msvcrt.locking on Windows), which
    the OS drops when the process ends, however it ends (SIGKILL included), so
    a killed run never leaves the folder locked. Raises OutError when another
    process holds it, naming that process's pid. filelock owns the lock file
    (it may truncate or delete it), so the pid is kept in a file of its own.
    """
    held = OutLock(out)
    try:
        held.lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = held.pid_file.read_text().strip()
        except OSError:
            holder = ""
        raise OutError(f"--out {out} is in use by another run ({holder or 'pid unknown'}); wait for it "
                       f"to finish, or choose another --out")
    except OSError as exc:
        raise OutError(f"--out {out}: cannot lock {held.lock.lock_file} ({exc}); choose another --out")
    held.pid_file.write_text(f"pid {os.getpid()}\n")
    return held


def remove_stale_temporaries(out):
    """Delete the temporaries an earlier run left when it was killed mid-write.

    Only minikd's own: ``.<name>.<random>.tmp`` (checkpoints.atomic_write_bytes)
    where <name> is a file OUT_FILES lists, in ``out`` itself and in the
    subfolders minikd creates there (omit3/, only78/, cells/). Nothing else
    is touched: not another program's ``.session.tmp``, not any file in a
    folder of the user's own. Call only while holding the lock.
    """
    out = Path(out)
    subfolders = {pattern.split("/")[0] for pattern in OUT_FILES if "/" in pattern}
    folders = [out] + [d for d in sorted(out.iterdir()) if any(fnmatchcase(d.name, g) for g in subfolders)
                       and d.is_dir() and not d.is_symlink()]
    removed = []
    for folder in folders:
        for tmp in sorted(folder.iterdir()):
            match = TEMPORARY.fullmatch(tmp.name)
            if match is None or tmp.is_symlink() or not tmp.is_file():
                continue
            if not written_by_minikd((tmp.parent / match["name"]).relative_to(out).as_posix()):
                continue
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


class Terminated(BaseException):
    """SIGTERM, turned into an exception so the run unwinds like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def guarded_run(out, *, how_to_continue):
    """The folder a run writes to, checked, locked and cleaned, and a clean stop.

    Before the body: ``check_out_dir``, ``lock_out_dir``, stale temporaries
    removed. Ctrl-C (exit 130) and SIGTERM (exit 143) stop the run with one
    line saying how to continue; every checkpoint already written stays
    intact, since each is written to a temporary file and renamed.
    """
    try:
        out = check_out_dir(out)
        lock = lock_out_dir(out)
    except OutError as exc:
        fail(str(exc))
    remove_stale_temporaries(out)
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _main_thread() else None
    try:
        yield out
    except KeyboardInterrupt:
        _stopped("interrupted (Ctrl-C)", out, how_to_continue, 130)
    except Terminated:
        _stopped("stopped by SIGTERM", out, how_to_continue, 143)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        lock.close()


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def _stopped(what, out, how_to_continue, code):
    sys.stderr.flush()
    print(f"\n{what}: the checkpoints in {out} are intact; {how_to_continue}", file=sys.stderr)
    sys.exit(code)
