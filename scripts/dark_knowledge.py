#!/usr/bin/env python
"""What carries the knowledge: students that differ only in their targets, from one teacher.

A thin wrapper, the same as `minikd dark-knowledge`: the code is minikd/experiments/dark_knowledge.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # works from a checkout, installed or not

from minikd.experiments.dark_knowledge import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
