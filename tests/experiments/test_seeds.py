"""``reproduce --teacher-seeds J --seeds K``: J teachers, each with K paired plain and distilled
students, every run a distinct draw; results.json's ``runs`` and ``summary`` (each model's mean ±
s.d., the paired gain with its t-interval and McNemar's test per pair), and the printed table.

One run on the bundled digits (``--profile paper --epochs 10``: short, and every model learns),
watched from inside: the initial weights each Trainer starts from and the order of every epoch's
batches, to show that a plain and a distilled student of one seed are a pair.
"""
import contextlib
import io
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

import minikd
from minikd.experiments import reproduce
from minikd.train import Trainer

ARGV = ["--backend", "numpy", "--dataset", "digits", "--profile", "paper", "--epochs", "10",
        "--teacher-seeds", "2", "--seeds", "2"]
STUDENT_SEEDS = {0: {0, 1}, 1: {2, 3}}          # teacher seed j: seeds j * K + k


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(results.json, printed output, {(stage, seed): initial parameters}, {(stage, seed): [each
    epoch's row order]}) of one run."""
    out = tmp_path_factory.mktemp("seeds")
    initial, orders = {}, {}
    real_init, real_rows = Trainer.__init__, Trainer.epoch_rows

    def init(self, cfg, *args, **kw):
        real_init(self, cfg, *args, **kw)
        initial[(cfg.name, cfg.seed)] = {k: np.array(v) for k, v in self.model.state_dict().items()}

    def epoch_rows(self, perm):
        orders.setdefault((self.cfg.name, self.cfg.seed), []).append(np.array(perm))
        return real_rows(self, perm)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Trainer, "__init__", init)
        m.setattr(Trainer, "epoch_rows", epoch_rows)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert reproduce.main([*ARGV, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    return results, printed.getvalue(), initial, orders, out


def runs_of(results, model):
    return [r for r in results["runs"] if r["model"] == model]


def test_two_teachers_each_with_two_students_of_each_kind(run):
    results, _, _, _, out = run
    teachers = runs_of(results, "teacher")
    assert sorted(r["teacher_seed"] for r in teachers) == [0, 1] == sorted(r["seed"] for r in teachers)
    for r in teachers:
        path = out / f"teacher_seed{r['seed']}.npz"
        assert r["checkpoint"] == str(path) and path.exists()
    assert not (out / "teacher.npz").exists()
    assert len({r["soft_targets_sha256"] for r in teachers}) == 2         # two teachers, two sets of soft targets
    for model in ("student", "distilled"):
        rs = runs_of(results, model)
        assert len(rs) == 4
        for j, seeds in STUDENT_SEEDS.items():
            assert {r["seed"] for r in rs if r["teacher_seed"] == j} == seeds, (model, j)
        for r in rs:
            assert r["epochs"] == 10 and r["test_errors"] < 150 and (out / f"{model}_seed{r['seed']}.npz").exists()
    teacher_sha = {r["teacher_seed"]: r["soft_targets_sha256"] for r in teachers}
    for r in runs_of(results, "distilled"):                                  # each learned from its own teacher
        assert r["teacher_soft_targets_sha256"] == teacher_sha[r["teacher_seed"]]
    assert results["config"]["teacher_seeds"] == 2 and results["config"]["seeds"] == 2
    for model in ("teacher", "student", "distilled"):                         # several teachers: lists of runs
        assert results["models"][model] == runs_of(results, model)


def test_each_models_summary_is_that_of_its_runs(run):
    results = run[0]
    for model in ("teacher", "student", "distilled"):
        errors = np.array([r["test_errors"] for r in runs_of(results, model)], float)
        s = results["summary"][model]
        assert s["n"] == len(errors) and s["mean"] == pytest.approx(errors.mean())
        assert s["sd"] == pytest.approx(errors.std(ddof=1)) and (s["min"], s["max"]) == (errors.min(), errors.max())


def test_the_paired_gain_and_mcnemar_per_pair(run, digits):
    """gain = plain - distilled errors per (teacher seed, seed); its mean, s.d. and t-interval over the 4
    pairs; per pair, McNemar's exact test on the test images one student gets right and the other
    wrong, counted here from the two checkpoints."""
    results, _, _, _, out = run
    gain = results["summary"]["paired_gain"]
    errors = {(r["model"], r["teacher_seed"], r["seed"]): r["test_errors"] for r in results["runs"]}
    pairs = sorted((j, s) for j, seeds in STUDENT_SEEDS.items() for s in seeds)
    diffs = np.array([errors[("student", j, s)] - errors[("distilled", j, s)] for j, s in pairs], float)
    assert gain["n"] == 4 and gain["mean"] == pytest.approx(diffs.mean())
    assert gain["sd"] == pytest.approx(diffs.std(ddof=1))
    half = scipy_stats.t.ppf(0.975, 3) * diffs.std(ddof=1) / math.sqrt(4)
    assert gain["ci95"] == pytest.approx([diffs.mean() - half, diffs.mean() + half])
    assert sorted((p["teacher_seed"], p["seed"]) for p in gain["pairs"]) == pairs
    for p in gain["pairs"]:
        right = {m: minikd.load(out / f"{m}_seed{p['seed']}.npz").predict(digits.x_test) == digits.y_test
                 for m in ("student", "distilled")}
        b = int((right["student"] & ~right["distilled"]).sum())
        c = int((right["distilled"] & ~right["student"]).sum())
        assert (p["only_student_right"], p["only_distilled_right"]) == (b, c)
        assert p["gain"] == p["student_errors"] - p["distilled_errors"] == c - b
        expected = scipy_stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
        assert p["mcnemar_p"] == pytest.approx(expected, rel=1e-9)


def test_the_printed_table_has_mean_sd_and_the_paired_gain(run):
    results, printed = run[0], run[1]
    for model, label in (("teacher", "teacher"), ("student", "student"), ("distilled", "distilled student")):
        s = results["summary"][model]
        row = next(line for line in printed.splitlines() if line.strip().startswith(label + " "))
        assert f"{s['mean']:.1f} ± {s['sd']:.1f}" in row and f"{s['min']:g}-{s['max']:g}" in row, row
    gain = results["summary"]["paired_gain"]
    lo, hi = gain["ci95"]
    assert "paired gain" in printed and f"mean {gain['mean']:+.1f} over 4 pair(s)" in printed
    assert f"95% t-interval [{lo:+.1f}, {hi:+.1f}]" in printed
    assert printed.count("McNemar's exact p") == 4


def test_a_plain_and_a_distilled_student_of_one_seed_are_a_pair(run):
    """Same initial weights (build_model from the seed) and the same batch order in every epoch (the
    epoch's generator, seeded by (seed, epoch)); students of other seeds, and the teachers, differ."""
    _, _, initial, orders, _ = run
    seeds = sorted(set().union(*STUDENT_SEEDS.values()))
    for s in seeds:
        plain, distilled = initial[("student", s)], initial[("distilled", s)]
        assert plain.keys() == distilled.keys()
        for k in plain:
            np.testing.assert_array_equal(plain[k], distilled[k], err_msg=(s, k))
        assert len(orders[("student", s)]) == len(orders[("distilled", s)]) == 10
        for epoch, (a, b) in enumerate(zip(orders[("student", s)], orders[("distilled", s)], strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=(s, epoch))
    first = next(k for k in initial[("student", 0)] if k.endswith("W"))
    for s in seeds[1:]:
        assert not np.array_equal(initial[("student", s)][first], initial[("student", 0)][first]), s
        assert not np.array_equal(orders[("student", s)][0], orders[("student", 0)][0]), s
    assert not np.array_equal(orders[("student", 0)][0], orders[("student", 0)][1])    # each epoch its own order
    t0, t1 = initial[("teacher", 0)], initial[("teacher", 1)]
    w = next(k for k in t0 if k.endswith("W"))
    assert not np.array_equal(t0[w], t1[w])                                  # teacher j has seed --seed + j
