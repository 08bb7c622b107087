"""The whole CuPy path, run on CPU CI: the engine and the commands on a stand-in
that has exactly CuPy's API names (tests/cupy_standin.py). Nothing here skips.

What would break on a GPU breaks here: a NumPy-only call (``rng.permutation``,
``rng.choice``: CuPy's Generator has neither), a host array mixed into a device
operation, a NumPy branch taken on CuPy, and a device-to-host read per step
(the read count per epoch must not grow with the number of steps).
"""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy
import pytest

import cupy_standin
from minikd.engine.backend import backend_name, get_backend, get_xp, is_cupy, make_rng, to_host
from minikd.engine.layers import Dense, Dropout, bernoulli_mask
from minikd.profiles import profile_configs
from minikd.experiments.stage import prepare_arrays, run_stage
from minikd.train import Trainer, build_model, teacher_logits

ROOT = Path(__file__).resolve().parents[1]
STANDIN = Path(cupy_standin.__file__)
ENV = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def small_configs(digits, epochs=2, batch_size=None, **kw):
    cfgs = profile_configs("quick", n_features=digits.n_features, n_classes=digits.n_classes,
                           image_shape=digits.image_shape, epochs=epochs, jitter=1, **kw)
    narrow = {"teacher": 64, "student": 32, "distilled": 32}
    out = {}
    for k, c in cfgs.items():
        c = replace(c, sizes=(c.sizes[0], narrow[k], narrow[k], c.sizes[-1]))
        out[k] = replace(c, batch_size=batch_size) if batch_size else c
    return out


# --------------------------------------------------------------------------- the stand-in itself
def test_the_standin_has_only_cupys_names():
    assert cupy_standin.check_names() == {}
    gen = cupy_standin.module.random.default_rng(0)
    for missing in ("permutation", "choice", "shuffle", "bytes"):
        assert not hasattr(gen, missing)
    assert type(gen).__module__ == "cupy.random._generator_api"
    assert cupy_standin.module.ndarray.__module__ == "cupy" and cupy_standin.module.__name__ == "cupy"


def test_check_names_catches_a_name_cupy_lacks(monkeypatch):
    """The guard itself: a planted ``permutation`` on the Generator is reported."""
    monkeypatch.setattr(cupy_standin.Generator, "permutation", lambda self, n: None, raising=False)
    assert cupy_standin.check_names() == {"cupy.random.Generator": ["permutation"],
                                          "a cupy.random.Generator instance": ["permutation"]}


def test_host_arrays_are_refused_and_reads_are_counted(cp):
    x = cp.asarray(numpy.arange(6.0).reshape(2, 3))
    for mistake in (lambda: x + numpy.ones(3), lambda: numpy.ones(3) * x, lambda: numpy.asarray(x),
                    lambda: x[numpy.array([0, 1])], lambda: cp.exp(numpy.ones(2)),
                    lambda: cp.maximum(x, numpy.ones(3))):
        with pytest.raises(TypeError):
            mistake()
    before = cupy_standin.READS.copy()
    x.get(), float(x[0, 1]), int(x[1, 2]), bool(x[0, 0]), x[1, 1].item(), x.tolist(), f"{x[0, 0]:.1f}"
    assert cupy_standin.READS - before == {k: 1 for k in ("get", "float", "int", "bool", "item", "tolist",
                                                            "format")}
    before = cupy_standin.reads()
    y = (x * 2 + 1).sum(axis=0) / 3                     # device work alone reads nothing
    x[0, 1] = x[1, 1]                                   # a 0-d device value stays on the device
    assert cupy_standin.reads() == before
    numpy.testing.assert_array_equal(y.get(), [(1 + 7) / 3, (3 + 9) / 3, (5 + 11) / 3])
    assert x[0].shape == (3,) and type(x[0, 0]) is cp.ndarray  # 0-d results are arrays, as in CuPy


