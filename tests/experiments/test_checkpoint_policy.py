"""When a stage saves its checkpoint (stage.CheckpointPolicy), and Ctrl-C in two steps
(stage.StopAfterEpoch): the first lets the epoch finish and saves it, so --resume ends where an
uninterrupted run ends; a second stops at once, keeping the last save."""
import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from minikd import checkpoints
from minikd.data import load_dataset
from minikd.experiments import stage
from minikd.profiles import profile_configs
from minikd.train import Trainer


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_by_default_a_checkpoint_is_due_once_a_minute_has_passed():
    clock = FakeClock()
    policy = stage.CheckpointPolicy(clock=clock)
    assert stage.CheckpointPolicy.SECONDS == 60.0
    clock.now += 59.9
    assert not policy.due(3, last_epoch=False)
    clock.now += 0.1
    assert policy.due(4, last_epoch=False)
    policy.saved()                                   # the minute starts again from the save
    clock.now += 30
    assert not policy.due(5, last_epoch=False)
    assert policy.due(5, last_epoch=True)            # the stage's end: always
    clock.now += 30
    assert policy.due(6, last_epoch=False)


def test_every_n_epochs_whatever_the_clock():
    clock = FakeClock()
    policy = stage.CheckpointPolicy(3, clock=clock)
    due = []
    for done in range(1, 11):
        clock.now += 1000.0                          # hours pass: the count alone decides
        due.append(policy.due(done, last_epoch=done == 10))
        policy.saved()
    assert due == [False, False, True, False, False, True, False, False, True, True]
    with pytest.raises(ValueError, match="checkpoint every 0 epochs: must be >= 1"):
        stage.CheckpointPolicy(0)


@pytest.fixture(scope="module")
def arrays():
    return stage.prepare_arrays(load_dataset("digits"), np, train_size=300)


def tiny_stage(epochs=5):
    """A student with dropout (every random draw a resume must repeat), seconds to train."""
    cfg = profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=epochs)["student"]
    return replace(cfg, sizes=(64, 40, 40, 10), hidden_dropout=0.2, batch_size=30, lr=0.5, lr_decay=0.9,
                   init_std=0.1)


@pytest.fixture
def saves(monkeypatch):
    """The epochs_done of every checkpoint run_stage writes."""
    seen = []
    real = stage.save_checkpoint

    def save(path, trainer, meta, **kw):
        seen.append(trainer.start_epoch)
        return real(path, trainer, meta, **kw)

    monkeypatch.setattr(stage, "save_checkpoint", save)
    return seen


def test_run_stage_saves_by_time_every_n_and_at_its_end(arrays, tmp_path, monkeypatch, saves, no_health_check):
    """run_stage under a clock that moves 25 s per epoch: saved after epochs 3 and 6 (75 s since the
    last save), and at the end (7); with checkpoint_every=2: after 2, 4, 6 and the end."""
    clock = FakeClock()
    real_policy = stage.CheckpointPolicy
    monkeypatch.setattr(stage, "CheckpointPolicy", lambda every=None: real_policy(every, clock=clock))
    real_epoch = Trainer.train_epoch

    def train_epoch(self, epoch):
        clock.now += 25.0
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    cfg = tiny_stage(epochs=7)
    stage.run_stage(cfg, arrays, np, out=tmp_path / "time", progress=False)
    assert saves == [3, 6, 7]
    saves.clear()
    stage.run_stage(cfg, arrays, np, out=tmp_path / "every", progress=False, checkpoint_every=2)
    assert saves == [2, 4, 6, 7]


def interrupt_during(monkeypatch, epochs, times=1):
    """Send this process SIGINT ``times`` times while epoch ``epochs`` (0-based) trains, as a user's
    Ctrl-C would arrive."""
    real = Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch == epochs:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return real(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_a_first_ctrl_c_finishes_the_epoch_saves_it_and_resume_equals_an_uninterrupted_run(
        arrays, tmp_path, monkeypatch, capsys):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # as in a command run from a shell
    cfg = tiny_stage()
    full, _ = stage.run_stage(cfg, arrays, np, out=tmp_path / "full", progress=False)
    out = tmp_path / "stopped"
    with monkeypatch.context() as m:
        interrupt_during(m, 1)                        # Ctrl-C while the 2nd epoch trains
        with pytest.raises(KeyboardInterrupt):
            stage.run_stage(cfg, arrays, np, out=out, progress=False)   # by time: nothing saved before
    assert "stops after this epoch" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # the handler put back
    path = stage.checkpoint_path(out, cfg)
    header, _ = checkpoints.read_checkpoint(path)
    assert header["epochs_done"] == 2 and [h["epoch"] for h in header["history"]] == [0, 1]
    resumed, _ = stage.run_stage(cfg, arrays, np, out=out, resume=True, progress=False)
    _, a_full = checkpoints.read_checkpoint(stage.checkpoint_path(tmp_path / "full", cfg))
    h_res, a_res = checkpoints.read_checkpoint(path)
    assert h_res["epochs_done"] == cfg.epochs and sorted(a_res) == sorted(a_full)
    for k in a_full:
        np.testing.assert_array_equal(a_res[k], a_full[k], err_msg=k)
    assert resumed.history[-1].test_errors == full.history[-1].test_errors < 0.5 * arrays["n_eval"]   # it learned


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_save(arrays, tmp_path, monkeypatch, capsys):
    cfg = tiny_stage()
    out = tmp_path / "twice"
    interrupt_during(monkeypatch, 2, times=2)         # two Ctrl-C while the 3rd epoch trains
    with pytest.raises(KeyboardInterrupt):
        stage.run_stage(cfg, arrays, np, out=out, progress=False, checkpoint_every=1)
    header, _ = checkpoints.read_checkpoint(stage.checkpoint_path(out, cfg))
    assert header["epochs_done"] == 2                 # the 3rd epoch neither finished nor saved
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
