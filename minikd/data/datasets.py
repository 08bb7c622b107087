"""Datasets as the training code sees them: loaded, checked, split, made float.

Where the data comes from (``load_dataset``)
---------------------------------------------
``mnist``   the four files of LeCun, Cortes & Burges' MNIST, from the first of

            1. a folder the user names: ``data_dir`` (the scripts' ``--data-dir``),
               else the environment variable ``MINIKD_DATA_DIR``. Such a folder is
               only ever read: if a file is missing or wrong there, that is an
               error, and nothing is downloaded into it;
            2. the cache, ``$XDG_CACHE_HOME/minikd/mnist`` (``~/.cache/minikd/mnist``;
               pooch's ``os_cache`` elsewhere than Linux);
            3. a download by pooch from ``MNIST_MIRRORS`` into the cache.

            Every load checks the SHA-256 of each file's *decompressed* bytes
            against ``MNIST_SHA256``, so a gzip or a raw copy both verify.
``idx``     any folder holding four files with MNIST's names and format
            (Fashion-MNIST, KMNIST, an EMNIST digits export, ...): the structure
            is checked, there is no checksum, the number of classes is
            ``max(label) + 1``, and every class 0..K-1 must occur in the
            training labels (a stray label of 200 in a 10-class file would
            otherwise make a 201-output network); ``allow_missing_classes``
            (``--allow-missing-classes``) accepts gaps such as EMNIST letters' 1..26.
``digits``  scikit-learn's bundled 8x8 digits: no network, no files. The first
            1,437 samples train, the last 360 test (about 80/20, in the order
            scikit-learn ships them).

Every Dataset carries ``sha256``: a digest of its four files' decompressed
bytes (mnist, idx; computed once while they are read, the same pass that
verifies MNIST) or of its arrays (digits). Checkpoints record it
(``fingerprint()``), so a model trained on other data is refused rather than
resumed. It identifies the whole dataset, not the subset a run trains on.

``to_float`` and ``train_val_split`` prepare what
training uses.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .idx import DataError, _parse_idx, _read_bytes
from .mnist import (ENV_DATA_DIR, MNIST_FILES, MNIST_MIRRORS, MNIST_SHA256, _check_user_folder, _find,
                    default_cache_dir, download_mnist, resolve_data_dir)

DATASETS = ("mnist", "idx", "digits")
DIGITS_N_TRAIN = 1437           # scikit-learn's 1,797 digits: first 1,437 train, last 360 test


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
    sha256: str = ""    # of the files (or arrays); filled on first use when not given

    def fingerprint(self) -> dict:
        """What a checkpoint records about its data: the digest, class count, image shape."""
        if not self.sha256:
            self.sha256 = arrays_sha256(self.x_train, self.y_train, self.x_test, self.y_test)
        return {"sha256": self.sha256, "n_classes": int(self.n_classes),
                "image_shape": [int(d) for d in self.image_shape], "source": self.source}

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """H * W: the length of one flattened image (the network's input size)."""
        return int(np.prod(self.x_train.shape[1:]))


def arrays_sha256(*arrays) -> str:
    """SHA-256 over the arrays' shapes, dtypes and bytes (a dataset without files)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_file(folder: Path, name: str, flag: str, verify: bool, purpose: str):
    """(path, array, sha256 hex) for MNIST-named file ``name`` in ``folder``, raw or .gz.

    verify: also compare the SHA-256 of the decompressed bytes with MNIST's.
    purpose: the advice appended when the file is missing.
    """
    path = _find(folder, name)
    if path is None:
        raise DataError(f"{folder} ({flag}) has no {name} or {name}.gz; {purpose}")
    data = _read_bytes(path)
    array = _parse_idx(data, path)
    digest = hashlib.sha256(data).hexdigest()   # once: the fingerprint, and MNIST's check
    if verify and digest != MNIST_SHA256[name]:
        raise DataError(f"{path} is not MNIST's {name}: its SHA-256 is {digest[:12]}..., "
                        f"expected {MNIST_SHA256[name][:12]}...; replace the file, "
                        f"or use --dataset idx to load it without the check.")
    return path, array, digest


def label_summary(labels) -> str:
    """Sorted distinct labels as runs: '0..9, 200'."""
    values = [int(v) for v in np.unique(labels)]
    runs, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            runs.append(str(v) if v == start else f"{start}..{v}")
            start = None
    return ", ".join(runs)


def check_class_labels(y_train, y_test, ytr_path, yte_path, allow_missing_classes=False) -> int:
    """The class count K = max(training label) + 1, after checking the labels.

    Every class 0..K-1 must occur in the training labels, and the test labels
    must lie among them; a stray label (200 in a 10-class file) would
    otherwise silently grow the network to 201 outputs. Raises DataError naming
    the file and its labels. allow_missing_classes accepts gaps in 0..K-1
    (K then counts the test labels too).
    """
    k = int(y_train.max()) + 1
    present = np.unique(y_train)
    if not allow_missing_classes:
        if len(present) != k:
            missing = np.setdiff1d(np.arange(k), present)
            raise DataError(f"{ytr_path} holds labels {label_summary(y_train)}: classes "
                            f"{label_summary(missing)} never occur, so the network would get {k} outputs; "
                            f"labels must be 0..K-1 with every class present -- fix the file, or pass "
                            f"--allow-missing-classes if the gaps are intended.")
        stray = np.setdiff1d(np.unique(y_test), present)
        if len(stray):
            raise DataError(f"{yte_path} holds labels {label_summary(stray)} that the training labels "
                            f"({ytr_path}: {label_summary(y_train)}) never use; fix the file, or pass "
                            f"--allow-missing-classes to accept classes absent from training.")
    return max(k, int(y_test.max()) + 1)


def _assemble(name: str, files: dict, source: str, allow_missing_classes: bool = False) -> Dataset:
    """A Dataset from {file name: (path, array, sha256)} after checking that the arrays fit together."""
    (xtr_path, x_train), (ytr_path, y_train), (xte_path, x_test), (yte_path, y_test) = (
        files[f][:2] for f in MNIST_FILES)
    digest = hashlib.sha256("".join(f"{f}:{files[f][2]}\n" for f in MNIST_FILES).encode()).hexdigest()
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
    n_classes = check_class_labels(y_train, y_test, ytr_path, yte_path, allow_missing_classes)
    return Dataset(name, x_train, y_train, x_test, y_test, n_classes, source, sha256=digest)


def _load_folder(name: str, folder: Path, flag: str, verify: bool, purpose: str,
                 allow_missing_classes: bool = False) -> Dataset:
    files = {f: _read_file(folder, f, flag, verify, purpose) for f in MNIST_FILES}
    return _assemble(name, files, str(folder), allow_missing_classes)


def _load_mnist_cache(cache_root: Path, download: bool, mirrors, timeout, retries) -> Dataset:
    """MNIST from the cache ``cache_root/mnist``. With ``download``, pooch first
    fetches each file the cache lacks, or holds with another SHA-256 than the
    published .gz (``download_mnist``); then each is verified as in any folder."""
    folder = cache_root / "mnist"
    if download:
        download_mnist(cache_root, mirrors=mirrors, timeout=timeout, retries=retries)
    elif not all(_find(folder, name) for name in MNIST_FILES):
        raise DataError(f"MNIST is not in the cache {folder} and downloading is off; "
                        f"pass --data-dir DIR with the four MNIST files, or allow the download.")
    return _load_folder("mnist", folder, "the cache", verify=True,
                        purpose="delete the folder to download MNIST again.")


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
    return Dataset("digits", x[:n], y[:n], x[n:], y[n:], 10, "scikit-learn digits (bundled)",
                   sha256=arrays_sha256(x, y))


def load_dataset(name: str = "mnist", data_dir=None, *, download: bool = True, cache_dir=None,
                 mirrors=None, timeout: float = 30.0, retries: int = 2,
                 allow_missing_classes: bool = False) -> Dataset:
    """Load a dataset by name: "mnist", "idx" or "digits" (see the module docstring).

    data_dir: the user's folder (``--data-dir``); None falls back to
    ``$MINIKD_DATA_DIR``. A user's folder is only read, never written.
    download, cache_dir, mirrors, timeout, retries: how MNIST is fetched when
    no folder is named (cache_dir defaults to ``default_cache_dir()``).
    ``digits`` ignores the folder and the cache. allow_missing_classes: accept
    training labels with gaps (``check_class_labels``). Raises DataError.
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
                            purpose="--dataset idx needs all four files under MNIST's names.",
                            allow_missing_classes=allow_missing_classes)
    if folder is not None:
        _check_user_folder(Path(folder), flag)
        return _load_folder("mnist", Path(folder), flag, verify=True,
                            purpose=f"put the four MNIST files there (from {MNIST_MIRRORS[0]}), "
                                    f"or leave out --data-dir and unset {ENV_DATA_DIR} to let "
                                    f"minikd download them.")
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _load_mnist_cache(cache_root, download, mirrors, timeout, retries)


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
