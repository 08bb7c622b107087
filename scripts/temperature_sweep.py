#!/usr/bin/env python
"""Distilled-student errors across temperatures and hidden widths, as a grid on dask.distributed.

A thin wrapper, the same as `minikd sweep`: the code is minikd/experiments/temperature_sweep.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.temperature_sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
