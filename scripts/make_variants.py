#!/usr/bin/env python
"""Write MNIST variants (inverted, rotated, noisy, fewer classes, shuffled pixels) as IDX folders.

A thin wrapper: the code is minikd/experiments/variants.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.variants import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
