"""The teacher's augmentation: random translations ("jitter").

Inputs and augmentation
-----------------------
``to_float`` scales pixels to [0, 1] float32 (x / 255) and flattens each image
to a row: (N, H*W). No mean subtraction or whitening: the 2012/2015 MNIST nets
took raw intensities.

The teacher's "jitter" is a translation by up to 2 pixels in each direction with
zero fill, drawn afresh for every image of every batch::

    out[i, y, x] = images[i, y - dy_i, x - dx_i]   (0 where that is outside)

so a positive ``dy`` moves the digit down and a positive ``dx`` moves it right.
"""
from __future__ import annotations

import numpy as np

from ..engine.backend import get_xp


def translate(images, shifts, out=None, *, max_shift: int = 2):
    """Shift each image by its own (dy, dx), filling with zeros.

    images: (N, H, W) on numpy or cupy (any dtype, kept).
    shifts: (N, 2) integers (dy, dx) with |dy|, |dx| <= max_shift; on the host
            or on the images' device.
    out:    optional (N, H, W) array to write the result into (a convenience:
            the gather itself still makes one temporary).
    Returns (N, H, W): out[i, y, x] = images[i, y - dy_i, x - dx_i], 0 outside.

    How: pad every image with a border of p = max_shift zeros, (N, H+2p, W+2p).
    The (2p+1)^2 windows of size H x W inside a padded image are all views of
    it -- window (a, b) starts at row a, column b -- so ``as_strided`` gives
    them as one (N, 2p+1, 2p+1, H, W) array without copying. Image i wants
    window (p - dy_i, p - dx_i); one fancy-indexing gather picks them all.
    That is the same few kernels on a GPU whatever the batch, with no Python
    loop over images or shifts.
    """
    xp = get_xp(images)
    n, h, w = images.shape
    p = int(max_shift)
    shifts = xp.asarray(shifts)
    if shifts.shape != (n, 2):
        raise ValueError(f"shifts must have shape ({n}, 2), got {tuple(shifts.shape)}")
    if xp is np and n and int(np.abs(shifts).max()) > p:
        # fancy indexing would wrap an out-of-range window index around; on a
        # GPU this check would cost a device-to-host sync, so callers keep to it
        raise ValueError(f"shifts must lie in [-{p}, {p}], got up to {int(np.abs(shifts).max())}")
    padded = xp.zeros((n, h + 2 * p, w + 2 * p), dtype=images.dtype)
    padded[:, p:p + h, p:p + w] = images
    s_img, s_row, s_col = padded.strides
    windows = xp.lib.stride_tricks.as_strided(
        padded, shape=(n, 2 * p + 1, 2 * p + 1, h, w),
        strides=(s_img, s_row, s_col, s_row, s_col))
    picked = windows[xp.arange(n), p - shifts[:, 0], p - shifts[:, 1]]   # (N, H, W)
    if out is None:
        return picked
    out[...] = picked
    return out


def random_shifts(rng, n: int, max_shift: int = 2):
    """(n, 2) integers, each uniform in [-max_shift, max_shift], from ``rng``
    (a numpy or cupy Generator; the result lives where the generator does)."""
    return rng.integers(-max_shift, max_shift + 1, size=(n, 2))


def jitter(images, rng, max_shift: int = 2, out=None):
    """The teacher's augmentation: translate each image of (N, H, W) ``images``
    by its own random (dy, dx) in [-max_shift, max_shift]^2, zero fill."""
    shifts = random_shifts(rng, images.shape[0], max_shift)
    return translate(images, shifts, out=out, max_shift=max_shift)
