"""The one report writer: what a command shows and keeps besides checkpoints.

    print_table  a table on stdout, columns padded, ruled above and below the header
    write_csv    the same rows as a CSV file
    write_json   results.json: strict JSON (RFC 8259), a non-finite number written as null
    pyplot       matplotlib on the Agg backend (no display needed)
    finish_axes  the grid, legend and title every chart shares
    save_figure  a figure laid out and written as PNG, atomically, then freed

Every file goes through checkpoints.atomic_write_bytes: written to a temporary
beside it and renamed, so a killed run never leaves half a file.
"""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from ..checkpoints import atomic_write_bytes, atomic_write_text


# --------------------------------------------------------------------------- tables
def table_lines(rows, align="<"):
    """``rows`` (the header first) as text lines: a rule, the header, a rule, the rows, a rule.

    align: "<" (left) or ">" (right) for every column, or one of them per column.
    Columns are two spaces apart; no line ends in spaces.
    """
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    aligns = align * len(widths) if len(align) == 1 else align

    def line(row):
        cells = zip(row, widths, aligns, strict=True)   # a row of another length is a caller's error
        return "  ".join(c.ljust(w) if a == "<" else c.rjust(w) for c, w, a in cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [rule, line(rows[0]), rule, *map(line, rows[1:]), rule]


def print_table(rows, align="<"):
    print("\n".join(table_lines(rows, align)))


# --------------------------------------------------------------------------- CSV
def write_csv(path, header, rows):
    """One CSV line for ``header``, then one per row (csv module quoting)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- JSON
def strict_json_ready(obj, where="", found=None):
    """``obj`` with every NaN or infinite float (Python or NumPy) replaced by None.

    found: a dict that collects {JSON path: "nan" | "inf" | "-inf"} of what was
    replaced, so a reader sees why a value is null.
    """
    if isinstance(obj, dict):
        return {k: strict_json_ready(v, f"{where}.{k}" if where else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_ready(v, f"{where}[{i}]", found) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return strict_json_ready(obj.tolist(), where, found)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        if not math.isfinite(value):
            if found is not None:
                found[where or "(top)"] = "nan" if value != value else ("inf" if value > 0 else "-inf")
            return None
        return value
    return obj


def write_json(path, obj):
    """Strict JSON (RFC 8259: no NaN or Infinity): a non-finite number is written
    as null, and the top-level ``null_because_not_finite`` lists each one's path
    and value."""
    found = {}
    clean = strict_json_ready(obj, found=found)
    if found and isinstance(clean, dict):
        clean["null_because_not_finite"] = found
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=False, allow_nan=False) + "\n")


# --------------------------------------------------------------------------- figures
def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: only plotting needs it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def finish_axes(ax, title=None):
    """The look every chart shares: a light grid, a small legend, and the title if given."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)


def save_figure(fig, path, dpi=110, *, tight=True):
    """Lay the figure out (``tight_layout``; tight=False: it laid itself out), write it as PNG
    atomically, then free it."""
    if tight:
        fig.tight_layout()
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    pyplot().close(fig)
