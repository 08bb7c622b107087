"""The harness's shape (issue 25): no module over 400 lines, and one place that turns a
checkpoint file back into a network."""
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "minikd"
MAX_LINES = 400


def sources():
    return {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_is_over_400_lines():
    long = {name: text.count("\n") for name, text in sources().items() if text.count("\n") > MAX_LINES}
    assert not long, f"split these modules (one idea per file): {long}"


def test_one_checkpoint_loader():
    """A checkpoint's parameters reach a network in checkpoints.py only (load_model, and load_into for a
    resumed trainer); every command and minikd.load go through it."""
    reads = re.compile(r"\bcheckpoint_params\(|\bread_checkpoint\(")
    readers = {name for name, text in sources().items() if reads.search(text)}
    assert readers <= {"checkpoints.py", "experiments/stage.py"}, readers
