"""Section 3's transfer sets (a class left out, or only some kept) and the
bias-shift correction of the "mythical digit".

Bias-shift correction (the mythical digit)
------------------------------------------
A student distilled without any 3 learns a class-3 bias that is too low. Adding
a constant ``s`` to the logits of the classes in a set S (raising their
biases by ``s``) changes each row's prediction in one way only: with

    a_n = max_{c in S} z_{n,c},   b_n = max_{c not in S} z_{n,c},

row n is predicted in S exactly when a_n + s > b_n, i.e. when s > t_n = b_n - a_n.
So the number of errors as a function of s is a step function that changes
only at the N thresholds t_n; sorting them gives the whole curve exactly, in
O(N log N), with no grid of trial shifts. ``best_bias_shift`` picks the
middle of the interval with the fewest errors (on ties, the smallest
correction) -- computed on a validation split held out of the training set,
never on the test set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def filter_transfer_set(labels, *, drop=None, keep=None):
    """Row indices (host int64, in the original order) of the transfer set.

    labels: (N,) int. ``drop``: classes removed entirely (images, hard labels
    and soft targets all go); ``keep``: the only classes left. Give exactly one.
    The same indices select the images, the labels and the teacher's logits, so
    they cannot fall out of step.
    """
    if (drop is None) == (keep is None):
        raise ValueError("give exactly one of drop= or keep=")
    labels = np.asarray(labels)
    classes = np.asarray(sorted(set(int(c) for c in (drop if drop is not None else keep))))
    present = np.isin(labels, classes)
    missing = [int(c) for c in classes if not np.any(labels == c)]
    if missing:
        raise ValueError(f"class(es) {missing} do not occur in the training labels "
                         f"(classes present: {sorted(set(labels.tolist()))})")
    rows = np.flatnonzero(~present if drop is not None else present)
    if rows.size == 0:
        raise ValueError("the transfer set would be empty")
    return rows


def class_counts(labels, n_classes):
    return np.bincount(np.asarray(labels), minlength=n_classes).astype(int).tolist()


def apply_bias_shift(logits, classes, shift):
    """Logits (N, C) with ``shift`` added to the columns in ``classes``
    (the same as adding it to those output biases). Returns a new array."""
    out = np.array(logits, dtype=np.float64, copy=True)
    out[:, list(classes)] += shift
    return out


@dataclass
class ShiftCurve:
    """Errors as an exact function of the shift s added to the logits of ``classes``.

    edges: (K,) sorted distinct thresholds t_n; errors: (K + 1,) with errors[i]
    the count for s in (edges[i-1], edges[i]] (edges[-1] = -inf, edges[K] = +inf).
    """
    edges: np.ndarray
    errors: np.ndarray
    n: int

    @classmethod
    def fit(cls, logits, labels, classes):
        z = np.asarray(logits, dtype=np.float64)
        y = np.asarray(labels)
        in_s = np.zeros(z.shape[1], dtype=bool)
        in_s[list(classes)] = True
        if in_s.all() or not in_s.any():
            raise ValueError(f"shifted classes {sorted(classes)} must be a proper subset of "
                             f"the {z.shape[1]} classes")
        ids_s, ids_o = np.flatnonzero(in_s), np.flatnonzero(~in_s)
        z_s, z_o = z[:, ids_s], z[:, ids_o]
        a, b = z_s.max(axis=1), z_o.max(axis=1)
        right_in = ids_s[z_s.argmax(axis=1)] == y       # right if predicted inside S
        right_out = ids_o[z_o.argmax(axis=1)] == y      # right if predicted outside S
        t = b - a                                       # row moves into S once s > t
        edges, inverse = np.unique(t, return_inverse=True)
        # Crossing an edge moves its rows into S: each gains an error if it was
        # right outside S, and loses one if it is right inside S.
        delta = np.bincount(inverse, weights=right_out.astype(float) - right_in.astype(float),
                            minlength=edges.size)
        base = int(np.sum(~right_out))                  # s -> -inf: nothing predicted in S
        errors = base + np.concatenate([[0.0], np.cumsum(delta)])
        return cls(edges, np.rint(errors).astype(np.int64), int(len(y)))

    def errors_at(self, shift):
        """Error count at ``shift`` (a float or an array of floats)."""
        return self.errors[np.searchsorted(self.edges, shift, side="left")]

    def best(self, margin=1.0):
        """(shift, errors): the middle of the interval with the fewest errors.

        Ties go to the interval closest to 0 (the smallest correction), and to 0
        itself when no correction is needed. An unbounded best interval gives
        its finite end -/+ ``margin``.
        """
        lo = np.concatenate([[-np.inf], self.edges])
        hi = np.concatenate([self.edges, [np.inf]])
        best = np.flatnonzero(self.errors == self.errors.min())
        mids = np.where(np.isinf(lo[best]), hi[best] - margin,
                        np.where(np.isinf(hi[best]), lo[best] + margin, (lo[best] + hi[best]) / 2))
        has_zero = (lo[best] < 0) & (0 <= hi[best])
        if has_zero.any():
            return 0.0, int(self.errors[best[has_zero][0]])
        i = int(np.argmin(np.abs(mids)))
        return float(mids[i]), int(self.errors[best[i]])


def best_bias_shift(logits, labels, classes):
    """(shift, errors) minimising the errors of (logits, labels) -- see ShiftCurve.best."""
    return ShiftCurve.fit(logits, labels, classes).best()


def per_class_errors(logits, labels, n_classes):
    """(C,) misclassified rows per true class."""
    y = np.asarray(labels)
    wrong = np.asarray(logits).argmax(axis=1) != y
    return np.bincount(y[wrong], minlength=n_classes).astype(int)


def shift_report(logits, labels, classes, shift, focus):
    """Errors of (logits, labels) after adding ``shift`` to ``classes``:
    overall, on the ``focus`` classes (the ones left out of the transfer set),
    and per class."""
    z = apply_bias_shift(logits, classes, shift)
    per = per_class_errors(z, labels, z.shape[1])
    y = np.asarray(labels)
    return {"shift": float(shift), "errors": int(per.sum()), "n": int(len(y)),
            "errors_on_focus": int(per[list(focus)].sum()),
            "n_focus": int(np.isin(y, list(focus)).sum()),
            "predicted_focus": int(np.isin(z.argmax(axis=1), list(focus)).sum()),
            "per_class": per.tolist()}


def shift_grid_curve(curve, lo, hi, n=401):
    s = np.linspace(lo, hi, n)
    return {"shifts": s.round(4).tolist(), "error_rate": (curve.errors_at(s) / curve.n).round(5).tolist()}


def analyse(spec, val_logits, y_val, test_logits, y_test):
    """Bias shifts chosen on validation (honest), best on test (information),
    the paper's; test errors at each, overall, on the focus classes, per class."""
    shifted, focus = spec["shifted"], spec["focus"]
    val_curve = ShiftCurve.fit(val_logits, y_val, shifted)
    test_curve = ShiftCurve.fit(test_logits, y_test, shifted)
    s_val, _ = val_curve.best()
    s_test, _ = test_curve.best()
    test = {"none": shift_report(test_logits, y_test, shifted, 0.0, focus),
            "validation": shift_report(test_logits, y_test, shifted, s_val, focus),
            "test_optimal": shift_report(test_logits, y_test, shifted, s_test, focus)}
    if spec["paper"]:
        test["paper_shift"] = shift_report(test_logits, y_test, shifted, spec["paper"]["shift"], focus)
    span = max(10.0, 1.5 * abs(s_val), 1.5 * abs(s_test), 1.5 * abs(spec["paper"]["shift"]) if spec["paper"] else 0)
    return {"shift_validation": s_val, "shift_test_optimal": s_test,
            "validation": {"none": shift_report(val_logits, y_val, shifted, 0.0, focus),
                           "chosen": shift_report(val_logits, y_val, shifted, s_val, focus)},
            "test": test,
            "curves": {"validation": shift_grid_curve(val_curve, -span, span),
                       "test": shift_grid_curve(test_curve, -span, span)}}
