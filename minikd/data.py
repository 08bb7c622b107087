"""Data: MNIST and other IDX files, scikit-learn's digits, mini-batches, jitter.

Where the data comes from (``load_dataset``)
---------------------------------------------
``mnist``   the four files of LeCun, Cortes & Burges' MNIST, from the first of

            1. a folder the user names: ``data_dir`` (the scripts' ``--data-dir``),
               else the environment variable ``MINIKD_DATA_DIR``. Such a folder is
               only ever read: if a file is missing or wrong there, that is an
               error, and nothing is downloaded into it;
            2. the cache, ``$XDG_CACHE_HOME/minikd/mnist`` (``~/.cache/minikd/mnist``);
            3. a download from ``MNIST_MIRRORS`` into the cache.

            Every load checks the SHA-256 of each file's *decompressed* bytes
            against ``MNIST_SHA256``, so a gzip or a raw copy both verify.
``idx``     any folder holding four files with MNIST's names and format
            (Fashion-MNIST, KMNIST, an EMNIST digits export, ...): the structure
            is checked, there is no checksum, the number of classes is
            ``max(label) + 1``.
``digits``  scikit-learn's bundled 8x8 digits: no network, no files. The first
            1,437 samples train, the last 360 test (about 80/20, in the order
            scikit-learn ships them).

Every problem a user can cause (a missing, truncated or foreign file, a failed
download) raises ``DataError`` whose text is one short message naming the file,
value or flag and what to do. Scripts print ``str(err)`` and exit with status 1.

The IDX format (big-endian)
---------------------------
::

    bytes 0-1   0x00 0x00
    byte  2     data type code; 0x08 = unsigned byte (the only one read here)
    byte  3     number of dimensions, ndim
    4*ndim      the size of each dimension, uint32
    the rest    prod(sizes) values, row-major

Images are (N, H, W) uint8 (MNIST: N x 28 x 28, 0 = background), labels (N,).

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

import gzip
import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

import numpy as np

from .backend import get_xp

# --------------------------------------------------------------------------- constants
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of each file's decompressed content.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Base URLs; a file's URL is base + name + ".gz". The first is torchvision's,
# the second TensorFlow's (the CVDF mirror), the original site comes last.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DATASETS = ("mnist", "idx", "digits")
ENV_DATA_DIR = "MINIKD_DATA_DIR"
IDX_UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
MAX_DOWNLOAD_BYTES = 64 << 20   # the largest MNIST file is 9.9 MB gzipped
DIGITS_N_TRAIN = 1437           # scikit-learn's 1,797 digits: first 1,437 train, last 360 test


class DataError(Exception):
    """Data that cannot be used. ``str(err)`` is one short message for the user:
    what is wrong, with which file, value or flag, and what to do about it."""


@dataclass
class Dataset:
    """A dataset held on the host as uint8 images and integer labels.

    x_train: (N_train, H, W) uint8     y_train: (N_train,) integer labels
    x_test:  (N_test, H, W) uint8      y_test:  (N_test,)
    Labels lie in [0, n_classes). ``source`` says where the arrays came from.
    """
    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_classes: int
    source: str

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """H * W: the length of one flattened image (the network's input size)."""
        return int(np.prod(self.x_train.shape[1:]))


# --------------------------------------------------------------------------- IDX files
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


# --------------------------------------------------------------------------- where files live
def resolve_data_dir(data_dir=None) -> str | None:
    """The folder the user named: ``data_dir`` (``--data-dir``) if given, else
    ``$MINIKD_DATA_DIR`` if set and non-empty, else None. ``~`` is expanded."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_DATA_DIR) or None
    return None if chosen is None else os.path.expanduser(str(chosen))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/minikd``, or ``~/.cache/minikd`` when that is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minikd"


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (raw first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _check_user_folder(folder: Path, flag: str) -> None:
    if not folder.exists():
        raise DataError(f"data folder {folder} ({flag}) does not exist; check the path.")
    if not folder.is_dir():
        raise DataError(f"{folder} ({flag}) is not a folder; {flag} names the folder "
                        f"that holds the four IDX files.")


def _sha256_mismatch(data: bytes, name: str) -> str | None:
    """None if ``data`` is MNIST's ``name``, else the actual digest."""
    digest = hashlib.sha256(data).hexdigest()
    return None if digest == MNIST_SHA256[name] else digest


# --------------------------------------------------------------------------- download
class _BadDownload(Exception):
    """Bytes arrived but are not the file. ``retry``: could asking again help?"""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


def _describe(exc: BaseException, timeout: float) -> str:
    """A few words for one failed attempt, as listed in the final error."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, BaseException):
            return _describe(exc.reason, timeout)
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, HTTPException):
        return f"connection broke off ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _fetch(url: str, dest, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``dest``.

    ``timeout`` bounds the connection and every read. A body shorter than its
    Content-Length is refused, as is one longer than MAX_DOWNLOAD_BYTES.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "minikd (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        declared = response.headers.get("Content-Length")
        total = 0
        while chunk := response.read(1 << 20):
            total += len(chunk)
            if total > MAX_DOWNLOAD_BYTES:
                raise _BadDownload(f"over {MAX_DOWNLOAD_BYTES >> 20} MiB, not an MNIST file", retry=False)
            dest.write(chunk)
    if declared is not None and declared.isdigit() and total != int(declared):
        raise _BadDownload(f"cut short: {total} of {declared} bytes arrived", retry=True)


def _attempt(url: str, name: str, folder: Path, timeout: float) -> Path:
    """One try: download into a temporary file in ``folder``, verify the SHA-256
    of its decompressed content, and only then rename it to its final name.
    Whatever happens, no temporary file is left behind."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise DataError(f"cannot write to the cache folder {folder} ({exc.strerror or exc}); "
                        f"set XDG_CACHE_HOME to a writable folder or pass --data-dir DIR.") from None
    try:
        with os.fdopen(fd, "wb") as dest:
            _fetch(url, dest, timeout)
        raw = Path(tmp).read_bytes()
        try:
            data = _decompress(raw, url)
        except DataError:
            raise _BadDownload("damaged gzip data", retry=True) from None
        if _sha256_mismatch(data, name):
            raise _BadDownload("wrong SHA-256, not the published MNIST file", retry=False)
        final = folder / (f"{name}.gz" if raw[:2] == GZIP_MAGIC else name)
        os.replace(tmp, final)
        return final
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _download_one(name: str, folder: Path, mirrors, timeout: float, retries: int) -> Path:
    """Fetch ``name``.gz from the first mirror that serves it intact.

    Network failures (no answer, refused, cut short, HTTP 5xx) are retried
    ``retries`` times per mirror, after 0.5 s, 1 s, ...; a 4xx answer or a
    wrong checksum moves on to the next mirror at once.
    """
    tried = []
    for base in mirrors:
        url = base.rstrip("/") + f"/{name}.gz"
        reasons = []
        for attempt in range(max(0, int(retries)) + 1):
            if attempt:
                time.sleep(0.5 * attempt)
            try:
                return _attempt(url, name, folder, timeout)
            except urllib.error.HTTPError as exc:
                reasons.append(_describe(exc, timeout))
                if exc.code < 500:
                    break           # the mirror answered "no": asking again will not help
            except _BadDownload as exc:
                reasons.append(str(exc))
                if not exc.retry:
                    break
            except (OSError, HTTPException) as exc:   # no answer, refused, reset
                reasons.append(_describe(exc, timeout))
            except ValueError as exc:                 # not a URL urllib can open
                reasons.append(str(exc))
                break
        times = f" ({len(reasons)} attempts)" if len(reasons) > 1 else ""
        tried.append(f"{url}: {reasons[-1]}{times}")
    lines = "\n  ".join(tried) or "(no mirrors given)"
    raise DataError(
        f"could not download MNIST's {name}.gz. Tried:\n  {lines}\n"
        f"Download the four files {', '.join(f + '.gz' for f in MNIST_FILES)} by hand "
        f"(e.g. from {MNIST_MIRRORS[0]}) into a folder and pass --data-dir DIR, "
        f"or run offline with --dataset digits.")


