"""scripts/reproduce.py through its real command line: results, checkpoints,
resume, refusals, divergence."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minikd import checkpoints, profiles
from minikd.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce.py"

DIGITS = ["--dataset", "digits", "--backend", "numpy"]


def run_cli(*args, check=True, timeout=240):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"reproduce.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


# Bounds that a broken model cannot meet: chance on the 360 digits test images
# is about 324 errors. Measured with this command (paper profile, 10 epochs):
# teacher 129, students 35 / 47, distilled 48 / 37 (with the distilled grad_bound 1).
DIGITS_BOUNDS = {"teacher": 250, "student": 150, "distilled": 150}


def test_digits_pipeline_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(*DIGITS, "--profile", "paper", "--epochs", "10", "--seeds", "2", "--out", str(out))
    assert "distilled student" in proc.stdout
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"teacher", "student", "distilled"}
    for key, m in res["models"].items():
        for errors in m.get("test_errors_all_seeds", [m["test_errors"]]):
            assert isinstance(errors, int) and errors < DIGITS_BOUNDS[key], (key, errors)
        assert m["n_eval"] == 360
        assert m["epochs"] == 10 and m["train_size"] == 1437
        assert isinstance(m["sec_per_epoch"], float) and m["sec_per_epoch"] > 0
        assert len(m["history"]) == 10
    assert len(res["models"]["student"]["test_errors_all_seeds"]) == 2
    assert res["config"]["stages"]["teacher"]["jitter"] == 1  # 8x8 digits: +-1 pixel
    assert res["environment"]["backend"] == "numpy"
    for name in ("teacher.npz", "student_seed0.npz", "student_seed1.npz", "distilled_seed0.npz",
                 "learning_curves.png"):
        assert (out / name).stat().st_size > 0
    # distill alone reuses the saved teacher and keeps the other rows of the table; its own
    # finished checkpoint is replaced only with --overwrite
    again = [*DIGITS, "--profile", "paper", "--epochs", "10", "--stages", "distilled", "--out", str(out)]
    before = (out / "distilled_seed0.npz").read_bytes()
    proc = run_cli(*again, check=False)
    assert proc.returncode == 1 and "already holds a finished distilled" in proc.stderr
    assert (out / "distilled_seed0.npz").read_bytes() == before
    proc = run_cli(*again, "--overwrite")
    res2 = json.loads((out / "results.json").read_text())
    assert res2["models"]["teacher"]["test_errors"] == res["models"]["teacher"]["test_errors"]
    assert res2["models"]["distilled"]["test_errors"] == res["models"]["distilled"]["test_errors"]


def test_distill_without_saved_teacher_is_refused(tmp_path):
    proc = run_cli(*DIGITS, "--epochs", "1", "--stages", "distilled", "--out", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert "no saved teacher" in proc.stderr and "Traceback" not in proc.stderr


def test_mnist_subset_smoke(tmp_path, mnist_dir):
    out = tmp_path / "m"
    run_cli("--backend", "numpy", "--data-dir", str(mnist_dir), "--train-size", "2000", "--profile", "paper",
            "--epochs", "4", "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["models"]["teacher"]["train_size"] == 2000
    assert res["config"]["stages"]["teacher"]["sizes"] == [784, 1200, 1200, 10]
    assert res["config"]["stages"]["student"]["sizes"] == [784, 800, 800, 10]
    assert res["config"]["stages"]["distilled"]["temperature"] == 20.0
    # four epochs on 2,000 images; chance is about 9,000 test errors. Measured:
    # teacher 2423, student 1228, distilled 2422 -- a model that learned nothing
    # (or a distilled student fed misaligned targets) cannot get under 4,000.
    for key in ("teacher", "student", "distilled"):
        assert res["models"][key]["test_errors"] < 4000, (key, res["models"][key]["test_errors"])


def _params(path):
    header, arrays = checkpoints.read_checkpoint(path)
    return header, {k: v for k, v in arrays.items() if k.startswith("param.")}


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    """Kill -9 a real run mid-stage, resume it: same errors and weights as a run never stopped."""
    args = [*DIGITS, "--stages", "teacher", "--profile", "paper", "--epochs", "8", "--checkpoint-every", "1"]
    run_cli(*args, "--out", str(tmp_path / "full"))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, MPLBACKEND="Agg"))
    ckpt = killed / "teacher.npz"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                done = checkpoints.read_checkpoint(ckpt)[0]["epochs_done"]
            except checkpoints.CheckpointError:
                done = 0
            if done >= 3:
                break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make it longer")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = checkpoints.read_checkpoint(ckpt)[0]["epochs_done"]
    assert 3 <= stopped_at < 8
    run_cli(*args, "--out", str(killed), "--resume")
    full_header, full = _params(tmp_path / "full" / "teacher.npz")
    res_header, resumed = _params(ckpt)
    assert res_header["epochs_done"] == 8
    for k in full:
        np.testing.assert_array_equal(full[k], resumed[k])
    a = json.loads((tmp_path / "full" / "results.json").read_text())["models"]["teacher"]
    b = json.loads((killed / "results.json").read_text())["models"]["teacher"]
    assert a["test_errors"] == b["test_errors"]


def test_interrupted_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "teacher.npz"
    path.write_bytes(b"previous good checkpoint")

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise KeyboardInterrupt  # the process is stopped mid-write

    monkeypatch.setattr(checkpoints.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.atomic_write_bytes(path, lambda f: checkpoints.np.savez(f, a=np.zeros(3)))
    assert path.read_bytes() == b"previous good checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.npz"]  # no temp left behind


def test_checkpoint_of_other_architecture_is_refused(tmp_path):
    out = tmp_path / "r"
    run_cli(*DIGITS, "--epochs", "1", "--stages", "student", "--out", str(out))
    (out / "student_seed0.npz").replace(out / "teacher.npz")
    proc = run_cli(*DIGITS, "--epochs", "1", "--stages", "teacher", "--resume", "--out", str(out),
                   check=False)
    assert proc.returncode == 1
    assert "64-800-800-10" in proc.stderr and "64-1200-1200-10" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_checkpoint_of_other_dataset_is_refused(tmp_path):
    cfgs = profiles.profile_configs("quick", n_features=64, n_classes=10, image_shape=(8, 8), epochs=1)
    x = np.zeros((20, 64), np.float32)
    y = np.zeros(20, np.int32)
    trainer = Trainer(cfgs["student"], np, x, y, x, y)
    path = tmp_path / "student_seed0.npz"
    checkpoints.save_checkpoint(path, trainer, {"dataset": "idx", "train_size": None, "validation": False})
    proc = run_cli(*DIGITS, "--epochs", "1", "--stages", "student", "--resume", "--out", str(tmp_path),
                   check=False)
    assert proc.returncode == 1 and "dataset='idx'" in proc.stderr


def test_checkpoint_is_never_unpickled(tmp_path):
    """A tampered checkpoint holding a pickled object is refused, not executed."""
    path = tmp_path / "teacher.npz"
    marker = tmp_path / "pwned"
    payload = np.array([_Evil(str(marker))], dtype=object)
    np.savez(path, header=np.array(json.dumps({"format": "minikd-checkpoint-1"})), payload=payload)
    with pytest.raises(checkpoints.CheckpointError, match="unreadable"):
        checkpoints.read_checkpoint(path)
    assert not marker.exists()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_stops_with_a_message(tmp_path):
    proc = run_cli(*DIGITS, "--epochs", "3", "--stages", "student", "--lr", "1e15", "--out", str(tmp_path),
                   check=False)
    assert proc.returncode == 1
    assert "became" in proc.stderr and "--lr" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_flags_are_refused(tmp_path):
    proc = run_cli(*DIGITS, "--stages", "teacher,bogus", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "bogus" in proc.stderr
    proc = run_cli(*DIGITS, "--temperature", "0", "--out", str(tmp_path), check=False)
    assert proc.returncode == 2 and "--temperature" in proc.stderr
    proc = run_cli(*DIGITS, "--train-size", "5000", "--out", str(tmp_path), check=False)
    assert proc.returncode == 1 and "--train-size 5000" in proc.stderr and "Traceback" not in proc.stderr


def test_paper_profile_matches_the_2012_recipe():
    cfgs = profiles.profile_configs("paper", n_features=784, n_classes=10, image_shape=(28, 28))
    t = cfgs["teacher"]
    assert (t.epochs, t.batch_size, t.lr_decay, t.momentum_start, t.momentum_end, t.momentum_ramp) == \
        (3000, 100, 0.998, 0.5, 0.99, 500)
    assert t.sizes == (784, 1200, 1200, 10) and t.jitter == 2
    assert (t.input_dropout, t.hidden_dropout) == (0.2, 0.5)
    assert t.max_norm == pytest.approx(15 ** 0.5)
    assert cfgs["distilled"].temperature == 20.0 and cfgs["student"].input_dropout == 0.0
    length = profiles.profile_configs("paper", n_features=784, n_classes=10, image_shape=(28, 28),
                                        max_norm_on="length")
    assert length["teacher"].max_norm == 15.0


def test_quick_profile_spreads_the_papers_learning_rate_fall():
    """Quick: eps falls by the paper's 0.998^3000 (~400x) over each stage's own epochs."""
    cfgs = profiles.profile_configs("quick", n_features=784, n_classes=10, image_shape=(28, 28))
    for cfg in cfgs.values():
        assert cfg.lr_decay ** cfg.epochs == pytest.approx(0.998 ** 3000)
        assert cfg.momentum_ramp == pytest.approx(cfg.epochs / 6)
    fixed = profiles.profile_configs("quick", n_features=784, n_classes=10, image_shape=(28, 28), lr_decay=0.9)
    assert {c.lr_decay for c in fixed.values()} == {0.9}


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_a_short_run_follows_the_start_of_the_profiles_schedule(profile):
    """--epochs N below the profile's own epochs does not squeeze the schedules into N: epoch t of
    a short run has the eps and momentum of epoch t of the full run (the 2-epoch run that jumped
    from momentum 0.5 to 0.99 while eps fell 20x learned nothing). Longer runs stretch them."""
    from minikd.train import build_optimizer, build_model
    full = profiles.profile_configs(profile, n_features=64, n_classes=10, image_shape=(8, 8))
    for n in (1, 2, 5):
        short = profiles.profile_configs(profile, n_features=64, n_classes=10, image_shape=(8, 8), epochs=n)
        for stage, cfg in short.items():
            assert cfg.epochs == n
            assert (cfg.lr_decay, cfg.momentum_ramp, cfg.lr_warmup) == \
                (full[stage].lr_decay, full[stage].momentum_ramp, full[stage].lr_warmup)
    two = build_optimizer(short["student"], build_model(short["student"], np))
    two.set_epoch(1)
    assert two.momentum < 0.6 and two.lr > 0.5 * short["student"].lr      # not 0.99, not a 20x fall
    long = profiles.profile_configs(profile, n_features=64, n_classes=10, image_shape=(8, 8), epochs=6000)
    if profile == "quick":
        assert long["student"].lr_decay ** 6000 == pytest.approx(0.998 ** 3000)


def test_each_profiles_additions_are_asserted():
    """The distilled stage's warm-up, row bound and hard weight, per profile; teacher and student
    have none of them."""
    for profile in profiles.PROFILES:
        cfgs = profiles.profile_configs(profile, n_features=784, n_classes=10, image_shape=(28, 28))
        d = cfgs["distilled"]
        assert (d.lr_warmup, d.grad_bound, d.hard_weight, d.soft_weight, d.temperature) == \
            (profiles.DISTILL_WARMUP, profiles.DISTILL_GRAD_BOUND, 1.0, 1.0, 20.0) == (7, 1.0, 1.0, 1.0, 20.0)
        for stage in ("teacher", "student"):
            assert (cfgs[stage].lr_warmup, cfgs[stage].grad_bound) == (0, None)


def test_every_departure_from_the_paper_is_listed():
    """Each setting that differs from PAPER_RECIPE shows in deviations_from_paper, with a reason and
    the paper that states the recipe's value. A profile that changed a setting silently fails here."""
    import dataclasses
    for profile in profiles.PROFILES:
        cfgs = profiles.profile_configs(profile, n_features=784, n_classes=10, image_shape=(28, 28))
        rows = profiles.deviations_from_paper(cfgs)
        assert all(set(r) == {"setting", "paper", "source", "ours", "why"} and r["why"] for r in rows)
        assert all(any(word in r["source"] for word in ("2015", "2012", "neither")) for r in rows), rows
        settings = {r["setting"] for r in rows}
        for stage, c in cfgs.items():
            assert (c.lr != 10) == (f"{stage}: eps_0" in settings)
            assert (c.epochs != 3000) == (f"{stage}: epochs" in settings)
            assert (c.lr_decay != 0.998 or c.momentum_ramp != 500) == (f"{stage}: schedules" in settings)
            assert bool(c.lr_warmup) == (f"{stage}: learning-rate warm-up" in settings)
            assert (c.grad_bound is not None) == (f"{stage}: per-row gradient bound" in settings)
            assert (c.batch_size, c.momentum_start, c.momentum_end, c.init_std) == (100, 0.5, 0.99, 0.01)
        changed = dict(cfgs, student=dataclasses.replace(cfgs["student"], lr_warmup=3))
        assert "student: learning-rate warm-up" in {r["setting"] for r in profiles.deviations_from_paper(changed)}


