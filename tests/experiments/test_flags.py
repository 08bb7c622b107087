"""Every numeric flag of every command is range-checked at parse time: exit 2,
and a message naming the flag, the value and the allowed range (issue 19;
stability.py and --grad-bound everywhere: issue 23)."""
import argparse

import pytest

from minikd.experiments import args as common
from minikd.experiments import agreement, bench, mythical_digit, reproduce, stability, temperature_sweep

COMMANDS = {"reproduce": reproduce, "bench": bench, "mythical_digit": mythical_digit,
            "temperature_sweep": temperature_sweep, "stability": stability}
BAD_BOUNDS = [("--grad-bound", "0"), ("--grad-bound", "-1"), ("--grad-bound", "nan"), ("--grad-bound", "inf"),
              ("--grad-bound", "abc"), ("--grad-bound", "")]

BAD = {
    "reproduce": [
        ("--seed", "-1"), ("--epochs", "0"), ("--train-size", "0"), ("--seeds", "0"),
        ("--temperature", "0"), ("--temperature", "-3"), ("--temperature", "nan"), ("--temperature", "inf"),
        ("--hard-weight", "-1"), ("--hard-weight", "nan"), ("--soft-weight", "-1"), ("--soft-weight", "inf"),
        ("--lr", "-1"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "abc"),
        ("--lr-decay", "-1"), ("--lr-decay", "0"), ("--lr-decay", "1.5"), ("--lr-decay", "nan"),
        ("--lr-warmup", "-5"), ("--lr-warmup", "1.5"),
        ("--max-norm", "0"), ("--max-norm", "-1"), ("--max-norm", "nan"),
        ("--checkpoint-every", "0"), ("--eval-every", "0"), ("--eval-every", "-2"), ("--teacher-seeds", "0"),
        ("--teacher-seeds", "-1"), ("--teacher-seeds", "1.5"), *BAD_BOUNDS,
    ],
    "bench": [("--seed", "-1"), ("--train-size", "0"), ("--reps", "0"), ("--warmup", "-1"),
              ("--settle", "-1"), ("--settle", "nan")],
    "mythical_digit": [
        ("--seed", "-2"), ("--teacher-epochs", "0"), ("--teacher-width", "0"), ("--width", "0"),
        ("--epochs", "0"), ("--seeds", "0"), ("--lr", "0"), ("--lr", "nan"), ("--temperature", "0"),
        ("--temperature", "nan"), ("--hard-weight", "-1"), ("--soft-weight", "-1"), ("--train-size", "0"),
        *BAD_BOUNDS,
    ],
    "temperature_sweep": [
        ("--seed", "-1"), ("--seeds", "0"), ("--epochs", "0"), ("--teacher-epochs", "0"),
        ("--teacher-width", "0"), ("--hard-weight", "-1"), ("--soft-weight", "nan"), ("--lr", "-1"),
        ("--train-size", "0"), ("--workers", "0"), ("--temperatures", "1,nan"), ("--temperatures", "0,2"),
        ("--temperatures", "-2"), ("--temperatures", "inf"), ("--widths", "0,30"), *BAD_BOUNDS,
    ],
    "stability": [("--seed", "-1"), ("--train-size", "0"), ("--train-size", "2.5"), ("--profile-epochs", "0"),
                  ("--epochs", "0"), ("--epochs", "-3"), ("--lr", "0"), ("--lr", "nan"), ("--lr", "abc"),
                  ("--lr-warmup", "-1"), *BAD_BOUNDS],
}
CASES = [(cmd, flag, value) for cmd, cases in BAD.items() for flag, value in cases]


