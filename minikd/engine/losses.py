"""Softmax cross-entropy, the distillation loss and logit matching, each with its exact gradient.

Notation
--------
(docs/notation.md has the whole project's; in ASCII here, ell is the script l)

    N rows (examples) indexed by n; C classes indexed by c (c' a second class)
    z  (N, C)  the student's logits          v  (N, C)  the teacher's logits
    T          the temperature
    p = softmax(z / T)  the student's probabilities; p1 = softmax(z), at T = 1
    q = softmax(v / T)  the teacher's probabilities
    ell (N,)   the labels, ell_n in {0, ..., C - 1}; onehot(ell)_{n,c} = [c == ell_n]
    zc, vc     the centred logits, zc = z - mean_c z and vc = v - mean_c v, row by row

Hinton et al. (2015) swap the two letters: their eq. 2 writes q for the
student's softmax and p for the teacher's. Here p is always the student's.

Log-softmax at temperature T
----------------------------
    log p_c = z_c / T - log sum_c' exp(z_c' / T)

computed as ``s - log(sum(exp(s)))`` with ``s = z/T - max_c'(z_c'/T)``: the
largest exponent is exp(0) = 1, so nothing overflows, and the smallest merely
underflows to 0, which the sum tolerates. This keeps loss and gradient finite
for |z| up to 1e4 even at T = 0.5.

Hard cross-entropy (T = 1)
--------------------------
    L = -(1/N) sum_n log p_{n, ell_n}
    dL/dz_{n,c} = (p_{n,c} - [c == ell_n]) / N

With the labels as one-hot rows (``one_hot``) this is the cross-entropy against
a target distribution,

    L = -(1/N) sum_n sum_c onehot(ell)_{n,c} log p_{n,c}      dL/dz = (p - onehot(ell)) / N,

the form the code uses (``targets``): the training loop gathers the one-hot rows
once per epoch, and the soft term below is the same formula with q in their place.
Any rows that sum to 1 may take their place too (label smoothing's, for one).

Soft cross-entropy against the teacher at temperature T
-------------------------------------------------------
With q = softmax(v / T) from teacher logits v and p = softmax(z / T):

    L_soft = -(1/N) sum_n sum_c q_{n,c} log p_{n,c}
    dL_soft/dz_{n,c} = (1/T) (p_{n,c} - q_{n,c}) / N

since d(log p_c)/dz_c' = ([c == c'] - p_c') / T and sum_c q_c = 1.

Why the paper multiplies L_soft by T^2 (Hinton et al. 2015, section 2.1):
hold the logits fixed and raise T. Softmax ignores a constant added to a
row, so write each row around its mean: zc = z - mean_c(z), vc = v - mean_c(v);
p = softmax(zc / T) and q = softmax(vc / T) exactly. Once |zc|, |vc| << T,
exp(zc_c / T) = 1 + zc_c / T + O(zc^2 / T^2) and the row sums to C + O(zc^2 / T^2), so

    p_c = (1 + zc_c / T) / C + ...        q_c = (1 + vc_c / T) / C + ...
    (1/T) (p_c - q_c) = (zc_c - vc_c) / (C T^2) * (1 + O(|zc| / T + |vc| / T))

The unscaled soft gradient shrinks as 1/T^2, and T^2 times it tends to
((z_c - mean z) - (v_c - mean v)) / C, which does not depend on T. The means
matter: the paper's (z_c - v_c) / C assumes zero-mean logits, and a student's
are not; it is off by their difference at every T (docs/distillation.md,
section 5, measures both). So the factor keeps the soft term's pull next to
the hard term's independent of T only once T is large next to the centred
logits (on digits from T = 6 on; from T = 1 to 6 it still grows 5.7x). The
limit is the paper's "matching logits": minimising (1/2C) sum_c (zc_c - vc_c)^2,
the squared distance between the centred logits.

So, with p1 = softmax(z) the student's probabilities at T = 1 (those the
hard term uses):

    distillation_loss = soft_weight * T^2 * L_soft + hard_weight * L_hard
    d/dz            = soft_weight * T (p - q) / N + hard_weight (p1 - onehot(ell)) / N

Logit matching (Ba & Caruana 2014)
----------------------------------
That limit, as a loss of its own (``logit_matching``), the centred logits
compared row by row:

    L_match = (1/N) sum_n (1/2C) sum_c (zc_{n,c} - vc_{n,c})^2        dL_match/dz = (zc - vc) / (C N)

It needs no temperature. Its gradient is the T -> infinity limit of T^2 times
the soft gradient, T (p - q) / N, which differs from (zc - vc) / (C N) by a
relative error of order |zc| / T + |vc| / T (the values differ: T^2 L_soft
grows without bound). Ba & Caruana regress the student's logits on the teacher's,
uncentred; centring drops each row's constant, which a softmax cannot see.

All three losses average over the batch and their gradients include that 1/N.
Every function keeps the dtype it is given (float64 in, float64 out).
"""
from __future__ import annotations

from typing import Any

from .backend import Array, get_xp


