"""docs/walkthrough.ipynb runs from top to bottom (nbclient, a real kernel)."""
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "docs")}}).execute()  # raises on any error
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "largest relative error" in text and "test errors per epoch" in text
    errors = [float(e) for e in re.findall(r"largest relative error (\S+)", text)]
    assert len(errors) == 3 and max(errors) < 1e-6
