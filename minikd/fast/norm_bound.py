"""Max-norm for the fused step, measuring column lengths only when they could be too long
(point 5 of fused_step.py's docstring)."""
from __future__ import annotations

import numpy as np


class NormBound:
    """optim.max_norm_ for one layer of the fused step, measuring the column
    lengths only when an upper bound on them reaches the limit (see point 5 of
    the module's docstring). The bounds are float64 vectors over the columns.

    ``exact_checks`` / ``steps`` count how often the lengths were measured.
    """

    SLACK = 1e-3       # relative margin for float32 rounding in the products and sums
    MAX_AGE = 200      # measure at least this often, whatever the bounds say

    def __init__(self, limit):
        self.limit = float(limit)
        self.w = None    # bound on each column's length of W
        self.v = None    # bound on each column's length of the velocity Delta_W
        self.age = 0     # steps since the last exact measurement
        self.steps = self.exact_checks = 0

    def apply(self, W, vW, a, d, mu, coef, v_scale=1.0):
        """After W <- W + Delta_W, where Delta_W <- mu Delta_W + coef a^T d and
        Delta_W = v_scale * vW (the velocity as the fused step stores it): rescale
        any column longer than the limit lambda. mu: the momentum; coef: the
        gradient's factor, -(1 - mu) eps (fused_step.py's docstring)."""
        self.steps += 1
        if self.w is not None:
            # float32 sums of n positive terms are within n * 2^-24 of exact: allowed for
            grow = abs(coef) * np.sqrt(float(np.vdot(a, a)) * (1.0 + a.size * 2.0 ** -23)) \
                * np.sqrt(np.einsum("ij,ij->j", d, d).astype(np.float64) * (1.0 + d.shape[0] * 2.0 ** -23))
            self.v = (mu * self.v + grow) * (1.0 + self.SLACK)
            self.w = (self.w + self.v) * (1.0 + self.SLACK)
            self.age += 1
            if self.age < self.MAX_AGE and self.w.max() <= self.limit * (1.0 - self.SLACK):
                return W
        # measure: what optim.max_norm_ does, without temporaries
        self.exact_checks += 1
        sq = np.einsum("ij,ij->j", W, W)
        if sq.max() > self.limit * self.limit:
            scale = np.minimum(1.0, self.limit / np.sqrt(np.maximum(sq, 1e-30))).astype(np.float32)
            W *= scale
            sq = sq * scale * scale
        if self.v is None or self.age >= 8:
            # bounds were skipping: refresh the velocity's too (one more pass, now and then)
            self.v = abs(v_scale) * np.sqrt(np.einsum("ij,ij->j", vW, vW).astype(np.float64)) * (1.0 + self.SLACK)
        self.w = np.sqrt(sq.astype(np.float64)) * (1.0 + self.SLACK)
        self.age = 0
        return W
