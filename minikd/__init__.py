"""minikd: knowledge distillation (Hinton, Vinyals & Dean, 2015) on MNIST, with a
hand-written NumPy/CuPy engine.

Use a trained model::

    import minikd
    model = minikd.load("runs/reproduce/distilled_seed0.npz")
    model.predict(images)                       # uint8 (N, 28, 28) -> (N,) classes
    model.predict_proba(images, temperature=4)  # (N, 10), rows sum to 1
    model.score(images, labels)                 # accuracy, as scikit-learn's classifiers

Distil your own teacher: the recipe's three stages, safeguards included, on the 8x8 digits::

    import numpy as np
    data = minikd.load_dataset("digits")                      # offline
    x, x_test = minikd.to_float(data.x_train), minikd.to_float(data.x_test)
    y, y_test = data.y_train, data.y_test
    cfgs = minikd.profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8))
    teacher = minikd.Trainer(cfgs["teacher"], np, x, y, x_test, y_test)
    teacher.fit()
    v = minikd.teacher_logits(teacher.model, x)               # once, eval mode, un-jittered
    student = minikd.Trainer(cfgs["distilled"], np, x, y, x_test, y_test, soft_logits=v)
    student.fit()[-1].test_errors                             # test errors out of 360

The names here are the engine's (layers, losses, optimizer: minikd/engine/),
the training loop's (minikd/train.py), the recipe's (minikd/profiles.py), the
data's (minikd/data/), the checkpoints' and ``load`` (minikd/checkpoints.py,
minikd/api.py). The experiments behind the ``minikd`` command live in
minikd/experiments/ and are not imported here.
"""
__version__ = "0.2.0"   # the one place the version is written (pyproject.toml reads it)

from .api import TrainedModel, load
from .data import DataError, Dataset, load_dataset, to_float
from .engine.layers import Dense, Dropout, ReLU, Sequential, mlp
from .engine.losses import cross_entropy, distillation_loss, log_softmax, logit_matching, softmax
from .engine.optim import MomentumSGD
from .checkpoints import CheckpointError
from .profiles import PROFILES, profile_configs
from .train import StageConfig, Trainer, teacher_logits

__all__ = [
    "__version__",
    # use a trained model
    "load", "TrainedModel", "CheckpointError",
    # data
    "load_dataset", "Dataset", "DataError", "to_float",
    # the engine
    "mlp", "Dense", "ReLU", "Dropout", "Sequential",
    "cross_entropy", "distillation_loss", "logit_matching", "softmax", "log_softmax",
    "MomentumSGD",
    # training
    "StageConfig", "Trainer", "teacher_logits", "profile_configs", "PROFILES",
]
