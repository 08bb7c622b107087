"""What the commands write in --out, and the distilled stage's --grad-bound of the
section-3 scripts (issue 23, items 4 and 7).

outdir.OUT_FILES is the one list of the files minikd writes in --out; the cleanup
of stale temporaries trusts it, so each command is run here once (on digits, an
epoch or two of tiny networks) and must write nothing the list does not name.
The same runs show that --grad-bound reaches the config each student trains
with, and that results.json records it.
"""
import json
from pathlib import Path

import pytest

from minikd.experiments import outdir
from minikd.experiments import mythical_digit, reproduce, temperature_sweep
from minikd.checkpoints import read_checkpoint
from minikd.profiles import profile_configs
from cli_run import run

DIGITS = ["--backend", "numpy", "--dataset", "digits"]
MYTHICAL = [*DIGITS, "--teacher-width", "16", "--width", "8", "--teacher-epochs", "1", "--epochs", "1",
            "--seeds", "1"]
SWEEP = [*DIGITS, "--teacher-width", "16", "--teacher-epochs", "1", "--epochs", "1", "--seeds", "1",
         "--temperatures", "2,20", "--widths", "8", "--workers", "1", "--no-processes"]




def files_not_listed(out):
    """Every file under ``out`` that outdir.OUT_FILES does not name."""
    return [p.relative_to(out).as_posix() for p in sorted(Path(out).rglob("*"))
            if p.is_file() and not outdir.written_by_minikd(p.relative_to(out).as_posix())]


def profile_bound():
    """The distilled stage's bound under the quick profile, whatever profiles.py sets it to."""
    return profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8))["distilled"].grad_bound


def test_reproduce_writes_only_listed_files(tmp_path, capsys, no_health_check):
    out = tmp_path / "r"
    code, err = run(reproduce, [*DIGITS, "--epochs", "1", "--seeds", "2", "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "distilled_seed1.npz").exists() and (out / "learning_curves.png").exists()
    assert files_not_listed(out) == []


def test_mythical_digit_writes_only_listed_files_and_its_grad_bound_reaches_the_students(
        tmp_path, capsys, no_health_check):
    out = tmp_path / "m"
    code, err = run(mythical_digit, [*MYTHICAL, "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "omit3" / "distilled_seed0.npz").exists() and (out / "only78" / "distilled_seed0.npz").exists()
    assert files_not_listed(out) == []
    # Default: the profile's bound, as reproduce.py has it -- recorded, and trained with.
    recorded = json.loads((out / "results.json").read_text())["config"]["distilled"]["grad_bound"]
    trained = read_checkpoint(out / "omit3" / "distilled_seed0.npz")[0]["config"]["grad_bound"]
    assert recorded == trained == profile_bound()

    for flag, bound in (("none", None), ("0.25", 0.25)):
        other = tmp_path / f"m{flag}"
        code, err = run(mythical_digit, [*MYTHICAL, "--experiments", "omit", "--teacher", str(out / "teacher.npz"),
                                         "--grad-bound", flag, "--out", str(other)], capsys)
        assert code == 0, err
        recorded = json.loads((other / "results.json").read_text())["config"]["distilled"]["grad_bound"]
        trained = read_checkpoint(other / "omit3" / "distilled_seed0.npz")[0]["config"]["grad_bound"]
        assert recorded == trained == bound

    # Students trained under one bound are not reused under another.
    code, err = run(mythical_digit, [*MYTHICAL, "--grad-bound", "0.25", "--out", str(out)], capsys)
    assert code == 1 and "grad_bound" in err and "another --out" in err


def test_temperature_sweep_writes_only_listed_files_and_is_unbounded_unless_told(tmp_path, capsys, no_health_check):
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    code, err = run(temperature_sweep, [*SWEEP, "--out", str(out)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["T20_w8_s0.json", "T2_w8_s0.json"]
    assert files_not_listed(out) == []
    res = json.loads((out / "results.json").read_text())
    # Default none: the bound's effect would depend on T, which the sweep varies.
    assert res["config"]["distilled"]["grad_bound"] is None
    assert [cell["grad_bound"] for cell in res["cells"]] == [None, None]   # what each worker trained with

    bounded = tmp_path / "b"
    code, err = run(temperature_sweep, [*SWEEP, "--grad-bound", "0.25", "--out", str(bounded)], capsys)
    assert code == 0, err
    res = json.loads((bounded / "results.json").read_text())
    assert res["config"]["distilled"]["grad_bound"] == 0.25
    assert [cell["grad_bound"] for cell in res["cells"]] == [0.25, 0.25]

    # Cells computed without a bound are never mixed with bounded ones.
    code, err = run(temperature_sweep, [*SWEEP, "--grad-bound", "0.25", "--out", str(out)], capsys)
    assert code == 1 and "grad_bound=None" in err and "grad_bound=0.25" in err