def download_mnist(cache_dir, mirrors=None, timeout: float = 30.0, retries: int = 2) -> Path:
    """Download the MNIST files missing from ``cache_dir/mnist``; return that folder.

    mirrors: base URLs tried in order (default MNIST_MIRRORS). timeout: seconds
    for the connection and for each read. retries: extra attempts per mirror
    after a network failure. Files already in the folder are left alone
    (``load_dataset`` verifies them). Raises DataError when a file cannot be
    had from any mirror (listing what was tried) or the folder is not writable.
    """
    folder = Path(cache_dir) / "mnist"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {folder} ({exc.strerror or exc}); "
                        f"set XDG_CACHE_HOME to a writable folder or pass --data-dir DIR.") from None
    mirrors = MNIST_MIRRORS if mirrors is None else tuple(mirrors)
    for stale in folder.glob(".*.part"):   # left by a process killed mid-download
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink()
        except OSError:
            pass                           # another process is using or removing it
    for name in MNIST_FILES:
        if _find(folder, name) is None:
            print(f"minikd: downloading {name}.gz into {folder}", file=sys.stderr)
            _download_one(name, folder, mirrors, timeout, retries)
    return folder


# --------------------------------------------------------------------------- datasets
def _read_file(folder: Path, name: str, flag: str, verify: bool, purpose: str):
    """(path, array) for MNIST-named file ``name`` in ``folder``, raw or .gz.

    verify: also compare the SHA-256 of the decompressed bytes with MNIST's.
    purpose: the advice appended when the file is missing.
    """
    path = _find(folder, name)
    if path is None:
        raise DataError(f"{folder} ({flag}) has no {name} or {name}.gz; {purpose}")
    data = _read_bytes(path)
    array = _parse_idx(data, path)
    if verify:
        digest = _sha256_mismatch(data, name)
        if digest:
            raise DataError(f"{path} is not MNIST's {name}: its SHA-256 is {digest[:12]}..., "
                            f"expected {MNIST_SHA256[name][:12]}...; replace the file, "
                            f"or use --dataset idx to load it without the check.")
    return path, array


