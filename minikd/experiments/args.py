"""Command-line plumbing shared by the commands: range-checked numbers, the flag
groups several commands take (argparse parents), and clean failures.

Every numeric flag goes through ``number(...)``: argparse then refuses a value
outside its range at parse time (exit 2), with a message naming the flag, the
value and the range -- before any data is loaded or any epoch trained.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace

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


positive_int = number(int, low=1)             # counts: epochs, seeds, widths, every-N
non_negative_int = number(int, low=0)         # seeds of generators, warm-up epochs
positive_float = number(float, low=0, low_open=True)
non_negative_float = number(float, low=0)
decay_factor = number(float, low=0, high=1, low_open=True)  # eps_t = eps_0 * d^t: 0 < d <= 1


def bound_or_none(text):
    """--grad-bound: a finite number > 0, or "none" (no bound: the paper's gradient).

    Returns the float, or the string "none" -- so that a flag left out
    (default None) still means "the profile's bound".
    """
    if text.strip().lower() == "none":
        return "none"
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or none") from None


bound_or_none.__name__ = "bound"  # what argparse names in its own messages
bound_or_none.allowed = f"{positive_float.allowed}, or none"


def with_grad_bound(cfg, flag):
    """``cfg`` with --grad-bound applied: unchanged when the flag was left out (None), no bound
    for "none", else the number."""
    if flag is None:
        return cfg
    return replace(cfg, grad_bound=None if flag == "none" else flag)


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


# --------------------------------------------------------------------------- flag groups
# Each returns a fresh parser to pass as ``parents=[...]`` to a command's ArgumentParser: the flags
# several commands share are written once. Fresh, because argparse shares the parent's actions with
# the child, so a parser reused across commands would carry one command's defaults into another.
def flag_group():
    return argparse.ArgumentParser(add_help=False)


def data_flags(*, default_out):
    """--backend, --dataset, --data-dir, --allow-missing-classes, --seed, --out."""
    p = flag_group()
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
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed, >= 0 (default 0)")
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    return p


#: Single flags that several commands take, each declared here once (``shared_flags``).
SHARED = {
    "--lr-warmup": dict(type=non_negative_int, default=None,
                        help="epochs of linear learning-rate warm-up for the student and the distilled student "
                             "(default: profile's)"),
    "--validation": dict(action="store_true",
                         help="hold out the end of the training set and report errors on it instead of the "
                              "test set (for choosing schedules without looking at the test set)"),
    "--no-fast": dict(action="store_true", help="use the readable reference step instead of the fused CPU step"),
}


def shared_flags(*names):
    """The flags ``names`` of SHARED."""
    p = flag_group()
    for name in names:
        p.add_argument(name, **SHARED[name])
    return p


def loss_flags(*, temperature=True):
    """The distillation loss: --temperature (unless temperature=False), --hard-weight, --soft-weight.
    A command that takes them calls ``check_loss_weights`` after parsing."""
    p = flag_group()
    if temperature:
        p.add_argument("--temperature", type=positive_float, default=20.0,
                       help="distillation temperature T (default 20)")
    p.add_argument("--hard-weight", type=non_negative_float, default=None,
                   help="weight of the hard-label cross-entropy in distillation (default: the profile's, 1, "
                        "chosen on the validation split: docs/choices.md)")
    p.add_argument("--soft-weight", type=non_negative_float, default=1.0,
                   help="weight of the T^2-scaled soft cross-entropy (default 1)")
    return p


def grad_bound_flags(*, default=None, why=""):
    """--grad-bound (``bound_or_none``): default None = the profile's bound. ``why``: a sentence
    on why the default is what it is, for the help."""
    p = flag_group()
    shown = "the profile's, 1: docs/stability.md" if default is None else default
    p.add_argument("--grad-bound", type=bound_or_none, default=default, metavar="BOUND",
                   help=f"bound on each distilled row's logit gradient, a number > 0, or 'none' for the paper's "
                        f"unbounded gradient (default: {shown}){why}")
    return p


# --------------------------------------------------------------------------- clean failures
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

