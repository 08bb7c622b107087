"""The experiments behind the ``minikd`` command: section 3 of Hinton et al. (2015)
(the teacher, student and distilled student; transfer sets without some
classes; temperature sweeps) and the tools around them (speed, figures,
agreement, stability).

Each command is a module with a ``main(argv)``, listed in minikd/cli.py; what
they share has a module of its own here: the runner (stage.py) and its locked
output folder (outdir.py), the one checkpoint reader and loader
(checkpoints.py), the one report writer (report.py), the flag groups (args.py),
and what the two section-3 experiments share (section3.py).

Nothing in this package is needed to train or use a model: ``import minikd``
imports only ``checkpoints`` (whose loader ``minikd.load`` uses).
"""
