#!/usr/bin/env python
"""How closely do saved students copy their teacher?

A thin wrapper, the same as `minikd agreement`: the code is minikd/experiments/agreement.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.agreement import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
