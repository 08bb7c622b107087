"""MNIST's four files: where they live, their checksums, and a verified download.

A user's folder (``--data-dir`` or ``$MINIKD_DATA_DIR``) is only ever read;
downloads go to the cache, ``$XDG_CACHE_HOME/minikd/mnist``
(``~/.cache/minikd/mnist``), into a temporary file that is renamed only after
the SHA-256 of its decompressed bytes matches ``MNIST_SHA256``.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from .idx import GZIP_MAGIC, DataError, _decompress

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

ENV_DATA_DIR = "MINIKD_DATA_DIR"
MAX_DOWNLOAD_BYTES = 64 << 20   # the largest MNIST file is 9.9 MB gzipped


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
