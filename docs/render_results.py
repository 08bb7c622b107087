"""Render the results tables of README.md and docs/*.md from the results registry (docs/results/).

    python docs/render_results.py            # rewrite every rendered block of every page
    python docs/render_results.py --check    # rewrite nothing; exit 1 naming each page that differs

A block is an opening marker naming a renderer and its registry files (paths from the
repository root), the rendering, and an end marker, each marker a line of its own starting at
the line's first character (a marker inside a fenced code block is an example and is left alone):

    <!-- render: reproduce-table docs/results/reproduce_quick_mnist.json -->
    (everything here is replaced by the rendering)
    <!-- render: end -->

Renderers (``RENDERERS``):

    reproduce-summary FILE...    reproduce-table for a front page: no per-pair tests, one short sentence
    reproduce-table FILE...      reproduce's runs of one profile and dataset, merged: each model's
                                 mean ± s.d., n, min-max; the published columns where the runs are
                                 on the paper's footing; the paired gain with its t-interval
    dark-knowledge-table FILE... dark-knowledge's variants: mean ± s.d., n, agreement with the teacher,
                                 paired differences to hard and to soft with their t-intervals
    bound-activity FILE          the distilled runs' per-row gradient bound, epoch by epoch
    section3-mythical FILE       mythical-digit's table (bias shifts chosen on validation)
    section3-sweep FILE          temperature-sweep's grid of distilled errors, T by width
    deviations-table             every profile's departures from the paper (profiles.deviations_markdown)
    run-times FILE...            one row per run: its command, wall time, machine and code
    bound-validation FILE...     pairs of reproduce --validation runs (the profile's, then --grad-bound
                                 none from its teacher): each model per data set, paired differences

Every block that reports runs ends with one provenance line: the command(s), minikd's version
and commit, the CPU, the BLAS and its threads, and the wall time, all read from the files'
``environment``. A marker naming a missing file or an unknown renderer is an error naming the
page, the line and the file (exit 2). Nobody types a result: edit the registry, then rerun this.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:      # run as `python docs/render_results.py`: import this checkout's minikd
    sys.path.insert(0, str(ROOT))

from minikd.experiments import stats  # noqa: E402
from minikd.experiments.results import PAPER_TABLE, elapsed_seconds  # noqa: E402

OPEN = re.compile(r"^<!-- render: (?P<name>[a-z0-9-]+)(?P<args>(?: +[^ ]+)*) *-->$")   # at the line's start
END = "<!-- render: end -->"

# The seed reproduction beside the paper: S. Kim, "Knowledge Distillation for Object Detection 1:
# Start from simple classification model" (2020), https://github.com/poperson1205/knowledge_distillation
# (PyTorch; its MNIST test errors for the teacher, the student and the distilled student).
SEED_REPRO_TABLE = {"teacher": 100, "student": 171, "distilled": 111}
SEED_REPRO_CITATION = ('S. Kim, "Knowledge Distillation for Object Detection 1: Start from simple classification '
                       'model" (2020), [code](https://github.com/poperson1205/knowledge_distillation)')
PAPER_CITATION = ("Hinton, Vinyals & Dean (2015), [*Distilling the Knowledge in a Neural Network*]"
                  "(https://arxiv.org/abs/1503.02531), section 3")

MODELS = {"teacher": "teacher", "student": "student", "distilled": "distilled student"}
DK_VARIANTS = ("hard", "soft", "permuted", "confidence", "smoothed", "logit_matching")
BOUND_EPOCHS = (0, 1, 2, 4, 7, 10, 20)
SCRIPTS = {"reproduce": "scripts/reproduce.py", "dark-knowledge": "scripts/dark_knowledge.py",
           "mythical": "scripts/mythical_digit.py", "sweep": "scripts/temperature_sweep.py"}


class RenderError(Exception):
    """A block that cannot be rendered; the message names the file and what to do."""


# --------------------------------------------------------------------------- formatting
def count(x):
    """An error count or a mean of counts: 1,234 or 96.3."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def mean_sd(d):
    """``mean ± s.d.`` of a stats.describe() dict; the value alone for one run."""
    if d["sd"] is None:
        return count(d["mean"])
    return f"{d['mean']:,.1f} ± {d['sd']:,.1f}"


def span(d):
    return count(d["min"]) if d["min"] == d["max"] else f"{count(d['min'])}–{count(d['max'])}"


def interval(ci):
    return "no interval (one pair)" if ci is None else f"[{ci[0]:,.1f}, {ci[1]:,.1f}]"


def signed(x):
    return f"{x:+,.1f}"


def table(rows):
    """Markdown table lines from a header row and body rows."""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]]


