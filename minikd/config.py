"""``StageConfig``: everything that defines one training stage, saved with its checkpoint.

A config keeps exactly the values it is given. The recipe's values, safeguards included, come
from ``minikd.profile_configs``; ``warn_if_unguarded`` says so when a hand-built config distils
without them.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any


SOFT_LOSSES = ("kl", "logit_matching")


@dataclass
class StageConfig:
    """Everything that defines one training stage (saved with its checkpoint)."""
    name: str                     # "teacher", "student" or "distilled" (or a dark-knowledge variant's name)
    sizes: tuple                  # (n_in, hidden..., n_classes)
    epochs: int
    batch_size: int = 100
    input_dropout: float = 0.0
    hidden_dropout: float = 0.0
    max_norm: float | None = None   # bound on each hidden unit's incoming weight length
    jitter: int = 0                    # max translation in pixels (0 = none)
    image_shape: tuple = (28, 28)
    lr: float = 1.0                    # eps_0
    lr_decay: float = 0.998            # eps_t = eps_0 * lr_decay ** t
    lr_warmup: int = 0                 # epochs of linear warm-up of eps (0 = none)
    momentum_start: float = 0.5
    momentum_end: float = 0.99
    momentum_ramp: float = 500         # epochs from momentum_start to momentum_end
    rule: str = "hinton2012"
    init_std: float = 0.01
    temperature: float = 20.0          # used when distilling
    hard_weight: float = 1.0
    soft_weight: float = 1.0
    grad_bound: float | None = None  # bound on each row's ||dL/dlogits|| (x N); None = off
    soft_loss: str = "kl"              # distilling: "kl", the paper's soft cross-entropy at T times T^2, or
    #                                    "logit_matching", squared error of centred logits (its high-T limit)
    label_smoothing: float = 0.0       # the label rows: (1 - smoothing) onehot + smoothing / C, not onehot
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.soft_loss not in SOFT_LOSSES:
            raise ValueError(f"soft_loss must be one of {', '.join(SOFT_LOSSES)}, got {self.soft_loss!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON types (what a checkpoint and results.json record)."""
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageConfig:
        """The config ``to_dict`` wrote (TypeError for a key this version does not know or lacks)."""
        d = dict(d)
        d["sizes"] = tuple(d["sizes"])
        d["image_shape"] = tuple(d["image_shape"])
        return cls(**d)


_warned_unguarded = False


def warn_if_unguarded(cfg: StageConfig, *, distilling: bool) -> None:
    """Warn, once per process, when a stage distils with neither the per-row gradient bound nor a
    warm-up at eps_0 >= 1: the configuration that blew up in the recipe's first epoch
    (docs/choices.md). A StageConfig keeps exactly the values it was given; the profiles carry both."""
    global _warned_unguarded
    if not distilling or cfg.grad_bound is not None or cfg.lr_warmup or cfg.lr < 1.0 or _warned_unguarded:
        return
    _warned_unguarded = True
    warnings.warn(f"{cfg.name}: distilling at eps_0 = {cfg.lr:g} with neither a per-row gradient bound "
                  f"(grad_bound) nor a learning-rate warm-up (lr_warmup); under the paper's recipe this "
                  f"exploded in the first epoch. minikd.profile_configs(...)['distilled'] carries both.",
                  stacklevel=3)
