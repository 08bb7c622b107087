#!/usr/bin/env python
"""Keep the line links of the docs pointing at the code they name.

Each link to code in a doc of DOCS carries a key as its title,
``[text](../minikd/engine/losses.py#L143-L145 "soft_loss")``; the doc's SPEC
says, for each key, the file and the first and last lines of the span (by
their text). Run

    python docs/update_links.py           # rewrite the line numbers in place
    python docs/update_links.py --check   # exit 1, naming the stale links, if any moved

after editing the linked files. tests/test_docs_links.py runs --check. A line
link without a key (``(../x.py#L3)``) is an error too: nothing would keep it current.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# key: (file, text on the span's first line, text on its last line, searched from the first)
DISTILLATION = {
    "log_softmax": ("minikd/engine/losses.py", "def log_softmax", "xp.log(xp.exp(s).sum(axis=-1, keepdims=True))"),
    "softmax": ("minikd/engine/losses.py", "def softmax(", "return xp.exp(log_softmax"),
    "cross_entropy": ("minikd/engine/losses.py", "def cross_entropy", "return loss, dlogits"),
    "distillation_loss_doc": ("minikd/engine/losses.py", "def distillation_loss",
                              "soft_weight * T * (p - q) / N + hard_weight"),
    "soft_loss": ("minikd/engine/losses.py", "log_p = log_softmax(student_logits, T", "soft = (q * log_p).sum() / -n"),
    "t_squared": ("minikd/engine/losses.py", "loss = (soft_weight * T * T) * soft",
                  "loss = (soft_weight * T * T) * soft"),
    "soft_grad": ("minikd/engine/losses.py", "dlogits = xp.exp(log_p)", "dlogits *= soft_weight * T / n"),
    "hard_term": ("minikd/engine/losses.py", "if labels is not None and hard_weight != 0.0:", "dlogits += dhard"),
    "docstring_t2": ("minikd/engine/losses.py", "Why the paper multiplies L_soft by T^2",
                     "d/dz            = soft_weight"),
    "teacher_soft_targets": ("minikd/train.py", "def teacher_logits",
                             "return predict_logits(teacher, x_transfer"),
    "loss_and_grad": ("minikd/train.py", "def loss_and_grad", "return out[:2] if self.soft_logits"),
    "epoch_rows": ("minikd/train.py", "def epoch_rows", "return rows"),
    "bound_rows": ("minikd/train.py", "def bound_rows_", "return d"),
    "bound_call": ("minikd/train.py", "if cfg.grad_bound is not None:", "bound_rows_(dlogits"),
    "kl_rows": ("minikd/engine/losses.py", "def kl_rows", "return (q * (log_q - log_p)).sum(axis=1)"),
    "gradcheck_rows": ("minikd/gradcheck.py", "def distillation_cases", "return cases"),
    "gradcheck_h": ("minikd/engine/gradcheck.py", "Two errors compete in that estimate", "is an error of order 1)."),
    "profiles_hw": ("minikd/profiles.py", "hw = 1.0 if hard_weight is None",
                    "hw = 1.0 if hard_weight is None"),
    "profiles_warmup": ("minikd/profiles.py", "DISTILL_WARMUP = 7", "DISTILL_WARMUP = 7"),
    "soft_gradient_norms": ("minikd/experiments/figures.py", "def soft_gradient_norms", "return {\"temperatures\""),
}

BACKPROP = {
    "contract": ("minikd/engine/layers.py", "Every layer follows one contract",
                 "accumulating) and returns dL/d(input)."),
    "dense_doc": ("minikd/engine/layers.py", "dL/dW = x.T @ dy", "dL/dx = dy @ W.T"),
    "dense_forward": ("minikd/engine/layers.py", "self.x = x", "return x @ self.params[\"W\"] + self.params[\"b\"]"),
    "dense_dw": ("minikd/engine/layers.py", "self.grads[\"W\"] = self.x.T @ dy", "self.grads[\"W\"] = self.x.T @ dy"),
    "dense_db": ("minikd/engine/layers.py", "self.grads[\"b\"] = dy.sum(axis=0)", "self.grads[\"b\"] = dy.sum(axis=0)"),
    "dense_dx": ("minikd/engine/layers.py", "return dy @ self.params[\"W\"].T", "return dy @ self.params[\"W\"].T"),
    "relu": ("minikd/engine/layers.py", "class ReLU(Layer):", "return dy * (self.y > 0)"),
    "dropout_forward": ("minikd/engine/layers.py", "if not train or self.rate == 0.0:", "return x * self.mask"),
    "dropout_backward": ("minikd/engine/layers.py", "return dy if self.mask is None else dy * self.mask",
                         "return dy if self.mask is None else dy * self.mask"),
    "bernoulli_mask": ("minikd/engine/layers.py", "def bernoulli_mask", "return out"),
    "log_softmax": ("minikd/engine/losses.py", "def log_softmax", "xp.log(xp.exp(s).sum(axis=-1, keepdims=True))"),
    "cross_entropy": ("minikd/engine/losses.py", "def cross_entropy", "return loss, dlogits"),
    "sequential": ("minikd/engine/layers.py", "class Sequential(Layer):", "return dy"),
    "mlp": ("minikd/engine/layers.py", "def mlp(", "return Sequential(*layers)"),
    "reference_step": ("minikd/train.py", "class ReferenceStep", "self.optimizer.step()"),
    "momentum_step": ("minikd/engine/optim.py", "def step(self)", "max_norm_(layer.params[\"W\"], limit)"),
    "schedules": ("minikd/engine/optim.py", "class ExponentialDecay",
                  "return self.start + (self.end - self.start) * frac"),
    "max_norm": ("minikd/engine/optim.py", "def max_norm_", "return W"),
    "layer_errors": ("minikd/engine/gradcheck.py", "def layer_errors", "return errors"),
}

DOCS = {ROOT / "docs" / "distillation.md": DISTILLATION, ROOT / "docs" / "backprop.md": BACKPROP}

LINK = re.compile(r'\((\.\./[^)#\s]+)(#L\d+(?:-L\d+)?)? "(\w+)"\)')
UNKEYED = re.compile(r'\(\.\./[^)\s]+#L\d+(?:-L\d+)?\)')


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


def target(key, spec, doc_name="distillation.md"):
    """The link ``(../file#Li-Lj "key")`` that ``key`` of ``spec`` names today."""
    if key not in spec:
        raise SystemExit(f"docs/update_links.py: the link key {key!r} in {doc_name} is not in its SPEC")
    path, first, last = spec[key]
    i, j = span(path, first, last)
    return f'(../{path}#L{i}' + (f'-L{j}' if j != i else '') + f' "{key}")'


def refresh(text, spec, doc_name):
    """(text with every keyed link current, ['key: old -> new' for each stale one], [unkeyed links])."""
    stale = []

    def fix(m):
        new = target(m.group(3), spec, doc_name)
        if new != m.group(0):
            stale.append(f"{m.group(3)}: {m.group(1)}{m.group(2) or ''} -> {new}")
        return new

    return LINK.sub(fix, text), stale, UNKEYED.findall(text)


def main(argv=None, docs=None):
    argv = sys.argv[1:] if argv is None else argv
    docs = DOCS if docs is None else docs
    failed = False
    for doc, spec in docs.items():
        text = Path(doc).read_text()
        fixed, stale, unkeyed = refresh(text, spec, Path(doc).name)
        if unkeyed:
            print(f"{len(unkeyed)} line link(s) without a key in {Path(doc).name} (give each a key from "
                  f"docs/update_links.py's SPEC as its title): " + "; ".join(unkeyed))
            failed = True
        if "--check" in argv:
            if stale:
                print(f"{len(stale)} stale line link(s) in {Path(doc).name} (run python docs/update_links.py): "
                      + "; ".join(stale))
                failed = True
            continue
        if fixed != text:
            Path(doc).write_text(fixed)
        print(f"{len(stale)} link(s) updated in {doc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
