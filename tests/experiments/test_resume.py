"""Resume through the real checkpoint path, in process (issue 19): a stage
stopped between checkpoints and resumed with run_stage ends bit for bit where
an uninterrupted run ends -- parameters, velocities and every epoch's figures."""
from dataclasses import replace

import numpy as np
import pytest

from minikd.data import load_dataset
from minikd import checkpoints
from minikd.experiments import stage
from minikd.profiles import profile_configs
from minikd.train import Trainer

EPOCHS = 6


@pytest.fixture(scope="module")
def arrays():
    return stage.prepare_arrays(load_dataset("digits"), np, train_size=600)


def teacher_like():
    """Dropout, jitter and max-norm: every random draw a resume must repeat."""
    cfg = profile_configs("paper", n_features=64, n_classes=10, image_shape=(8, 8), epochs=EPOCHS,
                          jitter=1)["teacher"]
    return replace(cfg, sizes=(64, 60, 60, 10), batch_size=20, lr=0.5, lr_decay=0.95, init_std=0.1)


class Stop(KeyboardInterrupt):
    pass


def run_interrupted(cfg, arrays, out, monkeypatch, *, stop_at, fast):
    """Start the stage, stop it (as Ctrl-C would) when epoch ``stop_at`` (0-based) begins."""
    real = Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch == stop_at:
            raise Stop
        return real(self, epoch)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_epoch", train_epoch)
        with pytest.raises(Stop):
            stage.run_stage(cfg, arrays, np, out=out, checkpoint_every=2, fast=fast, progress=False)


@pytest.mark.parametrize("fast", [True, False], ids=["fused", "reference"])
def test_resumed_stage_equals_the_uninterrupted_one(arrays, tmp_path, monkeypatch, fast):
    cfg = teacher_like()
    _, full = stage.run_stage(cfg, arrays, np, out=tmp_path / "full", checkpoint_every=2, fast=fast,
                              progress=False)
    out = tmp_path / "stopped"
    # stopped as epoch 4 begins: the checkpoint holds 2 epochs (written every 2), epoch 3's work is lost
    run_interrupted(cfg, arrays, out, monkeypatch, stop_at=3, fast=fast)
    path = stage.checkpoint_path(out, cfg)
    assert checkpoints.read_checkpoint(path)[0]["epochs_done"] == 2
    _, resumed = stage.run_stage(cfg, arrays, np, out=out, resume=True, checkpoint_every=2, fast=fast,
                                 progress=False)

    h_full, a_full = checkpoints.read_checkpoint(stage.checkpoint_path(tmp_path / "full", cfg))
    h_res, a_res = checkpoints.read_checkpoint(path)
    assert h_full["epochs_done"] == h_res["epochs_done"] == EPOCHS
    assert sorted(a_full) == sorted(a_res) and any(k.startswith("velocity.") for k in a_full)
    for k in a_full:
        np.testing.assert_array_equal(a_res[k], a_full[k], err_msg=k)
    strip = lambda hist: [{k: v for k, v in h.items() if k != "sec"} for h in hist]  # noqa: E731
    assert strip(resumed["history"]) == strip(full["history"])
    assert [h["epoch"] for h in resumed["history"]] == list(range(EPOCHS))
    assert resumed["test_errors"] == full["test_errors"]
    # the run learned something, so equal parameters are not equal noise
    assert full["test_errors"] < 0.8 * arrays["n_eval"]


def test_resume_refuses_another_schedule(arrays, tmp_path, monkeypatch):
    cfg = teacher_like()
    run_interrupted(cfg, arrays, tmp_path, monkeypatch, stop_at=2, fast=True)
    with pytest.raises(stage.StageRunError, match="lr_decay"):
        stage.run_stage(replace(cfg, lr_decay=0.9), arrays, np, out=tmp_path, resume=True, progress=False)