def log_softmax(z: Array, temperature: float = 1.0, *, out: Array | None = None) -> Array:
    """log softmax(z / T) along the last axis, stable for any magnitude of z.

    z: (N, C) -> (N, C), same dtype; written into ``out`` if given.
    Buffer: ``out`` is the training loop's log-p rows (via ``distillation_parts``), read once per epoch for the KL part.
    """
    s = z / temperature if temperature != 1.0 else z
    s = s - s.max(axis=-1, keepdims=True)
    xp = get_xp(z)
    return xp.subtract(s, xp.log(xp.exp(s).sum(axis=-1, keepdims=True)), out=out)


def softmax(z: Array, temperature: float = 1.0) -> Array:
    """softmax(z / T) along the last axis. z: (N, C) -> (N, C), same dtype."""
    xp = get_xp(z)
    return xp.exp(log_softmax(z, temperature))


def check_labels(labels: Array, n_classes: int, n_rows: int | None = None) -> None:
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


def _check_logits(logits: Array, name: str) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{name} must have shape (N, C), got {tuple(logits.shape)}")


def _check_same_shape(teacher_logits: Array, student_logits: Array) -> None:
    if tuple(teacher_logits.shape) != tuple(student_logits.shape):
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                         f"{tuple(student_logits.shape)} must have the same shape")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0, got {temperature}")


def one_hot(labels: Array, n_classes: int, dtype: Any = "float32") -> Array:
    """(N,) integer labels ell -> (N, C) rows onehot(ell)_{n,c} = [c == ell_n], in ``dtype``."""
    xp = get_xp(labels)
    return (labels[:, None] == xp.arange(n_classes)[None, :]).astype(dtype)


def _check_targets(targets: Array, logits: Array) -> None:
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(f"target rows {tuple(targets.shape)} and logits {tuple(logits.shape)} "
                         f"must have the same shape")
    if targets.dtype.kind != "f":
        raise ValueError(f"target rows must be floats (e.g. one_hot(labels, C)), got dtype {targets.dtype}")


def cross_entropy(logits: Array, labels: Array, *, check: bool = True,
                  out: Array | None = None) -> tuple[Array, Array]:
    """Mean softmax cross-entropy against integer labels or target rows.

    logits: (N, C) float; labels: (N,) int in [0, C), or target rows (N, C) in the logits'
    dtype that sum to 1: their one-hot rows (``one_hot``; the training loop passes these), or others.
    Returns (loss, dlogits): loss a 0-d array, dlogits (N, C) = (p1 - targets) / N.
    Buffer: ``out`` (0-d) is the training loop's cell of its table of batch losses: no step sums or reads a loss.
    """
    if check:
        _check_logits(logits, "logits")
        if labels.ndim == 2:
            _check_targets(labels, logits)
        else:
            check_labels(labels, logits.shape[1], logits.shape[0])
    xp = get_xp(logits)
    n = logits.shape[0]
    targets = labels if labels.ndim == 2 else one_hot(labels, logits.shape[1], logits.dtype)
    log_p1 = log_softmax(logits)
    # -(1/N) sum_n sum_c targets_{n,c} log p1_{n,c}; one-hot rows multiply all but log p1_{n, ell_n} by 0
    loss = xp.divide((targets * log_p1).sum(), -n, out=out)
    dlogits = xp.exp(log_p1)            # p1 = softmax(z)
    dlogits -= targets
    dlogits /= n
    return loss, dlogits


def distillation_loss(student_logits: Array, teacher_logits: Array, labels: Array | None = None, *,
                      temperature: float, hard_weight: float = 1.0, soft_weight: float = 1.0,
                      check: bool = True) -> tuple[Array, Array]:
    """Hinton et al. (2015): soft cross-entropy at T (times T^2) plus hard cross-entropy.

        loss = soft_weight * T^2 * mean_n(-sum_c q_c log p_c) + hard_weight * CE(z, labels)

    with p = softmax(student/T), q = softmax(teacher/T). ``labels=None`` drops
    the hard term. student_logits, teacher_logits: (N, C); labels: (N,) or None.
    Returns (loss, dlogits) with dlogits the exact gradient w.r.t.
    student_logits, (N, C), batch mean included:
        soft_weight * T * (p - q) / N + hard_weight * (softmax(z) - onehot(ell)) / N

    (``distillation_parts`` computes it, from q.) No buffers.
    """
    if check:
        _check_temperature(temperature)
        _check_logits(student_logits, "student_logits")
        _check_same_shape(teacher_logits, student_logits)
        if labels is not None:
            check_labels(labels, student_logits.shape[1], student_logits.shape[0])
    q = softmax(teacher_logits, temperature).astype(student_logits.dtype, copy=False)
    parts, dlogits = distillation_parts(student_logits, q, labels, temperature=temperature,
                                        hard_weight=hard_weight, soft_weight=soft_weight)
    return parts[0], dlogits


