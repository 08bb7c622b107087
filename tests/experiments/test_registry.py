"""docs/render_results.py: tables rendered from registry files written here, with the numbers chosen
here and the expected text worked out here (the statistics module of the standard library, and
Student's t for 2 degrees of freedom in closed form); --check; markers that name nothing."""
import importlib.util
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "render_results.py"


def load():
    spec = importlib.util.spec_from_file_location("render_results", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


R = load()


def t975_df2():
    """The 97.5% point of Student's t with 2 degrees of freedom: (2p - 1) / sqrt(2 p (1 - p))."""
    p = 0.975
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


ENV = {"minikd_version": "0.2.0", "git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False,
       "cpu": "Test CPU 9000", "cpu_count": 2, "backend": "numpy", "blas_threads": 1,
       "blas": [{"name": "openblas", "version": "0.3.31", "architecture": "SkylakeX", "threads": 1}],
       "command": "python scripts/reproduce.py --teacher-seeds 2", "started": "2026-12-07T10:00:00+00:00",
       "finished": "2026-12-07T10:41:30+00:00"}
SIZES = {"teacher": [784, 1200, 1200, 10], "student": [784, 800, 800, 10], "distilled": [784, 800, 800, 10]}
EPOCHS = {"teacher": 150, "student": 70, "distilled": 70}


def run(model, teacher_seed, seed, errors, epochs=None, train_size=60000, history=None):
    cfg = {"sizes": SIZES[model]}
    if model == "distilled":
        cfg["temperature"] = 20.0
    return {"model": model, "teacher_seed": teacher_seed, "seed": seed, "test_errors": errors, "n_eval": 10000,
            "evaluated_on": "test", "epochs": EPOCHS[model] if epochs is None else epochs, "train_size": train_size,
            "config": cfg, "history": history or []}


def reproduce_file(path, teachers, env=None, profile="quick", dataset="mnist", epochs=None):
    """teachers: {teacher_seed: (teacher errors, [(seed, student, distilled, b, c), ...])}."""
    runs, pairs = [], []
    for t, (terr, students) in teachers.items():
        runs.append(run("teacher", t, t, terr, epochs))
        for seed, s, d, b, c in students:
            runs += [run("student", t, seed, s, epochs), run("distilled", t, seed, d, epochs)]
            pairs.append({"teacher_seed": t, "seed": seed, "student_errors": s, "distilled_errors": d,
                          "only_student_right": b, "only_distilled_right": c})
    data = {"config": {"profile": profile, "dataset": dataset, "evaluated_on": "test", "n_eval": 10000},
            "environment": dict(ENV if env is None else env), "runs": runs,
            "summary": {"paired_gain": {"pairs": pairs}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def render(renderer, *paths, root):
    return R.render_block(renderer, [str(p.relative_to(root)) for p in paths], root, "page.md:1")


def fmt(values):
    return f"{statistics.mean(values):,.1f} ± {statistics.stdev(values):,.1f}"


# --------------------------------------------------------------------------- reproduce-table
def test_reproduce_table_merges_files_and_computes_the_summary(tmp_path):
    # three teachers over two files; per pair (seed, student, distilled, b, c) with c - b = student - distilled
    a = reproduce_file(tmp_path / "docs/results/a.json",
                       {0: (80, [(0, 150, 100, 10, 60)]), 1: (95, [(3, 140, 110, 2, 32)])})
    env_b = dict(ENV, command="python scripts/reproduce.py --seed 2", started="2026-12-07T11:00:00+00:00",
                 finished="2026-12-07T11:20:00+00:00")
    b = reproduce_file(tmp_path / "docs/results/b.json", {2: (86, [(6, 145, 150, 9, 4)])}, env=env_b)
    text = render("reproduce-table", a, b, root=tmp_path)
    lines = text.split("\n")
    assert lines[0] == ("| model | test errors (of 10,000), mean ± s.d. | n | min–max | Hinton et al. 2015 "
                        "| seed reproduction |")
    assert lines[2] == f"| teacher 784-1200-1200-10 | {fmt([80, 95, 86])} | 3 | 80–95 | 67 | 100 |"
    assert lines[3] == f"| student 784-800-800-10 | {fmt([150, 140, 145])} | 3 | 140–150 | 146 | 171 |"
    assert lines[4] == (f"| distilled student 784-800-800-10, T = 20 | **{fmt([100, 110, 150])}** | 3 | 100–150 "
                        f"| 74 | 111 |")
    gains = [50, 30, -5]
    mean = statistics.mean(gains)
    half = t975_df2() * statistics.stdev(gains) / math.sqrt(3)
    assert f"mean +{mean:.1f}, n = 3, 95% t-interval [{mean - half:.1f}, {mean + half:.1f}]" in text
    assert "The interval includes 0" in text              # -13.9 .. 63.2
    assert "With 3 pairs the t-interval is wide (t = 4.30" in text
    # McNemar per pair, from the binomial sums: b=10,c=60 tiny; b=2,c=32; b=9,c=4: 2 * 1093 / 8192
    assert f"{2 * 1093 / 8192:.2g}" in text
    assert "teacher seeds 0, 1, 2" in text and "3 plain and 3 distilled" in text
    assert "poperson1205/knowledge_distillation" in text and "Hinton, Vinyals & Dean (2015)" in text
    prov = lines[-1]
    assert prov.startswith("<sub>") and prov.endswith("</sub>")
    assert ("`python scripts/reproduce.py --teacher-seeds 2`; `python scripts/reproduce.py --seed 2`" in prov)
    assert "minikd 0.2.0, commit 0123456789ab ·" in prov
    assert "Test CPU 9000 (2 cores); openblas 0.3.31 SkylakeX, 1 thread" in prov
    assert "wall time 41.5 min + 20.0 min" in prov


def test_an_interval_above_zero_is_not_called_inconclusive(tmp_path):
    a = reproduce_file(tmp_path / "r.json", {0: (80, [(0, 150, 100, 10, 60), (1, 148, 99, 0, 49),
                                                      (2, 151, 97, 1, 55)])})
    text = render("reproduce-table", a, root=tmp_path)
    gains = [50, 49, 54]
    mean, half = statistics.mean(gains), t975_df2() * statistics.stdev(gains) / math.sqrt(3)
    assert f"[{mean - half:.1f}, {mean + half:.1f}]" in text
    assert "The interval excludes 0." in text and "includes 0" not in text


def test_one_pair_has_no_interval(tmp_path):
    text = render("reproduce-table", reproduce_file(tmp_path / "r.json", {0: (80, [(0, 150, 100, 10, 60)])}),
                  root=tmp_path)
    assert "one pair gives no interval" in text
    assert "| teacher 784-1200-1200-10 | 80 | 1 | 80 | 67 | 100 |" in text


def test_published_columns_only_on_the_papers_footing(tmp_path):
    short = reproduce_file(tmp_path / "s.json", {0: (300, [(0, 400, 350, 10, 60)])}, epochs=2)
    text = render("reproduce-table", short, root=tmp_path)
    assert "Hinton et al. 2015 |" not in text and "| 67 |" not in text and "poperson1205" not in text
    assert "not on that footing" in text
    digits = reproduce_file(tmp_path / "d.json", {0: (30, [(0, 29, 27, 3, 5)])}, dataset="digits")
    assert "seed reproduction" not in render("reproduce-table", digits, root=tmp_path)


def test_files_of_other_profiles_are_not_merged(tmp_path):
    a = reproduce_file(tmp_path / "docs/results/a.json", {0: (80, [(0, 150, 100, 10, 60)])})
    b = reproduce_file(tmp_path / "docs/results/b.json", {1: (80, [(1, 150, 100, 10, 60)])}, profile="demo")
    with pytest.raises(R.RenderError, match=r"docs/results/a.json and docs/results/b.json.*profile 'quick' vs 'demo'"):
        render("reproduce-table", a, b, root=tmp_path)
    c = reproduce_file(tmp_path / "docs/results/c.json", {0: (81, [(0, 150, 100, 10, 60)])})
    with pytest.raises(R.RenderError, match="teacher seed 0 is in both"):
        render("reproduce-table", a, c, root=tmp_path)


def test_counts_that_contradict_the_errors_are_refused(tmp_path):
    bad = reproduce_file(tmp_path / "r.json", {0: (80, [(0, 150, 100, 60, 10)])})   # b and c swapped
    with pytest.raises(R.RenderError, match="swapped"):
        render("reproduce-table", bad, root=tmp_path)


# --------------------------------------------------------------------------- bound-activity
def test_bound_activity_at_chosen_epochs(tmp_path):
    def history(clip, scale, last=30):
        return [{"epoch": e, "test_errors": 100, "bound_clipped": clip(e), "bound_scale": scale(e)}
                for e in range(last)]
    runs = [run("distilled", 0, 0, 100, history=history(lambda e: 1.0 if e < 3 else 0.5 / e, lambda e: 0.5)),
            run("distilled", 0, 1, 100, history=history(lambda e: 0.8 if e < 3 else 0.1 / e, lambda e: 0.7)),
            run("student", 0, 0, 150)]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"config": {}, "environment": ENV, "runs": runs}))
    text = render("bound-activity", path, root=tmp_path)
    rows = [line for line in text.split("\n") if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[0][2:] for r in rows] == ["0", "1", "2", "4", "7", "10", "20", "29"]
    assert rows[0] == f"| 0 | {100 * (1.0 + 0.8) / 2:.1f}% | {0.6:.2f} |"
    assert rows[3] == f"| 4 | {100 * (0.5 / 4 + 0.1 / 4) / 2:.1f}% | 0.60 |"
    assert "2 distilled run(s)" in text
    path.write_text(json.dumps({"config": {}, "environment": ENV, "runs": [run("distilled", 0, 0, 100)]}))
    with pytest.raises(R.RenderError, match="bound_clipped"):
        render("bound-activity", path, root=tmp_path)