def test_each_departure_names_the_paper_that_states_the_value():
    """Section 3 of the 2015 paper states the architectures, dropout, weight constraint, jitter and T;
    the training recipe (epochs, eps_0, the schedules) is the 2012 dropout paper's appendix A."""
    cfgs = profiles.profile_configs("quick", n_features=784, n_classes=10, image_shape=(28, 28), temperature=4.0)
    source = {r["setting"]: r["source"] for r in profiles.deviations_from_paper(cfgs)}
    for stage in ("teacher", "student", "distilled"):
        for what in ("epochs", "eps_0", "schedules"):
            assert source[f"{stage}: {what}"] == "2012", (stage, what)
    assert source["distilled: temperature"] == "2015"
    assert source["distilled: learning-rate warm-up"] == source["distilled: per-row gradient bound"] == "neither"


def deviations_command(argv, capsys):
    from minikd import cli
    assert cli.main(["deviations", *argv]) == 0
    return capsys.readouterr().out


def test_minikd_deviations_prints_one_profiles_departures(capsys):
    """`minikd deviations quick` prints every departure of the quick profile (its configs on MNIST's
    shapes), one line each, and no other profile's; without a profile, every profile's."""
    quick = deviations_command(["quick"], capsys)
    rows = profiles.deviations_from_paper(profiles.mnist_configs("quick"))
    assert rows and "--profile quick:" in quick
    for r in rows:
        assert f"  {r['setting']}: paper {r['paper']} (" in quick and f"ours {r['ours']} -- {r['why']}" in quick, r
    assert "--profile paper:" not in quick and "--profile demo:" not in quick
    demo_only = {r["setting"] for r in profiles.deviations_from_paper(profiles.mnist_configs("demo"))} - \
        {r["setting"] for r in rows}
    assert demo_only and not any(f"  {s}:" in quick for s in demo_only)    # the demo's training images
    every = deviations_command([], capsys)
    assert all(f"--profile {name}:" in every for name in profiles.PROFILES)