def _assemble(name: str, files: dict, source: str) -> Dataset:
    """A Dataset from {file name: (path, array)} after checking that the arrays fit together."""
    (xtr_path, x_train), (ytr_path, y_train), (xte_path, x_test), (yte_path, y_test) = (
        files[f] for f in MNIST_FILES)
    for path, x in ((xtr_path, x_train), (xte_path, x_test)):
        if x.ndim != 3:
            raise DataError(f"{path} holds an array of shape {x.shape}; images must be "
                            f"3-dimensional (count, height, width).")
    for path, y in ((ytr_path, y_train), (yte_path, y_test)):
        if y.ndim != 1:
            raise DataError(f"{path} holds an array of shape {y.shape}; labels must be "
                            f"1-dimensional (count,).")
    for (xp_, x), (yp_, y) in (((xtr_path, x_train), (ytr_path, y_train)),
                              ((xte_path, x_test), (yte_path, y_test))):
        if len(x) != len(y):
            raise DataError(f"{xp_} holds {len(x)} images but {yp_} holds {len(y)} labels; "
                            f"the two files must come from the same dataset.")
        if len(x) == 0:
            raise DataError(f"{xp_} holds no images.")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"training images are {x_train.shape[1]}x{x_train.shape[2]} ({xtr_path}) "
                        f"but test images are {x_test.shape[1]}x{x_test.shape[2]} ({xte_path}); "
                        f"both must have one size.")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(name, x_train, y_train, x_test, y_test, n_classes, source)


def _load_folder(name: str, folder: Path, flag: str, verify: bool, purpose: str) -> Dataset:
    files = {f: _read_file(folder, f, flag, verify, purpose) for f in MNIST_FILES}
    return _assemble(name, files, str(folder))