# --------------------------------------------------------------------------- dark-knowledge-table
def test_dark_knowledge_table(tmp_path):
    def diff(a, b):
        return [x - y for x, y in zip(errs[a], errs[b], strict=True)]
    errs = {"hard": [900, 880, 910], "soft": [460, 450, 440], "permuted": [700, 690, 705],
            "confidence": [800, 790, 790], "smoothed": [860, 870, 850], "logit_matching": [470, 455, 450]}
    agree = {"hard": 0.90, "soft": 0.95, "permuted": 0.92, "confidence": 0.91, "smoothed": 0.90,
             "logit_matching": 0.96}
    variants = {n: {"runs": [{"seed": s, "test_errors": e, "agreement": agree[n] + 0.001 * s}
                             for s, e in enumerate(v)], "mean": statistics.mean(v), "n": 3}
                for n, v in errs.items()}
    data = {"variants": variants, "teacher": {"test_errors": [220]}, "smoothing": {"grid": [0.05, 0.1, 0.2],
                                                                                   "chosen": 0.1},
            "paired": {"soft": {"vs_hard": {"mean": statistics.mean(diff("soft", "hard")), "n": 3}}},
            "environment": ENV}
    path = tmp_path / "dk.json"
    path.write_text(json.dumps(data))
    text = render("dark-knowledge-table", path, root=tmp_path)
    lines = text.split("\n")
    assert [line.split(" | ")[0] for line in lines[2:8]] == ["| `" + n + "`" for n in errs]
    d_hard, d_soft = diff("permuted", "hard"), diff("permuted", "soft")

    def cell(d):
        m, h = statistics.mean(d), t975_df2() * statistics.stdev(d) / math.sqrt(3)
        return f"{m:+,.1f} [{m - h:,.1f}, {m + h:,.1f}]"
    assert lines[4] == (f"| `permuted` | {fmt(errs['permuted'])} | 3 | {100 * (0.92 + 0.001):.1f}% | "
                        f"{cell(d_hard)} | {cell(d_soft)} |")
    assert lines[2].endswith("| – | " + cell(diff("hard", "soft")) + " |")
    assert "Teacher: 220 test errors." in text
    assert "smoothing 0.1, chosen on the validation split from 0.05, 0.1, 0.2" in text
    assert "With 3 seeds a t-interval is wide" in text
    assert "McNemar" not in text                              # the file has no per-pair tests
    tests = zip((1e-5, 0.03, 0.5), diff("soft", "hard"), strict=True)
    data["paired"]["soft"]["vs_hard"]["pairs"] = [{"seed": s, "mcnemar_p": p, "difference": d}
                                                  for s, (p, d) in enumerate(tests)]
    path.write_text(json.dumps(data))
    assert ("- `soft`: against `hard`, seed 0: -440 (p = 1e-05), seed 1: -430 (p = 0.03), seed 2: -470 (p = 0.5)"
            in render("dark-knowledge-table", path, root=tmp_path).split("\n"))
    data["paired"]["soft"]["vs_hard"]["mean"] = 12.0          # a file that contradicts its runs
    path.write_text(json.dumps(data))
    with pytest.raises(R.RenderError, match="contradicts itself"):
        render("dark-knowledge-table", path, root=tmp_path)