def test_the_launch_counter_follows_the_rule_on_a_fixed_snippet(cp):
    """Issue 24's rule: one count per call that launches a kernel; views and reads count nothing."""
    rng = cp.random.default_rng(0)
    launches, kinds, views, reads = (cupy_standin.launches(), cupy_standin.LAUNCHES.copy(),
                                     cupy_standin.VIEWS.total(), cupy_standin.reads())
    x = cp.ones((4, 3), dtype=cp.float32)              # 1 alloc
    w = rng.standard_normal((3, 2), dtype=cp.float32)  # 1 random
    y = x @ w                                          # 1 matmul
    y += 1.0                                           # 1 elementwise, in place
    y = cp.maximum(y, 0.0)                             # 1 elementwise
    b = y.sum(axis=0)                                  # 1 reduction
    rows = cp.arange(2)                                # 1 alloc
    g = y[rows]                                        # 1 gather
    y[rows, 0] = 0.0                                   # 1 scatter
    y[0] = b                                           # 1 copy into a slice
    d = y.astype(cp.float64)                           # 1 copy
    t = y.T.reshape(-1)                                # 1 copy: a transposed array cannot be flattened in place
    both = cp.concatenate([b, b])                      # 1 concatenate
    assert cupy_standin.launches() - launches == 13
    assert cupy_standin.LAUNCHES - kinds == {"alloc": 2, "random": 1, "matmul": 1, "elementwise": 2,
                                             "reduction": 1, "gather": 1, "scatter": 1, "copy": 3,
                                             "concatenate": 1}
    # views cost nothing: .T, basic slices and integers, reshape, as_strided, astype(copy=False)
    launches = cupy_standin.launches()
    free = (y.T, y[1:3], y[0, 1], y.reshape(-1), y.astype(cp.float32, copy=False),
            cp.lib.stride_tricks.as_strided(y, shape=(2, 2), strides=y.strides), cp.asarray(y))
    assert cupy_standin.launches() == launches and cupy_standin.VIEWS.total() - views >= 6
    assert cupy_standin.reads() == reads                # and nothing above read the device
    assert free[4] is y and g.shape == (2, 2) and d.dtype == cp.float64 and t.shape == (8,) and both.shape == (4,)


@pytest.mark.parametrize("method", ["sum", "mean", "max", "min"])
def test_reductions_honour_out(cp, method):
    """``out=`` receives the result and is returned, as in CuPy (it used to be dropped silently)."""
    host = numpy.arange(12.0).reshape(3, 4)
    x = cp.asarray(host)
    out = cp.zeros(4)
    assert getattr(x, method)(axis=0, out=out) is out
    numpy.testing.assert_array_equal(out.get(), getattr(host, method)(axis=0))
    if method in ("sum", "mean"):
        out = cp.zeros(3)
        assert getattr(cp, method)(x, axis=1, out=out) is out
        numpy.testing.assert_array_equal(out.get(), getattr(host, method)(axis=1))
    with pytest.raises(ValueError):
        getattr(x, method)(axis=0, out=cp.zeros(3))     # the wrong shape is refused, not ignored
    with pytest.raises(TypeError):
        getattr(x, method)(axis=0, out=numpy.zeros(4))  # so is a host array


# --------------------------------------------------------------------------- dispatch
def test_the_engine_dispatches_to_it_as_to_cupy(cp, digits):
    assert get_backend("cupy") is cp and get_backend("auto") is cp
    assert is_cupy(cp) and backend_name(cp) == "cupy"
    assert get_xp(cp.zeros(2)) is cp and get_xp(numpy.zeros(2), cp.zeros(2)) is cp
    rng = make_rng(cp, 0, 1)
    assert type(rng) is cp.random.Generator                     # CuPy's RNG branch
    cfg = small_configs(digits)["teacher"]
    model = build_model(cfg, cp)
    drops = [layer for layer in model.layers if isinstance(layer, Dropout)]
    assert drops and all(d.sampler is bernoulli_mask for d in drops)  # not the raw-bit NumPy sampler
    for dense in model.dense_layers():
        assert type(dense.params["W"]) is cp.ndarray and type(dense.params["b"]) is cp.ndarray
    bias = Dense(3, 2, rng=make_rng(cp, 0)).params["b"]          # xp=None: the bias follows the weights
    assert type(bias) is cp.ndarray
    arrays = prepare_arrays(digits, cp, train_size=100)
    trainer = Trainer(cfg, cp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      fast=True)
    assert trainer.step_impl is None and trainer.backend == "cupy"  # no fused CPU step on CuPy


# --------------------------------------------------------------------------- host reads per epoch
class Enough(Exception):
    pass


