"""Softmax cross-entropy and the distillation loss, each with its exact gradient.

Notation: a batch of N examples, C classes, logits z of shape (N, C).

Log-softmax at temperature T
----------------------------
    log p_c = z_c / T - log sum_k exp(z_k / T)

computed as ``s - log(sum(exp(s)))`` with ``s = z/T - max_k(z_k/T)``: the
largest exponent is exp(0) = 1, so nothing overflows, and the smallest merely
underflows to 0, which the sum tolerates. This keeps loss and gradient finite
for |z| up to 1e4 even at T = 0.5.

Hard cross-entropy (T = 1)
--------------------------
    L = -(1/N) sum_n log p_{n, y_n}
    dL/dz_{n,c} = (p_{n,c} - [c == y_n]) / N

Soft cross-entropy against the teacher at temperature T
-------------------------------------------------------
With q = softmax(v / T) from teacher logits v and p = softmax(z / T):

    L_soft = -(1/N) sum_n sum_c q_{n,c} log p_{n,c}
    dL_soft/dz_{n,c} = (1/T) (p_{n,c} - q_{n,c}) / N

since d(log p_c)/dz_j = ([c == j] - p_j) / T and sum_c q_c = 1.

Why the paper multiplies L_soft by T^2 (Hinton et al. 2015, section 2.1):
hold the logits fixed and raise T. With logits of zero mean over the C
classes, exp(z_c / T) ~ 1 + z_c / T once |z_c| << T, so

    p_c ~ (1 + z_c / T) / C        q_c ~ (1 + v_c / T) / C
    (1/T) (p_c - q_c) ~ (z_c - v_c) / (C T^2)

The unscaled soft gradient shrinks as 1/T^2, and T^2 times it tends to
(z_c - v_c) / C, which does not depend on T: with the factor, changing T
leaves the soft term's pull about as strong next to the hard term's. (That
limit is also the paper's "matching logits": minimising (1/2C) sum (z - v)^2.)
So, with p_1 = softmax(z) the student's probabilities at T = 1 (those the
hard term uses) and onehot the labels as one-hot rows:

    distillation_loss = soft_weight * T^2 * L_soft + hard_weight * L_hard
    d/dz            = soft_weight * T (p - q) / N + hard_weight (p_1 - onehot) / N

Both losses average over the batch and their gradients include that 1/N.
Every function keeps the dtype it is given (float64 in, float64 out).
"""
from __future__ import annotations

from .backend import get_xp


def log_softmax(z, temperature=1.0):
    """log softmax(z / T) along the last axis, stable for any magnitude of z.

    z: (N, C) -> (N, C), same dtype.
    """
    s = z / temperature if temperature != 1.0 else z
    s = s - s.max(axis=-1, keepdims=True)
    xp = get_xp(z)
    return s - xp.log(xp.exp(s).sum(axis=-1, keepdims=True))


def softmax(z, temperature=1.0):
    """softmax(z / T) along the last axis. z: (N, C) -> (N, C), same dtype."""
    xp = get_xp(z)
    return xp.exp(log_softmax(z, temperature))


def check_labels(labels, n_classes, n_rows=None):
    """Raise ValueError unless ``labels`` is an integer vector in [0, n_classes).

    On CuPy this reads two numbers back from the device (a synchronisation),
    so the training loop checks its labels once at load time and calls the
    losses with ``check=False`` on every step.
    """
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-d vector of class indices, got shape {tuple(labels.shape)}")
    if n_rows is not None and labels.shape[0] != n_rows:
        raise ValueError(f"{labels.shape[0]} labels for {n_rows} rows of logits: they must match")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.shape[0] == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"label {bad} is outside [0, {n_classes}): the logits have {n_classes} classes")


def _check_logits(logits, name):
    if logits.ndim != 2:
        raise ValueError(f"{name} must have shape (N, C), got {tuple(logits.shape)}")


def _check_temperature(temperature):
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0, got {temperature}")


def cross_entropy(logits, labels, *, check=True):
    """Mean softmax cross-entropy against integer labels.

    logits: (N, C) float; labels: (N,) int in [0, C).
    Returns (loss, dlogits): loss a 0-d array, dlogits (N, C) = (p - onehot) / N.
    """
    if check:
        _check_logits(logits, "logits")
        check_labels(labels, logits.shape[1], logits.shape[0])
    xp = get_xp(logits)
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = xp.arange(n)
    loss = -logp[rows, labels].sum() / n
    dlogits = xp.exp(logp)
    dlogits[rows, labels] -= 1.0
    dlogits /= n
    return loss, dlogits


def distillation_loss(student_logits, teacher_logits, labels=None, *, temperature,
                      hard_weight=1.0, soft_weight=1.0, check=True):
    """Hinton et al. (2015): soft cross-entropy at T (times T^2) plus hard cross-entropy.

        loss = soft_weight * T^2 * mean_n(-sum_c q_c log p_c) + hard_weight * CE(z, labels)

    with p = softmax(student/T), q = softmax(teacher/T). ``labels=None`` drops
    the hard term. student_logits, teacher_logits: (N, C); labels: (N,) or None.
    Returns (loss, dlogits) with dlogits the exact gradient w.r.t.
    student_logits, (N, C), batch mean included:
        soft_weight * T * (p - q) / N + hard_weight * (softmax(z) - onehot) / N
    """
    if check:
        _check_temperature(temperature)
        _check_logits(student_logits, "student_logits")
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                             f"{tuple(student_logits.shape)} must have the same shape")
        if labels is not None:
            check_labels(labels, student_logits.shape[1], student_logits.shape[0])
    t = float(temperature)
    n = student_logits.shape[0]
    log_p = log_softmax(student_logits, t)
    q = softmax(teacher_logits, t).astype(student_logits.dtype, copy=False)
    soft = -(q * log_p).sum() / n
    loss = (soft_weight * t * t) * soft
    xp = get_xp(student_logits)
    dlogits = xp.exp(log_p)
    dlogits -= q
    dlogits *= soft_weight * t / n
    if labels is not None and hard_weight != 0.0:
        hard, dhard = cross_entropy(student_logits, labels, check=False)
        loss = loss + hard_weight * hard
        dhard *= hard_weight
        dlogits += dhard
    return loss, dlogits


def count_errors(logits, labels):
    """Number of rows whose arg-max differs from the label (a 0-d array, no sync)."""
    return (logits.argmax(axis=1) != labels).sum()