def test_dark_knowledge_reference_row_and_early_stopping(tmp_path):
    variants = {n: {"runs": [{"seed": 0, "test_errors": 500 + i, "agreement": 0.9}]} for i, n in
                enumerate(("hard", "soft"))}
    early = {"available": True, "hard": {"early_stopped": {"mean": 990.0, "sd": None, "n": 1},
                                         "final": {"mean": 987.0, "sd": None, "n": 1}}}
    data = {"variants": variants, "reference_student": {"runs": [{"seed": 0, "test_errors": 913, "agreement": 0.912}]},
            "early_stopping": early, "environment": ENV}
    path = tmp_path / "dk.json"
    path.write_text(json.dumps(data))
    text = render("dark-knowledge-table", path, root=tmp_path)
    assert "| plain student (its own schedule; reference) | 913 | 1 | 91.2% | – | – |" in text
    assert "`hard` stopped early on the validation split: 990 test errors, against 987 at its last epoch." in text
    assert "With one seed per variant no interval can be given." in text


def test_the_front_page_summary_is_the_table_without_the_per_pair_tests(tmp_path):
    path = reproduce_file(tmp_path / "q.json", {0: (80, [(0, 140, 100, 10, 50)]), 1: (90, [(1, 150, 110, 5, 45)])})
    full, short = render("reproduce-table", path, root=tmp_path), render("reproduce-summary", path, root=tmp_path)
    table = [line for line in full.split("\n") if line.startswith("|")]
    assert [line for line in short.split("\n") if line.startswith("|")] == table
    assert "McNemar" in full and "McNemar" not in short
    assert "2 teacher(s), 2 pair(s) of students." in short and "seed reproduction" in short
    assert short.split("\n")[-1] == full.split("\n")[-1]   # the same provenance line


