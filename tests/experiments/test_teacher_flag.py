"""``minikd reproduce --teacher CKPT``: the students distil from a teacher trained by another run,
whose soft targets the results record by their SHA-256; and what --teacher refuses.

On the bundled digits, under ``--profile paper --epochs 10`` (as .ci/wheel_check.sh runs it): short,
and every model learns.
"""
import hashlib
import json

import numpy as np
import pytest

import minikd
from minikd.checkpoints import save_checkpoint
from minikd.experiments import reproduce

DIGITS = ["--backend", "numpy", "--dataset", "digits"]
SHORT = [*DIGITS, "--profile", "paper", "--epochs", "10"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of reproduce.main(argv), in this process."""
    try:
        code = reproduce.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def digits():
    return minikd.load_dataset("digits")


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """--stages teacher --out A: the teacher the other tests pass as --teacher."""
    out = tmp_path_factory.mktemp("A")
    assert reproduce.main([*SHORT, "--stages", "teacher", "--out", str(out)]) == 0
    return out


def independent_sha256(path, x):
    """SHA-256 of the float32 eval-mode logits of the checkpoint ``path`` (reloaded with minikd.load)
    on the images x, row by row: computed here, not by the code under test."""
    logits = minikd.load(path).logits(x)
    assert logits.dtype == np.float32 and np.abs(logits).max() > 0.1    # a trained teacher's logits
    return hashlib.sha256(np.ascontiguousarray(logits, dtype=np.float32).tobytes()).hexdigest()


def test_students_distil_from_a_given_teacher_and_record_its_soft_targets(run_a, digits, tmp_path, capsys):
    teacher = run_a / "teacher.npz"
    a = json.loads((run_a / "results.json").read_text())
    out = tmp_path / "B"
    code, stdout, err = run([*SHORT, "--teacher", str(teacher), "--stages", "student,distilled", "--out", str(out)],
                            capsys)
    assert code == 0, err
    b = json.loads((out / "results.json").read_text())
    # both stages trained, for their 10 epochs, and learned (chance is about 324 of 360)
    for stage in ("student", "distilled"):
        m = b["models"][stage]
        assert m["epochs"] == 10 and len(m["history"]) == 10 and m["test_errors"] < 150, (stage, m["test_errors"])
        assert (out / f"{stage}_seed0.npz").exists()
    # the teacher is A's: loaded, not trained, and named by the hash of its soft targets
    t = b["models"]["teacher"]
    assert t["loaded"] is True and t["checkpoint"] == str(teacher) and not (out / "teacher.npz").exists()
    assert t["test_errors"] == a["models"]["teacher"]["test_errors"]
    sha = a["models"]["teacher"]["soft_targets_sha256"]
    assert t["soft_targets_sha256"] == sha == b["models"]["distilled"]["teacher_soft_targets_sha256"]
    assert b["config"]["teacher"] == str(teacher) and "teacher" not in b["config"]["stages"]
    assert "distilled student" in stdout
    # the recorded hash is that of the teacher's logits on the run's transfer rows (here every
    # training image), computed independently
    x_transfer = minikd.to_float(digits.x_train)
    assert independent_sha256(teacher, x_transfer) == sha
    assert independent_sha256(teacher, x_transfer[:-1]) != sha                 # other rows, another hash


def test_the_recorded_hash_is_the_teachers_logits_on_the_transfer_set(run_a, digits):
    """Where the run trained its teacher itself, the hash is also that of its reloaded checkpoint's
    logits: the whole logits, float32, in row order (a hash of their signs alone would not do)."""
    a = json.loads((run_a / "results.json").read_text())
    assert independent_sha256(run_a / "teacher.npz", minikd.to_float(digits.x_train)) == \
        a["models"]["teacher"]["soft_targets_sha256"]


@pytest.mark.parametrize("flags, words", [
    (["--stages", "teacher,distilled"], "leave teacher out of --stages"),
    (["--stages", "distilled", "--teacher-seeds", "2"], "cannot be combined with --teacher-seeds 2"),
])
def test_teacher_refuses_a_teacher_stage_or_several_teachers(tmp_path, capsys, flags, words):
    ckpt = tmp_path / "t.npz"
    code, _, err = run([*DIGITS, "--teacher", str(ckpt), *flags, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and words in err and str(ckpt) in err, err
    assert not (tmp_path / "o").exists()


def test_teacher_without_stages_trains_the_two_students():
    """--teacher alone means: distil from it (the default --stages leaves the teacher out)."""
    from minikd.experiments.reproduce import parse_args
    assert parse_args(["--teacher", "t.npz"]).stages == ["student", "distilled"]
    assert parse_args([]).stages == ["teacher", "student", "distilled"]


def saved(path, name, sizes, meta):
    """A checkpoint of an untrained ``name`` stage of ``sizes``, as minikd writes it."""
    cfg = minikd.StageConfig(name, sizes, epochs=1, image_shape=(8, 8))
    x = np.zeros((10, sizes[0]), np.float32)
    y = np.zeros(10, np.int32)
    save_checkpoint(path, minikd.Trainer(cfg, np, x, y, x, y), meta)
    return path


def refused(tmp_path, capsys, ckpt, *words):
    code, _, err = run([*DIGITS, "--teacher", str(ckpt), "--stages", "student,distilled", "--epochs", "1",
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and str(ckpt) in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert not list((tmp_path / "o").glob("*.npz"))                 # refused before any training


def test_teacher_refuses_a_student_checkpoint(digits, tmp_path, capsys):
    meta = {"dataset": "digits", "data": digits.fingerprint()}
    ckpt = saved(tmp_path / "student_seed0.npz", "student", (64, 8, 10), meta)
    refused(tmp_path, capsys, ckpt, "holds a student stage, not a teacher")
    distilled = saved(tmp_path / "distilled_seed0.npz", "distilled", (64, 8, 10), meta)
    refused(tmp_path, capsys, distilled, "holds a distilled stage, not a teacher")


@pytest.mark.parametrize("sizes, words", [((100, 8, 10), "is a 100-8-10 network; --dataset digits needs 64 inputs "
                                                         "and 10 outputs"),
                                          ((64, 8, 5), "is a 64-8-5 network")])
def test_teacher_refuses_a_checkpoint_of_other_sizes(digits, tmp_path, capsys, sizes, words):
    ckpt = saved(tmp_path / "teacher.npz", "teacher", sizes, {"dataset": "digits", "data": digits.fingerprint()})
    refused(tmp_path, capsys, ckpt, words)


def test_teacher_refuses_a_checkpoint_of_other_data(digits, tmp_path, capsys):
    other = dict(digits.fingerprint(), sha256="0" * 64)
    ckpt = saved(tmp_path / "teacher.npz", "teacher", (64, 8, 10), {"dataset": "digits", "data": other})
    refused(tmp_path, capsys, ckpt, "was trained on other data")
    mnist = saved(tmp_path / "mnist_teacher.npz", "teacher", (64, 8, 10), {"dataset": "mnist"})
    refused(tmp_path, capsys, mnist, "was trained on --dataset mnist")
    refused(tmp_path, capsys, tmp_path / "missing.npz", "does not exist")
