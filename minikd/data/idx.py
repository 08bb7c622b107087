"""The IDX file format of MNIST, read with every check a damaged file needs.

The IDX format (big-endian)
---------------------------
::

    bytes 0-1   0x00 0x00
    byte  2     data type code; 0x08 = unsigned byte (the only one read here)
    byte  3     number of dimensions, ndim
    4*ndim      the size of each dimension, uint32
    the rest    prod(sizes) values, row-major

Images are (N, H, W) uint8 (MNIST: N x 28 x 28, 0 = background), labels (N,).

Every problem a user can cause (a missing, truncated or foreign file, a failed
download) raises ``DataError`` whose text is one short message naming the file,
value or flag and what to do. Scripts print ``str(err)`` and exit with status 1.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

IDX_UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


class DataError(Exception):
    """Data that cannot be used. ``str(err)`` is one short message for the user:
    what is wrong, with which file, value or flag, and what to do about it."""


def _decompress(raw: bytes, path) -> bytes:
    """gunzip ``raw`` if it starts with gzip's magic bytes 1f 8b, else return it.

    The content decides, not the file's name: a gzip file without ``.gz`` (or
    a raw one with it) still reads correctly.
    """
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a damaged gzip file ({exc}); delete it and fetch it again.") from None


def _read_bytes(path: Path) -> bytes:
    """The content of the file ``path``, decompressed if it is gzip."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}.") from None
    return _decompress(raw, path)


def _parse_idx(data: bytes, path) -> np.ndarray:
    """Check an IDX header against the data that follows; return the array.

    data: the decompressed bytes of one file. Returns a writable uint8 array of
    the declared shape. Raises DataError naming ``path`` when anything is off.
    """
    if len(data) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(data)} bytes).")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file: it starts with bytes {data[:4].hex(' ')} "
                        f"where an IDX file starts with 00 00 08 <ndim>.")
    if data[2] != IDX_UBYTE:
        raise DataError(f"{path} holds IDX data type 0x{data[2]:02x}; "
                        f"only unsigned-byte files (type 0x08) are supported.")
    ndim = data[3]
    if ndim == 0:
        raise DataError(f"{path} declares 0 dimensions; an IDX file of images or labels has 1 to 3.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: it ends inside its {header}-byte header; "
                        f"delete it and fetch it again.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(data) - header
    if actual < expected:
        raise DataError(f"{path} is truncated: its header declares shape {shape} ({expected} bytes) "
                        f"but only {actual} bytes follow; delete it and fetch it again.")
    if actual > expected:
        raise DataError(f"{path} has {actual - expected} unexpected bytes after the {expected} "
                        f"its header declares (shape {shape}); the file is damaged or not IDX.")
    # frombuffer over bytes is read-only; a copy gives the caller an ordinary array
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape).copy()


def read_idx(path) -> np.ndarray:
    """Read one IDX file of unsigned bytes, gzip-compressed or raw.

    Returns a uint8 array of the shape the header declares: (N, H, W) for an
    images file, (N,) for a labels file. Raises DataError naming the file when
    it is missing, a damaged gzip, not IDX (magic number), of another data
    type than 0x08, or when its length disagrees with its header (truncated,
    or trailing bytes).
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)
