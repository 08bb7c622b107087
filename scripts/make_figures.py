#!/usr/bin/env python
"""Draw the figures of docs/ from the engine's own outputs.

A thin wrapper: the code is minikd/experiments/figures.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.figures import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
