"""stats.py's seed and pair statistics against values worked out here from their formulas, and
results.py's provenance (the git commit, dirty or not, the BLAS list, the command line)."""
import math
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest

from minikd.experiments import results, stats


# --------------------------------------------------------------------------- describe / intervals
def test_describe_by_hand():
    d = stats.describe([3, 5, 10])
    assert d["mean"] == 6.0 and d["n"] == 3 and d["min"] == 3 and d["max"] == 10
    # sample variance: ((3-6)^2 + (5-6)^2 + (10-6)^2) / (3 - 1) = 26 / 2 = 13
    assert d["sd"] == pytest.approx(math.sqrt(13), rel=1e-12)
    assert isinstance(d["min"], int) and isinstance(d["max"], int)   # error counts stay counts


def test_describe_of_one_run_has_no_spread():
    assert stats.describe([82]) == {"mean": 82.0, "sd": None, "n": 1, "min": 82, "max": 82}
    with pytest.raises(ValueError, match="no values"):
        stats.describe([])


def test_t_interval_of_three_differences_by_hand():
    # mean 6, sd sqrt(13), n 3: the half-width is t_{0.975, 2} * sqrt(13) / sqrt(3), and
    # t_{0.975, 2} = 4.302652729... (the 97.5% point of Student's t with 2 degrees of freedom:
    # for 2 degrees of freedom the quantile has the closed form t = (2p - 1) / sqrt(2 p (1 - p)),
    # p = 0.975).
    p = 0.975
    t2 = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    half = t2 * math.sqrt(13) / math.sqrt(3)
    got = stats.paired_interval([3, 5, 10])
    assert got["mean"] == 6.0 and got["n"] == 3 and got["sd"] == pytest.approx(math.sqrt(13))
    assert got["ci95"] == pytest.approx([6 - half, 6 + half], rel=1e-9)


def test_interval_level_and_its_key():
    # 90%: p = 0.95 in the same closed form for 2 degrees of freedom
    p = 0.95
    half = (2 * p - 1) / math.sqrt(2 * p * (1 - p)) * math.sqrt(13) / math.sqrt(3)
    assert stats.paired_interval([3, 5, 10], level=0.9)["ci90"] == pytest.approx([6 - half, 6 + half])
    with pytest.raises(ValueError, match="level"):
        stats.paired_interval([1, 2], level=95)


def test_one_pair_has_no_interval():
    assert stats.paired_interval([7]) == {"mean": 7.0, "sd": None, "n": 1, "ci95": None}


# --------------------------------------------------------------------------- McNemar
def test_mcnemar_exact_by_hand():
    # b = 10, c = 2: 12 discordant images; P(X <= 2) for X ~ Binomial(12, 1/2) is
    # (C(12,0) + C(12,1) + C(12,2)) / 2^12 = (1 + 12 + 66) / 4096 = 79 / 4096; two-sided: twice that.
    assert stats.mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-15)
    assert stats.mcnemar_exact(2, 10) == stats.mcnemar_exact(10, 2)


def test_mcnemar_edges():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == 1.0          # the two tails overlap: capped at 1
    assert stats.mcnemar_exact(0, 1) == 1.0          # 2 * 1/2
    assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="count"):
            stats.mcnemar_exact(bad, 3)


def test_mcnemar_matches_scipy_binomtest():
    from scipy.stats import binomtest
    for b, c in ((10, 2), (0, 9), (31, 44), (120, 80)):
        assert stats.mcnemar_exact(b, c) == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)


# --------------------------------------------------------------------------- paired gain
def test_paired_gain_by_hand():
    pairs = [{"teacher_seed": 0, "seed": 0, "student_errors": 150, "distilled_errors": 100,
              "only_student_right": 10, "only_distilled_right": 60},
             {"teacher_seed": 1, "seed": 3, "student_errors": 140, "distilled_errors": 110,
              "only_student_right": 2, "only_distilled_right": 32},
             {"teacher_seed": 2, "seed": 6, "student_errors": 145, "distilled_errors": 150,
              "only_student_right": 9, "only_distilled_right": 4}]
    g = stats.paired_gain(pairs)
    gains = [50, 30, -5]
    mean = sum(gains) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in gains) / 2)
    p = 0.975
    half = (2 * p - 1) / math.sqrt(2 * p * (1 - p)) * sd / math.sqrt(3)
    assert g["n"] == 3 and g["mean"] == pytest.approx(mean) and g["sd"] == pytest.approx(sd)
    assert g["ci95"] == pytest.approx([mean - half, mean + half])
    assert [r["gain"] for r in g["pairs"]] == gains
    assert [r["seed"] for r in g["pairs"]] == [0, 3, 6]            # other keys kept
    # the third pair: b = 9, c = 4, 13 discordant: P(X <= 4) = (1 + 13 + 78 + 286 + 715) / 8192
    assert g["pairs"][2]["mcnemar_p"] == pytest.approx(2 * 1093 / 8192)


def test_paired_gain_refuses_counts_that_contradict_the_errors():
    # student - distilled = 50 must equal c - b; b and c swapped gives -50
    with pytest.raises(ValueError, match="swapped"):
        stats.paired_gain([{"student_errors": 150, "distilled_errors": 100,
                            "only_student_right": 60, "only_distilled_right": 10}])
    with pytest.raises(ValueError, match="only one of"):
        stats.paired_gain([{"student_errors": 150, "distilled_errors": 100, "only_student_right": 60}])
    with pytest.raises(ValueError, match="distilled_errors"):
        stats.paired_gain([{"student_errors": 150}])


def test_paired_gain_without_counts_has_no_mcnemar():
    g = stats.paired_gain([{"student_errors": 12, "distilled_errors": 9}])
    assert g["pairs"][0]["mcnemar_p"] is None and g["ci95"] is None and g["mean"] == 3.0