def refusal(module, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        module.parse_args(argv)
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("cmd,flag,value", CASES, ids=[f"{c}{f}={v}" for c, f, v in CASES])
def test_out_of_range_value_is_refused_naming_flag_value_and_range(cmd, flag, value, capsys):
    code, err = refusal(COMMANDS[cmd], [flag, value, "--teacher", "t.npz"][:4 if cmd == "stability" else 2],
                        capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    shown = {"1,nan": "nan", "0,2": "0", "0,30": "0"}.get(value, value)  # a list names its bad items
    assert flag in line and shown in line
    assert "must be" in line or "give" in line   # the allowed range is stated


@pytest.mark.parametrize("cmd", ["reproduce", "mythical_digit", "temperature_sweep"])
def test_both_loss_weights_zero_is_refused(cmd, capsys):
    code, err = refusal(COMMANDS[cmd], ["--hard-weight", "0", "--soft-weight", "0"], capsys)
    assert code == 2 and "--hard-weight 0" in err and "--soft-weight 0" in err


def test_resume_and_overwrite_together_are_refused(capsys):
    code, err = refusal(reproduce, ["--resume", "--overwrite"], capsys)
    assert code == 2 and "--resume" in err and "--overwrite" in err


def test_every_zero_is_refused_not_replaced_by_the_default(capsys):
    for flag in ("--checkpoint-every", "--eval-every"):
        code, _ = refusal(reproduce, [flag, "0"], capsys)
        assert code == 2
    args = reproduce.parse_args(["--checkpoint-every", "3", "--eval-every", "1"])
    assert (args.checkpoint_every, args.eval_every) == (3, 1)


def test_edge_values_inside_the_range_are_accepted():
    args = reproduce.parse_args(["--lr-decay", "1", "--lr-warmup", "0", "--hard-weight", "0", "--seed", "0",
                                 "--lr", "1e-4", "--max-norm", "0.5"])
    assert (args.lr_decay, args.lr_warmup, args.hard_weight, args.lr, args.max_norm) == (1.0, 0, 0.0, 1e-4, 0.5)
    # the hard term alone is a valid distillation loss; a student run needs no soft weight at all
    assert reproduce.parse_args(["--soft-weight", "0"]).soft_weight == 0.0
    assert reproduce.parse_args(["--stages", "teacher", "--hard-weight", "0", "--soft-weight", "0"])
    sweep = temperature_sweep.parse_args(["--temperatures", "2.5,20", "--widths", "30"])
    assert sweep.temperatures == [2.5, 20.0] and sweep.widths == [30]
    assert bench.parse_args(["--warmup", "0", "--settle", "0"]).warmup == 0


def parser_of(module):
    """The ArgumentParser a command's parse_args (agreement: main) builds, caught before it parses."""
    parsers = []

    def capture(self, *a, **k):
        parsers.append(self)
        raise _Captured

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(_Captured):
            (module.main if module is agreement else module.parse_args)([])
    return parsers[0]


def grad_bound_type(module):
    [action] = [a for a in parser_of(module)._actions if "--grad-bound" in a.option_strings]
    return action.type


@pytest.mark.parametrize("cmd", ["reproduce", "mythical_digit", "temperature_sweep", "stability"])
def test_every_grad_bound_is_the_one_in_args(cmd):
    """One parser for --grad-bound, so every command accepts and refuses the same values, and
    its refusal names both answers (a number > 0, or none)."""
    assert grad_bound_type(COMMANDS[cmd]) is common.bound_or_none


@pytest.mark.parametrize("cmd", ["reproduce", "mythical_digit", "temperature_sweep", "stability"])
def test_grad_bound_takes_a_number_or_none(cmd):
    parse = COMMANDS[cmd].parse_args
    teacher = ["--teacher", "t.npz"] if cmd == "stability" else []
    assert parse([*teacher, "--grad-bound", "0.5"]).grad_bound == 0.5
    assert parse([*teacher, "--grad-bound", "none"]).grad_bound == "none"
    assert parse([*teacher, "--grad-bound", " None"]).grad_bound == "none"
    # Left out: the profile's bound (None, resolved later) -- except the sweep, unbounded by
    # default because the bound's effect depends on T, the very thing the sweep varies.
    assert parse(teacher).grad_bound == ("none" if cmd == "temperature_sweep" else None)


class _Captured(Exception):
    pass


@pytest.mark.parametrize("module", [reproduce, bench, mythical_digit, temperature_sweep, stability, agreement],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_no_numeric_flag_is_left_unchecked(module):
    """Every flag of type int or float goes through args.number: a new flag
    added with a bare type=float fails here."""
    numeric = [a for a in parser_of(module)._actions if a.type is not None and a.type not in (str,)]
    bare = [a.option_strings for a in numeric if not hasattr(a.type, "allowed")]
    assert not bare, f"unchecked numeric flags: {bare}"
    if module is not agreement:
        assert numeric  # every experiment has numeric flags, and they were found


#: Flags that are each command's own: its folder, its budget, its grid, its teacher. Any other
#: flag two commands take is one flag (args.py's groups): the same type, default, choices and help.
OWN = {"--out", "--epochs", "--seeds", "--lr", "--train-size", "--grad-bound", "--profile", "--teacher"}


def test_a_flag_that_commands_share_is_one_flag():
    uses = {}
    for module in (reproduce, bench, mythical_digit, temperature_sweep, stability):
        for a in parser_of(module)._actions:
            for flag in set(a.option_strings) - OWN - {"-h", "--help"}:
                uses.setdefault(flag, {})[module.__name__] = (a.type, a.default, a.choices, a.help)
    shared = {flag: by for flag, by in uses.items() if len(by) > 1}
    assert {"--backend", "--hard-weight", "--teacher-width", "--no-fast"} <= set(shared)
    differ = {flag: by for flag, by in shared.items() if len(set(by.values())) > 1}
    assert not differ, f"flags declared more than once, differently: {differ}"


def test_number_helper_states_the_range():
    parse = common.number(float, low=0, high=1, low_open=True)
    assert parse("0.5") == 0.5 and parse("1") == 1.0
    for bad in ("0", "1.01", "nan", "-inf"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be a finite number > 0 and <= 1"):
            parse(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        common.positive_int("2.5")
    assert common.bound_or_none("2") == 2.0 and common.bound_or_none("NONE") == "none"
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a finite number > 0, or none"):
        common.bound_or_none("0")


def test_backend_auto_says_what_it_chose_and_why(capsys):
    """--backend auto (the default) prints one line naming the library it chose and why; an
    explicit --backend numpy prints nothing."""
    import numpy as np
    xp = common.pick_backend_or_exit("auto")
    chosen = [line for line in capsys.readouterr().err.splitlines() if line.startswith("--backend auto:")]
    name = "NumPy" if xp is np else "CuPy"
    assert len(chosen) == 1 and chosen[0].startswith(f"--backend auto: using {name}: ") and \
        len(chosen[0]) > len(f"--backend auto: using {name}: ") + 10, chosen
    assert common.pick_backend_or_exit("numpy") is np and capsys.readouterr().err == ""


def test_backend_auto_on_cupy_says_where_that_path_has_run(cp, capsys):
    """Choosing CuPy (here the CPU stand-in), auto says so, and, until docs/gpu.md records a run on a
    device, that the CuPy path has run only on the stand-in."""
    from minikd.engine import backend
    assert common.pick_backend_or_exit("auto") is cp
    err = capsys.readouterr().err
    assert err.startswith("--backend auto: using CuPy: ")
    assert ("only on a CPU stand-in" in err) == (not backend.CUPY_RUN_ON_A_DEVICE), err
