#!/usr/bin/env python
"""The mythical digit of section 3: transfer sets without some classes, and honest bias shifts.

A thin wrapper, the same as `minikd mythical-digit`: the code is minikd/experiments/mythical_digit.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.mythical_digit import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
