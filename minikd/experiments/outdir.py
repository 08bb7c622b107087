"""The folder a run writes to (--out): checked, locked, cleaned, and a clean stop.

``guarded_run`` is what every command that trains wraps its work in: the
folder is created and checked for writing, locked against a second run
(filelock: flock on POSIX, msvcrt.locking on Windows), cleared of the
temporaries a killed run left, and Ctrl-C or SIGTERM stop the run with one
line saying how to continue. ``OUT_FILES`` is the one list of the files
minikd writes there.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from .args import fail

LOCK_NAME = ".minikd.lock"  # filelock's: held while a run writes in --out
PID_NAME = ".minikd.pid"    # ours: the holder's pid, for the message a second run gets

#: Every file a command writes in --out, one glob per path component (``*``
#: never crosses a ``/``). The one list of what minikd owns there: a hidden
#: temporary is removed only when it stands for one of these (and the tests
#: check that the commands write nothing else).
OUT_FILES = (
    "results.json",                                            # every command
    "teacher.npz", "student_seed*.npz", "distilled_seed*.npz",  # stage.checkpoint_path
    "teacher_seed*.npz",                                       # reproduce --teacher-seeds J > 1
    "hard_seed*.npz", "soft_seed*.npz", "permuted_seed*.npz",  # dark_knowledge: one per variant and seed,
    "confidence_seed*.npz", "smoothed_seed*.npz", "logit_matching_seed*.npz",
    "smoothing*_seed*.npz",                                    # its smoothing grid,
    "variant_errors.png", "hard_soft_curves.png",              # its figures
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
        raise OutError(f"--out {out} cannot be written ({reason}); choose a folder you can write to") from exc
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
                       f"to finish, or choose another --out") from None   # the timeout itself says no more
    except OSError as exc:
        raise OutError(f"--out {out}: cannot lock {held.lock.lock_file} ({exc}); choose another --out") from exc
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
    return threading.current_thread() is threading.main_thread()


def _stopped(what, out, how_to_continue, code):
    sys.stderr.flush()
    print(f"\n{what}: the checkpoints in {out} are intact; {how_to_continue}", file=sys.stderr)
    sys.exit(code)
