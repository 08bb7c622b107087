"""The engine: what a learner reads first. Each file holds one idea, with its
maths in the docstrings next to the code, and imports nothing else of minikd.

    backend.py    NumPy or CuPy: ``xp = get_xp(x)``, generators from a seed, host/device copies
    layers.py     Dense, ReLU, Dropout, Sequential and ``mlp``: forward and backward side by side
    losses.py     softmax at temperature T, cross-entropy, the distillation loss, logit matching, gradients
    optim.py      momentum SGD with the paper's schedules and the max-norm bound
    gradcheck.py  central differences in float64, to check every gradient above
"""