def test_reproduce_help_is_short_and_points_to_the_departures():
    """--help lists the options in at most 6 KB (at 80 columns); the departures are `minikd deviations`'."""
    env = dict(os.environ, COLUMNS="80")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=env,
                          timeout=60, check=True)
    assert len(proc.stdout.encode("utf-8")) <= 6144, len(proc.stdout.encode("utf-8"))
    words = " ".join(proc.stdout.split())                  # the text as read, whatever its line breaks
    assert "minikd deviations" in words
    assert "per-row gradient bound:" not in words           # the departures themselves are not repeated here


def test_results_name_their_teacher_and_threads_and_refuse_to_mix_teachers(tmp_path):
    """results.json: the distilled row names its teacher's soft targets by their full SHA-256, the
    teacher row gives the same hash, the environment says what made the run; a retrained teacher
    drops the earlier distilled row from the table instead of mixing them, and says so."""
    out = tmp_path / "r"
    base = [*DIGITS, "--profile", "paper", "--epochs", "10", "--out", str(out)]
    run_cli(*base, "--stages", "teacher,distilled")
    res = json.loads((out / "results.json").read_text())
    sha = res["models"]["teacher"]["soft_targets_sha256"]
    assert len(sha) == 64 and int(sha, 16) >= 0
    assert res["models"]["distilled"]["teacher_soft_targets_sha256"] == sha
    env = res["environment"]
    assert isinstance(env["blas_threads"], int) and env["blas_threads"] >= 1
    import minikd
    assert env["minikd_version"] == minikd.__version__ and env["backend"] == "numpy"
    assert env["git_commit"] is None or len(env["git_commit"]) == 40
    assert env["git_dirty"] in (True, False, None) and env["started"] <= env["finished"]
    assert isinstance(env["blas"], list) and all(set(b) == {"name", "version", "architecture", "threads"}
                                                 for b in env["blas"])
    assert "reproduce.py" in env["command"] and "--stages teacher,distilled" in env["command"]
    assert res["deviations_from_paper"] and \
        {"setting", "paper", "source", "ours", "why"} == set(res["deviations_from_paper"][0])
    # the same teacher seed trained again, at another eps_0: other soft targets
    proc = run_cli(*base, "--stages", "teacher", "--overwrite", "--lr", "0.5")
    res2 = json.loads((out / "results.json").read_text())
    assert res2["models"]["teacher"]["soft_targets_sha256"] != sha
    assert set(res2["models"]) == {"teacher"} and [r["model"] for r in res2["runs"]] == ["teacher"]
    assert "learned from another teacher" in proc.stderr and "dropped" in proc.stderr
    proc = run_cli(*base, "--stages", "distilled", "--overwrite")
    res3 = json.loads((out / "results.json").read_text())
    new_sha = res2["models"]["teacher"]["soft_targets_sha256"]
    assert res3["models"]["distilled"]["teacher_soft_targets_sha256"] == new_sha
    kept = ("soft_targets_sha256", "test_errors", "checkpoint", "seed", "epochs")   # the saved teacher, reused
    assert {k: res3["models"]["teacher"][k] for k in kept} == {k: res2["models"]["teacher"][k] for k in kept}
    assert res3["models"]["teacher"]["loaded"] is True and "dropped" not in proc.stderr