def test_run_times_name_each_command_with_its_wall_time_machine_and_code(tmp_path):
    a = reproduce_file(tmp_path / "a.json", {0: (80, [(0, 140, 100, 10, 50)])})
    env = dict(ENV, command="python scripts/reproduce.py --dataset digits", started="2026-12-07T10:00:00+00:00",
               finished="2026-12-07T10:00:45+00:00", git_dirty=True)
    b = reproduce_file(tmp_path / "b.json", {0: (30, [(0, 29, 27, 3, 5)])}, env=env, dataset="digits")
    lines = render("run-times", a, b, root=tmp_path).split("\n")
    machine = "Test CPU 9000, 2 cores, 1 BLAS thread"
    assert lines[0] == "| command | wall time | machine | minikd |"
    assert lines[2] == (f"| `python scripts/reproduce.py --teacher-seeds 2` | 41.5 min | {machine} | "
                        f"0.2.0 @ 0123456789ab |")
    assert lines[3] == (f"| `python scripts/reproduce.py --dataset digits` | 45 s | {machine} | "
                        f"0.2.0 @ 0123456789ab with uncommitted changes |")


# --------------------------------------------------------------------------- bound-validation
def validation_pair(tmp_path, name, teacher, students, bounded, unbounded, hash_b="aa", source="/d/inverted"):
    """A --validation run (teacher, students, bounded distilled) and its --grad-bound none run."""
    cfg = {"dataset": "idx", "data_source": source, "evaluated_on": "validation", "n_eval": 3333}

    def stages(bound):
        return {"distilled": {"grad_bound": bound}}
    trow = dict(run("teacher", 0, 0, teacher), soft_targets_sha256="aa")
    a = [trow] + [run("student", 0, s, e) for s, e in enumerate(students)]
    a += [dict(run("distilled", 0, s, e), teacher_soft_targets_sha256="aa") for s, e in enumerate(bounded)]
    b = [trow] + [dict(run("distilled", 0, s, e), teacher_soft_targets_sha256=hash_b) for s, e in enumerate(unbounded)]
    paths = []
    for suffix, runs, bound in (("", a, 1.0), ("_nobound", b, None)):
        path = tmp_path / f"{name}{suffix}.json"
        path.write_text(json.dumps({"config": dict(cfg, stages=stages(bound)), "environment": ENV, "runs": runs}))
        paths.append(path)
    return paths


