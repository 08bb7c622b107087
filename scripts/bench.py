#!/usr/bin/env python
"""Time one epoch of each model against its matrix-product floor (and PyTorch, if installed).

A thin wrapper, the same as `minikd bench`: the code is minikd/experiments/bench.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
