#!/usr/bin/env python
"""Keep the line links of docs/distillation.md pointing at the code they name.

Each link to code in the tutorial carries a key as its title,
``[text](../minikd/engine/losses.py#L143-L145 "soft_loss")``; SPEC below says, for
each key, the file and the first and last lines of the span (by their text). Run

    python docs/update_links.py           # rewrite the line numbers in place
    python docs/update_links.py --check   # exit 1, naming the stale links, if any moved

after editing the linked files. tests/test_docs_links.py runs --check.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "distillation.md"

# key: (file, text on the span's first line, text on its last line, searched from the first)
SPEC = {
    "log_softmax": ("minikd/engine/losses.py", "def log_softmax", "return s - xp.log"),
    "softmax": ("minikd/engine/losses.py", "def softmax(", "return xp.exp(log_softmax"),
    "cross_entropy": ("minikd/engine/losses.py", "def cross_entropy", "return loss, dlogits"),
    "distillation_loss_doc": ("minikd/engine/losses.py", "def distillation_loss",
                              "soft_weight * T * (p - q) / N + hard_weight"),
    "soft_loss": ("minikd/engine/losses.py", "log_p = log_softmax(student_logits, t)", "soft = -(q * log_p).sum() / n"),
    "t_squared": ("minikd/engine/losses.py", "loss = (soft_weight * t * t) * soft", "loss = (soft_weight * t * t) * soft"),
    "soft_grad": ("minikd/engine/losses.py", "dlogits = xp.exp(log_p)", "dlogits *= soft_weight * t / n"),
    "hard_term": ("minikd/engine/losses.py", "if labels is not None and hard_weight != 0.0:", "dlogits += dhard"),
    "docstring_t2": ("minikd/engine/losses.py", "Why the paper multiplies L_soft by T^2", "d/dz            = soft_weight"),
    "teacher_soft_targets": ("minikd/train.py", "def teacher_soft_targets", "return predict_logits(teacher, x_transfer"),
    "loss_and_grad": ("minikd/train.py", "def loss_and_grad", "return loss, dlogits"),
    "bound_rows": ("minikd/train.py", "def bound_rows_", "return d"),
    "bound_call": ("minikd/train.py", "if cfg.grad_bound is not None:", "bound_rows_(dlogits"),
    "loss_parts": ("minikd/train.py", "def loss_parts", "return xp.stack([hard"),
    "gradcheck_rows": ("minikd/gradcheck.py", "for scale in (3.0, 1e3):", "out.append((what,"),
    "profiles_hw": ("minikd/experiments/profiles.py", "hw = 1.0 if hard_weight is None", "hw = 1.0 if hard_weight is None"),
    "soft_gradient_norms": ("minikd/experiments/figures.py", "def soft_gradient_norms", "return {\"temperatures\""),
}
LINK = re.compile(r'\((\.\./[^)#\s]+)(#L\d+(?:-L\d+)?)? "(\w+)"\)')


def span(path, first, last):
    """1-based (first, last) line numbers of the span, or raise naming what is missing."""
    lines = (ROOT / path).read_text().splitlines()
    try:
        i = next(k for k, line in enumerate(lines) if first in line)
        j = next(k for k in range(i, len(lines)) if last in lines[k])
    except StopIteration:
        raise SystemExit(f"docs/update_links.py: {path} has no line with {first!r} followed by {last!r}: "
                         f"update SPEC in docs/update_links.py") from None
    return i + 1, j + 1


def target(key):
    if key not in SPEC:
        raise SystemExit(f"docs/update_links.py: the link key {key!r} in {DOC.name} is not in SPEC")
    path, first, last = SPEC[key]
    i, j = span(path, first, last)
    return f'(../{path}#L{i}' + (f'-L{j}' if j != i else '') + f' "{key}")'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = DOC.read_text()
    stale = []

    def fix(m):
        new = target(m.group(3))
        if new != m.group(0):
            stale.append(f"{m.group(3)}: {m.group(1)}{m.group(2) or ''} -> {new}")
        return new

    fixed = LINK.sub(fix, text)
    if "--check" in argv:
        if stale:
            print(f"{len(stale)} stale line link(s) in docs/distillation.md (run python docs/update_links.py): "
                  + "; ".join(stale))
            return 1
        return 0
    if fixed != text:
        DOC.write_text(fixed)
    print(f"{len(stale)} link(s) updated in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
