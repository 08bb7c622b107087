"""How closely do saved students copy their teacher?

    python scripts/agreement.py --out runs/final            # teacher.npz vs every student in runs/final
    python scripts/agreement.py --teacher T.npz S1.npz S2.npz

For the teacher and each model it prints, on the training and on the test
images (un-jittered, eval mode): the errors, the share of images where the
model's class equals the teacher's, and the RMS difference between the
model's and the teacher's centred logits (each row minus its mean, since a
softmax ignores a constant shift). Reads checkpoints with pickling disabled
and never changes them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


from ..data import to_float
from ..train import predict_logits
from .args import fail, load_data_or_exit
from ..checkpoints import CheckpointError, check_fits, load_model
from .report import print_table


def load_for(path, data):
    """The network in the checkpoint ``path``, refused unless it takes ``data``'s images and classes."""
    model, cfg, _ = load_model(path)
    check_fits(path, cfg, data.n_features, data.n_classes)
    return model


def centred(z):
    return z - z.mean(axis=1, keepdims=True)


def compare(logits, teacher_logits, labels):
    return {
        "errors": int((logits.argmax(1) != labels).sum()),
        "agree": float((logits.argmax(1) == teacher_logits.argmax(1)).mean()),
        "rms_logit_diff": float(np.sqrt(((centred(logits) - centred(teacher_logits)) ** 2).mean())),
        "rms_logit": float(np.sqrt((centred(logits) ** 2).mean())),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="student checkpoints (.npz); default: every *_seed*.npz in --out")
    p.add_argument("--out", default=None, help="a reproduce.py output folder holding teacher.npz and students")
    p.add_argument("--teacher", default=None, help="the teacher checkpoint (default: <--out>/teacher.npz)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "idx", "digits"])
    p.add_argument("--data-dir", default=None, help="folder with the four IDX files (else MINIKD_DATA_DIR, "
                                                   "then the download cache)")
    args = p.parse_args(argv)
    if args.teacher is None and args.out is None:
        fail("pass --out DIR (a reproduce.py output folder) or --teacher PATH")
    teacher_path = Path(args.teacher) if args.teacher else Path(args.out) / "teacher.npz"
    models = [Path(m) for m in args.models]
    if not models and args.out:
        models = sorted(Path(args.out).glob("*_seed*.npz"))
    if not models:
        fail(f"no student checkpoints given and none (*_seed*.npz) in --out {args.out}")

    data = load_data_or_exit(args)
    splits = {"train": (to_float(data.x_train, np), np.asarray(data.y_train)),
              "test": (to_float(data.x_test, np), np.asarray(data.y_test))}
    try:
        teacher = load_for(teacher_path, data)
        loaded = [(m, load_for(m, data)) for m in models]
    except CheckpointError as exc:
        fail(str(exc))
    teacher_logits = {k: predict_logits(teacher, x) for k, (x, _) in splits.items()}
    rows = [("model", "split", "errors", "agree w/ teacher", "RMS logit diff", "RMS logit")]
    for path, model in [(teacher_path, None)] + loaded:
        for split, (x, y) in splits.items():
            logits = teacher_logits[split] if model is None else predict_logits(model, x)
            r = compare(logits, teacher_logits[split], y)
            rows.append((path.name, split, r["errors"], f"{r['agree']:.4f}", f"{r['rms_logit_diff']:.3f}",
                         f"{r['rms_logit']:.2f}"))
    print_table(rows, align="<<>>>>")


if __name__ == "__main__":
    raise SystemExit(main())