def reads_per_epoch(cp, cfg, arrays, n_rows, soft=None, epochs=2):
    """Host reads in each of the first ``epochs`` epochs. The stage has one epoch more, which is
    never run: a few steps learn nothing, and the health check refuses that at a stage's last epoch."""
    x, y = arrays["x_train"][:n_rows], arrays["y_train"][:n_rows]
    trainer = Trainer(replace(cfg, epochs=epochs + 1), cp, x, y, arrays["x_test"], arrays["y_test"],
                      soft_logits=None if soft is None else soft[:n_rows], fast=True)
    counts = []

    def on_epoch(log):
        counts.append(cupy_standin.reads())
        if len(counts) == epochs:
            raise Enough

    start = cupy_standin.reads()
    with pytest.raises(Enough):
        trainer.fit(on_epoch=on_epoch)
    per_epoch = [b - a for a, b in zip([start] + counts[:-1], counts, strict=True)]
    assert all(numpy.isfinite(h.loss) for h in trainer.history)
    return per_epoch


@pytest.mark.parametrize("stage", ["teacher", "distilled"])
def test_host_reads_per_epoch_do_not_grow_with_the_steps(cp, digits, stage):
    """5 and 50 steps per epoch read the device equally often: nothing is read per step."""
    cfg = small_configs(digits, batch_size=10)[stage]
    arrays = prepare_arrays(digits, cp)
    soft = None
    if stage == "distilled":
        teacher = build_model(small_configs(digits)["teacher"], cp)
        soft = teacher_logits(teacher, arrays["x_train"])
    few = reads_per_epoch(cp, cfg, arrays, 5 * cfg.batch_size, soft)
    many = reads_per_epoch(cp, cfg, arrays, 50 * cfg.batch_size, soft)
    assert few == many, f"device reads per epoch: {few} at 5 steps, {many} at 50 steps"
    assert 1 <= few[0] <= 10


# --------------------------------------------------------------------------- the pipeline
def learning_configs(digits, epochs=6):
    """Narrow nets and a schedule that learn digits in a few epochs (the profiles need more)."""
    return {k: replace(c, init_std=0.1, batch_size=50, lr=0.3, lr_decay=1.0, lr_warmup=0, momentum_end=0.9,
                       momentum_ramp=5)
            for k, c in small_configs(digits, epochs=epochs).items()}


def train_three_stages(xp, digits):
    """Teacher (dropout, jitter, max-norm), student, distilled student from cached soft targets."""
    cfgs = learning_configs(digits)
    arrays = prepare_arrays(digits, xp)
    common = (xp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    teacher = Trainer(cfgs["teacher"], *common, fast=True)
    teacher.fit()
    student = Trainer(cfgs["student"], *common, fast=True)
    student.fit()
    soft = teacher_logits(teacher.model, arrays["x_train"])
    distilled = Trainer(cfgs["distilled"], *common, soft_logits=soft, fast=True)
    distilled.fit()
    return {"teacher": teacher, "student": student, "distilled": distilled}, soft


def test_three_stages_learn_on_the_standin_as_on_numpy(cp, digits):
    ref, _ = train_three_stages(numpy, digits)
    got, soft = train_three_stages(cp, digits)
    assert type(soft) is cp.ndarray
    cfg = got["teacher"].cfg
    assert cfg.input_dropout > 0 and cfg.hidden_dropout > 0 and cfg.jitter == 1 and cfg.max_norm is not None
    for key in ("teacher", "student", "distilled"):
        assert got[key].step_impl is None and ref[key].step_impl is not None  # CuPy: the plain step
        mine, theirs = got[key].history[-1].test_errors, ref[key].history[-1].test_errors
        first = got[key].history[0].test_errors
        # of 360 test digits (chance: ~324); the two backends' random streams differ
        assert mine < first and mine <= max(1.5 * theirs, theirs + 30), (key, mine, theirs)
        for dense in got[key].model.dense_layers():
            norms = numpy.sqrt((to_host(dense.params["W"]) ** 2).sum(axis=0))
            if dense.max_norm is not None:
                assert norms.max() <= dense.max_norm * (1 + 1e-5)


def test_resume_equals_uninterrupted_on_the_standin(cp, digits, tmp_path, monkeypatch):
    cfg = learning_configs(digits, epochs=4)["teacher"]
    arrays = prepare_arrays(digits, cp, train_size=300)
    full, _ = run_stage(cfg, arrays, cp, out=tmp_path / "full", progress=False)

    from minikd import checkpoints

    class Stop(Exception):
        pass

    part = Trainer(cfg, cp, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], fast=True)

    def stop_after_two(log):
        if log.epoch == 1:
            (tmp_path / "cut").mkdir(exist_ok=True)
            checkpoints.save_checkpoint(tmp_path / "cut" / "teacher.npz", part, {})
            raise Stop

    with pytest.raises(Stop):
        part.fit(on_epoch=stop_after_two)
    trained = []
    real_epoch = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, e: trained.append(e) or real_epoch(self, e))
    resumed, entry = run_stage(cfg, arrays, cp, out=tmp_path / "cut", resume=True, progress=False)
    assert trained == [2, 3] and entry["epochs"] == 4       # it went on from the checkpoint
    for key, w in full.model.state_dict().items():
        numpy.testing.assert_array_equal(to_host(w), to_host(resumed.model.state_dict()[key]))
    assert entry["test_errors"] == full.history[-1].test_errors