def minutes(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def rel(path, root):
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- provenance
def run_command_line(env, data, kind):
    """The command a file records (``environment.command``), or one rebuilt from its argv."""
    if env.get("command"):
        return env["command"]
    argv = (data.get("config") or {}).get("argv")   # a file written before minikd recorded its command
    return " ".join(["python", SCRIPTS[kind], *argv]) if argv is not None else f"python {SCRIPTS[kind]}"


def code_version(env):
    """``minikd 0.2.0, commit 0123456789ab`` (and whether the tree had uncommitted changes)."""
    if "minikd_version" not in env:
        return "minikd version not recorded"
    text = f"minikd {env['minikd_version']}"
    if env.get("git_commit"):
        text += f", commit {env['git_commit'][:12]}" + (" with uncommitted changes" if env.get("git_dirty") else "")
    elif "git_commit" in env:
        text += " (installed, no checkout)"
    return text


def machine_line(env):
    """The CPU (or GPU), its cores, each BLAS with its kernel and threads, a backend other than NumPy."""
    parts = [env.get("gpu") or env.get("cpu") or "CPU not recorded"]
    if env.get("cpu_count"):
        parts[0] += f" ({env['cpu_count']} cores)"
    libs = env.get("blas")
    if libs:
        parts += [f"{lib['name']} {lib['version']}" + (f" {lib['architecture']}" if lib.get("architecture") else "")
                  + f", {lib['threads']} thread{'s' if lib['threads'] != 1 else ''}" for lib in libs]
    elif env.get("blas_threads") is not None:
        parts.append(f"BLAS {env['blas_threads']} thread{'s' if env['blas_threads'] != 1 else ''}")
    if env.get("backend") and env["backend"] != "numpy":
        parts.append(f"{env['backend']} backend")
    return "; ".join(parts)


def training_seconds(data):
    """The training passes of every model a file's command trained (``train_seconds_total``, which a
    checkpoint carries across resumes); a loaded teacher is not counted."""
    runs = list(data.get("runs") or []) if isinstance(data.get("runs"), list) else []
    for group in [*(data.get("variants") or {}).values(), data.get("reference_student") or {}]:
        runs += group.get("runs") or []
    return sum(r.get("train_seconds_total") or 0.0 for r in runs if not r.get("loaded"))


def wall_time(env, data):
    """started -> finished, or the file's own wall-seconds field; "not recorded" otherwise. When the
    models' training took longer than that, the command was stopped and resumed: both are given."""
    s = elapsed_seconds(env)
    if s is None:
        s = next((data[k] for k in ("wall_seconds_this_run", "wall_seconds", "wall_seconds_total")
                  if isinstance(data.get(k), (int, float))), None)
    if s is None:
        return "not recorded"
    trained = training_seconds(data)
    if trained > s + 60:
        return f"{minutes(s)} for its last resumed part; its tabled models trained {minutes(trained)} in all"
    return minutes(s)


def provenance(files, kind, root):
    """The one provenance line under a rendered block, from each file's ``environment``."""
    envs = [(path, data.get("environment") or {}, data) for path, data in files]

    def uniq(values):
        out = []
        for v in values:
            if v not in out:
                out.append(v)
        return out

    command, code, machine, wall = (lambda e, d: run_command_line(e, d, kind)), code_version, machine_line, wall_time

    cmds = "; ".join(f"`{c}`" for c in uniq(command(e, d) for _, e, d in envs))
    line = (f"<sub>Made by {cmds} · {' / '.join(uniq(code(e) for _, e, _ in envs))} · "
            f"{' / '.join(uniq(machine(e) for _, e, _ in envs))} · "
            f"wall time {' + '.join(wall(e, d) for _, e, d in envs)} · "
            f"{', '.join(rel(p, root) for p, _ in files)}</sub>")
    return line


# --------------------------------------------------------------------------- reproduce-table
def comparable_with_paper():
    """reproduce's comparable_with_paper (imported when needed; a missing dependency of minikd's
    surfaces as itself, not as a renderer that cannot find the function)."""
    from minikd.experiments.reproduce_table import comparable_with_paper as fn
    return fn


def model_label(model, run, config):
    cfg = run.get("config") or (config.get("stages") or {}).get(model) or {}
    label = MODELS[model]
    if cfg.get("sizes"):
        label += " " + "-".join(map(str, cfg["sizes"]))
    if model == "distilled" and cfg.get("temperature") is not None:
        label += f", T = {cfg['temperature']:g}"
    return label


def merge_reproduce(files, root):
    """The runs of several reproduce results files, refused unless they share profile, dataset and
    evaluation set; McNemar's counts per pair from their summaries."""
    keys = ("profile", "dataset", "evaluated_on", "n_eval")
    first = None
    runs, counts, teachers = [], {}, {}
    for path, data in files:
        if not isinstance(data.get("runs"), list) or not data["runs"]:
            raise RenderError(f"{rel(path, root)} has no `runs` list (a reproduce results.json of minikd 0.2.0 "
                              f"or later is needed; rerun the command)")
        cfg = data.get("config") or {}
        if first is None:
            first = (path, cfg)
        elif any(cfg.get(k) != first[1].get(k) for k in keys):
            diff = ", ".join(f"{k} {first[1].get(k)!r} vs {cfg.get(k)!r}"
                             for k in keys if cfg.get(k) != first[1].get(k))
            raise RenderError(f"{rel(first[0], root)} and {rel(path, root)} cannot share a table: {diff}")
        for r in data["runs"]:
            if r.get("model") == "teacher":
                t = r.get("teacher_seed", r.get("seed"))
                if t in teachers:
                    raise RenderError(f"teacher seed {t} is in both {teachers[t]} and {rel(path, root)}: "
                                      f"register each run once")
                teachers[t] = rel(path, root)
            runs.append(r)
        for p in ((data.get("summary") or {}).get("paired_gain") or {}).get("pairs", []):
            if "only_student_right" in p:
                counts[(p.get("teacher_seed"), p.get("seed"))] = (p["only_student_right"], p["only_distilled_right"])
    return runs, first[1], counts


def failures_lines(files, root, prefix=""):
    """One line per student the health check stopped (results.json's ``failures``): never a row
    of a table, always named with its message."""
    lines = []
    for path, data in files:
        for f in data.get("failures") or []:
            lines.append(f"- {prefix}{MODELS.get(f['model'], f['model'])} of teacher seed {f['teacher_seed']}, "
                         f"seed {f['seed']} ({rel(path, root)}): stopped by the health check, so not in the "
                         f"table: “{f['message']}”")
    return lines


def render_reproduce_summary(files, root):
    """reproduce-table for a front page: the table, one sentence on the runs and the published
    columns' sources, the paired gain without the per-pair tests, and the provenance line."""
    return render_reproduce_table(files, root, compact=True)


def render_reproduce_table(files, root, compact=False):
    runs, config, counts = merge_reproduce(files, root)
    dataset, profile, eval_name = config.get("dataset"), config.get("profile"), config.get("evaluated_on", "test")
    n_eval = config.get("n_eval") or next((r.get("n_eval") for r in runs if r.get("n_eval")), None)
    summary = stats.model_summary(runs)
    published = all(comparable_with_paper()(dataset, eval_name, {r["model"]: r}, profile)
                    for r in runs if r.get("model") in MODELS)
    of = f" (of {n_eval:,})" if n_eval else ""
    head = ["model", f"{eval_name} errors{of}, mean ± s.d.", "n", "min–max"]
    if published:
        head += ["Hinton et al. 2015", "seed reproduction"]
    rows = [head]
    for model in MODELS:
        if model not in summary:
            continue
        d = summary[model]
        run = next(r for r in runs if r.get("model") == model)
        label = model_label(model, run, config)
        row = [label, f"**{mean_sd(d)}**" if model == "distilled" else mean_sd(d), str(d["n"]), span(d)]
        if published:
            row += [str(PAPER_TABLE[model]), str(SEED_REPRO_TABLE[model])]
        rows.append(row)
    teacher_seeds = sorted({r.get("teacher_seed", r.get("seed")) for r in runs if r.get("model") == "teacher"},
                           key=str)
    what = (f"{dataset} ({eval_name} set), `--profile {profile}`: {len(teacher_seeds)} teacher(s) (teacher seeds "
            f"{', '.join(map(str, teacher_seeds))}), {summary.get('student', {}).get('n', 0)} plain and "
            f"{summary.get('distilled', {}).get('n', 0)} distilled student(s); every run is its own draw of initial "
            f"weights, dropout masks and batch order.")
    if compact:
        what = (f"{len(teacher_seeds)} teacher(s), {summary.get('student', {}).get('n', 0)} pair(s) of students.")
    if published:
        what += f" Published columns: {PAPER_CITATION}; the seed reproduction, {SEED_REPRO_CITATION}."
    elif compact:
        what += " The paper's numbers are not shown: these runs are not on its footing."
    else:
        what += (" The paper's numbers count errors on MNIST's 10,000 test images after training on all 60,000 "
                 "for the profile's own epochs; these runs are not on that footing, so they are not shown.")
    parts = ["\n".join(table(rows)), what]
    pairs = stats.pairs_from_runs(runs)
    if pairs:
        for p in pairs:
            b_c = counts.get((p["teacher_seed"], p["seed"]))
            if b_c is not None:
                p["only_student_right"], p["only_distilled_right"] = b_c
        try:
            gain = stats.paired_gain(pairs)
        except ValueError as exc:
            raise RenderError(f"{', '.join(rel(p, root) for p, _ in files)}: {exc}") from exc
        pair_is = ("one teacher and seed" if compact else "a pair is the plain and the distilled student of one "
                   "teacher and one seed: the same initial weights and batch order")
        parts.append(gain_sentence(gain, "plain − distilled test errors", pair_is, mcnemar=not compact))
    stopped = failures_lines(files, root)
    if stopped:
        parts.append("\n".join(stopped))
    parts.append(provenance(files, "reproduce", root))
    return "\n\n".join(parts)


def gain_sentence(g, what, pair_is, mcnemar=True):
    """The paired gain's mean, n and t-interval, and what the interval says (and, with mcnemar, each
    pair's McNemar test)."""
    n = g["n"]
    s = f"Paired gain ({what}; {pair_is}): mean {signed(g['mean'])}, n = {n}"
    if g["ci95"] is None:
        return s + ": one pair gives no interval; more seeds are needed to tell the gain from noise."
    lo, hi = g["ci95"]
    s += f", 95% t-interval {interval(g['ci95'])}."
    if lo <= 0 <= hi:
        s += " The interval includes 0: these runs do not show a difference."
    else:
        s += " The interval excludes 0."
    if n < 10:
        s += (f" With {n} pairs the t-interval is wide (t = {stats.t_quantile(0.95, n - 1):.2f} "
              f"standard errors each side).")
    ps = [p.get("mcnemar_p") for p in g.get("pairs", [])]
    if mcnemar and ps and all(p is not None for p in ps):
        s += (" McNemar's exact test on the test images only one of the two gets right, per pair: p = "
              + ", ".join(f"{p:.2g}" for p in ps) + ".")
    return s


# --------------------------------------------------------------------------- dark-knowledge-table
def render_dark_knowledge(files, root):
    blocks = []
    for path, data in files:
        variants = data.get("variants")
        if not isinstance(variants, dict) or not variants:
            raise RenderError(f"{rel(path, root)} has no `variants` (a dark-knowledge results.json is needed)")
        unknown = [v for v in variants if v not in DK_VARIANTS]
        if unknown:
            raise RenderError(f"{rel(path, root)}: unknown variant(s) {', '.join(unknown)} "
                              f"(known: {', '.join(DK_VARIANTS)})")
        errors = {}
        for name, v in variants.items():
            runs = v.get("runs") or []
            if not runs:
                raise RenderError(f"{rel(path, root)}: variants.{name} has no runs")
            errors[name] = {r["seed"]: r["test_errors"] for r in runs}
        rows = [["variant", "test errors, mean ± s.d.", "n", "agreement with the teacher",
                 "− hard: mean, 95% t-interval", "− soft: mean, 95% t-interval"]]
        notes = []
        for name in [n for n in DK_VARIANTS if n in variants]:
            v = variants[name]
            d = stats.describe(errors[name].values())
            row = [f"`{name}`", mean_sd(d), str(d["n"]), agreement(v, path, root)]
            for ref in ("hard", "soft"):
                row.append(paired_cell(name, ref, errors, data, path, root, notes))
            rows.append(row)
        ref_student = data.get("reference_student") or {}
        if ref_student.get("runs"):
            d = stats.describe([r["test_errors"] for r in ref_student["runs"]])
            rows.append(["plain student (its own schedule; reference)", mean_sd(d), str(d["n"]),
                         agreement(ref_student, path, root), "–", "–"])
        text = "\n".join(table(rows))
        teacher = data.get("teacher") or {}
        extra = []
        if teacher.get("test_errors") is not None:
            te = teacher["test_errors"]
            te = te if isinstance(te, list) else [te]
            extra.append(f"Teacher: {' / '.join(count(e) for e in te)} test errors.")
        smoothing = data.get("smoothing") or {}
        if smoothing.get("chosen") is not None:
            grid = ", ".join(f"{e:g}" for e in smoothing.get("grid", []))
            extra.append(f"`smoothed`: smoothing {smoothing['chosen']:g}, chosen on the validation split"
                         + (f" from {grid}." if grid else "."))
        extra.append("Differences are this variant's test errors minus `hard`'s (or `soft`'s), seed by seed "
                     "(the same initial weights and batch order); a negative difference is fewer errors.")
        early = data.get("early_stopping") or {}
        for name in ("hard", "soft"):
            e = early.get(name) or {}
            if early.get("available") and e.get("early_stopped") and e.get("final"):
                extra.append(f"`{name}` stopped early on the validation split: {mean_sd(e['early_stopped'])} test "
                             f"errors, against {mean_sd(e['final'])} at its last epoch.")
        n = min(len(e) for e in errors.values())
        if n == 1:
            extra.append("With one seed per variant no interval can be given.")
        elif n < 10:
            extra.append(f"With {n} seeds a t-interval is wide; an interval that includes 0 shows no difference.")
        extra += notes
        tests = mcnemar_lines(data, variants)
        blocks.append(text + "\n\n" + " ".join(extra) + ("\n\n" + tests if tests else "") + "\n\n"
                      + provenance([(path, data)], "dark-knowledge", root))
    return "\n\n".join(blocks)


def mcnemar_lines(data, variants):
    """Each pair's McNemar exact p (the test images only one of the two students gets right), per
    variant against `hard` and `soft`, seed by seed; empty when the file has none."""
    lines = []
    for name in [n for n in DK_VARIANTS if n in variants]:
        cells = []
        for ref in ("hard", "soft"):
            pairs = (((data.get("paired") or {}).get(name) or {}).get(f"vs_{ref}") or {}).get("pairs") or []
            if pairs and all(pr.get("mcnemar_p") is not None and pr.get("difference") is not None for pr in pairs):
                cells.append(f"against `{ref}`, " + ", ".join(f"seed {pr['seed']}: {pr['difference']:+d} "
                                                             f"(p = {pr['mcnemar_p']:.2g})" for pr in pairs))
        if cells:
            lines.append(f"- `{name}`: " + "; ".join(cells))
    if not lines:
        return ""
    return ("Each pair's difference in test errors (variant minus reference) and McNemar's exact p on the test "
            "images only one of the two students gets right (it says whether those two networks differ, not "
            "whether the variants do):\n\n" + "\n".join(lines))


def agreement(v, path, root):
    """Top-1 agreement with the teacher on the test set, as a percentage: the runs' ``agreement``
    (a fraction), else the variant's."""
    vals = [r["agreement"] for r in v.get("runs", []) if r.get("agreement") is not None]
    if not vals and isinstance(v.get("agreement"), (int, float)):
        vals = [v["agreement"]]
    if not vals:
        return "–"
    if any(not 0 <= a <= 1 for a in vals):
        raise RenderError(f"{rel(path, root)}: an agreement outside [0, 1] ({vals}); it is stored as a fraction")
    return f"{100 * sum(vals) / len(vals):.1f}%"


def paired_cell(name, ref, errors, data, path, root, notes):
    if name == ref or ref not in errors:
        return "–"
    seeds = [s for s in errors[name] if s in errors[ref]]
    if not seeds:
        return "no common seed"
    g = stats.paired_interval([errors[name][s] - errors[ref][s] for s in seeds])
    stored = ((data.get("paired") or {}).get(name) or {}).get(f"vs_{ref}")
    if stored and stored.get("mean") is not None and not math.isclose(abs(stored["mean"]), abs(g["mean"]),
                                                                      rel_tol=1e-9, abs_tol=1e-9):
        raise RenderError(f"{rel(path, root)}: paired.{name}.vs_{ref}.mean is {stored['mean']}, but its runs give "
                          f"{g['mean']} (seeds {seeds}): the file contradicts itself")
    return f"{signed(g['mean'])} {interval(g['ci95'])}"


# --------------------------------------------------------------------------- bound-activity
def render_bound_activity(files, root):
    (path, data), = files
    runs = [r for r in data.get("runs") or [] if r.get("model") == "distilled"]
    hist = [[h for h in r.get("history", []) if h.get("bound_clipped") is not None] for r in runs]
    hist = [h for h in hist if h]
    if not hist:
        raise RenderError(f"{rel(path, root)}: no distilled run records bound_clipped in its history (a run of "
                          f"minikd 0.2.0 or later with the row bound is needed)")
    last = min(h[-1]["epoch"] for h in hist)
    epochs = [e for e in BOUND_EPOCHS if e < last] + [last]
    rows = [["epoch", "rows whose gradient the bound rescaled", "their mean scale"]]
    for e in epochs:
        at = [next((x for x in h if x["epoch"] == e), None) for h in hist]
        at = [x for x in at if x is not None]
        if not at:
            continue
        clipped = sum(x["bound_clipped"] for x in at) / len(at)
        scales = [x["bound_scale"] for x in at if x.get("bound_scale") is not None]
        scale = f"{sum(scales) / len(scales):.2f}" if scales else "–"
        rows.append([str(e), f"{100 * clipped:.1f}%", scale])
    text = "\n".join(table(rows))
    return (text + f"\n\nEpochs count from 0; {len(hist)} distilled run(s), averaged epoch by epoch. A row is "
            "rescaled when its gradient is longer than the bound; a scale of 1 would be the paper's gradient.\n\n"
            + provenance(files, "reproduce", root))


# --------------------------------------------------------------------------- section 3
def render_mythical(files, root):
    (path, data), = files
    exps = data.get("experiments")
    if not isinstance(exps, dict) or not exps:
        raise RenderError(f"{rel(path, root)} has no `experiments` (a mythical-digit results.json is needed)")
    rows = [["transfer set", "test errors, no shift", "shift chosen on validation", "test errors with it",
             "on the left-out classes", "Hinton et al. 2015 (shift chosen on test)"]]
    verdicts, info = [], []
    for name, exp in exps.items():
        runs = exp["runs"]

        def of(key, field, runs=runs):
            return stats.describe([r["test"][key][field] for r in runs])
        n_test, n_focus = exp["n_test"], exp["n_focus"]
        none, val = of("none", "errors"), of("validation", "errors")
        shift = of("validation", "shift")
        focus_b, focus_a = of("none", "errors_on_focus"), of("validation", "errors_on_focus")
        focus = ("class " + "/".join(map(str, exp["spec"]["focus"]))) if name == "omit" else "other classes"
        paper = exp["spec"].get("paper")
        if paper and name == "omit":
            pcol = (f"{paper['errors_before']} → {paper['errors_after']} errors, {paper['focus_errors_before']} → "
                    f"{paper['focus_errors_after']} of {focus} wrong, at {paper['shift']:+g}")
        elif paper:
            pcol = (f"{100 * paper['error_rate_before']:.1f}% → {100 * paper['error_rate_after']:.1f}% "
                    f"at {paper['shift']:+g}")
        else:
            pcol = "–"
        rows.append([f"{exp['spec']['title']} ({exp['n_transfer']:,} images)", with_rate(none, n_test),
                     f"{shift['mean']:+.2f} ({shift['min']:+.2f} to {shift['max']:+.2f})"
                     if shift["n"] > 1 else f"{shift['mean']:+.2f}",
                     with_rate(val, n_test),
                     f"{focus} wrong: {count(focus_b['mean'])} → {count(focus_a['mean'])} of {n_focus:,}", pcol])
        for v in exp.get("verdicts", []):
            verdicts.append(f"- *{v['claim']}*: **{v['verdict']}** ({v['detail']}).")
        parts = []
        opt = [r["test"].get("test_optimal") for r in runs]
        if all(opt):
            best = stats.describe([o["errors"] for o in opt])
            parts.append(f"the shift best on the test set would have been "
                         f"{sum(o['shift'] for o in opt) / len(opt):+.2f} ({count(best['mean'])} test errors)")
        at_paper = [r["test"].get("paper_shift") for r in runs]
        if all(at_paper):
            errs = stats.describe([a["errors"] for a in at_paper])
            parts.append(f"the paper's shift, {at_paper[0]['shift']:+g}, gives {count(errs['mean'])} test errors")
        if parts:
            info.append(f"{exp['spec']['title']}: " + "; ".join(parts))
    seeds = len(next(iter(exps.values()))["runs"])
    text = "\n".join(table(rows))
    text += (f"\n\nMeans over {seeds} seed(s), (min–max) where they differ. The shift is chosen on validation "
             f"images the students never see, then applied once to the test set.")
    if info:
        text += " For information only, means over the seeds:\n\n" + "\n".join(f"- {i}." for i in info)
    if verdicts:
        text += "\n\nThe command's verdicts on the paper's claims:\n\n" + "\n".join(verdicts)
    return text + "\n\n" + provenance(files, "mythical", root)


def dataset_label(config):
    """A row's data: MNIST, scikit-learn's digits, or the folder name of an IDX data set (a variant)."""
    dataset = config.get("dataset")
    if dataset == "idx":
        return f"MNIST-format `{Path(str(config.get('data_source'))).name}`"
    return {"mnist": "MNIST", "digits": "scikit-learn digits"}.get(dataset, str(dataset))


def errors_by_seed(runs, model):
    return {r["seed"]: r["test_errors"] for r in runs if r.get("model") == model}


def paired_cell_of(a, b, where):
    """``mean [lo, hi]`` of a − b over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise RenderError(f"{where}: no seed has both students")
    d = stats.paired_interval([a[s] - b[s] for s in seeds])
    return f"{signed(d['mean'])} {interval(d['ci95'])}"


def render_bound_validation(files, root):
    """Pairs of reproduce files, one pair per data set: the profile's run (teacher, student, bounded
    distilled student) and the same command's distilled students with ``--grad-bound none`` from
    that run's teacher. Each model's mean ± s.d. over seeds, and two paired differences."""
    if len(files) % 2:
        raise RenderError(f"takes pairs of files (the profile's run, then its `--grad-bound none` run), "
                          f"got {len(files)}")
    rows = [["data (held-out images)", "teacher", "student", "distilled, warm-up only (`--grad-bound none`)",
             "distilled, warm-up and bounded rows (the profile)", "bounded − warm-up only, paired",
             "bounded − student, paired"]]
    seed_counts = set()
    for (path, data), (npath, ndata) in zip(files[::2], files[1::2], strict=True):
        runs, nruns = data.get("runs"), ndata.get("runs")
        if not runs or not nruns:
            raise RenderError(f"{rel(path, root)} and {rel(npath, root)} need `runs` lists (reproduce results.json)")
        cfg, ncfg = data.get("config") or {}, ndata.get("config") or {}
        bound = (cfg.get("stages") or {}).get("distilled", {}).get("grad_bound")
        nbound = (ncfg.get("stages") or {}).get("distilled", {}).get("grad_bound", "absent")
        if bound is None or nbound is not None:
            raise RenderError(f"{rel(path, root)} must have the bounded distilled stage and {rel(npath, root)} "
                              f"the unbounded one (grad_bound {bound!r} and {nbound!r})")
        keys = ("dataset", "data_source", "evaluated_on", "n_eval")
        if any(cfg.get(k) != ncfg.get(k) for k in keys):
            raise RenderError(f"{rel(path, root)} and {rel(npath, root)} are not on the same data and split")
        teacher = {r["soft_targets_sha256"] for r in runs if r.get("model") == "teacher"}
        if {r.get("teacher_soft_targets_sha256") for r in nruns if r.get("model") == "distilled"} != teacher:
            raise RenderError(f"{rel(npath, root)}'s distilled students did not learn from {rel(path, root)}'s teacher")
        summary, nsummary = stats.model_summary(runs), stats.model_summary(nruns)

        bounded, unbounded = errors_by_seed(runs, "distilled"), errors_by_seed(nruns, "distilled")
        plain = errors_by_seed(runs, "student")
        where = f"{rel(path, root)}, {rel(npath, root)}"
        seed_counts |= {summary["student"]["n"], summary["distilled"]["n"], nsummary["distilled"]["n"]}
        rows.append([f"{dataset_label(cfg)} ({cfg.get('n_eval'):,})", mean_sd(summary["teacher"]),
                     mean_sd(summary["student"]), mean_sd(nsummary["distilled"]), mean_sd(summary["distilled"]),
                     paired_cell_of(bounded, unbounded, where), paired_cell_of(bounded, plain, where)])
    ns = sorted(seed_counts)
    stopped = []
    for (path, data), (npath, ndata) in zip(files[::2], files[1::2], strict=True):
        label = dataset_label(data.get("config") or {})
        stopped += failures_lines([(path, data)], root, prefix=f"{label}, the profile: ")
        stopped += failures_lines([(npath, ndata)], root, prefix=f"{label}, `--grad-bound none`: ")
    text = "\n".join(table(rows))
    seeds = (f"{ns[-1]} seed(s) of each student" if len(ns) == 1 else
             f"{ns[-1]} seeds of each student, fewer where the health check stopped one, as listed below")
    text += (f"\n\n{files[0][1]['config'].get('evaluated_on', 'validation').capitalize()} errors, mean ± s.d. over "
             f"{seeds}; one teacher per data set, shared by both distilled columns. A paired difference is per "
             f"seed (the same initial weights and batch order), with its 95% t-interval; negative is fewer errors; "
             f"an interval that includes 0 shows no difference.")
    if stopped:
        text += "\n\n" + "\n".join(stopped)
    return text + "\n\n" + provenance(files, "reproduce", root)


def with_rate(d, n):
    base = count(d["mean"]) if d["min"] == d["max"] else f"{count(d['mean'])} ({span(d)})"
    return f"{base}, {100 * d['mean'] / n:.1f}%"


def render_sweep(files, root):
    (path, data), = files
    cells = data.get("cells")
    if not isinstance(cells, list) or not cells:
        raise RenderError(f"{rel(path, root)} has no `cells` (a temperature-sweep results.json is needed)")
    temps = sorted({c["temperature"] for c in cells})
    widths = sorted({c["width"] for c in cells})
    grid = {(w, t): stats.describe([c["test_errors"] for c in cells if c["width"] == w and c["temperature"] == t])
            for w in widths for t in temps if any(c["width"] == w and c["temperature"] == t for c in cells)}
    ns = {d["n"] for d in grid.values()}
    rows = [["width \\ T"] + [f"{t:g}" for t in temps]]
    for w in widths:
        means = {t: grid[(w, t)]["mean"] for t in temps if (w, t) in grid}
        best = min(means.values())
        row = [str(w)]
        for t in temps:
            if (w, t) not in grid:
                row.append("–")
                continue
            cell = mean_sd(grid[(w, t)]) + ("" if len(ns) == 1 else f" (n = {grid[(w, t)]['n']})")
            row.append(f"**{cell}**" if means[t] == best else cell)
        rows.append(row)
    n_test = (data.get("config") or {}).get("n_test") or cells[0].get("n_test")
    teacher = data.get("teacher") or {}
    text = "\n".join(table(rows))
    text += (f"\n\nDistilled students' test errors (of {n_test:,}), mean ± s.d. over "
             + (f"{ns.pop()} seed(s) per cell" if len(ns) == 1 else "the seeds of each cell")
             + "; bold: the best mean of each width.")
    if teacher.get("test_errors") is not None:
        sizes = "-".join(map(str, teacher.get("sizes", [])))
        text += f" Teacher {sizes}: {count(teacher['test_errors'])} test errors."
    if data.get("missing"):
        text += f" Missing cells: {', '.join(data['missing'])}."
    claims = [f"- *{c['claim']}*: **{c['verdict']}** ({c['detail']})." for c in data.get("claims", [])]
    if claims:
        text += "\n\n" + "\n".join(claims)
    return text + "\n\n" + provenance(files, "sweep", root)


# --------------------------------------------------------------------------- run-times
def render_run_times(files, root):
    """One row per registered run: its command, its wall time, and the machine and code it ran on."""
    rows = [("command", "wall time", "machine", "minikd")]
    for _, data in files:
        env = data.get("environment") or {}
        kind = data.get("command") or "reproduce"
        threads = env.get("blas_threads")
        machine = (env.get("gpu") or env.get("cpu") or "CPU not recorded") + (
            f", {env['cpu_count']} cores" if env.get("cpu_count") else "") + (
            f", {threads} BLAS thread{'s' if threads != 1 else ''}" if threads is not None else "")
        code = code_version(env).removeprefix("minikd ").replace(", commit ", " @ ")
        rows.append((f"`{run_command_line(env, data, kind)}`", wall_time(env, data), machine, code))
    return "\n".join(table(rows))


# --------------------------------------------------------------------------- deviations-table
def render_deviations(files, root):
    try:
        from minikd.profiles import deviations_markdown
    except ImportError:
        from minikd.experiments.profiles import deviations_markdown
    return deviations_markdown()


# name -> (function, how many files: "0", "1" or "1+")
RENDERERS = {
    "reproduce-table": (render_reproduce_table, "1+"),
    "reproduce-summary": (render_reproduce_summary, "1+"),
    "dark-knowledge-table": (render_dark_knowledge, "1+"),
    "bound-activity": (render_bound_activity, "1"),
    "section3-mythical": (render_mythical, "1"),
    "section3-sweep": (render_sweep, "1"),
    "deviations-table": (render_deviations, "0"),
    "run-times": (render_run_times, "1+"),
    "bound-validation": (render_bound_validation, "1+"),
}


# --------------------------------------------------------------------------- pages
def load_json(path, where):
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise RenderError(f"{where}: {path}: cannot read it ({exc})") from exc
    except ValueError as exc:
        raise RenderError(f"{where}: {path}: not valid JSON ({exc})") from exc


def render_page(page, root):
    """The page's text with every block rendered. Raises RenderError naming page, line and file."""
    name = rel(page, root)
    lines = page.read_text().split("\n")
    out, i, fenced = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced      # a marker shown in a code block is an example, not a block
        m = None if fenced else OPEN.match(line)
        if m is None or m["name"] == "end":
            if line == END and not fenced:
                raise RenderError(f"{name}:{i + 1}: an end marker without an opening one")
            out.append(line)
            i += 1
            continue
        where = f"{name}:{i + 1}"
        j = i + 1
        while j < len(lines) and lines[j] != END:
            if OPEN.match(lines[j]):
                raise RenderError(f"{where}: this block has no `{END}` before the next marker (line {j + 1})")
            j += 1
        if j == len(lines):
            raise RenderError(f"{where}: no `{END}` after this marker")
        out.append(line)
        out.append(render_block(m["name"], m["args"].split(), root, where))
        out.append(lines[j])
        i = j + 1
    return "\n".join(out)


