"""docs/distillation.md's links to code point at the lines they name
(docs/update_links.py; run it after moving the linked code)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("update_links", ROOT / "docs" / "update_links.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_code_link_of_the_tutorial_is_current(capsys):
    mod = load()
    assert mod.main(["--check"]) == 0, capsys.readouterr().out
    assert len(mod.LINK.findall(mod.DOC.read_text())) >= 15


def test_a_moved_span_is_reported(tmp_path, capsys):
    mod = load()
    doc = tmp_path / "distillation.md"
    text = mod.DOC.read_text()
    line = mod.target("soft_grad")
    doc.write_text(text.replace(line, line.replace("#L", "#L1", 1)))
    mod.DOC = doc
    assert mod.main(["--check"]) == 1
    assert "soft_grad" in capsys.readouterr().out
    assert mod.main([]) == 0 and doc.read_text() == text
