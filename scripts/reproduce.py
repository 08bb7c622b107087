#!/usr/bin/env python
r"""Reproduce the MNIST table of Hinton, Vinyals \& Dean (2015), section 3.

A thin wrapper, the same as `minikd reproduce`: the code is minikd/experiments/reproduce.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