def test_pairs_from_runs_pairs_by_teacher_and_seed():
    runs = [{"model": "teacher", "teacher_seed": 0, "seed": 0, "test_errors": 80},
            {"model": "student", "teacher_seed": 0, "seed": 0, "test_errors": 150},
            {"model": "student", "teacher_seed": 0, "seed": 1, "test_errors": 149},
            {"model": "distilled", "teacher_seed": 0, "seed": 1, "test_errors": 96},
            {"model": "distilled", "teacher_seed": 0, "seed": 0, "test_errors": 101},
            {"model": "distilled", "teacher_seed": 1, "seed": 0, "test_errors": 99}]   # no plain partner
    assert stats.pairs_from_runs(runs) == [
        {"teacher_seed": 0, "seed": 0, "student_errors": 150, "distilled_errors": 101},
        {"teacher_seed": 0, "seed": 1, "student_errors": 149, "distilled_errors": 96}]
    with pytest.raises(ValueError, match="two student runs"):
        stats.pairs_from_runs(runs + [dict(runs[1])])
    s = stats.model_summary(runs)
    assert s["teacher"]["n"] == 1 and s["distilled"]["n"] == 3 and s["student"]["mean"] == 149.5


# --------------------------------------------------------------------------- provenance
def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_git_provenance_of_a_checkout(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "pkg/a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert results.git_provenance(pkg) == (head, False)
    (tmp_path / "notes.txt").write_text("untracked\n")          # untracked files do not count
    assert results.git_provenance(pkg) == (head, False)
    (pkg / "a.py").write_text("x = 2\n")                         # a tracked file changed
    assert results.git_provenance(pkg) == (head, True)


def test_git_provenance_outside_a_checkout(tmp_path):
    # an installed package: site-packages inside some other repository is not minikd's checkout
    site = tmp_path / "venv" / "site-packages" / "minikd"
    site.mkdir(parents=True)
    (tmp_path / "README").write_text("another project\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-q", "-m", "another project")   # a commit git would happily report
    assert results.git_provenance(site) == (None, None)
    lone = tmp_path.parent / (tmp_path.name + "_nogit") / "minikd"
    lone.mkdir(parents=True)
    assert results.git_provenance(lone) == (None, None)


def test_git_provenance_never_fails(monkeypatch, tmp_path):
    def boom(*a, **k):
        raise subprocess.TimeoutExpired("git", results.GIT_TIMEOUT_S)
    monkeypatch.setattr(results.subprocess, "run", boom)
    assert results.git_provenance(tmp_path / "minikd") == (None, None)


def test_command_line():
    assert results.command_line(["--seeds", "3", "--out", "my runs"], "scripts/reproduce.py") == \
        "python scripts/reproduce.py --seeds 3 --out 'my runs'"
    assert results.command_line(["--dataset", "digits"], "minikd reproduce") == "minikd reproduce --dataset digits"
    assert results.command_line([], "/usr/local/bin/minikd") == "minikd"


def test_command_line_from_sys_argv(monkeypatch, tmp_path):
    # `minikd sweep --seeds 2`: minikd.cli sets sys.argv[0] to "minikd sweep" and keeps "sweep" in sys.argv[1]
    monkeypatch.setattr(sys, "argv", ["minikd sweep", "sweep", "--seeds", "2"])
    assert results.command_line() == "minikd sweep --seeds 2"
    # a script named by its absolute path inside the working folder is shown relative to it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "scripts" / "reproduce.py"), "--dataset", "digits"])
    assert results.command_line() == "python scripts/reproduce.py --dataset digits"
    outside = str(tmp_path.parent / "elsewhere.py")
    assert results.command_line([], outside) == f"python {outside}"


def test_environment_info_records_the_provenance():
    env = results.environment_info(np, ["--dataset", "digits"], "scripts/reproduce.py")
    import minikd
    assert env["minikd_version"] == minikd.__version__
    assert env["command"] == "python scripts/reproduce.py --dataset digits"
    commit, dirty = results.git_provenance()
    assert env["git_commit"] == commit and env["git_dirty"] == dirty
    assert env["cpu"] == results.cpu_model() and env["cpu_count"] >= 1
    for old in ("python", "platform", "machine", "numpy", "backend", "blas_threads"):
        assert old in env
    assert isinstance(env["blas"], list)
    for lib in env["blas"]:
        assert set(lib) == {"name", "version", "architecture", "threads"}
    datetime.fromisoformat(env["started"])
    env["finished"] = results.finished_now()
    assert 0 <= results.elapsed_seconds(env) < 60
    assert results.elapsed_seconds({"started": env["started"]}) is None


def test_blas_list_from_threadpoolctl(monkeypatch):
    tp = pytest.importorskip("threadpoolctl")
    fake = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell",
             "num_threads": 3, "filepath": "/x/numpy.libs/libopenblas.so"},
            {"user_api": "openmp", "internal_api": "openmp", "version": None, "num_threads": 2, "filepath": "/y"},
            {"user_api": "blas", "internal_api": "mkl", "version": "2024.1", "architecture": None,
             "num_threads": 1, "filepath": "/z/scipy/libmkl.so"}]
    monkeypatch.setattr(tp, "threadpool_info", lambda: fake)
    assert results.blas_libraries() == [
        {"name": "openblas", "version": "0.3.31", "architecture": "Haswell", "threads": 3},
        {"name": "mkl", "version": "2024.1", "architecture": None, "threads": 1}]
    assert results.blas_threads() == 3


def test_cpu_model_reads_proc_cpuinfo():
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/cpuinfo is Linux's")
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    if names:
        assert results.cpu_model() == names[0]