def test_bound_validation_rows_and_paired_differences(tmp_path):
    paths = validation_pair(tmp_path, "inv", 500, [390, 400, 380], [270, 280, 275], [330, 340, 350])
    text = render("bound-validation", *paths, root=tmp_path)
    row = text.split("\n")[2]
    ci = t975_df2() * statistics.stdev([-60, -60, -75]) / math.sqrt(3)
    mean = statistics.mean([-60, -60, -75])
    ci2 = t975_df2() * statistics.stdev([-120, -120, -105]) / math.sqrt(3)
    assert row == (f"| MNIST-format `inverted` (3,333) | 500 | {fmt([390, 400, 380])} | {fmt([330, 340, 350])} | "
                   f"{fmt([270, 280, 275])} | {mean:+.1f} [{mean - ci:.1f}, {mean + ci:.1f}] | "
                   f"-115.0 [{-115 - ci2:.1f}, {-115 + ci2:.1f}] |")
    assert "Validation errors, mean ± s.d. over 3 seed(s) of each student; one teacher per data set" in text


def test_bound_validation_refuses_a_pair_from_another_teacher_or_in_the_wrong_order(tmp_path):
    a, b = validation_pair(tmp_path, "x", 500, [390, 400], [270, 280], [330, 340], hash_b="bb")
    with pytest.raises(R.RenderError, match="did not learn from"):
        R.render_block("bound-validation", [a.name, b.name], tmp_path, "page:1")
    a, b = validation_pair(tmp_path, "y", 500, [390, 400], [270, 280], [330, 340])
    with pytest.raises(R.RenderError, match="bounded distilled stage"):
        R.render_block("bound-validation", [b.name, a.name], tmp_path, "page:1")
    with pytest.raises(R.RenderError, match="pairs of files"):
        R.render_block("bound-validation", [a.name], tmp_path, "page:1")


def test_a_stopped_student_is_named_with_its_message_and_is_no_row(tmp_path):
    a, b = validation_pair(tmp_path, "z", 500, [390, 400], [270], [330, 340])
    data = json.loads(a.read_text())
    data["failures"] = [{"model": "distilled", "teacher_seed": 0, "seed": 1, "message": "the network is dead"}]
    a.write_text(json.dumps(data))
    text = render("bound-validation", a, b, root=tmp_path)
    assert text.split("\n")[2].split(" | ")[4] == "270"
    assert ("- MNIST-format `inverted`, the profile: distilled student of teacher seed 0, seed 1 (z.json): stopped "
            "by the health check, so not in the table: “the network is dead”") in text
    path = reproduce_file(tmp_path / "r.json", {0: (80, [(0, 140, 90, 2, 52)])})
    data = json.loads(path.read_text())
    data["failures"] = [{"model": "student", "teacher_seed": 0, "seed": 1, "message": "it exploded"}]
    path.write_text(json.dumps(data))
    assert "student of teacher seed 0, seed 1 (r.json): stopped by the health check" in render(
        "reproduce-table", path, root=tmp_path)


