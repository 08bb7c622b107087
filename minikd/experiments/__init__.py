"""The experiments behind the ``minikd`` command: section 3 of Hinton et al. (2015)
(the teacher, student and distilled student; transfer sets without some
classes; temperature sweeps) and the tools around them (speed, figures,
agreement, stability).

Each command is a module with a ``main(argv)``, listed in minikd/cli.py; what
they share -- the stage runner, checkpoints, results, flags -- has a module of
its own here. Nothing in this package is needed to train or use a model:
``import minikd`` imports only ``checkpoints`` (the one checkpoint reader,
which ``minikd.load`` uses).
"""
