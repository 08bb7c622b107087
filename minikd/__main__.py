"""``python -m minikd``: the same as the ``minikd`` command."""
import sys

from .cli import main

sys.exit(main())