def test_mythical_digit_bias_shift_on_the_standin(cp, digits, tmp_path):
    """The omit experiment (students distilled without any 3, then a bias shift chosen on
    validation), from a teacher trained here on the stand-in."""
    from minikd import checkpoints
    from minikd.experiments import mythical_digit
    teacher = Trainer(learning_configs(digits)["teacher"], cp, *(lambda a: (a["x_train"], a["y_train"],
                      a["x_test"], a["y_test"]))(prepare_arrays(digits, cp)), fast=True)
    teacher.fit()
    checkpoints.save_checkpoint(tmp_path / "teacher.npz", teacher, {"dataset": "digits", "data": digits.fingerprint()})
    out = tmp_path / "myth"
    assert mythical_digit.main(["--dataset", "digits", "--backend", "cupy", "--teacher", str(tmp_path / "teacher.npz"),
                                "--width", "32", "--epochs", "80", "--seeds", "1", "--experiments", "omit",
                                "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["environment"]["backend"] == "cupy"
    omit = res["experiments"]["omit"]
    assert omit["transfer_class_counts"][3] == 0
    run = omit["runs"][0]
    t = run["test"]
    assert t["validation"]["shift"] == run["shift_validation"]
    assert t["test_optimal"]["errors"] <= min(t["none"]["errors"], t["validation"]["errors"])


def test_one_temperature_sweep_cell_on_the_standin(cp, digits):
    from minikd.experiments.sweep import Cell, run_cell
    cfg = learning_configs(digits, epochs=2)["distilled"]   # one that learns in 2 epochs: the health check
    n = 200
    teacher = build_model(small_configs(digits)["teacher"], numpy)
    x = digits.x_train[:n]
    payload = {"x_train": x, "y_train": digits.y_train[:n], "x_test": digits.x_test, "y_test": digits.y_test,
               "soft_logits": teacher_logits(teacher, (x.reshape(n, -1) / 255).astype("float32"))}
    res = run_cell(payload, {"backend": "cupy", "config": cfg.to_dict()}, Cell(2.0, 16, 0))
    assert res["backend"] == "cupy" and res["sizes"] == [64, 16, 16, 10] and res["epochs"] == 2
    assert 0 <= res["test_errors"] <= 360 and numpy.isfinite(res["final_loss"])


# --------------------------------------------------------------------------- the command line
def run_with_standin(*args, timeout=240):
    return subprocess.run([sys.executable, str(STANDIN), *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


def standin_reads(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("CUPY_STANDIN_READS ")]
    assert lines, stderr[-2000:]
    return json.loads(lines[-1].split(" ", 1)[1])


def test_reproduce_cli_reaches_the_standin(tmp_path):
    """reproduce.py's three stages on digits (teacher with dropout, jitter and max-norm; student;
    distilled from cached soft targets) through the real command line, in a child process
    with the stand-in installed as ``cupy``."""
    out = tmp_path / "cli"
    proc = run_with_standin("scripts/reproduce.py", "--backend", "cupy", "--dataset", "digits",
                            "--profile", "paper", "--epochs", "10", "--out", str(out))   # 10 epochs: they learn
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["environment"]["backend"] == "cupy" and res["environment"]["cupy"].endswith("+standin")
    assert res["environment"]["gpu"] == "NumPy stand-in for CuPy (CPU)"
    teacher = res["config"]["stages"]["teacher"]
    assert teacher["input_dropout"] > 0 and teacher["jitter"] == 1 and teacher["max_norm"] is not None
    for key in ("teacher", "student", "distilled"):
        m = res["models"][key]
        assert m["backend"] == "cupy" and m["fast_step"] is False and m["epochs"] == 10
        assert 0 <= m["test_errors"] <= 360 and all(numpy.isfinite(h["loss"]) for h in m["history"])
        assert (out / Path(m["checkpoint"]).name).exists()
    reads = standin_reads(proc.stderr)
    assert reads["total"] > 0


def test_gpu_check_script_runs_on_the_standin(tmp_path):
    """scripts/gpu_check.sh end to end, every part through the stand-in, tiny sizes."""
    out = tmp_path / "check"
    env = {k: v for k, v in ENV.items() if k != "MINIKD_DATA_DIR"}   # digits: offline and quick
    env["PYTHON"] = sys.executable   # this interpreter, not whichever `python` PATH finds first
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--standin"],
                          capture_output=True, text=True, env=env, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert (out / "gpu_check.log").stat().st_size > 0
    assert summary["mode"] == "standin" and summary["all_ok"]
    assert summary["environment"]["backend"] == "cupy" and summary["environment"]["cupy"].endswith("+standin")
    for part in ("tests", "bench_teacher", "bench_student", "bench_distilled",
                 "paper_teacher", "paper_student", "paper_distilled"):
        assert summary["parts"][part]["ok"], (part, summary["parts"][part])
    assert summary["parts"]["tests"]["passed"] > 0 and summary["parts"]["tests"]["failed"] == 0
    bench = summary["parts"]["bench_teacher"]
    assert bench["sec_per_epoch"] > 0 and bench["floor_sec"] > 0 and bench["ratio_to_floor"] > 0
    paper = summary["parts"]["paper_teacher"]
    assert paper["epochs"] == 10 and paper["extrapolated_3000_epochs_hours"] > 0
    assert summary["extrapolated_3000_epochs_all_models_hours"] > 0


def test_gradcheck_with_a_cupy_generator_on_the_standin(cp):
    """check_layer draws its projection and its coordinate subset from a CuPy generator
    (CuPy's has no ``choice``)."""
    from minikd.engine.gradcheck import check_layer
    from minikd.engine.layers import ReLU, Sequential
    x = cp.asarray(numpy.random.default_rng(1).standard_normal((3, 4)))
    layer = Sequential(Dense(4, 3, rng=make_rng(cp, 0), xp=cp, dtype="float64", init_std=1.0), ReLU())
    errors = check_layer(layer, x, rng=make_rng(cp, 2), max_coords=5)
    assert set(errors) == {"x", "0.W", "0.b"} and max(errors.values()) < 1e-6


BROKEN_KERNELS = """
import runpy, sys
sys.path.insert(0, "tests")
import cupy_standin
cupy_standin.install()
def arange(*args, **kwargs):   # the driver is there, NVRTC is not
    raise RuntimeError("CuPy failed to load libnvrtc.so.12: cannot open shared object file")
cupy_standin.module.arange = arange
sys.argv = ["scripts/reproduce.py", *sys.argv[1:]]
runpy.run_path("scripts/reproduce.py", run_name="__main__")
"""


def test_a_cupy_that_cannot_compile_kernels_stops_cupy_and_turns_auto_to_numpy(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-c", BROKEN_KERNELS, "--dataset", "digits", "--epochs", "1",
                               "--train-size", "100", "--stages", "student", *args], capture_output=True,
                              text=True, env=ENV, timeout=120, cwd=ROOT)
    proc = run("--backend", "cupy", "--out", str(tmp_path / "cupy"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --backend cupy: CuPy sees 1 CUDA device(s) "
                                                           "but cannot run a kernel (RuntimeError: CuPy failed")
    proc = run("--backend", "auto", "--out", str(tmp_path / "auto"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    why = [line for line in proc.stderr.splitlines() if line.startswith("--backend auto:")]
    assert len(why) == 1 and "using NumPy: CuPy sees 1 CUDA device(s)" in why[0] and "cannot run a kernel" in why[0]
    assert json.loads((tmp_path / "auto" / "results.json").read_text())["environment"]["backend"] == "numpy"