def test_a_resumed_run_names_its_training_time_beside_the_last_parts_wall_time(tmp_path):
    path = reproduce_file(tmp_path / "r.json", {0: (80, [(0, 140, 90, 2, 52)])})
    data = json.loads(path.read_text())   # ENV: 41.5 min from started to finished
    for r, sec in zip(data["runs"], (3000.0, 600.0, 630.0), strict=True):
        r["train_seconds_total"] = sec
    path.write_text(json.dumps(data))
    assert "wall time 41.5 min for its last resumed part; its tabled models trained 70.5 min in all ·" in render(
        "reproduce-table", path, root=tmp_path)
    data["runs"][0]["loaded"] = True    # a teacher read from a checkpoint was not trained by this command
    path.write_text(json.dumps(data))
    assert "wall time 41.5 min ·" in render("reproduce-table", path, root=tmp_path)


# --------------------------------------------------------------------------- section 3
def test_sweep_grid(tmp_path):
    cells = [{"temperature": t, "width": w, "seed": s, "test_errors": e, "n_test": 360}
             for (t, w), es in {(2.0, 30): [120, 130], (20.0, 30): [150, 140], (2.0, 300): [80, 96],
                                (20.0, 300): [70, 75]}.items() for s, e in enumerate(es)]
    data = {"config": {"n_test": 360, "argv": ["--dataset", "digits"]}, "teacher": {"sizes": [64, 200, 200, 10],
                                                                                    "test_errors": 47},
            "cells": cells, "claims": [{"claim": "c1", "verdict": "holds", "detail": "d1"}], "missing": [],
            "environment": {"blas_threads": 1}}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(data))
    text = render("section3-sweep", path, root=tmp_path)
    lines = text.split("\n")
    assert lines[0] == "| width \\ T | 2 | 20 |"
    assert lines[2] == f"| 30 | **{fmt([120, 130])}** | {fmt([150, 140])} |"
    assert lines[3] == f"| 300 | {fmt([80, 96])} | **{fmt([70, 75])}** |"
    assert "- *c1*: **holds** (d1)." in text and "Teacher 64-200-200-10: 47 test errors." in text
    # a file without its own command line: the script and the recorded arguments, and no version
    assert "`python scripts/temperature_sweep.py --dataset digits`" in text and "minikd version not recorded" in text


def mythical_run(seed, none, val, shift, focus_none, focus_val):
    rep = {"none": {"errors": none, "errors_on_focus": focus_none, "shift": 0.0},
           "validation": {"errors": val, "errors_on_focus": focus_val, "shift": shift},
           "test_optimal": {"errors": val - 1, "errors_on_focus": focus_val, "shift": shift + 0.25},
           "paper_shift": {"errors": val + 10 * seed + 5, "errors_on_focus": focus_val, "shift": 3.5}}
    return {"seed": seed, "test": rep}


def test_mythical_table(tmp_path):
    paper = {"classes": [3], "shift": 3.5, "errors_before": 206, "focus_errors_before": 133, "errors_after": 109,
             "focus_errors_after": 14, "n_focus": 1010}
    exps = {"omit": {"spec": {"title": "no 3 in the transfer set", "focus": [3], "paper": paper},
                     "n_transfer": 44899, "n_test": 10000, "n_focus": 1010,
                     "runs": [mythical_run(0, 170, 120, 1.5, 80, 20), mythical_run(1, 180, 130, 2.0, 84, 28)],
                     "verdicts": [{"claim": "most threes right", "verdict": "holds", "detail": "97.6%"}]}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"experiments": exps, "environment": ENV}))
    text = render("section3-mythical", path, root=tmp_path)
    row = text.split("\n")[2]
    assert row == ("| no 3 in the transfer set (44,899 images) | 175 (170–180), 1.8% | +1.75 (+1.50 to +2.00) | "
                   "125 (120–130), 1.2% | class 3 wrong: 82 → 24 of 1,010 | 206 → 109 errors, 133 → 14 of class 3 "
                   "wrong, at +3.5 |")
    assert "- *most threes right*: **holds** (97.6%)." in text
    assert ("- no 3 in the transfer set: the shift best on the test set would have been +2.00 (124 test errors); "
            "the paper's shift, +3.5, gives 135 test errors.") in text


