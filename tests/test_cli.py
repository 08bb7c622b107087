"""The `minikd` command and `python -m minikd.gradcheck`, as a user runs them."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import minikd
from minikd import gradcheck
from minikd.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_minikd_help_lists_every_subcommand():
    proc = run(sys.executable, "-m", "minikd", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("reproduce", "deviations", "bench", "mythical-digit", "sweep", "agreement", "gradcheck"):
        assert f"  {name} " in proc.stdout
    assert set(COMMANDS) == {"reproduce", "deviations", "dark-knowledge", "bench", "mythical-digit", "sweep",
                             "agreement", "gradcheck", "stability", "make-variants", "figures"}


def test_console_script_is_installed():
    """pip install -e . puts `minikd` beside the interpreter (CI installs it so)."""
    exe = Path(sys.executable).parent / "minikd"
    if not exe.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exe} is missing: pyproject.toml's [project.scripts] did not install")
        pytest.skip("minikd is not installed as a console script in this environment")
    proc = run(str(exe), "reproduce", "--help")
    assert proc.returncode == 0 and "usage: minikd reproduce" in proc.stdout, proc.stderr


@pytest.mark.parametrize("argv", [[], ["no-such-command"]])
def test_unknown_or_missing_subcommand_exits_2(argv):
    proc = run(sys.executable, "-m", "minikd", *argv)
    assert proc.returncode == 2 and "usage: minikd COMMAND" in proc.stderr


def test_version():
    proc = run(sys.executable, "-m", "minikd", "--version")
    assert proc.returncode == 0 and proc.stdout == f"minikd {minikd.__version__}\n", proc.stderr


def ci_steps():
    """.ci/run's commands in order: continued lines joined, comments and indentation dropped."""
    text = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_compiles_then_runs_the_readme_test_command_then_the_linter_then_the_wheel():
    """.ci/run compiles every source file with syntax warnings as errors, on its own Python and each
    supported one found; then runs README's test command as written there; then ruff; then the wheel
    check on each supported Python found."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^pip install -e \"\.\[dev\]\".*$", readme, re.M).group(0)
    steps = ci_steps()
    compile_step = next(i for i, s in enumerate(steps) if "-m compileall" in s)
    for flag in ("-W error::SyntaxWarning", "-W error::DeprecationWarning", "-f minikd scripts docs tests"):
        assert flag in steps[compile_step], (flag, steps[compile_step])
    assert steps[compile_step - 1] == 'for py in python "${pythons[@]}"; do', steps[compile_step - 1]
    test_step, ruff_step = steps.index(command), steps.index("ruff check .")
    wheel_step = steps.index('bash .ci/wheel_check.sh "$py"')
    assert compile_step < test_step < ruff_step < wheel_step, steps
    assert 'for py in "${pythons[@]}"; do' in steps[ruff_step:wheel_step], steps[ruff_step:wheel_step]
    assert any(s.startswith("SUPPORTED=(3.10 3.13)") for s in steps), "the oldest and the newest supported Python"


def _interpreter_at(root, version, script):
    """An executable shell ``script`` at pyenv's place for ``version``; its path."""
    exe = root / "versions" / version / "bin" / "python3"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    return str(exe)


def _fake_python(root, version, probe_status):
    """A stand-in interpreter at pyenv's place for ``version``: it answers .ci/run's probe "are you
    Python X.Y?" with ``probe_status`` (0: yes) without running anything."""
    return _interpreter_at(root, version, f"exit {probe_status}")


def _impostor(root, version):
    """This interpreter filed at pyenv's place for another ``version``: the probe must see through it."""
    return _interpreter_at(root, version, f'exec "{sys.executable}" "$@"')


def _ci_pythons(tmp_path, root):
    """`bash .ci/run --pythons` with ``root`` as pyenv's root and no pyenv or pythonX.Y on PATH."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("ls", "sort", "dirname"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(tools), "PYENV_ROOT": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "run"), "--pythons"], capture_output=True,
                          text=True, env=env, timeout=60)
    return proc.returncode, proc.stdout.split(), proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason=".ci/run is a bash script")
def test_ci_finds_the_oldest_and_newest_python_and_says_which_is_missing(tmp_path):
    root = tmp_path / "pyenv"
    root.mkdir()
    rc, found, err = _ci_pythons(tmp_path, root)
    assert rc == 1 and "none of Python 3.10 3.13 found" in err, (rc, found, err)

    _fake_python(root, "3.10.2", 0)
    newest = _fake_python(root, "3.10.11", 0)       # 3.10.11 is newer than 3.10.2 (not by the letters)
    _fake_python(root, "3.13.0", 1)                 # answers the probe "no": not a Python 3.13
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    _impostor(root, ("3.13" if running != "3.13" else "3.10") + ".99")   # the newest of its slot, and wrong
    rc, found, err = _ci_pythons(tmp_path, root)
    assert rc == 0 and found == [newest], (rc, found, err)
    assert "no Python 3.13 on this machine" in err and "3.10" not in err, err

    newest_13 = _fake_python(root, "3.13.1", 0)
    rc, found, err = _ci_pythons(tmp_path, root)
    assert rc == 0 and found == [newest, newest_13] and err == "", (rc, found, err)


def test_citation_names_this_version_and_its_release_date():
    """CITATION.cff cites the version minikd reports, released on the date CHANGELOG.md gives it."""
    cff = (ROOT / "CITATION.cff").read_text()
    version = re.search(r'^version: "?([^"\s]+)"?\s*$', cff, re.M)
    date = re.search(r'^date-released: "?(\d{4}-\d{2}-\d{2})"?\s*$', cff, re.M)
    assert version and date, "CITATION.cff lacks version: or date-released:"
    assert version.group(1) == minikd.__version__, (version.group(1), minikd.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.search(rf"^## {re.escape(minikd.__version__)} - (\d{{4}}-\d{{2}}-\d{{2}})", changelog, re.M)
    assert released and date.group(1) == released.group(1), (date.group(1), released and released.group(1))


def test_build_outputs_are_ignored():
    """A wheel built in the tree leaves build/ (a second copy of the package), dist/ and *.egg-info."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    paths = ["build/lib/minikd/__init__.py", "dist/minikd-0.1.0-py3-none-any.whl", "minikd.egg-info/PKG-INFO"]
    proc = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", *paths], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    ignored = {line.split("\t")[-1] for line in proc.stdout.splitlines()}
    assert ignored == set(paths), f".gitignore misses {sorted(set(paths) - ignored)}"


def test_subcommand_reaches_the_experiment():
    proc = run(sys.executable, "-m", "minikd", "sweep", "--help")
    assert proc.returncode == 0 and "--temperatures" in proc.stdout


def test_gradcheck_table_passes_and_lists_every_check():
    proc = run(sys.executable, "-m", "minikd.gradcheck")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for what in ("Dense", "ReLU", "Dropout 0.5, mask frozen", "MLP", "cross-entropy",
                 "distillation T=20, soft only", "|z| ~ 1e3"):
        assert what in proc.stdout
    assert " FAIL" not in proc.stdout and "0 failed" in proc.stdout


def test_gradcheck_table_fails_on_a_wrong_gradient(monkeypatch, capsys):
    """A planted mistake in a backward pass makes the command fail (exit 1, a FAIL row)."""
    from minikd.engine import layers
    real = layers.ReLU.backward
    monkeypatch.setattr(layers.ReLU, "backward", lambda self, dy: real(self, dy) * 1.001)
    assert gradcheck.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "ReLU" in out.split("FAIL")[0].splitlines()[-1]
