"""Bad input and faults (issue 19), through the commands' real main(), in process:
damaged and foreign checkpoints, other data, --out, overwrites, the lock, stale
temporaries, the umask, strict JSON, divergence, and Ctrl-C / SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minikd.data import load_dataset
from minikd.data.mnist import MNIST_FILES
from minikd.experiments import outdir
from minikd import checkpoints
from minikd.experiments import mythical_digit, reproduce, stage
from minikd.experiments.report import write_json
from minikd.experiments.variants import idx_bytes
from minikd.train import Trainer
from cli_run import run

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ["--backend", "numpy", "--dataset", "digits"]
STUDENT1 = [*DIGITS, "--stages", "student", "--epochs", "1"]




def last_line(err):
    return err.strip().splitlines()[-1]


def write_idx(folder, x_train, y_train, x_test, y_test):
    """The four files, raw IDX under MNIST's names (variants.idx_bytes encodes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(MNIST_FILES, (x_train, y_train, x_test, y_test), strict=True):
        (folder / name).write_bytes(idx_bytes(arr))
    return folder


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A real one-epoch student checkpoint of the digits."""
    out = tmp_path_factory.mktemp("good")
    assert reproduce.main([*STUDENT1, "--out", str(out)]) == 0
    return out / "student_seed0.npz"


def damaged(kind, good):
    data = good.read_bytes()
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "zero-bytes":
        return b""
    if kind == "random-bytes":
        return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return None


def write_damaged(kind, good, path):
    data = damaged(kind, good)
    if data is not None:
        path.write_bytes(data)
    elif kind == "no-header":
        with open(path, "wb") as f:
            np.savez(f, **{"param.0.W": np.zeros((64, 800), np.float32)})
    elif kind == "wrong-format":
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps({"format": "someone-else-3"})))
    elif kind == "header-not-json":
        with open(path, "wb") as f:
            np.savez(f, header=np.array("{not json"))
    elif kind == "missing-header-key":
        header, arrays = checkpoints.read_checkpoint(good)
        del header["epochs_done"]
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
    elif kind == "arrays-do-not-fit":
        header, arrays = checkpoints.read_checkpoint(good)
        arrays = {k: v[:3] for k, v in arrays.items()}
        with open(path, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
    elif kind == "npy-not-npz":
        with open(path, "wb") as f:
            np.save(f, np.zeros(3))
    else:
        raise ValueError(kind)


KINDS = ["truncated", "zero-bytes", "random-bytes", "no-header", "wrong-format", "header-not-json",
         "missing-header-key", "arrays-do-not-fit", "npy-not-npz"]


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_checkpoint_in_out_is_refused_in_one_line(kind, good_checkpoint, tmp_path, capsys):
    path = tmp_path / "student_seed0.npz"
    write_damaged(kind, good_checkpoint, path)
    before = path.read_bytes()
    code, err = run(reproduce, [*STUDENT1, "--resume", "--out", str(tmp_path)], capsys)
    assert code == 1
    assert "Traceback" not in err and "allow_pickle" not in err
    line = last_line(err)
    assert line.startswith("error: ") and str(path) in line and "delete it" in line
    assert path.read_bytes() == before  # nothing touched


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_teacher_is_refused_without_advice_to_delete_it(kind, good_checkpoint, tmp_path, capsys):
    """--teacher is the user's file: the message says what to pass, never to delete it."""
    teacher = tmp_path / "mine.npz"
    write_damaged(kind, good_checkpoint, teacher)
    code, err = run(mythical_digit, [*DIGITS, "--teacher", str(teacher), "--width", "10", "--epochs", "1",
                                     "--seeds", "1", "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "Traceback" not in err
    line = last_line(err)
    assert str(teacher) in line and "delete" not in line
    assert teacher.exists()


def test_checkpoint_of_other_idx_data_is_refused_naming_both(digits, tmp_path, capsys, no_health_check):
    """Two folders of 8x8 images, one pixel column apart: a checkpoint of one is
    not resumed on the other; --train-size still resumes on its own data."""
    a = write_idx(tmp_path / "A", digits.x_train, digits.y_train, digits.x_test, digits.y_test)
    x = digits.x_train.copy()
    x[:, 0, 0] = 255 - x[:, 0, 0]
    b = write_idx(tmp_path / "B", x, digits.y_train, digits.x_test, digits.y_test)
    out = tmp_path / "run"
    base = ["--backend", "numpy", "--dataset", "idx", "--stages", "student", "--train-size", "500",
            "--lr-decay", "0.9", "--out", str(out)]
    assert run(reproduce, [*base, "--data-dir", str(a), "--epochs", "1"], capsys)[0] == 0
    saved = out / "student_seed0.npz"
    before = saved.read_bytes()
    code, err = run(reproduce, [*base, "--data-dir", str(b), "--epochs", "2", "--resume"], capsys)
    line = last_line(err)
    assert code == 1 and "other data" in line and str(a) in line and str(b) in line
    fa, fb = load_dataset("idx", data_dir=a).sha256, load_dataset("idx", data_dir=b).sha256
    assert fa != fb and fa[:12] in line and fb[:12] in line
    assert saved.read_bytes() == before
    # the same data, a subset of it (--train-size), resumes
    code, err = run(reproduce, [*base, "--data-dir", str(a), "--epochs", "2", "--resume"], capsys)
    assert code == 0, err[-500:]
    assert checkpoints.read_checkpoint(saved)[0]["epochs_done"] == 2
    # a teacher trained on A is refused as --teacher on B, naming both
    teacher_out = tmp_path / "teacher"
    teacher_args = [*base[:5], "teacher", "--train-size", "500", "--out", str(teacher_out)]
    assert run(reproduce, [*teacher_args, "--data-dir", str(a), "--epochs", "1"], capsys)[0] == 0
    ds_b = load_dataset("idx", data_dir=b)
    with pytest.raises(checkpoints.CheckpointError, match="other data") as exc:
        checkpoints.load_teacher(teacher_out / "teacher.npz", np, dataset=ds_b)
    assert str(a) in str(exc.value) and str(b) in str(exc.value)


def test_checkpoint_without_fingerprint_is_refused(tmp_path):
    """Every checkpoint minikd writes records its data's fingerprint; one without it cannot be
    checked against the data, so it is refused, naming the file, whatever the dataset."""
    data = {"sha256": "0" * 64, "n_classes": 10, "image_shape": [8, 8], "source": "here"}
    for dataset in ("digits", "idx"):
        with pytest.raises(checkpoints.CheckpointError, match="records no fingerprint"):
            checkpoints.check_same_data(tmp_path / "old.npz", {"dataset": dataset}, data)
    checkpoints.check_same_data("same.npz", {"dataset": "idx", "data": data}, data)
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.check_same_data("new.npz", {"dataset": "idx", "data": dict(data, sha256="1" * 64)}, data)


def test_dataset_fingerprint_is_of_the_files_and_stable(digits, tmp_path):
    a = write_idx(tmp_path / "A", digits.x_train, digits.y_train, digits.x_test, digits.y_test)
    first, again = load_dataset("idx", data_dir=a), load_dataset("idx", data_dir=a)
    assert first.sha256 == again.sha256 and len(first.sha256) == 64
    fp = first.fingerprint()
    assert fp["n_classes"] == 10 and fp["image_shape"] == [8, 8]
    assert digits.fingerprint()["sha256"] == load_dataset("digits").sha256 != first.sha256


# --------------------------------------------------------------------------- --out
def _no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("trained although --out was refused")
    monkeypatch.setattr(Trainer, "fit", refuse)


def test_out_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    f = tmp_path / "afile"
    f.write_text("mine")
    code, err = run(reproduce, [*STUDENT1, "--out", str(f)], capsys)
    assert code == 1 and f"--out {f} is a file" in last_line(err)
    code, err = run(reproduce, [*STUDENT1, "--out", str(f / "sub")], capsys)
    assert code == 1 and f"lies under {f}" in last_line(err)
    assert f.read_text() == "mine"


def test_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    code, err = run(reproduce, [*STUDENT1, "--out", "/proc/minikd-cannot-be-here"], capsys)
    assert code == 1 and "cannot be written" in last_line(err)
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        code, err = run(reproduce, [*STUDENT1, "--out", str(ro)], capsys)
        ro.chmod(0o700)
        assert code == 1 and "cannot be written" in last_line(err)


def test_rerun_without_resume_never_replaces_a_finished_checkpoint(tmp_path, capsys, monkeypatch, no_health_check):
    out = tmp_path / "r"
    assert run(reproduce, [*STUDENT1, "--out", str(out)], capsys)[0] == 0
    saved = out / "student_seed0.npz"
    before = saved.read_bytes()
    # refused before any training: the teacher it would train first is not started either
    with monkeypatch.context() as m:
        _no_training(m)
        code, err = run(reproduce, [*DIGITS, "--stages", "teacher,student", "--epochs", "1", "--out", str(out)],
                        capsys)
    assert code == 1 and "already holds a finished student (1 epochs)" in last_line(err)
    assert "--resume" in last_line(err) and "--overwrite" in last_line(err)
    assert saved.read_bytes() == before and not (out / "teacher.npz").exists()
    # --resume reuses it untouched; --overwrite trains it again
    assert run(reproduce, [*STUDENT1, "--out", str(out), "--resume"], capsys)[0] == 0
    assert saved.read_bytes() == before
    assert run(reproduce, [*STUDENT1, "--out", str(out), "--overwrite", "--seed", "1"], capsys)[0] == 0
    assert checkpoints.read_checkpoint(out / "student_seed1.npz")[0]["epochs_done"] == 1
    assert run(reproduce, [*STUDENT1, "--out", str(out), "--overwrite"], capsys)[0] == 0
    assert checkpoints.read_checkpoint(saved)[0]["epochs_done"] == 1


def test_distilled_alone_uses_a_copied_teacher_without_flags(good_checkpoint, tmp_path, capsys):
    src = tmp_path / "src"
    assert run(reproduce, [*DIGITS, "--stages", "teacher", "--epochs", "1", "--out", str(src)], capsys)[0] == 0
    out = tmp_path / "copy"
    out.mkdir()
    (out / "teacher.npz").write_bytes((src / "teacher.npz").read_bytes())
    code, err = run(reproduce, [*DIGITS, "--stages", "distilled", "--epochs", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "teacher.npz").read_bytes() == (src / "teacher.npz").read_bytes()
    assert checkpoints.read_checkpoint(out / "distilled_seed0.npz")[0]["epochs_done"] == 1


def test_a_second_run_on_the_same_out_is_refused(tmp_path, capsys, monkeypatch):
    out = tmp_path / "busy"
    out.mkdir()
    held = outdir.lock_out_dir(out)
    try:
        _no_training(monkeypatch)
        code, err = run(reproduce, [*STUDENT1, "--out", str(out)], capsys)
        assert code == 1 and "in use by another run" in last_line(err) and f"pid {os.getpid()}" in last_line(err)
    finally:
        held.close()
    outdir.lock_out_dir(out).close()  # close() released it


def test_a_killed_run_does_not_leave_the_folder_locked(tmp_path):
    """The lock is the OS's (filelock: flock here), dropped when its holder dies, even by SIGKILL."""
    out = tmp_path / "k"
    out.mkdir()
    code = ("import sys, time; from minikd.experiments.outdir import lock_out_dir; "
            f"f = lock_out_dir({str(out)!r}); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(outdir.OutError, match=f"in use by another run \\(pid {proc.pid}\\)"):
            outdir.lock_out_dir(out)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    outdir.lock_out_dir(out).close()  # SIGKILL released it


# Stale temporaries: what checkpoints.atomic_write_bytes leaves when killed mid-write
# (mkstemp's ".<name>.<8 random characters>.tmp"), and what other programs keep in --out.
OURS = [".student_seed0.npz.k3j2h1ab.tmp", ".results.json.x_9qz0lm.tmp", ".learning_curves.png.abcdefgh.tmp",
        "omit3/.distilled_seed1.npz.3kd93ls0.tmp", "only78/.distilled_seed0.npz.u2b7_x0q.tmp",
        "cells/.T2.5_w30_s1.json.0a1b2c3d.tmp"]
THEIRS = [".session.tmp",                        # another program's, in --out itself
          "project/.draft.tmp",                  # in a folder of the user's own
          "project/.results.json.abcdefgh.tmp",  # named like ours, but minikd never writes project/
          "omit3/.draft.tmp",                    # in a folder of ours, but not a file minikd writes
          ".notes.txt.abcdefgh.tmp",             # hidden and .tmp, but notes.txt is not minikd's
          "notes.tmp"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path, capsys, no_health_check):
    out = tmp_path / "s"
    for name in OURS + THEIRS:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"half a file")
    assert run(reproduce, [*STUDENT1, "--out", str(out)], capsys)[0] == 0
    assert [n for n in OURS if (out / n).exists()] == []
    assert [n for n in THEIRS if not (out / n).exists()] == []
    assert (out / "project" / ".draft.tmp").read_bytes() == b"half a file"


def test_the_cleanup_looks_only_where_minikd_writes(tmp_path, monkeypatch):
    """--out . or --out ~ must not walk a whole tree: it lists --out and the folders minikd
    creates there, nothing else, and a minikd-named temporary deeper down is left alone."""
    deep = ["a/b/.results.json.abcdefgh.tmp", "cells/sub/.T2_w30_s0.json.abcdefgh.tmp",
            "omit3/x/.distilled_seed0.npz.abcdefgh.tmp", "project/.results.json.abcdefgh.tmp"]
    for name in deep:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    listed = set()
    for name in ("listdir", "scandir"):   # what Path.iterdir, glob and os.walk read folders with
        real = getattr(os, name)

        def spy(path=".", real=real):   # `real` bound per name: spy runs after the loop
            listed.add(Path(path).relative_to(tmp_path).as_posix())
            return real(path)
        monkeypatch.setattr(os, name, spy)
    assert outdir.remove_stale_temporaries(tmp_path) == []
    assert all((tmp_path / n).exists() for n in deep)
    assert sorted(listed) == [".", "cells", "omit3"]   # not a/, not project/, nothing deeper


def test_written_by_minikd_names_exactly_minikds_files():
    mine = ["results.json", "teacher.npz", "student_seed3.npz", "distilled_seed0.npz", "learning_curves.png",
            "mythical_digit.csv", "omit3/distilled_seed0.npz", "only78/distilled_seed2.npz", "sweep.png",
            "cells/T2.5_w30_s1.json", ".minikd.lock", ".minikd.pid"]
    other = ["session", "draft", "project/results.json", "omit3/results.json", "cells/notes.json",
             "omit3/x/distilled_seed0.npz", "teacher.npz/x", "notes.txt"]
    assert [p for p in mine if not outdir.written_by_minikd(p)] == []
    assert [p for p in other if outdir.written_by_minikd(p)] == []


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        checkpoints.atomic_write_text(tmp_path / "a.json", "{}")
        checkpoints.atomic_write_bytes(tmp_path / "b.npz", lambda f: np.savez(f, a=np.zeros(2)))
    finally:
        os.umask(old)
    for name in ("a.json", "b.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode


# --------------------------------------------------------------------------- results.json
def test_results_json_is_strict_json(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": float("nan"), "b": [1.0, float("inf"), np.float32("nan")], "c": {"d": -np.inf},
                      "e": np.int64(3), "f": 2.5})

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    res = json.loads(path.read_text(), parse_constant=refuse)
    assert res["a"] is None and res["b"] == [1.0, None, None] and res["c"]["d"] is None
    assert res["e"] == 3 and res["f"] == 2.5
    assert res["null_because_not_finite"] == {"a": "nan", "b[1]": "inf", "b[2]": "nan", "c.d": "-inf"}


# --------------------------------------------------------------------------- divergence
def _digits_arrays(digits):
    return stage.prepare_arrays(digits, np, train_size=300)


def _student(epochs=4):
    from minikd.profiles import profile_configs
    cfg = profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=epochs)["student"]
    from dataclasses import replace
    return replace(cfg, sizes=(64, 30, 30, 10))


REAL_TRAIN_EPOCH = Trainer.train_epoch


def _nan_at(monkeypatch, bad_epoch):
    real = REAL_TRAIN_EPOCH

    def train_epoch(self, epoch):
        loss, sec = real(self, epoch)
        if epoch == bad_epoch:
            loss = loss * np.float32("nan")
            self.epoch_means = self.epoch_means * np.float32("nan")   # the epoch's losses, as fit reads them
        return loss, sec
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_divergence_names_the_last_checkpoint_only_when_it_exists(digits, tmp_path, monkeypatch):
    arrays = _digits_arrays(digits)
    _nan_at(monkeypatch, 0)
    with pytest.raises(stage.StageRunError) as exc:
        stage.run_stage(_student(), arrays, np, out=tmp_path / "a", progress=False, checkpoint_every=1)
    assert "No checkpoint" in str(exc.value) and "last good" not in str(exc.value)
    assert not (tmp_path / "a" / "student_seed0.npz").exists()

    _nan_at(monkeypatch, 2)
    with pytest.raises(stage.StageRunError) as exc:
        stage.run_stage(_student(), arrays, np, out=tmp_path / "b", progress=False, checkpoint_every=1)
    path = tmp_path / "b" / "student_seed0.npz"
    assert f"The last good checkpoint is {path} (epoch 2 of 4)" in str(exc.value)
    assert checkpoints.read_checkpoint(path)[0]["epochs_done"] == 2


# --------------------------------------------------------------------------- Ctrl-C, SIGTERM
@pytest.mark.parametrize("sig,code,what", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_and_sigterm_stop_cleanly_with_the_checkpoint_intact(tmp_path, sig, code, what):
    out = tmp_path / "sig"
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), *DIGITS, "--stages", "student",
           "--epochs", "500", "--checkpoint-every", "1", "--out", str(out)]
    # SIGINT is ignored in background jobs; the child gets the default a terminal gives
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, MPLBACKEND="Agg"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / "student_seed0.npz"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not ckpt.exists():
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in err
    line = last_line(err)
    assert what in line and "intact" in line and "--resume" in line
    header, _ = checkpoints.read_checkpoint(ckpt)
    assert 1 <= header["epochs_done"] < 500
    assert not list(out.glob(".*.tmp"))


def test_a_student_the_health_check_stops_is_a_failure_with_its_message_not_a_row(tmp_path, monkeypatch, capsys):
    """reproduce goes on with the other seeds, keeps the stopped student out of `runs` and the
    summary, records it under `failures` with its message, and exits 1 naming it."""
    from minikd.experiments import reproduce
    real = REAL_TRAIN_EPOCH

    def train_epoch(self, epoch):
        loss, sec = real(self, epoch)
        if self.cfg.seed == 1 and epoch == 1:
            loss = loss * np.float32("nan")
            self.epoch_means = self.epoch_means * np.float32("nan")
        return loss, sec
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--dataset", "digits", "--backend", "numpy", "--stages", "student", "--seeds", "3",
                        "--epochs", "3", "--out", str(out)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "student of teacher seed 0, seed 1" in err.splitlines()[-1] and "failures" in err.splitlines()[-1]
    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["seed"]) for r in results["runs"]] == [("student", 0), ("student", 2)]
    assert results["summary"]["student"]["n"] == 2
    (failure,) = results["failures"]
    assert (failure["model"], failure["teacher_seed"], failure["seed"]) == ("student", 0, 1)
    assert "NaN" in failure["message"] or "nan" in failure["message"].lower()
    assert not (out / "student_seed1.npz").exists() and (out / "student_seed2.npz").exists()