def test_a_teacher_trained_over_teacher_npz_replaces_the_earlier_teachers_runs(tmp_path):
    """One --out, one teacher at a time: a teacher of another --seed written over teacher.npz leaves
    no row of the teacher it replaced (whose checkpoint is gone) in results.json, and every teacher
    row's hash is that of the logits of the checkpoint it names."""
    import hashlib

    import minikd
    out = tmp_path / "r"
    base = [*DIGITS, "--profile", "paper", "--epochs", "10", "--stages", "teacher", "--out", str(out)]
    run_cli(*base)
    run_cli(*base, "--seed", "1", "--overwrite")
    res = json.loads((out / "results.json").read_text())
    x = minikd.to_float(minikd.load_dataset("digits").x_train)
    for r in res["runs"]:
        logits = minikd.load(r["checkpoint"]).logits(x)
        assert r["soft_targets_sha256"] == hashlib.sha256(logits.tobytes()).hexdigest(), (r["seed"], r["checkpoint"])
    assert [(r["model"], r["seed"]) for r in res["runs"]] == [("teacher", 1)]
    assert res["models"]["teacher"]["seed"] == 1 and res["summary"]["teacher"]["n"] == 1


def test_published_columns_only_for_comparable_runs():
    from minikd.experiments.reproduce_table import comparable_with_paper
    full = {"teacher": {"train_size": 60000, "epochs": 150}, "student": {"train_size": 60000, "epochs": 70}}
    assert comparable_with_paper("mnist", "test", full, "quick")
    assert not comparable_with_paper("mnist", "validation", full, "quick")
    assert not comparable_with_paper("digits", "test", full, "quick")
    assert not comparable_with_paper("mnist", "test", dict(full, student={"train_size": 2000, "epochs": 70}))
    assert not comparable_with_paper("mnist", "test", dict(full, student={"train_size": 60000, "epochs": 4}))
    several = dict(full, student=[{"train_size": 60000, "epochs": 70}, {"train_size": 60000, "epochs": 4}])
    assert not comparable_with_paper("mnist", "test", several)     # every run of a model must be