# --------------------------------------------------------------------------- deviations, pages, --check
def test_deviations_table_is_the_profiles():
    try:
        from minikd.profiles import deviations_markdown
    except ImportError:
        from minikd.experiments.profiles import deviations_markdown
    assert R.render_block("deviations-table", [], ROOT, "x:1") == deviations_markdown()
    with pytest.raises(R.RenderError, match="takes no file"):
        R.render_block("deviations-table", ["a.json"], ROOT, "x:1")


def page_root(tmp_path, body):
    reproduce_file(tmp_path / "docs/results/r.json", {0: (80, [(0, 150, 100, 10, 60)])})
    (tmp_path / "docs").mkdir(exist_ok=True)
    page = tmp_path / "docs" / "page.md"
    page.write_text(body)
    (tmp_path / "README.md").write_text("# nothing rendered here\n")
    return page


def script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


BLOCK = "intro\n\n<!-- render: reproduce-table docs/results/r.json -->\n{}\n<!-- render: end -->\n\nafter\n"


def test_check_names_a_stale_page_and_rendering_fixes_it(tmp_path):
    page = page_root(tmp_path, BLOCK.format("| an old, typed table |"))
    got = script("--root", tmp_path, "--check")
    assert got.returncode == 1 and "docs/page.md differs from its rendering" in got.stdout
    assert "an old, typed table" in page.read_text()                     # --check rewrites nothing
    assert script("--root", tmp_path).returncode == 0
    text = page.read_text()
    assert text.startswith("intro\n\n<!-- render: reproduce-table docs/results/r.json -->\n| model |")
    assert text.endswith("</sub>\n<!-- render: end -->\n\nafter\n")
    got = script("--root", tmp_path, "--check")
    assert got.returncode == 0, got.stdout + got.stderr
    assert script("--root", tmp_path).returncode == 0 and page.read_text() == text      # rendering is stable


def test_the_rendering_follows_the_registry(tmp_path):
    page = page_root(tmp_path, BLOCK.format(""))
    assert script("--root", tmp_path).returncode == 0
    reproduce_file(tmp_path / "docs/results/r.json", {0: (81, [(0, 150, 100, 10, 60)])})   # the file changed
    got = script("--root", tmp_path, "--check")
    assert got.returncode == 1 and "docs/page.md" in got.stdout
    assert "| 80 |" in page.read_text()


@pytest.mark.parametrize("marker,message", [
    ("<!-- render: no-such-table docs/results/r.json -->", "docs/page.md:3: unknown renderer 'no-such-table'"),
    ("<!-- render: reproduce-table docs/results/missing.json -->",
     "docs/page.md:3: reproduce-table: no such file docs/results/missing.json"),
    ("<!-- render: bound-activity -->", "docs/page.md:3: bound-activity takes exactly one file"),
])
def test_a_marker_naming_nothing_is_an_error(tmp_path, marker, message):
    page_root(tmp_path, f"intro\n\n{marker}\n<!-- render: end -->\n")
    got = script("--root", tmp_path, "--check")
    assert got.returncode == 2 and message in got.stderr, got.stderr


def test_a_block_without_its_end_is_an_error(tmp_path):
    page_root(tmp_path, "intro\n\n<!-- render: reproduce-table docs/results/r.json -->\ntext\n")
    got = script("--root", tmp_path, "--check")
    assert got.returncode == 2 and "docs/page.md:3: no `<!-- render: end -->`" in got.stderr


def test_a_marker_in_a_code_block_is_an_example(tmp_path):
    body = ("intro\n\n```\n<!-- render: reproduce-table docs/results/missing.json -->\n<!-- render: end -->\n```\n\n"
            + BLOCK.format(""))
    page = page_root(tmp_path, body)
    assert script("--root", tmp_path).returncode == 0
    text = page.read_text()
    assert text.startswith(body[:body.index("intro\n\n<!-- render: reproduce")])   # the example is untouched
    assert text.count("| model |") == 1


def test_the_repository_pages_equal_their_rendering():
    got = script("--check")
    assert got.returncode == 0, got.stdout + got.stderr
