"""``minikd deviations [PROFILE]``: where a profile departs from the paper's recipe, and why.

The recipe is Hinton, Vinyals & Dean (2015), section 3, trained as Hinton et al. (2012,
appendix A) train; each line says which of the two papers states the value. The list is built
from the profile's own StageConfigs on MNIST's shapes (``minikd.profiles.deviations_from_paper``),
the list every results.json of ``minikd reproduce`` records for its run.
"""
from __future__ import annotations

import argparse
import sys

from ..profiles import PROFILES, deviations_from_paper, deviations_markdown, describe_deviations, mnist_configs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", nargs="?", choices=PROFILES, help="one profile (default: every profile)")
    p.add_argument("--markdown", action="store_true", help="every profile as one Markdown table")
    args = p.parse_args(argv)
    if args.markdown:
        print(deviations_markdown())
        return 0
    for name in [args.profile] if args.profile else PROFILES:
        print(f"--profile {name}:\n{describe_deviations(deviations_from_paper(mnist_configs(name)))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