def test_paper_profile_runs_on_cpu(tmp_path):
    """--profile paper on a few epochs: the full schedule's code path works on the CPU."""
    out = tmp_path / "p"
    run_cli(*DIGITS, "--profile", "paper", "--epochs", "2", "--out", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["profile"] == "paper"
    assert res["config"]["stages"]["teacher"]["lr_decay"] == 0.998


def test_reproducing_md_lists_every_profiles_departures():
    """docs/reproducing.md shows the departures as a block that docs/render_results.py renders from
    deviations_markdown(), unchanged: a profile that changes a setting without the page saying so
    fails here (and `python docs/render_results.py --check`)."""
    page = (ROOT / "docs" / "reproducing.md").read_text()
    start, end = "<!-- render: deviations-table -->\n", "\n<!-- render: end -->"
    assert start in page, "docs/reproducing.md has no <!-- render: deviations-table --> block"
    block = page[page.index(start) + len(start):]
    table = block[:block.index(end)]
    assert table == profiles.deviations_markdown(), (
        "docs/reproducing.md's table of departures is stale: run python docs/render_results.py")


def test_a_shortened_demo_shows_distillation_working(tmp_path, mnist_dir):
    """The demo, shortened: its teacher cut to 2 epochs on all 60,000 images, then its students at
    their own 30 epochs on the first 2,000, the distilled one taught by that saved teacher. The
    full demo (python scripts/reproduce.py --profile demo) is a command, not a test. Measured with
    these two commands (2 BLAS threads): teacher 353 test errors, student 908, distilled 479."""
    out = tmp_path / "demo"
    common = ["--backend", "numpy", "--data-dir", str(mnist_dir), "--profile", "demo", "--out", str(out)]
    run_cli(*common, "--stages", "teacher", "--epochs", "2", timeout=900)
    proc = run_cli(*common, "--stages", "student,distilled", timeout=900)
    res = json.loads((out / "results.json").read_text())
    teacher, student, distilled = (res["models"][k] for k in ("teacher", "student", "distilled"))
    assert (teacher["train_size"], student["train_size"], distilled["train_size"]) == (60000, 2000, 2000)
    assert (teacher["epochs"], student["epochs"], distilled["epochs"]) == (2, 30, 30)
    assert distilled["teacher_soft_targets_sha256"] == teacher["soft_targets_sha256"]
    settings = {r["setting"] for r in res["deviations_from_paper"]}
    assert {"student: training images", "distilled: training images"} <= settings
    assert "paper" not in proc.stdout.split("errors out of")[0]     # no published columns beside a demo
    # A student that learned from 2,000 labels alone errs on ~900 of the test images; the soft
    # targets of even this 2-epoch teacher must take the distilled one well below it.
    assert distilled["test_errors"] < 0.8 * student["test_errors"], (student["test_errors"], distilled["test_errors"])
