#!/usr/bin/env python
"""Why a distilled student dies: the soft gradient at initialisation against the hard one, and the first epochs traced.

A thin wrapper: the code is minikd/experiments/stability.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.stability import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
