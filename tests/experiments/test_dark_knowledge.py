"""minikd dark-knowledge on digits (demo profile, 3 epochs a stage, health check off: these tests are
about what is trained and recorded, not about learning): every variant for every seed in results.json,
the variants of one seed paired, each variant's targets, the smoothing chosen on held-out images,
agreement and McNemar from the students themselves, --resume and the refusals."""
import contextlib
import io
import json
import statistics

import numpy as np
import pytest

from minikd import train
from minikd.checkpoints import load_model
from minikd.data import to_float
from minikd.engine.backend import make_rng
from minikd.experiments import dark_knowledge, stage
from minikd.experiments.results import soft_targets_sha256
from minikd.targets import confidence_only, permute_non_top
from cli_run import run

VARIANTS = ("hard", "soft", "permuted", "confidence", "smoothed", "logit_matching")
FLAGS = ["--backend", "numpy", "--dataset", "digits", "--epochs", "3", "--smoothing-grid", "0,0.9"]


def no_check(self, *args, **kwargs):
    return None


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One run with --seeds 2; every Trainer built records the checkpoint it is for, its initial
    weights and its first epoch's batch order."""
    out = tmp_path_factory.mktemp("dk") / "out"
    built, current = [], {}
    run_stage = dark_knowledge.run_stage

    def recording_run_stage(*args, path, **kwargs):
        current["path"] = path
        return run_stage(*args, path=path, **kwargs)

    class Recording(train.Trainer):
        def __init__(self, cfg, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            self.record = {"file": current["path"].name, "order": None,
                           "weights": {k: np.array(v) for k, v in self.model.state_dict().items()}}
            built.append(self.record)

        def epoch_rows(self, perm):
            if self.record["order"] is None:
                self.record["order"] = np.array(perm)
            return super().epoch_rows(perm)

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        mp.setattr(train.HealthCheck, "check", no_check)
        mp.setattr(stage, "Trainer", Recording)
        mp.setattr(dark_knowledge, "run_stage", recording_run_stage)
        code = dark_knowledge.main([*FLAGS, "--seeds", "2", "--out", str(out)])
    assert code == 0, stderr.getvalue()[-3000:]
    return {"out": out, "results": json.loads((out / "results.json").read_text()), "built": built,
            "stdout": stdout.getvalue()}


def test_every_variant_for_every_seed_and_the_paired_differences(done):
    res = done["results"]
    assert res["complete"] is True
    assert set(res["variants"]) == set(VARIANTS)
    for v in VARIANTS:
        assert res["variants"][v]["n"] == 2, v
        assert [r["seed"] for r in res["variants"][v]["runs"]] == [0, 1]
        assert all((done["out"] / f"{v}_seed{s}.npz").is_file() for s in (0, 1))
    assert res["reference_student"]["n"] == 2
    assert set(res["paired"]) == set(VARIANTS) - {"hard"}
    assert set(res["paired"]["soft"]) == {"vs_hard"}
    errors = {v: {r["seed"]: r["test_errors"] for r in res["variants"][v]["runs"]} for v in VARIANTS}
    for v in set(VARIANTS) - {"hard", "soft"}:
        assert set(res["paired"][v]) == {"vs_hard", "vs_soft"}
        for ref in ("hard", "soft"):
            g = res["paired"][v][f"vs_{ref}"]
            diffs = [errors[v][s] - errors[ref][s] for s in (0, 1)]
            assert g["n"] == 2 and g["mean"] == pytest.approx(statistics.mean(diffs))
            assert [p["difference"] for p in g["pairs"]] == diffs
    assert "With 2 seed(s) a t-interval" in done["stdout"]


def test_students_differ_only_in_their_targets(done):
    """Every variant trains with the distilled stage's config: only its name, seed, and what its targets
    need (the smoothing amount, the logit-matching loss) differ."""
    distilled = done["results"]["config"]["stages"]["distilled"]
    own = {"name", "seed", "label_smoothing", "soft_loss"}
    for v in VARIANTS:
        for r in done["results"]["variants"][v]["runs"]:
            cfg = r["config"]
            shared = {k: x for k, x in cfg.items() if k not in own}
            assert shared == {k: x for k, x in distilled.items() if k not in own}, v
            assert (cfg["name"], cfg["seed"]) == (v, r["seed"])
            assert cfg["soft_loss"] == ("logit_matching" if v == "logit_matching" else "kl")
            assert cfg["label_smoothing"] == (done["results"]["smoothing"]["chosen"] if v == "smoothed" else 0.0)


def test_the_variants_of_one_seed_start_from_the_same_weights_and_batches(done):
    """Student seed s: every variant's <variant>_seed<s>.npz starts from one set of initial weights and sees
    its batches in one order; seeds 0 and 1 differ in both."""
    by_file = {b["file"]: b for b in done["built"]}
    for seed in (0, 1):
        first = by_file[f"hard_seed{seed}.npz"]
        for v in VARIANTS[1:]:
            b = by_file[f"{v}_seed{seed}.npz"]
            assert all(np.array_equal(first["weights"][k], w) for k, w in b["weights"].items()), (v, seed)
            assert np.array_equal(first["order"], b["order"]), (v, seed)
    zero, one = by_file["hard_seed0.npz"], by_file["hard_seed1.npz"]
    assert not all(np.array_equal(w, one["weights"][k]) for k, w in zero["weights"].items())
    assert not np.array_equal(zero["order"], one["order"])


def teacher_logits_on_transfer_set(done, digits):
    teacher, _, _ = load_model(done["out"] / "teacher.npz")
    n = done["results"]["config"]["n_transfer"]
    return train.teacher_logits(teacher, to_float(digits.x_train[:n], np)), teacher


def test_each_variant_learns_from_its_own_targets(done, digits):
    """soft and logit_matching: the teacher's logits; permuted: them shuffled by make_rng(xp, seed, 3), so
    other targets for each seed; confidence: confidence_only; hard and smoothed: none."""
    v, _ = teacher_logits_on_transfer_set(done, digits)
    res = done["results"]
    assert res["teacher"]["soft_targets_sha256"] == soft_targets_sha256(v)
    want = {"soft": lambda s: v, "logit_matching": lambda s: v,
            "permuted": lambda s: permute_non_top(v, make_rng(np, s, 3)),
            "confidence": lambda s: confidence_only(v, res["config"]["temperature"])}
    for name in VARIANTS:
        for r in res["variants"][name]["runs"]:
            expected = want[name](r["seed"]) if name in want else None
            assert r["targets_sha256"] == (None if expected is None else soft_targets_sha256(expected)), name
    permuted = [r["targets_sha256"] for r in res["variants"]["permuted"]["runs"]]
    assert permuted[0] != permuted[1]


def test_smoothing_is_chosen_on_held_out_training_images(done, digits):
    res = done["results"]
    sm, cfg = res["smoothing"], res["config"]
    n_val = cfg["n_validation"]
    assert cfg["validation_outside_transfer"] and cfg["n_transfer"] + n_val <= len(digits.y_train)
    assert sm["grid"] == [0.0, 0.9]
    assert len(set(sm["validation_errors"])) > 1, "a grid whose students tie cannot show which one is chosen"
    assert sm["chosen"] == sm["grid"][int(np.argmin(sm["validation_errors"]))]
    x_val, y_val = to_float(digits.x_train[-n_val:], np), digits.y_train[-n_val:]

    def errors_on_validation(path):
        model, _, _ = load_model(path)
        return int((train.predict_logits(model, x_val).argmax(axis=1) != y_val).sum())

    assert [errors_on_validation(p) for p in sm["checkpoints"]] == sm["validation_errors"]
    # hard's and soft's last validation errors are their final students' on the same images
    for name in ("hard", "soft"):
        for r in res["variants"][name]["runs"]:
            assert r["history"][-1]["validation_errors"] == errors_on_validation(r["checkpoint"])
            stop = next(p for p in res["early_stopping"][name]["runs"] if p["seed"] == r["seed"])
            best = min(r["history"], key=lambda h: h["validation_errors"])
            assert (stop["best_epoch"], stop["test_errors_at_best"]) == (best["epoch"], best["test_errors"])


def test_agreement_and_mcnemar_come_from_the_students(done, digits):
    res = done["results"]
    _, teacher = teacher_logits_on_transfer_set(done, digits)
    x_test, y_test = to_float(digits.x_test, np), digits.y_test
    teacher_pred = train.predict_logits(teacher, x_test).argmax(axis=1)
    pred = {}
    for name in ("hard", "permuted"):
        for r in res["variants"][name]["runs"]:
            model, _, _ = load_model(r["checkpoint"])
            pred[(name, r["seed"])] = train.predict_logits(model, x_test).argmax(axis=1)
            assert r["agreement"] == pytest.approx(float((pred[(name, r["seed"])] == teacher_pred).mean()))
    for p in res["paired"]["permuted"]["vs_hard"]["pairs"]:
        mine, hard = pred[("permuted", p["seed"])] == y_test, pred[("hard", p["seed"])] == y_test
        assert (p["only_variant_right"], p["only_reference_right"]) == (int((mine & ~hard).sum()),
                                                                        int((hard & ~mine).sum()))


def test_a_rerun_refuses_to_overwrite_and_resume_reuses_every_student(done, capsys, no_health_check):
    out, before = done["out"], done["results"]
    code, err = run(dark_knowledge, [*FLAGS, "--seeds", "2", "--out", str(out)], capsys)
    assert code == 1 and "already holds" in err and "--resume" in err
    code, err = run(dark_knowledge, [*FLAGS, "--seeds", "2", "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    after = json.loads((out / "results.json").read_text())
    for v in VARIANTS:
        assert [r["test_errors"] for r in after["variants"][v]["runs"]] == \
               [r["test_errors"] for r in before["variants"][v]["runs"]]
        assert after["variants"][v]["runs"][0]["history"] == before["variants"][v]["runs"][0]["history"]
    assert after["early_stopping"] == before["early_stopping"]


def test_teacher_must_be_a_teacher(done, tmp_path, capsys, no_health_check):
    student = done["out"] / "hard_seed0.npz"
    code, err = run(dark_knowledge, [*FLAGS, "--teacher", str(student), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and str(student) in err and "not a teacher" in err


def test_on_the_whole_training_set_smoothing_is_chosen_inside_it_and_there_is_no_early_stopping(
        digits, tmp_path, capsys, no_health_check):
    n = len(digits.y_train)
    code, err = run(dark_knowledge, [*FLAGS, "--smoothing-grid", "0.1", "--train-size", str(n),
                                     "--out", str(tmp_path / "all")], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "all" / "results.json").read_text())
    assert res["config"]["n_transfer"] == n and not res["config"]["validation_outside_transfer"]
    assert res["smoothing"]["trained_on"] == n - n // 6 and res["config"]["n_validation"] == n // 6
    assert res["early_stopping"]["available"] is False


@pytest.mark.parametrize("grid", ["1.5", "0.1,-0.2", "a,b"])
def test_smoothing_grid_out_of_range_is_refused(grid, capsys):
    with pytest.raises(SystemExit) as exc:
        dark_knowledge.parse_args(["--smoothing-grid", grid])
    assert exc.value.code == 2 and "--smoothing-grid" in capsys.readouterr().err
