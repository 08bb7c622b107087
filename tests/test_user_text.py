"""What users read describes minikd as it is, never how it was made.

Scanned: README.md, docs/*.md (and docs/results/README.md), docs/walkthrough.ipynb's Markdown and
outputs, the --help of the minikd command and of every subcommand, and every string in minikd/'s
code (docstrings, help texts, printed messages). Not scanned: CHANGELOG.md, where the history lives.

A hit is a history phrase (HISTORY), a path outside the repository (OUTSIDE) or a word that looks
like a git commit (7 to 12 hex digits with a letter and a digit; a 64-digit SHA-256 of data is fine,
and so is the commit in a rendered provenance line, between docs/render_results.py's markers)."""
import ast
import contextlib
import importlib
import io
import json
import re
from pathlib import Path

import pytest

from minikd.cli import COMMANDS, usage

ROOT = Path(__file__).resolve().parents[1]

HISTORY = [
    r"\btoday'?s\b",                       # "today's code"
    r"\bthis round\b",                     # "this round's machine"
    r"\b(?:an |the )?earlier session\b",
    r"\bthis session\b",
    r"\bthe session that\b",
    r"\breported by an earlier\b",
    r"\bthat wrote this\b",                # "the session that wrote this path"
    r"\bissues? #?\d+",                    # "issue 24's rule"
    r"\banother machine\b",
    r"\bthe other machine\b",
    r"\bat the start of this\b",
    r"\bcode of commit\b",
    r"\bat commit\b",
    r"\bcommit `",
    r"\bbefore th(?:is|at) change\b",
    r"\bin the git history\b",
    r"\bthe earlier code\b",
    r"\ban earlier version of the code\b",
    r"\b(?:showed|quoted) before\b",
]
OUTSIDE = [r"\.\./shared\b", r"(?<![\w.])/work/", r"\bshared/data\b"]
HEX = re.compile(r"(?<![0-9A-Za-z_.])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}(?![0-9A-Za-z_]|[-+]\d)")
PATTERNS = [re.compile(p, re.I) for p in HISTORY + OUTSIDE]
RENDERED = re.compile(r"^<!-- render: (?!end\b).*?-->$.*?^<!-- render: end -->$", re.M | re.S)


def hits(text, rendered_ok=False):
    """Each offending phrase in ``text`` with its line number."""
    found = []
    plain = RENDERED.sub(lambda m: "\n" * m.group(0).count("\n"), text) if rendered_ok else text
    for n, line in enumerate(text.split("\n"), 1):
        for p in PATTERNS:
            found += [f"line {n}: {m.group(0)!r} in {line.strip()[:140]!r}" for m in p.finditer(line)]
    for n, line in enumerate(plain.split("\n"), 1):
        found += [f"line {n}: commit-like {m.group(0)!r} in {line.strip()[:140]!r}" for m in HEX.finditer(line)]
    return found


# --------------------------------------------------------------------------- the scanner itself
@pytest.mark.parametrize("text", [
    "rerun with today's code", "on this round's machine", "reported by an earlier session",
    "No GPU was available to the session that wrote this path", "by issue 24's rule", "(issue 17)",
    "the same command on another machine", "the code at the start of this round",
    "one thread, the code of commit `1408c56`", "its teacher trained at commit 1408c56",
    "export MINIKD_DATA_DIR=../shared/data/mnist", "see /work/main/runs", "(code fc117bc)",
])
def test_the_scanner_finds_history(text):
    assert hits(text), text


@pytest.mark.parametrize("text", [
    "sha256 6a9d19c9d6f7f9fdb07fee86892c95d64849ea694709c6204ff60baac6dff4c0 of the data",
    "a round number", "the session's budget is 3 epochs", "deadbeef", "1234567 images", "x1e-4",
    "commit-free prose", "see ../minikd/health.py", "#L66", "teacher 784-1200-1200-10",
    "= -6.696044e-03", "1.5e+10", "a step of 1234567e-9",
])
def test_the_scanner_leaves_plain_prose_alone(text):
    assert not hits(text), hits(text)


def test_a_commit_in_a_rendered_block_is_fine():
    block = ("<!-- render: reproduce-table docs/results/x.json -->\n| a |\n<sub>minikd 0.2.0, commit "
             "0123456789ab</sub>\n<!-- render: end -->")
    assert not hits(block, rendered_ok=True)
    assert hits(block + "\nprose naming 0123456789ab", rendered_ok=True)
    assert hits(block.replace("minikd 0.2.0", "today's code"), rendered_ok=True)   # history words never


# --------------------------------------------------------------------------- what users read
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "results" / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages(page):
    assert not hits(page.read_text(), rendered_ok=True), "\n".join(hits(page.read_text(), rendered_ok=True))


def notebook_text():
    nb = json.loads((ROOT / "docs" / "walkthrough.ipynb").read_text())
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for value in out.get("data", {}).values():
                if isinstance(value, (str, list)) and not str(value).startswith("iVBOR"):   # not a PNG
                    parts.append("".join(value))
            parts.append("\n".join(out.get("traceback", [])))
    return "\n".join(parts)


def test_notebook_markdown_and_outputs():
    found = hits(notebook_text())
    assert not found, "\n".join(found)


def help_text(module_name):
    module = importlib.import_module(module_name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_every_subcommand(name):
    text = help_text(COMMANDS[name][0])
    assert "usage:" in text
    assert not hits(text), "\n".join(hits(text))


def test_usage_of_the_minikd_command():
    assert not hits(usage())


def strings_of(path):
    """Every string literal of a module (docstrings, help, messages; f-strings' literal parts)."""
    tree = ast.parse(path.read_text(), str(path))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


MODULES = sorted((ROOT / "minikd").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_strings_of_minikd(path):
    found = [f"{path.relative_to(ROOT)}:{line}: {h}" for line, s in strings_of(path) for h in hits(s)]
    assert not found, "\n".join(found)