def _load_mnist_cache(cache_root: Path, download: bool, mirrors, timeout, retries) -> Dataset:
    """MNIST from ``cache_root/mnist``, downloading what is missing. A cached
    file that fails verification is deleted (the cache is ours) and fetched again."""
    folder = cache_root / "mnist"
    advice = "delete the folder to download MNIST again."
    files = {}
    for name in MNIST_FILES:
        if folder.is_dir() and _find(folder, name) is not None:
            try:
                files[name] = _read_file(folder, name, "the cache", True, advice)
            except DataError as exc:
                print(f"minikd: dropping a bad cached file: {exc}", file=sys.stderr)
                _find(folder, name).unlink()
    missing = [n for n in MNIST_FILES if n not in files]
    if missing:
        if not download:
            raise DataError(f"MNIST is not in the cache {folder} and downloading is off; "
                            f"pass --data-dir DIR with the four MNIST files, or allow the download.")
        download_mnist(cache_root, mirrors=mirrors, timeout=timeout, retries=retries)
        for name in missing:
            files[name] = _read_file(folder, name, "the cache", True, advice)
    return _assemble("mnist", files, str(folder))


def _load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits: pixel values 0..16 rescaled to 0..255."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("--dataset digits needs scikit-learn: pip install scikit-learn.") from None
    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)   # (1797, 8, 8)
    y = bunch.target.astype(np.uint8)                              # (1797,)
    n = DIGITS_N_TRAIN
    return Dataset("digits", x[:n], y[:n], x[n:], y[n:], 10, "scikit-learn digits (bundled)")


def load_dataset(name: str = "mnist", data_dir=None, *, download: bool = True, cache_dir=None,
                 mirrors=None, timeout: float = 30.0, retries: int = 2) -> Dataset:
    """Load a dataset by name: "mnist", "idx" or "digits" (see the module docstring).

    data_dir: the user's folder (``--data-dir``); None falls back to
    ``$MINIKD_DATA_DIR``. A user's folder is only read, never written.
    download, cache_dir, mirrors, timeout, retries: how MNIST is fetched when
    no folder is named (cache_dir defaults to ``default_cache_dir()``).
    ``digits`` ignores the folder and the cache. Raises DataError.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose --dataset mnist, idx or digits.")
    if name == "digits":
        return _load_digits()

    folder = resolve_data_dir(data_dir)
    flag = "--data-dir" if data_dir not in (None, "") else ENV_DATA_DIR
    if name == "idx":
        if folder is None:
            raise DataError(f"--dataset idx needs a folder: pass --data-dir DIR (or set "
                            f"{ENV_DATA_DIR}) holding {', '.join(MNIST_FILES)} (each raw or .gz).")
        _check_user_folder(Path(folder), flag)
        return _load_folder("idx", Path(folder), flag, verify=False,
                            purpose="--dataset idx needs all four files under MNIST's names.")
    if folder is not None:
        _check_user_folder(Path(folder), flag)
        return _load_folder("mnist", Path(folder), flag, verify=True,
                            purpose=f"put the four MNIST files there (from {MNIST_MIRRORS[0]}), "
                                    f"or leave out --data-dir and unset {ENV_DATA_DIR} to let "
                                    f"minikd download them.")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _load_mnist_cache(cache_root, download, mirrors, timeout, retries)


# --------------------------------------------------------------------------- arrays for training
def to_float(images_uint8, xp=np, dtype=np.float32):
    """(N, H, W) uint8 images -> (N, H*W) floats in [0, 1] on ``xp``.

    The uint8 array crosses to the device first (a quarter of the bytes of
    float32) and is converted there: x / 255.
    """
    x = xp.asarray(images_uint8.reshape(images_uint8.shape[0], -1))
    out = x.astype(dtype)
    out /= 255
    return out


def train_val_split(n: int, val_size: int | None = None):
    """Indices (train_idx, val_idx) that hold out the *last* ``val_size`` of n samples.

    Default: 10,000 when n == 60,000 (MNIST), else n // 6 (the same
    proportion). Deterministic: no generator involved. Both are int64 (k,).
    """
    if val_size is None:
        val_size = 10_000 if n == 60_000 else n // 6
    if not 0 <= val_size < n:
        raise DataError(f"validation size {val_size} must be between 0 and {n - 1} "
                        f"(the training set has {n} samples).")
    return np.arange(n - val_size), np.arange(n - val_size, n)


def iterate_minibatches(n: int, batch_size: int, rng):
    """Yield index arrays (batch_size,) covering a fresh permutation of range(n).

    The last batch is smaller when batch_size does not divide n. rng: a seeded
    generator with ``permutation`` (``numpy.random.Generator``).
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}.")
    perm = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


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
