"""minikd: knowledge distillation (Hinton, Vinyals & Dean, 2015) on MNIST, with a
hand-written NumPy/CuPy engine.

Use a trained model::

    import minikd
    model = minikd.load("runs/reproduce/distilled_seed0.npz")
    model.predict(images)                       # uint8 (N, 28, 28) -> (N,) classes
    model.predict_proba(images, temperature=4)  # (N, 10), rows sum to 1

Train one yourself (one stage of what ``minikd reproduce`` runs)::

    import numpy as np
    data = minikd.load_dataset("digits")                  # 8x8 digits, offline
    x, x_test = minikd.to_float(data.x_train), minikd.to_float(data.x_test)
    cfg = minikd.StageConfig("student", sizes=(64, 100, 10), epochs=20, image_shape=(8, 8))
    trainer = minikd.Trainer(cfg, np, x, data.y_train, x_test, data.y_test)
    trainer.fit()[-1].test_errors                         # about 33 of 360

The names here are the engine's (layers, losses, optimizer: minikd/engine/),
the training loop's (minikd/train.py), the data's (minikd/data/) and ``load``
(minikd/api.py). The experiments behind the ``minikd`` command live in
minikd/experiments/ and are not imported here.
"""
__version__ = "0.1.0"   # the one place the version is written (pyproject.toml reads it)

from .api import TrainedModel, load
from .data import DataError, Dataset, load_dataset, to_float
from .engine.layers import Dense, Dropout, ReLU, Sequential, mlp
from .engine.losses import cross_entropy, distillation_loss, log_softmax, softmax
from .engine.optim import MomentumSGD
from .experiments.checkpoints import CheckpointError
from .train import StageConfig, Trainer, teacher_logits

__all__ = [
    "__version__",
    # use a trained model
    "load", "TrainedModel", "CheckpointError",
    # data
    "load_dataset", "Dataset", "DataError", "to_float",
    # the engine
    "mlp", "Dense", "ReLU", "Dropout", "Sequential",
    "cross_entropy", "distillation_loss", "softmax", "log_softmax",
    "MomentumSGD",
    # training
    "StageConfig", "Trainer", "teacher_logits",
]