def render_block(renderer, args, root, where):
    if renderer not in RENDERERS:
        raise RenderError(f"{where}: unknown renderer {renderer!r} (known: {', '.join(RENDERERS)})")
    fn, arity = RENDERERS[renderer]
    if (arity == "0" and args) or (arity == "1" and len(args) != 1) or (arity == "1+" and not args):
        want = {"0": "no file", "1": "exactly one file", "1+": "one or more files"}[arity]
        raise RenderError(f"{where}: {renderer} takes {want}, got {len(args)}: {' '.join(args) or '(none)'}")
    files = []
    for a in args:
        path = root / a
        if not path.is_file():
            raise RenderError(f"{where}: {renderer}: no such file {a} (paths are from the repository root; "
                              f"register the run in docs/results/ first)")
        files.append((path, load_json(path, where)))
    try:
        return fn(files, root)
    except RenderError as exc:
        raise RenderError(f"{where}: {renderer}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise RenderError(f"{where}: {renderer}: {', '.join(args)} does not have the layout this renderer reads "
                          f"({type(exc).__name__}: {exc}); see docs/results/README.md") from exc


def default_pages(root):
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="rewrite nothing; exit 1 naming each page that differs from its rendering")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="the repository whose pages and registry files are read (default: this script's)")
    ap.add_argument("pages", nargs="*", type=Path,
                    help="pages to render, relative to --root (default: README.md and docs/*.md)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    pages = [root / p for p in args.pages] if args.pages else default_pages(root)
    stale = []
    for page in pages:
        if not page.is_file():
            print(f"error: {page}: no such page", file=sys.stderr)
            return 2
        try:
            new = render_page(page, root)
        except RenderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if new != page.read_text():
            stale.append(rel(page, root))
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        for name in stale:
            print(f"{name} differs from its rendering: run python docs/render_results.py")
        return 1
    for name in ([] if args.check else stale):
        print(f"rendered {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
