"""The temperature sweep: grid plumbing, the statistics behind the verdicts,
the Dask runner (a failed cell loses nothing else), and the script on a 2x2
grid through a real LocalCluster, rerun to show finished cells are skipped."""
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import minikd
from minikd.data import load_dataset
from minikd.experiments.stats import seed_noise, tukey_hsd
from minikd.experiments.sweep import (Cell, DaskMissing, check_high_width_claim, check_low_width_claim, parse_list,
                                      start_client, summarize_cells)

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
SCRIPT = ROOT / "scripts" / "temperature_sweep.py"


# --------------------------------------------------------------------------- plumbing
def test_parse_list_and_cell_keys():
    assert parse_list("1,2.5, 20", float, "--temperatures") == [1.0, 2.5, 20.0]
    with pytest.raises(ValueError, match="--widths"):
        parse_list("30,abc", int, "--widths")
    with pytest.raises(ValueError, match="repeats"):
        parse_list("2,2", float, "--temperatures")
    assert Cell(2.5, 30, 1).key == "T2.5_w30_s1" and Cell(20.0, 300, 0).key == "T20_w300_s0"


def fake_results(means, seeds=3, sd=2.0, n_test=10000, seed=0):
    """{key: result} with errors = mean + noise of s.d. ``sd`` for every (width, T) in ``means``."""
    rng = np.random.default_rng(seed)
    cells, results = [], {}
    for (w, t), m in means.items():
        for s in range(seeds):
            cell = Cell(t, w, s)
            cells.append(cell)
            results[cell.key] = {"seed": s, "test_errors": int(round(m + rng.normal(0, sd))), "n_test": n_test}
    return cells, results


def test_summary_rows():
    cells, results = fake_results({(30, 2.0): 100, (30, 20.0): 120}, seeds=2, sd=0.0)
    rows = summarize_cells(results, cells)
    assert [(r["width"], r["temperature"], r["errors"], r["mean"], r["std"]) for r in rows] == [
        (30, 2.0, [100, 100], 100.0, 0.0), (30, 20.0, [120, 120], 120.0, 0.0)]
    del results[cells[0].key]
    assert summarize_cells(results, cells)[0]["n_seeds"] == 1


def test_noise_is_measured_from_seeds_or_flagged_as_a_guess():
    sigma, df, basis = seed_noise([{"errors": [10, 12, 14]}, {"errors": [20, 22]}])
    assert df == 3 and abs(sigma - np.sqrt((8 + 2) / 3)) < 1e-12 and basis.startswith("measured")
    sigma, df, basis = seed_noise([{"errors": [100]}, {"errors": [144]}])
    assert abs(sigma - np.sqrt(122)) < 1e-12 and "guessed" in basis and "--seeds" in basis
    assert tukey_hsd(2, 1e4, 1.0, 1) == pytest.approx(2.77, abs=0.01)   # 1.96 * sqrt(2)


WIDE_FLAT = {(300, t): 110 for t in (8.0, 12.0, 20.0, 30.0)} | {(300, 1.0): 160, (300, 3.0): 125}
NARROW_BAND = {(30, 1.0): 260, (30, 2.0): 230, (30, 3.0): 200, (30, 4.0): 205, (30, 8.0): 240, (30, 20.0): 250}


def test_claims_hold_on_data_built_to_satisfy_them():
    cells, results = fake_results(WIDE_FLAT | NARROW_BAND, seeds=3, sd=2.0)
    rows = summarize_cells(results, cells)
    [high] = check_high_width_claim(rows)
    [low] = check_low_width_claim(rows)
    assert high["verdict"].startswith("holds") and high["width"] == 300
    assert low["verdict"].startswith("holds (clearly") and low["best"]["inside"] in (3.0, 4.0)


def test_claims_fail_on_data_built_to_refute_them():
    wide = WIDE_FLAT | {(300, 30.0): 160}                     # T=30 far worse
    narrow = NARROW_BAND | {(30, 20.0): 150}                  # a high T wins
    cells, results = fake_results(wide | narrow, seeds=3, sd=2.0)
    rows = summarize_cells(results, cells)
    assert check_high_width_claim(rows)[0]["verdict"].startswith("does not hold")
    assert check_low_width_claim(rows)[0]["verdict"].startswith("does not hold (clearly")


