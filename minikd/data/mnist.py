"""MNIST's four files: where they live, their checksums, and a verified download.

A user's folder (``--data-dir`` or ``$MINIKD_DATA_DIR``) is only ever read.
Downloads go into the cache, ``pooch.os_cache("minikd") / "mnist"``: on Linux
``$XDG_CACHE_HOME/minikd/mnist`` (``~/.cache/minikd/mnist``), elsewhere the
platform's cache folder.

The download is pooch's (``pooch.retrieve``): it streams a file into a
temporary file beside its final name and renames it only once its SHA-256 is
the published one (``MNIST_GZ_SHA256``), and it takes a file already in the
cache with that digest without asking the network. What pooch leaves to us is
done here: the mirrors are tried in turn, a network failure is retried, a
wrong file is not fetched again from the same mirror, and when every mirror
fails the error lists what was tried and says what to do offline.

Two tables of digests, for two questions:

    MNIST_SHA256     the content of each file, decompressed: any copy, gzip or
                     raw, in any folder, is checked against it on every load;
    MNIST_GZ_SHA256  the .gz files the mirrors serve, byte for byte: what pooch
                     checks a download against (and the cache's files).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .idx import DataError

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

# SHA-256 of each published .gz file, as the mirrors below serve it (the same bytes on all three).
MNIST_GZ_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# Base URLs; a file's URL is base + name + ".gz". The first is torchvision's,
# the second TensorFlow's (the CVDF mirror), the original site comes last.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ENV_DATA_DIR = "MINIKD_DATA_DIR"


def resolve_data_dir(data_dir=None) -> str | None:
    """The folder the user named: ``data_dir`` (``--data-dir``) if given, else
    ``$MINIKD_DATA_DIR`` if set and non-empty, else None. ``~`` is expanded."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_DATA_DIR) or None
    return None if chosen is None else os.path.expanduser(str(chosen))


def default_cache_dir() -> Path:
    """minikd's cache folder, ``pooch.os_cache("minikd")``: on Linux
    ``$XDG_CACHE_HOME/minikd``, or ``~/.cache/minikd`` when that is unset."""
    import pooch   # here, not at the top: pooch imports tqdm, which ``import minikd`` does not need
    return Path(os.path.expanduser(pooch.os_cache("minikd")))


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


def _why(exc: BaseException, timeout: float) -> str:
    """A few words for one failed attempt (an exception of ``requests``, through pooch)."""
    import requests
    if isinstance(exc, requests.HTTPError):
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "cut short: the connection closed before the whole file arrived"
    # the operating system's words ("Connection refused", "Name or service not known"),
    # a few links down the chain requests -> urllib3 -> socket
    cause, seen = exc, set()
    while isinstance(cause, BaseException) and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__ or getattr(cause, "reason", None)
    return str(exc)


def download_file(name: str, folder, mirrors=None, timeout: float = 30.0, retries: int = 2) -> Path:
    """MNIST's ``name``.gz in ``folder``, fetched by pooch from the first mirror that
    serves the published file; a copy already there with its SHA-256 is kept.

    Network failures (no answer, refused, cut short, HTTP 5xx) are retried
    ``retries`` times per mirror, after 0.5 s, 1 s, ...; a 4xx answer or a file
    with the wrong SHA-256 moves on to the next mirror at once. Raises
    DataError listing every URL tried and why it failed.
    """
    import pooch
    import requests
    downloader = pooch.HTTPDownloader(timeout=timeout, chunk_size=1 << 16, progressbar=sys.stderr.isatty())
    tried = []
    for base in (MNIST_MIRRORS if mirrors is None else mirrors):
        url = base.rstrip("/") + f"/{name}.gz"
        reasons = []
        for attempt in range(max(0, int(retries)) + 1):
            if attempt:
                time.sleep(0.5 * attempt)
            try:
                return Path(pooch.retrieve(url, known_hash=f"sha256:{MNIST_GZ_SHA256[name]}",
                                           fname=f"{name}.gz", path=folder, downloader=downloader))
            except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                    requests.exceptions.InvalidURL):
                reasons.append("not an http(s) URL")
                break
            except requests.RequestException as exc:
                reasons.append(_why(exc, timeout))
                status = exc.response.status_code if exc.response is not None else None
                if status is not None and status < 500:
                    break           # the mirror answered "no": asking again will not help
            except ValueError:      # pooch's hash check: the bytes arrived, and are not the file
                reasons.append("wrong SHA-256, not the published MNIST file")
                break
            except OSError as exc:  # after requests' errors, which are OSErrors too: our disk
                raise DataError(f"cannot write {name}.gz into the cache folder {folder} "
                                f"({exc.strerror or exc}); set XDG_CACHE_HOME to a writable folder "
                                f"or pass --data-dir DIR.") from None
        times = f" ({len(reasons)} attempts)" if len(reasons) > 1 else ""
        tried.append(f"{url}: {reasons[-1]}{times}")
    lines = "\n  ".join(tried) or "(no mirrors given)"
    raise DataError(
        f"could not download MNIST's {name}.gz. Tried:\n  {lines}\n"
        f"Download the four files {', '.join(f + '.gz' for f in MNIST_FILES)} by hand "
        f"(e.g. from {MNIST_MIRRORS[0]}) into a folder and pass --data-dir DIR, "
        f"or run offline with --dataset digits.")


def download_mnist(cache_dir, mirrors=None, timeout: float = 30.0, retries: int = 2) -> Path:
    """The four MNIST files in ``cache_dir/mnist``, each fetched by ``download_file``
    unless the cache already holds the published file; returns that folder.

    mirrors: base URLs tried in order (default MNIST_MIRRORS). timeout: seconds
    for the connection and for each read. retries: extra attempts per mirror
    after a network failure. Raises DataError when a file cannot be had from
    any mirror (listing what was tried) or the folder is not writable.
    """
    folder = Path(cache_dir) / "mnist"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {folder} ({exc.strerror or exc}); "
                        f"set XDG_CACHE_HOME to a writable folder or pass --data-dir DIR.") from None
    if not os.access(folder, os.W_OK):
        raise DataError(f"cannot write to the cache folder {folder}; "
                        f"set XDG_CACHE_HOME to a writable folder or pass --data-dir DIR.")
    for stale in folder.glob("tmp*"):   # pooch's temporary, left by a process killed mid-download
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink()
        except OSError:
            pass                        # another process is using or removing it
    for name in MNIST_FILES:
        download_file(name, folder, mirrors, timeout, retries)
    return folder
