"""The docs' links to code point at the lines they name (docs/update_links.py, one
SPEC per doc: distillation.md and backprop.md; run it after moving the linked code)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("update_links", ROOT / "docs" / "update_links.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_code_link_of_the_docs_is_current(capsys):
    mod = load()
    assert mod.main(["--check"]) == 0, capsys.readouterr().out
    names = {doc.name: len(mod.LINK.findall(doc.read_text())) for doc in mod.DOCS}
    assert names["distillation.md"] >= 15 and names["backprop.md"] >= 15, names


def test_every_key_of_a_spec_is_used_by_its_doc():
    """A key nobody links is a span nobody checks: SPEC and doc drift apart."""
    mod = load()
    for doc, spec in mod.DOCS.items():
        used = {m[2] for m in mod.LINK.findall(doc.read_text())}
        assert set(spec) == used, (doc.name, set(spec) ^ used)


@pytest.mark.parametrize("doc_name,key", [("distillation.md", "soft_grad"), ("backprop.md", "dense_dw")])
def test_a_moved_span_is_reported_and_fixed(tmp_path, capsys, doc_name, key):
    mod = load()
    docs = {}
    for doc, spec in mod.DOCS.items():
        copy = tmp_path / doc.name
        copy.write_text(doc.read_text())
        docs[copy] = spec
    doc = tmp_path / doc_name
    text = doc.read_text()
    line = mod.target(key, docs[doc])
    assert line in text
    doc.write_text(text.replace(line, line.replace("#L", "#L1", 1)))
    assert mod.main(["--check"], docs=docs) == 1
    out = capsys.readouterr().out
    assert key in out and doc_name in out
    assert mod.main([], docs=docs) == 0 and doc.read_text() == text


def test_a_line_link_without_a_key_is_an_error(tmp_path, capsys):
    mod = load()
    doc = tmp_path / "backprop.md"
    doc.write_text((ROOT / "docs" / "backprop.md").read_text()
                   + "\nsee [here](../minikd/engine/layers.py#L66).\n")
    assert mod.main(["--check"], docs={doc: mod.BACKPROP}) == 1
    assert "without a key" in capsys.readouterr().out
