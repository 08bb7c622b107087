"""Command-line plumbing shared by the commands: common flags, clean failures."""
from __future__ import annotations

import os
import sys

from ..data import DataError, load_dataset
from ..engine.backend import BackendError, get_backend


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
