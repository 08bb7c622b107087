"""``minikd.load``: a trained network from any checkpoint minikd writes, ready to predict.

    model = minikd.load("runs/reproduce/distilled_seed0.npz")
    model.predict(images)                        # (N,) class indices
    model.predict_proba(images, temperature=4)   # (N, C), every row sums to 1

Every stage minikd trains -- reproduce's teacher.npz, student_seedN.npz and
distilled_seedN.npz, the section-3 scripts' checkpoints -- is written by
``minikd/checkpoints.py`` (``save_checkpoint``). ``load`` reads it back
with that module's loader (``load_model``, the one every command uses), which
never unpickles anything, and rebuilds the network on NumPy.

Every prediction runs it in eval mode: no dropout, so a prediction is a fixed
function of the image. The loaded model answers to scikit-learn's names too:
``classes_`` (the class labels, 0 .. C-1), ``n_features_in_`` (D) and
``score(x, y)`` (accuracy).

What ``x`` may be
-----------------
* uint8 images, (N, H, W) or (N, H*W), pixel values 0..255. They are scaled
  as training scales them: ``minikd.data.to_float``, x / 255 in float32;
* float rows (N, H*W) already scaled that way, values in [0, 1].

Anything else -- another shape, integers that are not uint8, floats outside
[0, 1] (unscaled pixels) -- is refused with a ValueError that names the shape
and dtype this model expects.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .data.datasets import to_float
from .engine.layers import Sequential
from .engine.losses import softmax
from .checkpoints import load_model
from .train import StageConfig, predict_logits


class TrainedModel:
    """A trained network on NumPy (float32), with what its checkpoint says about it.

    network      the engine's ``Sequential``; predictions run it with ``train=False``
    config       the ``StageConfig`` it was trained with (sizes, temperature, ...)
    meta         what its run recorded (dataset, its fingerprint, train_size, ...)
    epochs_done  the epochs it was trained for (config.epochs when it finished)
    path         the checkpoint file it came from
    """

    def __init__(self, network: Sequential, config: StageConfig, *, path: str = "",
                 meta: dict[str, Any] | None = None, epochs_done: int | None = None) -> None:
        self.network = network
        self.config = config
        self.path = path
        self.meta = dict(meta or {})
        self.epochs_done = config.epochs if epochs_done is None else int(epochs_done)

    @property
    def n_features(self) -> int:
        """D: the length of one input row (H * W)."""
        return int(self.config.sizes[0])

    @property
    def n_classes(self) -> int:
        """C: the number of outputs."""
        return int(self.config.sizes[-1])

    @property
    def classes_(self) -> NDArray[np.intp]:
        """The class labels, as scikit-learn names them: 0 .. C-1 (``predict`` returns these)."""
        return np.arange(self.n_classes)

    @property
    def n_features_in_(self) -> int:
        """D, as scikit-learn names it: the length of one input row."""
        return self.n_features

    def score(self, x: ArrayLike, y: ArrayLike) -> float:
        """Accuracy on (x, y), as a scikit-learn classifier's ``score``: the share of rows whose
        ``predict`` equals the label, in [0, 1]. y: (N,) integer labels in [0, C); ValueError
        for another length or labels outside the classes."""
        labels = np.asarray(y)
        predicted = self.predict(x)
        if labels.shape != predicted.shape:
            raise ValueError(f"y has shape {labels.shape}; x has {predicted.shape[0]} rows, so y must be "
                             f"({predicted.shape[0]},) labels")
        if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() >= self.n_classes)):
            raise ValueError(f"y must hold integer class labels in [0, {self.n_classes}); got {labels.dtype} "
                             f"values" + (f" in [{labels.min()}, {labels.max()}]" if labels.size else ""))
        if labels.size == 0:
            raise ValueError("score needs at least one row: x and y are empty")
        return float((predicted == labels).mean())

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """(H, W) of one image, or None when the checkpoint's image shape does not
        match its input size (then only (N, D) rows are accepted)."""
        h, w = (int(d) for d in self.config.image_shape)
        return (h, w) if h * w == self.n_features else None

    def rows(self, x: ArrayLike) -> NDArray[np.float32]:
        """``x`` as the float32 rows (N, D) the network takes; see the module docstring.

        Raises ValueError, naming the expected shape and dtype, for anything else.
        """
        return as_rows(x, self.n_features, self.image_shape)

    def logits(self, x: ArrayLike) -> NDArray[np.float32]:
        """z: the eval-mode logits, (N, C) float32."""
        rows = self.rows(x)
        if rows.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return predict_logits(self.network, rows)

    def predict_proba(self, x: ArrayLike, temperature: float = 1.0) -> NDArray[np.float64]:
        """softmax(z / T): (N, C) float64, each row sums to 1.

        T = 1 gives the model's own probabilities; a higher T flattens them --
        the soft targets a distilled student learns from at that temperature.
        """
        t = _check_temperature(temperature)
        return softmax(self.logits(x).astype(np.float64), t)

    def predict(self, x: ArrayLike) -> NDArray[np.intp]:
        """The predicted class of each row: argmax_c z_c, (N,) integers in [0, C)."""
        return self.logits(x).argmax(axis=1)

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.config.sizes))
        return (f"TrainedModel({self.config.name} {sizes}, {self.epochs_done}/{self.config.epochs} epochs, "
                f"dataset={self.meta.get('dataset')!r}, path={self.path!r})")


def load(path: str | os.PathLike[str]) -> TrainedModel:
    """The network saved in the checkpoint ``path``, on NumPy, ready to predict.

    Raises CheckpointError, naming the file, when it is missing, damaged, not a
    minikd checkpoint, or its arrays do not fit the network its header describes.
    Warns when the checkpoint holds a stage that stopped before its last epoch.
    """
    network, cfg, header = load_model(path, np)
    model = TrainedModel(network, cfg, path=str(path), meta=header.get("meta") or {},
                         epochs_done=header["epochs_done"])
    if model.epochs_done < cfg.epochs:
        warnings.warn(f"{path} holds a {cfg.name} stage that finished only {model.epochs_done} of its "
                      f"{cfg.epochs} epochs; its predictions are those of a model still training",
                      stacklevel=2)
    return model


def as_rows(x: ArrayLike, n_features: int,
            image_shape: tuple[int, int] | None = None) -> NDArray[np.float32]:
    """Inputs as float32 rows (N, n_features), scaled as in training.

    uint8 images (N, H, W) with (H, W) == image_shape, or uint8 rows (N, D):
    ``to_float``, x / 255. Float rows (N, D) with values in [0, 1]: cast to
    float32. D = n_features. Raises ValueError for anything else.
    """
    if hasattr(x, "__cuda_array_interface__"):   # a CuPy array: the model lives on the host
        x = x.get()
    x = np.asarray(x)
    d = n_features
    images = f"uint8 images (N, {image_shape[0]}, {image_shape[1]}) or " if image_shape else "uint8 "
    expected = f"{images}rows (N, {d}), or float rows (N, {d}) scaled to [0, 1] as in training"
    got = f"got {x.dtype} of shape {x.shape}"
    if x.ndim == 1 and x.shape[0] == d:
        raise ValueError(f"this model takes a batch of {expected}; {got}, one row: pass x[None] "
                         f"(or x.reshape(1, -1)) for a batch of one")
    if x.dtype == np.uint8:
        if (x.ndim == 2 and x.shape[1] == d) or (x.ndim == 3 and image_shape and x.shape[1:] == image_shape):
            return to_float(x) if x.shape[0] else np.zeros((0, d), dtype=np.float32)
        raise ValueError(f"this model takes {expected}; {got}")
    if x.dtype.kind == "f":
        if x.ndim == 3 and image_shape and x.shape[1:] == image_shape:
            raise ValueError(f"this model takes {expected}; {got}: float images must be flattened "
                             f"to rows, x.reshape(len(x), -1)")
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"this model takes {expected}; {got}")
        if x.size:
            low, high = float(x.min()), float(x.max())
            if not (0.0 <= low and high <= 1.0):   # also False for NaN
                raise ValueError(f"float rows must be scaled to [0, 1] as in training (pixel / 255); got "
                                 f"values in [{low:g}, {high:g}]: pass the uint8 images instead, or divide "
                                 f"by 255 (NaN or infinite values cannot be classified)")
        return x.astype(np.float32, copy=False)
    if x.dtype.kind in "iu" and x.ndim in (2, 3):
        raise ValueError(f"this model takes {expected}; {got}: convert pixel values 0..255 "
                         f"with x.astype(np.uint8), or scale them to float rows (x / 255)")
    raise ValueError(f"this model takes {expected}; {got}")


def _check_temperature(temperature: float) -> float:
    """temperature as a float; ValueError unless it is a finite number > 0."""
    ok = isinstance(temperature, (int, float, np.integer, np.floating)) and not isinstance(temperature, bool)
    if not ok or not math.isfinite(float(temperature)) or float(temperature) <= 0:
        raise ValueError(f"temperature must be a finite number > 0 (1 = the model's own probabilities, "
                         f"higher = flatter); got {temperature!r}")
    return float(temperature)
