"""The `minikd` command and `python -m minikd.gradcheck`, as a user runs them."""
import os
import re
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
    for name in ("reproduce", "bench", "mythical-digit", "sweep", "agreement", "gradcheck"):
        assert f"  {name} " in proc.stdout
    assert set(COMMANDS) == {"reproduce", "bench", "mythical-digit", "sweep", "agreement", "gradcheck",
                             "stability", "make-variants", "figures"}


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


def test_ci_runs_the_readme_test_command_then_the_linter_then_the_wheel():
    """.ci/run runs README's test command as written there, first; then ruff and the wheel check."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^pip install -e \"\.\[dev\]\".*$", readme, re.M).group(0)
    steps = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line and not line.startswith("#") and line.split()[0] in ("pip", "ruff", "bash", "python")]
    assert steps[-3:] == [command, "ruff check .", "bash .ci/wheel_check.sh"], steps


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
