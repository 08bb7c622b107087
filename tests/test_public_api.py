"""The public API stands on its own: ``import minikd`` loads nothing of minikd.experiments, the
recipe's configs come from ``minikd.profile_configs`` with their safeguards, a hand-built
StageConfig keeps exactly its values, and a Trainer that distils unguarded says so once."""
import subprocess
import sys
import warnings
from dataclasses import fields

import numpy as np
import pytest

import minikd
import minikd.config
from minikd.profiles import DISTILL_GRAD_BOUND, DISTILL_WARMUP


def test_import_minikd_loads_no_experiments_module():
    """The library below the commands: checkpoints, profiles and the API import nothing of the
    experiments (run in a fresh interpreter, where nothing else imported them first)."""
    code = ("import minikd, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('minikd.experiments')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_public_names_live_below_the_experiments():
    for name in ("CheckpointError", "profile_configs", "StageConfig", "load", "TrainedModel"):
        assert not getattr(minikd, name).__module__.startswith("minikd.experiments"), name


def digits_configs(**overrides):
    return minikd.profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), **overrides)


@pytest.mark.parametrize("profile", ["quick", "paper", "demo"])
def test_every_profiles_distilled_stage_carries_the_safeguards(profile):
    cfgs = minikd.profile_configs(profile, n_features=64, n_classes=10, image_shape=(8, 8))
    d = cfgs["distilled"]
    assert d.grad_bound == DISTILL_GRAD_BOUND and d.lr_warmup == DISTILL_WARMUP
    assert (DISTILL_GRAD_BOUND, DISTILL_WARMUP) == (1.0, 7)
    assert d.name == "distilled" and d.sizes == (64, 800, 800, 10) and d.image_shape == (8, 8)
    assert (cfgs["student"].grad_bound, cfgs["student"].lr_warmup) == (None, 0)


def test_the_teachers_jitter_follows_the_image_size():
    """The paper's 2 pixels on MNIST's 28x28; 1 on the 8x8 digits, as the command uses."""
    assert digits_configs()["teacher"].jitter == 1
    assert minikd.profile_configs("quick", n_features=784, n_classes=10, image_shape=(28, 28))["teacher"].jitter == 2
    assert digits_configs(jitter=3)["teacher"].jitter == 3          # an explicit value is kept
    assert {c.jitter for name, c in digits_configs().items() if name != "teacher"} == {0}


def test_profile_configs_takes_plain_keywords_and_refuses_an_unknown_profile():
    cfgs = digits_configs(epochs=3, seed=5, temperature=4.0, grad_bound=None)
    assert {c.epochs for c in cfgs.values()} == {3} and {c.seed for c in cfgs.values()} == {5}
    assert cfgs["distilled"].temperature == 4.0 and cfgs["distilled"].grad_bound is None
    with pytest.raises(ValueError, match="unknown profile 'fast'.*quick, paper, demo"):
        minikd.profile_configs("fast", n_features=64, n_classes=10, image_shape=(8, 8))


def test_a_hand_built_config_keeps_exactly_its_values():
    """No fix-up adds a bound, a warm-up or anything else to what the caller wrote; to_dict and
    from_dict give it back unchanged."""
    given = dict(name="distilled", sizes=(64, 30, 10), epochs=3, lr=2.0, lr_warmup=0, grad_bound=None,
                 temperature=4.0, hard_weight=0.3, soft_loss="logit_matching", label_smoothing=0.1,
                 image_shape=(8, 8), seed=11)
    cfg = minikd.StageConfig(**given)
    for key, value in given.items():
        assert getattr(cfg, key) == value, key
    defaults = {f.name: f.default for f in fields(minikd.StageConfig) if f.name not in given and f.name != "extra"}
    for key, value in defaults.items():
        assert getattr(cfg, key) == value, key
    assert minikd.StageConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TypeError):
        minikd.StageConfig.from_dict({**cfg.to_dict(), "not_a_field": 1})   # no silent fix-ups of old files
    for bad in (dict(soft_loss="mse"), dict(label_smoothing=1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            minikd.StageConfig(**{**given, **bad})


@pytest.fixture
def tiny(monkeypatch):
    """(x, y, soft logits) on 64 features, and the once-per-process warning reset for this test."""
    monkeypatch.setattr(minikd.config, "_warned_unguarded", False)
    rng = np.random.default_rng(0)
    x = rng.random((40, 64)).astype(np.float32)
    y = rng.integers(0, 10, 40).astype(np.int32)
    return x, y, rng.standard_normal((40, 10)).astype(np.float32)


def unguarded(**kw):
    return minikd.StageConfig(**{"name": "distilled", "sizes": (64, 8, 10), "epochs": 1, "image_shape": (8, 8),
                                 "lr": 1.0, "lr_warmup": 0, "grad_bound": None, **kw})


def test_an_unguarded_distillation_warns_once_naming_profile_configs(tiny):
    x, y, soft = tiny
    with pytest.warns(UserWarning, match=r"neither a per-row gradient bound .*profile_configs") as caught:
        minikd.Trainer(unguarded(), np, x, y, x, y, soft_logits=soft)
        minikd.Trainer(unguarded(lr=3.0), np, x, y, x, y, soft_logits=soft)
    assert len([w for w in caught if "gradient bound" in str(w.message)]) == 1
    assert caught[0].filename == __file__     # it points at the caller's line, not minikd's


@pytest.mark.parametrize("guard", [dict(grad_bound=1.0), dict(lr_warmup=3), dict(lr=0.5), "plain student",
                                   "the profile's"])
def test_a_guarded_or_plain_stage_does_not_warn(tiny, guard):
    x, y, soft = tiny
    if guard == "plain student":
        cfg, soft = unguarded(name="student"), None
    elif guard == "the profile's":
        cfg = digits_configs(epochs=1)["distilled"]
    else:
        cfg = unguarded(**guard)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minikd.Trainer(cfg, np, x, y, x, y, soft_logits=soft)
