"""The ``minikd`` command: one subcommand per experiment.

    minikd reproduce ...        the table of section 3 (= python scripts/reproduce.py ...)
    minikd deviations [PROFILE] where a profile departs from the paper's recipe, and why
    minikd dark-knowledge ...   what carries the knowledge: students that differ only in their targets
    minikd bench ...            speed against the matrix-product floor
    minikd mythical-digit ...   section 3's transfer sets without some classes, bias shifts
    minikd sweep ...            temperatures x widths on dask.distributed
    minikd agreement ...        how closely saved students copy their teacher
    minikd gradcheck            every layer and loss against finite differences

Each subcommand takes the flags of its script (``minikd reproduce --help``);
``minikd --version`` prints the installed version.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "reproduce": ("minikd.experiments.reproduce", "the teacher, student and distilled student of section 3"),
    "deviations": ("minikd.experiments.deviations", "where each profile departs from the paper's recipe, and why"),
    "dark-knowledge": ("minikd.experiments.dark_knowledge",
                       "students that differ only in their targets: soft, permuted, confidence, smoothed, ..."),
    "bench": ("minikd.experiments.bench", "time one epoch of each model against its matrix-product floor"),
    "mythical-digit": ("minikd.experiments.mythical_digit", "transfer sets without some classes; bias shifts"),
    "sweep": ("minikd.experiments.temperature_sweep", "distilled errors over temperatures x widths (Dask)"),
    "agreement": ("minikd.experiments.agreement", "how closely saved students copy their teacher"),
    "gradcheck": ("minikd.gradcheck", "every layer and loss against central differences, as a table"),
    "figures": ("minikd.experiments.figures", "the tutorial's figures, drawn from the engine's own outputs"),
    "stability": ("minikd.experiments.stability", "why a distilled student dies: gradients at init, first epochs"),
    "make-variants": ("minikd.experiments.variants", "write MNIST variants (inverted, rotated, ...) as IDX folders"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: minikd COMMAND [flags]   (minikd COMMAND --help for its flags; minikd --version)", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__
        print(f"minikd {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{usage()}\n\nerror: unknown command {name!r}; choose one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    saved = sys.argv[0]
    sys.argv[0] = f"minikd {name}"  # what argparse shows in the subcommand's usage line
    try:
        return module.main(rest)
    finally:
        sys.argv[0] = saved


if __name__ == "__main__":
    sys.exit(main())