def distillation_parts(student_logits: Array, q: Array, labels: Array | None = None, *, temperature: float,
                       hard_weight: float = 1.0, soft_weight: float = 1.0, out: Array | None = None,
                       log_p_out: Array | None = None) -> tuple[Array, Array]:
    """The distillation loss with its hard part, and its gradient, in one pass.

    q: the teacher's softmax(v / T), (N, C) in the student's dtype (the training
    loop computes it once: it does not change). labels: (N,) int or one-hot rows
    (N, C), or None (no hard term).
    Returns (parts, dlogits): parts a (2,) array [loss, hard cross-entropy] (0
    without labels), loss being ``distillation_loss``'s; dlogits: as there.
    Buffers: ``out`` (2,) is the training loop's row of its table of batch losses, written through the
    0-d views ``parts[i, ...]`` (NumPy's ``parts[i]`` is a copy); ``log_p_out`` (N, C) its log-p rows (``kl_rows``).
    """
    T = float(temperature)
    n = student_logits.shape[0]
    xp = get_xp(student_logits)
    parts = out if out is not None else xp.empty(2, dtype=student_logits.dtype)
    log_p = log_softmax(student_logits, T, out=log_p_out)
    soft = (q * log_p).sum() / -n
    loss = (soft_weight * T * T) * soft
    dlogits = xp.exp(log_p)             # p = softmax(z / T)
    dlogits -= q
    dlogits *= soft_weight * T / n
    if labels is not None and hard_weight != 0.0:
        hard, dhard = cross_entropy(student_logits, labels, check=False, out=parts[1, ...])
        if hard_weight != 1.0:
            # Skipped at weight 1 (the default): times 1 changes no bit, and on a GPU the two products would
            # be two more kernel launches a step (tests/test_launches.py holds the distilled step to a limit).
            hard, dhard = hard_weight * hard, hard_weight * dhard
        xp.add(loss, hard, out=parts[0, ...])
        dlogits += dhard
    else:
        parts[0], parts[1] = loss, 0.0
    return parts, dlogits


def logit_matching(student_logits: Array, teacher_logits: Array, *, check: bool = True,
                   out: Array | None = None) -> tuple[Array, Array]:
    """Squared distance between the centred logits (Ba & Caruana 2014), and its gradient.

    student_logits z, teacher_logits v: (N, C); zc, vc: each row minus its mean over the classes.

        L = (1/N) sum_n (1/2C) sum_c (zc_{n,c} - vc_{n,c})^2

    Derivative, index notation: zc_{n,c} = z_{n,c} - (1/C) sum_c' z_{n,c'} depends on z_{n,c'}
    through z_{n,c} itself and through the row mean: dzc_{n,c}/dz_{n,c'} = [c == c'] - 1/C
    (vc does not depend on z). So

        dL/dz_{n,c'} = (1/(N C)) sum_c (zc_{n,c} - vc_{n,c}) ([c == c'] - 1/C)
                     = (1/(N C)) ((zc_{n,c'} - vc_{n,c'}) - (1/C) sum_c (zc_{n,c} - vc_{n,c}))
                     = (zc_{n,c'} - vc_{n,c'}) / (N C)      since a centred row sums to 0.

    Matrix form: dL/dz = (zc - vc) / (C N), (N, C): the T -> infinity limit of
    ``distillation_loss``'s soft gradient with its T^2, T (p - q) / N (module docstring).
    Ba & Caruana regress on the raw logits; centring drops each row's constant, which a softmax
    cannot see, so this is the limit for logits that are not zero-mean too.
    The teacher's logits are cast to the student's dtype; loss and gradient are in that dtype.
    Returns (loss, dlogits): loss a 0-d array.
    Buffer: ``out`` (0-d), as in ``cross_entropy``: a cell of the training loop's table of batch losses.
    """
    if check:
        _check_logits(student_logits, "student_logits")
        _check_same_shape(teacher_logits, student_logits)
    xp = get_xp(student_logits)
    n, n_classes = student_logits.shape
    z, v = student_logits, teacher_logits.astype(student_logits.dtype, copy=False)
    zc = z - z.mean(axis=1, keepdims=True)
    vc = v - v.mean(axis=1, keepdims=True)
    diff = zc - vc
    loss = xp.divide((diff * diff).sum(), 2 * n_classes * n, out=out)
    return loss, diff / (n_classes * n)


def kl_rows(q: Array, log_q: Array, log_p: Array) -> Array:
    """KL(q_n || p_n) = sum_c q_nc (log q_nc - log p_nc) of each row: (N, C) -> (N,).

    With p = softmax(z / T) and q = softmax(v / T), soft_weight T^2 times its
    batch mean is the part of the distillation loss that falls to 0 as the
    student matches the teacher: the soft term is soft_weight T^2 (H(q) + KL),
    and the teacher's entropy H(q) stays.
    """
    return (q * (log_q - log_p)).sum(axis=1)


def count_errors(logits: Array, labels: Array) -> Array:
    """Number of rows whose arg-max differs from the label (a 0-d array, no sync)."""
    return (logits.argmax(axis=1) != labels).sum()