def test_small_differences_with_large_noise_are_called_inconclusive():
    narrow = NARROW_BAND | {(30, 20.0): 198}                  # 2 errors better, s.d. 15
    cells, results = fake_results(narrow, seeds=2, sd=15.0, seed=3)
    verdict = check_low_width_claim(summarize_cells(results, cells))[0]["verdict"]
    assert "within seed noise" in verdict or "inconclusive" in verdict


def test_claims_not_tested_without_the_cells_they_need():
    cells, results = fake_results({(30, 2.0): 1, (30, 20.0): 2}, seeds=1)
    rows = summarize_cells(results, cells)
    assert check_high_width_claim(rows)[0]["verdict"] == "not tested"
    assert check_low_width_claim(rows)[0]["verdict"] == "not tested"


# --------------------------------------------------------------------------- dask runner
def flaky(factor, cell):
    if cell.width == 13:
        raise RuntimeError(f"cell {cell.key} broke")
    return {"value": factor * cell.width}


def test_a_failed_cell_is_reported_and_the_others_finish():
    pytest.importorskip("distributed")
    from minikd.experiments.sweep import run_grid
    client, cluster = start_client(n_workers=1, processes=False)
    try:
        cells = [Cell(1.0, w, 0) for w in (1, 13, 3)]
        got, failed = {}, {}
        n_done, n_failed = run_grid(client, flaky, cells, 10, on_result=lambda c, r: got.update({c.width: r}),
                                    on_error=lambda c, e: failed.update({c.width: str(e)}))
    finally:
        client.close()
        cluster.close()
    assert (n_done, n_failed) == (2, 1)
    assert got == {1: {"value": 10}, 3: {"value": 30}}
    assert "T1_w13_s0 broke" in failed[13]


