"""docs/walkthrough.ipynb runs from top to bottom (nbclient, a real kernel) and shows what it says:
the hand-computed gradients equal the engine's, the planted mistakes fail the gradient check, the
teacher beats both students, the distilled students beat the plain ones, and it runs the reference
step with every plot labelled."""
import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def executed():
    """The notebook's printed text after executing it. One BLAS thread for its kernel: its matrices are
    small, and two threads fighting other jobs for two cores made it 4x slower (same numbers)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENBLAS_NUM_THREADS", "1")   # read by the kernel's NumPy when it starts
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "docs")}}).execute()  # raises on any error
    finally:
        mp.undo()
    return "\n".join(o.get("text", "") for c in code_cells(nb) for o in c.get("outputs", []))


def test_the_hand_computed_step_equals_the_engines(executed):
    assert "dz by hand == cross_entropy's: True" in executed
    table = re.findall(r"^(d[Wbx]\d?)\s+\(.*?\)\s+(True|False)", executed, re.M)
    assert {name for name, _ in table} == {"dW1", "db1", "dW2", "db2", "dW3", "db3", "dx"}
    assert all(ok == "True" for _, ok in table), table
    assert "[h1 > 0] == engine's True" in executed and "[h2 > 0] == engine's True" in executed
    assert executed.count("after the step == w - (1 - mu) eps dW: True") == 3
    assert "velocities by hand == MomentumSGD's: True" in executed
    assert executed.count("after the step and max-norm, by hand == MomentumSGD.step: True") == 6
    assert "soft + hard == distillation_loss's gradient: True" in executed


def test_the_gradient_check_passes_and_catches_the_planted_mistakes(executed):
    errors = [float(e) for e in re.findall(r"largest relative error (\S+)", executed)]
    assert len(errors) == 4 and max(errors) < 1e-6
    assert "missing T: relative error 0.800" in executed and "missing 1/N: relative error 0.833" in executed
    assert executed.count("check_loss raised: gradient check failed") == 2


def test_the_loss_of_an_untrained_student_is_explained(executed):
    loss = float(re.search(r"loss of the untrained student: (\S+)", executed).group(1))
    predicted = float(re.search(r"\(T\^2 \+ 1\) ln 10 = (\S+)", executed).group(1))
    assert abs(loss - predicted) < 1.0


def test_the_teacher_beats_its_students_and_distillation_helps(executed):
    teacher = int(re.search(r"teacher (\d+) \(trained on 1,437 digits\)", executed).group(1))
    runs = {name: [int(e) for e in errs.split(",")]
            for name, errs in re.findall(r"(student|distilled) \(200 digits\), seeds 0 / 1 / 2: \[(.*?)\]", executed)}
    assert set(runs) == {"student", "distilled"} and all(len(e) == 3 for e in runs.values())
    assert teacher < min(runs["student"] + runs["distilled"]), (teacher, runs)
    assert max(runs["distilled"]) < min(runs["student"]), runs
    kl = dict(re.findall(r"(student|distilled): mean KL\(q \|\| p\) at T = 20 on the test images = (\S+)", executed))
    assert float(kl["distilled"]) < float(kl["student"])


def calls(source, name):
    """Every call of ``name`` (a function or method name) in ``source``."""
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == name]


def test_the_notebook_runs_the_reference_step():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    trainers = [call for c in code_cells(nb) for call in calls(c.source, "Trainer")]
    assert len(trainers) >= 3
    for call in trainers:
        fast = [kw.value for kw in call.keywords if kw.arg == "fast"]
        assert fast and isinstance(fast[0], ast.Constant) and fast[0].value is False, ast.unparse(call)


def test_every_plot_has_axis_labels():
    """Every axes a cell draws a chart on (bar, plot, scatter; image panels excepted) gets both labels."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    drawing = [c.source for c in code_cells(nb) if calls(c.source, "subplots")]
    assert len(drawing) >= 4
    for source in drawing:
        charted = set(re.findall(r"(\w+)\.(?:bar|plot|scatter)\(", source))
        assert charted, source
        for ax in charted:
            assert f"{ax}.set_xlabel(" in source and f"{ax}.set_ylabel(" in source, (ax, source)