def test_missing_dask_gets_one_clear_sentence(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(DaskMissing, match=r'pip install "dask\[distributed\]"'):
        start_client()
    monkeypatch.setitem(sys.modules, "distributed", None)
    spec = importlib.util.spec_from_file_location("temperature_sweep", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exc:
        script.main(["--dataset", "digits", "--out", "unused"])
    assert exc.value.code == 1
    assert "dask[distributed]" in capsys.readouterr().err


# --------------------------------------------------------------------------- the script
# Long enough for the teacher and every cell to learn: the health check stops a stage that
# ends at chance (a 64-wide teacher of 3 epochs, or 3-epoch cells, do on digits).
COMMON = ["--dataset", "digits", "--backend", "numpy", "--teacher-width", "200", "--teacher-epochs", "60", "--lr", "1",
          "--temperatures", "2,20", "--widths", "30,40"]
SMALL = COMMON + ["--epochs", "60", "--seeds", "1"]


def run_script(*args, check=True):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_sweep_2x2_on_a_local_cluster_then_rerun_skips_finished_cells(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "sweep"
    first = run_script(*SMALL, "--workers", "1", "--out", str(out))
    assert "0 already done" in first.stdout and "4 to run" in first.stdout
    assert "LocalCluster, processes: 1 worker(s)" in first.stdout
    assert len(re.findall(r"^\[\d/4\] T=", first.stdout, flags=re.M)) == 4   # one line per cell
    cells = sorted((out / "cells").glob("*.json"))
    assert [c.name for c in cells] == ["T20_w30_s0.json", "T20_w40_s0.json", "T2_w30_s0.json", "T2_w40_s0.json"]
    stamps = {c.name: c.stat().st_mtime_ns for c in cells}
    res = json.loads((out / "results.json").read_text())
    assert len(res["cells"]) == 4 and res["failures"] == {} and len(res["summary"]) == 4
    assert {c["worker"] for c in res["cells"]} and all(c["sizes"][1] in (30, 40) for c in res["cells"])
    csv_lines = (out / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("width,temperature,n_seeds,mean_errors") and len(csv_lines) == 5
    assert (out / "sweep.png").stat().st_size > 10_000
    assert "claim:" in first.stdout and "NOT TESTED" in first.stdout
    # Every cell names its teacher by the full SHA-256 (64 hex digits) of the float32 logits it
    # learned from, the teacher's on every training image -- the same name reproduce.py gives.
    with threadpool_limits(limits=1, user_api="blas"):   # as the script ran (ENV): float32 sums follow the threads
        logits = minikd.load(out / "teacher.npz").logits(load_dataset("digits").x_train)
    named = {json.loads(c.read_text())["settings"]["teacher_soft_targets"] for c in cells}
    assert named == {hashlib.sha256(np.ascontiguousarray(logits, dtype=np.float32).tobytes()).hexdigest()}

    # Rerun: every cell is on disk, nothing is trained, no cluster is started.
    again = run_script(*SMALL, "--out", str(out))
    assert "4 already done" in again.stdout and "0 to run" in again.stdout
    assert "running on" not in again.stdout
    assert {c.name: c.stat().st_mtime_ns for c in sorted((out / "cells").glob("*.json"))} == stamps
    assert json.loads((out / "results.json").read_text())["summary"] == res["summary"]

    # A bigger grid runs only its new cells -- here on an existing scheduler (--scheduler).
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster, Client(cluster):
        more = run_script(*COMMON, "--epochs", "60", "--seeds", "2", "--scheduler", cluster.scheduler_address,
                          "--out", str(out))
    assert "4 already done" in more.stdout and "4 to run" in more.stdout
    assert f"running on {cluster.scheduler_address}" in more.stdout
    assert len(list((out / "cells").glob("*.json"))) == 8
    assert {c.name: c.stat().st_mtime_ns for c in sorted((out / "cells").glob("*_s0.json"))} == stamps

    # Cells from other settings are never mixed in: the run stops and says why.
    bad = run_script(*COMMON, "--epochs", "61", "--seeds", "1", "--out", str(out), check=False)
    assert bad.returncode == 1 and "epochs=60" in bad.stderr and "epochs=61" in bad.stderr
    assert "another --out" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- the section-3 budget
def test_the_section3_budget_is_counted_in_steps():
    """24,000 steps of 100 rows: 40 epochs of MNIST's 60,000 images, 1,600 of the 1,437 digits (15
    steps each), never fewer than 40 epochs."""
    from minikd.experiments.section3 import SECTION3_STEPS, section3_epochs
    assert SECTION3_STEPS == 24000
    assert section3_epochs(60000) == 40 and section3_epochs(1437) == 1600
    assert section3_epochs(10 ** 7) == 40
    for n in (1437, 60000, 6000):
        steps_per_epoch = -(-n // 100)
        assert abs(section3_epochs(n) * steps_per_epoch - 24000) <= steps_per_epoch or section3_epochs(n) == 40


@pytest.mark.parametrize("n_train, shape, epochs, warmup", [(60000, (28, 28), 40, 7), (1437, (8, 8), 1600, 280)])
def test_the_section3_distilled_config_squeezes_schedule_and_warm_up_alike(n_train, shape, epochs, warmup):
    """Under quick, the distilled student's schedules and its warm-up are laid over the budget in the
    same proportion on any data: the warm-up is 7/40 of the run, eps falls by 0.998^3000 over it,
    and the momentum ramp takes its first sixth."""
    from types import SimpleNamespace

    from minikd.experiments.section3 import section3_configs
    d = shape[0] * shape[1]
    dataset = SimpleNamespace(n_features=d, n_classes=10, image_shape=shape, y_train=np.zeros(n_train, np.int32))
    _, distilled = section3_configs("quick", dataset)
    assert (distilled.epochs, distilled.lr_warmup) == (epochs, warmup)
    assert distilled.lr_warmup / distilled.epochs == pytest.approx(7 / 40, rel=0.01)
    assert distilled.lr_decay ** distilled.epochs == pytest.approx(0.998 ** 3000)
    assert distilled.momentum_ramp == pytest.approx(epochs / 6)
    assert distilled.grad_bound == 1.0
    _, given = section3_configs("quick", dataset, epochs=80)          # --epochs: the profile's warm-up
    assert (given.epochs, given.lr_warmup) == (80, 7) and given.lr_decay ** 80 == pytest.approx(0.998 ** 3000)
    _, paper = section3_configs("paper", dataset)
    assert (paper.epochs, paper.lr_warmup, paper.lr_decay) == (3000, 7, 0.998)
